//! Checkpoints off the commit path. SQLite's own automatic checkpoint runs inside the commit
//! that crosses its threshold: the writer copies the write-ahead log into the database file and
//! waits for two `fsync`s while every caller of that batch waits for its answer — tens of
//! milliseconds on a busy disk, once every thousand pages. Here the writer's connection runs no
//! checkpoint (its WAL hook replaces SQLite's automatic one); the hook only tells a thread of
//! ours, with a connection of its own, how long the log has grown, and that thread checkpoints.
//!
//! Durability is unchanged: a commit is in the log before its callers are answered (so it
//! survives the process being killed), and with `synchronous=NORMAL` a checkpoint syncs the log
//! before copying it, and the database before the log may be reused, whichever thread runs it.
//!
//! The log stays bounded. A `PASSIVE` checkpoint never holds the writer back, but under steady
//! load it never quite catches up, and SQLite starts the log over only when a transaction begins
//! with every frame copied. So once the log is longer than [`Thresholds::restart`], the thread
//! runs a `RESTART` checkpoint: it holds the writer back only while it copies (and syncs) the
//! frames that the passive pass before it left, and waits for readers at most
//! [`RESTART_PATIENCE`].

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::wal::CheckpointMode;
use rusqlite::Connection;

use crate::journal::JournalError;

/// How long a restarting checkpoint waits for the writer's transaction and for readers before
/// it gives up for now (it tries again at the next threshold).
const RESTART_PATIENCE: Duration = Duration::from_millis(200);

/// When the thread checkpoints, in frames (pages) of the log.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Frames added since the last checkpoint that make a passive one due.
    pub passive: i64,
    /// Frames in the log beyond which a checkpoint also starts the log over.
    pub restart: i64,
}

/// The log's length, in bytes, beyond which a checkpoint starts it over.
pub const RESTART_LOG_BYTES: i64 = 15 << 20;

impl Thresholds {
    /// SQLite's automatic threshold (1000 pages); a restart once the log holds
    /// [`RESTART_LOG_BYTES`] of frames of `page_size` (each with its 24-byte header), so that
    /// the log stays within the writer's `journal_size_limit` (16 MiB): SQLite then never
    /// truncates it, and the writer overwrites pages the file already has instead of growing
    /// it again (a profile at c=1 showed a tenth of the writer's time in the file system
    /// allocating blocks for a log cut back to 16 MiB after each restart at 64 MiB). Counted in
    /// frames of 4 KiB pages, a journal of 1 KiB pages restarted its log at 4 MiB: on a full
    /// journal under keep-alive load, 14 times a second, each restart holding the writer back
    /// for milliseconds.
    pub fn for_page_size(page_size: i64) -> Thresholds {
        Thresholds {
            passive: 1000,
            restart: RESTART_LOG_BYTES / (page_size.max(512) + 24),
        }
    }
}

/// What the writer's hook and the checkpoint thread share.
#[derive(Debug)]
struct State {
    thresholds: Thresholds,
    /// Frames in the log after the writer's last commit.
    frames: i64,
    /// Frames the last checkpoint found copied into the database.
    copied: i64,
    /// The thread waits for the log to grow (so the hook has someone to wake).
    waiting: bool,
    /// Checkpoints that completed, and those of them that restarted the log.
    passes: u64,
    restarts: u64,
    stop: bool,
}

impl State {
    fn due(&self) -> bool {
        // A log shorter than what was copied has been started over.
        let new = if self.frames < self.copied {
            self.frames
        } else {
            self.frames - self.copied
        };
        new >= self.thresholds.passive
    }
}

type Shared = Arc<(Mutex<State>, Condvar)>;

/// The checkpoint thread of one journal file; stops (and is joined) when dropped.
#[derive(Debug)]
pub struct Checkpointer {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection of its own to the database at `path` and installs the hook on the
    /// writer's `connection` that turns SQLite's automatic checkpoints off and wakes the thread.
    pub fn start(
        path: &Path,
        connection: &mut Connection,
        thresholds: Thresholds,
    ) -> Result<Checkpointer, JournalError> {
        let mut own = Connection::open(path)?;
        own.pragma_update(None, "cache_size", -256)?;
        // A restarting checkpoint waits in short steps, so that the writer it holds back
        // resumes promptly, and only so long.
        const STEP: Duration = Duration::from_micros(200);
        own.busy_handler(Some(|attempt| {
            super::wait_a_step(attempt, STEP, RESTART_PATIENCE)
        }))?;
        let shared: Shared = Arc::new((
            Mutex::new(State {
                thresholds,
                frames: 0,
                copied: 0,
                waiting: false,
                passes: 0,
                restarts: 0,
                stop: false,
            }),
            Condvar::new(),
        ));
        let hook = Arc::clone(&shared);
        connection.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, frames| {
            let (state, wake) = &*hook;
            if let Ok(mut state) = state.lock() {
                state.frames = i64::from(frames);
                if state.waiting && state.due() {
                    state.waiting = false;
                    wake.notify_one();
                }
            }
            Ok(())
        }))?;
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("journal-checkpoint".to_owned())
            .spawn(move || run(&own, &thread_shared))
            .map_err(JournalError::SpawnWriter)?;
        Ok(Checkpointer {
            shared,
            thread: Some(thread),
        })
    }

    /// Checkpoints completed so far, and how many of them restarted the log.
    #[cfg(test)]
    fn passes(&self) -> (u64, u64) {
        let state = self.shared.0.lock().expect("state");
        (state.passes, state.restarts)
    }

    /// Waits (at most `limit`) until no checkpoint is due or running.
    #[cfg(test)]
    fn settle(&self, limit: Duration) -> bool {
        let (state, wake) = &*self.shared;
        let guard = state.lock().expect("state");
        let (_guard, timeout) = wake
            .wait_timeout_while(guard, limit, |state| !state.waiting)
            .expect("state");
        !timeout.timed_out()
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (state, wake) = &*self.shared;
        if let Ok(mut state) = state.lock() {
            state.stop = true;
        }
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(connection: &Connection, shared: &Shared) {
    let (state, wake) = &**shared;
    let restart = match state.lock() {
        Ok(state) => state.thresholds.restart,
        Err(_) => return,
    };
    loop {
        {
            let Ok(mut guard) = state.lock() else { return };
            while !guard.stop && !guard.due() {
                guard.waiting = true;
                // Tell a test waiting for the thread to settle.
                wake.notify_all();
                guard = match wake.wait(guard) {
                    Ok(guard) => guard,
                    Err(_) => return,
                };
            }
            guard.waiting = false;
            if guard.stop {
                return;
            }
        }
        let started = Instant::now();
        let mut result = connection.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
        let restarting = matches!(result, Ok((frames, _)) if i64::from(frames) >= restart);
        if restarting {
            result = connection.wal_checkpoint_v2(None::<&str>, CheckpointMode::RESTART);
        }
        let Ok(mut guard) = state.lock() else { return };
        match result {
            Ok((frames, copied)) => {
                guard.copied = i64::from(copied.max(0));
                // The hook reports the log's length again at the writer's next commit.
                guard.frames = guard.frames.max(i64::from(frames.max(0)));
                guard.passes += 1;
                guard.restarts += u64::from(restarting);
                tracing::trace!(frames, copied, restarting, took = ?started.elapsed(), "journal checkpoint");
            }
            Err(error) => {
                // Busy (a reader held on past the patience) or out of space: the next threshold
                // tries again, and commits go on meanwhile.
                tracing::debug!(%error, "journal checkpoint did not complete");
                guard.copied = guard.frames;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_handler_tries_again_until_its_steps_come_to_its_patience() {
        let (step, patience) = (Duration::from_micros(1), Duration::from_micros(3));
        let tries: Vec<bool> = (0..5)
            .map(|attempt| super::super::wait_a_step(attempt, step, patience))
            .collect();
        assert_eq!(tries, [true, true, true, false, false]);
    }

    #[test]
    fn the_log_restarts_at_the_same_length_in_bytes_whatever_the_page_size() {
        for page_size in [1024, 4096, 65536] {
            let restart = Thresholds::for_page_size(page_size).restart;
            let log = restart * (page_size + 24);
            assert!(
                log <= RESTART_LOG_BYTES && log > RESTART_LOG_BYTES - (page_size + 24),
                "{page_size}-byte pages: restart at {restart} frames, {log} bytes"
            );
        }
        assert_eq!(Thresholds::for_page_size(1024).restart, 15_008);
    }

    #[test]
    fn the_thread_checkpoints_and_restarts_the_log_while_the_writer_commits() {
        let folder = tempfile::tempdir().expect("temp dir");
        let path = folder.path().join("db.sqlite");
        let mut writer = Connection::open(&path).expect("open");
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .expect("WAL");
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .expect("synchronous");
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
            .expect("table");
        let thresholds = Thresholds {
            passive: 50,
            restart: 200,
        };
        let checkpointer = Checkpointer::start(&path, &mut writer, thresholds).expect("start");
        let page: i64 = writer
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .expect("page size");
        // 3,000 commits of a page or more each, 15 times the restart threshold; the thread is
        // given the time to keep up every 100 commits, as it has between batches.
        for n in 0..3000 {
            writer
                .execute("INSERT INTO t (id, data) VALUES (?1, zeroblob(3000))", [n])
                .expect("insert");
            if n % 100 == 99 {
                assert!(
                    checkpointer.settle(Duration::from_secs(30)),
                    "checkpoints settle"
                );
            }
        }
        let (passes, restarts) = checkpointer.passes();
        assert!(
            passes > 0 && restarts > 0,
            "{passes} passes, {restarts} restarts"
        );
        // Started over again and again, the log never grew much beyond the restart threshold:
        // 100 commits of at most 4 pages come on top between two looks.
        let wal = std::fs::metadata(folder.path().join("db.sqlite-wal"))
            .expect("WAL file")
            .len();
        let bound = (thresholds.restart + thresholds.passive + 400) * page;
        assert!(wal <= bound as u64, "WAL of {wal} bytes, bound {bound}");
        let rows: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .expect("count");
        assert_eq!(rows, 3000);
    }
}

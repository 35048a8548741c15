//! One polling file watcher for everything the running server re-reads: the scenario folder
//! (its `*.toml` rules and `*.xml` templates) and the supplier registry file. Every
//! [`POLL_INTERVAL`] it compares names, sizes and modification times with the last look and runs
//! the source's reload when anything changed; each reload it ran is published on a
//! `tokio::sync::watch` channel ([`Watcher::subscribe`]), so a test awaits the reload instead of
//! sleeping.
//!
//! Polling rather than the `notify` crate: a few small files, a change picked up within a
//! quarter second, no dependency, no platform differences (inotify, FSEvents, network and
//! container-mounted folders where events do not arrive), and editors that save by rename are
//! seen like any other change.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

/// How often the watched files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What one look saw: each relevant file with its size and modification time, sorted.
pub type Snapshot = Vec<(PathBuf, u64, Option<SystemTime>)>;

/// What is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The files of a folder whose extension is one of these.
    Folder {
        dir: PathBuf,
        extensions: &'static [&'static str],
    },
    /// One file; its appearing and disappearing are changes too.
    File(PathBuf),
}

impl Target {
    /// The files of the target now.
    pub fn snapshot(&self) -> Snapshot {
        let mut files = Vec::new();
        match self {
            Target::Folder { dir, extensions } => {
                if let Ok(entries) = std::fs::read_dir(dir) {
                    for entry in entries.flatten() {
                        let path = entry.path();
                        let relevant = path
                            .extension()
                            .and_then(|extension| extension.to_str())
                            .is_some_and(|extension| extensions.contains(&extension));
                        if let (true, Ok(metadata)) = (relevant, entry.metadata()) {
                            files.push((path, metadata.len(), metadata.modified().ok()));
                        }
                    }
                }
            }
            Target::File(path) => {
                if let Ok(metadata) = std::fs::metadata(path) {
                    files.push((path.clone(), metadata.len(), metadata.modified().ok()));
                }
            }
        }
        files.sort();
        files
    }

    fn path(&self) -> &Path {
        match self {
            Target::Folder { dir, .. } => dir,
            Target::File(path) => path,
        }
    }
}

/// A source's reload: `Err` carries why the new files were refused (the old ones stay).
pub type ReloadFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One watched source: what to look at, and what to run when it changed.
pub struct Watch {
    /// Names the source in logs and in [`Reload`]: "scenarios", "suppliers".
    pub source: &'static str,
    pub target: Target,
    pub reload: Box<dyn Fn() -> ReloadFuture + Send + Sync>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("source", &self.source)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// The latest reload the watcher ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reload {
    /// Reloads run so far; 0 before the first.
    pub count: u64,
    /// Which source changed ("" before the first).
    pub source: &'static str,
    pub ok: bool,
    /// Why the changed files were refused.
    pub error: Option<String>,
}

/// The running watcher; dropping it stops the polling.
#[derive(Debug)]
pub struct Watcher {
    task: tokio::task::JoinHandle<()>,
    reloads: watch::Receiver<Reload>,
}

impl Watcher {
    /// Takes the first look at every target now (so that a change made before the task first
    /// runs is not taken for the starting point), then polls them until dropped.
    pub fn spawn(watches: Vec<Watch>) -> Watcher {
        let (publish, reloads) = watch::channel(Reload::default());
        let mut looked: Vec<(Watch, Snapshot)> = watches
            .into_iter()
            .map(|watch| {
                let first = watch.target.snapshot();
                (watch, first)
            })
            .collect();
        let task = tokio::spawn(async move {
            if looked.is_empty() {
                return;
            }
            let mut interval = tokio::time::interval(POLL_INTERVAL);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut count = 0;
            loop {
                interval.tick().await;
                for (watch, last) in &mut looked {
                    let now = watch.target.snapshot();
                    if now == *last {
                        continue;
                    }
                    *last = now;
                    tracing::info!(
                        source = watch.source,
                        path = %watch.target.path().display(),
                        "files changed; reloading"
                    );
                    let result = (watch.reload)().await;
                    count += 1;
                    publish.send_replace(Reload {
                        count,
                        source: watch.source,
                        ok: result.is_ok(),
                        error: result.err(),
                    });
                }
            }
        });
        Watcher { task, reloads }
    }

    /// Follows the reloads this watcher runs: `changed().await` wakes on each.
    pub fn subscribe(&self) -> watch::Receiver<Reload> {
        self.reloads.clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_snapshot_sees_only_the_named_extensions_and_a_file_its_presence() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "x").unwrap();
        std::fs::write(dir.path().join("b.xml"), "yy").unwrap();
        std::fs::write(dir.path().join("c.txt"), "zzz").unwrap();
        let folder = Target::Folder {
            dir: dir.path().to_owned(),
            extensions: &["toml", "xml"],
        };
        let seen: Vec<u64> = folder.snapshot().iter().map(|(_, size, _)| *size).collect();
        assert_eq!(seen, [1, 2]);

        let file = Target::File(dir.path().join("suppliers.toml"));
        assert!(file.snapshot().is_empty());
        std::fs::write(dir.path().join("suppliers.toml"), "").unwrap();
        assert_eq!(file.snapshot().len(), 1);
    }
}

//! The group-commit writer: one thread, one store, a bounded queue.
//!
//! Besides writing, the thread keeps the journal within its [`Retention`]: it checks the limits
//! after every [`PRUNE_CHECK_CALLS`] calls written, or once it has been idle for [`PRUNE_IDLE`]
//! after writing fewer, and removes the oldest calls beyond them one small step per turn with
//! nothing queued, so a waiting call does not queue behind a delete (nor behind a check after
//! every commit). A queue that never empties still gets its steps: past [`PRUNE_FORCE_CALLS`]
//! unchecked calls, a step goes before the calls taken. And it knows whether the store can commit:
//! a batch failing for want of space (or a read-only file) marks the journal *unavailable*
//! (`/health/ready` then says not ready, callers get fault 1011) until a write succeeds again,
//! by a call or by [`Journal::probe`].
//!
//! Group commit waits a little for calls on their way: a handle announces a call it is about to
//! record ([`Journal::coming`]: the request is read and being decided), and a writer that has
//! calls to commit while others are announced waits for those — until none is announced or at
//! most [`COMMIT_DELAY`] — so one transaction takes them all (PostgreSQL's `commit_delay` with
//! `commit_siblings`, with an early end). A lone caller never waits: nothing else is announced.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::codec::Compressor;
use super::records::{CallRecord, ConfirmationRecord, Entry, RejectionRecord, ReloadRecord};
use super::sqlite::SqliteStore;
use super::store::{Compressed, JournalStore, PruneReason, Pruned, Retention};
use super::{JournalError, StorageError, MAX_BATCH, QUEUE_CAPACITY};

/// Calls one pruning step removes at least (more after a large batch, to keep up).
pub const PRUNE_STEP: usize = 256;

/// Calls written after which the writer checks the retention limits at its next free turn: a
/// journal whose queue empties now and then outgrows `max_calls` by at most about this many
/// calls (and a batch); one whose queue never does, by [`PRUNE_FORCE_CALLS`].
pub const PRUNE_CHECK_CALLS: usize = 1024;

/// Calls written since the last check past which the writer checks (and prunes) before the
/// calls it has taken, rather than waiting for a turn with nothing queued: under a load that
/// never leaves the queue empty the journal still keeps its limits, outgrowing `max_calls` by
/// at most this many calls and a batch. Such a step holds the queued calls back for about as
/// long as it takes to remove twice this many.
pub const PRUNE_FORCE_CALLS: usize = 2 * PRUNE_CHECK_CALLS;

/// How long the writer, owing a check of the limits for fewer calls, waits idle before it makes
/// that check.
pub const PRUNE_IDLE: Duration = Duration::from_millis(50);

/// The longest the writer holds back a commit for announced calls ([`Journal::coming`]). Each
/// commit costs the writer about as much as several calls (log frames for every page the batch
/// touched, locks, the wake-ups): with 32 keep-alive callers on two cores the writer otherwise
/// commits after every third call.
pub const COMMIT_DELAY: Duration = Duration::from_micros(500);

/// What travels from the handles to the writer thread.
enum Message {
    /// Store this entry, then answer with its id.
    Append {
        /// Boxed so that a queue slot stays small whatever the record's size.
        entry: Box<Entry>,
        /// The call's cold part, compressed by the caller (see [`Journal::record_call`]).
        compressed: Option<Compressed>,
        reply: oneshot::Sender<Answer>,
    },
    /// Accept nothing more, write what is queued, stop, then answer.
    Close { reply: oneshot::Sender<()> },
    /// Try a small write and answer whether the store can commit.
    Probe { reply: oneshot::Sender<bool> },
}

/// The writer's answer to one entry: its id or why not, and the entry itself (in the box it
/// came in) and its compressed form once written, so that the caller's thread, which allocated
/// them, frees them, rather than the writer.
struct Answer {
    result: Result<i64, JournalError>,
    entry: Option<Box<Entry>>,
    compressed: Option<Compressed>,
}

type Reply = oneshot::Sender<Answer>;

/// A caller waiting for its entry: where to answer, and the box its entry came in (holding a
/// placeholder while the entry is in the batch).
struct Waiter {
    reply: Reply,
    home: Box<Entry>,
}

impl Waiter {
    /// Takes the entry out of its box, keeping the box to answer in.
    fn new(reply: Reply, mut home: Box<Entry>) -> (Waiter, Entry) {
        let entry = std::mem::replace(&mut *home, Entry::Reset);
        (Waiter { reply, home }, entry)
    }

    fn answer(
        self,
        result: Result<i64, JournalError>,
        entry: Entry,
        compressed: Option<Compressed>,
    ) {
        let Waiter { reply, mut home } = self;
        *home = entry;
        // A caller that stopped waiting still had its entry written.
        let _ = reply.send(Answer {
            result,
            entry: Some(home),
            compressed,
        });
    }
}

/// State the handles share with the writer thread.
#[derive(Debug, Default)]
struct Shared {
    /// Transactions committed by the writer: fewer than entries when group commit works.
    batches: AtomicU64,
    /// Set when the writer has written everything and stopped on request or when every handle
    /// was dropped, so a second `close` is not an error.
    stopped: AtomicBool,
    /// Cleared when a batch failed because the store cannot commit (disk full, read-only);
    /// set again by the next successful write.
    unavailable: AtomicBool,
    /// Batches that failed as a whole.
    failed_batches: AtomicU64,
    /// Pruning, indexed like [`PruneReason::ALL`]: steps taken, calls removed.
    prune_steps: [AtomicU64; 3],
    pruned_calls: [AtomicU64; 3],
    pruned_rejections: AtomicU64,
    /// Calls announced ([`Journal::coming`]) and not yet queued.
    coming: AtomicUsize,
    /// The writer thread, woken when the last announced call is queued.
    writer: OnceLock<Thread>,
}

/// A call on its way to the journal (see [`Journal::coming`]); dropping it, or handing it to
/// [`Journal::record_coming_call`], withdraws the announcement.
#[derive(Debug)]
#[must_use = "an announcement is withdrawn when dropped"]
pub struct Coming {
    shared: Arc<Shared>,
}

impl Drop for Coming {
    fn drop(&mut self) {
        if self.shared.coming.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last announced call is queued (or gone): a writer waiting for it may commit.
            // Unparking a thread that is not parked costs an atomic swap.
            if let Some(writer) = self.shared.writer.get() {
                writer.unpark();
            }
        }
    }
}

/// The writer's counters, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalStats {
    pub queue_depth: usize,
    pub batches: u64,
    pub failed_batches: u64,
    /// Whether the last write succeeded (see [`Journal::is_available`]).
    pub available: bool,
    /// Per reason: (reason, pruning steps, calls removed).
    pub pruned: Vec<(PruneReason, u64, u64)>,
    pub pruned_rejections: u64,
}

/// The handle the server journals through: cheap to clone, all clones feed one writer thread.
///
/// When the last clone is dropped without [`Journal::close`], the writer still writes what is
/// queued and stops; `close` is the way to wait for that.
#[derive(Debug, Clone)]
pub struct Journal {
    /// Bounded queue to the writer; a full queue makes `record_*` wait.
    sender: mpsc::Sender<Message>,
    /// Counters and the writer's state.
    shared: Arc<Shared>,
    /// The store's committed dictionaries, when it takes calls compressed by their callers: the
    /// work is then spread over the callers' threads (where the call's bytes are still in the
    /// cache) instead of all on the one writer thread.
    compressor: Option<Arc<Compressor>>,
}

impl Journal {
    /// Spawns the writer thread, which owns `store` until the journal is closed or every handle
    /// is dropped.
    pub fn start(store: impl JournalStore) -> Result<Journal, JournalError> {
        Journal::start_with(store, Retention::default())
    }

    /// [`Journal::start`], keeping the store within `retention`.
    pub fn start_with(
        store: impl JournalStore,
        retention: Retention,
    ) -> Result<Journal, JournalError> {
        Journal::spawn(store, retention, COMMIT_DELAY)
    }

    /// [`Journal::start_with`], holding a commit back for announced calls at most `commit_delay`.
    fn spawn(
        store: impl JournalStore,
        retention: Retention,
        commit_delay: Duration,
    ) -> Result<Journal, JournalError> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared::default());
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("journal-writer".to_owned())
            .spawn(move || run_writer(store, retention, commit_delay, receiver, &writer_shared))
            .map_err(JournalError::SpawnWriter)?;
        // Set once, before any handle exists.
        let _ = shared.writer.set(writer.thread().clone());
        Ok(Journal {
            sender,
            shared,
            compressor: None,
        })
    }

    /// Opens (or creates) the SQLite journal at `path` with the default [`Retention`] and
    /// starts its writer.
    pub fn open_sqlite(path: &Path) -> Result<Journal, JournalError> {
        Journal::open_sqlite_with(path, Retention::default())
    }

    /// Opens (or creates) the SQLite journal at `path`, kept within `retention`; its log is
    /// checkpointed by a thread of its own, so that no commit waits for a checkpoint's `fsync`.
    pub fn open_sqlite_with(path: &Path, retention: Retention) -> Result<Journal, JournalError> {
        let mut store = SqliteStore::open(path)?;
        store.checkpoint_in_background()?;
        let compressor = store.compressor();
        let mut journal = Journal::start_with(store, retention)?;
        journal.compressor = Some(compressor);
        Ok(journal)
    }

    /// Journals a call; resolves with its id once it is committed. Its cold part is packed and
    /// compressed here, on the caller's thread, when the store's dictionary for its operation
    /// is known.
    pub async fn record_call(&self, call: CallRecord) -> Result<i64, JournalError> {
        self.record_coming_call(call, None).await
    }

    /// Announces a call this handle is about to record: until the returned guard is dropped or
    /// handed to [`Journal::record_coming_call`], a writer with other calls to commit waits for
    /// it (at most [`COMMIT_DELAY`]), so that both share one transaction. Announce only work
    /// that takes no waiting on anything but the CPU (a request read whole, being decided).
    pub fn coming(&self) -> Coming {
        self.shared.coming.fetch_add(1, Ordering::AcqRel);
        Coming {
            shared: Arc::clone(&self.shared),
        }
    }

    /// [`Journal::record_call`] for a call announced by `coming`; the announcement ends as soon
    /// as the call is queued.
    pub async fn record_coming_call(
        &self,
        call: CallRecord,
        coming: impl Into<Option<Coming>>,
    ) -> Result<i64, JournalError> {
        let compressed = self
            .compressor
            .as_ref()
            .and_then(|compressor| compressor.compress(&call));
        self.send(Entry::Call(call), compressed, coming.into())
            .await
    }

    /// Journals a scenario reload; resolves with its id once it is committed.
    pub async fn record_reload(&self, reload: ReloadRecord) -> Result<i64, JournalError> {
        self.record(Entry::Reload(reload)).await
    }

    /// Journals a refused handshake; resolves with its id once it is committed.
    pub async fn record_rejection(&self, rejection: RejectionRecord) -> Result<i64, JournalError> {
        self.record(Entry::Rejection(rejection)).await
    }

    /// Records that a receipt was confirmed; resolves with the id of the call that sent it, or
    /// [`JournalError::UnknownReceipt`]. Confirming again keeps the first confirmation.
    pub async fn confirm_receipt(
        &self,
        confirmation: ConfirmationRecord,
    ) -> Result<i64, JournalError> {
        self.record(Entry::Confirmation(confirmation)).await
    }

    /// Deletes every entry of the journal (after what is queued before it is written).
    pub async fn reset(&self) -> Result<(), JournalError> {
        self.record(Entry::Reset).await.map(|_| ())
    }

    /// Whether the writer still accepts entries.
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed() && !self.shared.stopped.load(Ordering::Acquire)
    }

    /// Whether the store could commit the last time it was asked to (false after a write failed
    /// for want of space or permission, until one succeeds).
    pub fn is_available(&self) -> bool {
        !self.shared.unavailable.load(Ordering::Acquire)
    }

    /// Has the writer try a small write (when the journal is unavailable: to notice that space
    /// came back) and resolves with whether the store can commit.
    pub async fn probe(&self) -> bool {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Message::Probe { reply }).await.is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// The writer's counters.
    pub fn stats(&self) -> JournalStats {
        let shared = &self.shared;
        JournalStats {
            queue_depth: self.queue_depth(),
            batches: shared.batches.load(Ordering::Relaxed),
            failed_batches: shared.failed_batches.load(Ordering::Relaxed),
            available: self.is_available(),
            pruned: PruneReason::ALL
                .iter()
                .zip(&shared.prune_steps)
                .zip(&shared.pruned_calls)
                .map(|((reason, steps), calls)| {
                    (
                        *reason,
                        steps.load(Ordering::Relaxed),
                        calls.load(Ordering::Relaxed),
                    )
                })
                .collect(),
            pruned_rejections: shared.pruned_rejections.load(Ordering::Relaxed),
        }
    }

    async fn record(&self, entry: Entry) -> Result<i64, JournalError> {
        self.send(entry, None, None).await
    }

    async fn send(
        &self,
        entry: Entry,
        compressed: Option<Compressed>,
        coming: Option<Coming>,
    ) -> Result<i64, JournalError> {
        let (reply, answer) = oneshot::channel();
        let queued = self
            .sender
            .send(Message::Append {
                entry: Box::new(entry),
                compressed,
                reply,
            })
            .await;
        // Queued (or refused): the writer need not wait for this call any longer.
        drop(coming);
        queued.map_err(|_| JournalError::Closed)?;
        let answer = answer.await.map_err(|_| JournalError::WriterStopped)?;
        drop(answer.entry);
        drop(answer.compressed);
        answer.result
    }

    /// Entries (and close requests) queued for the writer and not yet taken by it.
    pub fn queue_depth(&self) -> usize {
        self.sender.max_capacity() - self.sender.capacity()
    }

    /// Transactions the writer has committed so far.
    pub fn batches_written(&self) -> u64 {
        self.shared.batches.load(Ordering::Relaxed)
    }

    /// Refuses new entries, writes everything already queued (by any clone), stops the writer and
    /// releases the store. Entries recorded through other clones afterwards fail with
    /// [`JournalError::Closed`].
    pub async fn close(self) -> Result<(), JournalError> {
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Message::Close { reply }).await.is_err() {
            return if self.shared.stopped.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err(JournalError::WriterStopped)
            };
        }
        answer.await.map_err(|_| JournalError::WriterStopped)
    }
}

/// The writer thread: group commit until closed or every handle is gone, pruning in between.
fn run_writer<S: JournalStore>(
    mut store: S,
    retention: Retention,
    commit_delay: Duration,
    mut receiver: mpsc::Receiver<Message>,
    shared: &Shared,
) {
    let bounded = retention != Retention::UNBOUNDED;
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut entries = Vec::with_capacity(MAX_BATCH);
    let mut compressed = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    let mut closers = Vec::new();
    // Calls written since the limits were last checked (a journal opened may be over them).
    let mut unchecked = usize::from(bounded);
    // The last step removed as much as it could at once: another one is due at the next
    // free turn.
    let mut pruning = false;
    // Waits for the next message at most PRUNE_IDLE while a check is owed. Without it (a
    // runtime could not be made), the limits are checked after every batch.
    let idle = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .inspect_err(|error| tracing::warn!(%error, "journal writer: no idle timer; checking retention after every batch"))
        .ok();
    loop {
        let owed = bounded && unchecked > 0;
        if bounded && (pruning || (owed && (unchecked >= PRUNE_CHECK_CALLS || idle.is_none()))) {
            // A check or a step is due: take what is queued without waiting, else make it.
            while messages.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(message) => messages.push(message),
                    Err(_) => break,
                }
            }
            if messages.is_empty() || unchecked >= PRUNE_FORCE_CALLS {
                pruning = prune_step(&mut store, &retention, unchecked, shared);
                unchecked = 0;
                if messages.is_empty() {
                    continue;
                }
            }
        } else if let (true, Some(idle)) = (owed, &idle) {
            // The timer is made inside `block_on`: only there is `idle` the current runtime.
            let next = async {
                tokio::time::timeout(PRUNE_IDLE, receiver.recv_many(&mut messages, MAX_BATCH)).await
            };
            match idle.block_on(next) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_idle) => {
                    pruning = prune_step(&mut store, &retention, unchecked, shared);
                    unchecked = 0;
                    continue;
                }
            }
        } else if receiver.blocking_recv_many(&mut messages, MAX_BATCH) == 0 {
            // After `close`, the receiver still yields what was queued before, then 0.
            break;
        }
        wait_for_coming(&mut receiver, &mut messages, commit_delay, shared);
        for message in messages.drain(..) {
            match message {
                Message::Append {
                    entry,
                    compressed: blob,
                    reply,
                } => {
                    let (waiter, entry) = Waiter::new(reply, entry);
                    entries.push(entry);
                    compressed.push(blob);
                    replies.push(waiter);
                }
                Message::Close { reply } => {
                    receiver.close();
                    closers.push(reply);
                }
                Message::Probe { reply } => {
                    let available = match store.probe() {
                        Ok(()) => true,
                        Err(error) => {
                            tracing::debug!(%error, "journal probe failed");
                            false
                        }
                    };
                    set_available(shared, available);
                    let _ = reply.send(available);
                }
            }
        }
        if !entries.is_empty() {
            let calls = entries
                .iter()
                .filter(|entry| matches!(entry, Entry::Call(_)))
                .count();
            write_batch(
                &mut store,
                &mut entries,
                &mut compressed,
                &mut replies,
                shared,
            );
            if bounded {
                unchecked = unchecked.saturating_add(calls);
            }
        }
        if receiver.is_closed() && receiver.is_empty() {
            // Closing: write what is queued and stop, no pruning in between.
            pruning = false;
            unchecked = 0;
        }
    }
    drop(store);
    shared.stopped.store(true, Ordering::Release);
    for closer in closers {
        // The closer may have given up waiting; nothing to tell it then.
        let _ = closer.send(());
    }
}

/// Group commit's short wait: while calls are announced ([`Journal::coming`]) and not yet
/// queued, takes what arrives into `messages`, until none is announced, the batch is full or
/// `delay` ([`COMMIT_DELAY`]) has passed.
fn wait_for_coming(
    receiver: &mut mpsc::Receiver<Message>,
    messages: &mut Vec<Message>,
    delay: Duration,
    shared: &Shared,
) {
    let mut deadline = None;
    loop {
        while messages.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(message) => messages.push(message),
                Err(_) => break,
            }
        }
        if messages.len() >= MAX_BATCH || shared.coming.load(Ordering::Acquire) == 0 {
            return;
        }
        let now = Instant::now();
        let deadline = *deadline.get_or_insert(now + delay);
        if now >= deadline {
            return;
        }
        // Woken early by the last announced call's `Coming::drop`; a stale wake-up from an
        // earlier one only costs another turn of this loop.
        std::thread::park_timeout(deadline - now);
    }
}

/// One check of the limits and, if over, one pruning step, after `written` calls since the last
/// check (removing at least twice as many keeps up with them); returns whether another is due:
/// whether the step removed as many as it may, so more may be left beyond the limits. A step
/// that got the journal within them leaves the next check to the calls written after it (one
/// small step after every batch had cost a transaction each on a full journal).
fn prune_step<S: JournalStore>(
    store: &mut S,
    retention: &Retention,
    written: usize,
    shared: &Shared,
) -> bool {
    let limit = PRUNE_STEP.max(written.saturating_mul(2));
    match store.prune(retention, limit) {
        Ok(Pruned {
            calls,
            rejections,
            reason: Some(reason),
        }) if calls > 0 || rejections > 0 => {
            let index = PruneReason::ALL
                .iter()
                .position(|r| *r == reason)
                .unwrap_or(0);
            shared.prune_steps[index].fetch_add(1, Ordering::Relaxed);
            shared.pruned_calls[index].fetch_add(calls, Ordering::Relaxed);
            shared
                .pruned_rejections
                .fetch_add(rejections, Ordering::Relaxed);
            tracing::info!(
                reason = reason.as_str(),
                calls,
                rejections,
                "journal pruned: oldest entries removed to stay within its retention"
            );
            calls >= limit as u64 || rejections >= limit as u64
        }
        Ok(Pruned {
            reason: Some(reason),
            ..
        }) => {
            tracing::warn!(
                reason = reason.as_str(),
                "journal is over its retention limit, but every remaining call is onboarding evidence"
            );
            false
        }
        Ok(_) => false,
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "journal pruning failed; retrying after the next batch");
            false
        }
    }
}

fn set_available(shared: &Shared, available: bool) {
    let was_unavailable = shared.unavailable.swap(!available, Ordering::AcqRel);
    if available && was_unavailable {
        tracing::info!("journal writes succeed again: calls are answered normally");
    }
}

/// Writes `entries` (with their callers' `compressed` cold parts) in one transaction and
/// answers each reply (handing the entry back), leaving `entries` and `compressed` empty. If the batch fails, the entries are retried one by one so that one bad entry
/// fails only its own caller; when the store cannot commit at all (disk full, read-only) every
/// entry fails at once.
fn write_batch<S: JournalStore>(
    store: &mut S,
    entries: &mut Vec<Entry>,
    compressed: &mut Vec<Option<Compressed>>,
    replies: &mut Vec<Waiter>,
    shared: &Shared,
) {
    let result = store.append_compressed(entries, compressed);
    // Handed back with the answers where there is one for each entry.
    let mut compressed = std::mem::take(compressed);
    compressed.resize_with(entries.len(), || None);
    let result = result.and_then(|ids| {
        if ids.len() == entries.len() {
            Ok(ids)
        } else {
            Err(JournalError::IdCount {
                expected: entries.len(),
                returned: ids.len(),
            })
        }
    });
    match result {
        Ok(ids) => {
            shared.batches.fetch_add(1, Ordering::Relaxed);
            set_available(shared, true);
            for (((waiter, id), entry), blob) in replies
                .drain(..)
                .zip(ids)
                .zip(entries.drain(..))
                .zip(compressed.drain(..))
            {
                waiter.answer(Ok(id), entry, blob);
            }
        }
        Err(error) if error.storage_fault().is_some_and(|f| f.is_unavailable()) => {
            shared.failed_batches.fetch_add(1, Ordering::Relaxed);
            if !shared.unavailable.swap(true, Ordering::AcqRel) {
                tracing::error!(
                    error = %error_chain(&error),
                    entries = entries.len(),
                    "journal cannot commit: calls are answered with fault 1011 until it can again"
                );
            }
            let fault = error.storage_fault().unwrap_or(super::StorageFault::Other);
            let message = error_chain(&error);
            for ((waiter, entry), blob) in replies
                .drain(..)
                .zip(entries.drain(..))
                .zip(compressed.drain(..))
            {
                let error = StorageError::from_parts(fault, message.clone());
                waiter.answer(Err(JournalError::Storage(error)), entry, blob);
            }
        }
        Err(error) if entries.len() > 1 => {
            shared.failed_batches.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %error_chain(&error),
                entries = entries.len(),
                "journal batch failed; retrying its entries one by one"
            );
            // Compressed again by the store itself: a rare path.
            for (entry, reply) in entries.drain(..).zip(replies.drain(..)) {
                write_batch(
                    store,
                    &mut vec![entry],
                    &mut Vec::new(),
                    &mut vec![reply],
                    shared,
                );
            }
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "journal entry not written");
            // Only a single entry gets here (see above), so `error` is its own.
            if let (Some(waiter), Some(entry)) = (replies.pop(), entries.pop()) {
                waiter.answer(Err(error), entry, compressed.pop().flatten());
            }
            replies.clear();
            entries.clear();
        }
    }
}

/// An error and its causes on one line.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use super::*;
    use crate::journal::Outcome;

    /// Bounds every wait here: a writer that waits for nothing would hang the test, not pass it.
    const WAIT: Duration = Duration::from_secs(30);

    fn call(n: u16) -> CallRecord {
        CallRecord {
            time: time::OffsetDateTime::now_utc(),
            peer: format!("127.0.0.1:{}", 40_000 + n),
            tls_version: "TLSv1.3".to_owned(),
            cipher_suite: "TLS13_AES_128_GCM_SHA256".to_owned(),
            alpn: None,
            identity: None,
            method: "POST".to_owned(),
            path: "/ServiceA".to_owned(),
            soap_version: Some("1.1".to_owned()),
            soap_action: None,
            operation: Some("Submit".to_owned()),
            operation_namespace: None,
            star_headers: None,
            request_body: b"<Envelope/>".to_vec().into(),
            request_truncated: false,
            response_body: b"<Envelope/>".to_vec().into(),
            response_truncated: false,
            http_status: 200,
            receipts: vec![uuid::Uuid::now_v7().to_string()],
            outcome: Outcome::Receipt,
            detail: None,
            latency_micros: 1,
            scenario_file: None,
            scenario_rule: None,
            service: None,
            service_operation: None,
            findings: Vec::new(),
            supplier: None,
            authorization: None,
            identity_findings: Vec::new(),
        }
    }

    /// A journal whose writer holds a commit back for announced calls up to an hour: long
    /// enough that only the end of the announcements can end the wait within [`WAIT`].
    fn patient_journal(folder: &tempfile::TempDir) -> Journal {
        let store = SqliteStore::open(&folder.path().join("journal.sqlite")).unwrap();
        Journal::spawn(store, Retention::UNBOUNDED, Duration::from_secs(3600)).unwrap()
    }

    async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
        tokio::time::timeout(WAIT, future)
            .await
            .unwrap_or_else(|_| panic!("{what}: still waiting after {WAIT:?}"))
    }

    /// Polls `recording` once: the call is then queued (the queue has room) and its answer
    /// awaited.
    fn queue<T>(recording: &mut Pin<Box<impl Future<Output = T>>>) {
        let mut context = Context::from_waker(Waker::noop());
        assert!(
            recording.as_mut().poll(&mut context).is_pending(),
            "answered at once"
        );
    }

    /// Until the writer has taken everything queued (it then waits, not having committed).
    async fn taken(journal: &Journal) {
        within("the writer takes the call", async {
            while journal.queue_depth() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
    }

    /// What [`GatedStore`] was asked to do, in order.
    #[derive(Debug, PartialEq)]
    enum Step {
        Append(usize),
        Prune,
    }

    /// A store that keeps no data: it counts calls, prunes them down to `max_calls`, records
    /// each step, and lets each append finish only when the test gives it a permit (telling the
    /// test when one has begun), so the test decides what is queued while the writer writes.
    struct GatedStore {
        calls: u64,
        steps: Arc<std::sync::Mutex<Vec<Step>>>,
        began: std::sync::mpsc::Sender<()>,
        permits: std::sync::mpsc::Receiver<()>,
    }

    impl JournalStore for GatedStore {
        fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError> {
            self.steps.lock().unwrap().push(Step::Append(entries.len()));
            let _ = self.began.send(());
            self.permits.recv_timeout(WAIT).expect("a permit to commit");
            let first = self.calls as i64;
            self.calls += entries.len() as u64;
            Ok((first..first + entries.len() as i64).collect())
        }

        fn prune(&mut self, retention: &Retention, limit: usize) -> Result<Pruned, JournalError> {
            self.steps.lock().unwrap().push(Step::Prune);
            let over = self
                .calls
                .saturating_sub(retention.max_calls.unwrap_or(u64::MAX));
            let calls = over.min(limit as u64);
            self.calls -= calls;
            Ok(Pruned {
                calls,
                rejections: 0,
                reason: (over > 0).then_some(PruneReason::MaxCalls),
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_that_never_empties_still_gets_its_pruning_steps() {
        let steps = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (began, begun) = std::sync::mpsc::channel();
        let (permit, permits) = std::sync::mpsc::channel();
        let store = GatedStore {
            calls: 0,
            steps: Arc::clone(&steps),
            began,
            permits,
        };
        let retention = Retention {
            max_calls: Some(10),
            ..Retention::UNBOUNDED
        };
        // Holds a commit back while a call is announced: the first batch is all of the first
        // wave.
        let journal = Journal::spawn(store, retention, Duration::from_secs(3600)).unwrap();
        let waiting_for_append = |begun: std::sync::mpsc::Receiver<()>| async move {
            tokio::task::spawn_blocking(move || {
                begun.recv_timeout(WAIT).expect("the writer appends");
                begun
            })
            .await
            .unwrap()
        };
        // More calls than a check waits for, in one batch; while the writer commits them, as
        // many are queued again: it never finds the queue empty. (Unconstrained: tokio's
        // budget would otherwise stop queueing after 128 sends in one poll of this task.)
        let wave = PRUNE_FORCE_CALLS + 100;
        let mut first: Vec<_> = (0..wave)
            .map(|n| {
                Box::pin(tokio::task::unconstrained(
                    journal.record_call(call(n as u16)),
                ))
            })
            .collect();
        let coming = journal.coming();
        first.iter_mut().for_each(queue);
        drop(coming);
        let begun = waiting_for_append(begun).await;
        let mut second: Vec<_> = (0..wave)
            .map(|n| {
                Box::pin(tokio::task::unconstrained(
                    journal.record_call(call(n as u16)),
                ))
            })
            .collect();
        second.iter_mut().for_each(queue);
        permit.send(()).unwrap();
        for recording in first {
            within("a call of the first batch", recording)
                .await
                .unwrap();
        }
        waiting_for_append(begun).await;
        permit.send(()).unwrap();
        for recording in second {
            within("a call of the second batch", recording)
                .await
                .unwrap();
        }
        let pruned = journal.stats().pruned;
        journal.close().await.unwrap();
        let steps = steps.lock().unwrap();
        assert_eq!(
            steps[..3],
            [Step::Append(wave), Step::Prune, Step::Append(wave)],
            "the writer wrote the second batch before pruning for the first: {steps:?}"
        );
        let (_, prune_steps, calls) = pruned
            .iter()
            .find(|(reason, _, _)| *reason == PruneReason::MaxCalls)
            .unwrap();
        assert!(*prune_steps >= 1);
        assert!(*calls >= wave as u64 - 10, "pruned only {calls} calls");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_announced_while_another_waits_shares_its_commit() {
        let folder = tempfile::tempdir().unwrap();
        let journal = patient_journal(&folder);
        let coming = journal.coming();
        let mut first = Box::pin(journal.record_call(call(1)));
        queue(&mut first);
        taken(&journal).await;
        assert_eq!(journal.batches_written(), 0, "committed without waiting");
        let second = within(
            "the announced call",
            journal.record_coming_call(call(2), coming),
        )
        .await
        .unwrap();
        let first = within("the waiting call", first).await.unwrap();
        assert_eq!(second, first + 1);
        assert_eq!(
            journal.batches_written(),
            1,
            "the two calls took two commits"
        );
        journal.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_call_or_a_withdrawn_announcement_is_never_waited_for() {
        let folder = tempfile::tempdir().unwrap();
        let journal = patient_journal(&folder);
        // Nothing announced: committed at once.
        within("a lone call", journal.record_call(call(1)))
            .await
            .unwrap();
        assert_eq!(journal.batches_written(), 1);
        // An announced call that never comes (its request failed): the wait ends when its
        // announcement is dropped.
        let coming = journal.coming();
        let mut waiting = Box::pin(journal.record_call(call(2)));
        queue(&mut waiting);
        taken(&journal).await;
        assert_eq!(journal.batches_written(), 1, "committed without waiting");
        drop(coming);
        within("the call after the withdrawn announcement", waiting)
            .await
            .unwrap();
        assert_eq!(journal.batches_written(), 2);
        journal.close().await.unwrap();
    }
}

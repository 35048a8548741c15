//! The group-commit writer: one thread, one store, a bounded queue.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::records::*;
use super::sqlite::SqliteStore;
use super::store::JournalStore;
use super::{JournalError, MAX_BATCH, QUEUE_CAPACITY};

/// What travels from the handles to the writer thread.
enum Message {
    /// Store this entry, then answer with its id.
    Append {
        /// Boxed so that a queue slot stays small whatever the record's size.
        entry: Box<Entry>,
        reply: oneshot::Sender<Result<i64, JournalError>>,
    },
    /// Accept nothing more, write what is queued, stop, then answer.
    Close { reply: oneshot::Sender<()> },
}

/// State the handles share with the writer thread.
#[derive(Debug, Default)]
struct Shared {
    /// Transactions committed by the writer: fewer than entries when group commit works.
    batches: AtomicU64,
    /// Set when the writer has written everything and stopped on request or when every handle
    /// was dropped, so a second `close` is not an error.
    stopped: AtomicBool,
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
}

impl Journal {
    /// Spawns the writer thread, which owns `store` until the journal is closed or every handle
    /// is dropped.
    pub fn start(store: impl JournalStore) -> Result<Journal, JournalError> {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared::default());
        let writer_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("journal-writer".to_owned())
            .spawn(move || run_writer(store, receiver, &writer_shared))
            .map_err(JournalError::SpawnWriter)?;
        Ok(Journal { sender, shared })
    }

    /// Opens (or creates) the SQLite journal at `path` and starts its writer.
    pub fn open_sqlite(path: &Path) -> Result<Journal, JournalError> {
        Journal::start(SqliteStore::open(path)?)
    }

    /// Journals a call; resolves with its id once it is committed.
    pub async fn record_call(&self, call: CallRecord) -> Result<i64, JournalError> {
        self.record(Entry::Call(call)).await
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

    async fn record(&self, entry: Entry) -> Result<i64, JournalError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Append {
                entry: Box::new(entry),
                reply,
            })
            .await
            .map_err(|_| JournalError::Closed)?;
        answer.await.map_err(|_| JournalError::WriterStopped)?
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

/// The writer thread: group commit until closed or every handle is gone.
fn run_writer<S: JournalStore>(
    mut store: S,
    mut receiver: mpsc::Receiver<Message>,
    shared: &Shared,
) {
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut entries = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    let mut closers = Vec::new();
    // After `close`, the receiver still yields what was queued before, then 0.
    while receiver.blocking_recv_many(&mut messages, MAX_BATCH) > 0 {
        for message in messages.drain(..) {
            match message {
                Message::Append { entry, reply } => {
                    entries.push(*entry);
                    replies.push(reply);
                }
                Message::Close { reply } => {
                    receiver.close();
                    closers.push(reply);
                }
            }
        }
        if !entries.is_empty() {
            write_batch(&mut store, &entries, &mut replies, shared);
            entries.clear();
        }
    }
    drop(store);
    shared.stopped.store(true, Ordering::Release);
    for closer in closers {
        // The closer may have given up waiting; nothing to tell it then.
        let _ = closer.send(());
    }
}

/// Writes `entries` in one transaction and answers each reply. If the batch fails, the entries
/// are retried one by one so that one bad entry fails only its own caller.
fn write_batch<S: JournalStore>(
    store: &mut S,
    entries: &[Entry],
    replies: &mut Vec<oneshot::Sender<Result<i64, JournalError>>>,
    shared: &Shared,
) {
    let result = store.append(entries).and_then(|ids| {
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
            for (reply, id) in replies.drain(..).zip(ids) {
                // A caller that stopped waiting still had its entry written.
                let _ = reply.send(Ok(id));
            }
        }
        Err(error) if entries.len() > 1 => {
            tracing::warn!(
                error = %error,
                entries = entries.len(),
                "journal batch failed; retrying its entries one by one"
            );
            for (entry, reply) in entries.iter().zip(replies.drain(..)) {
                let mut single = vec![reply];
                write_batch(store, std::slice::from_ref(entry), &mut single, shared);
            }
        }
        Err(error) => {
            tracing::error!(error = %error, "journal entry not written");
            // Only a single entry gets here (see above), so `error` is its own.
            if let Some(reply) = replies.pop() {
                let _ = reply.send(Err(error));
            }
            replies.clear();
        }
    }
}

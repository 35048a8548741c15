//! Reading connections for a server answering queries, whichever store holds the journal: a
//! small pool of read-only SQLite connections, or pooled PostgreSQL connections. Each
//! connection keeps its caches and prepared statements between requests, and at most
//! [`MAX_READERS`] are in use at once (a burst of requests waits for one), so the memory the
//! reads take stays bounded whatever the number of requests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::postgres::{PostgresReader, ReaderPool};
use super::records::{
    CallQuery, CallerSummary, CertificateSummary, RejectionQuery, StoredCall, StoredConfirmation,
    StoredRejection, StoredReload,
};
use super::{JournalError, JournalReader, SqliteStore};

/// Reading connections in use at most.
pub const MAX_READERS: usize = 2;

/// One reading connection, of either store.
#[derive(Debug)]
pub enum Reader {
    Sqlite(SqliteStore),
    Postgres(PostgresReader),
}

impl JournalReader for Reader {
    fn calls(&self, query: &CallQuery) -> Result<Vec<StoredCall>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.calls(query),
            Reader::Postgres(store) => store.calls(query),
        }
    }

    fn count_calls(&self, query: &CallQuery) -> Result<u64, JournalError> {
        match self {
            Reader::Sqlite(store) => store.count_calls(query),
            Reader::Postgres(store) => store.count_calls(query),
        }
    }

    fn count_each(&self, queries: &[CallQuery]) -> Result<Vec<u64>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.count_each(queries),
            Reader::Postgres(store) => store.count_each(queries),
        }
    }

    fn call(&self, id: i64) -> Result<Option<StoredCall>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.call(id),
            Reader::Postgres(store) => store.call(id),
        }
    }

    fn calls_by_id(&self, ids: &[i64]) -> Result<Vec<StoredCall>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.calls_by_id(ids),
            Reader::Postgres(store) => store.calls_by_id(ids),
        }
    }

    fn call_by_receipt(&self, guid: &str) -> Result<Option<StoredCall>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.call_by_receipt(guid),
            Reader::Postgres(store) => store.call_by_receipt(guid),
        }
    }

    fn rejections(&self, query: &RejectionQuery) -> Result<Vec<StoredRejection>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.rejections(query),
            Reader::Postgres(store) => store.rejections(query),
        }
    }

    fn confirmation(&self, guid: &str) -> Result<Option<StoredConfirmation>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.confirmation(guid),
            Reader::Postgres(store) => store.confirmation(guid),
        }
    }

    fn confirmations(&self, limit: usize) -> Result<Vec<StoredConfirmation>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.confirmations(limit),
            Reader::Postgres(store) => store.confirmations(limit),
        }
    }

    fn callers(&self, limit: usize) -> Result<Vec<CallerSummary>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.callers(limit),
            Reader::Postgres(store) => store.callers(limit),
        }
    }

    fn certificates(&self) -> Result<Vec<CertificateSummary>, JournalError> {
        match self {
            Reader::Sqlite(store) => store.certificates(),
            Reader::Postgres(store) => store.certificates(),
        }
    }

    fn reloads(&self, limit: usize) -> Result<Vec<StoredReload>, JournalError> {
        match self {
            Reader::Sqlite(store) => JournalReader::reloads(store, limit),
            Reader::Postgres(store) => store.reloads(limit),
        }
    }
}

#[derive(Debug, Clone)]
enum Source {
    /// The journal file and its idle read-only connections.
    Sqlite {
        path: PathBuf,
        idle: Arc<Mutex<Vec<SqliteStore>>>,
    },
    Postgres(ReaderPool),
}

/// The pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Readers {
    source: Source,
    permits: Arc<Semaphore>,
}

impl Readers {
    /// A pool for the SQLite journal at `path`; connections open when first needed (and again
    /// after a failed read, e.g. when the file was replaced).
    pub fn new(path: &std::path::Path) -> Readers {
        Readers::of(Source::Sqlite {
            path: path.to_owned(),
            idle: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub(super) fn postgres(pool: ReaderPool) -> Readers {
        Readers::of(Source::Postgres(pool))
    }

    fn of(source: Source) -> Readers {
        Readers {
            source,
            permits: Arc::new(Semaphore::new(MAX_READERS)),
        }
    }

    /// A connection of its own, outside the pool's permits, for long work that must not hold
    /// one of them (an export streaming to a slow client). Blocking.
    pub fn open_one(&self) -> Result<Reader, JournalError> {
        match &self.source {
            Source::Sqlite { path, .. } => SqliteStore::open_read_only(path).map(Reader::Sqlite),
            Source::Postgres(pool) => pool.reader().map(Reader::Postgres),
        }
    }

    /// Runs `work` on a blocking thread with one of the pool's connections.
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Reader) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| JournalError::Closed)?;
        let source = self.source.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match source {
                Source::Sqlite { path, idle } => {
                    let reused = idle.lock().ok().and_then(|mut idle| idle.pop());
                    let reader = Reader::Sqlite(match reused {
                        Some(store) => store,
                        None => SqliteStore::open_read_only(&path)?,
                    });
                    let result = work(&reader);
                    if let (Ok(_), Reader::Sqlite(store)) = (&result, reader) {
                        store.release_memory();
                        if let Ok(mut idle) = idle.lock() {
                            idle.push(store);
                        }
                    }
                    // A large answer's freed blocks stay in this blocking thread's arena
                    // otherwise: every thread that ever served a read would keep its largest.
                    crate::memory::release_freed();
                    result
                }
                // The connection goes back to the pool when the reader is dropped.
                Source::Postgres(pool) => work(&Reader::Postgres(pool.reader()?)),
            }
        })
        .await;
        joined.map_err(|_| JournalError::WriterStopped)?
    }
}

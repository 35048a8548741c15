//! A small pool of read-only connections to the SQLite journal, for a server answering queries:
//! each connection keeps its page cache and prepared statements between requests, and there are
//! never more than [`MAX_READERS`] (a burst of requests waits for one), so the memory the reads
//! take stays bounded whatever the number of requests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::{JournalError, SqliteStore};

/// Read-only connections kept at most.
pub const MAX_READERS: usize = 2;

/// The pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Readers {
    path: PathBuf,
    idle: Arc<Mutex<Vec<SqliteStore>>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    /// A pool for the journal at `path`; connections open when first needed (and again after a
    /// failed read, e.g. when the file was replaced).
    pub fn new(path: &Path) -> Readers {
        Readers {
            path: path.to_owned(),
            idle: Arc::new(Mutex::new(Vec::new())),
            permits: Arc::new(Semaphore::new(MAX_READERS)),
        }
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a blocking thread with one of the pool's connections.
    pub async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SqliteStore) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| JournalError::Closed)?;
        let (path, idle) = (self.path.clone(), Arc::clone(&self.idle));
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let reused = idle.lock().ok().and_then(|mut idle| idle.pop());
            let store = match reused {
                Some(store) => store,
                None => SqliteStore::open_read_only(&path)?,
            };
            let result = work(&store);
            if result.is_ok() {
                if let Ok(mut idle) = idle.lock() {
                    idle.push(store);
                }
            }
            result
        })
        .await;
        joined.map_err(|_| JournalError::WriterStopped)?
    }
}

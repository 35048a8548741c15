//! The durable journal: every SOAP call and every refused TLS handshake, and the queries over them.
//! It stores and reads; what the data means (onboarding steps, who may confirm a receipt, which
//! service a path belongs to, why a handshake was refused) is decided elsewhere.
//!
//! - [`records`]: what is journaled ([`CallRecord`], [`RejectionRecord`], [`ConfirmationRecord`],
//!   [`ReloadRecord`]) and what a query asks and returns ([`CallQuery`], [`StoredCall`], …);
//! - [`store`]: the storage interface ([`JournalStore`] for the writer, [`JournalReader`] for
//!   queries), with nothing in its types that belongs to one database;
//! - [`writer`]: the group-commit writer ([`Journal`]): one OS thread owns the write connection,
//!   takes whatever is queued (up to [`MAX_BATCH`] entries), writes it in one transaction and only
//!   then answers each caller, so a response is never sent before its call is committed and the
//!   hot path never waits on the disk once per call; the admin side's writes (receipt
//!   confirmations, reset) take the same queue;
//! - [`schema`]: the versioned SQLite schema ([`SCHEMA_VERSION`]) and the migration of older
//!   journals;
//! - `codec`: how the cold part of a call (bodies, headers, findings) is packed and compressed;
//! - [`sqlite`]: the embedded store ([`SqliteStore`]) and its queries in SQL;
//! - [`readers`]: a small pool of read-only connections for a server's queries.
//!
//! Times are stored as integer microseconds since the Unix epoch (UTC), so numeric order is time
//! order; sub-microsecond precision is dropped.

mod codec;
pub mod readers;
pub mod records;
pub mod schema;
pub mod sqlite;
pub mod store;
pub mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use crate::tls::RejectionReason;
pub use crate::wsdl::service_of;
pub use crate::wsdl::validate::Finding;
pub use readers::Readers;
pub use records::{
    CallQuery, CallRecord, CallerSummary, CertificateSummary, ConfirmationRecord, Criterion, Entry,
    IdentityFields, Outcome, RejectionQuery, RejectionRecord, ReloadRecord, StoredCall,
    StoredConfirmation, StoredRejection, StoredReload,
};
pub use schema::SCHEMA_VERSION;
pub use sqlite::SqliteStore;
pub use store::{each_call, JournalReader, JournalStore, PruneReason, Pruned, Retention};
pub use writer::{Journal, JournalStats};

/// How many entries may wait for the writer; `record_*` wait for space beyond this, so memory
/// stays bounded when the disk is slower than the callers.
pub const QUEUE_CAPACITY: usize = 8192;

/// The most entries the writer puts in one transaction: the whole queue, so that a burst costs
/// one commit.
pub const MAX_BATCH: usize = QUEUE_CAPACITY;

/// Rows a query returns when [`CallQuery::limit`] or [`RejectionQuery::limit`] is 0.
pub const DEFAULT_LIMIT: usize = 50;

/// The most rows one query returns, whatever limit is asked for.
pub const MAX_LIMIT: usize = 10_000;

/// What went wrong in the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create the journal folder {path}")]
    CreateFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no journal at {path}: start `dfdg-mock serve` first")]
    Missing { path: PathBuf },
    #[error("cannot open the journal {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: StorageError,
    },
    #[error(
        "the journal {path} has schema version {found}, newer than this dfdg-mock understands \
         ({supported}): use a newer dfdg-mock or another journal file"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "the journal {path} has schema version {found}, older than this dfdg-mock's \
         ({supported}): run `dfdg-mock serve` once to upgrade it"
    )]
    Outdated {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("cannot migrate the journal {path} to schema version {version}")]
    Migration {
        path: PathBuf,
        version: i64,
        #[source]
        source: Box<JournalError>,
    },
    #[error("journal storage failure")]
    Storage(#[from] StorageError),
    #[error("cannot encode the {what} of a journal entry as JSON")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("journal row {table} {id} has an unreadable {column}: {reason}")]
    Corrupt {
        table: &'static str,
        id: i64,
        column: &'static str,
        reason: String,
    },
    #[error("invalid {filter} filter {value:?}: expected {expected}")]
    InvalidFilter {
        filter: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("the journal store returned {returned} ids for {expected} entries")]
    IdCount { expected: usize, returned: usize },
    #[error("cannot start the journal writer thread")]
    SpawnWriter(#[source] std::io::Error),
    #[error("no call in the journal sent a receipt with MessageIdentifier {guid}")]
    UnknownReceipt { guid: String },
    #[error("the journal is closed and accepts no more entries")]
    Closed,
    #[error("the journal writer stopped before answering")]
    WriterStopped,
}

impl JournalError {
    /// What kind of storage failure this is, if it is one (also inside a failed migration).
    pub fn storage_fault(&self) -> Option<StorageFault> {
        match self {
            JournalError::Storage(error) | JournalError::Open { source: error, .. } => {
                Some(error.fault)
            }
            JournalError::Migration { source, .. } => source.storage_fault(),
            _ => None,
        }
    }
}

/// A failure of the database underneath, whichever it is.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub fault: StorageFault,
    /// The database's own words.
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StorageError {
    /// A failure known only by its kind and words (e.g. one batch's error, told to each caller).
    pub fn from_parts(fault: StorageFault, message: String) -> StorageError {
        StorageError {
            fault,
            message,
            source: None,
        }
    }

    pub fn new(
        fault: StorageFault,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StorageError {
        StorageError {
            fault,
            message: source.to_string(),
            source: Some(Box::new(source)),
        }
    }
}

/// The kinds of storage failure that callers treat differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// No space left (the disk, or a size limit of the database).
    Full,
    /// The journal cannot be written (read-only file or file system, permissions).
    ReadOnly,
    /// The operating system failed a read or write.
    Io,
    /// Another connection holds the lock for too long.
    Busy,
    /// Anything else: a bug, a corrupt file, a constraint.
    Other,
}

impl StorageFault {
    /// Whether the journal as a whole cannot commit right now (as opposed to one bad entry).
    pub fn is_unavailable(self) -> bool {
        matches!(
            self,
            StorageFault::Full | StorageFault::ReadOnly | StorageFault::Io | StorageFault::Busy
        )
    }
}

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
//!   hot path never waits on the disk once per call (calls announced by [`Journal::coming`] are
//!   waited for a moment, so that concurrent callers share a commit); the admin side's writes (receipt
//!   confirmations, reset) take the same queue;
//! - [`schema`]: the versioned SQLite schema ([`SCHEMA_VERSION`]) and the migration of older
//!   journals;
//! - `codec`: how the cold part of a call (bodies, headers, findings) is packed and compressed;
//! - [`sqlite`]: the embedded store ([`SqliteStore`]) and its queries in SQL;
//! - [`postgres`]: the server store ([`PostgresStore`]) that several replicas share, the same
//!   layout and queries in PostgreSQL, and the feed of what the other replicas commit;
//! - `filter`: the WHERE clauses of call queries, written once for both stores;
//! - [`readers`]: a small pool of reading connections for a server's queries;
//! - [`open`]: the one place a [`Location`] becomes a running journal (writer, readers, feed).
//!
//! Times are stored as integer microseconds since the Unix epoch (UTC), so numeric order is time
//! order; sub-microsecond precision is dropped.

mod codec;
mod filter;
pub mod postgres;
pub mod readers;
pub mod records;
pub mod schema;
pub mod sqlite;
pub mod store;
pub mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::tls::RejectionReason;
pub use crate::wsdl::service_of;
pub use crate::wsdl::validate::Finding;
pub use postgres::{Database, PostgresReader, PostgresStore};
pub use readers::{Reader, Readers};
pub use records::{
    CallQuery, CallRecord, CallerSummary, CertificateKeys, CertificateSummary, ConfirmationRecord,
    Criterion, Entry, IdentityFields, LiveEvent, Outcome, RejectionQuery, RejectionRecord,
    ReloadRecord, StoredCall, StoredConfirmation, StoredRejection, StoredReload,
};
pub use schema::SCHEMA_VERSION;
pub use sqlite::SqliteStore;
pub use store::{
    each_call, each_call_by, JournalReader, JournalStore, PruneReason, Pruned, Retention,
};
pub use writer::{Coming, Journal, JournalStats};

/// How many entries may wait for the writer; `record_*` wait for space beyond this, so memory
/// stays bounded when the disk is slower than the callers.
pub const QUEUE_CAPACITY: usize = 8192;

/// The most entries the writer puts in one transaction: the whole queue, so that a burst costs
/// one commit.
pub const MAX_BATCH: usize = QUEUE_CAPACITY;

/// How long a starting server waits for its PostgreSQL journal to become reachable (a replica
/// started beside its database, or before it) before it gives up.
pub const DATABASE_START_WAIT: Duration = Duration::from_secs(60);

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
    #[error("cannot use the journal database {database}")]
    Database {
        /// The URL, password masked.
        database: String,
        #[source]
        source: StorageError,
    },
    #[error(
        "the journal database {database} has schema version {found}, newer than this dfdg-mock \
         understands ({supported}): use a newer dfdg-mock or another database"
    )]
    DatabaseTooNew {
        database: String,
        found: i64,
        supported: i64,
    },
    #[error(
        "the journal database {database} has schema version {found}, older than this dfdg-mock's \
         ({supported}): run `dfdg-mock serve` once to upgrade it"
    )]
    DatabaseOutdated {
        database: String,
        found: i64,
        supported: i64,
    },
    #[error("the database {database} holds no dfdg-mock journal: start `dfdg-mock serve` with this --journal-url first")]
    DatabaseMissing { database: String },
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
            JournalError::Storage(error)
            | JournalError::Open { source: error, .. }
            | JournalError::Database { source: error, .. } => Some(error.fault),
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

/// Where the journal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file, embedded (the default).
    File(PathBuf),
    /// A PostgreSQL database, shared by several replicas.
    Database(Arc<Database>),
}

impl std::fmt::Display for Location {
    /// The file, or the database's URL with its password masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Database(database) => write!(f, "{database}"),
        }
    }
}

/// What a server's journal is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub location: Location,
    pub retention: Retention,
}

/// A running journal: the writer, the readers, and (with PostgreSQL) the feed of what the other
/// replicas commit.
#[derive(Debug)]
pub struct Opened {
    pub journal: Journal,
    pub readers: Readers,
    /// [`postgres::Feed::forward`] it into the server's live events.
    pub feed: Option<postgres::Feed>,
}

/// Opens (creating or migrating it) the journal `settings` name and starts its writer: the one
/// place a server chooses its store. Blocking (it may connect to a database and migrate it);
/// fine on an async thread at start-up.
pub fn open(settings: &Settings) -> Result<Opened, JournalError> {
    match &settings.location {
        Location::File(path) => Ok(Opened {
            journal: Journal::open_sqlite_with(path, settings.retention)?,
            readers: Readers::new(path),
            feed: None,
        }),
        Location::Database(database) => {
            let driver = postgres::Driver::new()?;
            let origin: Arc<str> = uuid::Uuid::new_v4().to_string().into();
            let store = PostgresStore::open_within(
                Arc::clone(database),
                Arc::clone(&driver),
                Arc::clone(&origin),
                DATABASE_START_WAIT,
            )?;
            if settings.retention.max_size.is_some() {
                tracing::debug!(
                    "journal max_size does not apply to PostgreSQL (max_calls and max_age do)"
                );
            }
            let pool = postgres::ReaderPool::new(
                Arc::clone(database),
                Arc::clone(&driver),
                readers::MAX_READERS + 2,
            );
            Ok(Opened {
                journal: Journal::start_with(store, settings.retention)?,
                readers: Readers::postgres(pool),
                feed: Some(postgres::Feed::new(Arc::clone(database), driver, origin)),
            })
        }
    }
}

/// A reader of an existing journal, for the command line (blocking; never migrates).
pub fn open_reader(location: &Location) -> Result<Reader, JournalError> {
    match location {
        Location::File(path) => SqliteStore::open_read_only(path).map(Reader::Sqlite),
        Location::Database(database) => {
            let pool = postgres::ReaderPool::new(Arc::clone(database), postgres::Driver::new()?, 1);
            pool.check()?;
            pool.reader().map(Reader::Postgres)
        }
    }
}

/// A store to write one entry into an existing journal beside a running server, for the
/// command line (blocking).
pub fn open_store(location: &Location) -> Result<Box<dyn JournalStore>, JournalError> {
    match location {
        Location::File(path) => {
            if !path.exists() {
                return Err(JournalError::Missing { path: path.clone() });
            }
            Ok(Box::new(SqliteStore::open(path)?))
        }
        Location::Database(database) => {
            let driver = postgres::Driver::new()?;
            let origin: Arc<str> = uuid::Uuid::new_v4().to_string().into();
            let store = PostgresStore::open(Arc::clone(database), driver, origin)?;
            Ok(Box::new(store))
        }
    }
}

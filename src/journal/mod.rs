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
//! - [`schema`]: the versioned SQLite schema ([`MIGRATIONS`]);
//! - [`sqlite`]: the embedded store ([`SqliteStore`]) and its queries in SQL.
//!
//! Times are stored as integer microseconds since the Unix epoch (UTC), so numeric order is time
//! order; sub-microsecond precision is dropped.

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
pub use records::{
    CallQuery, CallRecord, CallerSummary, ConfirmationRecord, Entry, IdentityFields, Outcome,
    RejectionQuery, RejectionRecord, ReloadRecord, StoredCall, StoredConfirmation, StoredRejection,
    StoredReload,
};
pub use schema::MIGRATIONS;
pub use sqlite::SqliteStore;
pub use store::{JournalReader, JournalStore};
pub use writer::Journal;

/// How many entries may wait for the writer; `record_*` wait for space beyond this, so memory
/// stays bounded when the disk is slower than the callers.
pub const QUEUE_CAPACITY: usize = 8192;

/// The most entries the writer puts in one transaction.
pub const MAX_BATCH: usize = 512;

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
        source: rusqlite::Error,
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
        version: usize,
        #[source]
        source: rusqlite::Error,
    },
    #[error("journal database failure")]
    Database(#[from] rusqlite::Error),
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
    #[error(
        "receipt {guid} was sent to {}, not to {supplier}: a supplier can confirm only its own receipts",
        owner.as_deref().unwrap_or("a caller of no registered supplier")
    )]
    ForeignReceipt {
        guid: String,
        supplier: String,
        owner: Option<String>,
    },
    #[error("the journal is closed and accepts no more entries")]
    Closed,
    #[error("the journal writer stopped before answering")]
    WriterStopped,
}

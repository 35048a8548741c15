//! The storage interface: the writer's [`JournalStore`] and the queries' [`JournalReader`].

use super::records::*;
use super::JournalError;
#[allow(unused_imports)]
use super::{DEFAULT_LIMIT, MAX_LIMIT};

/// Where the writer puts entries. Implementations are driven by one thread only.
pub trait JournalStore: Send + 'static {
    /// Writes all entries in one transaction; returns the ids assigned to the calls, in order
    /// (rejections get ids too).
    fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError>;
}

/// Reads the journal back.
pub trait JournalReader {
    fn calls(&self, query: &CallQuery) -> Result<Vec<StoredCall>, JournalError>;
    fn call(&self, id: i64) -> Result<Option<StoredCall>, JournalError>;
    /// The latest call whose response carried this receipt GUID.
    fn call_by_receipt(&self, guid: &str) -> Result<Option<StoredCall>, JournalError>;
    fn rejections(&self, query: &RejectionQuery) -> Result<Vec<StoredRejection>, JournalError>;
    /// The confirmation of this receipt, if it was confirmed.
    fn confirmation(&self, guid: &str) -> Result<Option<StoredConfirmation>, JournalError>;
    /// Confirmations, newest first, at most `limit` (0: [`DEFAULT_LIMIT`]).
    fn confirmations(&self, limit: usize) -> Result<Vec<StoredConfirmation>, JournalError>;
    /// Every caller id with a certificate identity, most recently seen first, at most `limit`.
    fn callers(&self, limit: usize) -> Result<Vec<CallerSummary>, JournalError>;
    /// How many calls the certificates of a registered supplier made (refused ones included).
    fn supplier_call_count(&self, supplier: &str) -> Result<i64, JournalError>;
}

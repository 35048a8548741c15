//! The storage interface: the writer's [`JournalStore`] and the queries' [`JournalReader`].
//!
//! Nothing in these types belongs to one database: the embedded SQLite store
//! ([`super::SqliteStore`]) and the PostgreSQL store several replicas share
//! ([`super::PostgresStore`], [`super::PostgresReader`]) implement them. Every query is meant to
//! be answered by the store's own indexes, never by reading every call back.

use super::records::{
    CallQuery, CallerSummary, CertificateSummary, Entry, RejectionQuery, StoredCall,
    StoredConfirmation, StoredRejection, StoredReload,
};
use super::{JournalError, DEFAULT_LIMIT, MAX_LIMIT};

/// Where the writer puts entries. Implementations are driven by one thread only.
pub trait JournalStore: Send + 'static {
    /// Writes all entries in one transaction; returns the ids assigned to them, in order
    /// (calls, rejections and reloads get ids; a confirmation the id of the confirmed call).
    fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError>;

    /// [`JournalStore::append`], some calls' cold parts already compressed by their callers
    /// (`compressed[i]`, if there, is `entries[i]`'s); a store that compresses nothing, or
    /// does it itself, ignores them.
    fn append_compressed(
        &mut self,
        entries: &[Entry],
        compressed: &[Option<Compressed>],
    ) -> Result<Vec<i64>, JournalError> {
        let _ = compressed;
        self.append(entries)
    }

    /// Removes at most `limit` of the oldest calls that [`Retention`] no longer allows, keeping
    /// what onboarding evidence cites; returns what it removed. Stores without retention remove
    /// nothing.
    fn prune(&mut self, retention: &Retention, limit: usize) -> Result<Pruned, JournalError> {
        let _ = (retention, limit);
        Ok(Pruned::default())
    }

    /// A cheap write that succeeds only when the store can commit again (after a full disk).
    fn probe(&mut self) -> Result<(), JournalError> {
        Ok(())
    }
}

/// A call's cold part packed and compressed on the caller's thread, against a dictionary the
/// store has committed, so that the one writer thread does not have to (see
/// `Journal::record_call`).
#[derive(Debug)]
pub struct Compressed {
    /// The dictionary's id in the store (0: none).
    pub dictionary: i64,
    pub blob: Vec<u8>,
    /// [`super::CallRecord::header_names_caller`], worked out on the caller's thread too.
    pub user_matches: bool,
}

impl<S: JournalStore + ?Sized> JournalStore for Box<S> {
    fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError> {
        (**self).append(entries)
    }

    fn append_compressed(
        &mut self,
        entries: &[Entry],
        compressed: &[Option<Compressed>],
    ) -> Result<Vec<i64>, JournalError> {
        (**self).append_compressed(entries, compressed)
    }

    fn prune(&mut self, retention: &Retention, limit: usize) -> Result<Pruned, JournalError> {
        (**self).prune(retention, limit)
    }

    fn probe(&mut self) -> Result<(), JournalError> {
        (**self).probe()
    }
}

/// How much the journal may hold; the writer removes the oldest calls beyond it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Calls kept at most; `None`: no limit.
    pub max_calls: Option<u64>,
    /// Calls older than this are removed; `None`: no limit.
    pub max_age: Option<std::time::Duration>,
    /// Bytes the journal's data may take on disk; `None`: no limit.
    pub max_size: Option<u64>,
}

impl Retention {
    /// No limits at all.
    pub const UNBOUNDED: Retention = Retention {
        max_calls: None,
        max_age: None,
        max_size: None,
    };
}

impl Default for Retention {
    /// Safe for a laptop or a CI runner: a million calls or 2 GiB, whichever comes first.
    fn default() -> Self {
        Retention {
            max_calls: Some(1_000_000),
            max_age: None,
            max_size: Some(2 << 30),
        }
    }
}

/// Why calls were removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneReason {
    MaxCalls,
    MaxAge,
    MaxSize,
}

impl PruneReason {
    pub const ALL: [PruneReason; 3] = [
        PruneReason::MaxCalls,
        PruneReason::MaxAge,
        PruneReason::MaxSize,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PruneReason::MaxCalls => "max_calls",
            PruneReason::MaxAge => "max_age",
            PruneReason::MaxSize => "max_size",
        }
    }
}

/// What one pruning step removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Calls removed (with their bodies and receipts).
    pub calls: u64,
    /// Refused handshakes removed.
    pub rejections: u64,
    /// The limit that made the step necessary; `None` when nothing was over a limit.
    pub reason: Option<PruneReason>,
}

/// Reads the journal back.
pub trait JournalReader {
    /// Calls matching `query`, newest first (oldest first when following with `after_id`).
    fn calls(&self, query: &CallQuery) -> Result<Vec<StoredCall>, JournalError>;
    /// How many calls match `query` (its limit is ignored).
    fn count_calls(&self, query: &CallQuery) -> Result<u64, JournalError>;
    /// How many calls match each of `queries`, counted together in one pass over the calls
    /// (cheaper than one count each when several are broad).
    fn count_each(&self, queries: &[CallQuery]) -> Result<Vec<u64>, JournalError> {
        queries
            .iter()
            .map(|query| self.count_calls(query))
            .collect()
    }
    fn call(&self, id: i64) -> Result<Option<StoredCall>, JournalError>;
    /// The calls of `ids` that exist, in any order: one query where a round trip costs (a
    /// server database), else one [`JournalReader::call`] each.
    fn calls_by_id(&self, ids: &[i64]) -> Result<Vec<StoredCall>, JournalError> {
        ids.iter()
            .filter_map(|id| self.call(*id).transpose())
            .collect()
    }
    /// The latest call whose response carried this receipt GUID.
    fn call_by_receipt(&self, guid: &str) -> Result<Option<StoredCall>, JournalError>;
    fn rejections(&self, query: &RejectionQuery) -> Result<Vec<StoredRejection>, JournalError>;
    /// The confirmation of this receipt, if it was confirmed.
    fn confirmation(&self, guid: &str) -> Result<Option<StoredConfirmation>, JournalError>;
    /// Confirmations, newest first, at most `limit` (0: [`super::DEFAULT_LIMIT`]).
    fn confirmations(&self, limit: usize) -> Result<Vec<StoredConfirmation>, JournalError>;
    /// Every caller id with a certificate identity, most recently seen first, at most `limit`.
    fn callers(&self, limit: usize) -> Result<Vec<CallerSummary>, JournalError>;
    /// Every client certificate that made a call the journal holds, most recently seen first.
    fn certificates(&self) -> Result<Vec<CertificateSummary>, JournalError>;
    /// The latest scenario reloads, newest first.
    fn reloads(&self, limit: usize) -> Result<Vec<StoredReload>, JournalError>;
}

/// Calls `each` with up to `total` calls matching `query`, newest first (0: [`DEFAULT_LIMIT`]),
/// reading them [`MAX_LIMIT`] at a time by cursor, so any total is served in bounded memory.
/// Returns how many it passed.
pub fn each_call<E: From<JournalError>>(
    reader: &impl JournalReader,
    query: &CallQuery,
    total: usize,
    each: impl FnMut(&StoredCall) -> Result<(), E>,
) -> Result<usize, E> {
    let newest_first = CallQuery {
        after_id: None,
        ..query.clone()
    };
    each_call_by(reader, &newest_first, total, MAX_LIMIT, each)
}

/// [`each_call`] reading `page_size` calls per query, in the query's order: newest first, or
/// oldest first after `query.after_id` when it is set.
pub fn each_call_by<E: From<JournalError>>(
    reader: &impl JournalReader,
    query: &CallQuery,
    total: usize,
    page_size: usize,
    mut each: impl FnMut(&StoredCall) -> Result<(), E>,
) -> Result<usize, E> {
    let total = if total == 0 { DEFAULT_LIMIT } else { total };
    let following = query.after_id.is_some();
    let mut page = query.clone();
    let mut done = 0;
    while done < total {
        page.limit = (total - done).min(page_size.max(1));
        let calls = reader.calls(&page)?;
        for call in &calls {
            each(call)?;
        }
        done += calls.len();
        match calls.last() {
            Some(last) if calls.len() == page.limit => {
                if following {
                    page.after_id = Some(last.id);
                } else {
                    page.before_id = Some(last.id);
                }
            }
            _ => break,
        }
    }
    Ok(done)
}

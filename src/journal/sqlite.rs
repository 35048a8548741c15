//! The embedded store: one SQLite file in WAL mode, every query as indexed SQL.
//!
//! `synchronous=NORMAL`: in WAL mode a committed transaction survives a crash of the process; an
//! OS crash or power loss may lose the last few commits. That is the right trade for a mock:
//! commits cost no fsync each, and the journal is evidence, not a ledger.
//!
//! The layout is in [`super::schema`]: a call is a narrow row of small integers (`calls`) that
//! the filters and their indexes use, and a compressed blob (`call_data`, [`super::codec`]) with
//! everything else. The writer keeps the ids of names, certificates and dictionaries in memory,
//! so a call costs two inserts and its receipts, and one update per certificate per batch and
//! per combination of the columns `verify` counts by (`call_counts`, whose rows answer the
//! counts that name no caller, supplier or time).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::types::Value;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row};
use time::OffsetDateTime;

mod checkpoint;
mod wal_batch;

use super::codec;
use super::filter::{self, call_filter, effective_limit, Dialect, Filter, Param};
use super::records::{
    CallQuery, CallRecord, CallerSummary, CertificateSummary, ConfirmationRecord, Entry,
    IdentityFields, Outcome, RejectionQuery, RejectionRecord, ReloadRecord, StoredCall,
    StoredConfirmation, StoredRejection, StoredReload,
};
use super::schema::{self, from_micros, schema_version, to_micros, SCHEMA_VERSION};
use super::store::{Compressed, JournalReader, JournalStore, PruneReason, Pruned, Retention};
use super::{JournalError, RejectionReason, StorageError, StorageFault};

/// How long a connection waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the writer sleeps between two tries of a lock held elsewhere.
const BUSY_STEP: Duration = Duration::from_micros(100);

/// A busy handler's turn: sleeps `step` and says whether to try again, as long as the steps
/// slept come to less than `patience`. The writer's (every [`BUSY_STEP`] for [`BUSY_TIMEOUT`])
/// replaces SQLite's `busy_timeout`, which sleeps 1, 2, 5, 10, 15, 20 ms… between tries: a
/// writer held back for 3 ms by a restarting checkpoint resumed after 8, one held for 9 ms after
/// 18; on a full journal under keep-alive load that put about 20 ms on one batch's answers at
/// each restart, the p99 latency. The checkpoint thread waits the same way.
pub(super) fn wait_a_step(attempt: i32, step: Duration, patience: Duration) -> bool {
    std::thread::sleep(step);
    step * u32::try_from(attempt).unwrap_or(u32::MAX) < patience
}

/// Page cache of the writer's connection (KiB): room for the leaf pages a batch touches (the
/// newest page of each certificate in its index, mostly). Smaller costs the writer dearly with
/// many callers: `journal_bench` at 1 M calls from 1,000 callers (2026-12-01, load 5-9) took
/// 26.7 µs of writer CPU a call with 4 MiB, 38.8 µs with 2 MiB, 42.2 µs with 1 MiB.
const WRITER_CACHE_KIB: i64 = 4096;
/// The page size of a new journal (see `open_at_version`).
const JOURNAL_PAGE_SIZE: i64 = 1024;

/// Pages a transaction of the writer may keep dirty in memory before SQLite writes some to the
/// log early ("spills"), beyond [`WRITER_CACHE_KIB`]: a batch of calls from many certificates
/// dirties one page of each certificate's index position, more than that cache holds; spilled,
/// a page is written and read back again within the same batch (a fifth of the writer's time
/// in a profile of `journal_bench` with 1,000 callers). Only during a large batch; the cache
/// shrinks back to its size at the commit.
const WRITER_SPILL_PAGES: i64 = 4096;

/// Page cache of a reading connection (KiB): small, so that readers keep the server lean. The
/// connection gives it back after every read (`release_memory`), so it only serves pages read
/// twice within one query: `journal_bench --queries-only` on a 1 M-call journal answered every
/// query as fast with 256 KiB as with 1 MiB (best of each within 0.1 ms; /api/callers 7.9 ms,
/// onboarding status 20.3 ms), and a large dashboard read peaked 1 MB lower.
const READER_CACHE_KIB: i64 = 256;

/// A time window with fewer calls than this is listed from the time index (its calls' ids
/// sorted) rather than by walking the ids down from the newest.
const SPARSE_WINDOW: i64 = 10_000;

/// Dictionaries kept at most: a client inventing operation names cannot grow them without bound.
const MAX_DICTIONARIES: i64 = 64;

/// Names the writer remembers at most before it starts over (they stay in the table).
const MAX_CACHED_NAMES: usize = 65_536;

/// Bytes the availability probe writes (and removes again).
const PROBE_BYTES: i64 = 512 * 1024;

/// The largest buffer the writer keeps from one call to the next (bytes).
pub(super) const REUSED_BUFFER: usize = 64 * 1024;

/// Calls copied per step of the migration from version 5 (one progress line each).
const MIGRATION_STEP: i64 = 20_000;

/// Calls outside a count's time window read one by one at most to take them off the totals of
/// `call_counts` (see `count_from_totals`); with more, the count reads the calls inside.
const MAX_OUTSIDE_WINDOW: i64 = 20_000;

/// The short texts of a call the writer names, each remembered apart for the next call, which
/// mostly has the same ones.
const NAME_SLOTS: usize = 5;
const SUPPLIER: usize = 0;
const SERVICE: usize = 1;
const ENDPOINT: usize = 2;
const OPERATION: usize = 3;
const SOAP_ACTION: usize = 4;

impl From<rusqlite::Error> for StorageError {
    fn from(error: rusqlite::Error) -> StorageError {
        let fault = match error.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StorageFault::Full,
            Some(ErrorCode::ReadOnly) => StorageFault::ReadOnly,
            Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => StorageFault::Io,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StorageFault::Busy,
            _ => StorageFault::Other,
        };
        StorageError::new(fault, error)
    }
}

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match self {
            Param::Int(value) => (*value).into(),
            Param::Text(value) => value.as_str().into(),
            Param::Bool(value) => (*value).into(),
        })
    }
}

impl From<rusqlite::Error> for JournalError {
    fn from(error: rusqlite::Error) -> JournalError {
        JournalError::Storage(error.into())
    }
}

/// What the writer remembers between batches; dropped whenever a transaction fails, since the
/// rows it names may have been rolled back.
#[derive(Debug, Default)]
struct Caches {
    names: HashMap<String, i64>,
    /// The last text and id of each of a call's names ([`NAME_SLOTS`]), looked at before `names`.
    recent_names: [Option<(String, i64)>; NAME_SLOTS],
    /// Combination of counted columns → `call_counts.id`.
    counts: HashMap<CountKey, i64>,
    /// Fingerprint → certificates.id.
    certificates: HashMap<String, i64>,
    /// (supplier, certificate) pairs known to be in `certificate_suppliers`.
    supplier_certificates: BTreeSet<(i64, i64)>,
    /// Operation → (dictionaries.id, bytes).
    dictionaries: HashMap<String, (i64, Arc<Vec<u8>>)>,
    dictionary_count: Option<i64>,
    /// See [`SqliteStore::hashed_receipts_upto`]; `None` until a pruning step asks.
    hashed_receipts_upto: Option<i64>,
    /// Buffers a call is packed and compressed in, reused from call to call.
    packed: Vec<u8>,
    blob: Vec<u8>,
}

/// The embedded store. Opened with [`SqliteStore::open`] it is the writer's (and migrates the
/// schema); with [`SqliteStore::open_read_only`] a reader's.
#[derive(Debug)]
pub struct SqliteStore {
    /// The file, for error messages.
    path: PathBuf,
    /// The thread that checkpoints the write-ahead log off the commit path, if started
    /// ([`SqliteStore::checkpoint_in_background`]). Declared before `connection` so that it
    /// stops (and closes its own connection) first: the writer's connection, closed last,
    /// then checkpoints the whole log and removes it.
    checkpointer: Option<checkpoint::Checkpointer>,
    connection: Connection,
    /// The writer's memory of ids, boxed: a reader has none, and stays small.
    caches: Box<Caches>,
    /// The id the next call gets (ids are never reused, even after a reset or pruning): at
    /// open, one past the largest of `calls` and of what `meta` remembers.
    next_call_id: i64,
    /// Dictionaries read so far, by id (readers and the writer's own reads).
    dictionaries: RefCell<HashMap<i64, Arc<Vec<u8>>>>,
    /// Calls in the journal, counted once when pruning first needs it and then kept up to date.
    call_count: Option<u64>,
    /// The committed dictionaries shared with the journal's handles, once asked for
    /// ([`SqliteStore::compressor`]).
    compressor: Option<Arc<codec::Compressor>>,
    /// Which tables of the schema this store writes (older ones only in a journal kept at an
    /// earlier version by [`SqliteStore::open_at_version`]).
    layout: Layout,
}

/// What a schema version changed in how calls are written.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Version-7 receipts go to `receipts_by_time` (schema 7).
    time_receipts: bool,
    /// Certificates' counters are in `certificate_calls`, and each (supplier, certificate) pair
    /// is in `certificate_suppliers` (schema 8); before, the counters were in `certificates`.
    counts_apart: bool,
    /// Calls are counted by their counted columns in `call_counts` (schema 9).
    counted: bool,
}

impl Layout {
    const CURRENT: Layout = Layout::of(SCHEMA_VERSION);

    const fn of(version: i64) -> Layout {
        Layout {
            time_receipts: version >= 7,
            counts_apart: version >= 8,
            counted: version >= 9,
        }
    }

    /// The table of the certificates' counters.
    fn counts(self) -> &'static str {
        if self.counts_apart {
            "certificate_calls"
        } else {
            "certificates"
        }
    }
}

impl SqliteStore {
    /// Opens (creating it and its folders if needed) the journal for writing and brings its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, JournalError> {
        SqliteStore::open_at_version(path, SCHEMA_VERSION)
    }

    /// [`SqliteStore::open`], bringing the schema only to `version` (6 or later): for tests
    /// that make a journal of an earlier release with its own steps. Such a store writes calls
    /// as that release did; reading is for the current version only.
    #[doc(hidden)]
    pub fn open_at_version(path: &Path, version: i64) -> Result<SqliteStore, JournalError> {
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|source| JournalError::CreateFolder {
                path: folder.to_owned(),
                source,
            })?;
        }
        let open_error = |source: rusqlite::Error| JournalError::Open {
            path: path.to_owned(),
            source: source.into(),
        };
        // The writer's log gathers each commit's frames into one write (wal_batch.rs).
        let mut connection = match wal_batch::register() {
            Some(vfs) => Connection::open_with_flags_and_vfs(path, OpenFlags::default(), vfs),
            None => Connection::open(path),
        }
        .map_err(open_error)?;
        connection
            .busy_handler(Some(|attempt| {
                wait_a_step(attempt, BUSY_STEP, BUSY_TIMEOUT)
            }))
            .map_err(open_error)?;
        // A fresh journal's page size (an existing one keeps its own): every commit writes each
        // page it touched, whole, to the log.
        connection
            .pragma_update(None, "page_size", JOURNAL_PAGE_SIZE)
            .map_err(open_error)?;
        let mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "journal is not in WAL mode");
        }
        for (pragma, value) in [
            ("synchronous", Value::Text("NORMAL".to_owned())),
            ("cache_size", Value::Integer(-WRITER_CACHE_KIB)),
            ("cache_spill", Value::Integer(WRITER_SPILL_PAGES)),
            // After a checkpoint the WAL file shrinks back to this.
            ("journal_size_limit", Value::Integer(16 << 20)),
            ("temp_store", Value::Text("MEMORY".to_owned())),
        ] {
            connection
                .pragma_update(None, pragma, value)
                .map_err(open_error)?;
        }
        keep_plans(&connection).map_err(open_error)?;
        let mut store = SqliteStore {
            path: path.to_owned(),
            checkpointer: None,
            connection,
            caches: Box::default(),
            next_call_id: 1,
            dictionaries: RefCell::new(HashMap::new()),
            call_count: None,
            layout: Layout::CURRENT,
            compressor: None,
        };
        store.migrate(version.clamp(6, SCHEMA_VERSION))?;
        store.layout = Layout::of(store.schema_version()?);
        store.next_call_id = store.stored_next_call_id()?;
        Ok(store)
    }

    /// Frees this connection's page cache between reads (a reading connection's; the next
    /// read fills it again from the file). Under write load the cache is stale at every read
    /// anyway: SQLite drops it when the journal changed since the last one.
    pub fn release_memory(&self) {
        // Best effort: a failure only leaves the cache as it was.
        let _ = self.connection.execute_batch("PRAGMA shrink_memory");
    }

    /// Opens an existing journal for reading only, e.g. for the CLI while the server writes.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, JournalError> {
        if !path.is_file() {
            return Err(JournalError::Missing {
                path: path.to_owned(),
            });
        }
        let open_error = |source: rusqlite::Error| JournalError::Open {
            path: path.to_owned(),
            source: source.into(),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags).map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        connection
            .pragma_update(None, "cache_size", -READER_CACHE_KIB)
            .map_err(open_error)?;
        keep_plans(&connection).map_err(open_error)?;
        let found = schema_version(&connection).map_err(open_error)?;
        if found > SCHEMA_VERSION {
            return Err(JournalError::TooNew {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(JournalError::Outdated {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            checkpointer: None,
            connection,
            caches: Box::default(),
            next_call_id: 0,
            dictionaries: RefCell::new(HashMap::new()),
            call_count: None,
            layout: Layout::CURRENT,
            compressor: None,
        })
    }

    /// Moves the write-ahead log's checkpoints off the commit path: this connection stops
    /// checkpointing, and a thread of the store's own, with a connection of its own, checkpoints
    /// as the log grows (see `checkpoint.rs`). For the writer of a server, whose callers wait for
    /// each commit; the thread stops when the store is dropped.
    pub fn checkpoint_in_background(&mut self) -> Result<(), JournalError> {
        if self.checkpointer.is_none() {
            let page_size: i64 = self
                .connection
                .query_row("PRAGMA page_size", [], |row| row.get(0))?;
            self.checkpointer = Some(checkpoint::Checkpointer::start(
                &self.path,
                &mut self.connection,
                checkpoint::Thresholds::for_page_size(page_size),
            )?);
        }
        Ok(())
    }

    /// The dictionaries this store has committed, for the journal's handles to compress calls
    /// with before they queue them (see [`JournalStore::append_compressed`]); kept up to date
    /// after each commit from now on.
    pub(crate) fn compressor(&mut self) -> Arc<codec::Compressor> {
        Arc::clone(self.compressor.get_or_insert_with(Arc::default))
    }

    /// The writer's connection, for tests that need to watch it wait for a lock.
    #[cfg(test)]
    pub(super) fn connection(&mut self) -> &mut Connection {
        &mut self.connection
    }

    /// The file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, JournalError> {
        Ok(schema_version(&self.connection)?)
    }

    /// Bytes the journal's pages take: used pages only, since freed ones are reused before the
    /// file grows. The write-ahead log comes on top (a few MB between checkpoints, cut back to
    /// 16 MiB after one).
    pub fn size_on_disk(&self) -> Result<u64, JournalError> {
        // Cached statements: pruning asks after every batch that added calls.
        let pragma = |sql: &str| -> Result<i64, JournalError> {
            Ok(self
                .connection
                .prepare_cached(sql)?
                .query_row([], |row| row.get(0))?)
        };
        let used = (pragma("PRAGMA page_count")? - pragma("PRAGMA freelist_count")?)
            * pragma("PRAGMA page_size")?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    fn stored_next_call_id(&self) -> Result<i64, JournalError> {
        let stored: Option<i64> = self
            .connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'next_call_id'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        let after_max: i64 =
            self.connection
                .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM calls", [], |row| {
                    row.get(0)
                })?;
        Ok(stored.unwrap_or(1).max(after_max))
    }

    /// Brings the schema to `target` (normally [`SCHEMA_VERSION`]) in one transaction; refuses
    /// a newer one than this code knows.
    fn migrate(&mut self, target: i64) -> Result<(), JournalError> {
        let path = self.path.clone();
        let too_new = |found| JournalError::TooNew {
            path: path.clone(),
            found,
            supported: SCHEMA_VERSION,
        };
        let found = schema_version(&self.connection)?;
        if found > SCHEMA_VERSION {
            return Err(too_new(found));
        }
        if found >= target {
            return Ok(());
        }
        // IMMEDIATE takes the write lock first, so two processes opening at once do not both
        // migrate.
        let SqliteStore {
            connection, caches, ..
        } = self;
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found = schema_version(&transaction)?;
        if found > SCHEMA_VERSION {
            return Err(too_new(found));
        }
        if found >= target {
            // Another process migrated it meanwhile.
            return Ok(());
        }
        // Other tables (e.g. WSB's `wsb_*`) may share the file; a journal has `calls`.
        let tables: i64 = transaction.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('calls', 'rejections')",
            [],
            |row| row.get(0),
        )?;
        let migration_error = |version: i64| {
            let path = path.clone();
            move |source: JournalError| JournalError::Migration {
                path,
                version,
                source: Box::new(source),
            }
        };
        if found == 0 && tables == 0 {
            schema::create(&transaction, target)?;
        } else {
            if found < 6 {
                let applied = usize::try_from(found).unwrap_or(0);
                for (index, step) in schema::LEGACY_MIGRATIONS.iter().enumerate().skip(applied) {
                    transaction
                        .execute_batch(step)
                        .map_err(|error| migration_error(index as i64 + 1)(error.into()))?;
                }
                from_v5(&transaction, caches, &path).map_err(migration_error(6))?;
            }
            schema::after_v6(&transaction, found.max(6), target)
                .map_err(|error| migration_error(target)(error.into()))?;
        }
        transaction.pragma_update(None, "user_version", target)?;
        transaction.commit()?;
        if found > 0 {
            tracing::info!(path = %path.display(), from = found, to = target, "journal schema migrated");
        }
        *self.caches = Caches::default();
        Ok(())
    }
}

/// Moves every call of a version-5 journal into the version-6 tables, keeping its id.
fn from_v5(connection: &Connection, caches: &mut Caches, path: &Path) -> Result<(), JournalError> {
    connection.execute_batch(schema::V5_TO_V6)?;
    schema::v6_call_tables(connection)?;
    let total: i64 = connection.query_row("SELECT COUNT(*) FROM calls_v5", [], |row| row.get(0))?;
    tracing::info!(path = %path.display(), calls = total, "migrating the journal to schema version 6: rewriting every call");
    let sql = format!(
        "SELECT {} FROM calls_v5 WHERE id > ?1 ORDER BY id LIMIT ?2",
        schema::V5_CALL_COLUMNS
    );
    let mut last = 0;
    let mut copied = 0;
    loop {
        let mut deltas = Deltas::default();
        let mut inserts = Inserts::default();
        let mut statement = connection.prepare(&sql)?;
        let mut rows = statement.query(params![last, MIGRATION_STEP])?;
        let mut in_step = 0;
        while let Some(row) = rows.next()? {
            let stored = schema::v5_call_from_row(row)?;
            // Into version 6's tables: every receipt by its hash.
            insert_call(
                connection,
                &mut inserts,
                caches,
                &stored.record,
                stored.id,
                Layout::of(6),
                None,
                &mut deltas,
            )?;
            last = stored.id;
            in_step += 1;
        }
        flush_certificates(connection, Layout::of(6), &deltas.certificates)?;
        copied += in_step;
        if in_step == 0 {
            break;
        }
        tracing::info!(copied, total, "journal migration in progress");
    }
    // AUTOINCREMENT remembered the largest id ever given, also of deleted calls.
    let sequence: i64 = connection
        .query_row(
            "SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name IN ('calls', 'calls_v5')",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    store_next_call_id(connection, sequence.max(last) + 1)?;
    connection.execute_batch("DROP TABLE receipts_v5; DROP TABLE calls_v5;")?;
    Ok(())
}

/// A buffer to keep for the next call: not one a large body grew, which would stay allocated.
fn reusable(mut buffer: Vec<u8>) -> Vec<u8> {
    if buffer.capacity() > REUSED_BUFFER {
        buffer = Vec::new();
    }
    buffer
}

/// Remembers the id the next call gets. Written only when calls are removed (reset, pruning,
/// migration): otherwise the largest id in `calls` says it, and a batch dirties one page less.
fn store_next_call_id(connection: &Connection, next: i64) -> Result<(), JournalError> {
    connection
        .prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_call_id', ?1)")?
        .execute([next])?;
    Ok(())
}

/// The id of a short text in `names`, added when new.
fn name_id(connection: &Connection, caches: &mut Caches, text: &str) -> Result<i64, JournalError> {
    if let Some(id) = caches.names.get(text) {
        return Ok(*id);
    }
    let found: Option<i64> = connection
        .prepare_cached("SELECT id FROM names WHERE text = ?1")?
        .query_row([text], |row| row.get(0))
        .optional()?;
    let id = match found {
        Some(id) => id,
        None => {
            connection
                .prepare_cached("INSERT INTO names (text) VALUES (?1)")?
                .execute([text])?;
            connection.last_insert_rowid()
        }
    };
    if caches.names.len() >= MAX_CACHED_NAMES {
        caches.names.clear();
    }
    caches.names.insert(text.to_owned(), id);
    Ok(id)
}

fn certificate_id(
    connection: &Connection,
    caches: &mut Caches,
    layout: Layout,
    identity: &IdentityFields,
) -> Result<i64, JournalError> {
    if let Some(id) = caches.certificates.get(&identity.fingerprint) {
        return Ok(*id);
    }
    let found: Option<i64> = connection
        .prepare_cached("SELECT id FROM certificates WHERE fingerprint = ?1")?
        .query_row([&identity.fingerprint], |row| row.get(0))
        .optional()?;
    let id = match found {
        Some(id) => id,
        None => {
            let json = serde_json::to_string(identity).map_err(|source| JournalError::Encode {
                what: "identity",
                source,
            })?;
            connection
                .prepare_cached(
                    "INSERT INTO certificates (fingerprint, caller_id, cvr, identity)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    identity.fingerprint,
                    identity.caller_id,
                    identity.cvr,
                    json
                ])?;
            let id = connection.last_insert_rowid();
            if layout.counts_apart {
                connection
                    .prepare_cached("INSERT INTO certificate_calls (id) VALUES (?1)")?
                    .execute([id])?;
            }
            id
        }
    };
    caches.certificates.insert(identity.fingerprint.clone(), id);
    Ok(id)
}

/// The dictionary for calls of `operation`: the stored one, or this call's own bytes when the
/// operation has none yet (and the cap allows another); `(0, [])` means none.
fn dictionary(
    connection: &Connection,
    caches: &mut Caches,
    operation: &str,
    packed: &[u8],
) -> Result<(i64, Arc<Vec<u8>>), JournalError> {
    if let Some((id, bytes)) = caches.dictionaries.get(operation) {
        return Ok((*id, Arc::clone(bytes)));
    }
    let found: Option<(i64, Vec<u8>)> = connection
        .prepare_cached("SELECT id, bytes FROM dictionaries WHERE key = ?1")?
        .query_row([operation], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (id, bytes) = match found {
        Some(found) => found,
        None => {
            let count = match caches.dictionary_count {
                Some(count) => count,
                None => connection
                    .query_row("SELECT COUNT(*) FROM dictionaries", [], |row| row.get(0))?,
            };
            if count >= MAX_DICTIONARIES {
                caches.dictionary_count = Some(count);
                return Ok((0, Arc::new(Vec::new())));
            }
            let bytes = codec::dictionary_from(packed).to_vec();
            connection
                .prepare_cached("INSERT INTO dictionaries (key, bytes) VALUES (?1, ?2)")?
                .execute(params![operation, bytes])?;
            caches.dictionary_count = Some(count + 1);
            (connection.last_insert_rowid(), bytes)
        }
    };
    let bytes = Arc::new(bytes);
    caches
        .dictionaries
        .insert(operation.to_owned(), (id, Arc::clone(&bytes)));
    Ok((id, bytes))
}

/// The counted columns of a call (`call_counts`, schema 9): what a count may ask about
/// without naming a caller, a supplier or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct CountKey {
    service: i64,
    endpoint: i64,
    operation: Option<i64>,
    soap_action: Option<i64>,
    outcome: i16,
    fault_code: Option<i64>,
    fault_name: Option<i64>,
    user_matches: bool,
}

/// What a batch of calls changes beyond its rows, written once at its end.
#[derive(Debug, Default)]
struct Deltas {
    /// Per certificate.
    certificates: HashMap<i64, codec::CertificateDelta>,
    /// Calls added (or, pruning, removed) per combination of counted columns.
    counts: HashMap<CountKey, i64>,
}

/// The statements every call runs, prepared once per batch instead of looked up by their text
/// for each call; each when first needed (a journal kept at version 6 has no `receipts_by_time`).
#[derive(Default)]
struct Inserts<'c> {
    call: Option<rusqlite::CachedStatement<'c>>,
    data: Option<rusqlite::CachedStatement<'c>>,
    receipt_by_time: Option<rusqlite::CachedStatement<'c>>,
}

/// `slot`'s statement, prepared from `sql` the first time.
fn prepared<'s, 'c>(
    connection: &'c Connection,
    slot: &'s mut Option<rusqlite::CachedStatement<'c>>,
    sql: &str,
) -> Result<&'s mut rusqlite::CachedStatement<'c>, JournalError> {
    if slot.is_none() {
        *slot = Some(connection.prepare_cached(sql)?);
    }
    Ok(slot.as_mut().expect("prepared just now"))
}

/// [`name_id`], first comparing with the text `slot` had the last time.
fn recent_name_id(
    connection: &Connection,
    caches: &mut Caches,
    slot: usize,
    text: &str,
) -> Result<i64, JournalError> {
    if let Some((last, id)) = &caches.recent_names[slot] {
        if last == text {
            return Ok(*id);
        }
    }
    let id = name_id(connection, caches, text)?;
    match &mut caches.recent_names[slot] {
        Some((last, last_id)) => {
            last.clear();
            last.push_str(text);
            *last_id = id;
        }
        empty => *empty = Some((text.to_owned(), id)),
    }
    Ok(id)
}

/// Writes one call under `id`, noting what it changes for its certificate and its counts in
/// `deltas`.
#[allow(clippy::too_many_arguments)]
fn insert_call<'c>(
    connection: &'c Connection,
    inserts: &mut Inserts<'c>,
    caches: &mut Caches,
    call: &CallRecord,
    id: i64,
    layout: Layout,
    compressed: Option<&Compressed>,
    deltas: &mut Deltas,
) -> Result<(), JournalError> {
    let mut blob = std::mem::take(&mut caches.blob);
    let mut blob_length = 0;
    let dictionary_id = match compressed {
        Some(compressed) => compressed.dictionary,
        None => {
            let mut packed = std::mem::take(&mut caches.packed);
            codec::pack_into(call, &mut packed)?;
            let (dictionary_id, dictionary_bytes) = dictionary(
                connection,
                caches,
                call.operation.as_deref().unwrap_or_default(),
                &packed,
            )?;
            blob_length = codec::compress_into(&packed, &dictionary_bytes, &mut blob).len();
            caches.packed = reusable(packed);
            dictionary_id
        }
    };
    let data = compressed.map_or(&blob[..blob_length], |compressed| &compressed.blob);
    let certificate = call
        .identity
        .as_ref()
        .map(|identity| certificate_id(connection, caches, layout, identity))
        .transpose()?;
    let mut name = |slot: usize, text: Option<&str>| -> Result<Option<i64>, JournalError> {
        text.map(|text| recent_name_id(connection, caches, slot, text))
            .transpose()
    };
    let supplier = name(SUPPLIER, call.supplier.as_deref())?;
    let service = name(SERVICE, Some(super::service_of(&call.path)))?.unwrap_or_default();
    let endpoint = name(
        ENDPOINT,
        Some(call.path.split('?').next().unwrap_or_default()),
    )?
    .unwrap_or_default();
    let operation = name(OPERATION, call.operation.as_deref())?;
    let soap_action = name(SOAP_ACTION, call.soap_action.as_deref())?;
    let (fault_code, fault_name) = match &call.outcome {
        Outcome::Fault { code, fault_code } => {
            (*code, Some(name_id(connection, caches, fault_code)?))
        }
        Outcome::Receipt | Outcome::Http => (None, None),
    };
    if let Some(supplier) = supplier.filter(|_| layout.counts_apart) {
        let pair = (supplier, certificate.unwrap_or(0));
        if !caches.supplier_certificates.contains(&pair) {
            connection
                .prepare_cached(
                    "INSERT OR IGNORE INTO certificate_suppliers (supplier, certificate)
                     VALUES (?1, ?2)",
                )?
                .execute(params![pair.0, pair.1])?;
            if caches.supplier_certificates.len() >= MAX_CACHED_NAMES {
                caches.supplier_certificates.clear();
            }
            caches.supplier_certificates.insert(pair);
        }
    }
    let checks = call
        .authorization
        .as_ref()
        .map(|_| i64::try_from(call.identity_findings.len()).unwrap_or(i64::MAX));
    // Worked out by the caller's thread along with the compression, when it compressed.
    let user_matches = compressed.map_or_else(
        || call.header_names_caller(),
        |compressed| compressed.user_matches,
    );
    let outcome = codec::outcome_number(&call.outcome);
    let time_us = to_micros(call.time);
    prepared(
        connection,
        &mut inserts.call,
        "INSERT INTO calls (id, time_us, certificate, supplier, service, endpoint, operation,
            soap_action, outcome, fault_code, fault_name, checks, user_matches, http_status,
            latency_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        id,
        time_us,
        certificate,
        supplier,
        service,
        endpoint,
        operation,
        soap_action,
        outcome,
        fault_code,
        fault_name,
        checks,
        user_matches,
        call.http_status,
        i64::try_from(call.latency_micros).unwrap_or(i64::MAX),
    ])?;
    prepared(
        connection,
        &mut inserts.data,
        "INSERT INTO call_data (id, dictionary, data) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id, dictionary_id, data])?;
    caches.blob = reusable(blob);
    for guid in &call.receipts {
        match codec::receipt_time_key(guid).filter(|_| layout.time_receipts) {
            Some(key) => prepared(
                connection,
                &mut inserts.receipt_by_time,
                "INSERT OR IGNORE INTO receipts_by_time (key, call_id) VALUES (?1, ?2)",
            )?
            .execute(params![key, id])?,
            None => {
                let key = codec::receipt_key(guid);
                if let Some(upto) = &mut caches.hashed_receipts_upto {
                    *upto = (*upto).max(id);
                }
                connection
                    .prepare_cached(
                        "INSERT OR IGNORE INTO receipts (bucket, call_id, key) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![codec::receipt_bucket(key), id, key])?
            }
        };
    }
    if let Some(certificate) = certificate {
        codec::note_call(&mut deltas.certificates, certificate, id, time_us, call);
    }
    if layout.counted {
        let key = CountKey {
            service,
            endpoint,
            operation,
            soap_action,
            outcome,
            fault_code,
            fault_name,
            user_matches,
        };
        *deltas.counts.entry(key).or_default() += 1;
    }
    Ok(())
}

/// Adds a batch's calls (removes pruned ones: negative) to `call_counts`, making a row for a
/// combination not counted before; a row left at no calls goes.
fn flush_counts(
    connection: &Connection,
    caches: &mut Caches,
    counts: &HashMap<CountKey, i64>,
) -> Result<(), JournalError> {
    let mut emptied = false;
    for (key, delta) in counts {
        if *delta == 0 {
            continue;
        }
        let id = match caches.counts.get(key) {
            Some(id) => Some(*id),
            None => connection
                .prepare_cached(
                    "SELECT id FROM call_counts WHERE endpoint = ?1 AND operation IS ?2
                        AND soap_action IS ?3 AND outcome = ?4 AND service = ?5
                        AND fault_code IS ?6 AND fault_name IS ?7 AND user_matches = ?8",
                )?
                .query_row(
                    params![
                        key.endpoint,
                        key.operation,
                        key.soap_action,
                        key.outcome,
                        key.service,
                        key.fault_code,
                        key.fault_name,
                        key.user_matches
                    ],
                    |row| row.get(0),
                )
                .optional()?,
        };
        let id = match id {
            Some(id) => {
                connection
                    .prepare_cached("UPDATE call_counts SET calls = calls + ?2 WHERE id = ?1")?
                    .execute(params![id, delta])?;
                emptied |= *delta < 0;
                id
            }
            // Removing calls never counted: nothing to take off.
            None if *delta < 0 => continue,
            None => {
                connection
                    .prepare_cached(
                        "INSERT INTO call_counts (service, endpoint, operation, soap_action,
                            outcome, fault_code, fault_name, user_matches, calls)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )?
                    .execute(params![
                        key.service,
                        key.endpoint,
                        key.operation,
                        key.soap_action,
                        key.outcome,
                        key.fault_code,
                        key.fault_name,
                        key.user_matches,
                        delta
                    ])?;
                connection.last_insert_rowid()
            }
        };
        caches.counts.insert(*key, id);
    }
    if emptied && connection.execute("DELETE FROM call_counts WHERE calls <= 0", [])? > 0 {
        caches.counts.clear();
    }
    Ok(())
}

/// Adds a batch's calls to their certificates' counters.
fn flush_certificates(
    connection: &Connection,
    layout: Layout,
    deltas: &HashMap<i64, codec::CertificateDelta>,
) -> Result<(), JournalError> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut statement = connection.prepare_cached(&format!(
        "UPDATE {} SET calls = calls + ?2,
            first_us = COALESCE(MIN(first_us, ?3), first_us, ?3),
            last_us = COALESCE(MAX(last_us, ?4), last_us, ?4),
            latest_receipt = COALESCE(MAX(latest_receipt, ?5), latest_receipt, ?5),
            latest_passed = COALESCE(MAX(latest_passed, ?6), latest_passed, ?6)
         WHERE id = ?1",
        layout.counts()
    ))?;
    for (id, delta) in deltas {
        statement.execute(params![
            id,
            delta.calls,
            delta.first_us,
            delta.last_us,
            delta.latest_receipt,
            delta.latest_passed
        ])?;
    }
    Ok(())
}

fn insert_rejection(
    connection: &Connection,
    rejection: &RejectionRecord,
) -> Result<i64, JournalError> {
    let identity = rejection.identity.as_ref();
    let identity_json = identity
        .map(serde_json::to_string)
        .transpose()
        .map_err(|source| JournalError::Encode {
            what: "identity",
            source,
        })?;
    connection
        .prepare_cached(
            "INSERT INTO rejections (time_us, peer, reason, detail, caller_id, cvr, identity, mode)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            to_micros(rejection.time),
            rejection.peer,
            rejection.reason.as_str(),
            rejection.detail,
            identity.map(|identity| identity.caller_id.as_str()),
            identity.and_then(|identity| identity.cvr.as_deref()),
            identity_json,
            rejection.mode,
        ])?;
    Ok(connection.last_insert_rowid())
}

fn insert_reload(connection: &Connection, reload: &ReloadRecord) -> Result<i64, JournalError> {
    let files = serde_json::to_string(&reload.files).map_err(|source| JournalError::Encode {
        what: "reloaded files",
        source,
    })?;
    connection
        .prepare_cached(
            "INSERT INTO reloads (time_us, ok, files, rules, error) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            to_micros(reload.time),
            reload.ok,
            files,
            i64::try_from(reload.rules).unwrap_or(i64::MAX),
            reload.error,
        ])?;
    Ok(connection.last_insert_rowid())
}

impl SqliteStore {
    /// Confirms a receipt: the newest call that sent it; the first confirmation stays.
    fn insert_confirmation(
        &self,
        connection: &Connection,
        confirmation: &ConfirmationRecord,
    ) -> Result<i64, JournalError> {
        let call = self
            .call_by_receipt_on(connection, &confirmation.guid)?
            .ok_or_else(|| JournalError::UnknownReceipt {
                guid: confirmation.guid.clone(),
            })?;
        connection
            .prepare_cached(
                "INSERT OR IGNORE INTO confirmations (guid, call_id, time_us, note, supplier)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                confirmation.guid,
                call.id,
                to_micros(confirmation.time),
                confirmation.note,
                confirmation.supplier,
            ])?;
        Ok(call.id)
    }
}

impl JournalStore for SqliteStore {
    fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError> {
        self.append_compressed(entries, &[])
    }

    fn append_compressed(
        &mut self,
        entries: &[Entry],
        compressed: &[Option<Compressed>],
    ) -> Result<Vec<i64>, JournalError> {
        let first_id = self.next_call_id;
        let result = self.append_in_transaction(entries, compressed);
        match (&result, &self.compressor) {
            (Err(_), _) => {
                // The transaction rolled back: nothing it added exists any more.
                *self.caches = Caches::default();
                self.next_call_id = first_id;
                self.call_count = None;
            }
            (Ok(_), Some(compressor)) if compressor.known() < self.caches.dictionaries.len() => {
                // Committed now: callers may compress with them.
                compressor.publish(self.caches.dictionaries.iter());
            }
            (Ok(_), _) => {}
        }
        result
    }

    fn prune(&mut self, retention: &Retention, limit: usize) -> Result<Pruned, JournalError> {
        let result = self.prune_step(retention, limit);
        if result.is_err() {
            *self.caches = Caches::default();
            self.call_count = None;
        }
        result
    }

    fn probe(&mut self) -> Result<(), JournalError> {
        // Real writes of more than a batch of calls needs: they fail while the disk is full,
        // as a batch would (a tiny write may still fit where the failed batch left room).
        self.connection.execute(
            "INSERT OR REPLACE INTO probe (id, bytes) VALUES (1, zeroblob(?1))",
            [PROBE_BYTES],
        )?;
        self.connection.execute("DELETE FROM probe", [])?;
        Ok(())
    }
}

impl SqliteStore {
    /// Writes `entries` in one transaction. BEGIN and COMMIT are cached statements, since
    /// `Connection::transaction` parses both again for every batch. IMMEDIATE: the write lock
    /// is taken at BEGIN, waiting (busy timeout) while the checkpoint thread holds it for a
    /// restarting checkpoint; a deferred transaction that read first would instead fail at its
    /// first write with `SQLITE_BUSY` at once, its snapshot outdated by the restarted log.
    fn append_in_transaction(
        &mut self,
        entries: &[Entry],
        compressed: &[Option<Compressed>],
    ) -> Result<Vec<i64>, JournalError> {
        self.connection
            .prepare_cached("BEGIN IMMEDIATE")?
            .execute([])?;
        let result = self
            .append_entries(entries, compressed)
            .and_then(|(ids, calls)| {
                self.connection.prepare_cached("COMMIT")?.execute([])?;
                Ok((ids, calls))
            });
        match result {
            Ok((ids, calls)) => {
                if let Some(count) = &mut self.call_count {
                    *count += calls;
                }
                Ok(ids)
            }
            Err(error) => {
                if !self.connection.is_autocommit() {
                    // What a dropped `Transaction` does; the error that got here is the one to report.
                    let _ = self.connection.execute_batch("ROLLBACK");
                }
                Err(error)
            }
        }
    }

    /// The inserts of [`SqliteStore::append_in_transaction`]: the ids, and the calls added.
    fn append_entries(
        &mut self,
        entries: &[Entry],
        compressed: &[Option<Compressed>],
    ) -> Result<(Vec<i64>, u64), JournalError> {
        let transaction = &self.connection;
        let mut ids = Vec::with_capacity(entries.len());
        let mut deltas = Deltas::default();
        let mut inserts = Inserts::default();
        let mut calls = 0;
        let mut reset = false;
        for (index, entry) in entries.iter().enumerate() {
            let id = match entry {
                Entry::Call(call) => {
                    let id = self.next_call_id;
                    insert_call(
                        transaction,
                        &mut inserts,
                        &mut self.caches,
                        call,
                        id,
                        self.layout,
                        compressed.get(index).and_then(Option::as_ref),
                        &mut deltas,
                    )?;
                    self.next_call_id += 1;
                    calls += 1;
                    id
                }
                Entry::Rejection(rejection) => insert_rejection(transaction, rejection)?,
                Entry::Confirmation(confirmation) => {
                    flush_certificates(transaction, self.layout, &deltas.certificates)?;
                    deltas.certificates.clear();
                    self.insert_confirmation(transaction, confirmation)?
                }
                Entry::Reset => {
                    // Dictionaries stay: one never changes once written, so the copies
                    // readers keep by id stay right (a new one under a reused id would not).
                    transaction.execute_batch(
                        "DELETE FROM confirmations; DELETE FROM receipts; DELETE FROM call_data;
                         DELETE FROM calls; DELETE FROM rejections; DELETE FROM certificates;
                         DELETE FROM names;",
                    )?;
                    if self.layout.time_receipts {
                        transaction.execute_batch("DELETE FROM receipts_by_time;")?;
                    }
                    if self.layout.counts_apart {
                        transaction.execute_batch(
                            "DELETE FROM certificate_calls; DELETE FROM certificate_suppliers;",
                        )?;
                    }
                    if self.layout.counted {
                        transaction.execute_batch("DELETE FROM call_counts;")?;
                    }
                    deltas = Deltas::default();
                    *self.caches = Caches::default();
                    self.call_count = Some(0);
                    calls = 0;
                    reset = true;
                    0
                }
                Entry::Reload(reload) => insert_reload(transaction, reload)?,
            };
            ids.push(id);
        }
        flush_certificates(transaction, self.layout, &deltas.certificates)?;
        flush_counts(transaction, &mut self.caches, &deltas.counts)?;
        if reset {
            // Ids are never reused: with the calls gone, only `meta` remembers the next one.
            store_next_call_id(transaction, self.next_call_id)?;
        }
        Ok((ids, calls))
    }

    /// One pruning step: removes up to `limit` of the oldest calls beyond `retention`, never one
    /// that onboarding evidence cites (a confirmed receipt's call, a certificate's newest
    /// receipt and newest passing call).
    fn prune_step(&mut self, retention: &Retention, limit: usize) -> Result<Pruned, JournalError> {
        let Some(reason) = self.over_limit(retention)? else {
            return Ok(Pruned::default());
        };
        let mut limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if let (PruneReason::MaxCalls, Some(count), Some(max)) =
            (reason, self.call_count, retention.max_calls)
        {
            // Just down to the limit, not a whole step below it.
            limit = limit.min(i64::try_from(count.saturating_sub(max)).unwrap_or(i64::MAX));
        }
        let cutoff = retention
            .max_age
            .map(|age| to_micros(OffsetDateTime::now_utc() - age));
        let counts = self.layout.counts();
        // IMMEDIATE for the reason given at `append_in_transaction`: the step reads before it
        // deletes.
        let transaction = rusqlite::Transaction::new_unchecked(
            &self.connection,
            rusqlite::TransactionBehavior::Immediate,
        )?;
        // The oldest calls by id; a call whose arrival is not yet too old ends an age step.
        let mut candidates = Vec::new();
        let mut removed_counts: HashMap<CountKey, i64> = HashMap::new();
        {
            let mut statement = transaction.prepare_cached(&format!(
                "SELECT c.id, c.time_us, c.certificate, c.service, c.endpoint, c.operation,
                    c.soap_action, c.outcome, c.fault_code, c.fault_name, c.user_matches
                 FROM calls c
                 WHERE c.id NOT IN (SELECT call_id FROM confirmations)
                   AND c.id NOT IN (SELECT latest_receipt FROM {counts}
                                    WHERE latest_receipt IS NOT NULL)
                   AND c.id NOT IN (SELECT latest_passed FROM {counts}
                                    WHERE latest_passed IS NOT NULL)
                 ORDER BY c.id LIMIT ?1"
            ))?;
            let mut rows = statement.query([limit])?;
            while let Some(row) = rows.next()? {
                let (id, time_us, certificate): (i64, i64, Option<i64>) =
                    (row.get(0)?, row.get(1)?, row.get(2)?);
                if reason == PruneReason::MaxAge && cutoff.is_some_and(|cutoff| time_us >= cutoff) {
                    break;
                }
                let key = CountKey {
                    service: row.get(3)?,
                    endpoint: row.get(4)?,
                    operation: row.get(5)?,
                    soap_action: row.get(6)?,
                    outcome: row.get(7)?,
                    fault_code: row.get(8)?,
                    fault_name: row.get(9)?,
                    user_matches: row.get(10)?,
                };
                *removed_counts.entry(key).or_default() -= 1;
                candidates.push((id, certificate));
            }
        }
        let mut removed_per_certificate: HashMap<i64, i64> = HashMap::new();
        for (_, certificate) in &candidates {
            if let Some(certificate) = certificate {
                *removed_per_certificate.entry(*certificate).or_default() += 1;
            }
        }
        // The candidates in runs of consecutive ids: a gap is a call kept (or an id no call
        // got), so a run's calls go in one range delete per table. Ids come one by one from
        // `next_call_id`, so a step usually is a few runs, split by the calls onboarding keeps.
        let hashed_upto = Self::hashed_receipts_upto(&mut self.caches, &transaction)?;
        for (first, last) in runs(candidates.iter().map(|(id, _)| *id)) {
            self.remove_receipts(&transaction, first, last, hashed_upto)?;
            transaction
                .prepare_cached("DELETE FROM call_data WHERE id BETWEEN ?1 AND ?2")?
                .execute([first, last])?;
            transaction
                .prepare_cached("DELETE FROM calls WHERE id BETWEEN ?1 AND ?2")?
                .execute([first, last])?;
        }
        // Each certificate's first call is now its oldest one left: mostly among the oldest
        // calls of the journal, read in one pass; one not there is looked up by its index.
        let mut firsts: HashMap<i64, i64> = HashMap::new();
        {
            let mut oldest = transaction
                .prepare_cached("SELECT certificate, time_us FROM calls ORDER BY id LIMIT ?1")?;
            let mut rows =
                oldest.query([i64::try_from(2 * candidates.len()).unwrap_or(i64::MAX)])?;
            while firsts.len() < removed_per_certificate.len() {
                let Some(row) = rows.next()? else { break };
                let (certificate, time_us): (Option<i64>, i64) = (row.get(0)?, row.get(1)?);
                if let Some(certificate) =
                    certificate.filter(|id| removed_per_certificate.contains_key(id))
                {
                    firsts.entry(certificate).or_insert(time_us);
                }
            }
        }
        for (certificate, removed) in &removed_per_certificate {
            match firsts.get(certificate) {
                Some(first_us) => transaction
                    .prepare_cached(&format!(
                        "UPDATE {counts} SET calls = calls - ?2, first_us = ?3 WHERE id = ?1"
                    ))?
                    .execute(params![certificate, removed, first_us])?,
                None => transaction
                    .prepare_cached(&format!(
                        "UPDATE {counts} SET calls = calls - ?2,
                            first_us = (SELECT time_us FROM calls WHERE certificate = ?1
                                        ORDER BY id LIMIT 1)
                         WHERE id = ?1"
                    ))?
                    .execute(params![certificate, removed])?,
            };
        }
        if self.layout.counted {
            flush_counts(&transaction, &mut self.caches, &removed_counts)?;
        }
        if !candidates.is_empty() {
            // The newest calls may be among those removed; `meta` remembers the next id.
            store_next_call_id(&transaction, self.next_call_id)?;
        }
        let certificates_left = if self.layout.counts_apart {
            let gone = transaction.execute(
                "DELETE FROM certificates WHERE id IN (SELECT id FROM certificate_calls
                    WHERE calls <= 0 AND latest_receipt IS NULL)",
                [],
            )?;
            transaction.execute(
                "DELETE FROM certificate_calls WHERE calls <= 0 AND latest_receipt IS NULL",
                [],
            )?;
            gone
        } else {
            transaction.execute(
                "DELETE FROM certificates WHERE calls <= 0 AND latest_receipt IS NULL",
                [],
            )?
        };
        if certificates_left > 0 {
            self.caches.certificates.clear();
        }
        // Refused handshakes go by the same limits, oldest first.
        let rejections = match (reason, cutoff) {
            (PruneReason::MaxAge, Some(cutoff)) => transaction.execute(
                "DELETE FROM rejections WHERE id IN
                    (SELECT id FROM rejections WHERE time_us < ?1 ORDER BY id LIMIT ?2)",
                params![cutoff, limit],
            )?,
            _ if candidates.is_empty() => transaction.execute(
                "DELETE FROM rejections WHERE id IN
                    (SELECT id FROM rejections ORDER BY id LIMIT ?1)",
                [limit],
            )?,
            _ => 0,
        };
        transaction.commit()?;
        let calls = candidates.len() as u64;
        if let Some(count) = &mut self.call_count {
            *count = count.saturating_sub(calls);
        }
        Ok(Pruned {
            calls,
            rejections: rejections as u64,
            reason: Some(reason),
        })
    }

    /// The first limit of `retention` the journal is over, if any.
    fn over_limit(&mut self, retention: &Retention) -> Result<Option<PruneReason>, JournalError> {
        if let Some(max) = retention.max_calls {
            let count = match self.call_count {
                Some(count) => count,
                None => {
                    let count: i64 =
                        self.connection
                            .query_row("SELECT COUNT(*) FROM calls", [], |row| row.get(0))?;
                    let count = u64::try_from(count).unwrap_or(0);
                    self.call_count = Some(count);
                    count
                }
            };
            if count > max {
                return Ok(Some(PruneReason::MaxCalls));
            }
        }
        if let Some(age) = retention.max_age {
            let oldest: Option<i64> = self
                .connection
                .prepare_cached("SELECT time_us FROM calls ORDER BY id LIMIT 1")?
                .query_row([], |row| row.get(0))
                .optional()?;
            let cutoff = to_micros(OffsetDateTime::now_utc() - age);
            let old_rejection: Option<i64> = self
                .connection
                .prepare_cached("SELECT id FROM rejections WHERE time_us < ?1 LIMIT 1")?
                .query_row([cutoff], |row| row.get(0))
                .optional()?;
            if oldest.is_some_and(|oldest| oldest < cutoff) || old_rejection.is_some() {
                return Ok(Some(PruneReason::MaxAge));
            }
        }
        if let Some(max) = retention.max_size {
            if self.size_on_disk()? > max {
                return Ok(Some(PruneReason::MaxSize));
            }
        }
        Ok(None)
    }
}

/// Ascending `ids` as runs of consecutive ones, each as its first and last.
fn runs(ids: impl IntoIterator<Item = i64>) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for id in ids {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// Lets a connection's cached statements keep their compiled plans. SQLite marks a statement
/// to be compiled again once its bindings are cleared if a bound value could change its plan
/// (in SQLite 3.54 some statements filtering on a bound value, such as the read of a call by
/// id), and the statement cache clears the bindings of every statement it takes back: the
/// read of each call a pruning step removed was parsed and planned again every time, a third
/// of the writer's time while pruning. With the query planner stability guarantee a plan
/// never depends on a bound value; the journal runs no ANALYZE and binds no LIKE patterns, so
/// it loses nothing by that.
fn keep_plans(connection: &Connection) -> rusqlite::Result<()> {
    connection.set_prepared_statement_cache_capacity(64);
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

// Reading.

/// The columns [`SqliteStore::call_from_row`] reads, in its order, for a `WHERE` clause to
/// follow.
macro_rules! select_call {
    () => {
        "SELECT c.id, c.time_us, c.http_status, c.latency_us, k.identity,
            d.dictionary, d.data
        FROM calls c LEFT JOIN certificates k ON k.id = c.certificate JOIN call_data d ON d.id = c.id"
    };
}
const SELECT_CALL: &str = select_call!();
/// One call by id.
pub(super) const SELECT_CALL_BY_ID: &str = concat!(select_call!(), " WHERE c.id = ?1");

impl SqliteStore {
    fn dictionary_bytes(
        &self,
        connection: &Connection,
        id: i64,
    ) -> Result<Arc<Vec<u8>>, JournalError> {
        if id == 0 {
            return Ok(Arc::new(Vec::new()));
        }
        if let Some(bytes) = self.dictionaries.borrow().get(&id) {
            return Ok(Arc::clone(bytes));
        }
        let bytes: Vec<u8> = connection
            .prepare_cached("SELECT bytes FROM dictionaries WHERE id = ?1")?
            .query_row([id], |row| row.get(0))
            .optional()?
            .ok_or_else(|| JournalError::Corrupt {
                table: "dictionaries",
                id,
                column: "bytes",
                reason: "missing".to_owned(),
            })?;
        let bytes = Arc::new(bytes);
        self.dictionaries
            .borrow_mut()
            .insert(id, Arc::clone(&bytes));
        Ok(bytes)
    }

    fn call_from_row(
        &self,
        connection: &Connection,
        row: &Row<'_>,
    ) -> Result<StoredCall, JournalError> {
        let dictionary = self.dictionary_bytes(connection, row.get(5)?)?;
        codec::call_from_parts(
            codec::HotParts {
                id: row.get(0)?,
                time_us: row.get(1)?,
                http_status: row.get(2)?,
                latency_us: row.get(3)?,
                identity: row.get(4)?,
                data: row.get(6)?,
            },
            &dictionary,
        )
    }

    fn query_calls_on(
        &self,
        connection: &Connection,
        sql: &str,
        values: &[Param],
    ) -> Result<Vec<StoredCall>, JournalError> {
        let mut statement = connection.prepare_cached(sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(values))?;
        let mut calls = Vec::new();
        while let Some(row) = rows.next()? {
            calls.push(self.call_from_row(connection, row)?);
        }
        Ok(calls)
    }

    /// The statement listing the calls of `query` and its values; `None` when no call can
    /// match. Calls go newest first by id, walking the ids down (or up, after a cursor) until
    /// enough match: quick when matches are common among the newest calls. A time window of
    /// only a few calls (an idle hour, `--since` later than the last call) would walk every
    /// newer call in vain; such a window, alone or with criteria that have no index to drive
    /// them, is read from the time index, the few calls' ids sorted.
    pub(super) fn list_statement(
        &self,
        query: &CallQuery,
    ) -> Result<Option<(String, Vec<Param>)>, JournalError> {
        let mut filter = self.filter(query)?;
        if filter.never {
            return Ok(None);
        }
        let order = if query.after_id.is_some() {
            "ASC"
        } else {
            "DESC"
        };
        let limit = Param::Int(effective_limit(query.limit));
        let sql = if !filter.per_call && self.window_is_sparse(&filter)? {
            format!(
                "{SELECT_CALL} WHERE c.id IN (SELECT c.id FROM calls c INDEXED BY calls_time {}
                    ORDER BY c.id {order} LIMIT ?) ORDER BY c.id {order}",
                filter.where_clause()
            )
        } else {
            format!(
                "{SELECT_CALL} {} ORDER BY c.id {order} LIMIT ?",
                filter.where_clause()
            )
        };
        filter.values.push(limit);
        Ok(Some((sql, filter.values)))
    }

    /// Whether `filter` has a time window holding fewer than [`SPARSE_WINDOW`] calls (counted
    /// in the time index, as far as that).
    fn window_is_sparse(&self, filter: &Filter) -> Result<bool, JournalError> {
        let (condition, values) = match (filter.since, filter.until) {
            (None, None) => return Ok(false),
            (Some(since), None) => ("time_us >= ?1", vec![since]),
            (None, Some(until)) => ("time_us < ?1", vec![until]),
            (Some(since), Some(until)) => ("time_us >= ?1 AND time_us < ?2", vec![since, until]),
        };
        let counted: i64 = self
            .connection
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM calls INDEXED BY calls_time
                    WHERE {condition} LIMIT {SPARSE_WINDOW})"
            ))?
            .query_row(rusqlite::params_from_iter(values), |row| row.get(0))?;
        Ok(counted < SPARSE_WINDOW)
    }

    /// The largest call id with a row in `receipts` (0: none), remembered from the first
    /// pruning step on: calls after it have their receipts in `receipts_by_time` alone, which
    /// spares their removal a look into one of `receipts`' 256 buckets per receipt.
    fn hashed_receipts_upto(
        caches: &mut Caches,
        connection: &Connection,
    ) -> Result<i64, JournalError> {
        if let Some(upto) = caches.hashed_receipts_upto {
            return Ok(upto);
        }
        let mut statement =
            connection.prepare_cached("SELECT max(call_id) FROM receipts WHERE bucket = ?1")?;
        let mut upto = 0;
        for bucket in 0..256 {
            let last: Option<i64> = statement.query_row([bucket], |row| row.get(0))?;
            upto = upto.max(last.unwrap_or(0));
        }
        caches.hashed_receipts_upto = Some(upto);
        Ok(upto)
    }

    /// Removes the receipt index rows of calls `first..=last`, found by reading each call's
    /// receipts from its blob (a call's own receipts decide, as a look-up does).
    fn remove_receipts(
        &self,
        connection: &Connection,
        first: i64,
        last: i64,
        hashed_upto: i64,
    ) -> Result<(), JournalError> {
        let mut sent = Vec::new();
        {
            let mut statement = connection.prepare_cached(
                "SELECT id, dictionary, data FROM call_data WHERE id BETWEEN ?1 AND ?2",
            )?;
            let mut rows = statement.query([first, last])?;
            while let Some(row) = rows.next()? {
                let (id, dictionary): (i64, i64) = (row.get(0)?, row.get(1)?);
                let dictionary = self.dictionary_bytes(connection, dictionary)?;
                let data = row.get_ref(2)?.as_blob().map_err(|error| {
                    rusqlite::Error::FromSqlConversionFailure(
                        2,
                        rusqlite::types::Type::Blob,
                        Box::new(error),
                    )
                })?;
                let receipts = codec::receipts_from_data(data, &dictionary).map_err(|reason| {
                    JournalError::Corrupt {
                        table: "call_data",
                        id,
                        column: "data",
                        reason,
                    }
                })?;
                if !receipts.is_empty() {
                    sent.push((id, receipts));
                }
            }
        }
        for (id, receipts) in &sent {
            for guid in receipts {
                if let Some(key) =
                    codec::receipt_time_key(guid).filter(|_| self.layout.time_receipts)
                {
                    connection
                        .prepare_cached(
                            "DELETE FROM receipts_by_time WHERE key = ?1 AND call_id = ?2",
                        )?
                        .execute(params![key, id])?;
                }
                // A version-7 GUID journaled before version 7 is in `receipts`, too.
                if *id <= hashed_upto {
                    let key = codec::receipt_key(guid);
                    connection
                        .prepare_cached("DELETE FROM receipts WHERE bucket = ?1 AND call_id = ?2")?
                        .execute(params![codec::receipt_bucket(key), id])?;
                }
            }
        }
        Ok(())
    }

    fn call_on(
        &self,
        connection: &Connection,
        id: i64,
    ) -> Result<Option<StoredCall>, JournalError> {
        Ok(self
            .query_calls_on(connection, SELECT_CALL_BY_ID, &[Param::Int(id)])?
            .pop())
    }

    fn call_by_receipt_on(
        &self,
        connection: &Connection,
        guid: &str,
    ) -> Result<Option<StoredCall>, JournalError> {
        // A version-7 GUID is in the time-ordered index, unless it was journaled before
        // version 7: then, like every other GUID, under its hash.
        if let Some(key) = codec::receipt_time_key(guid).filter(|_| self.layout.time_receipts) {
            let found = self.newest_call_sending(
                connection,
                guid,
                "SELECT call_id FROM receipts_by_time WHERE key = ?1 ORDER BY call_id DESC",
                params![key],
            )?;
            if found.is_some() {
                return Ok(found);
            }
        }
        let key = codec::receipt_key(guid);
        self.newest_call_sending(
            connection,
            guid,
            "SELECT call_id FROM receipts WHERE bucket = ?1 AND key = ?2 ORDER BY call_id DESC",
            params![codec::receipt_bucket(key), key],
        )
    }

    /// The newest of the calls `candidates` selects (ids, newest first) that sent `guid`: keys
    /// may collide, so each candidate's own receipts decide.
    fn newest_call_sending(
        &self,
        connection: &Connection,
        guid: &str,
        candidates: &str,
        key: impl rusqlite::Params,
    ) -> Result<Option<StoredCall>, JournalError> {
        let ids: Vec<i64> = connection
            .prepare_cached(candidates)?
            .query_map(key, |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for id in ids {
            if let Some(call) = self.call_on(connection, id)? {
                if call.record.receipts.iter().any(|sent| sent == guid) {
                    return Ok(Some(call));
                }
            }
        }
        Ok(None)
    }
}

fn rejection_from_row(row: &Row<'_>) -> Result<StoredRejection, JournalError> {
    const TABLE: &str = "rejections";
    let id: i64 = row.get("id")?;
    let reason: String = row.get("reason")?;
    let record = RejectionRecord {
        time: schema::time_column(row, TABLE, id)?,
        peer: row.get("peer")?,
        reason: RejectionReason::parse(&reason).ok_or_else(|| JournalError::Corrupt {
            table: TABLE,
            id,
            column: "reason",
            reason: format!("unknown reason {reason:?}"),
        })?,
        detail: row.get("detail")?,
        identity: schema::json_column(row, TABLE, id, "identity")?,
        mode: row.get("mode")?,
    };
    Ok(StoredRejection { id, record })
}

fn time_value(micros: Option<i64>, table: &'static str) -> Result<OffsetDateTime, JournalError> {
    from_micros(micros.unwrap_or(0)).map_err(|error| JournalError::Corrupt {
        table,
        id: 0,
        column: "time_us",
        reason: error.to_string(),
    })
}

impl JournalReader for SqliteStore {
    fn calls(&self, query: &CallQuery) -> Result<Vec<StoredCall>, JournalError> {
        match self.list_statement(query)? {
            Some((sql, values)) => self.query_calls_on(&self.connection, &sql, &values),
            None => Ok(Vec::new()),
        }
    }

    fn count_calls(&self, query: &CallQuery) -> Result<u64, JournalError> {
        let filter = self.filter(query)?;
        if filter.never {
            return Ok(0);
        }
        match self.count_from_totals(&filter)? {
            Some(count) => Ok(count),
            None => self.count_filter(&filter),
        }
    }

    fn count_each(&self, queries: &[CallQuery]) -> Result<Vec<u64>, JournalError> {
        let mut counts = vec![0; queries.len()];
        // What the totals cannot answer, counted from the calls.
        let (mut rest, mut rest_queries, mut rest_filters) = (Vec::new(), Vec::new(), Vec::new());
        for (index, query) in queries.iter().enumerate() {
            let filter = self.filter(query)?;
            if filter.never {
                continue;
            }
            match self.count_from_totals(&filter)? {
                Some(count) => counts[index] = count,
                None => {
                    rest.push(index);
                    rest_queries.push(query.clone());
                    rest_filters.push(filter);
                }
            }
        }
        if !rest.is_empty() {
            let counted = filter::count_each(
                &rest_queries,
                rest_filters,
                |filter| self.count_filter(filter),
                |filters| self.count_in_one_pass(filters),
            )?;
            for (index, count) in rest.into_iter().zip(counted) {
                counts[index] = count;
            }
        }
        Ok(counts)
    }

    fn call(&self, id: i64) -> Result<Option<StoredCall>, JournalError> {
        self.call_on(&self.connection, id)
    }

    fn call_by_receipt(&self, guid: &str) -> Result<Option<StoredCall>, JournalError> {
        self.call_by_receipt_on(&self.connection, guid)
    }

    fn rejections(&self, query: &RejectionQuery) -> Result<Vec<StoredRejection>, JournalError> {
        let mut filter = filter::rejection_filter(query)?;
        let sql = format!(
            "SELECT id, time_us, peer, reason, detail, identity, mode FROM rejections {} \
             ORDER BY id DESC LIMIT ?",
            filter.where_clause()
        );
        filter.values.push(Param::Int(effective_limit(query.limit)));
        let mut statement = self.connection.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(filter.values))?;
        let mut rejections = Vec::new();
        while let Some(row) = rows.next()? {
            rejections.push(rejection_from_row(row)?);
        }
        Ok(rejections)
    }

    fn confirmation(&self, guid: &str) -> Result<Option<StoredConfirmation>, JournalError> {
        Ok(self
            .query_confirmations("WHERE f.guid = ?1", vec![Param::Text(guid.to_owned())])?
            .pop())
    }

    fn confirmations(&self, limit: usize) -> Result<Vec<StoredConfirmation>, JournalError> {
        self.query_confirmations("", vec![Param::Int(effective_limit(limit))])
    }

    fn callers(&self, limit: usize) -> Result<Vec<CallerSummary>, JournalError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT k.caller_id, MAX(k.cvr), SUM(n.calls), MIN(n.first_us), MAX(n.last_us),
                MAX(n.latest_receipt), MAX(n.latest_passed)
             FROM certificates k JOIN certificate_calls n ON n.id = k.id WHERE n.calls > 0
             GROUP BY k.caller_id ORDER BY MAX(n.last_us) DESC LIMIT ?1",
        )?;
        let mut rows = statement.query([effective_limit(limit)])?;
        let mut callers = Vec::new();
        while let Some(row) = rows.next()? {
            callers.push(CallerSummary {
                caller_id: row.get(0)?,
                cvr: row.get(1)?,
                calls: row.get(2)?,
                first_seen: time_value(row.get(3)?, "certificates")?,
                last_seen: time_value(row.get(4)?, "certificates")?,
                latest_receipt: row.get(5)?,
                latest_passed: row.get(6)?,
            });
        }
        Ok(callers)
    }

    fn certificates(&self) -> Result<Vec<CertificateSummary>, JournalError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT k.id, k.identity, n.calls, n.first_us, n.last_us, n.latest_receipt,
                n.latest_passed
             FROM certificates k JOIN certificate_calls n ON n.id = k.id WHERE n.calls > 0
             ORDER BY n.last_us DESC",
        )?;
        let mut rows = statement.query([])?;
        let mut certificates = Vec::new();
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let identity: String = row.get(1)?;
            certificates.push(CertificateSummary {
                identity: serde_json::from_str(&identity).map_err(|error| {
                    JournalError::Corrupt {
                        table: "certificates",
                        id,
                        column: "identity",
                        reason: error.to_string(),
                    }
                })?,
                calls: row.get(2)?,
                first_seen: time_value(row.get(3)?, "certificates")?,
                last_seen: time_value(row.get(4)?, "certificates")?,
                latest_receipt: row.get(5)?,
                latest_passed: row.get(6)?,
            });
        }
        Ok(certificates)
    }

    fn reloads(&self, limit: usize) -> Result<Vec<StoredReload>, JournalError> {
        SqliteStore::reloads(self, limit)
    }
}

impl SqliteStore {
    /// The WHERE clause of `query`, its names and certificates looked up first.
    fn filter(&self, query: &CallQuery) -> Result<Filter, JournalError> {
        call_filter(query, Dialect::Sqlite, &mut |sql, values| {
            let mut statement = self.connection.prepare_cached(sql)?;
            let ids = statement
                .query_map(rusqlite::params_from_iter(values), |row| row.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(ids)
        })
    }

    /// The count of `filter` from the totals in `call_counts` when it asks only about their
    /// columns and perhaps a time window: the totals, less the calls outside the window that
    /// meet the rest (read by the time index when there are at most [`MAX_OUTSIDE_WINDOW`]).
    /// `None`: count the calls.
    fn count_from_totals(&self, filter: &Filter) -> Result<Option<u64>, JournalError> {
        if !self.layout.counted || filter.per_call {
            return Ok(None);
        }
        let totals = filter.without(&filter.window);
        let sql = format!(
            "SELECT COALESCE(SUM(c.calls), 0) FROM call_counts c {}",
            totals.where_clause()
        );
        let total: i64 = self
            .connection
            .prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(&totals.values), |row| row.get(0))?;
        let (outside, bounds) = match (filter.since, filter.until) {
            (None, None) => return Ok(Some(u64::try_from(total).unwrap_or(0))),
            (Some(since), None) => ("c.time_us < ?", vec![Param::Int(since)]),
            (None, Some(until)) => ("c.time_us >= ?", vec![Param::Int(until)]),
            (Some(since), Some(until)) => (
                "(c.time_us < ? OR c.time_us >= ?)",
                vec![Param::Int(since), Param::Int(until)],
            ),
        };
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM calls c WHERE {outside} LIMIT {MAX_OUTSIDE_WINDOW})"
        );
        let calls_outside: i64 = self
            .connection
            .prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(&bounds), |row| row.get(0))?;
        if calls_outside >= MAX_OUTSIDE_WINDOW {
            return Ok(None);
        }
        let mut taken_off = 0;
        if calls_outside > 0 {
            // The time index drives: the rest's columns behind a unary +.
            let mut outside_filter = totals.unindexed();
            outside_filter.add(false, outside, bounds);
            taken_off = self.count_filter(&outside_filter)?;
        }
        Ok(Some(
            u64::try_from(total).unwrap_or(0).saturating_sub(taken_off),
        ))
    }

    fn count_filter(&self, filter: &Filter) -> Result<u64, JournalError> {
        let sql = format!("SELECT COUNT(*) FROM calls c {}", filter.where_clause());
        let count: i64 = self
            .connection
            .prepare_cached(&sql)?
            .query_row(rusqlite::params_from_iter(&filter.values), |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Counts each of `filters` in one pass over the calls.
    fn count_in_one_pass(&self, filters: &[Filter]) -> Result<Vec<u64>, JournalError> {
        let mut sums = Vec::with_capacity(filters.len());
        let mut values = Vec::new();
        for filter in filters {
            sums.push(filter.counted());
            values.extend(filter.values.iter().cloned());
        }
        let sql = format!("SELECT {} FROM calls c", sums.join(", "));
        let mut statement = self.connection.prepare_cached(&sql)?;
        let counts = statement.query_row(rusqlite::params_from_iter(&values), |row| {
            (0..filters.len())
                .map(|index| row.get::<_, i64>(index))
                .collect::<Result<Vec<_>, _>>()
        })?;
        Ok(counts
            .into_iter()
            .map(|count| u64::try_from(count).unwrap_or(0))
            .collect())
    }
}

impl SqliteStore {
    /// The latest scenario reloads, newest first (also [`JournalReader::reloads`]).
    pub fn reloads(&self, limit: usize) -> Result<Vec<StoredReload>, JournalError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT id, time_us, ok, files, rules, error FROM reloads ORDER BY id DESC LIMIT ?1",
        )?;
        let mut rows = statement.query([effective_limit(limit)])?;
        let mut reloads = Vec::new();
        while let Some(row) = rows.next()? {
            const TABLE: &str = "reloads";
            let id: i64 = row.get("id")?;
            let rules: i64 = row.get("rules")?;
            reloads.push(StoredReload {
                id,
                record: ReloadRecord {
                    time: schema::time_column(row, TABLE, id)?,
                    ok: row.get("ok")?,
                    files: schema::json_column(row, TABLE, id, "files")?.unwrap_or_default(),
                    rules: usize::try_from(rules).unwrap_or(0),
                    error: row.get("error")?,
                },
            });
        }
        Ok(reloads)
    }

    /// Confirmations joined with their call's certificate; `filter` is a WHERE clause (or empty,
    /// then the last value is the limit).
    fn query_confirmations(
        &self,
        filter: &str,
        values: Vec<Param>,
    ) -> Result<Vec<StoredConfirmation>, JournalError> {
        let limit = if filter.is_empty() { "LIMIT ?1" } else { "" };
        let sql = format!(
            "SELECT f.guid, f.call_id, f.time_us, f.note, k.caller_id, f.supplier, s.text,
                k.fingerprint
             FROM confirmations f
             LEFT JOIN calls c ON c.id = f.call_id
             LEFT JOIN certificates k ON k.id = c.certificate
             LEFT JOIN names s ON s.id = c.supplier
             {filter} ORDER BY f.time_us DESC {limit}"
        );
        let mut statement = self.connection.prepare_cached(&sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(values))?;
        let mut confirmations = Vec::new();
        while let Some(row) = rows.next()? {
            let call_id: i64 = row.get(1)?;
            let time = from_micros(row.get(2)?).map_err(|error| JournalError::Corrupt {
                table: "confirmations",
                id: call_id,
                column: "time_us",
                reason: error.to_string(),
            })?;
            confirmations.push(StoredConfirmation {
                call_id,
                caller_id: row.get(4)?,
                call_supplier: row.get(6)?,
                fingerprint: row.get(7)?,
                record: ConfirmationRecord {
                    guid: row.get(0)?,
                    time,
                    note: row.get(3)?,
                    supplier: row.get(5)?,
                },
            });
        }
        Ok(confirmations)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_split_at_every_gap() {
        assert_eq!(super::runs([]), []);
        assert_eq!(super::runs([4]), [(4, 4)]);
        assert_eq!(super::runs([1, 2, 3, 5, 7, 8]), [(1, 3), (5, 5), (7, 8)]);
    }
}

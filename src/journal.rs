//! The durable journal: every SOAP call and every refused TLS handshake, and the queries over them.
//!
//! This module owns
//! - the records ([`CallRecord`], [`RejectionRecord`], [`ConfirmationRecord`]) and what a query
//!   returns ([`StoredCall`], [`StoredRejection`], [`StoredConfirmation`], [`CallerSummary`]);
//! - the group-commit writer ([`Journal`]): one OS thread owns the write connection, takes whatever
//!   is queued (up to [`MAX_BATCH`] entries), writes it in one transaction and only then answers
//!   each caller, so a response is never sent before its call is committed and the hot path never
//!   waits on the disk once per call; the admin side's writes (receipt confirmations, reset) take
//!   the same queue;
//! - the storage interface ([`JournalStore`], [`JournalReader`]) and its embedded implementation
//!   ([`SqliteStore`]), with a versioned schema ([`MIGRATIONS`]).
//!
//! Times are stored as integer microseconds since the Unix epoch (UTC), so numeric order is time
//! order; sub-microsecond precision is dropped.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

pub use crate::wsdl::validate::Finding;

/// How many entries may wait for the writer; `record_*` wait for space beyond this, so memory
/// stays bounded when the disk is slower than the callers.
pub const QUEUE_CAPACITY: usize = 8192;

/// The most entries the writer puts in one transaction.
pub const MAX_BATCH: usize = 512;

/// Rows a query returns when [`CallQuery::limit`] or [`RejectionQuery::limit`] is 0.
pub const DEFAULT_LIMIT: usize = 50;

/// The most rows one query returns, whatever limit is asked for.
pub const MAX_LIMIT: usize = 10_000;

/// How long a connection waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema, one step per entry; entry `n` (0-based) takes the database from `user_version` `n`
/// to `n + 1`. Steps are applied in order, inside one transaction. Never edit a released step:
/// append a new one (e.g. `"ALTER TABLE calls ADD COLUMN supplier TEXT;"`), then read and write the
/// new column in [`SqliteStore`].
pub const MIGRATIONS: &[&str] = &[
    // 1: calls, their receipts, refused handshakes.
    "CREATE TABLE calls (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: a stable cursor
        time_us             INTEGER NOT NULL,  -- arrival, microseconds since the Unix epoch, UTC
        peer                TEXT NOT NULL,
        tls_version         TEXT NOT NULL,
        cipher_suite        TEXT NOT NULL,
        alpn                TEXT,
        caller_id           TEXT,              -- copied out of identity, for filtering
        cvr                 TEXT,              -- copied out of identity, for filtering
        identity            TEXT,              -- IdentityFields as JSON
        method              TEXT NOT NULL,
        path                TEXT NOT NULL,
        soap_version        TEXT,
        soap_action         TEXT,
        operation           TEXT,
        operation_namespace TEXT,
        star_headers        TEXT,              -- JSON object
        request_body        BLOB NOT NULL,
        request_truncated   INTEGER NOT NULL,
        response_body       BLOB NOT NULL,
        response_truncated  INTEGER NOT NULL,
        http_status         INTEGER NOT NULL,
        receipts            TEXT NOT NULL,     -- JSON array of GUIDs, as sent
        outcome             TEXT NOT NULL,     -- 'receipt' | 'fault' | 'http'
        fault_code          INTEGER,           -- STAR's numeric fault code, if any
        soap_fault_code     TEXT,              -- 'Client' / 'Sender' / 'Server' / 'Receiver'
        detail              TEXT,
        latency_us          INTEGER NOT NULL
    );
    CREATE INDEX calls_time ON calls (time_us);
    CREATE INDEX calls_caller_id ON calls (caller_id);
    CREATE INDEX calls_cvr ON calls (cvr);
    CREATE INDEX calls_operation ON calls (operation);
    CREATE INDEX calls_path ON calls (path);
    -- A receipt GUID leads back to the latest call that sent it.
    CREATE TABLE receipts (
        guid    TEXT PRIMARY KEY,
        call_id INTEGER NOT NULL REFERENCES calls (id)
    ) WITHOUT ROWID;
    CREATE INDEX receipts_call_id ON receipts (call_id);
    CREATE TABLE rejections (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        time_us   INTEGER NOT NULL,
        peer      TEXT NOT NULL,
        reason    TEXT NOT NULL,               -- RejectionReason::as_str
        detail    TEXT NOT NULL,
        caller_id TEXT,
        cvr       TEXT,
        identity  TEXT,                        -- IdentityFields as JSON
        mode      TEXT NOT NULL
    );
    CREATE INDEX rejections_time ON rejections (time_us);",
    // 2: receipts a supplier confirmed having received (step 3 of STAR's onboarding test).
    "CREATE TABLE confirmations (
        guid    TEXT PRIMARY KEY,              -- the receipt's MessageIdentifier
        call_id INTEGER NOT NULL,              -- the call that sent it, when confirmed
        time_us INTEGER NOT NULL,              -- first confirmation; later ones change nothing
        note    TEXT
    ) WITHOUT ROWID;",
    // 3: which scenario rule answered each call; the journal of scenario reloads.
    "ALTER TABLE calls ADD COLUMN scenario_file TEXT;  -- NULL: no rule (see scenario_rule)
    ALTER TABLE calls ADD COLUMN scenario_rule TEXT;  -- rule name, 'default', or NULL (not decided)
    CREATE TABLE reloads (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        time_us INTEGER NOT NULL,
        ok      INTEGER NOT NULL,                   -- 1: the new rules are in force
        files   TEXT NOT NULL,                      -- JSON array of the files read
        rules   INTEGER NOT NULL,                   -- rules in force afterwards
        error   TEXT                                -- why the new files were refused
    );",
    // 4: what the WSDL catalog made of a call.
    "ALTER TABLE calls ADD COLUMN service TEXT;            -- WSDL service name, when routed
    ALTER TABLE calls ADD COLUMN service_operation TEXT;  -- WSDL operation name, when routed
    ALTER TABLE calls ADD COLUMN findings TEXT;           -- JSON array of schema findings
    CREATE INDEX calls_service ON calls (service);",
    // 5: the supplier registry's decision on each call, its identity checks, and who confirmed.
    "ALTER TABLE calls ADD COLUMN supplier TEXT;           -- registered supplier of the certificate
    ALTER TABLE calls ADD COLUMN authorization TEXT;      -- 'open' | 'allowed' | 'refused <code>'
    ALTER TABLE calls ADD COLUMN identity_findings TEXT;  -- JSON array of supplier::Finding
    ALTER TABLE confirmations ADD COLUMN supplier TEXT;   -- the supplier that confirmed, if named
    CREATE INDEX calls_supplier ON calls (supplier);",
];

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

/// A flattened copy of the caller's certificate identity, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityFields {
    pub caller_id: String,
    pub kind: String,
    pub cvr: Option<String>,
    pub common_name: Option<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub fingerprint: String,
    /// RFC 3339 text.
    pub not_before: String,
    /// RFC 3339 text.
    pub not_after: String,
}

/// How a call was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A SOAP answer carrying receipts.
    Receipt,
    /// A SOAP fault.
    Fault {
        /// STAR's numeric fault code, when the fault carries one.
        code: Option<i64>,
        /// The SOAP fault code: "Client"/"Server" (1.1) or "Sender"/"Receiver" (1.2).
        fault_code: String,
    },
    /// A plain HTTP answer, not SOAP (wrong method, unknown path, ...).
    Http,
}

impl Outcome {
    /// A short label: "receipt", "fault 1014", "fault Client", "http".
    pub fn label(&self) -> String {
        match self {
            Outcome::Receipt => "receipt".to_owned(),
            Outcome::Fault {
                code: Some(code), ..
            } => format!("fault {code}"),
            Outcome::Fault {
                code: None,
                fault_code,
            } => format!("fault {fault_code}"),
            Outcome::Http => "http".to_owned(),
        }
    }

    /// The value of the `outcome` column.
    fn kind(&self) -> &'static str {
        match self {
            Outcome::Receipt => "receipt",
            Outcome::Fault { .. } => "fault",
            Outcome::Http => "http",
        }
    }
}

/// One SOAP (or non-SOAP) call as it reached the mock and was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When the request arrived (UTC; stored to the microsecond).
    #[serde(with = "rfc3339")]
    pub time: OffsetDateTime,
    /// "127.0.0.1:51234".
    pub peer: String,
    /// "TLSv1.3".
    pub tls_version: String,
    /// "TLS13_AES_128_GCM_SHA256".
    pub cipher_suite: String,
    /// "h2" / "http/1.1".
    pub alpn: Option<String>,
    /// None when no (valid) certificate was presented (diagnose mode).
    pub identity: Option<IdentityFields>,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// "1.1" / "1.2".
    pub soap_version: Option<String>,
    pub soap_action: Option<String>,
    /// Local name of the first Body child.
    pub operation: Option<String>,
    pub operation_namespace: Option<String>,
    /// The STAR header values extracted (a JSON object).
    pub star_headers: Option<serde_json::Value>,
    /// Already capped by the caller. JSON shows it as UTF-8 text (lossy).
    #[serde(with = "body_text")]
    pub request_body: Vec<u8>,
    pub request_truncated: bool,
    /// JSON shows it as UTF-8 text (lossy).
    #[serde(with = "body_text")]
    pub response_body: Vec<u8>,
    pub response_truncated: bool,
    /// 0 when no HTTP response was sent (a scenario's connection fault).
    pub http_status: u16,
    /// Receipt GUIDs sent in the response.
    pub receipts: Vec<String>,
    pub outcome: Outcome,
    /// Human-readable reason for faults and refusals.
    pub detail: Option<String>,
    /// Stored saturated at `i64::MAX`.
    pub latency_micros: u64,
    /// The scenario file whose rule answered, if a rule did.
    #[serde(default)]
    pub scenario_file: Option<String>,
    /// The rule that answered, `"default"` when no rule matched, `None` when the call never
    /// reached the scenarios (refused or malformed).
    #[serde(default)]
    pub scenario_rule: Option<String>,
    /// The catalog service the call was routed to (its WSDL service name).
    #[serde(default)]
    pub service: Option<String>,
    /// The WSDL operation the call was matched to.
    #[serde(default)]
    pub service_operation: Option<String>,
    /// Where the request departs from its schema (validation `report` or `enforce`).
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// The registered supplier the certificate belongs to (also on refused calls).
    #[serde(default)]
    pub supplier: Option<String>,
    /// The registry's decision: `open`, `allowed`, `refused 1013`; `None`: not authorized
    /// (refused before, or journaled by an older version).
    #[serde(default)]
    pub authorization: Option<String>,
    /// The identity checks that did not pass ([`crate::supplier::identity_findings`]); empty
    /// with an `authorization` means they all passed.
    #[serde(default)]
    pub identity_findings: Vec<crate::supplier::Finding>,
}

/// One attempt to load the scenario files, at start, on a file change or on a signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadRecord {
    #[serde(with = "rfc3339")]
    pub time: OffsetDateTime,
    /// Whether the new rules are now in force; when not, the previous ones still are.
    pub ok: bool,
    /// The files read.
    pub files: Vec<String>,
    /// Rules in force afterwards.
    pub rules: usize,
    /// Why the new files were refused.
    pub error: Option<String>,
}

/// A journaled reload and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReload {
    pub id: i64,
    #[serde(flatten)]
    pub record: ReloadRecord,
}

/// Why a TLS handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    NoCertificate,
    UnknownCa,
    Expired,
    NotYetValid,
    WrongKeyUsage,
    Revoked,
    BadSignature,
    BadCertificate,
    HandshakeTimeout,
    ProtocolError,
    Other,
}

impl RejectionReason {
    /// Every reason, in declaration order.
    pub const ALL: [RejectionReason; 11] = [
        RejectionReason::NoCertificate,
        RejectionReason::UnknownCa,
        RejectionReason::Expired,
        RejectionReason::NotYetValid,
        RejectionReason::WrongKeyUsage,
        RejectionReason::Revoked,
        RejectionReason::BadSignature,
        RejectionReason::BadCertificate,
        RejectionReason::HandshakeTimeout,
        RejectionReason::ProtocolError,
        RejectionReason::Other,
    ];

    /// The snake_case name, as in JSON and in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectionReason::NoCertificate => "no_certificate",
            RejectionReason::UnknownCa => "unknown_ca",
            RejectionReason::Expired => "expired",
            RejectionReason::NotYetValid => "not_yet_valid",
            RejectionReason::WrongKeyUsage => "wrong_key_usage",
            RejectionReason::Revoked => "revoked",
            RejectionReason::BadSignature => "bad_signature",
            RejectionReason::BadCertificate => "bad_certificate",
            RejectionReason::HandshakeTimeout => "handshake_timeout",
            RejectionReason::ProtocolError => "protocol_error",
            RejectionReason::Other => "other",
        }
    }

    /// The reason named by [`RejectionReason::as_str`], if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One refused TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionRecord {
    /// When the connection arrived (UTC; stored to the microsecond).
    #[serde(with = "rfc3339")]
    pub time: OffsetDateTime,
    pub peer: String,
    pub reason: RejectionReason,
    /// The TLS library's message.
    pub detail: String,
    /// Of the presented certificate, where one was presented and parsed.
    pub identity: Option<IdentityFields>,
    /// "require" / "diagnose".
    pub mode: String,
}

/// A supplier's confirmation that it received one of the mock's receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmationRecord {
    /// The receipt's `MessageIdentifier`, as sent.
    pub guid: String,
    #[serde(with = "rfc3339")]
    pub time: OffsetDateTime,
    /// Free text, e.g. who confirmed and how.
    pub note: Option<String>,
    /// The supplier confirming: the receipt must have been sent to one of its certificates
    /// ([`JournalError::ForeignReceipt`] otherwise). `None`: anyone may confirm (open mode).
    #[serde(default)]
    pub supplier: Option<String>,
}

/// What the writer is asked to do. All writes go through the one writer thread, so the admin
/// side never races the hot path for the write lock.
// Calls far outnumber rejections: boxing the call would cost the common case an allocation to
// save space in the rare one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Call(CallRecord),
    Rejection(RejectionRecord),
    /// Confirms a receipt; its id is the id of the call that sent the receipt. Fails with
    /// [`JournalError::UnknownReceipt`] when no call sent it.
    Confirmation(ConfirmationRecord),
    /// Deletes every call, receipt, confirmation and rejection (ids are never reused); id 0.
    Reset,
    Reload(ReloadRecord),
}

/// A confirmed receipt, with the call and caller it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConfirmation {
    pub call_id: i64,
    /// Caller id of the call that sent the receipt, if it had a certificate identity.
    pub caller_id: Option<String>,
    /// The registered supplier of the call that sent the receipt.
    #[serde(default)]
    pub call_supplier: Option<String>,
    #[serde(flatten)]
    pub record: ConfirmationRecord,
}

/// One caller id seen in the journal, with how often and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerSummary {
    pub caller_id: String,
    pub cvr: Option<String>,
    pub calls: i64,
    #[serde(with = "rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub last_seen: OffsetDateTime,
}

/// The service of a request path: its first segment (`/JobcenterMessageService/2/X.svc` →
/// `JobcenterMessageService`), or `""` for `/`.
pub fn service_of(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
}

/// A journaled call and its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCall {
    pub id: i64,
    #[serde(flatten)]
    pub record: CallRecord,
}

/// A journaled rejection and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRejection {
    pub id: i64,
    #[serde(flatten)]
    pub record: RejectionRecord,
}

/// Which calls to list. Results are newest first (by id), except when `after_id` is set: then
/// they are oldest first, so a follower paging forward from its last id misses none.
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    /// Exact caller id or CVR.
    pub caller: Option<String>,
    /// Registered supplier name (case-insensitive).
    pub supplier: Option<String>,
    /// Exact CVR of the caller's certificate.
    pub cvr: Option<String>,
    /// Service: the first segment of the path (see [`service_of`]).
    pub service: Option<String>,
    /// Exact operation (local name).
    pub operation: Option<String>,
    /// Arrived at or after.
    pub since: Option<OffsetDateTime>,
    /// Arrived strictly before.
    pub until: Option<OffsetDateTime>,
    /// "receipt", "fault", "http", or a label such as "fault 1014" / "fault Client".
    pub outcome: Option<String>,
    /// STAR's numeric fault code.
    pub fault_code: Option<i64>,
    /// Only ids below this (paging back).
    pub before_id: Option<i64>,
    /// Only ids above this (following); switches the order to oldest first.
    pub after_id: Option<i64>,
    /// 0 means [`DEFAULT_LIMIT`]; capped at [`MAX_LIMIT`].
    pub limit: usize,
}

/// Which rejections to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RejectionQuery {
    /// Arrived at or after.
    pub since: Option<OffsetDateTime>,
    /// A [`RejectionReason::as_str`] name.
    pub reason: Option<String>,
    /// Only ids below this (paging back).
    pub before_id: Option<i64>,
    /// 0 means [`DEFAULT_LIMIT`]; capped at [`MAX_LIMIT`].
    pub limit: usize,
}

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

/// The embedded store: one SQLite file in WAL mode.
///
/// `synchronous=NORMAL`: in WAL mode a committed transaction survives a crash of the process; an
/// OS crash or power loss may lose the last few commits. That is the right trade for a mock:
/// commits cost no fsync each, and the journal is evidence, not a ledger.
#[derive(Debug)]
pub struct SqliteStore {
    /// The file, for error messages.
    path: PathBuf,
    /// The connection; the writer's when opened with [`SqliteStore::open`].
    connection: Connection,
}

impl SqliteStore {
    /// Opens (creating it and its folders if needed) the journal for writing and brings its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, JournalError> {
        if let Some(folder) = path
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
        {
            std::fs::create_dir_all(folder).map_err(|source| JournalError::CreateFolder {
                path: folder.to_owned(),
                source,
            })?;
        }
        let open_error = |source| JournalError::Open {
            path: path.to_owned(),
            source,
        };
        let mut connection = Connection::open(path).map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        let mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "journal is not in WAL mode");
        }
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_error)?;
        connection
            .pragma_update(None, "foreign_keys", true)
            .map_err(open_error)?;
        migrate(&mut connection, path)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            connection,
        })
    }

    /// Opens an existing journal for reading only, e.g. for the CLI while the server writes.
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, JournalError> {
        if !path.is_file() {
            return Err(JournalError::Missing {
                path: path.to_owned(),
            });
        }
        let open_error = |source| JournalError::Open {
            path: path.to_owned(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags).map_err(open_error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        let found = schema_version(&connection).map_err(open_error)?;
        let supported = latest_version();
        if found > supported {
            return Err(JournalError::TooNew {
                path: path.to_owned(),
                found,
                supported,
            });
        }
        if found < supported {
            return Err(JournalError::Outdated {
                path: path.to_owned(),
                found,
                supported,
            });
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            connection,
        })
    }

    /// The file this store reads and writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, JournalError> {
        Ok(schema_version(&self.connection)?)
    }
}

/// The schema version this code writes and reads.
fn latest_version() -> i64 {
    // MIGRATIONS is a short constant list.
    MIGRATIONS.len() as i64
}

fn schema_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Applies the missing [`MIGRATIONS`] in one transaction; refuses a database newer than the code.
fn migrate(connection: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let supported = latest_version();
    let too_new = |found| JournalError::TooNew {
        path: path.to_owned(),
        found,
        supported,
    };
    let found = schema_version(connection)?;
    if found > supported {
        return Err(too_new(found));
    }
    if found == supported {
        return Ok(());
    }
    // IMMEDIATE takes the write lock first, so two processes opening at once do not both migrate.
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = schema_version(&transaction)?;
    if found > supported {
        return Err(too_new(found));
    }
    let applied = usize::try_from(found).unwrap_or(0);
    for (index, step) in MIGRATIONS.iter().enumerate().skip(applied) {
        transaction
            .execute_batch(step)
            .map_err(|source| JournalError::Migration {
                path: path.to_owned(),
                version: index + 1,
                source,
            })?;
    }
    transaction.pragma_update(None, "user_version", supported)?;
    transaction.commit()?;
    tracing::info!(path = %path.display(), from = found, to = supported, "journal schema migrated");
    Ok(())
}

/// Microseconds since the Unix epoch; cannot overflow for any `OffsetDateTime`.
fn to_micros(time: OffsetDateTime) -> i64 {
    time.unix_timestamp() * 1_000_000 + i64::from(time.microsecond())
}

fn from_micros(micros: i64) -> Result<OffsetDateTime, time::error::ComponentRange> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
}

fn to_json<T: Serialize>(value: &T, what: &'static str) -> Result<String, JournalError> {
    serde_json::to_string(value).map_err(|source| JournalError::Encode { what, source })
}

fn insert_call(connection: &Connection, call: &CallRecord) -> Result<i64, JournalError> {
    let identity = call.identity.as_ref();
    let identity_json = identity
        .map(|identity| to_json(identity, "identity"))
        .transpose()?;
    let star_headers = call
        .star_headers
        .as_ref()
        .map(|headers| to_json(headers, "STAR headers"))
        .transpose()?;
    let receipts = to_json(&call.receipts, "receipts")?;
    let findings = if call.findings.is_empty() {
        None
    } else {
        Some(to_json(&call.findings, "findings")?)
    };
    let identity_findings = if call.identity_findings.is_empty() {
        None
    } else {
        Some(to_json(&call.identity_findings, "identity findings")?)
    };
    let (fault_code, soap_fault_code) = match &call.outcome {
        Outcome::Fault { code, fault_code } => (*code, Some(fault_code.as_str())),
        Outcome::Receipt | Outcome::Http => (None, None),
    };
    let latency = i64::try_from(call.latency_micros).unwrap_or(i64::MAX);
    let mut statement = connection.prepare_cached(
        "INSERT INTO calls (time_us, peer, tls_version, cipher_suite, alpn, caller_id, cvr,
            identity, method, path, soap_version, soap_action, operation, operation_namespace,
            star_headers, request_body, request_truncated, response_body, response_truncated,
            http_status, receipts, outcome, fault_code, soap_fault_code, detail, latency_us,
            scenario_file, scenario_rule, service, service_operation, findings, supplier,
            authorization, identity_findings)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)",
    )?;
    statement.execute(params![
        to_micros(call.time),
        call.peer,
        call.tls_version,
        call.cipher_suite,
        call.alpn,
        identity.map(|identity| identity.caller_id.as_str()),
        identity.and_then(|identity| identity.cvr.as_deref()),
        identity_json,
        call.method,
        call.path,
        call.soap_version,
        call.soap_action,
        call.operation,
        call.operation_namespace,
        star_headers,
        call.request_body,
        call.request_truncated,
        call.response_body,
        call.response_truncated,
        call.http_status,
        receipts,
        call.outcome.kind(),
        fault_code,
        soap_fault_code,
        call.detail,
        latency,
        call.scenario_file,
        call.scenario_rule,
        call.service,
        call.service_operation,
        findings,
        call.supplier,
        call.authorization,
        identity_findings,
    ])?;
    let id = connection.last_insert_rowid();
    let mut receipt_statement = connection
        .prepare_cached("INSERT OR REPLACE INTO receipts (guid, call_id) VALUES (?1, ?2)")?;
    for guid in &call.receipts {
        receipt_statement.execute(params![guid, id])?;
    }
    Ok(id)
}

fn insert_rejection(
    connection: &Connection,
    rejection: &RejectionRecord,
) -> Result<i64, JournalError> {
    let identity = rejection.identity.as_ref();
    let identity_json = identity
        .map(|identity| to_json(identity, "identity"))
        .transpose()?;
    let mut statement = connection.prepare_cached(
        "INSERT INTO rejections (time_us, peer, reason, detail, caller_id, cvr, identity, mode)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    statement.execute(params![
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

fn insert_confirmation(
    connection: &Connection,
    confirmation: &ConfirmationRecord,
) -> Result<i64, JournalError> {
    let sent: Option<(i64, Option<String>)> = connection
        .prepare_cached(
            "SELECT r.call_id, c.supplier FROM receipts r LEFT JOIN calls c ON c.id = r.call_id
             WHERE r.guid = ?1",
        )?
        .query_row([&confirmation.guid], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let (call_id, owner) = sent.ok_or_else(|| JournalError::UnknownReceipt {
        guid: confirmation.guid.clone(),
    })?;
    if let Some(supplier) = &confirmation.supplier {
        let own = owner
            .as_deref()
            .is_some_and(|owner| owner.eq_ignore_ascii_case(supplier));
        if !own {
            return Err(JournalError::ForeignReceipt {
                guid: confirmation.guid.clone(),
                supplier: supplier.clone(),
                owner,
            });
        }
    }
    connection
        .prepare_cached(
            "INSERT OR IGNORE INTO confirmations (guid, call_id, time_us, note, supplier)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            confirmation.guid,
            call_id,
            to_micros(confirmation.time),
            confirmation.note,
            confirmation.supplier,
        ])?;
    Ok(call_id)
}

fn insert_reload(connection: &Connection, reload: &ReloadRecord) -> Result<i64, JournalError> {
    let files = to_json(&reload.files, "reloaded files")?;
    let mut statement = connection.prepare_cached(
        "INSERT INTO reloads (time_us, ok, files, rules, error) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    statement.execute(params![
        to_micros(reload.time),
        reload.ok,
        files,
        i64::try_from(reload.rules).unwrap_or(i64::MAX),
        reload.error,
    ])?;
    Ok(connection.last_insert_rowid())
}

impl JournalStore for SqliteStore {
    fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError> {
        let transaction = self.connection.transaction()?;
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            let id = match entry {
                Entry::Call(call) => insert_call(&transaction, call)?,
                Entry::Rejection(rejection) => insert_rejection(&transaction, rejection)?,
                Entry::Confirmation(confirmation) => {
                    insert_confirmation(&transaction, confirmation)?
                }
                Entry::Reset => {
                    transaction.execute_batch(
                        "DELETE FROM confirmations; DELETE FROM receipts; DELETE FROM calls;
                         DELETE FROM rejections;",
                    )?;
                    0
                }
                Entry::Reload(reload) => insert_reload(&transaction, reload)?,
            };
            ids.push(id);
        }
        transaction.commit()?;
        Ok(ids)
    }
}

/// Reads a JSON column, naming the row when it does not parse.
fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    table: &'static str,
    id: i64,
    column: &'static str,
) -> Result<Option<T>, JournalError> {
    let text: Option<String> = row.get(column)?;
    text.map(|text| {
        serde_json::from_str(&text).map_err(|error| JournalError::Corrupt {
            table,
            id,
            column,
            reason: error.to_string(),
        })
    })
    .transpose()
}

fn time_column(
    row: &Row<'_>,
    table: &'static str,
    id: i64,
) -> Result<OffsetDateTime, JournalError> {
    from_micros(row.get("time_us")?).map_err(|error| JournalError::Corrupt {
        table,
        id,
        column: "time_us",
        reason: error.to_string(),
    })
}

const CALL_COLUMNS: &str = "id, time_us, peer, tls_version, cipher_suite, alpn, identity, method, \
    path, soap_version, soap_action, operation, operation_namespace, star_headers, request_body, \
    request_truncated, response_body, response_truncated, http_status, receipts, outcome, \
    fault_code, soap_fault_code, detail, latency_us, scenario_file, scenario_rule, service, \
    service_operation, findings, supplier, authorization, identity_findings";

fn call_from_row(row: &Row<'_>) -> Result<StoredCall, JournalError> {
    const TABLE: &str = "calls";
    let id: i64 = row.get("id")?;
    let corrupt = |column, reason: String| JournalError::Corrupt {
        table: TABLE,
        id,
        column,
        reason,
    };
    let kind: String = row.get("outcome")?;
    let outcome = match kind.as_str() {
        "receipt" => Outcome::Receipt,
        "http" => Outcome::Http,
        "fault" => Outcome::Fault {
            code: row.get("fault_code")?,
            fault_code: row
                .get::<_, Option<String>>("soap_fault_code")?
                .ok_or_else(|| corrupt("soap_fault_code", "missing for a fault".to_owned()))?,
        },
        other => return Err(corrupt("outcome", format!("unknown outcome {other:?}"))),
    };
    let http_status: i64 = row.get("http_status")?;
    let latency: i64 = row.get("latency_us")?;
    let record = CallRecord {
        time: time_column(row, TABLE, id)?,
        peer: row.get("peer")?,
        tls_version: row.get("tls_version")?,
        cipher_suite: row.get("cipher_suite")?,
        alpn: row.get("alpn")?,
        identity: json_column(row, TABLE, id, "identity")?,
        method: row.get("method")?,
        path: row.get("path")?,
        soap_version: row.get("soap_version")?,
        soap_action: row.get("soap_action")?,
        operation: row.get("operation")?,
        operation_namespace: row.get("operation_namespace")?,
        star_headers: json_column(row, TABLE, id, "star_headers")?,
        request_body: row.get("request_body")?,
        request_truncated: row.get("request_truncated")?,
        response_body: row.get("response_body")?,
        response_truncated: row.get("response_truncated")?,
        http_status: u16::try_from(http_status)
            .map_err(|error| corrupt("http_status", error.to_string()))?,
        receipts: json_column(row, TABLE, id, "receipts")?.unwrap_or_default(),
        outcome,
        detail: row.get("detail")?,
        latency_micros: u64::try_from(latency)
            .map_err(|error| corrupt("latency_us", error.to_string()))?,
        scenario_file: row.get("scenario_file")?,
        scenario_rule: row.get("scenario_rule")?,
        service: row.get("service")?,
        service_operation: row.get("service_operation")?,
        findings: json_column(row, TABLE, id, "findings")?.unwrap_or_default(),
        supplier: row.get("supplier")?,
        authorization: row.get("authorization")?,
        identity_findings: json_column(row, TABLE, id, "identity_findings")?.unwrap_or_default(),
    };
    Ok(StoredCall { id, record })
}

fn rejection_from_row(row: &Row<'_>) -> Result<StoredRejection, JournalError> {
    const TABLE: &str = "rejections";
    let id: i64 = row.get("id")?;
    let reason: String = row.get("reason")?;
    let record = RejectionRecord {
        time: time_column(row, TABLE, id)?,
        peer: row.get("peer")?,
        reason: RejectionReason::parse(&reason).ok_or_else(|| JournalError::Corrupt {
            table: TABLE,
            id,
            column: "reason",
            reason: format!("unknown reason {reason:?}"),
        })?,
        detail: row.get("detail")?,
        identity: json_column(row, TABLE, id, "identity")?,
        mode: row.get("mode")?,
    };
    Ok(StoredRejection { id, record })
}

/// 0 means the default; never more than [`MAX_LIMIT`].
fn effective_limit(limit: usize) -> i64 {
    let limit = if limit == 0 { DEFAULT_LIMIT } else { limit };
    // MAX_LIMIT fits an i64.
    limit.min(MAX_LIMIT) as i64
}

/// A WHERE clause under construction, with its parameters.
#[derive(Default)]
struct Filter {
    conditions: Vec<String>,
    values: Vec<Value>,
}

impl Filter {
    /// Adds a condition whose `?` placeholders take `values`, in order.
    fn add(&mut self, condition: &str, values: impl IntoIterator<Item = Value>) {
        self.conditions.push(condition.to_owned());
        self.values.extend(values);
    }

    fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }
}

const OUTCOME_EXPECTED: &str =
    "receipt, fault, http, `fault <number>` or `fault <SOAP fault code>`";

/// Adds the conditions for an outcome filter: a kind, or a label as [`Outcome::label`] writes it.
fn add_outcome_filter(filter: &mut Filter, text: &str) -> Result<(), JournalError> {
    let invalid = || JournalError::InvalidFilter {
        filter: "outcome",
        value: text.to_owned(),
        expected: OUTCOME_EXPECTED,
    };
    let trimmed = text.trim();
    match trimmed {
        "receipt" | "fault" | "http" => {
            filter.add("outcome = ?", [Value::Text(trimmed.to_owned())]);
        }
        _ => {
            let code = trimmed
                .strip_prefix("fault ")
                .map(str::trim)
                .filter(|code| !code.is_empty())
                .ok_or_else(invalid)?;
            filter.add("outcome = 'fault'", []);
            match code.parse::<i64>() {
                Ok(number) => filter.add("fault_code = ?", [Value::Integer(number)]),
                Err(_) => filter.add("soap_fault_code = ?", [Value::Text(code.to_owned())]),
            }
        }
    }
    Ok(())
}

impl SqliteStore {
    fn query_calls(&self, sql: &str, values: Vec<Value>) -> Result<Vec<StoredCall>, JournalError> {
        let mut statement = self.connection.prepare_cached(sql)?;
        let mut rows = statement.query(rusqlite::params_from_iter(values))?;
        let mut calls = Vec::new();
        while let Some(row) = rows.next()? {
            calls.push(call_from_row(row)?);
        }
        Ok(calls)
    }
}

impl SqliteStore {
    /// The latest scenario reloads, newest first.
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
                    time: time_column(row, TABLE, id)?,
                    ok: row.get("ok")?,
                    files: json_column(row, TABLE, id, "files")?.unwrap_or_default(),
                    rules: usize::try_from(rules).unwrap_or(0),
                    error: row.get("error")?,
                },
            });
        }
        Ok(reloads)
    }
}

impl JournalReader for SqliteStore {
    fn calls(&self, query: &CallQuery) -> Result<Vec<StoredCall>, JournalError> {
        let mut filter = Filter::default();
        if let Some(caller) = &query.caller {
            filter.add(
                "(caller_id = ? OR cvr = ?)",
                [Value::Text(caller.clone()), Value::Text(caller.clone())],
            );
        }
        if let Some(cvr) = &query.cvr {
            filter.add("cvr = ?", [Value::Text(cvr.clone())]);
        }
        if let Some(supplier) = &query.supplier {
            filter.add(
                "supplier = ? COLLATE NOCASE",
                [Value::Text(supplier.clone())],
            );
        }
        if let Some(service) = &query.service {
            let service = service.trim_matches('/');
            filter.add(
                "(path = ? OR instr(path, ?) = 1 OR instr(path, ?) = 1)",
                [
                    Value::Text(format!("/{service}")),
                    Value::Text(format!("/{service}/")),
                    Value::Text(format!("/{service}?")),
                ],
            );
        }
        if let Some(operation) = &query.operation {
            filter.add("operation = ?", [Value::Text(operation.clone())]);
        }
        if let Some(since) = query.since {
            filter.add("time_us >= ?", [Value::Integer(to_micros(since))]);
        }
        if let Some(until) = query.until {
            filter.add("time_us < ?", [Value::Integer(to_micros(until))]);
        }
        if let Some(outcome) = &query.outcome {
            add_outcome_filter(&mut filter, outcome)?;
        }
        if let Some(code) = query.fault_code {
            filter.add("fault_code = ?", [Value::Integer(code)]);
        }
        if let Some(before) = query.before_id {
            filter.add("id < ?", [Value::Integer(before)]);
        }
        if let Some(after) = query.after_id {
            filter.add("id > ?", [Value::Integer(after)]);
        }
        let order = if query.after_id.is_some() {
            "ASC"
        } else {
            "DESC"
        };
        let sql = format!(
            "SELECT {CALL_COLUMNS} FROM calls {} ORDER BY id {order} LIMIT ?",
            filter.where_clause()
        );
        filter
            .values
            .push(Value::Integer(effective_limit(query.limit)));
        self.query_calls(&sql, filter.values)
    }

    fn call(&self, id: i64) -> Result<Option<StoredCall>, JournalError> {
        let sql = format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = ?");
        Ok(self.query_calls(&sql, vec![Value::Integer(id)])?.pop())
    }

    fn call_by_receipt(&self, guid: &str) -> Result<Option<StoredCall>, JournalError> {
        let call_id: Option<i64> = self
            .connection
            .prepare_cached("SELECT call_id FROM receipts WHERE guid = ?1")?
            .query_row([guid], |row| row.get(0))
            .optional()?;
        match call_id {
            Some(id) => self.call(id),
            None => Ok(None),
        }
    }

    fn rejections(&self, query: &RejectionQuery) -> Result<Vec<StoredRejection>, JournalError> {
        let mut filter = Filter::default();
        if let Some(since) = query.since {
            filter.add("time_us >= ?", [Value::Integer(to_micros(since))]);
        }
        if let Some(reason) = &query.reason {
            let reason = RejectionReason::parse(reason.trim()).ok_or_else(|| {
                JournalError::InvalidFilter {
                    filter: "reason",
                    value: reason.clone(),
                    expected: "a reason such as no_certificate, unknown_ca, expired",
                }
            })?;
            filter.add("reason = ?", [Value::Text(reason.as_str().to_owned())]);
        }
        if let Some(before) = query.before_id {
            filter.add("id < ?", [Value::Integer(before)]);
        }
        let sql = format!(
            "SELECT id, time_us, peer, reason, detail, identity, mode FROM rejections {} \
             ORDER BY id DESC LIMIT ?",
            filter.where_clause()
        );
        filter
            .values
            .push(Value::Integer(effective_limit(query.limit)));
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
            .query_confirmations("WHERE f.guid = ?1", vec![Value::Text(guid.to_owned())])?
            .pop())
    }

    fn confirmations(&self, limit: usize) -> Result<Vec<StoredConfirmation>, JournalError> {
        self.query_confirmations("", vec![Value::Integer(effective_limit(limit))])
    }

    fn supplier_call_count(&self, supplier: &str) -> Result<i64, JournalError> {
        Ok(self
            .connection
            .prepare_cached("SELECT COUNT(*) FROM calls WHERE supplier = ?1 COLLATE NOCASE")?
            .query_row([supplier], |row| row.get(0))?)
    }

    fn callers(&self, limit: usize) -> Result<Vec<CallerSummary>, JournalError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT caller_id, MAX(cvr), COUNT(*), MIN(time_us), MAX(time_us) FROM calls
             WHERE caller_id IS NOT NULL GROUP BY caller_id ORDER BY MAX(id) DESC LIMIT ?1",
        )?;
        let mut rows = statement.query([effective_limit(limit)])?;
        let mut callers = Vec::new();
        while let Some(row) = rows.next()? {
            let time = |index: usize| -> Result<OffsetDateTime, JournalError> {
                from_micros(row.get(index)?).map_err(|error| JournalError::Corrupt {
                    table: "calls",
                    id: 0,
                    column: "time_us",
                    reason: error.to_string(),
                })
            };
            callers.push(CallerSummary {
                caller_id: row.get(0)?,
                cvr: row.get(1)?,
                calls: row.get(2)?,
                first_seen: time(3)?,
                last_seen: time(4)?,
            });
        }
        Ok(callers)
    }
}

impl SqliteStore {
    /// Confirmations joined with their call's caller; `filter` is a WHERE clause (or empty,
    /// then the last value is the limit).
    fn query_confirmations(
        &self,
        filter: &str,
        values: Vec<Value>,
    ) -> Result<Vec<StoredConfirmation>, JournalError> {
        let limit = if filter.is_empty() { "LIMIT ?1" } else { "" };
        let sql = format!(
            "SELECT f.guid, f.call_id, f.time_us, f.note, c.caller_id, f.supplier, c.supplier
             FROM confirmations f
             LEFT JOIN calls c ON c.id = f.call_id {filter} ORDER BY f.time_us DESC {limit}"
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

/// Serde for bodies: UTF-8 text (lossy) in JSON rather than an array of numbers.
mod body_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&String::from_utf8_lossy(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        String::deserialize(deserializer).map(String::into_bytes)
    }
}

/// Serde for times: RFC 3339 text.
mod rfc3339 {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(
        time: &OffsetDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text = time.format(&Rfc3339).map_err(S::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use time::macros::datetime;

    use super::*;

    /// Bounds every wait in these tests.
    const WAIT: Duration = Duration::from_secs(30);

    fn identity(caller_id: &str, cvr: Option<&str>) -> IdentityFields {
        IdentityFields {
            caller_id: caller_id.to_owned(),
            kind: "organisation".to_owned(),
            cvr: cvr.map(str::to_owned),
            common_name: Some(format!("{caller_id} system")),
            subject: format!("CN={caller_id}"),
            issuer: "CN=Test CA".to_owned(),
            serial: "01".to_owned(),
            fingerprint: "ab:cd".to_owned(),
            not_before: "2025-01-01T00:00:00Z".to_owned(),
            not_after: "2027-01-01T00:00:00Z".to_owned(),
        }
    }

    /// A call `n` seconds after 2025-01-01, with a microsecond part that must survive storage.
    fn call(n: i64) -> CallRecord {
        CallRecord {
            time: datetime!(2025-01-01 00:00:00.123456 UTC) + time::Duration::seconds(n),
            peer: format!("127.0.0.1:{}", 50_000 + n),
            tls_version: "TLSv1.3".to_owned(),
            cipher_suite: "TLS13_AES_128_GCM_SHA256".to_owned(),
            alpn: Some("http/1.1".to_owned()),
            identity: Some(identity("supplier-a", Some("12345678"))),
            method: "POST".to_owned(),
            path: "/dfdg/ServiceA?x=1".to_owned(),
            soap_version: Some("1.1".to_owned()),
            soap_action: Some("urn:action".to_owned()),
            operation: Some("Submit".to_owned()),
            operation_namespace: Some("urn:star".to_owned()),
            star_headers: Some(serde_json::json!({ "TransactionID": format!("t-{n}") })),
            request_body: b"<Envelope>\xff</Envelope>".to_vec(),
            request_truncated: false,
            response_body: b"<Envelope/>".to_vec(),
            response_truncated: true,
            http_status: 200,
            receipts: vec![format!("receipt-{n}")],
            outcome: Outcome::Receipt,
            detail: None,
            latency_micros: 1234,
            scenario_file: Some("onboarding.toml".to_owned()),
            scenario_rule: Some("happy-path".to_owned()),
            service: Some("ServiceA".to_owned()),
            service_operation: Some("Submit".to_owned()),
            findings: vec![Finding {
                path: "/Submit/Cpr".to_owned(),
                expected: "a value of type xs:int".to_owned(),
                found: "'x' is not a valid xs:int".to_owned(),
            }],
            supplier: Some("Leverandør A".to_owned()),
            authorization: Some("allowed".to_owned()),
            identity_findings: vec![crate::supplier::Finding {
                check: "identity".to_owned(),
                expected: "supplier-a".to_owned(),
                found: "someone".to_owned(),
                message: "differs".to_owned(),
                code: 1012,
            }],
        }
    }

    fn fault(n: i64, code: Option<i64>, fault_code: &str) -> CallRecord {
        CallRecord {
            http_status: 500,
            receipts: Vec::new(),
            outcome: Outcome::Fault {
                code,
                fault_code: fault_code.to_owned(),
            },
            detail: Some("refused".to_owned()),
            ..call(n)
        }
    }

    fn rejection(n: i64, reason: RejectionReason) -> RejectionRecord {
        RejectionRecord {
            time: datetime!(2025-01-01 00:00:00.5 UTC) + time::Duration::seconds(n),
            peer: format!("10.0.0.1:{}", 40_000 + n),
            reason,
            detail: "invalid peer certificate: UnknownIssuer".to_owned(),
            identity: (reason != RejectionReason::NoCertificate)
                .then(|| identity("stranger", None)),
            mode: "require".to_owned(),
        }
    }

    fn journal_path(folder: &tempfile::TempDir) -> PathBuf {
        folder.path().join("nested").join("journal.sqlite")
    }

    fn ids(calls: &[StoredCall]) -> Vec<i64> {
        calls.iter().map(|call| call.id).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_get_distinct_ids_are_readable_and_share_transactions() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let journal = Journal::open_sqlite(&path).unwrap();
        let tasks: Vec<_> = (0..1000)
            .map(|n| {
                let journal = journal.clone();
                tokio::spawn(async move { journal.record_call(call(n)).await })
            })
            .collect();
        let mut recorded = HashSet::new();
        for task in tasks {
            let id = tokio::time::timeout(WAIT, task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            recorded.insert(id);
        }
        assert_eq!(recorded.len(), 1000);
        let batches = journal.batches_written();
        assert!(
            batches < 1000,
            "{batches} batches for 1000 concurrent calls"
        );
        journal.close().await.unwrap();

        let reader = SqliteStore::open_read_only(&path).unwrap();
        let all = reader
            .calls(&CallQuery {
                limit: 1000,
                ..CallQuery::default()
            })
            .unwrap();
        assert_eq!(
            all.iter().map(|call| call.id).collect::<HashSet<_>>(),
            recorded
        );
        for id in &recorded {
            assert!(
                reader.call(*id).unwrap().is_some(),
                "call {id} not readable"
            );
        }
    }

    #[tokio::test]
    async fn a_call_and_a_rejection_round_trip_unchanged() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let journal = Journal::open_sqlite(&path).unwrap();
        let mut anonymous = fault(1, Some(1014), "Client");
        anonymous.identity = None;
        anonymous.star_headers = None;
        anonymous.alpn = None;
        let records = [call(0), anonymous];
        let mut call_ids = Vec::new();
        for record in &records {
            call_ids.push(journal.record_call(record.clone()).await.unwrap());
        }
        let rejections = [
            rejection(0, RejectionReason::UnknownCa),
            rejection(1, RejectionReason::NoCertificate),
        ];
        for record in &rejections {
            journal.record_rejection(record.clone()).await.unwrap();
        }
        journal.close().await.unwrap();

        let reader = SqliteStore::open_read_only(&path).unwrap();
        for (id, record) in call_ids.iter().zip(&records) {
            assert_eq!(&reader.call(*id).unwrap().unwrap().record, record);
        }
        let stored = reader.rejections(&RejectionQuery::default()).unwrap();
        let newest_first: Vec<_> = rejections.iter().rev().cloned().collect();
        assert_eq!(
            stored
                .into_iter()
                .map(|stored| stored.record)
                .collect::<Vec<_>>(),
            newest_first
        );
        assert_eq!(reader.call(i64::MAX).unwrap(), None);
    }

    #[tokio::test]
    async fn a_read_only_reader_sees_commits_while_the_writer_runs() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let journal = Journal::open_sqlite(&path).unwrap();
        let reader = SqliteStore::open_read_only(&path).unwrap();
        assert!(reader.calls(&CallQuery::default()).unwrap().is_empty());
        let id = journal.record_call(call(0)).await.unwrap();
        assert_eq!(ids(&reader.calls(&CallQuery::default()).unwrap()), [id]);
        assert!(matches!(
            SqliteStore::open_read_only(&path)
                .unwrap()
                .append(&[Entry::Call(call(1))]),
            Err(JournalError::Database(_))
        ));
        journal.close().await.unwrap();
    }

    #[tokio::test]
    async fn data_survives_closing_and_reopening_and_ids_continue() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let journal = Journal::open_sqlite(&path).unwrap();
        let first = journal.record_call(call(0)).await.unwrap();
        journal
            .record_rejection(rejection(0, RejectionReason::Expired))
            .await
            .unwrap();
        journal.close().await.unwrap();

        let journal = Journal::open_sqlite(&path).unwrap();
        let second = journal.record_call(call(1)).await.unwrap();
        journal.close().await.unwrap();
        assert!(second > first);

        let reader = SqliteStore::open_read_only(&path).unwrap();
        assert_eq!(
            ids(&reader.calls(&CallQuery::default()).unwrap()),
            [second, first]
        );
        assert_eq!(
            reader.rejections(&RejectionQuery::default()).unwrap().len(),
            1
        );
    }

    /// Calls 0..6: receipts from supplier-a (0, 1), a fault 1014 from supplier-b (2), a
    /// fault without a number (3), an HTTP answer (4), another receipt with another operation (5).
    async fn journal_with_varied_calls(path: &Path) -> Vec<i64> {
        let journal = Journal::open_sqlite(path).unwrap();
        let mut other_supplier = fault(2, Some(1014), "Client");
        other_supplier.identity = Some(identity("supplier-b", Some("87654321")));
        other_supplier.supplier = Some("Leverandør B".to_owned());
        let mut http = call(4);
        http.outcome = Outcome::Http;
        http.http_status = 404;
        http.path = "/unknown".to_owned();
        let mut other_operation = call(5);
        other_operation.operation = Some("Lookup".to_owned());
        let records = [
            call(0),
            call(1),
            other_supplier,
            fault(3, None, "Server"),
            http,
            other_operation,
        ];
        let mut ids = Vec::new();
        for record in records {
            ids.push(journal.record_call(record).await.unwrap());
        }
        journal.close().await.unwrap();
        ids
    }

    #[tokio::test]
    async fn call_queries_filter_by_each_field() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let id = journal_with_varied_calls(&path).await;
        let reader = SqliteStore::open_read_only(&path).unwrap();
        let query = |query: CallQuery| ids(&reader.calls(&query).unwrap());

        assert_eq!(
            query(CallQuery {
                caller: Some("supplier-b".to_owned()),
                ..CallQuery::default()
            }),
            [id[2]]
        );
        assert_eq!(
            query(CallQuery {
                caller: Some("87654321".to_owned()),
                ..CallQuery::default()
            }),
            [id[2]]
        );
        assert_eq!(
            query(CallQuery {
                operation: Some("Lookup".to_owned()),
                ..CallQuery::default()
            }),
            [id[5]]
        );
        assert_eq!(
            query(CallQuery {
                since: Some(datetime!(2025-01-01 00:00:01.123456 UTC)),
                until: Some(datetime!(2025-01-01 00:00:03.123456 UTC)),
                ..CallQuery::default()
            }),
            [id[2], id[1]]
        );
        let outcome = |text: &str| {
            query(CallQuery {
                outcome: Some(text.to_owned()),
                ..CallQuery::default()
            })
        };
        assert_eq!(outcome("receipt"), [id[5], id[1], id[0]]);
        assert_eq!(outcome("fault"), [id[3], id[2]]);
        assert_eq!(outcome("fault 1014"), [id[2]]);
        assert_eq!(outcome("fault Server"), [id[3]]);
        assert_eq!(outcome("http"), [id[4]]);
        assert_eq!(
            query(CallQuery {
                fault_code: Some(1014),
                ..CallQuery::default()
            }),
            [id[2]]
        );
        assert!(matches!(
            reader.calls(&CallQuery {
                outcome: Some("recept".to_owned()),
                ..CallQuery::default()
            }),
            Err(JournalError::InvalidFilter {
                filter: "outcome",
                ..
            })
        ));
    }

    #[tokio::test]
    async fn cursors_page_back_and_follow_forward_without_gaps() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let id = journal_with_varied_calls(&path).await;
        let reader = SqliteStore::open_read_only(&path).unwrap();

        let mut pages = Vec::new();
        let mut before_id = None;
        loop {
            let page = ids(&reader
                .calls(&CallQuery {
                    before_id,
                    limit: 4,
                    ..CallQuery::default()
                })
                .unwrap());
            let Some(last) = page.last() else { break };
            before_id = Some(*last);
            pages.push(page);
        }
        assert_eq!(
            pages,
            [vec![id[5], id[4], id[3], id[2]], vec![id[1], id[0]]]
        );

        let follow = ids(&reader
            .calls(&CallQuery {
                after_id: Some(id[1]),
                limit: 2,
                ..CallQuery::default()
            })
            .unwrap());
        assert_eq!(follow, [id[2], id[3]]);
    }

    #[tokio::test]
    async fn a_receipt_leads_back_to_its_call() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let journal = Journal::open_sqlite(&path).unwrap();
        let mut two_receipts = call(0);
        two_receipts.receipts = vec!["guid-1".to_owned(), "guid-2".to_owned()];
        let id = journal.record_call(two_receipts.clone()).await.unwrap();
        journal.record_call(call(1)).await.unwrap();
        journal.close().await.unwrap();

        let reader = SqliteStore::open_read_only(&path).unwrap();
        let found = reader.call_by_receipt("guid-2").unwrap().unwrap();
        assert_eq!(found.id, id);
        assert_eq!(found.record, two_receipts);
        assert_eq!(reader.call_by_receipt("guid-unknown").unwrap(), None);
    }

    #[tokio::test]
    async fn rejection_queries_filter_by_reason_time_and_cursor() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let journal = Journal::open_sqlite(&path).unwrap();
        let reasons = [
            RejectionReason::NoCertificate,
            RejectionReason::Expired,
            RejectionReason::NoCertificate,
        ];
        let mut id = Vec::new();
        for (n, reason) in (0..).zip(reasons) {
            id.push(
                journal
                    .record_rejection(rejection(n, reason))
                    .await
                    .unwrap(),
            );
        }
        journal.close().await.unwrap();

        let reader = SqliteStore::open_read_only(&path).unwrap();
        let query = |query: RejectionQuery| -> Vec<i64> {
            reader
                .rejections(&query)
                .unwrap()
                .iter()
                .map(|stored| stored.id)
                .collect()
        };
        assert_eq!(
            query(RejectionQuery {
                reason: Some("no_certificate".to_owned()),
                ..RejectionQuery::default()
            }),
            [id[2], id[0]]
        );
        assert_eq!(
            query(RejectionQuery {
                since: Some(datetime!(2025-01-01 00:00:01.5 UTC)),
                ..RejectionQuery::default()
            }),
            [id[2], id[1]]
        );
        assert_eq!(
            query(RejectionQuery {
                before_id: Some(id[2]),
                limit: 1,
                ..RejectionQuery::default()
            }),
            [id[1]]
        );
        assert!(matches!(
            reader.rejections(&RejectionQuery {
                reason: Some("nope".to_owned()),
                ..RejectionQuery::default()
            }),
            Err(JournalError::InvalidFilter {
                filter: "reason",
                ..
            })
        ));
    }

    #[test]
    fn a_fresh_database_ends_at_the_latest_schema_version() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        drop(store);
        // Opening again applies nothing and keeps the version.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn a_database_newer_than_the_code_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("future.sqlite");
        let newer = MIGRATIONS.len() as i64 + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        for result in [SqliteStore::open(&path), SqliteStore::open_read_only(&path)] {
            match result {
                Err(error @ JournalError::TooNew { found, .. }) => {
                    assert_eq!(found, newer);
                    assert!(error.to_string().contains("newer than this dfdg-mock"));
                }
                other => panic!("expected TooNew, got {other:?}"),
            }
        }
    }

    #[test]
    fn reading_a_missing_journal_says_how_to_create_one() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("absent.sqlite");
        let error = SqliteStore::open_read_only(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "no journal at {}: start `dfdg-mock serve` first",
                path.display()
            )
        );
        assert!(!path.exists());
    }

    /// A store that holds its first append until told to go, and remembers each batch's size.
    struct GatedStore {
        entered: Option<oneshot::Sender<()>>,
        go: std::sync::mpsc::Receiver<()>,
        batch_sizes: Arc<Mutex<Vec<usize>>>,
        next_id: i64,
    }

    impl JournalStore for GatedStore {
        fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError> {
            if let Some(entered) = self.entered.take() {
                let _ = entered.send(());
                let _ = self.go.recv();
            }
            self.batch_sizes.lock().unwrap().push(entries.len());
            let first = self.next_id;
            self.next_id += entries.len() as i64;
            Ok((first..self.next_id).collect())
        }
    }

    async fn wait_for_queue_depth(journal: &Journal, depth: usize) {
        tokio::time::timeout(WAIT, async {
            while journal.queue_depth() < depth {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_writes_everything_queued_in_one_batch_then_refuses_more() {
        let (entered, entered_signal) = oneshot::channel();
        let (go, go_signal) = std::sync::mpsc::channel();
        let batch_sizes = Arc::new(Mutex::new(Vec::new()));
        let journal = Journal::start(GatedStore {
            entered: Some(entered),
            go: go_signal,
            batch_sizes: Arc::clone(&batch_sizes),
            next_id: 1,
        })
        .unwrap();

        let spawn_record = |n: i64| {
            let journal = journal.clone();
            tokio::spawn(async move { journal.record_call(call(n)).await })
        };
        let mut tasks = vec![spawn_record(0)];
        tokio::time::timeout(WAIT, entered_signal)
            .await
            .unwrap()
            .unwrap();
        tasks.extend((1..100).map(spawn_record));
        wait_for_queue_depth(&journal, 99).await;
        let late = journal.clone();
        let closing = tokio::spawn(journal.clone().close());
        wait_for_queue_depth(&journal, 100).await;
        go.send(()).unwrap();

        tokio::time::timeout(WAIT, closing)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let mut recorded = Vec::new();
        for task in tasks {
            recorded.push(task.await.unwrap().unwrap());
        }
        recorded.sort_unstable();
        assert_eq!(recorded, (1..=100).collect::<Vec<i64>>());
        assert_eq!(*batch_sizes.lock().unwrap(), [1, 99]);
        assert_eq!(journal.batches_written(), 2);
        assert!(matches!(
            late.record_rejection(rejection(0, RejectionReason::Other))
                .await,
            Err(JournalError::Closed)
        ));
        // Closing an already closed journal is fine.
        journal.close().await.unwrap();
    }

    /// Fails any batch holding a call on path "/poison".
    struct PickyStore {
        next_id: i64,
    }

    impl JournalStore for PickyStore {
        fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError> {
            let poisoned = entries
                .iter()
                .any(|entry| matches!(entry, Entry::Call(call) if call.path == "/poison"));
            if poisoned {
                return Err(JournalError::Closed);
            }
            let first = self.next_id;
            self.next_id += entries.len() as i64;
            Ok((first..self.next_id).collect())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_entry_fails_only_its_own_caller() {
        let journal = Journal::start(PickyStore { next_id: 1 }).unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|n| {
                let journal = journal.clone();
                let mut record = call(n);
                if n == 25 {
                    record.path = "/poison".to_owned();
                }
                tokio::spawn(async move { journal.record_call(record).await })
            })
            .collect();
        let mut failures = 0;
        for task in tasks {
            if tokio::time::timeout(WAIT, task)
                .await
                .unwrap()
                .unwrap()
                .is_err()
            {
                failures += 1;
            }
        }
        assert_eq!(failures, 1);
        journal.close().await.unwrap();
    }

    #[tokio::test]
    async fn receipts_are_confirmed_once_and_reset_empties_the_journal() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let journal = Journal::open_sqlite(&path).unwrap();
        let mut record = call(0);
        record.receipts = vec!["guid-1".to_owned()];
        let id = journal.record_call(record).await.unwrap();
        let confirm = |note: &str| ConfirmationRecord {
            guid: "guid-1".to_owned(),
            time: datetime!(2025-01-02 00:00:00 UTC),
            note: Some(note.to_owned()),
            supplier: None,
        };
        assert_eq!(journal.confirm_receipt(confirm("first")).await.unwrap(), id);
        assert_eq!(journal.confirm_receipt(confirm("again")).await.unwrap(), id);
        let unknown = ConfirmationRecord {
            guid: "guid-unknown".to_owned(),
            ..confirm("x")
        };
        assert!(matches!(
            journal.confirm_receipt(unknown).await,
            Err(JournalError::UnknownReceipt { .. })
        ));
        let foreign = ConfirmationRecord {
            supplier: Some("Leverandør B".to_owned()),
            ..confirm("not mine")
        };
        let error = journal.confirm_receipt(foreign).await.unwrap_err();
        assert!(
            matches!(&error, JournalError::ForeignReceipt { owner: Some(owner), .. } if owner == "Leverandør A"),
            "{error}"
        );
        let own = ConfirmationRecord {
            supplier: Some("leverandør a".to_owned()),
            ..confirm("mine")
        };
        assert_eq!(journal.confirm_receipt(own).await.unwrap(), id);
        {
            let reader = SqliteStore::open_read_only(&path).unwrap();
            let confirmed = reader.confirmation("guid-1").unwrap().unwrap();
            assert_eq!(confirmed.call_id, id);
            assert_eq!(confirmed.record.note.as_deref(), Some("first"));
            assert_eq!(confirmed.caller_id.as_deref(), Some("supplier-a"));
            assert_eq!(reader.confirmations(0).unwrap().len(), 1);
            let callers = reader.callers(0).unwrap();
            assert_eq!(callers.len(), 1);
            assert_eq!(callers[0].calls, 1);
        }
        journal.reset().await.unwrap();
        let next = journal.record_call(call(1)).await.unwrap();
        assert!(next > id, "ids are never reused");
        journal.close().await.unwrap();
        let reader = SqliteStore::open_read_only(&path).unwrap();
        assert_eq!(ids(&reader.calls(&CallQuery::default()).unwrap()), [next]);
        assert_eq!(reader.confirmation("guid-1").unwrap(), None);
    }

    #[tokio::test]
    async fn calls_filter_by_cvr_and_service() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let id = journal_with_varied_calls(&path).await;
        let reader = SqliteStore::open_read_only(&path).unwrap();
        let cvr = ids(&reader
            .calls(&CallQuery {
                cvr: Some("87654321".to_owned()),
                ..CallQuery::default()
            })
            .unwrap());
        assert_eq!(cvr, [id[2]]);
        let unknown = ids(&reader
            .calls(&CallQuery {
                service: Some("unknown".to_owned()),
                ..CallQuery::default()
            })
            .unwrap());
        assert_eq!(unknown, [id[4]]);
        let supplier = ids(&reader
            .calls(&CallQuery {
                supplier: Some("leverandør b".to_owned()),
                ..CallQuery::default()
            })
            .unwrap());
        assert_eq!(supplier, [id[2]]);
        assert_eq!(reader.supplier_call_count("Leverandør A").unwrap(), 5);
        assert_eq!(reader.supplier_call_count("nobody").unwrap(), 0);
        assert_eq!(
            service_of("/JobcenterMessageService/2/X.svc?wsdl"),
            "JobcenterMessageService"
        );
        assert_eq!(service_of("/"), "");
    }

    #[test]
    fn outcome_labels_and_reason_names() {
        assert_eq!(Outcome::Receipt.label(), "receipt");
        assert_eq!(fault(0, Some(1014), "Client").outcome.label(), "fault 1014");
        assert_eq!(fault(0, None, "Sender").outcome.label(), "fault Sender");
        assert_eq!(Outcome::Http.label(), "http");
        for reason in RejectionReason::ALL {
            assert_eq!(RejectionReason::parse(reason.as_str()), Some(reason));
            let json = serde_json::to_value(reason).unwrap();
            assert_eq!(json, serde_json::Value::from(reason.as_str()));
        }
        assert_eq!(RejectionReason::parse("unknown"), None);
    }

    #[test]
    fn stored_calls_show_bodies_as_text_in_json() {
        let stored = StoredCall {
            id: 7,
            record: fault(0, Some(1014), "Client"),
        };
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["id"], 7);
        assert_eq!(json["request_body"], "<Envelope>\u{fffd}</Envelope>");
        assert_eq!(json["response_body"], "<Envelope/>");
        assert_eq!(json["time"], "2025-01-01T00:00:00.123456Z");
        assert_eq!(json["outcome"]["kind"], "fault");
        assert_eq!(json["outcome"]["code"], 1014);
        let back: StoredCall = serde_json::from_value(json).unwrap();
        assert_eq!(back.record.outcome, stored.record.outcome);
        assert_eq!(back.record.response_body, stored.record.response_body);
    }
}

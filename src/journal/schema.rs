//! The SQLite schema: the tables of version 9 ([`SCHEMA_VERSION`]) and how older journals get
//! there. Versions 1 to 5 kept every field of a call inline in one wide row with seven indexes;
//! version 6 keeps the columns queries filter and sort on in `calls` (names interned, the
//! certificate once in `certificates`), the rest compressed in `call_data`, and only the indexes
//! those queries use. The move from 5 to 6 rewrites every call (see `SqliteStore::open`), keeping
//! its id. Version 7 adds the index of time-ordered receipts ([`V6_TO_V7`]); the move from 6
//! changes no row. Version 8 ([`V7_TO_V8`]) keeps each certificate's counters in a narrow table of
//! their own and finds a supplier's calls through its certificates instead of an index of every
//! call; the move from 7 changes no call. Version 9 ([`V8_TO_V9`]) keeps the number of calls
//! of each combination of the columns `verify` counts by, so that its counts read a few rows
//! instead of every call; the move from 8 counts the calls there are.

use rusqlite::{Connection, Row};
use time::OffsetDateTime;

use super::records::{CallRecord, Outcome, StoredCall};
use super::JournalError;

/// The schema version this code writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 9;

/// The released steps to version 5, kept to bring a journal of any older version to 5 before it
/// moves to 6; entry `n` (0-based) takes `user_version` `n` to `n + 1`. Never edit them.
pub const LEGACY_MIGRATIONS: &[&str] = &[
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

/// The tables every version since 1 shares unchanged: refused handshakes, confirmations,
/// reloads (as the released steps left them).
const SHARED: &str = "
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
    CREATE INDEX rejections_time ON rejections (time_us);
    CREATE TABLE confirmations (
        guid     TEXT PRIMARY KEY,             -- the receipt's MessageIdentifier
        call_id  INTEGER NOT NULL,             -- the call that sent it, when confirmed
        time_us  INTEGER NOT NULL,             -- first confirmation; later ones change nothing
        note     TEXT,
        supplier TEXT                          -- the supplier that confirmed, if named
    ) WITHOUT ROWID;
    CREATE TABLE reloads (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        time_us INTEGER NOT NULL,
        ok      INTEGER NOT NULL,
        files   TEXT NOT NULL,
        rules   INTEGER NOT NULL,
        error   TEXT
    );";

/// The call tables of version 6, as released. Never edit them: a fresh journal is made of these
/// and the steps after 6 ([`V6_TO_V7`], [`V7_TO_V8`], [`V8_TO_V9`]), as an old one gets there.
const V6_CALLS: &str = "
    -- Counters that must survive deleting every row: the next call id (ids are never reused).
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    -- A scratch row the writer writes and removes to learn whether space came back.
    CREATE TABLE probe (id INTEGER PRIMARY KEY, bytes BLOB NOT NULL);
    -- Every short text a hot column refers to: operations, services, paths, SOAP actions,
    -- supplier names, SOAP fault codes.
    CREATE TABLE names (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
    CREATE INDEX names_nocase ON names (text COLLATE NOCASE);
    -- Each client certificate once, with what onboarding asks of its calls, kept up to date by
    -- the writer (and by pruning) so that status pages read one row per certificate.
    CREATE TABLE certificates (
        id             INTEGER PRIMARY KEY,
        fingerprint    TEXT NOT NULL UNIQUE,
        caller_id      TEXT NOT NULL,
        cvr            TEXT,
        identity       TEXT NOT NULL,          -- IdentityFields as JSON
        calls          INTEGER NOT NULL DEFAULT 0,
        first_us       INTEGER,
        last_us        INTEGER,
        latest_receipt INTEGER,                -- newest call answered with a receipt
        latest_passed  INTEGER                 -- ... whose identity checks all passed
    );
    CREATE INDEX certificates_caller ON certificates (caller_id);
    CREATE INDEX certificates_cvr ON certificates (cvr);
    -- One LZ4 dictionary per operation: the first call of it (see codec.rs). Never changed.
    CREATE TABLE dictionaries (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, bytes BLOB NOT NULL);
    -- The hot columns: what queries filter and sort on, all small integers. No partial
    -- indexes: SQLite re-prepares a statement at every new binding when one might apply.
    CREATE TABLE calls (
        id           INTEGER PRIMARY KEY,      -- from meta 'next_call_id': never reused
        time_us      INTEGER NOT NULL,         -- arrival, microseconds since the Unix epoch, UTC
        certificate  INTEGER,                  -- certificates.id; NULL: no verified certificate
        supplier     INTEGER,                  -- names.id of the registered supplier
        service      INTEGER NOT NULL,         -- names.id of the path's first segment
        endpoint     INTEGER NOT NULL,         -- names.id of the path without its query
        operation    INTEGER,                  -- names.id
        soap_action  INTEGER,                  -- names.id
        outcome      INTEGER NOT NULL,         -- 0 receipt, 1 fault, 2 http
        fault_code   INTEGER,                  -- STAR's numeric fault code
        fault_name   INTEGER,                  -- names.id of the SOAP fault code
        checks       INTEGER,                  -- identity findings; NULL: checks did not run
        user_matches INTEGER NOT NULL,         -- 1: UserIdentifier names the certificate
        http_status  INTEGER NOT NULL,
        latency_us   INTEGER NOT NULL
    );
    CREATE INDEX calls_certificate ON calls (certificate);
    CREATE INDEX calls_operation ON calls (operation);
    CREATE INDEX calls_service ON calls (service);
    CREATE INDEX calls_time ON calls (time_us);
    CREATE INDEX calls_supplier ON calls (supplier);
    CREATE INDEX calls_outcome ON calls (outcome, fault_code);
    -- The cold rest of each call, compressed (codec.rs), beside the hot row of the same id.
    CREATE TABLE call_data (
        id         INTEGER PRIMARY KEY,
        dictionary INTEGER NOT NULL,           -- dictionaries.id; 0: none
        data       BLOB NOT NULL
    );
    -- Receipt GUID -> call, by an 8-byte hash of the GUID (codec::receipt_key). Keyed by one of
    -- 256 buckets of that hash and then the call id, so a batch appends to 256 pages instead of
    -- dirtying one random page per receipt; a look-up reads one bucket.
    CREATE TABLE receipts (
        bucket  INTEGER NOT NULL,
        call_id INTEGER NOT NULL,
        key     INTEGER NOT NULL,
        PRIMARY KEY (bucket, call_id, key)
    ) WITHOUT ROWID;";

/// Version 6 to 7: receipts whose GUID is a version-7 UUID (time first, as the scenarios'
/// `receipt()` makes them) are keyed by their time (`codec::receipt_time_key`), so a batch's
/// receipts append to the last page of this index instead of dirtying one of `receipts`' 256
/// buckets each (a 4 KiB write-ahead-log frame per receipt per batch). Every other GUID (scripted
/// ones, the version-4 receipts of older releases) stays in `receipts`.
pub const V6_TO_V7: &str = "
    CREATE TABLE receipts_by_time (
        key     INTEGER NOT NULL,
        call_id INTEGER NOT NULL,
        PRIMARY KEY (key, call_id)
    ) WITHOUT ROWID;";

/// Version 7 to 8, two changes that halve the pages a batch of calls from many callers dirties
/// (each page it touches is written whole to the log at the commit):
/// - a certificate's counters, updated by every batch it called in, move out of the wide
///   `certificates` row (the identity's JSON: one 1 KiB page each) into `certificate_calls`,
///   about 30 certificates a page;
/// - `calls_supplier` goes (one random leaf page per supplier per batch): `certificate_suppliers`
///   says which certificates called as which supplier (0: calls without a certificate), and a
///   supplier's calls are found by their certificates' index, `calls.supplier` deciding.
pub const V7_TO_V8: &str = "
    CREATE TABLE certificate_calls (
        id             INTEGER PRIMARY KEY,    -- certificates.id
        calls          INTEGER NOT NULL DEFAULT 0,
        first_us       INTEGER,
        last_us        INTEGER,
        latest_receipt INTEGER,                -- newest call answered with a receipt
        latest_passed  INTEGER                 -- ... whose identity checks all passed
    );
    INSERT INTO certificate_calls (id, calls, first_us, last_us, latest_receipt, latest_passed)
        SELECT id, calls, first_us, last_us, latest_receipt, latest_passed FROM certificates;
    ALTER TABLE certificates DROP COLUMN calls;
    ALTER TABLE certificates DROP COLUMN first_us;
    ALTER TABLE certificates DROP COLUMN last_us;
    ALTER TABLE certificates DROP COLUMN latest_receipt;
    ALTER TABLE certificates DROP COLUMN latest_passed;
    CREATE TABLE certificate_suppliers (
        supplier    INTEGER NOT NULL,          -- names.id
        certificate INTEGER NOT NULL,          -- certificates.id; 0: no verified certificate
        PRIMARY KEY (supplier, certificate)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO certificate_suppliers (supplier, certificate)
        SELECT DISTINCT supplier, COALESCE(certificate, 0) FROM calls WHERE supplier IS NOT NULL;
    DROP INDEX calls_supplier;";

/// Version 8 to 9: how many calls there are of each combination of the hot columns a count
/// may ask about without naming a caller, a supplier or a time (service, path, operation,
/// SOAPAction, outcome, identity check), kept by the writer with every batch and by pruning,
/// so that `verify` and `count` add up a few rows instead of reading every call. Filters on
/// these columns read the same here as on `calls` (the table is queried as `c`). Made from
/// the calls there are; a handful of rows, one per combination.
pub const V8_TO_V9: &str = "
    CREATE TABLE call_counts (
        id           INTEGER PRIMARY KEY,
        service      INTEGER NOT NULL,
        endpoint     INTEGER NOT NULL,
        operation    INTEGER,
        soap_action  INTEGER,
        outcome      INTEGER NOT NULL,
        fault_code   INTEGER,
        fault_name   INTEGER,
        user_matches INTEGER NOT NULL,
        calls        INTEGER NOT NULL          -- calls with these values, never below 1
    );
    CREATE INDEX call_counts_key ON call_counts (endpoint, operation, soap_action, outcome);
    INSERT INTO call_counts (service, endpoint, operation, soap_action, outcome, fault_code,
            fault_name, user_matches, calls)
        SELECT service, endpoint, operation, soap_action, outcome, fault_code, fault_name,
            user_matches, COUNT(*)
        FROM calls
        GROUP BY service, endpoint, operation, soap_action, outcome, fault_code, fault_name,
            user_matches;";

/// A fresh journal, at `version` (6 to 8 only for tests that make a journal of an earlier
/// release).
pub(super) fn create(connection: &Connection, version: i64) -> rusqlite::Result<()> {
    connection.execute_batch(SHARED)?;
    connection.execute_batch(V6_CALLS)?;
    after_v6(connection, 6, version)
}

/// The steps from version `from` (6 or later) to `to`.
pub(super) fn after_v6(connection: &Connection, from: i64, to: i64) -> rusqlite::Result<()> {
    if from < 7 && to >= 7 {
        connection.execute_batch(V6_TO_V7)?;
    }
    if from < 8 && to >= 8 {
        connection.execute_batch(V7_TO_V8)?;
    }
    if from < 9 && to >= 9 {
        connection.execute_batch(V8_TO_V9)?;
    }
    Ok(())
}

/// Version 5's call tables step aside (renamed, their indexes dropped) and version 6's are
/// created; the caller copies the calls over, then drops the old tables.
pub(super) const V5_TO_V6: &str = "
    DROP INDEX IF EXISTS calls_time;
    DROP INDEX IF EXISTS calls_caller_id;
    DROP INDEX IF EXISTS calls_cvr;
    DROP INDEX IF EXISTS calls_operation;
    DROP INDEX IF EXISTS calls_path;
    DROP INDEX IF EXISTS calls_service;
    DROP INDEX IF EXISTS calls_supplier;
    DROP INDEX IF EXISTS receipts_call_id;
    ALTER TABLE calls RENAME TO calls_v5;
    ALTER TABLE receipts RENAME TO receipts_v5;";

pub(super) fn v6_call_tables(connection: &Connection) -> rusqlite::Result<()> {
    connection.execute_batch(V6_CALLS)
}

pub(crate) fn schema_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Microseconds since the Unix epoch; cannot overflow for any `OffsetDateTime`.
pub(super) fn to_micros(time: OffsetDateTime) -> i64 {
    time.unix_timestamp() * 1_000_000 + i64::from(time.microsecond())
}

pub(super) fn from_micros(micros: i64) -> Result<OffsetDateTime, time::error::ComponentRange> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
}

// How version 5 stored a call: one row with every field, JSON for the structured ones.

/// Reads a JSON column, naming the row when it does not parse.
pub(super) fn json_column<T: serde::de::DeserializeOwned>(
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

pub(super) fn time_column(
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

pub(super) const V5_CALL_COLUMNS: &str =
    "id, time_us, peer, tls_version, cipher_suite, alpn, identity, method, \
    path, soap_version, soap_action, operation, operation_namespace, star_headers, request_body, \
    request_truncated, response_body, response_truncated, http_status, receipts, outcome, \
    fault_code, soap_fault_code, detail, latency_us, scenario_file, scenario_rule, service, \
    service_operation, findings, supplier, authorization, identity_findings";

pub(super) fn v5_call_from_row(row: &Row<'_>) -> Result<StoredCall, JournalError> {
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
        request_body: row.get::<_, Vec<u8>>("request_body")?.into(),
        request_truncated: row.get("request_truncated")?,
        response_body: row.get::<_, Vec<u8>>("response_body")?.into(),
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

//! The SQLite schema and its migrations.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::JournalError;

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

/// The schema version this code writes and reads.
pub(crate) fn latest_version() -> i64 {
    // MIGRATIONS is a short constant list.
    MIGRATIONS.len() as i64
}

pub(crate) fn schema_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Applies the missing [`MIGRATIONS`] in one transaction; refuses a database newer than the code.
pub(crate) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), JournalError> {
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

//! The PostgreSQL tables: the layout of the SQLite store's version 6 (narrow hot rows of small
//! integers, names and certificates interned, the cold rest compressed in `call_data`), with
//! its indexes translated: SQLite's secondary indexes end in the row id, so each one here ends
//! in `id` too and answers "newest 50 of this caller" from the index alone.
//!
//! Differences that several writers need: call ids come from a sequence; interned names,
//! certificates and dictionaries are never deleted (another replica may hold their ids in its
//! cache), so a reset or pruning zeroes a certificate's counters instead of removing it.
//!
//! Migrations run in one transaction under an advisory lock, so replicas starting together
//! apply each step once; a database whose version is newer than this code's is refused.

use super::{Database, SCHEMA};
use crate::journal::JournalError;

/// The schema version this code writes and reads (table `schema_version`).
pub const POSTGRES_SCHEMA_VERSION: i32 = 1;

/// Key of the advisory lock held while migrating.
const MIGRATION_LOCK: i64 = 0x6466_6467_6d69_6772; // "dfdgmigr"

/// Entry `n` (0-based) takes the schema from version `n` to `n + 1`. Never edit a released
/// step; add one.
const MIGRATIONS: &[&str] = &[
    // 1: the journal.
    "CREATE TABLE names (id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL UNIQUE);
    CREATE INDEX names_lower ON names (lower(text));
    CREATE TABLE certificates (
        id             BIGSERIAL PRIMARY KEY,
        fingerprint    TEXT NOT NULL UNIQUE,
        caller_id      TEXT NOT NULL,
        cvr            TEXT,
        identity       TEXT NOT NULL,          -- IdentityFields as JSON
        calls          BIGINT NOT NULL DEFAULT 0,
        first_us       BIGINT,
        last_us        BIGINT,
        latest_receipt BIGINT,                 -- newest call answered with a receipt
        latest_passed  BIGINT                  -- ... whose identity checks all passed
    );
    CREATE INDEX certificates_caller ON certificates (caller_id);
    CREATE INDEX certificates_cvr ON certificates (cvr);
    CREATE TABLE dictionaries (id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL UNIQUE, bytes BYTEA NOT NULL);
    CREATE SEQUENCE call_ids;                  -- never reused, shared by every replica
    CREATE TABLE calls (
        id           BIGINT PRIMARY KEY,
        time_us      BIGINT NOT NULL,          -- arrival, microseconds since the Unix epoch, UTC
        certificate  BIGINT,                   -- certificates.id; NULL: no verified certificate
        supplier     BIGINT,                   -- names.id of the registered supplier
        service      BIGINT NOT NULL,          -- names.id of the path's first segment
        endpoint     BIGINT NOT NULL,          -- names.id of the path without its query
        operation    BIGINT,
        soap_action  BIGINT,
        outcome      SMALLINT NOT NULL,        -- 0 receipt, 1 fault, 2 http
        fault_code   BIGINT,                   -- STAR's numeric fault code
        fault_name   BIGINT,                   -- names.id of the SOAP fault code
        checks       BIGINT,                   -- identity findings; NULL: checks did not run
        user_matches BOOLEAN NOT NULL,         -- UserIdentifier names the certificate
        http_status  INTEGER NOT NULL,
        latency_us   BIGINT NOT NULL
    );
    CREATE INDEX calls_certificate ON calls (certificate, id);
    CREATE INDEX calls_operation ON calls (operation, id);
    CREATE INDEX calls_service ON calls (service, id);
    CREATE INDEX calls_time ON calls (time_us);
    CREATE INDEX calls_supplier ON calls (supplier, id);
    CREATE INDEX calls_outcome ON calls (outcome, fault_code, id);
    CREATE TABLE call_data (
        id         BIGINT PRIMARY KEY,
        dictionary BIGINT NOT NULL,            -- dictionaries.id; 0: none
        data       BYTEA NOT NULL
    );
    -- Receipt GUID -> call, by an 8-byte hash of the GUID (codec::receipt_key).
    CREATE TABLE receipts (
        key     BIGINT NOT NULL,
        call_id BIGINT NOT NULL,
        PRIMARY KEY (key, call_id)
    );
    CREATE TABLE rejections (
        id        BIGSERIAL PRIMARY KEY,
        time_us   BIGINT NOT NULL,
        peer      TEXT NOT NULL,
        reason    TEXT NOT NULL,
        detail    TEXT NOT NULL,
        caller_id TEXT,
        cvr       TEXT,
        identity  TEXT,
        mode      TEXT NOT NULL
    );
    CREATE INDEX rejections_time ON rejections (time_us);
    CREATE TABLE confirmations (
        guid     TEXT PRIMARY KEY,
        call_id  BIGINT NOT NULL,
        time_us  BIGINT NOT NULL,              -- first confirmation; later ones change nothing
        note     TEXT,
        supplier TEXT
    );
    CREATE INDEX confirmations_call ON confirmations (call_id);
    CREATE TABLE reloads (
        id      BIGSERIAL PRIMARY KEY,
        time_us BIGINT NOT NULL,
        ok      BOOLEAN NOT NULL,
        files   TEXT NOT NULL,
        rules   BIGINT NOT NULL,
        error   TEXT
    );
    -- One row each replica writes to learn whether the database takes writes.
    CREATE TABLE probe (id INTEGER PRIMARY KEY, at_us BIGINT NOT NULL);",
];

/// Brings the database's journal schema to [`POSTGRES_SCHEMA_VERSION`], creating it when
/// absent; refuses a newer one. Safe when several replicas start at once.
pub(super) async fn migrate(
    database: &Database,
    client: &mut tokio_postgres::Client,
) -> Result<(), JournalError> {
    let error = |source: tokio_postgres::Error| database.unreachable(source);
    let transaction = client.transaction().await.map_err(error)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(error)?;
    transaction
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {SCHEMA};
             CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (version INTEGER NOT NULL)"
        ))
        .await
        .map_err(error)?;
    let found: i32 = transaction
        .query_opt(
            &format!("SELECT max(version) FROM {SCHEMA}.schema_version"),
            &[],
        )
        .await
        .map_err(error)?
        .and_then(|row| row.get::<_, Option<i32>>(0))
        .unwrap_or(0);
    if found > POSTGRES_SCHEMA_VERSION {
        return Err(JournalError::DatabaseTooNew {
            database: database.redacted().to_owned(),
            found: i64::from(found),
            supported: i64::from(POSTGRES_SCHEMA_VERSION),
        });
    }
    let applied = usize::try_from(found).unwrap_or(0);
    for (index, step) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = index as i64 + 1;
        transaction
            .batch_execute(step)
            .await
            .map_err(|source| JournalError::Migration {
                path: database.redacted().into(),
                version,
                source: Box::new(database.unreachable(source)),
            })?;
    }
    if found < POSTGRES_SCHEMA_VERSION {
        transaction
            .execute(&format!("DELETE FROM {SCHEMA}.schema_version"), &[])
            .await
            .map_err(error)?;
        transaction
            .execute(
                &format!("INSERT INTO {SCHEMA}.schema_version (version) VALUES ($1)"),
                &[&POSTGRES_SCHEMA_VERSION],
            )
            .await
            .map_err(error)?;
    }
    transaction.commit().await.map_err(error)?;
    if found < POSTGRES_SCHEMA_VERSION {
        tracing::info!(
            database = %database,
            from = found,
            to = POSTGRES_SCHEMA_VERSION,
            "journal database schema created or migrated"
        );
    }
    Ok(())
}

/// Refuses a database whose journal schema is missing, older or newer than this code's (for
/// readers, which never migrate).
pub(super) async fn check(
    database: &Database,
    client: &tokio_postgres::Client,
) -> Result<(), JournalError> {
    let error = |source: tokio_postgres::Error| database.unreachable(source);
    let exists: bool = client
        .query_one(
            &format!("SELECT to_regclass('{SCHEMA}.schema_version') IS NOT NULL"),
            &[],
        )
        .await
        .map_err(error)?
        .get(0);
    let found: Option<i32> = if exists {
        client
            .query_one(
                &format!("SELECT max(version) FROM {SCHEMA}.schema_version"),
                &[],
            )
            .await
            .map_err(error)?
            .get(0)
    } else {
        None
    };
    match found {
        None | Some(0) => Err(JournalError::DatabaseMissing {
            database: database.redacted().to_owned(),
        }),
        Some(found) if found > POSTGRES_SCHEMA_VERSION => Err(JournalError::DatabaseTooNew {
            database: database.redacted().to_owned(),
            found: i64::from(found),
            supported: i64::from(POSTGRES_SCHEMA_VERSION),
        }),
        Some(found) if found < POSTGRES_SCHEMA_VERSION => Err(JournalError::DatabaseOutdated {
            database: database.redacted().to_owned(),
            found: i64::from(found),
            supported: i64::from(POSTGRES_SCHEMA_VERSION),
        }),
        Some(_) => Ok(()),
    }
}

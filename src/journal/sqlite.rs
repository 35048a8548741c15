//! The embedded store: one SQLite file, and every query as SQL.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use serde::Serialize;
use time::OffsetDateTime;

use super::records::*;
use super::schema::{latest_version, migrate, schema_version};
use super::store::{JournalReader, JournalStore};
use super::{JournalError, RejectionReason, DEFAULT_LIMIT, MAX_LIMIT};

/// How long a connection waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

//! The queries of the PostgreSQL store: the SQLite store's, with `$n` placeholders (both take
//! their WHERE clauses from `journal::filter`) and PostgreSQL's types. A call query picks its
//! ids on the narrow `calls` table first and joins their rows after; the calls onboarding cites
//! are read many at once ([`JournalReader::calls_by_id`]), since each round trip costs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Object, Pool};
use tokio_postgres::types::ToSql;

use super::{bounded, schema, Database, Driver, READ_TIMEOUT};
use crate::journal::codec;
use crate::journal::filter::{
    self, call_filter, effective_limit, numbered, Dialect, Filter, Param,
};
use crate::journal::records::{
    CallQuery, CallerSummary, CertificateSummary, ConfirmationRecord, RejectionQuery, ReloadRecord,
    StoredCall, StoredConfirmation, StoredRejection, StoredReload,
};
use crate::journal::schema::from_micros;
use crate::journal::store::JournalReader;
use crate::journal::{JournalError, RejectionReason};

/// Dictionaries read so far, by id; shared by a pool's readers (a dictionary never changes).
pub(super) type Dictionaries = Mutex<HashMap<i64, Arc<Vec<u8>>>>;

/// A pool of reading connections and what they share.
#[derive(Clone)]
pub struct ReaderPool {
    database: Arc<Database>,
    driver: Arc<Driver>,
    pool: Pool,
    dictionaries: Arc<Dictionaries>,
}

impl std::fmt::Debug for ReaderPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderPool")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl ReaderPool {
    /// At most `size` connections to `database`, opened when first needed.
    pub fn new(database: Arc<Database>, driver: Arc<Driver>, size: usize) -> ReaderPool {
        ReaderPool {
            pool: database.pool(size),
            database,
            driver,
            dictionaries: Arc::default(),
        }
    }

    /// A reader holding one of the pool's connections (blocking; not on an async thread).
    pub fn reader(&self) -> Result<PostgresReader, JournalError> {
        let client =
            self.driver
                .block_on(bounded("a connection", super::CONNECT_TIMEOUT * 2, async {
                    self.pool
                        .get()
                        .await
                        .map_err(|error| self.database.unreachable(error))
                }))?;
        Ok(PostgresReader {
            client: Some(client),
            pool: self.clone(),
            failed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Checks that the database holds a journal of this version (for the CLI, which never
    /// migrates).
    pub fn check(&self) -> Result<(), JournalError> {
        let reader = self.reader()?;
        self.driver
            .block_on(schema::check(&self.database, reader.client()))
    }
}

/// Reads through one pooled connection; back to the pool when dropped (or closed after a
/// failed read, whose connection may be in any state).
pub struct PostgresReader {
    client: Option<Object>,
    pool: ReaderPool,
    /// Set by a read that failed against the database: the connection is closed, not reused.
    failed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PostgresReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresReader")
            .field("database", &self.pool.database)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresReader {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if self.failed.load(std::sync::atomic::Ordering::Relaxed) {
                drop(Object::take(client));
            }
        }
    }
}

impl PostgresReader {
    fn client(&self) -> &Object {
        self.client.as_ref().expect("present until dropped")
    }

    /// Runs one query set under [`READ_TIMEOUT`].
    fn run<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, JournalError>>,
    ) -> Result<T, JournalError> {
        let result = self
            .pool
            .driver
            .block_on(bounded("a journal query", READ_TIMEOUT, work));
        if let Err(error) = &result {
            if error.storage_fault().is_some() {
                self.failed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        result
    }
}

/// The parameters of a query, as tokio-postgres binds them.
fn bind(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|value| -> &(dyn ToSql + Sync) {
            match value {
                Param::Int(value) => value,
                Param::Text(value) => value,
                Param::Bool(value) => value,
            }
        })
        .collect()
}

/// The columns [`call_from_row`] reads, in its order.
const SELECT_CALL: &str = "SELECT c.id, c.time_us, c.http_status, c.latency_us, k.identity,
        d.dictionary, d.data
    FROM calls c LEFT JOIN certificates k ON k.id = c.certificate JOIN call_data d ON d.id = c.id";

async fn dictionary(
    client: &Object,
    dictionaries: &Dictionaries,
    id: i64,
) -> Result<Arc<Vec<u8>>, JournalError> {
    if id == 0 {
        return Ok(Arc::new(Vec::new()));
    }
    if let Some(bytes) = dictionaries.lock().ok().and_then(|d| d.get(&id).cloned()) {
        return Ok(bytes);
    }
    let bytes: Vec<u8> = client
        .query_opt("SELECT bytes FROM dictionaries WHERE id = $1", &[&id])
        .await?
        .map(|row| row.get(0))
        .ok_or_else(|| JournalError::Corrupt {
            table: "dictionaries",
            id,
            column: "bytes",
            reason: "missing".to_owned(),
        })?;
    let bytes = Arc::new(bytes);
    if let Ok(mut dictionaries) = dictionaries.lock() {
        dictionaries.insert(id, Arc::clone(&bytes));
    }
    Ok(bytes)
}

async fn query_calls(
    client: &Object,
    dictionaries: &Dictionaries,
    sql: &str,
    values: &[Param],
) -> Result<Vec<StoredCall>, JournalError> {
    let statement = client.prepare_cached(&numbered(sql)).await?;
    let rows = client.query(&statement, &bind(values)).await?;
    calls_of(client, dictionaries, rows).await
}

/// Rows of [`SELECT_CALL`] as calls.
async fn calls_of(
    client: &Object,
    dictionaries: &Dictionaries,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<StoredCall>, JournalError> {
    let mut calls = Vec::with_capacity(rows.len());
    for row in rows {
        let bytes = dictionary(client, dictionaries, row.get(5)).await?;
        calls.push(codec::call_from_parts(
            codec::HotParts {
                id: row.get(0),
                time_us: row.get(1),
                http_status: i64::from(row.get::<_, i32>(2)),
                latency_us: row.get(3),
                identity: row.get(4),
                data: row.get(6),
            },
            &bytes,
        )?);
    }
    Ok(calls)
}

async fn call_on(
    client: &Object,
    dictionaries: &Dictionaries,
    id: i64,
) -> Result<Option<StoredCall>, JournalError> {
    let sql = format!("{SELECT_CALL} WHERE c.id = ?");
    Ok(query_calls(client, dictionaries, &sql, &[Param::Int(id)])
        .await?
        .pop())
}

/// The calls of `ids` that exist, in one round trip.
async fn calls_by_id(
    client: &Object,
    dictionaries: &Dictionaries,
    ids: &[i64],
) -> Result<Vec<StoredCall>, JournalError> {
    let statement = client
        .prepare_cached(&format!("{SELECT_CALL} WHERE c.id = ANY($1)"))
        .await?;
    let rows = client.query(&statement, &[&ids]).await?;
    calls_of(client, dictionaries, rows).await
}

/// The newest call whose response carried receipt `guid` (also the writer's, to confirm).
pub(super) async fn call_by_receipt(
    client: &Object,
    dictionaries: &Dictionaries,
    guid: &str,
) -> Result<Option<StoredCall>, JournalError> {
    let statement = client
        .prepare_cached("SELECT call_id FROM receipts WHERE key = $1 ORDER BY call_id DESC")
        .await?;
    let candidates: Vec<i64> = client
        .query(&statement, &[&codec::receipt_key(guid)])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for id in candidates {
        if let Some(call) = call_on(client, dictionaries, id).await? {
            if call.record.receipts.iter().any(|sent| sent == guid) {
                return Ok(Some(call));
            }
        }
    }
    Ok(None)
}

fn time(
    micros: Option<i64>,
    table: &'static str,
    id: i64,
) -> Result<time::OffsetDateTime, JournalError> {
    from_micros(micros.unwrap_or(0)).map_err(|error| JournalError::Corrupt {
        table,
        id,
        column: "time_us",
        reason: error.to_string(),
    })
}

fn json<T: serde::de::DeserializeOwned>(
    text: Option<String>,
    table: &'static str,
    id: i64,
    column: &'static str,
) -> Result<Option<T>, JournalError> {
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

impl PostgresReader {
    fn dictionaries(&self) -> &Dictionaries {
        &self.pool.dictionaries
    }

    /// The WHERE clause of `query`, its names and certificates looked up first (a round trip
    /// each, so the query itself is planned with the ids' statistics).
    fn filter(&self, query: &CallQuery) -> Result<Filter, JournalError> {
        call_filter(query, Dialect::Postgres, &mut |sql, values| {
            let sql = numbered(sql);
            self.run(async {
                let client = self.client();
                let statement = client.prepare_cached(&sql).await?;
                Ok(client
                    .query(&statement, &bind(values))
                    .await?
                    .iter()
                    .map(|row| row.get::<_, i64>(0))
                    .collect())
            })
        })
    }

    async fn count(&self, filter: &Filter) -> Result<u64, JournalError> {
        let sql = numbered(&format!(
            "SELECT count(*) FROM calls c {}",
            filter.where_clause()
        ));
        let client = self.client();
        let statement = client.prepare_cached(&sql).await?;
        let count: i64 = client
            .query_one(&statement, &bind(&filter.values))
            .await?
            .get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Counts each of `filters` in one pass over the calls.
    async fn count_together(&self, filters: &[Filter]) -> Result<Vec<u64>, JournalError> {
        let mut counts = Vec::with_capacity(filters.len());
        let mut values = Vec::new();
        for filter in filters {
            counts.push(filter.counted());
            values.extend(filter.values.iter().cloned());
        }
        let sql = numbered(&format!("SELECT {} FROM calls c", counts.join(", ")));
        let client = self.client();
        let statement = client.prepare_cached(&sql).await?;
        let row = client.query_one(&statement, &bind(&values)).await?;
        Ok((0..filters.len())
            .map(|index| u64::try_from(row.get::<_, i64>(index)).unwrap_or(0))
            .collect())
    }

    async fn confirmations_where(
        &self,
        filter: &str,
        values: Vec<Param>,
    ) -> Result<Vec<StoredConfirmation>, JournalError> {
        let limit = if filter.is_empty() { "LIMIT ?" } else { "" };
        let sql = numbered(&format!(
            "SELECT f.guid, f.call_id, f.time_us, f.note, k.caller_id, f.supplier, s.text,
                k.fingerprint
             FROM confirmations f
             LEFT JOIN calls c ON c.id = f.call_id
             LEFT JOIN certificates k ON k.id = c.certificate
             LEFT JOIN names s ON s.id = c.supplier
             {filter} ORDER BY f.time_us DESC {limit}"
        ));
        let client = self.client();
        let statement = client.prepare_cached(&sql).await?;
        let mut confirmations = Vec::new();
        for row in client.query(&statement, &bind(&values)).await? {
            let call_id: i64 = row.get(1);
            confirmations.push(StoredConfirmation {
                call_id,
                caller_id: row.get(4),
                call_supplier: row.get(6),
                fingerprint: row.get(7),
                record: ConfirmationRecord {
                    guid: row.get(0),
                    time: time(Some(row.get(2)), "confirmations", call_id)?,
                    note: row.get(3),
                    supplier: row.get(5),
                },
            });
        }
        Ok(confirmations)
    }
}

impl JournalReader for PostgresReader {
    fn calls(&self, query: &CallQuery) -> Result<Vec<StoredCall>, JournalError> {
        let mut filter = self.filter(query)?;
        if filter.never {
            return Ok(Vec::new());
        }
        let order = if query.after_id.is_some() {
            "ASC"
        } else {
            "DESC"
        };
        // The ids first, on the narrow table alone, then their rows: planned together with
        // the joins, PostgreSQL walks the whole id index backwards looking for a rare caller's
        // or supplier's calls (70-130 ms at 1 M calls) instead of reading that caller's index.
        let sql = format!(
            "{SELECT_CALL} WHERE c.id IN (SELECT c.id FROM calls c {} ORDER BY c.id {order} LIMIT ?) \
             ORDER BY c.id {order}",
            filter.where_clause()
        );
        filter.values.push(Param::Int(effective_limit(query.limit)));
        self.run(query_calls(
            self.client(),
            self.dictionaries(),
            &sql,
            &filter.values,
        ))
    }

    fn count_calls(&self, query: &CallQuery) -> Result<u64, JournalError> {
        let filter = self.filter(query)?;
        if filter.never {
            return Ok(0);
        }
        self.run(self.count(&filter))
    }

    fn count_each(&self, queries: &[CallQuery]) -> Result<Vec<u64>, JournalError> {
        let filters = queries
            .iter()
            .map(|query| self.filter(query))
            .collect::<Result<Vec<_>, _>>()?;
        filter::count_each(
            queries,
            filters,
            |filter| self.run(self.count(filter)),
            |filters| self.run(self.count_together(filters)),
        )
    }

    fn call(&self, id: i64) -> Result<Option<StoredCall>, JournalError> {
        self.run(call_on(self.client(), self.dictionaries(), id))
    }

    fn calls_by_id(&self, ids: &[i64]) -> Result<Vec<StoredCall>, JournalError> {
        self.run(calls_by_id(self.client(), self.dictionaries(), ids))
    }

    fn call_by_receipt(&self, guid: &str) -> Result<Option<StoredCall>, JournalError> {
        self.run(call_by_receipt(self.client(), self.dictionaries(), guid))
    }

    fn rejections(&self, query: &RejectionQuery) -> Result<Vec<StoredRejection>, JournalError> {
        let mut filter = filter::rejection_filter(query)?;
        let sql = numbered(&format!(
            "SELECT id, time_us, peer, reason, detail, identity, mode FROM rejections {}
             ORDER BY id DESC LIMIT ?",
            filter.where_clause()
        ));
        filter.values.push(Param::Int(effective_limit(query.limit)));
        self.run(async {
            let client = self.client();
            let statement = client.prepare_cached(&sql).await?;
            let mut rejections = Vec::new();
            for row in client.query(&statement, &bind(&filter.values)).await? {
                const TABLE: &str = "rejections";
                let id: i64 = row.get(0);
                let reason: String = row.get(3);
                rejections.push(StoredRejection {
                    id,
                    record: crate::journal::RejectionRecord {
                        time: time(Some(row.get(1)), TABLE, id)?,
                        peer: row.get(2),
                        reason: RejectionReason::parse(&reason).ok_or_else(|| {
                            JournalError::Corrupt {
                                table: TABLE,
                                id,
                                column: "reason",
                                reason: format!("unknown reason {reason:?}"),
                            }
                        })?,
                        detail: row.get(4),
                        identity: json(row.get(5), TABLE, id, "identity")?,
                        mode: row.get(6),
                    },
                });
            }
            Ok(rejections)
        })
    }

    fn confirmation(&self, guid: &str) -> Result<Option<StoredConfirmation>, JournalError> {
        self.run(async {
            Ok(self
                .confirmations_where("WHERE f.guid = ?", vec![Param::Text(guid.to_owned())])
                .await?
                .pop())
        })
    }

    fn confirmations(&self, limit: usize) -> Result<Vec<StoredConfirmation>, JournalError> {
        self.run(self.confirmations_where("", vec![Param::Int(effective_limit(limit))]))
    }

    fn callers(&self, limit: usize) -> Result<Vec<CallerSummary>, JournalError> {
        self.run(async {
            let client = self.client();
            let statement = client
                .prepare_cached(
                    "SELECT caller_id, max(cvr), sum(calls)::int8, min(first_us), max(last_us),
                        max(latest_receipt), max(latest_passed)
                     FROM certificates WHERE calls > 0
                     GROUP BY caller_id ORDER BY max(last_us) DESC LIMIT $1",
                )
                .await?;
            let mut callers = Vec::new();
            for row in client.query(&statement, &[&effective_limit(limit)]).await? {
                callers.push(CallerSummary {
                    caller_id: row.get(0),
                    cvr: row.get(1),
                    calls: row.get(2),
                    first_seen: time(row.get(3), "certificates", 0)?,
                    last_seen: time(row.get(4), "certificates", 0)?,
                    latest_receipt: row.get(5),
                    latest_passed: row.get(6),
                });
            }
            Ok(callers)
        })
    }

    fn certificates(&self) -> Result<Vec<CertificateSummary>, JournalError> {
        self.run(async {
            let client = self.client();
            let statement = client
                .prepare_cached(
                    "SELECT id, identity, calls, first_us, last_us, latest_receipt, latest_passed
                     FROM certificates WHERE calls > 0 ORDER BY last_us DESC",
                )
                .await?;
            let mut certificates = Vec::new();
            for row in client.query(&statement, &[]).await? {
                let id: i64 = row.get(0);
                certificates.push(CertificateSummary {
                    identity: json(Some(row.get(1)), "certificates", id, "identity")?.ok_or_else(
                        || JournalError::Corrupt {
                            table: "certificates",
                            id,
                            column: "identity",
                            reason: "missing".to_owned(),
                        },
                    )?,
                    calls: row.get(2),
                    first_seen: time(row.get(3), "certificates", id)?,
                    last_seen: time(row.get(4), "certificates", id)?,
                    latest_receipt: row.get(5),
                    latest_passed: row.get(6),
                });
            }
            Ok(certificates)
        })
    }

    fn reloads(&self, limit: usize) -> Result<Vec<StoredReload>, JournalError> {
        self.run(async {
            let client = self.client();
            let statement = client
                .prepare_cached(
                    "SELECT id, time_us, ok, files, rules, error FROM reloads
                     ORDER BY id DESC LIMIT $1",
                )
                .await?;
            let mut reloads = Vec::new();
            for row in client.query(&statement, &[&effective_limit(limit)]).await? {
                const TABLE: &str = "reloads";
                let id: i64 = row.get(0);
                let rules: i64 = row.get(4);
                reloads.push(StoredReload {
                    id,
                    record: ReloadRecord {
                        time: time(Some(row.get(1)), TABLE, id)?,
                        ok: row.get(2),
                        files: json(Some(row.get(3)), TABLE, id, "files")?.unwrap_or_default(),
                        rules: usize::try_from(rules).unwrap_or(0),
                        error: row.get(5),
                    },
                });
            }
            Ok(reloads)
        })
    }
}

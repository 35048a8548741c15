//! The writer of the PostgreSQL store: what the SQLite store does in one transaction per batch.
//! A batch of calls (nearly every batch) is one statement, committed on its own
//! ([`INSERT_CALLS`]: call ids drawn from the sequence, one multi-row insert per table, the
//! certificates' counters, NOTIFY), so it costs one round trip and one commit whatever its size;
//! a batch with other entries (refused handshakes, reloads, confirmations, a reset) runs them in
//! their places inside BEGIN … COMMIT. The connection is driven on the writer's own thread.
//!
//! Several replicas write at once. What they share is made safe for that: names, certificates
//! and dictionaries are interned outside the batch's transaction (insert-or-ignore, in sorted
//! order, so two replicas never wait on each other's rows in opposite orders); a certificate's
//! counters are locked in id order; call ids come from one sequence; pruning takes an
//! advisory lock, so one replica prunes at a time.
//!
//! A failed batch drops its connection (the server rolls the transaction back) and its caches;
//! the next batch connects again, so a restarted database is picked up by itself.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use time::OffsetDateTime;

use super::{bounded, schema, Database, Driver, WRITE_TIMEOUT};
use crate::journal::codec;
use crate::journal::records::{
    CallRecord, ConfirmationRecord, Entry, IdentityFields, Outcome, RejectionRecord, ReloadRecord,
};
use crate::journal::schema::to_micros;
use crate::journal::store::{JournalStore, PruneReason, Pruned, Retention};
use crate::journal::{JournalError, LiveEvent, StorageFault};

/// Whether a failure to open is worth waiting out at start-up: the database unreachable or
/// still starting, not a server certificate we refuse (that does not change by itself).
fn worth_waiting(error: &JournalError) -> bool {
    error.storage_fault() == Some(StorageFault::Io)
        && !crate::journal::writer::error_chain(error).contains("invalid peer certificate")
}

/// The channel on which every replica announces what it committed.
pub const CHANNEL: &str = "dfdg_mock_journal";

/// Key of the advisory lock held by the replica that is pruning.
const PRUNE_LOCK: i64 = 0x6466_6467_7072_756e; // "dfdgprun"

/// The first wait before connecting again at start-up, doubled up to [`MAX_START_BACKOFF`].
const START_BACKOFF: Duration = Duration::from_millis(250);
const MAX_START_BACKOFF: Duration = Duration::from_secs(4);

/// Dictionaries kept at most, as in the SQLite store.
const MAX_DICTIONARIES: i64 = 64;

/// Names the writer remembers at most before it starts over (they stay in the table).
const MAX_CACHED_NAMES: usize = 65_536;

/// Call ids per NOTIFY payload (PostgreSQL allows 8000 bytes).
const IDS_PER_NOTICE: usize = 400;

/// What the writer remembers between batches; dropped whenever a batch fails.
#[derive(Debug, Default)]
struct Caches {
    names: HashMap<String, i64>,
    /// Fingerprint → certificates.id.
    certificates: HashMap<String, i64>,
    /// Operation → (dictionaries.id, bytes).
    dictionaries: HashMap<String, (i64, Arc<Vec<u8>>)>,
    /// dictionaries.id → bytes (pruning reads old blobs).
    dictionary_bytes: HashMap<i64, Arc<Vec<u8>>>,
    dictionary_count: Option<i64>,
}

/// The writer's store. Opened by [`crate::journal::open`], which migrates the schema first.
pub struct PostgresStore {
    database: Arc<Database>,
    /// The writer's own runtime, on the thread that calls the store: its connection is
    /// driven there too, so a batch's messages do not hop between threads.
    driver: Driver,
    /// One connection, reopened after a failure.
    pool: Pool,
    caches: Caches,
    /// This journal's id in NOTIFY payloads, so its own announcements are not replayed to it.
    origin: Arc<str>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, migrates the schema (once, under an advisory lock) and returns the writer's
    /// store. Blocking, from any thread.
    pub fn open(
        database: Arc<Database>,
        driver: Arc<Driver>,
        origin: Arc<str>,
    ) -> Result<PostgresStore, JournalError> {
        PostgresStore::open_within(database, driver, origin, Duration::ZERO)
    }

    /// [`PostgresStore::open`], trying again for up to `patience` while the database cannot be
    /// reached or is still starting (a server started beside its database, or before it), with
    /// a warning each time; any other failure (authentication, no such database, a server
    /// certificate that does not verify, a newer schema) at once.
    pub fn open_within(
        database: Arc<Database>,
        driver: Arc<Driver>,
        origin: Arc<str>,
        patience: Duration,
    ) -> Result<PostgresStore, JournalError> {
        let pool = database.pool(1);
        let started = Instant::now();
        driver.wait(async {
            let mut backoff = START_BACKOFF;
            loop {
                let attempt = bounded("the migration", WRITE_TIMEOUT * 6, async {
                    let object = pool
                        .get()
                        .await
                        .map_err(|error| database.unreachable(error))?;
                    let mut client = Object::take(object);
                    schema::migrate(&database, &mut client).await
                })
                .await;
                match attempt {
                    Err(error)
                        if worth_waiting(&error) && started.elapsed() + backoff < patience =>
                    {
                        tracing::warn!(
                            database = %database,
                            error = %crate::journal::writer::error_chain(&error),
                            retry_in = ?backoff,
                            "waiting for the journal database"
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_START_BACKOFF);
                    }
                    other => return other,
                }
            }
        })?;
        Ok(PostgresStore {
            database,
            driver: Driver::current_thread()?,
            pool,
            caches: Caches::default(),
            origin,
        })
    }

    /// Runs `work` with the writer's connection under [`WRITE_TIMEOUT`]; on failure the
    /// connection (and with it any open transaction) and the caches are dropped.
    fn with_connection<T>(
        &mut self,
        what: &'static str,
        work: impl AsyncFnOnce(&Object, &mut Caches, &str) -> Result<T, JournalError>,
    ) -> Result<T, JournalError> {
        let PostgresStore {
            database,
            driver,
            pool,
            caches,
            origin,
        } = self;
        let result = driver.block_on(async {
            let client = bounded("a connection", super::CONNECT_TIMEOUT * 2, async {
                pool.get()
                    .await
                    .map_err(|error| database.unreachable(error))
            })
            .await?;
            let result = bounded(what, WRITE_TIMEOUT, work(&client, caches, origin)).await;
            if result.is_err() {
                // Whatever state the connection is in, it goes; the server rolls back.
                drop(Object::take(client));
            }
            result
        });
        if result.is_err() {
            *caches = Caches::default();
        }
        result
    }
}

impl JournalStore for PostgresStore {
    fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError> {
        self.with_connection("a journal batch", async |client, caches, origin| {
            append(client, caches, origin, entries).await
        })
    }

    fn prune(&mut self, retention: &Retention, limit: usize) -> Result<Pruned, JournalError> {
        let retention = *retention;
        self.with_connection("a pruning step", async move |client, caches, _| {
            prune(client, caches, retention, limit).await
        })
    }

    fn probe(&mut self) -> Result<(), JournalError> {
        self.with_connection("the probe", async |client, _, _| {
            client
                .execute(
                    "INSERT INTO probe (id, at_us) VALUES (1, $1)
                     ON CONFLICT (id) DO UPDATE SET at_us = EXCLUDED.at_us",
                    &[&to_micros(OffsetDateTime::now_utc())],
                )
                .await?;
            Ok(())
        })
    }
}

/// The hot columns of a run of calls, one vector per column (bound as arrays to `unnest`),
/// and their receipt keys, each with the 1-based position of its call in the run.
#[derive(Default)]
struct CallRows {
    time_us: Vec<i64>,
    certificate: Vec<Option<i64>>,
    supplier: Vec<Option<i64>>,
    service: Vec<i64>,
    endpoint: Vec<i64>,
    operation: Vec<Option<i64>>,
    soap_action: Vec<Option<i64>>,
    outcome: Vec<i16>,
    fault_code: Vec<Option<i64>>,
    fault_name: Vec<Option<i64>>,
    checks: Vec<Option<i64>>,
    user_matches: Vec<bool>,
    http_status: Vec<i32>,
    latency_us: Vec<i64>,
    dictionary: Vec<i64>,
    data: Vec<Vec<u8>>,
    receipt_key: Vec<i64>,
    receipt_position: Vec<i64>,
}

impl CallRows {
    fn len(&self) -> usize {
        self.time_us.len()
    }
}

/// A run of calls in one statement: their ids drawn from the sequence (in order), the hot
/// rows, the cold data and the receipt keys inserted, the certificates' counters brought up
/// to date, and (when `$21`) the ids announced; it answers the ids in the calls' order. Alone,
/// it is a batch's whole transaction: one round trip, one commit.
///
/// What the counters need is computed here from the rows (a receipt is outcome 0, whose
/// identity checks passed when `checks` is 0). The certificates' rows are locked in id order
/// (the sorted `FOR UPDATE` beneath the update takes every lock before the update touches
/// the row), so replicas whose batches share certificates never wait on each other in
/// opposite orders.
const INSERT_CALLS: &str = "
WITH ids AS MATERIALIZED (
    SELECT array_agg(id ORDER BY id) AS id
    FROM (SELECT nextval('call_ids') AS id FROM generate_series(1, cardinality($1::int8[]))) drawn
), input AS MATERIALIZED (
    SELECT ids.id[row.n::int4] AS id, row.*
    FROM ids, unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
            $7::int8[], $8::int2[], $9::int8[], $10::int8[], $11::int8[], $12::bool[],
            $13::int4[], $14::int8[], $15::int8[], $16::bytea[])
        WITH ORDINALITY AS row(time_us, certificate, supplier, service, endpoint, operation,
            soap_action, outcome, fault_code, fault_name, checks, user_matches, http_status,
            latency_us, dictionary, data, n)
), hot AS (
    INSERT INTO calls (id, time_us, certificate, supplier, service, endpoint, operation,
        soap_action, outcome, fault_code, fault_name, checks, user_matches, http_status,
        latency_us)
    SELECT id, time_us, certificate, supplier, service, endpoint, operation, soap_action,
        outcome, fault_code, fault_name, checks, user_matches, http_status, latency_us
    FROM input
), cold AS (
    INSERT INTO call_data (id, dictionary, data) SELECT id, dictionary, data FROM input
), keys AS (
    INSERT INTO receipts (key, call_id)
    SELECT sent.key, input.id FROM unnest($17::int8[], $18::int8[]) AS sent(key, n)
    JOIN input USING (n)
), counters AS (
    UPDATE certificates k SET calls = k.calls + d.calls,
        first_us = LEAST(k.first_us, d.first_us), last_us = GREATEST(k.last_us, d.last_us),
        latest_receipt = GREATEST(k.latest_receipt, d.latest_receipt),
        latest_passed = GREATEST(k.latest_passed, d.latest_passed)
    FROM (
        SELECT c.id, delta.* FROM certificates c JOIN (
            SELECT certificate, count(*) AS calls, min(time_us) AS first_us,
                max(time_us) AS last_us,
                max(id) FILTER (WHERE outcome = 0) AS latest_receipt,
                max(id) FILTER (WHERE outcome = 0 AND checks = 0) AS latest_passed
            FROM input WHERE certificate IS NOT NULL GROUP BY certificate
        ) delta ON delta.certificate = c.id
        ORDER BY c.id FOR UPDATE OF c
    ) d
    WHERE k.id = d.id
), announced AS (
    SELECT pg_notify($19, json_build_object('origin', $20::text,
        'calls', json_agg(id ORDER BY id))::text)
    FROM input WHERE $21::bool GROUP BY (n - 1) / $22::int8
)
SELECT id FROM input WHERE (SELECT count(*) FROM announced) >= 0 ORDER BY n";

/// Inserts a run of calls (see [`INSERT_CALLS`]) and returns their ids in order; announces
/// them when `announce`.
async fn insert_calls(
    client: &Object,
    rows: &CallRows,
    origin: &str,
    announce: bool,
) -> Result<Vec<i64>, JournalError> {
    if rows.len() == 0 {
        return Ok(Vec::new());
    }
    let statement = client.prepare_cached(INSERT_CALLS).await?;
    let per_notice = IDS_PER_NOTICE as i64;
    let ids: Vec<i64> = client
        .query(
            &statement,
            &[
                &rows.time_us,
                &rows.certificate,
                &rows.supplier,
                &rows.service,
                &rows.endpoint,
                &rows.operation,
                &rows.soap_action,
                &rows.outcome,
                &rows.fault_code,
                &rows.fault_name,
                &rows.checks,
                &rows.user_matches,
                &rows.http_status,
                &rows.latency_us,
                &rows.dictionary,
                &rows.data,
                &rows.receipt_key,
                &rows.receipt_position,
                &CHANNEL,
                &origin,
                &announce,
                &per_notice,
            ],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if ids.len() != rows.len() {
        return Err(JournalError::IdCount {
            expected: rows.len(),
            returned: ids.len(),
        });
    }
    Ok(ids)
}

/// Writes one batch in one transaction and returns its ids in order.
async fn append(
    client: &Object,
    caches: &mut Caches,
    origin: &str,
    entries: &[Entry],
) -> Result<Vec<i64>, JournalError> {
    let calls: Vec<&CallRecord> = entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Call(call) => Some(call),
            _ => None,
        })
        .collect();
    // What the calls refer to, interned outside the transaction.
    let mut packed = Vec::with_capacity(calls.len());
    for call in &calls {
        packed.push(codec::pack(call)?);
    }
    intern(client, caches, &calls, &packed).await?;
    let mut rows = CallRows::default();
    if calls.len() == entries.len() {
        // Calls only (nearly every batch): one statement is the whole transaction.
        for (call, packed) in calls.iter().zip(&packed) {
            add_row(caches, &mut rows, call, packed)?;
        }
        return insert_calls(client, &rows, origin, true).await;
    }
    // Other entries among the calls: each in its place, in one transaction (confirmations
    // read what came before them, and a reset removes it).
    client.batch_execute("BEGIN").await?;
    let mut ids = vec![0; entries.len()];
    let mut notice = Notice::default();
    let mut run = Vec::new();
    let mut next_packed = packed.iter();
    for (index, entry) in entries.iter().enumerate() {
        if let Entry::Call(call) = entry {
            let packed = next_packed.next().ok_or(JournalError::IdCount {
                expected: calls.len(),
                returned: packed.len(),
            })?;
            add_row(caches, &mut rows, call, packed)?;
            run.push(index);
            continue;
        }
        for (index, id) in run
            .drain(..)
            .zip(insert_calls(client, &std::mem::take(&mut rows), origin, false).await?)
        {
            ids[index] = id;
            notice.calls.push(id);
        }
        ids[index] = match entry {
            Entry::Call(_) => continue,
            Entry::Rejection(rejection) => {
                let id = insert_rejection(client, rejection).await?;
                notice.rejections.push(id);
                id
            }
            Entry::Reload(reload) => insert_reload(client, reload).await?,
            Entry::Confirmation(confirmation) => {
                let call_id = insert_confirmation(client, confirmation).await?;
                notice
                    .confirmations
                    .push((confirmation.guid.clone(), call_id));
                call_id
            }
            Entry::Reset => {
                client
                    .batch_execute(
                        "DELETE FROM confirmations; DELETE FROM receipts;
                         DELETE FROM call_data; DELETE FROM calls; DELETE FROM rejections;
                         UPDATE certificates SET calls = 0, first_us = NULL,
                             last_us = NULL, latest_receipt = NULL, latest_passed = NULL
                             WHERE calls <> 0 OR latest_receipt IS NOT NULL;",
                    )
                    .await?;
                // What came before is deleted; views reload on the reset.
                notice.calls.clear();
                notice.reset = true;
                0
            }
        };
    }
    for (index, id) in run
        .drain(..)
        .zip(insert_calls(client, &rows, origin, false).await?)
    {
        ids[index] = id;
        notice.calls.push(id);
    }
    // The announcements and the commit in one flight.
    let payloads = notice.payloads(origin);
    let notify = client.prepare_cached("SELECT pg_notify($1, $2)").await?;
    let mut flight = Vec::new();
    for payload in &payloads {
        flight.push(Box::pin(async {
            client.execute(&notify, &[&CHANNEL, payload]).await?;
            Ok::<_, JournalError>(())
        })
            as Pin<
                Box<dyn Future<Output = Result<(), JournalError>> + Send + '_>,
            >);
    }
    flight.push(Box::pin(async {
        client.batch_execute("COMMIT").await?;
        Ok(())
    }));
    // Every step must succeed: after a failed statement the server turns COMMIT into a
    // rollback without an error.
    for result in futures_util::future::join_all(flight).await {
        result?;
    }
    Ok(ids)
}

/// Adds one call to `rows`.
fn add_row(
    caches: &Caches,
    rows: &mut CallRows,
    call: &CallRecord,
    packed: &[u8],
) -> Result<(), JournalError> {
    let name = |text: &str| -> Result<i64, JournalError> {
        caches
            .names
            .get(text)
            .copied()
            .ok_or_else(|| JournalError::Corrupt {
                table: "names",
                id: 0,
                column: "text",
                reason: format!("{text:?} was not interned"),
            })
    };
    let optional = |text: Option<&str>| text.map(name).transpose();
    let (dictionary, bytes) = call
        .operation
        .as_deref()
        .and_then(|operation| caches.dictionaries.get(operation))
        .map_or((0, None), |(id, bytes)| (*id, Some(bytes)));
    let blob = codec::compress(packed, bytes.map_or(&[][..], |bytes| bytes.as_slice()));
    let certificate = call
        .identity
        .as_ref()
        .and_then(|identity| caches.certificates.get(&identity.fingerprint).copied());
    let (fault_code, fault_name) = match &call.outcome {
        Outcome::Fault { code, fault_code } => (*code, Some(name(fault_code)?)),
        Outcome::Receipt | Outcome::Http => (None, None),
    };
    rows.time_us.push(to_micros(call.time));
    rows.certificate.push(certificate);
    rows.supplier.push(optional(call.supplier.as_deref())?);
    rows.service
        .push(name(crate::journal::service_of(&call.path))?);
    rows.endpoint.push(name(endpoint(call))?);
    rows.operation.push(optional(call.operation.as_deref())?);
    rows.soap_action
        .push(optional(call.soap_action.as_deref())?);
    rows.outcome.push(codec::outcome_number(&call.outcome));
    rows.fault_code.push(fault_code);
    rows.fault_name.push(fault_name);
    // The counters' "identity checks passed" is `checks = 0` on a call with a certificate.
    rows.checks.push(
        call.authorization
            .as_ref()
            .map(|_| i64::try_from(call.identity_findings.len()).unwrap_or(i64::MAX)),
    );
    rows.user_matches.push(call.header_names_caller());
    rows.http_status.push(i32::from(call.http_status));
    rows.latency_us
        .push(i64::try_from(call.latency_micros).unwrap_or(i64::MAX));
    rows.dictionary.push(dictionary);
    rows.data.push(blob);
    let position = rows.len() as i64;
    let mut keys: Vec<i64> = call
        .receipts
        .iter()
        .map(|g| codec::receipt_key(g))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        rows.receipt_key.push(key);
        rows.receipt_position.push(position);
    }
    Ok(())
}

/// The path without its query: the `endpoint` name.
fn endpoint(call: &CallRecord) -> &str {
    call.path.split('?').next().unwrap_or_default()
}

/// Makes sure every name, certificate and dictionary the calls refer to has an id in `caches`.
async fn intern(
    client: &Object,
    caches: &mut Caches,
    calls: &[&CallRecord],
    packed: &[Vec<u8>],
) -> Result<(), JournalError> {
    let mut names: Vec<String> = Vec::new();
    let mut identities: BTreeMap<&str, &IdentityFields> = BTreeMap::new();
    for call in calls {
        let mut want = |text: &str| {
            if !caches.names.contains_key(text) {
                names.push(text.to_owned());
            }
        };
        want(crate::journal::service_of(&call.path));
        want(endpoint(call));
        for text in [
            call.supplier.as_deref(),
            call.operation.as_deref(),
            call.soap_action.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            want(text);
        }
        if let Outcome::Fault { fault_code, .. } = &call.outcome {
            want(fault_code);
        }
        if let Some(identity) = &call.identity {
            if !caches.certificates.contains_key(&identity.fingerprint) {
                identities.insert(identity.fingerprint.as_str(), identity);
            }
        }
    }
    if !names.is_empty() {
        names.sort_unstable();
        names.dedup();
        client
            .execute(
                "INSERT INTO names (text) SELECT unnest($1::text[]) ON CONFLICT (text) DO NOTHING",
                &[&names],
            )
            .await?;
        if caches.names.len() + names.len() > MAX_CACHED_NAMES {
            caches.names.clear();
        }
        for row in client
            .query(
                "SELECT id, text FROM names WHERE text = ANY($1::text[])",
                &[&names],
            )
            .await?
        {
            caches.names.insert(row.get(1), row.get(0));
        }
    }
    if !identities.is_empty() {
        let mut fingerprints = Vec::new();
        let mut caller_ids = Vec::new();
        let mut cvrs = Vec::new();
        let mut jsons = Vec::new();
        for (fingerprint, identity) in &identities {
            fingerprints.push(fingerprint.to_string());
            caller_ids.push(identity.caller_id.clone());
            cvrs.push(identity.cvr.clone());
            jsons.push(
                serde_json::to_string(identity).map_err(|source| JournalError::Encode {
                    what: "identity",
                    source,
                })?,
            );
        }
        client
            .execute(
                "INSERT INTO certificates (fingerprint, caller_id, cvr, identity)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                 ON CONFLICT (fingerprint) DO NOTHING",
                &[&fingerprints, &caller_ids, &cvrs, &jsons],
            )
            .await?;
        for row in client
            .query(
                "SELECT id, fingerprint FROM certificates WHERE fingerprint = ANY($1::text[])",
                &[&fingerprints],
            )
            .await?
        {
            caches.certificates.insert(row.get(1), row.get(0));
        }
    }
    for (call, packed) in calls.iter().zip(packed) {
        let Some(operation) = call.operation.as_deref() else {
            continue;
        };
        if caches.dictionaries.contains_key(operation) {
            continue;
        }
        let count = match caches.dictionary_count {
            Some(count) => count,
            None => client
                .query_one("SELECT count(*) FROM dictionaries", &[])
                .await?
                .get(0),
        };
        if count < MAX_DICTIONARIES {
            client
                .execute(
                    "INSERT INTO dictionaries (key, bytes) VALUES ($1, $2)
                     ON CONFLICT (key) DO NOTHING",
                    &[&operation, &codec::dictionary_from(packed)],
                )
                .await?;
        }
        let found = client
            .query_opt(
                "SELECT id, bytes FROM dictionaries WHERE key = $1",
                &[&operation],
            )
            .await?;
        caches.dictionary_count = Some(count + 1);
        // Over the cap: this operation's calls are compressed without a dictionary (id 0).
        let (id, bytes) = match found {
            Some(row) => (row.get(0), Arc::new(row.get::<_, Vec<u8>>(1))),
            None => (0, Arc::new(Vec::new())),
        };
        caches.dictionary_bytes.insert(id, Arc::clone(&bytes));
        caches
            .dictionaries
            .insert(operation.to_owned(), (id, bytes));
    }
    Ok(())
}

async fn insert_rejection(
    client: &Object,
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
    let statement = client
        .prepare_cached(
            "INSERT INTO rejections (time_us, peer, reason, detail, caller_id, cvr, identity, mode)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &to_micros(rejection.time),
                &rejection.peer,
                &rejection.reason.as_str(),
                &rejection.detail,
                &identity.map(|identity| identity.caller_id.as_str()),
                &identity.and_then(|identity| identity.cvr.as_deref()),
                &identity_json,
                &rejection.mode,
            ],
        )
        .await?;
    Ok(row.get(0))
}

async fn insert_reload(client: &Object, reload: &ReloadRecord) -> Result<i64, JournalError> {
    let files = serde_json::to_string(&reload.files).map_err(|source| JournalError::Encode {
        what: "reloaded files",
        source,
    })?;
    let statement = client
        .prepare_cached(
            "INSERT INTO reloads (time_us, ok, files, rules, error) VALUES ($1, $2, $3, $4, $5)
             RETURNING id",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &to_micros(reload.time),
                &reload.ok,
                &files,
                &i64::try_from(reload.rules).unwrap_or(i64::MAX),
                &reload.error,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Confirms a receipt: the newest call that sent it; the first confirmation stays.
async fn insert_confirmation(
    client: &Object,
    confirmation: &ConfirmationRecord,
) -> Result<i64, JournalError> {
    let call = super::reader::call_by_receipt(client, &Default::default(), &confirmation.guid)
        .await?
        .ok_or_else(|| JournalError::UnknownReceipt {
            guid: confirmation.guid.clone(),
        })?;
    client
        .execute(
            "INSERT INTO confirmations (guid, call_id, time_us, note, supplier)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (guid) DO NOTHING",
            &[
                &confirmation.guid,
                &call.id,
                &to_micros(confirmation.time),
                &confirmation.note,
                &confirmation.supplier,
            ],
        )
        .await?;
    Ok(call.id)
}

/// What a batch announces to the other replicas.
#[derive(Debug, Default)]
struct Notice {
    calls: Vec<i64>,
    rejections: Vec<i64>,
    confirmations: Vec<(String, i64)>,
    reset: bool,
}

impl Notice {
    /// The NOTIFY payloads: JSON objects of at most [`IDS_PER_NOTICE`] call ids each.
    fn payloads(&self, origin: &str) -> Vec<String> {
        if self.calls.is_empty()
            && self.rejections.is_empty()
            && self.confirmations.is_empty()
            && !self.reset
        {
            return Vec::new();
        }
        let mut payloads = Vec::new();
        let mut chunks = self.calls.chunks(IDS_PER_NOTICE);
        let first = chunks.next().unwrap_or(&[]);
        payloads.push(
            serde_json::json!({
                "origin": origin,
                "reset": self.reset,
                "calls": first,
                "rejections": self.rejections,
                "confirmations": self.confirmations,
            })
            .to_string(),
        );
        for chunk in chunks {
            payloads.push(serde_json::json!({ "origin": origin, "calls": chunk }).to_string());
        }
        payloads
    }
}

/// Reads a NOTIFY payload of another replica into live events, in order; `None` for one of
/// this journal (`origin`) or one that does not parse.
pub(super) fn events_of(payload: &str, origin: &str) -> Option<Vec<LiveEvent>> {
    #[derive(serde::Deserialize)]
    struct Payload {
        origin: String,
        #[serde(default)]
        reset: bool,
        #[serde(default)]
        calls: Vec<i64>,
        #[serde(default)]
        rejections: Vec<i64>,
        #[serde(default)]
        confirmations: Vec<(String, i64)>,
    }
    let payload: Payload = serde_json::from_str(payload).ok()?;
    if payload.origin == origin {
        return None;
    }
    let mut events = Vec::new();
    if payload.reset {
        events.push(LiveEvent::Reset);
    }
    events.extend(payload.calls.into_iter().map(LiveEvent::Call));
    events.extend(payload.rejections.into_iter().map(LiveEvent::Rejection));
    events.extend(
        payload
            .confirmations
            .into_iter()
            .map(|(guid, call_id)| LiveEvent::Confirmation { guid, call_id }),
    );
    Some(events)
}

/// Why the journal is over its retention, and how many calls it holds; `None` when it is not.
/// `max_size` does not apply: PostgreSQL keeps the space of deleted rows for new ones instead
/// of giving it back, and its disk is its administrator's to watch.
async fn over_retention(
    client: &Object,
    retention: &Retention,
    cutoff: Option<i64>,
) -> Result<Option<(PruneReason, u64)>, JournalError> {
    let statement = client
        .prepare_cached(
            "SELECT (SELECT COALESCE(sum(calls), 0)::int8 FROM certificates)
                  + (SELECT count(*) FROM calls WHERE certificate IS NULL),
                 $1::int8 IS NOT NULL
                 AND (COALESCE((SELECT time_us FROM calls ORDER BY id LIMIT 1) < $1, FALSE)
                      OR EXISTS (SELECT 1 FROM rejections WHERE time_us < $1))",
        )
        .await?;
    let row = client.query_one(&statement, &[&cutoff]).await?;
    let count = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    let old: bool = row.get(1);
    Ok(if retention.max_calls.is_some_and(|max| count > max) {
        Some((PruneReason::MaxCalls, count))
    } else if old {
        Some((PruneReason::MaxAge, count))
    } else {
        None
    })
}

/// One pruning step under the pruning lock (skipped while another replica holds it).
async fn prune(
    client: &Object,
    caches: &mut Caches,
    retention: Retention,
    limit: usize,
) -> Result<Pruned, JournalError> {
    let cutoff = retention
        .max_age
        .map(|age| to_micros(OffsetDateTime::now_utc() - age));
    // Nearly always nothing is due: learning that takes one statement, outside a transaction.
    if over_retention(client, &retention, cutoff).await?.is_none() {
        return Ok(Pruned::default());
    }
    client.batch_execute("BEGIN").await?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PRUNE_LOCK])
        .await?
        .get(0);
    // Under the lock, once more: another replica may just have pruned.
    let due = if locked {
        over_retention(client, &retention, cutoff).await?
    } else {
        None
    };
    let Some((reason, count)) = due else {
        client.batch_execute("COMMIT").await?;
        return Ok(Pruned::default());
    };
    let mut limit = i64::try_from(limit).unwrap_or(i64::MAX);
    if let (PruneReason::MaxCalls, Some(max)) = (reason, retention.max_calls) {
        limit = limit.min(i64::try_from(count.saturating_sub(max)).unwrap_or(i64::MAX));
    }
    let rows = client
        .query(
            "SELECT c.id, c.time_us, d.dictionary, d.data FROM calls c JOIN call_data d ON d.id = c.id
             WHERE NOT EXISTS (SELECT 1 FROM confirmations f WHERE f.call_id = c.id)
               AND NOT EXISTS (SELECT 1 FROM certificates k
                               WHERE k.latest_receipt = c.id OR k.latest_passed = c.id)
             ORDER BY c.id LIMIT $1",
            &[&limit],
        )
        .await?;
    let mut ids = Vec::new();
    let mut keys = Vec::new();
    let mut key_calls = Vec::new();
    for row in &rows {
        let (id, time_us, dictionary): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if reason == PruneReason::MaxAge && cutoff.is_some_and(|cutoff| time_us >= cutoff) {
            break;
        }
        let bytes = dictionary_bytes(client, caches, dictionary).await?;
        let data: Vec<u8> = row.get(3);
        let packed = codec::decompress(&data, &bytes).map_err(|reason| JournalError::Corrupt {
            table: "call_data",
            id,
            column: "data",
            reason,
        })?;
        let (cold, _, _) = codec::unpack(&packed).map_err(|reason| JournalError::Corrupt {
            table: "call_data",
            id,
            column: "data",
            reason,
        })?;
        for guid in &cold.receipts {
            keys.push(codec::receipt_key(guid));
            key_calls.push(id);
        }
        ids.push(id);
    }
    client
        .execute(
            "DELETE FROM receipts WHERE (key, call_id) IN
                (SELECT * FROM unnest($1::int8[], $2::int8[]))",
            &[&keys, &key_calls],
        )
        .await?;
    client
        .execute("DELETE FROM call_data WHERE id = ANY($1::int8[])", &[&ids])
        .await?;
    let removed = client
        .query(
            "DELETE FROM calls WHERE id = ANY($1::int8[]) RETURNING certificate",
            &[&ids],
        )
        .await?;
    let mut per_certificate: BTreeMap<i64, i64> = BTreeMap::new();
    for row in &removed {
        if let Some(certificate) = row.get::<_, Option<i64>>(0) {
            *per_certificate.entry(certificate).or_default() += 1;
        }
    }
    for (certificate, removed) in &per_certificate {
        client
            .execute(
                "UPDATE certificates SET calls = calls - $2,
                    first_us = (SELECT time_us FROM calls WHERE certificate = $1
                                ORDER BY id LIMIT 1)
                 WHERE id = $1",
                &[certificate, removed],
            )
            .await?;
    }
    // Refused handshakes go by the same limits, oldest first.
    let rejections = match (reason, cutoff) {
        (PruneReason::MaxAge, Some(cutoff)) => {
            client
                .execute(
                    "DELETE FROM rejections WHERE id IN
                        (SELECT id FROM rejections WHERE time_us < $1 ORDER BY id LIMIT $2)",
                    &[&cutoff, &limit],
                )
                .await?
        }
        _ if ids.is_empty() => {
            client
                .execute(
                    "DELETE FROM rejections WHERE id IN
                        (SELECT id FROM rejections ORDER BY id LIMIT $1)",
                    &[&limit],
                )
                .await?
        }
        _ => 0,
    };
    client.batch_execute("COMMIT").await?;
    Ok(Pruned {
        calls: removed.len() as u64,
        rejections,
        reason: Some(reason),
    })
}

async fn dictionary_bytes(
    client: &Object,
    caches: &mut Caches,
    id: i64,
) -> Result<Arc<Vec<u8>>, JournalError> {
    if id == 0 {
        return Ok(Arc::new(Vec::new()));
    }
    if let Some(bytes) = caches.dictionary_bytes.get(&id) {
        return Ok(Arc::clone(bytes));
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
    caches.dictionary_bytes.insert(id, Arc::clone(&bytes));
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_ones_own_are_ignored() {
        let notice = Notice {
            calls: (1..=1000).collect(),
            rejections: vec![7],
            confirmations: vec![("g".to_owned(), 3)],
            reset: false,
        };
        let payloads = notice.payloads("me");
        assert_eq!(payloads.len(), 3);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let events: Vec<LiveEvent> = payloads
            .iter()
            .flat_map(|p| events_of(p, "other").unwrap())
            .collect();
        assert_eq!(events.len(), 1002);
        assert_eq!(events[0], LiveEvent::Call(1));
        assert!(events.contains(&LiveEvent::Rejection(7)));
        assert!(events_of(&payloads[0], "me").is_none());
        assert!(Notice::default().payloads("me").is_empty());
    }
}

//! [`WsbStore`] over SQLite: tables `wsb_subscriptions`, `wsb_messages`, `wsb_deliveries` and
//! `wsb_attempts`, created idempotently (`CREATE TABLE IF NOT EXISTS`) in whatever file it is
//! opened on: a file of its own, or the journal's (the tables are prefixed and leave the
//! journal's `user_version` alone). Times are integer microseconds since the Unix epoch (UTC).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, Row};
use time::OffsetDateTime;

use super::message::{Authority, Message};
use super::store::{
    effective_limit, Attempt, AttemptQuery, Delivery, DeliveryId, DeliveryQuery, DeliveryState,
    MessageRecord, NewDelivery, Outcome, StoreError, TlsOutcome, WsbStore,
};
use super::subscription::Subscription;

/// How long a connection waits for another's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The tables; every statement may run again on an existing database.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS wsb_subscriptions (
    id            TEXT PRIMARY KEY,      -- GUID, stable across syncs
    system        TEXT NOT NULL,         -- systemIdentifier
    org_type      INTEGER NOT NULL,
    org_code      INTEGER NOT NULL,
    type_id       INTEGER NOT NULL,      -- entityType
    webhook_path  TEXT NOT NULL,
    start_us      INTEGER,
    end_us        INTEGER,
    position      INTEGER NOT NULL,      -- order in the system's last sync request
    updated_us    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wsb_subscriptions_system ON wsb_subscriptions (system);
CREATE TABLE IF NOT EXISTS wsb_messages (
    id            TEXT PRIMARY KEY,      -- beskedId
    created_us    INTEGER NOT NULL,
    type_id       INTEGER NOT NULL,
    org_type      INTEGER NOT NULL,      -- recipient
    org_code      INTEGER NOT NULL,
    message       TEXT NOT NULL          -- the Message as JSON
);
CREATE TABLE IF NOT EXISTS wsb_deliveries (
    id            INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused: sending order and cursor
    message_id    TEXT NOT NULL REFERENCES wsb_messages (id),
    subscription  TEXT NOT NULL,         -- no foreign key: a deleted subscription's deliveries stay
    system        TEXT NOT NULL,
    url           TEXT NOT NULL,
    order_key     TEXT NOT NULL,         -- the lane: system/orgType/orgCode/idtype:subject
    payload       TEXT NOT NULL,         -- the JSON pushed
    state         TEXT NOT NULL,         -- queued | retrying | delivered | failed | dropped
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_retry_us INTEGER,
    last_outcome  TEXT,
    last_detail   TEXT,
    replay_of     INTEGER REFERENCES wsb_deliveries (id),
    created_us    INTEGER NOT NULL,
    updated_us    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS wsb_deliveries_lane ON wsb_deliveries (order_key, state);
CREATE INDEX IF NOT EXISTS wsb_deliveries_subscription ON wsb_deliveries (subscription, state);
CREATE INDEX IF NOT EXISTS wsb_deliveries_message ON wsb_deliveries (message_id);
CREATE TABLE IF NOT EXISTS wsb_attempts (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery           INTEGER NOT NULL REFERENCES wsb_deliveries (id),
    message_id         TEXT NOT NULL,
    subscription       TEXT NOT NULL,
    url                TEXT NOT NULL,
    number             INTEGER NOT NULL,  -- 1, 2, … within the delivery
    started_us         INTEGER NOT NULL,
    latency_us         INTEGER NOT NULL,
    tls                TEXT NOT NULL,     -- TlsOutcome as JSON: version, server certificate identity
    status             INTEGER,
    outcome            TEXT NOT NULL,
    detail             TEXT NOT NULL,
    response_excerpt   TEXT,
    next_retry_us      INTEGER,
    state              TEXT NOT NULL      -- the delivery's state after this attempt
);
CREATE INDEX IF NOT EXISTS wsb_attempts_delivery ON wsb_attempts (delivery);
";

/// The columns of a delivery as [`delivery_of`] reads them; `held_behind` is the earliest
/// undelivered delivery of the same lane with a smaller id, for undelivered ones.
const DELIVERY_COLUMNS: &str = "d.id, d.message_id, m.type_id, d.subscription, d.system, d.url, \
    d.order_key, d.payload, d.state, d.attempts, d.next_retry_us, d.last_outcome, d.last_detail, \
    CASE WHEN d.state IN ('queued', 'retrying') THEN \
        (SELECT MIN(e.id) FROM wsb_deliveries e WHERE e.order_key = d.order_key AND e.id < d.id \
         AND e.state IN ('queued', 'retrying')) END, \
    d.replay_of, d.created_us, d.updated_us, json_extract(m.message, '$.origin')";

/// WSB's tables in one SQLite file.
#[derive(Debug)]
pub struct SqliteWsbStore {
    connection: Mutex<Connection>,
}

impl SqliteWsbStore {
    /// Opens (creating it and its folder if needed) the file and its WSB tables.
    pub fn open(path: &Path) -> Result<SqliteWsbStore, StoreError> {
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)
                .map_err(|e| StoreError::new(format!("cannot create {}", folder.display()), e))?;
        }
        let what = || format!("cannot open {}", path.display());
        let connection = Connection::open(path).map_err(|e| StoreError::new(what(), e))?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| StoreError::new(what(), e))?;
        let _mode: String = connection
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| StoreError::new(what(), e))?;
        connection
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| StoreError::new(what(), e))?;
        SqliteWsbStore::with_connection(connection)
    }

    /// A store in memory (tests, dry runs).
    pub fn in_memory() -> Result<SqliteWsbStore, StoreError> {
        let connection = Connection::open_in_memory()
            .map_err(|e| StoreError::new("cannot open an in-memory database", e))?;
        SqliteWsbStore::with_connection(connection)
    }

    fn with_connection(connection: Connection) -> Result<SqliteWsbStore, StoreError> {
        connection
            .pragma_update(None, "foreign_keys", true)
            .map_err(|e| StoreError::new("cannot enable foreign keys", e))?;
        connection
            .execute_batch(SCHEMA)
            .map_err(|e| StoreError::new("cannot create the WSB tables", e))?;
        Ok(SqliteWsbStore {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        what: &str,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back).
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(&mut connection).map_err(|e| StoreError::new(what.to_owned(), e))
    }
}

/// A query's `WHERE … ORDER BY … DESC LIMIT …` and its bound values.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    values: Vec<SqlValue>,
}

impl Filter {
    /// Binds a value; its placeholder (`?3`).
    fn value(&mut self, value: SqlValue) -> String {
        self.values.push(value);
        format!("?{}", self.values.len())
    }

    fn clause(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    fn equals(&mut self, column: &str, text: String) {
        let at = self.value(SqlValue::Text(text));
        self.clause(format!("{column} = {at}"));
    }

    /// Newest first by `order`, at most `limit` rows.
    fn finish(self, order: &str, limit: usize) -> (String, Vec<SqlValue>) {
        let filter = if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {} ", self.clauses.join(" AND "))
        };
        (
            format!(
                "{filter}ORDER BY {order} DESC LIMIT {}",
                effective_limit(limit)
            ),
            self.values,
        )
    }
}

fn uuid_text(id: uuid::Uuid) -> String {
    id.hyphenated().to_string()
}

fn to_micros(time: OffsetDateTime) -> i64 {
    time.unix_timestamp() * 1_000_000 + i64::from(time.microsecond())
}

fn from_micros(micros: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .map_err(|e| conversion(format!("time {micros}: {e}")))
}

fn optional_micros(micros: Option<i64>) -> rusqlite::Result<Option<OffsetDateTime>> {
    micros.map(from_micros).transpose()
}

fn conversion(message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        Box::<dyn std::error::Error + Send + Sync>::from(message),
    )
}

fn uuid_of(text: String) -> rusqlite::Result<uuid::Uuid> {
    uuid::Uuid::try_parse(&text).map_err(|e| conversion(format!("GUID {text:?}: {e}")))
}

fn json_text<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn subscription_of(row: &Row<'_>) -> rusqlite::Result<Subscription> {
    Ok(Subscription {
        id: uuid_of(row.get(0)?)?,
        system: uuid_of(row.get(1)?)?,
        recipient: Authority {
            org_type: row.get(2)?,
            org_code: row.get(3)?,
        },
        type_id: row.get(4)?,
        webhook_path: row.get(5)?,
        start: optional_micros(row.get(6)?)?,
        end: optional_micros(row.get(7)?)?,
    })
}

fn delivery_of(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let state: String = row.get(8)?;
    let outcome: Option<String> = row.get(11)?;
    Ok(Delivery {
        id: DeliveryId(row.get(0)?),
        message_id: uuid_of(row.get(1)?)?,
        type_id: row.get(2)?,
        subscription: uuid_of(row.get(3)?)?,
        system: uuid_of(row.get(4)?)?,
        url: row.get(5)?,
        order_key: row.get(6)?,
        payload: row.get(7)?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| conversion(format!("delivery state {state:?}")))?,
        attempts: row.get(9)?,
        next_retry: optional_micros(row.get(10)?)?,
        last_outcome: outcome
            .map(|o| Outcome::parse(&o).ok_or_else(|| conversion(format!("outcome {o:?}"))))
            .transpose()?,
        last_detail: row.get(12)?,
        held_behind: row.get::<_, Option<i64>>(13)?.map(DeliveryId),
        replay_of: row.get::<_, Option<i64>>(14)?.map(DeliveryId),
        created_at: from_micros(row.get(15)?)?,
        updated_at: from_micros(row.get(16)?)?,
        origin: row.get(17)?,
    })
}

fn attempt_of(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    let tls: String = row.get(7)?;
    let outcome: String = row.get(9)?;
    let state: String = row.get(13)?;
    let latency: i64 = row.get(6)?;
    Ok(Attempt {
        delivery: DeliveryId(row.get(0)?),
        message_id: uuid_of(row.get(1)?)?,
        subscription: uuid_of(row.get(2)?)?,
        url: row.get(3)?,
        number: row.get(4)?,
        started_at: from_micros(row.get(5)?)?,
        latency: Duration::from_micros(u64::try_from(latency).unwrap_or(0)),
        tls: serde_json::from_str::<TlsOutcome>(&tls)
            .map_err(|e| conversion(format!("TLS outcome: {e}")))?,
        status: row.get(8)?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| conversion(format!("outcome {outcome:?}")))?,
        detail: row.get(10)?,
        response_excerpt: row.get(11)?,
        next_retry: optional_micros(row.get(12)?)?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| conversion(format!("delivery state {state:?}")))?,
    })
}

fn select_deliveries(
    connection: &Connection,
    filter: &str,
    values: Vec<SqlValue>,
) -> rusqlite::Result<Vec<Delivery>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM wsb_deliveries d JOIN wsb_messages m ON m.id = d.message_id {filter}"
    );
    let mut statement = connection.prepare(&sql)?;
    let rows = statement.query_map(params_from_iter(values), delivery_of)?;
    rows.collect()
}

impl WsbStore for SqliteWsbStore {
    fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.with("cannot read the subscriptions", |c| {
            let mut statement = c.prepare(
                "SELECT id, system, org_type, org_code, type_id, webhook_path, start_us, end_us \
                 FROM wsb_subscriptions ORDER BY system, position",
            )?;
            let rows = statement.query_map([], subscription_of)?;
            rows.collect()
        })
    }

    fn replace_subscriptions(
        &self,
        system: uuid::Uuid,
        list: &[Subscription],
        deleted: &[uuid::Uuid],
        now: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        self.with("cannot store the subscriptions", |c| {
            let transaction = c.transaction()?;
            let system_text = uuid_text(system);
            transaction.execute(
                "DELETE FROM wsb_subscriptions WHERE system = ?1",
                params![system_text],
            )?;
            for (position, s) in list.iter().enumerate() {
                transaction.execute(
                    "INSERT INTO wsb_subscriptions (id, system, org_type, org_code, type_id, \
                     webhook_path, start_us, end_us, position, updated_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        uuid_text(s.id),
                        system_text,
                        s.recipient.org_type,
                        s.recipient.org_code,
                        s.type_id,
                        s.webhook_path,
                        s.start.map(to_micros),
                        s.end.map(to_micros),
                        i64::try_from(position).unwrap_or(i64::MAX),
                        to_micros(now),
                    ],
                )?;
            }
            let mut dropped = 0;
            for id in deleted {
                dropped += transaction.execute(
                    "UPDATE wsb_deliveries SET state = 'dropped', next_retry_us = NULL, updated_us = ?2 \
                     WHERE subscription = ?1 AND state IN ('queued', 'retrying')",
                    params![uuid_text(*id), to_micros(now)],
                )?;
            }
            transaction.commit()?;
            Ok(dropped)
        })
    }

    fn insert_message(
        &self,
        record: &MessageRecord,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<DeliveryId>, StoreError> {
        self.with("cannot store the message", |c| {
            let transaction = c.transaction()?;
            let message_id = uuid_text(record.id);
            let Message {
                type_id, recipient, ..
            } = &record.message;
            transaction.execute(
                "INSERT INTO wsb_messages (id, created_us, type_id, org_type, org_code, message) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    message_id,
                    to_micros(record.created_at),
                    type_id,
                    recipient.org_type,
                    recipient.org_code,
                    json_text(&record.message)?,
                ],
            )?;
            let mut ids = Vec::with_capacity(deliveries.len());
            for d in deliveries {
                transaction.execute(
                    "INSERT INTO wsb_deliveries (message_id, subscription, system, url, order_key, \
                     payload, state, created_us, updated_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7)",
                    params![
                        message_id,
                        uuid_text(d.subscription),
                        uuid_text(d.system),
                        d.url,
                        d.order_key,
                        d.payload,
                        to_micros(record.created_at),
                    ],
                )?;
                ids.push(DeliveryId(transaction.last_insert_rowid()));
            }
            transaction.commit()?;
            Ok(ids)
        })
    }

    fn record_attempt(&self, a: &Attempt) -> Result<(), StoreError> {
        self.with("cannot store a delivery attempt", |c| {
            let transaction = c.transaction()?;
            let now = to_micros(a.started_at + a.latency);
            transaction.execute(
                "INSERT INTO wsb_attempts (delivery, message_id, subscription, url, number, \
                 started_us, latency_us, tls, status, outcome, detail, response_excerpt, \
                 next_retry_us, state) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    a.delivery.0,
                    uuid_text(a.message_id),
                    uuid_text(a.subscription),
                    a.url,
                    a.number,
                    to_micros(a.started_at),
                    i64::try_from(a.latency.as_micros()).unwrap_or(i64::MAX),
                    json_text(&a.tls)?,
                    a.status,
                    a.outcome.as_str(),
                    a.detail,
                    a.response_excerpt,
                    a.next_retry.map(to_micros),
                    a.state.as_str(),
                ],
            )?;
            transaction.execute(
                "UPDATE wsb_deliveries SET state = ?2, attempts = ?3, next_retry_us = ?4, \
                 last_outcome = ?5, last_detail = ?6, updated_us = ?7 \
                 WHERE id = ?1 AND state != 'dropped'",
                params![
                    a.delivery.0,
                    a.state.as_str(),
                    a.number,
                    a.next_retry.map(to_micros),
                    a.outcome.as_str(),
                    a.detail,
                    now,
                ],
            )?;
            transaction.commit()
        })
    }

    fn insert_replay(
        &self,
        original: DeliveryId,
        now: OffsetDateTime,
    ) -> Result<Option<Delivery>, StoreError> {
        self.with("cannot store the replay", |c| {
            let transaction = c.transaction()?;
            let inserted = transaction.execute(
                "INSERT INTO wsb_deliveries (message_id, subscription, system, url, order_key, \
                 payload, state, replay_of, created_us, updated_us) \
                 SELECT message_id, subscription, system, url, order_key, payload, 'queued', id, ?2, ?2 \
                 FROM wsb_deliveries WHERE id = ?1",
                params![original.0, to_micros(now)],
            )?;
            if inserted == 0 {
                return Ok(None);
            }
            let id = transaction.last_insert_rowid();
            let delivery = select_deliveries(
                &transaction,
                "WHERE d.id = ?1",
                vec![SqlValue::Integer(id)],
            )?
            .pop();
            transaction.commit()?;
            Ok(delivery)
        })
    }

    fn pending(&self) -> Result<Vec<Delivery>, StoreError> {
        self.with("cannot read the pending deliveries", |c| {
            select_deliveries(
                c,
                "WHERE d.state IN ('queued', 'retrying') ORDER BY d.id",
                Vec::new(),
            )
        })
    }

    fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.with("cannot read a delivery", |c| {
            Ok(select_deliveries(c, "WHERE d.id = ?1", vec![SqlValue::Integer(id.0)])?.pop())
        })
    }

    fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let mut filter = Filter::default();
        if let Some(system) = query.system {
            filter.equals("d.system", uuid_text(system));
        }
        if let Some(subscription) = query.subscription {
            filter.equals("d.subscription", uuid_text(subscription));
        }
        if let Some(message) = query.message {
            filter.equals("d.message_id", uuid_text(message));
        }
        if !query.states.is_empty() {
            let names: Vec<String> = query
                .states
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            filter.clause(format!("d.state IN ({})", names.join(", ")));
        }
        if let Some(before) = query.before {
            let at = filter.value(SqlValue::Integer(before.0));
            filter.clause(format!("d.id < {at}"));
        }
        let (sql, values) = filter.finish("d.id", query.limit);
        self.with("cannot read the deliveries", |c| {
            select_deliveries(c, &sql, values)
        })
    }

    fn attempts(&self, query: &AttemptQuery) -> Result<Vec<Attempt>, StoreError> {
        let mut filter = Filter::default();
        if let Some(delivery) = query.delivery {
            let at = filter.value(SqlValue::Integer(delivery.0));
            filter.clause(format!("a.delivery = {at}"));
        }
        if let Some(message) = query.message {
            filter.equals("a.message_id", uuid_text(message));
        }
        if let Some(system) = query.system {
            let at = filter.value(SqlValue::Text(uuid_text(system)));
            filter.clause(format!(
                "a.delivery IN (SELECT id FROM wsb_deliveries WHERE system = {at})"
            ));
        }
        let (tail, values) = filter.finish("a.id", query.limit);
        let sql = format!(
            "SELECT a.delivery, a.message_id, a.subscription, a.url, a.number, a.started_us, \
             a.latency_us, a.tls, a.status, a.outcome, a.detail, a.response_excerpt, \
             a.next_retry_us, a.state FROM wsb_attempts a {tail}"
        );
        self.with("cannot read the delivery attempts", |c| {
            let mut statement = c.prepare(&sql)?;
            let rows = statement.query_map(params_from_iter(values), attempt_of)?;
            rows.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsb::message::{ChangeType, Cpr, Subject};
    use crate::wsb::store::CertificateSummary;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-06-01 12:00 UTC);

    fn subscription(type_id: u32) -> Subscription {
        Subscription {
            id: uuid::Uuid::new_v4(),
            system: uuid::Uuid::nil(),
            recipient: Authority {
                org_type: 8,
                org_code: 101,
            },
            type_id,
            webhook_path: "/webhook".into(),
            start: Some(datetime!(2025-01-01 00:00 UTC)),
            end: None,
        }
    }

    fn message(
        store: &SqliteWsbStore,
        subscription: &Subscription,
        lanes: &[&str],
    ) -> Vec<DeliveryId> {
        let record = MessageRecord {
            id: uuid::Uuid::new_v4(),
            created_at: NOW,
            message: Message::new(
                subscription.type_id,
                subscription.recipient,
                Subject::Cpr(Cpr::try_from("0101901234".to_owned()).expect("cpr")),
                ChangeType::Create,
            ),
        };
        let deliveries: Vec<NewDelivery> = lanes
            .iter()
            .map(|lane| NewDelivery {
                subscription: subscription.id,
                system: subscription.system,
                url: "https://127.0.0.1:1/webhook".into(),
                order_key: (*lane).to_owned(),
                payload: "{}".into(),
            })
            .collect();
        store.insert_message(&record, &deliveries).expect("insert")
    }

    fn attempt(store: &SqliteWsbStore, id: DeliveryId, state: DeliveryState) -> Attempt {
        let delivery = store.delivery(id).expect("read").expect("exists");
        Attempt {
            delivery: id,
            message_id: delivery.message_id,
            subscription: delivery.subscription,
            url: delivery.url,
            number: delivery.attempts + 1,
            started_at: NOW,
            latency: Duration::from_millis(12),
            tls: TlsOutcome {
                version: Some("TLSv1.3".into()),
                server_certificate: Some(CertificateSummary {
                    subject: "CN=webhook".into(),
                    issuer: "CN=ca".into(),
                    fingerprint: "ab".into(),
                    not_after: NOW,
                }),
            },
            status: Some(if state == DeliveryState::Delivered {
                200
            } else {
                500
            }),
            outcome: if state == DeliveryState::Delivered {
                Outcome::Delivered
            } else {
                Outcome::ServerError
            },
            detail: "d".into(),
            response_excerpt: Some("ok".into()),
            next_retry: (state == DeliveryState::Retrying).then_some(NOW),
            state,
        }
    }

    #[test]
    fn deliveries_know_what_they_wait_behind_and_attempts_round_trip() {
        let store = SqliteWsbStore::in_memory().expect("store");
        let cv = subscription(30000);
        store
            .replace_subscriptions(cv.system, std::slice::from_ref(&cv), &[], NOW)
            .expect("subscribe");
        let first = message(&store, &cv, &["lane-a", "lane-b"]);
        let second = message(&store, &cv, &["lane-a"]);
        let held = store.delivery(second[0]).expect("read").expect("exists");
        assert_eq!(held.held_behind, Some(first[0]));
        assert_eq!(held.type_id, 30000);
        assert_eq!(
            store
                .delivery(first[1])
                .expect("read")
                .expect("exists")
                .held_behind,
            None
        );

        let failed = attempt(&store, first[0], DeliveryState::Retrying);
        store.record_attempt(&failed).expect("attempt 1");
        let delivered = attempt(&store, first[0], DeliveryState::Delivered);
        assert_eq!(delivered.number, 2);
        store.record_attempt(&delivered).expect("attempt 2");
        assert_eq!(
            store
                .delivery(second[0])
                .expect("read")
                .expect("exists")
                .held_behind,
            None
        );

        let attempts = store
            .attempts(&AttemptQuery {
                delivery: Some(first[0]),
                ..AttemptQuery::default()
            })
            .expect("attempts");
        assert_eq!(
            attempts,
            vec![delivered, failed],
            "newest first, every field kept"
        );
        let pending: Vec<DeliveryId> = store
            .pending()
            .expect("pending")
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(pending, vec![first[1], second[0]]);

        let replay = store
            .insert_replay(first[0], NOW)
            .expect("replay")
            .expect("exists");
        assert_eq!(
            (replay.state, replay.attempts, replay.replay_of),
            (DeliveryState::Queued, 0, Some(first[0]))
        );
        assert_eq!(
            store.insert_replay(DeliveryId(999), NOW).expect("replay"),
            None
        );
        let listed = store
            .deliveries(&DeliveryQuery {
                states: vec![DeliveryState::Delivered],
                ..DeliveryQuery::default()
            })
            .expect("list");
        assert_eq!(
            listed.iter().map(|d| d.id).collect::<Vec<_>>(),
            vec![first[0]]
        );
    }

    #[test]
    fn deleting_a_subscription_drops_its_queue_and_a_failure_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wsb.sqlite");
        let store = SqliteWsbStore::open(&path).expect("store");
        let (cv, frist) = (subscription(30000), subscription(90001));
        store
            .replace_subscriptions(cv.system, &[cv.clone(), frist.clone()], &[], NOW)
            .expect("subscribe");
        let queued = message(&store, &cv, &["lane-a", "lane-b"]);
        let kept = message(&store, &frist, &["lane-c"]);

        // A failure half-way through the transaction (after the old list is deleted): nothing
        // changes.
        store
            .with("trigger", |c| {
                c.execute_batch(
                    "CREATE TRIGGER refuse BEFORE INSERT ON wsb_subscriptions \
                     BEGIN SELECT RAISE(ABORT, 'disk full (simulated)'); END;",
                )
            })
            .expect("trigger");
        let error = store
            .replace_subscriptions(cv.system, std::slice::from_ref(&frist), &[cv.id], NOW)
            .expect_err("refused");
        assert!(format!("{:?}", error).contains("disk full"), "{error:?}");
        assert_eq!(store.subscriptions().expect("list").len(), 2);
        assert_eq!(store.pending().expect("pending").len(), 3);
        store
            .with("trigger", |c| c.execute_batch("DROP TRIGGER refuse;"))
            .expect("drop trigger");

        let dropped = store
            .replace_subscriptions(cv.system, std::slice::from_ref(&frist), &[cv.id], NOW)
            .expect("delete cv");
        assert_eq!(dropped, 2);
        assert_eq!(store.subscriptions().expect("list"), vec![frist]);
        let pending: Vec<DeliveryId> = store
            .pending()
            .expect("pending")
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(pending, kept);
        // An attempt that was in flight is journaled, but the delivery stays dropped.
        store
            .record_attempt(&attempt(&store, queued[0], DeliveryState::Delivered))
            .expect("late attempt");
        assert_eq!(
            store
                .delivery(queued[0])
                .expect("read")
                .expect("exists")
                .state,
            DeliveryState::Dropped
        );

        // Reopening the file keeps everything (the schema is created idempotently).
        drop(store);
        let reopened = SqliteWsbStore::open(&path).expect("reopen");
        assert_eq!(reopened.pending().expect("pending").len(), 1);
    }
}

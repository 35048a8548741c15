//! The journal as a whole: a version-5 journal of the previous release migrating in place,
//! retention pruning, a full disk answered with fault 1011 and recovered from, and onboarding
//! counting calls by certificate identity.

use std::path::Path;

use dfdg_mock::journal::schema::LEGACY_MIGRATIONS;
use dfdg_mock::journal::{
    CallQuery, CallRecord, ConfirmationRecord, IdentityFields, Journal, JournalReader, Outcome,
    SqliteStore, SCHEMA_VERSION,
};
use rusqlite::{params, Connection};
use time::macros::datetime;

pub fn identity(n: u32) -> IdentityFields {
    IdentityFields {
        caller_id: format!("CVR:9{n:07}-UUID:3f2b6c1e-8d4a-4b7e-9c21-{n:012}"),
        kind: "OCES3 organisation/system".to_owned(),
        cvr: Some(format!("9{n:07}")),
        common_name: Some(format!("Leverandør {n}")),
        subject: format!("CN=Leverandør {n}"),
        issuer: "CN=dfdg-mock Test CA".to_owned(),
        serial: format!("{n:02x}"),
        fingerprint: format!("{n:064x}"),
        not_before: "2026-01-01T00:00:00Z".to_owned(),
        not_after: "2027-01-01T00:00:00Z".to_owned(),
    }
}

/// A call as version 5 journaled it: every field set, so that any one lost shows.
pub fn v5_call(n: u32) -> CallRecord {
    let faulted = n % 3 == 2;
    CallRecord {
        time: datetime!(2026-05-01 10:00:00.123456 UTC) + time::Duration::seconds(i64::from(n)),
        peer: format!("127.0.0.1:{}", 40_000 + n),
        tls_version: "TLSv1.3".to_owned(),
        cipher_suite: "TLS13_AES_256_GCM_SHA384".to_owned(),
        alpn: (n % 2 == 0).then(|| "h2".to_owned()),
        identity: (n != 4).then(|| identity(n % 2).into()),
        method: "POST".to_owned(),
        path: "/JobcenterMessageService/2/JobcenterMessageService.svc?x=1".to_owned(),
        soap_version: Some("1.1".to_owned()),
        soap_action: Some(
            "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment".to_owned(),
        ),
        operation: Some("SaveAvailabilityAssessment".to_owned()),
        operation_namespace: Some("urn:dfdg-mock:JobcenterMessageService:2".to_owned()),
        star_headers: Some(serde_json::json!({
            "request_user": { "user_identifier": identity(n % 2).caller_id }
        })),
        request_body: format!("<s:Envelope>request {n} \u{e6}</s:Envelope>").into(),
        request_truncated: n == 3,
        response_body: format!("<s:Envelope>response {n}</s:Envelope>").into(),
        response_truncated: false,
        http_status: if faulted { 500 } else { 200 },
        receipts: if faulted {
            Vec::new()
        } else {
            vec![format!("0000000{n}-aaaa-4bbb-8ccc-000000000000")]
        },
        outcome: if faulted {
            Outcome::Fault {
                code: Some(1014),
                fault_code: "Client".to_owned(),
            }
        } else {
            Outcome::Receipt
        },
        detail: faulted.then(|| "message not valid".to_owned()),
        latency_micros: 1000 + u64::from(n),
        scenario_file: Some("onboarding.toml".to_owned()),
        scenario_rule: Some("save-availability-assessment".to_owned()),
        service: Some("JobcenterMessageService".to_owned()),
        service_operation: Some("SaveAvailabilityAssessment".to_owned()),
        findings: Vec::new(),
        supplier: (n % 2 == 1).then(|| "Leverandør 1".to_owned()),
        authorization: Some("allowed".to_owned()),
        identity_findings: Vec::new(),
    }
}

/// Inserts `call` as version 5 did (its `insert_call`).
fn insert_v5(connection: &Connection, call: &CallRecord) -> i64 {
    let json = |value: &dyn erased::Json| value.text();
    let (fault_code, soap_fault_code) = match &call.outcome {
        Outcome::Fault { code, fault_code } => (*code, Some(fault_code.clone())),
        _ => (None, None),
    };
    let kind = match call.outcome {
        Outcome::Receipt => "receipt",
        Outcome::Fault { .. } => "fault",
        Outcome::Http => "http",
    };
    connection
        .execute(
            "INSERT INTO calls (time_us, peer, tls_version, cipher_suite, alpn, caller_id, cvr,
                identity, method, path, soap_version, soap_action, operation, operation_namespace,
                star_headers, request_body, request_truncated, response_body, response_truncated,
                http_status, receipts, outcome, fault_code, soap_fault_code, detail, latency_us,
                scenario_file, scenario_rule, service, service_operation, findings, supplier,
                authorization, identity_findings)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, NULL, ?31, ?32, NULL)",
            params![
                call.time.unix_timestamp() * 1_000_000 + i64::from(call.time.microsecond()),
                call.peer,
                call.tls_version,
                call.cipher_suite,
                call.alpn,
                call.identity.as_ref().map(|i| i.caller_id.clone()),
                call.identity.as_ref().and_then(|i| i.cvr.clone()),
                call.identity.as_ref().map(|i| json(i)),
                call.method,
                call.path,
                call.soap_version,
                call.soap_action,
                call.operation,
                call.operation_namespace,
                call.star_headers.as_ref().map(|h| json(h)),
                &call.request_body[..],
                call.request_truncated,
                &call.response_body[..],
                call.response_truncated,
                call.http_status,
                json(&call.receipts),
                kind,
                fault_code,
                soap_fault_code,
                call.detail,
                call.latency_micros as i64,
                call.scenario_file,
                call.scenario_rule,
                call.service,
                call.service_operation,
                call.supplier,
                call.authorization,
            ],
        )
        .unwrap();
    let id = connection.last_insert_rowid();
    for guid in &call.receipts {
        connection
            .execute(
                "INSERT OR REPLACE INTO receipts (guid, call_id) VALUES (?1, ?2)",
                params![guid, id],
            )
            .unwrap();
    }
    id
}

mod erased {
    pub trait Json {
        fn text(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn text(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}

/// A version-5 journal with `count` calls, one confirmed receipt and one refused handshake;
/// the newest call was deleted, so the id sequence is ahead of the largest id.
fn v5_journal(path: &Path, count: u32) -> Vec<(i64, CallRecord)> {
    let connection = Connection::open(path).unwrap();
    // The released steps to version 5, exactly as the previous release ran them.
    for step in LEGACY_MIGRATIONS {
        connection.execute_batch(step).unwrap();
    }
    connection.pragma_update(None, "user_version", 5).unwrap();
    let mut calls = Vec::new();
    for n in 0..count {
        let call = v5_call(n);
        calls.push((insert_v5(&connection, &call), call));
    }
    let doomed = insert_v5(&connection, &v5_call(count));
    connection
        .execute("DELETE FROM receipts WHERE call_id = ?1", [doomed])
        .unwrap();
    connection
        .execute("DELETE FROM calls WHERE id = ?1", [doomed])
        .unwrap();
    connection
        .execute(
            "INSERT INTO confirmations (guid, call_id, time_us, note, supplier) VALUES (?1, ?2, 1, 'ok', 'Leverandør 1')",
            params![calls[1].1.receipts[0], calls[1].0],
        )
        .unwrap();
    connection
        .execute(
            "INSERT INTO rejections (time_us, peer, reason, detail, mode) VALUES (1, '10.0.0.1:1', 'unknown_ca', 'UnknownIssuer', 'require')",
            [],
        )
        .unwrap();
    calls
}

#[tokio::test]
async fn a_new_journal_is_made_of_small_pages_that_each_commit_writes_whole() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("new.sqlite");
    let journal = Journal::open_sqlite(&path).unwrap();
    let id = journal.record_call(v7_call(1)).await.unwrap();
    journal.close().await.unwrap();
    assert_eq!(page_size(&path), 1024);
    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert!(reader.call(id).unwrap().is_some());
}

fn page_size(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_journal_of_the_previous_release_migrates_in_place_and_every_call_stays_readable() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("v5.sqlite");
    let before = v5_journal(&path, 50);

    let journal = Journal::open_sqlite(&path).unwrap();
    let next = journal.record_call(v5_call(99)).await.unwrap();
    journal.close().await.unwrap();

    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        page_size(&path),
        4096,
        "an existing journal keeps its page size"
    );
    for (id, record) in &before {
        let stored = reader
            .call(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("call {id} lost"));
        assert_eq!(&stored.record, record, "call {id} changed");
    }
    assert_eq!(reader.count_calls(&CallQuery::default()).unwrap(), 51);
    assert!(
        next > before.last().unwrap().0 + 1,
        "the deleted call's id {next} was reused"
    );
    // Receipts, confirmations, refusals and the per-caller summary came along.
    let (confirmed_id, confirmed) = &before[1];
    assert_eq!(
        reader
            .call_by_receipt(&confirmed.receipts[0])
            .unwrap()
            .unwrap()
            .id,
        *confirmed_id
    );
    let confirmation = reader
        .confirmation(&confirmed.receipts[0])
        .unwrap()
        .unwrap();
    assert_eq!(confirmation.call_id, *confirmed_id);
    assert_eq!(
        confirmation.caller_id.as_deref(),
        Some(identity(1).caller_id.as_str())
    );
    assert_eq!(reader.rejections(&Default::default()).unwrap().len(), 1);
    let callers = reader.callers(10).unwrap();
    let caller = callers
        .iter()
        .find(|c| c.caller_id == identity(1).caller_id)
        .unwrap();
    let of_caller = before
        .iter()
        .filter(|(_, c)| c.identity.as_deref() == Some(&identity(1)))
        .count();
    assert_eq!(
        caller.calls as usize,
        of_caller + 1,
        "the call after the migration counts too"
    );
    // Queries answer from the new columns.
    let faults = reader
        .count_calls(&CallQuery {
            outcome: Some("fault 1014".to_owned()),
            ..CallQuery::default()
        })
        .unwrap();
    assert_eq!(
        faults as usize,
        before.iter().filter(|(_, c)| c.http_status == 500).count()
    );
    let by_service = reader
        .count_calls(&CallQuery {
            service: Some("JobcenterMessageService".to_owned()),
            ..CallQuery::default()
        })
        .unwrap();
    assert_eq!(by_service, 51);
}

/// Rows of `table` in the journal at `path`, counted with SQL of the test's own.
fn rows(path: &Path, table: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

/// A version-7 UUID as a scenario may script it: fixed, and so journaled by version 6 too.
const SCRIPTED_V7: &str = "0190a6b3-4c5d-7e6f-8a9b-0c1d2e3f4a5b";

#[tokio::test]
async fn a_version_6_journal_migrates_in_place_and_every_receipt_is_still_found() {
    use dfdg_mock::journal::{Entry, JournalStore};
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("v6.sqlite");
    // Version 6 as the previous release made it: the released steps to 5, then its move to 6,
    // then calls written by its writer (every receipt under its hash, version-7 GUIDs too).
    let mut before = v5_journal(&path, 10);
    {
        let mut store = SqliteStore::open_at_version(&path, 6).unwrap();
        assert_eq!(store.schema_version().unwrap(), 6);
        let mut entries = Vec::new();
        for n in 20..26 {
            let mut call = v5_call(n);
            call.receipts = match n {
                20 => vec![SCRIPTED_V7.to_owned()],
                21 => vec![uuid::Uuid::now_v7().to_string()],
                _ => vec![uuid::Uuid::new_v4().to_string()],
            };
            entries.push(Entry::Call(call));
        }
        let ids = store.append(&entries).unwrap();
        for (id, entry) in ids.into_iter().zip(entries) {
            let Entry::Call(call) = entry else {
                unreachable!()
            };
            before.push((id, call));
        }
    }
    let no_table: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'receipts_by_time'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(no_table, 0, "version 6 has no time-ordered receipts");
    let hashed = rows(&path, "receipts");

    let journal = Journal::open_sqlite(&path).unwrap();
    let fresh = v7_call(40);
    let fresh_id = journal.record_call(fresh.clone()).await.unwrap();
    // The pre-7 version-7 GUID of call 21 is confirmed through its hash.
    let (old_v7_id, old_v7) = before
        .iter()
        .find(|(_, c)| c.peer.ends_with(":40021"))
        .unwrap();
    let confirmed = journal
        .confirm_receipt(ConfirmationRecord {
            guid: old_v7.receipts[0].clone(),
            time: time::OffsetDateTime::now_utc(),
            note: None,
            supplier: None,
        })
        .await
        .unwrap();
    assert_eq!(confirmed, *old_v7_id);
    // A scripted GUID sent again after the move leads to the newest call that sent it.
    let mut again = v5_call(41);
    again.receipts = vec![SCRIPTED_V7.to_owned()];
    let again_id = journal.record_call(again).await.unwrap();
    journal.close().await.unwrap();

    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.schema_version().unwrap(), SCHEMA_VERSION);
    for (id, record) in &before {
        let stored = reader
            .call(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("call {id} lost"));
        assert_eq!(&stored.record, record, "call {id} changed");
        if let Some(guid) = record.receipts.first().filter(|g| *g != SCRIPTED_V7) {
            let found = reader.call_by_receipt(guid).unwrap();
            assert_eq!(
                found.map(|c| c.id),
                Some(*id),
                "receipt {guid} of call {id}"
            );
        }
    }
    assert_eq!(
        reader
            .call_by_receipt(&fresh.receipts[0])
            .unwrap()
            .unwrap()
            .id,
        fresh_id
    );
    assert_eq!(
        reader.call_by_receipt(SCRIPTED_V7).unwrap().unwrap().id,
        again_id
    );
    assert!(reader
        .call_by_receipt(&uuid::Uuid::now_v7().to_string())
        .unwrap()
        .is_none());
    // The move rewrote nothing; the new receipts went to the time-ordered index.
    assert_eq!(rows(&path, "receipts"), hashed);
    assert_eq!(rows(&path, "receipts_by_time"), 2);
    assert_eq!(reader.count_calls(&CallQuery::default()).unwrap(), 18);
    drop(reader);

    // Pruned to a few calls: the migrated calls' receipts leave `receipts` (their version-7
    // GUIDs too), the new calls' the time-ordered index; the kept calls' stay in each.
    let retention = dfdg_mock::journal::Retention {
        max_calls: Some(3),
        ..dfdg_mock::journal::Retention::UNBOUNDED
    };
    let journal = Journal::open_sqlite_with(&path, retention).unwrap();
    eventually("a pruning step is done", || {
        journal
            .stats()
            .pruned
            .iter()
            .any(|(_, _, calls)| *calls > 0)
    })
    .await;
    journal.close().await.unwrap();
    let remaining = SqliteStore::open_read_only(&path)
        .unwrap()
        .calls(&CallQuery {
            limit: 100,
            ..CallQuery::default()
        })
        .unwrap();
    let migrated = |id: i64| before.iter().any(|(old, _)| *old == id);
    let sent = |old: bool| {
        remaining
            .iter()
            .filter(|c| migrated(c.id) == old)
            .map(|c| c.record.receipts.len() as i64)
            .sum::<i64>()
    };
    assert!(remaining.len() < 18, "nothing pruned: {}", remaining.len());
    // The confirmed call is kept from among older and newer calls that went.
    assert!(
        remaining.iter().any(|c| c.id == *old_v7_id),
        "evidence pruned"
    );
    assert!(!remaining.iter().any(|c| c.id == *old_v7_id - 1));
    assert!(sent(true) < hashed, "no migrated receipt pruned");
    assert_eq!(rows(&path, "receipts"), sent(true));
    assert_eq!(rows(&path, "receipts_by_time"), sent(false));
}

/// Each certificate's counters as the test's own SQL reads them from `table`, by caller id.
fn counters(path: &Path, table: &str) -> Vec<(String, i64, Option<i64>, Option<i64>)> {
    let connection = Connection::open(path).unwrap();
    let mut statement = connection
        .prepare(&format!(
            "SELECT k.caller_id, n.calls, n.latest_receipt, n.latest_passed
             FROM certificates k JOIN {table} n ON n.id = k.id ORDER BY k.caller_id"
        ))
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn has_table(path: &Path, name: &str) -> bool {
    let count: i64 = Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = ?1",
            [name],
            |row| row.get(0),
        )
        .unwrap();
    count > 0
}

#[tokio::test]
async fn a_version_7_journal_migrates_in_place_and_counters_and_suppliers_still_hold() {
    use dfdg_mock::journal::{Entry, JournalStore};
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("v7.sqlite");
    // Version 7 as the previous release wrote it: counters in `certificates`, every call in
    // the supplier index; one supplier call came without a certificate.
    let mut before = Vec::new();
    {
        let mut store = SqliteStore::open_at_version(&path, 7).unwrap();
        assert_eq!(store.schema_version().unwrap(), 7);
        let mut entries: Vec<Entry> = (0..12).map(|n| Entry::Call(v7_call(n))).collect();
        let Entry::Call(anonymous) = &mut entries[5] else {
            unreachable!()
        };
        anonymous.identity = None;
        let Entry::Call(other) = &mut entries[6] else {
            unreachable!()
        };
        other.identity = Some(identity(2).into());
        other.supplier = Some("Leverandør 2".to_owned());
        let ids = store.append(&entries).unwrap();
        for (id, entry) in ids.into_iter().zip(entries) {
            let Entry::Call(call) = entry else {
                unreachable!()
            };
            before.push((id, call));
        }
    }
    assert!(has_table(&path, "calls_supplier"));
    assert!(!has_table(&path, "certificate_calls"));
    let old_counters = counters(&path, "certificates");
    assert_eq!(old_counters.len(), 3);

    let journal = Journal::open_sqlite(&path).unwrap();
    let fresh = v7_call(41);
    let fresh_id = journal.record_call(fresh.clone()).await.unwrap();
    journal.close().await.unwrap();

    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(
        !has_table(&path, "calls_supplier"),
        "the supplier index is gone"
    );
    for (id, record) in &before {
        let stored = reader
            .call(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("call {id} lost"));
        assert_eq!(&stored.record, record, "call {id} changed");
    }
    // The counters moved unchanged; the call after the move counts for its certificate.
    let mut expected = old_counters.clone();
    let caller = &identity(1).caller_id;
    for counter in &mut expected {
        if &counter.0 == caller {
            counter.1 += 1;
            counter.2 = Some(fresh_id);
            counter.3 = Some(fresh_id);
        }
    }
    assert_eq!(counters(&path, "certificate_calls"), expected);
    let callers = reader.callers(10).unwrap();
    let summary = callers.iter().find(|c| &c.caller_id == caller).unwrap();
    assert_eq!(
        summary.calls,
        expected.iter().find(|c| &c.0 == caller).unwrap().1
    );
    assert_eq!(summary.latest_receipt, Some(fresh_id));
    assert_eq!(reader.certificates().unwrap().len(), 3);
    // A supplier's calls, with and without a certificate, before and after the move, in
    // either case of its name.
    let of_supplier = |name: &str| {
        let mut ids: Vec<i64> = before
            .iter()
            .chain([(fresh_id, fresh.clone())].iter())
            .filter(|(_, c)| c.supplier.as_deref() == Some(name))
            .map(|(id, _)| *id)
            .collect();
        ids.reverse();
        ids
    };
    for (name, asked) in [
        ("Leverandør 1", "leverandør 1"),
        ("Leverandør 2", "Leverandør 2"),
    ] {
        let query = CallQuery {
            supplier: Some(asked.to_owned()),
            ..CallQuery::default()
        };
        let found: Vec<i64> = reader.calls(&query).unwrap().iter().map(|c| c.id).collect();
        assert_eq!(found, of_supplier(name), "{name}");
        assert_eq!(
            reader.count_calls(&query).unwrap(),
            of_supplier(name).len() as u64
        );
    }
    assert!(of_supplier("Leverandør 1").contains(&before[5].0));
    assert_eq!(of_supplier("Leverandør 2").len(), 1);
}

/// The counts of queries naming no caller or supplier (answered from `call_counts` since schema
/// 9, a time window taken off the calls outside it) against the calls themselves, read back
/// and compared in Rust: one by one and all at once, as `verify` asks.
fn counts_match_the_calls(path: &Path) {
    use dfdg_mock::journal::Criterion;
    type Meets = Box<dyn Fn(&CallRecord) -> bool>;
    let reader = SqliteStore::open_read_only(path).unwrap();
    let calls = reader
        .calls(&CallQuery {
            limit: 10_000,
            ..CallQuery::default()
        })
        .unwrap();
    assert!(!calls.is_empty());
    let middle = calls[calls.len() / 2].record.time;
    let receipt = || Some("receipt".to_owned());
    let cases: Vec<(CallQuery, Meets)> = vec![
        (CallQuery::default(), Box::new(|_| true)),
        (
            CallQuery {
                outcome: receipt(),
                ..CallQuery::default()
            },
            Box::new(|c| c.outcome == Outcome::Receipt),
        ),
        (
            CallQuery {
                outcome: Some("fault Client".to_owned()),
                operation: Some("SaveAvailabilityAssessment".to_owned()),
                ..CallQuery::default()
            },
            Box::new(
                |c| matches!(&c.outcome, Outcome::Fault { fault_code, .. } if fault_code == "Client"),
            ),
        ),
        (
            CallQuery {
                outcome: receipt(),
                negate: Some(Criterion::Outcome),
                identity_check: Some(true),
                ..CallQuery::default()
            },
            Box::new(|c| c.outcome != Outcome::Receipt && c.header_names_caller()),
        ),
        (
            CallQuery {
                service: Some("JobcenterMessageService".to_owned()),
                since: Some(middle),
                ..CallQuery::default()
            },
            Box::new(move |c| c.time >= middle && c.path.starts_with("/JobcenterMessageService/")),
        ),
        (
            CallQuery {
                outcome: receipt(),
                until: Some(middle),
                ..CallQuery::default()
            },
            Box::new(move |c| c.outcome == Outcome::Receipt && c.time < middle),
        ),
        (
            CallQuery {
                since: Some(middle),
                negate: Some(Criterion::Since),
                ..CallQuery::default()
            },
            Box::new(move |c| c.time < middle),
        ),
    ];
    let expected: Vec<u64> = cases
        .iter()
        .map(|(_, meets)| calls.iter().filter(|c| meets(&c.record)).count() as u64)
        .collect();
    let queries: Vec<CallQuery> = cases.iter().map(|(query, _)| query.clone()).collect();
    assert_eq!(reader.count_each(&queries).unwrap(), expected);
    for (query, expected) in queries.iter().zip(&expected) {
        assert_eq!(reader.count_calls(query).unwrap(), *expected, "{query:?}");
    }
    let totals: i64 = Connection::open(path)
        .unwrap()
        .query_row("SELECT SUM(calls) FROM call_counts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(totals, rows(path, "calls"));
}

#[tokio::test]
async fn a_version_8_journal_migrates_in_place_and_its_calls_are_counted_by_the_totals() {
    use dfdg_mock::journal::{Entry, JournalStore};
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("v8.sqlite");
    let mut before = Vec::new();
    {
        let mut store = SqliteStore::open_at_version(&path, 8).unwrap();
        assert_eq!(store.schema_version().unwrap(), 8);
        let entries: Vec<Entry> = (0..30)
            .map(|n| Entry::Call(if n % 4 == 0 { v7_call(n) } else { v5_call(n) }))
            .collect();
        let ids = store.append(&entries).unwrap();
        for (id, entry) in ids.into_iter().zip(entries) {
            let Entry::Call(call) = entry else {
                unreachable!()
            };
            before.push((id, call));
        }
    }
    assert!(!has_table(&path, "call_counts"));

    let journal = Journal::open_sqlite(&path).unwrap();
    let mut fresh = v5_call(40);
    fresh.path = "/Other/1/Other.svc".to_owned();
    fresh.operation = Some("NotInTheCatalog".to_owned());
    journal.record_call(fresh).await.unwrap();
    journal.record_call(v7_call(41)).await.unwrap();
    journal.close().await.unwrap();

    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.schema_version().unwrap(), SCHEMA_VERSION);
    for (id, record) in &before {
        let stored = reader
            .call(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("call {id} lost"));
        assert_eq!(&stored.record, record, "call {id} changed");
    }
    assert_eq!(reader.count_calls(&CallQuery::default()).unwrap(), 32);
    let other = CallQuery {
        service: Some("Other".to_owned()),
        ..CallQuery::default()
    };
    assert_eq!(reader.count_calls(&other).unwrap(), 1);
    counts_match_the_calls(&path);
}

/// A call answered with a version-7 receipt, as the scenarios' `receipt()` makes it.
fn v7_call(n: u32) -> CallRecord {
    let mut call = v5_call(n);
    call.receipts = vec![uuid::Uuid::now_v7().to_string()];
    call.outcome = Outcome::Receipt;
    call.http_status = 200;
    call.detail = None;
    call
}

#[test]
fn a_journal_of_an_older_version_than_5_is_brought_up_too() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("v2.sqlite");
    {
        let connection = Connection::open(&path).unwrap();
        for step in &LEGACY_MIGRATIONS[..2] {
            connection.execute_batch(step).unwrap();
        }
        connection.pragma_update(None, "user_version", 2).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.count_calls(&CallQuery::default()).unwrap(), 0);
}

/// Waits (bounded) until `condition` holds, yielding in between; the writer prunes between
/// batches on its own thread.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while !condition() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

fn count(path: &Path) -> u64 {
    SqliteStore::open_read_only(path)
        .unwrap()
        .count_calls(&CallQuery::default())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_the_oldest_calls_in_steps_and_keeps_onboarding_evidence() {
    use dfdg_mock::journal::{PruneReason, Retention};
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("bounded.sqlite");
    let retention = Retention {
        max_calls: Some(100),
        ..Retention::UNBOUNDED
    };
    let journal = Journal::open_sqlite_with(&path, retention).unwrap();
    // The very first calls: one whose receipt gets confirmed, one that is merely old.
    let confirmed = v5_call(1);
    let confirmed_id = journal.record_call(confirmed.clone()).await.unwrap();
    let mut old = v5_call(3);
    old.identity = Some(identity(2).into()); // a certificate that makes newer calls below
    let old_id = journal.record_call(old).await.unwrap();
    journal
        .confirm_receipt(ConfirmationRecord {
            guid: confirmed.receipts[0].clone(),
            time: time::OffsetDateTime::now_utc(),
            note: None,
            supplier: None,
        })
        .await
        .unwrap();
    let tasks: Vec<_> = (0..1000)
        .map(|n| {
            let journal = journal.clone();
            let mut call = if n % 2 == 0 {
                v7_call(10 + n)
            } else {
                v5_call(10 + n)
            };
            // Other certificates than the confirmed call's.
            call.identity = Some(identity(2 + n % 5).into());
            tokio::spawn(async move { journal.record_call(call).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    eventually("the journal is back within 100 calls", || {
        count(&path) <= 100
    })
    .await;

    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(reader.count_calls(&CallQuery::default()).unwrap(), 100);
    assert!(
        reader.call(confirmed_id).unwrap().is_some(),
        "evidence pruned"
    );
    assert_eq!(
        reader
            .call_by_receipt(&confirmed.receipts[0])
            .unwrap()
            .unwrap()
            .id,
        confirmed_id
    );
    assert!(
        reader.call(old_id).unwrap().is_none(),
        "the oldest call stayed"
    );
    // The receipts of pruned calls went with them, from either index.
    let remaining = reader
        .calls(&CallQuery {
            limit: 1000,
            ..CallQuery::default()
        })
        .unwrap();
    let sent = |v7: bool| {
        remaining
            .iter()
            .flat_map(|c| &c.record.receipts)
            .filter(|g| uuid::Uuid::try_parse(g).is_ok_and(|u| u.get_version_num() == 7) == v7)
            .count() as i64
    };
    assert_eq!(rows(&path, "receipts_by_time"), sent(true));
    assert_eq!(rows(&path, "receipts"), sent(false));
    // Every remaining certificate still has its newest receipt to show.
    for caller in reader.callers(100).unwrap() {
        let latest = caller.latest_receipt.expect("a receipt");
        assert!(reader.call(latest).unwrap().is_some(), "{caller:?}");
    }
    // The writer counts a pruning step just after committing it: a reader may see the journal
    // pruned a moment before the counters move.
    let pruned_by_calls = || {
        journal
            .stats()
            .pruned
            .iter()
            .find(|(reason, _, _)| *reason == PruneReason::MaxCalls)
            .copied()
            .unwrap()
    };
    eventually("the pruned calls are counted", || {
        pruned_by_calls().2 >= 1002 - 100
    })
    .await;
    let (_, steps, pruned) = pruned_by_calls();
    assert_eq!(pruned, 1002 - 100);
    assert!(steps >= 1);
    journal.close().await.unwrap();
    // The totals that counts are read from lost the pruned calls too.
    counts_match_the_calls(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_removes_old_calls_and_refusals() {
    use dfdg_mock::journal::{RejectionRecord, Retention};
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("aged.sqlite");
    let retention = Retention {
        max_age: Some(std::time::Duration::from_secs(3600)),
        ..Retention::UNBOUNDED
    };
    let journal = Journal::open_sqlite_with(&path, retention).unwrap();
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(5);
    let mut old_ids = Vec::new();
    for n in 0..20 {
        let mut call = v5_call(n);
        call.time = long_ago;
        call.identity = None;
        old_ids.push(journal.record_call(call).await.unwrap());
    }
    journal
        .record_rejection(RejectionRecord {
            time: long_ago,
            peer: "10.0.0.1:1".to_owned(),
            reason: dfdg_mock::journal::RejectionReason::UnknownCa,
            detail: "UnknownIssuer".to_owned(),
            identity: None,
            mode: "require".to_owned(),
        })
        .await
        .unwrap();
    let mut recent = v5_call(30);
    recent.time = time::OffsetDateTime::now_utc();
    let recent_id = journal.record_call(recent).await.unwrap();
    eventually("old calls are gone", || count(&path) == 1).await;
    let reader = SqliteStore::open_read_only(&path).unwrap();
    assert!(reader.call(recent_id).unwrap().is_some());
    counts_match_the_calls(&path);
    eventually("old refusals are gone", || {
        reader.rejections(&Default::default()).unwrap().is_empty()
    })
    .await;
    journal.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_keeps_the_journal_under_its_limit() {
    use dfdg_mock::journal::Retention;
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("sized.sqlite");
    let limit = 400 * 1024;
    let retention = Retention {
        max_size: Some(limit),
        ..Retention::UNBOUNDED
    };
    let journal = Journal::open_sqlite_with(&path, retention).unwrap();
    for n in 0..3000 {
        let mut call = v5_call(n);
        // Incompressible bodies, so that the size grows quickly.
        call.request_body = (0..512)
            .map(|i| ((n as u64 * 7919 + i) % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        journal.record_call(call).await.unwrap();
    }
    let used = || {
        SqliteStore::open_read_only(&path)
            .unwrap()
            .size_on_disk()
            .unwrap()
    };
    eventually("the journal is under its size limit", || used() <= limit).await;
    assert!(count(&path) > 100, "pruning went too far: {}", count(&path));
    journal.close().await.unwrap();
}

#[test]
fn calls_limit_beyond_one_page_returns_every_row_asked_for() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("many.sqlite");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let journal = Journal::open_sqlite(&path).unwrap();
        let tasks: Vec<_> = (0..10_050)
            .map(|n| {
                let journal = journal.clone();
                tokio::spawn(async move { journal.record_call(v5_call(n)).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        journal.close().await.unwrap();
    });
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .args(["calls", "--json", "--limit", "10020", "--journal"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 10_020);
    let ids: Vec<i64> = lines.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .args(["calls", "--rejected", "--limit", "20000", "--journal"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("capped at 10000"));
}

mod live {
    //! Through the real server.

    use std::sync::Arc;

    use dfdg_mock::identity::CallerIdentity;
    use dfdg_mock::journal::SqliteStore;
    use dfdg_mock::supplier::{Category, LiveRegistry, Registry, Supplier};

    use crate::support::*;

    const ACTION: &str = "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment";

    #[tokio::test]
    async fn a_call_made_before_its_supplier_was_registered_counts_for_that_supplier() {
        let pki = Pki::new();
        let dir = tempfile::tempdir().unwrap();
        let registry_path = dir.path().join("suppliers.toml");
        let suppliers = Arc::new(LiveRegistry::load(&registry_path, false).unwrap());
        let server = TestServer::start_with(
            &pki,
            Options {
                suppliers: Some(suppliers.clone()),
                admin: Some(AdminOptions::loopback()),
                ..Options::default()
            },
        )
        .await;
        let certificate = pki.oces3_client();
        let caller_id = CallerIdentity::from_der(&certificate.cert_der)
            .unwrap()
            .caller_id;
        let client = pki.client_with(Some(&certificate));
        // Open mode: no registry yet, the call is journaled without a supplier.
        let reply = client
            .soap11(server.addr, ACTION, &registration(&caller_id))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(server.journal().calls[0].record.supplier, None);

        Registry::of(vec![Supplier {
            name: "Sen Leverandør ApS".to_owned(),
            cvr: CVR.to_owned(),
            category: Category::Large,
            identities: vec![caller_id.clone()],
            services: vec!["JobcenterMessageService".to_owned()],
            revoked: Vec::new(),
            systems: Vec::new(),
        }])
        .save(&registry_path)
        .unwrap();
        suppliers.reload().unwrap();

        let store = SqliteStore::open_read_only(&server.journal_path).unwrap();
        let statuses =
            dfdg_mock::onboarding::suppliers(&store, &suppliers.current(), None).unwrap();
        assert_eq!(statuses.len(), 1);
        let status = &statuses[0];
        assert_eq!(status.calls, 1, "{status:?}");
        assert!(status.call_received.done, "{status:?}");
        assert!(status.identity_checked.done, "{status:?}");
        let api = admin_json(server.admin(), "/api/suppliers").await;
        assert_eq!(api["suppliers"][0]["calls"], 1, "{api}");
        assert_eq!(api["suppliers"][0]["call_received"]["done"], true, "{api}");
    }
}

mod disk_full {
    //! A journal on a small file system of its own (tmpfs with `size=`, mounted by the test:
    //! needs root, as in CI), filled up with another file, then given space again.

    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    use dfdg_mock::journal::SqliteStore;

    use crate::support::*;

    const ACTION: &str = "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment";

    /// A mounted tmpfs, unmounted on drop.
    struct SmallFileSystem {
        path: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl SmallFileSystem {
        fn mount(size: &str) -> SmallFileSystem {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("small");
            std::fs::create_dir(&path).unwrap();
            let output = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&path)
                .output()
                .expect("mount(8) runs");
            assert!(
                output.status.success(),
                "this test mounts a small tmpfs and must run as root (CI does): {output:?}"
            );
            SmallFileSystem { path, _dir: dir }
        }
    }

    impl Drop for SmallFileSystem {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }

    /// Writes `path` until the file system is full.
    fn fill(path: &Path) {
        let mut file = std::fs::File::create(path).unwrap();
        let chunk = vec![0x5a_u8; 64 * 1024];
        while file
            .write_all(&chunk)
            .and_then(|()| file.sync_data())
            .is_ok()
        {}
    }

    fn is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .map(|status| {
                status.lines().any(|line| {
                    line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0")
                })
            })
            .unwrap_or(false)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_gets_fault_1011_and_not_ready_then_recovers_by_itself() {
        if !is_root() {
            eprintln!("skipped: mounting a small tmpfs needs root (the injected-failure unit test journal::tests::a_full_store_… still runs)");
            return;
        }
        let disk = SmallFileSystem::mount("3m");
        let pki = Pki::new();
        let server = TestServer::start_with(
            &pki,
            Options {
                journal: Some(disk.path.join("journal.sqlite")),
                admin: Some(AdminOptions::loopback()),
                ..Options::default()
            },
        )
        .await;
        let client = pki.client_with(Some(&pki.oces3_client()));
        let caller_id = format!("CVR:{CVR}-UUID:{OCES3_UUID}");
        let mut acknowledged = Vec::new();
        let call = || async {
            client
                .soap11(server.addr, ACTION, &registration(&caller_id))
                .await
                .unwrap()
        };
        let reply = call().await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        acknowledged.push(
            reply.headers["x-dfdg-mock-call-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );

        fill(&disk.path.join("filler"));
        let mut refused = None;
        for _ in 0..2000 {
            let reply = call().await;
            if reply.status == 200 {
                acknowledged.push(
                    reply.headers["x-dfdg-mock-call-id"]
                        .to_str()
                        .unwrap()
                        .to_owned(),
                );
            } else {
                refused = Some(reply);
                break;
            }
        }
        let refused = refused.expect("a call failed once the disk was full");
        assert_eq!(refused.status, 500, "{}", refused.body);
        assert!(
            refused.body.contains("<s:Envelope") || refused.body.contains("Envelope"),
            "{}",
            refused.body
        );
        assert!(refused.body.contains("1011"), "{}", refused.body);
        assert!(
            !refused.body.contains("MessageIdentifier"),
            "no receipt: {}",
            refused.body
        );
        assert!(refused.headers.get("x-dfdg-mock-call-id").is_none());

        let ready = admin_request(server.admin(), "GET", "/health/ready", None, None).await;
        assert_eq!(ready.status, 503, "{}", ready.body);
        assert!(ready.body.contains("cannot commit"), "{}", ready.body);
        let live = admin_request(server.admin(), "GET", "/health/live", None, None).await;
        assert_eq!(live.status, 200, "the server stays up");
        let metrics = admin_request(server.admin(), "GET", "/metrics", None, None).await;
        assert!(
            metrics.body.contains("dfdg_mock_journal_available 0"),
            "{}",
            metrics.body
        );
        assert!(
            call().await.body.contains("1011"),
            "still refused while full"
        );

        std::fs::remove_file(disk.path.join("filler")).unwrap();
        let ready = admin_request(server.admin(), "GET", "/health/ready", None, None).await;
        assert_eq!(
            ready.status, 200,
            "ready again once space is back: {}",
            ready.body
        );
        let reply = call().await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        acknowledged.push(
            reply.headers["x-dfdg-mock-call-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );

        let path = server.journal_path.clone();
        server.stop().await;
        let store = SqliteStore::open_read_only(&path).unwrap();
        use dfdg_mock::journal::JournalReader as _;
        for id in &acknowledged {
            let id: i64 = id.parse().unwrap();
            assert!(
                store.call(id).unwrap().is_some(),
                "acknowledged call {id} is missing"
            );
        }
    }
}

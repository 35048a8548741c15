//! The journal's behaviour, run against both stores: the embedded SQLite file and a
//! PostgreSQL database in a throw-away cluster. Each case is one function taking a [`Store`];
//! `both!` makes a `sqlite_…` and a `postgres_…` test of it.

use std::collections::HashSet;

use dfdg_mock::journal::{
    self, CallQuery, ConfirmationRecord, Criterion, JournalError, JournalReader, Location, Opened,
    Outcome, Reader, RejectionQuery, RejectionReason, RejectionRecord, Retention, Settings,
};
use time::macros::datetime;

use crate::journal::{identity, v5_call};
use crate::pg::Cluster;

/// Where a case's journal lives.
pub enum Store {
    Sqlite(tempfile::TempDir),
    /// The cluster lives as long as the case.
    Postgres(#[allow(dead_code)] Cluster, Location),
}

impl Store {
    fn sqlite() -> Store {
        Store::Sqlite(tempfile::tempdir().unwrap())
    }

    /// `None` when PostgreSQL is missing and not required (the test is skipped with a note).
    fn postgres() -> Option<Store> {
        let cluster = Cluster::start()?;
        let location = cluster.journal("journal");
        Some(Store::Postgres(cluster, location))
    }

    fn location(&self) -> Location {
        match self {
            Store::Sqlite(dir) => Location::File(dir.path().join("journal.sqlite")),
            Store::Postgres(_, location) => location.clone(),
        }
    }

    async fn open(&self, retention: Retention) -> Opened {
        // Blocking: it may connect and migrate (the server does the same at start-up).
        journal::open(&Settings {
            location: self.location(),
            retention,
        })
        .unwrap_or_else(|error| panic!("{error:#}"))
    }
}

/// Runs `work` with one of the readers' connections.
async fn read<T: Send + 'static>(
    opened: &Opened,
    work: impl FnOnce(&Reader) -> Result<T, JournalError> + Send + 'static,
) -> T {
    opened.readers.read(work).await.unwrap()
}

fn ids(calls: &[journal::StoredCall]) -> Vec<i64> {
    calls.iter().map(|call| call.id).collect()
}

macro_rules! both {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Store::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(store) = super::Store::postgres() {
                        super::$case(store).await;
                    }
                }
            )*
        }
    };
}

both!(
    concurrent_calls_get_distinct_ids_in_shared_transactions,
    calls_and_rejections_round_trip_unchanged,
    data_survives_reopening_and_ids_continue,
    call_queries_filter_by_each_field,
    cursors_page_back_and_follow_forward,
    receipts_are_confirmed_once_and_reset_empties_the_journal,
    counting_together_agrees_with_counting_one_by_one,
    names_the_journal_never_held_match_no_call_and_turned_around_every_call,
    retention_by_calls_keeps_onboarding_evidence,
    retention_by_age_removes_old_calls_and_refusals,
    certificate_counters_follow_every_call_of_mixed_batches,
);

async fn concurrent_calls_get_distinct_ids_in_shared_transactions(store: Store) {
    let opened = store.open(Retention::UNBOUNDED).await;
    let tasks: Vec<_> = (0..500)
        .map(|n| {
            let journal = opened.journal.clone();
            tokio::spawn(async move { journal.record_call(v5_call(n)).await.unwrap() })
        })
        .collect();
    let mut recorded = HashSet::new();
    for task in tasks {
        recorded.insert(task.await.unwrap());
    }
    assert_eq!(recorded.len(), 500);
    let batches = opened.journal.batches_written();
    assert!(batches < 500, "{batches} batches for 500 concurrent calls");
    let all = read(&opened, |reader| {
        reader.calls(&CallQuery {
            limit: 1000,
            ..CallQuery::default()
        })
    })
    .await;
    assert_eq!(
        all.iter().map(|call| call.id).collect::<HashSet<_>>(),
        recorded
    );
    assert!(ids(&all).windows(2).all(|w| w[0] > w[1]), "newest first");
    opened.journal.close().await.unwrap();
}

async fn calls_and_rejections_round_trip_unchanged(store: Store) {
    let opened = store.open(Retention::UNBOUNDED).await;
    let mut anonymous = v5_call(4);
    anonymous.star_headers = None;
    anonymous.alpn = None;
    let mut unicode = v5_call(7);
    let mut body = "<Påmindelse>ÆØÅ \u{1F600}</Påmindelse>\u{0}"
        .as_bytes()
        .to_vec();
    body.push(0xff);
    unicode.request_body = body.into();
    let records = vec![v5_call(0), v5_call(2), anonymous, unicode];
    let mut call_ids = Vec::new();
    for record in &records {
        call_ids.push(opened.journal.record_call(record.clone()).await.unwrap());
    }
    let rejections = vec![
        RejectionRecord {
            time: datetime!(2026-05-01 10:00:00.5 UTC),
            peer: "10.0.0.1:4000".to_owned(),
            reason: RejectionReason::UnknownCa,
            detail: "invalid peer certificate: UnknownIssuer".to_owned(),
            identity: Some(identity(9)),
            mode: "require".to_owned(),
        },
        RejectionRecord {
            time: datetime!(2026-05-01 10:00:01.5 UTC),
            peer: "10.0.0.1:4001".to_owned(),
            reason: RejectionReason::NoCertificate,
            detail: "no certificate".to_owned(),
            identity: None,
            mode: "require".to_owned(),
        },
    ];
    for rejection in &rejections {
        opened
            .journal
            .record_rejection(rejection.clone())
            .await
            .unwrap();
    }
    let (stored, stored_rejections) = read(&opened, move |reader| {
        let mut stored = Vec::new();
        for id in &call_ids {
            stored.push(reader.call(*id)?.expect("stored"));
        }
        assert_eq!(reader.call(i64::MAX)?, None);
        Ok((stored, reader.rejections(&RejectionQuery::default())?))
    })
    .await;
    for (call, record) in stored.iter().zip(&records) {
        assert_eq!(&call.record, record);
    }
    let newest_first: Vec<_> = rejections.into_iter().rev().collect();
    assert_eq!(
        stored_rejections
            .into_iter()
            .map(|stored| stored.record)
            .collect::<Vec<_>>(),
        newest_first
    );
    opened.journal.close().await.unwrap();
}

async fn data_survives_reopening_and_ids_continue(store: Store) {
    let opened = store.open(Retention::UNBOUNDED).await;
    let first = opened.journal.record_call(v5_call(0)).await.unwrap();
    let Opened { journal, .. } = opened;
    journal.close().await.unwrap();
    let opened = store.open(Retention::UNBOUNDED).await;
    let second = opened.journal.record_call(v5_call(1)).await.unwrap();
    assert!(second > first);
    let found = read(&opened, |reader| reader.calls(&CallQuery::default())).await;
    assert_eq!(ids(&found), [second, first]);
    opened.journal.close().await.unwrap();
}

/// Calls with every filterable field varied; their ids in order.
async fn varied_calls(opened: &Opened) -> Vec<i64> {
    let mut http = v5_call(3);
    http.outcome = Outcome::Http;
    http.http_status = 404;
    http.path = "/unknown/x".to_owned();
    let mut server_fault = v5_call(5);
    server_fault.outcome = Outcome::Fault {
        code: None,
        fault_code: "Server".to_owned(),
    };
    server_fault.receipts = Vec::new();
    let mut lookup = v5_call(6);
    lookup.operation = Some("GetResources".to_owned());
    lookup.path = "/service/Påmindelse/1/X.svc".to_owned();
    // 0: receipt, caller 0, no supplier; 1: receipt, caller 1, Leverandør 1; 2: fault 1014,
    // caller 0; 3: http; 4: no certificate; 5: fault Server; 6: another operation and service.
    let records = [
        v5_call(0),
        v5_call(1),
        v5_call(2),
        http,
        v5_call(4),
        server_fault,
        lookup,
    ];
    let mut ids = Vec::new();
    for record in records {
        ids.push(opened.journal.record_call(record).await.unwrap());
    }
    ids
}

async fn call_queries_filter_by_each_field(store: Store) {
    let opened = store.open(Retention::UNBOUNDED).await;
    let id = varied_calls(&opened).await;
    let caller0 = identity(0);
    let cases: Vec<(CallQuery, Vec<i64>)> = vec![
        (
            CallQuery {
                caller: Some(caller0.caller_id.clone()),
                ..CallQuery::default()
            },
            vec![id[6], id[2], id[0]],
        ),
        (
            CallQuery {
                caller: caller0.cvr.clone(),
                ..CallQuery::default()
            },
            vec![id[6], id[2], id[0]],
        ),
        (
            CallQuery {
                cvr: identity(1).cvr,
                ..CallQuery::default()
            },
            vec![id[5], id[3], id[1]],
        ),
        (
            CallQuery {
                supplier: Some("leverandør 1".to_owned()),
                ..CallQuery::default()
            },
            vec![id[5], id[3], id[1]],
        ),
        (
            CallQuery {
                operation: Some("GetResources".to_owned()),
                ..CallQuery::default()
            },
            vec![id[6]],
        ),
        (
            CallQuery {
                service: Some("service/Påmindelse".to_owned()),
                ..CallQuery::default()
            },
            vec![id[6]],
        ),
        (
            CallQuery {
                service: Some("unknown".to_owned()),
                ..CallQuery::default()
            },
            vec![id[3]],
        ),
        (
            CallQuery {
                since: Some(datetime!(2026-05-01 10:00:01.123456 UTC)),
                until: Some(datetime!(2026-05-01 10:00:03.123456 UTC)),
                ..CallQuery::default()
            },
            vec![id[2], id[1]],
        ),
        (
            CallQuery {
                outcome: Some("receipt".to_owned()),
                ..CallQuery::default()
            },
            vec![id[6], id[4], id[1], id[0]],
        ),
        (
            CallQuery {
                outcome: Some("fault".to_owned()),
                ..CallQuery::default()
            },
            vec![id[5], id[2]],
        ),
        (
            CallQuery {
                outcome: Some("fault 1014".to_owned()),
                ..CallQuery::default()
            },
            vec![id[2]],
        ),
        (
            CallQuery {
                outcome: Some("fault Server".to_owned()),
                ..CallQuery::default()
            },
            vec![id[5]],
        ),
        (
            CallQuery {
                outcome: Some("http".to_owned()),
                ..CallQuery::default()
            },
            vec![id[3]],
        ),
        (
            CallQuery {
                fault_code: Some(1014),
                ..CallQuery::default()
            },
            vec![id[2]],
        ),
        (
            CallQuery {
                identity_check: Some(true),
                ..CallQuery::default()
            },
            vec![id[6], id[5], id[3], id[2], id[1], id[0]],
        ),
        (
            CallQuery {
                operation: Some("SaveAvailabilityAssessment".to_owned()),
                caller: Some(caller0.caller_id.clone()),
                negate: Some(Criterion::Caller),
                ..CallQuery::default()
            },
            vec![id[5], id[4], id[3], id[1]],
        ),
    ];
    let results = read(&opened, move |reader| {
        let mut results = Vec::new();
        for (query, expected) in cases {
            let found = ids(&reader.calls(&query)?);
            assert_eq!(reader.count_calls(&query)?, found.len() as u64, "{query:?}");
            results.push((format!("{query:?}"), found, expected));
        }
        let invalid = reader.calls(&CallQuery {
            outcome: Some("recept".to_owned()),
            ..CallQuery::default()
        });
        assert!(matches!(
            invalid,
            Err(JournalError::InvalidFilter {
                filter: "outcome",
                ..
            })
        ));
        Ok(results)
    })
    .await;
    for (query, found, expected) in results {
        assert_eq!(found, expected, "{query}");
    }
    opened.journal.close().await.unwrap();
}

async fn cursors_page_back_and_follow_forward(store: Store) {
    let opened = store.open(Retention::UNBOUNDED).await;
    let id = varied_calls(&opened).await;
    let after = id[1];
    let (pages, follow) = read(&opened, move |reader| {
        let mut pages = Vec::new();
        let mut before_id = None;
        loop {
            let page = ids(&reader.calls(&CallQuery {
                before_id,
                limit: 4,
                ..CallQuery::default()
            })?);
            let Some(last) = page.last() else { break };
            before_id = Some(*last);
            pages.push(page);
        }
        let follow = ids(&reader.calls(&CallQuery {
            after_id: Some(after),
            limit: 2,
            ..CallQuery::default()
        })?);
        Ok((pages, follow))
    })
    .await;
    assert_eq!(
        pages,
        [vec![id[6], id[5], id[4], id[3]], vec![id[2], id[1], id[0]]]
    );
    assert_eq!(follow, [id[2], id[3]]);
    opened.journal.close().await.unwrap();
}

async fn receipts_are_confirmed_once_and_reset_empties_the_journal(store: Store) {
    let opened = store.open(Retention::UNBOUNDED).await;
    let mut two = v5_call(0);
    two.receipts = vec!["guid-1".to_owned(), "guid-2".to_owned()];
    let id = opened.journal.record_call(two.clone()).await.unwrap();
    opened.journal.record_call(v5_call(1)).await.unwrap();
    let confirm = |guid: &str, note: &str| ConfirmationRecord {
        guid: guid.to_owned(),
        time: datetime!(2026-05-02 00:00:00 UTC),
        note: Some(note.to_owned()),
        supplier: None,
    };
    let journal = &opened.journal;
    assert_eq!(
        journal
            .confirm_receipt(confirm("guid-2", "first"))
            .await
            .unwrap(),
        id
    );
    assert_eq!(
        journal
            .confirm_receipt(confirm("guid-2", "again"))
            .await
            .unwrap(),
        id
    );
    assert!(matches!(
        journal.confirm_receipt(confirm("guid-unknown", "x")).await,
        Err(JournalError::UnknownReceipt { .. })
    ));
    let expected = two.clone();
    read(&opened, move |reader| {
        let found = reader.call_by_receipt("guid-2")?.expect("found");
        assert_eq!((found.id, &found.record), (id, &expected));
        assert_eq!(reader.call_by_receipt("guid-unknown")?, None);
        let confirmed = reader.confirmation("guid-2")?.expect("confirmed");
        assert_eq!(confirmed.call_id, id);
        assert_eq!(confirmed.record.note.as_deref(), Some("first"));
        assert_eq!(confirmed.caller_id, Some(identity(0).caller_id));
        assert_eq!(reader.confirmations(0)?.len(), 1);
        let callers = reader.callers(0)?;
        assert_eq!(callers.len(), 2, "{callers:?}");
        assert!(callers.iter().all(|caller| caller.calls == 1));
        assert_eq!(reader.certificates()?.len(), 2);
        Ok(())
    })
    .await;
    journal.reset().await.unwrap();
    let next = journal.record_call(v5_call(3)).await.unwrap();
    assert!(next > id, "ids are never reused");
    read(&opened, move |reader| {
        assert_eq!(ids(&reader.calls(&CallQuery::default())?), [next]);
        assert_eq!(reader.confirmation("guid-2")?, None);
        let callers = reader.callers(0)?;
        assert_eq!(callers.len(), 1, "{callers:?}");
        assert_eq!(
            (callers[0].calls, callers[0].latest_receipt),
            (1, Some(next))
        );
        Ok(())
    })
    .await;
    opened.journal.close().await.unwrap();
}

async fn counting_together_agrees_with_counting_one_by_one(store: Store) {
    let opened = store.open(Retention::UNBOUNDED).await;
    varied_calls(&opened).await;
    let queries = vec![
        CallQuery::default(),
        CallQuery {
            operation: Some("SaveAvailabilityAssessment".to_owned()),
            ..CallQuery::default()
        },
        CallQuery {
            service: Some("JobcenterMessageService".to_owned()),
            identity_check: Some(true),
            ..CallQuery::default()
        },
        CallQuery {
            operation: Some("SaveAvailabilityAssessment".to_owned()),
            outcome: Some("receipt".to_owned()),
            negate: Some(Criterion::Outcome),
            ..CallQuery::default()
        },
        CallQuery {
            supplier: Some("LEVERANDøR 1".to_owned()),
            ..CallQuery::default()
        },
    ];
    let (together, one_by_one) = read(&opened, move |reader| {
        let together = reader.count_each(&queries)?;
        let mut one_by_one = Vec::new();
        for query in &queries {
            one_by_one.push(reader.count_calls(query)?);
        }
        Ok((together, one_by_one))
    })
    .await;
    assert_eq!(together, one_by_one);
    assert_eq!(together, [7, 6, 4, 3, 3]);
    opened.journal.close().await.unwrap();
}

/// A criterion naming what the journal never held (an operation nobody called, an unknown
/// caller, supplier, service, path, SOAPAction or SOAP fault code) matches no call, and
/// turned around (a near miss of `verify`) every call that meets the other criteria; counted
/// alone or together with others.
async fn names_the_journal_never_held_match_no_call_and_turned_around_every_call(store: Store) {
    let opened = store.open(Retention::UNBOUNDED).await;
    let id = varied_calls(&opened).await;
    let unknown = [
        (
            Criterion::Operation,
            CallQuery {
                operation: Some("NobodyCalledThis".to_owned()),
                ..CallQuery::default()
            },
        ),
        (
            Criterion::CallerId,
            CallQuery {
                caller_id: Some("CVR:00000000-UUID:nobody".to_owned()),
                ..CallQuery::default()
            },
        ),
        (
            Criterion::Caller,
            CallQuery {
                caller: Some("00000000".to_owned()),
                ..CallQuery::default()
            },
        ),
        (
            Criterion::Cvr,
            CallQuery {
                cvr: Some("00000000".to_owned()),
                ..CallQuery::default()
            },
        ),
        (
            Criterion::Supplier,
            CallQuery {
                supplier: Some("Nobody ApS".to_owned()),
                ..CallQuery::default()
            },
        ),
        (
            Criterion::Service,
            CallQuery {
                service: Some("NoSuchService".to_owned()),
                ..CallQuery::default()
            },
        ),
        (
            Criterion::Service,
            CallQuery {
                // A known first segment, but no endpoint below it.
                service: Some("JobcenterMessageService/9".to_owned()),
                ..CallQuery::default()
            },
        ),
        (
            Criterion::Path,
            CallQuery {
                path: Some("/JobcenterMessageService/9/X.svc".to_owned()),
                ..CallQuery::default()
            },
        ),
        (
            Criterion::SoapAction,
            CallQuery {
                soap_action: Some("urn:nobody#Nothing".to_owned()),
                ..CallQuery::default()
            },
        ),
        (
            Criterion::Outcome,
            CallQuery {
                outcome: Some("fault NoSuchCode".to_owned()),
                ..CallQuery::default()
            },
        ),
    ];
    let results = read(&opened, move |reader| {
        let mut results = Vec::new();
        let mut queries = vec![CallQuery::default()];
        for (criterion, query) in unknown {
            results.push((
                format!("{query:?}"),
                ids(&reader.calls(&query)?),
                reader.count_calls(&query)?,
                Vec::new(),
            ));
            // Turned around, with a criterion some calls meet: those calls.
            let near = CallQuery {
                identity_check: Some(true),
                negate: Some(criterion),
                ..query.clone()
            };
            let wanted = CallQuery {
                identity_check: Some(true),
                ..CallQuery::default()
            };
            results.push((
                format!("{near:?}"),
                ids(&reader.calls(&near)?),
                reader.count_calls(&near)?,
                ids(&reader.calls(&wanted)?),
            ));
            queries.push(query);
            queries.push(near);
        }
        let together = reader.count_each(&queries)?;
        let mut one_by_one = Vec::new();
        for query in &queries {
            one_by_one.push(reader.count_calls(query)?);
        }
        Ok((results, together, one_by_one))
    })
    .await;
    let (results, together, one_by_one) = results;
    for (query, found, counted, expected) in &results {
        assert_eq!(found, expected, "{query}");
        assert_eq!(*counted, expected.len() as u64, "{query}");
    }
    assert_eq!(together, one_by_one);
    assert_eq!(together[0], id.len() as u64);
    assert_eq!(together[1..].iter().step_by(2).sum::<u64>(), 0);
    assert!(
        together[2..].iter().step_by(2).all(|n| *n == 6),
        "{together:?}"
    );
    opened.journal.close().await.unwrap();
}

/// A call of certificate `n % 5` (none for every seventh), arriving out of id order, whose
/// identity checks passed, failed or did not run.
fn counted_call(n: u32) -> journal::CallRecord {
    let mut call = v5_call(n);
    call.identity = (n % 7 != 6).then(|| identity(n % 5).into());
    call.time =
        datetime!(2026-05-01 10:00:00 UTC) + time::Duration::seconds(i64::from(n * 37 % 101));
    match n % 4 {
        1 => {
            call.identity_findings = vec![dfdg_mock::supplier::Finding {
                check: "identity".to_owned(),
                expected: "a".to_owned(),
                found: "b".to_owned(),
                message: "UserIdentifier names another caller".to_owned(),
                code: 1016,
            }]
        }
        2 => call.authorization = None,
        _ => {}
    }
    call
}

/// Per certificate fingerprint: calls, first and last seen, latest receipt, latest passed.
type Counters = std::collections::BTreeMap<
    String,
    (
        i64,
        time::OffsetDateTime,
        time::OffsetDateTime,
        Option<i64>,
        Option<i64>,
    ),
>;

/// Per certificate fingerprint, what its counters must say after `calls` (id, record).
fn expected_counters(calls: &[(i64, journal::CallRecord)]) -> Counters {
    let mut expected = std::collections::BTreeMap::new();
    for (id, call) in calls {
        let Some(identity) = &call.identity else {
            continue;
        };
        let entry = expected
            .entry(identity.fingerprint.clone())
            .or_insert((0, call.time, call.time, None, None));
        entry.0 += 1;
        entry.1 = entry.1.min(call.time);
        entry.2 = entry.2.max(call.time);
        if call.outcome == Outcome::Receipt {
            entry.3 = entry.3.max(Some(*id));
            if call.identity_passed() {
                entry.4 = entry.4.max(Some(*id));
            }
        }
    }
    expected
}

/// Every certificate's counters as the journal keeps them.
async fn counters(opened: &Opened) -> Counters {
    read(opened, |reader| reader.certificates())
        .await
        .into_iter()
        .filter(|summary| summary.calls > 0)
        .map(|summary| {
            (
                summary.identity.fingerprint,
                (
                    summary.calls,
                    summary.first_seen,
                    summary.last_seen,
                    summary.latest_receipt,
                    summary.latest_passed,
                ),
            )
        })
        .collect()
}

async fn certificate_counters_follow_every_call_of_mixed_batches(store: Store) {
    let opened = store.open(Retention::UNBOUNDED).await;
    // Calls, refused handshakes and reloads at once, so that batches mix them.
    let calls: Vec<_> = (0..300)
        .map(|n| {
            let journal = opened.journal.clone();
            tokio::spawn(async move {
                let call = counted_call(n);
                (journal.record_call(call.clone()).await.unwrap(), call)
            })
        })
        .collect();
    let others: Vec<_> = (0..30)
        .map(|n| {
            let journal = opened.journal.clone();
            tokio::spawn(async move {
                if n % 10 == 0 {
                    journal
                        .record_reload(journal::ReloadRecord {
                            time: datetime!(2026-05-01 10:00:00 UTC),
                            ok: true,
                            files: vec!["scenarios/onboarding.toml".into()],
                            rules: 3,
                            error: None,
                        })
                        .await
                        .unwrap();
                } else {
                    journal
                        .record_rejection(RejectionRecord {
                            time: datetime!(2026-05-01 10:00:00 UTC),
                            peer: format!("10.0.0.1:{n}"),
                            reason: RejectionReason::NoCertificate,
                            detail: "no certificate".to_owned(),
                            identity: None,
                            mode: "require".to_owned(),
                        })
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let mut recorded = Vec::new();
    for task in calls {
        recorded.push(task.await.unwrap());
    }
    for task in others {
        task.await.unwrap();
    }
    let expected = expected_counters(&recorded);
    assert_eq!(expected.len(), 5);
    assert_eq!(counters(&opened).await, expected);
    let ids: HashSet<i64> = recorded.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 300);
    let (stored, refused) = read(&opened, |reader| {
        Ok((
            reader.calls(&CallQuery {
                limit: 1000,
                ..CallQuery::default()
            })?,
            reader.rejections(&RejectionQuery {
                limit: 1000,
                ..RejectionQuery::default()
            })?,
        ))
    })
    .await;
    let by_id: std::collections::HashMap<i64, journal::CallRecord> = recorded.into_iter().collect();
    assert_eq!(stored.len(), 300);
    for call in &stored {
        assert_eq!(Some(&call.record), by_id.get(&call.id), "call {}", call.id);
    }
    assert_eq!(refused.len(), 27);
    assert_eq!(opened.journal.stats().failed_batches, 0);
    assert!(opened.journal.batches_written() < 330);
    opened.journal.close().await.unwrap();
}

/// Waits (bounded) until `condition` holds on the journal; the writer prunes between batches
/// on its own thread.
async fn eventually(
    opened: &Opened,
    what: &str,
    condition: impl Fn(&Reader) -> Result<bool, JournalError> + Send + Sync + Clone + 'static,
) {
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let condition = condition.clone();
            if read(opened, move |reader| condition(reader)).await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

async fn retention_by_calls_keeps_onboarding_evidence(store: Store) {
    let retention = Retention {
        max_calls: Some(50),
        ..Retention::UNBOUNDED
    };
    let opened = store.open(retention).await;
    let confirmed = v5_call(1);
    let confirmed_id = opened.journal.record_call(confirmed.clone()).await.unwrap();
    let mut old = v5_call(3);
    old.identity = Some(identity(2).into());
    let old_id = opened.journal.record_call(old).await.unwrap();
    opened
        .journal
        .confirm_receipt(ConfirmationRecord {
            guid: confirmed.receipts[0].clone(),
            time: time::OffsetDateTime::now_utc(),
            note: None,
            supplier: None,
        })
        .await
        .unwrap();
    let tasks: Vec<_> = (0..300)
        .map(|n| {
            let journal = opened.journal.clone();
            let mut call = v5_call(10 + n);
            call.identity = Some(identity(2 + n % 5).into());
            tokio::spawn(async move { journal.record_call(call).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    eventually(&opened, "the journal is back within 50 calls", |reader| {
        Ok(reader.count_calls(&CallQuery::default())? <= 50)
    })
    .await;
    let guid = confirmed.receipts[0].clone();
    read(&opened, move |reader| {
        assert_eq!(reader.count_calls(&CallQuery::default())?, 50);
        assert!(reader.call(confirmed_id)?.is_some(), "evidence pruned");
        assert_eq!(
            reader.call_by_receipt(&guid)?.map(|c| c.id),
            Some(confirmed_id)
        );
        assert!(reader.call(old_id)?.is_none(), "the oldest call stayed");
        for caller in reader.callers(100)? {
            let latest = caller.latest_receipt.expect("a receipt");
            assert!(reader.call(latest)?.is_some(), "{caller:?}");
        }
        let counted: i64 = reader.callers(100)?.iter().map(|c| c.calls).sum();
        assert_eq!(counted, 50, "certificate counters follow pruning");
        // Each certificate's first call is now its oldest one left.
        let mut left = std::collections::BTreeMap::new();
        let query = CallQuery {
            limit: 1000,
            ..CallQuery::default()
        };
        for call in reader.calls(&query)? {
            if let Some(identity) = &call.record.identity {
                let entry = left.entry(identity.fingerprint.clone()).or_insert((
                    call.id,
                    call.record.time,
                    0,
                ));
                if call.id < entry.0 {
                    (entry.0, entry.1) = (call.id, call.record.time);
                }
                entry.2 += 1;
            }
        }
        for summary in reader.certificates()? {
            if summary.calls > 0 {
                let (_, first, calls) = left[&summary.identity.fingerprint];
                assert_eq!((summary.calls, summary.first_seen), (calls, first));
            }
        }
        Ok(())
    })
    .await;
    // The writer counts a pruning step just after committing it: a reader may see the journal
    // pruned a moment before the counters move.
    let pruned = || -> u64 {
        opened
            .journal
            .stats()
            .pruned
            .iter()
            .map(|(_, _, calls)| calls)
            .sum()
    };
    let counted = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while pruned() < 302 - 50 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        counted.is_ok(),
        "timed out waiting until the pruned calls are counted"
    );
    assert_eq!(pruned(), 302 - 50);
    opened.journal.close().await.unwrap();
}

async fn retention_by_age_removes_old_calls_and_refusals(store: Store) {
    let retention = Retention {
        max_age: Some(std::time::Duration::from_secs(3600)),
        ..Retention::UNBOUNDED
    };
    let opened = store.open(retention).await;
    let long_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(5);
    for n in 0..20 {
        let mut call = v5_call(n);
        call.time = long_ago;
        call.identity = None;
        opened.journal.record_call(call).await.unwrap();
    }
    opened
        .journal
        .record_rejection(RejectionRecord {
            time: long_ago,
            peer: "10.0.0.1:1".to_owned(),
            reason: RejectionReason::UnknownCa,
            detail: "UnknownIssuer".to_owned(),
            identity: None,
            mode: "require".to_owned(),
        })
        .await
        .unwrap();
    let mut recent = v5_call(30);
    recent.time = time::OffsetDateTime::now_utc();
    let recent_id = opened.journal.record_call(recent).await.unwrap();
    eventually(&opened, "old calls and refusals are gone", |reader| {
        Ok(reader.count_calls(&CallQuery::default())? == 1
            && reader.rejections(&RejectionQuery::default())?.is_empty())
    })
    .await;
    assert!(read(&opened, move |reader| reader.call(recent_id))
        .await
        .is_some());
    opened.journal.close().await.unwrap();
}

/// The chain of an error's messages, outermost first.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn tls_settings(url: &str, ca: &std::path::Path) -> Settings {
    let database: journal::Database =
        format!("{url}?sslmode=verify-full&sslrootcert={}", ca.display())
            .parse()
            .unwrap();
    Settings {
        location: Location::Database(std::sync::Arc::new(database)),
        retention: Retention::UNBOUNDED,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_verifies_the_server_against_sslrootcert() {
    let pki = crate::support::Pki::new();
    let Some(cluster) = Cluster::start_tls(&pki.server.cert_pem, pki.server.key_pem()) else {
        return;
    };
    let url = cluster.create("journal");
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pki.ca.cert_pem()).unwrap();

    // Verified TLS (chain to sslrootcert, name 127.0.0.1): the journal opens and round-trips.
    let opened =
        journal::open(&tls_settings(&url, &ca)).unwrap_or_else(|e| panic!("{}", chain(&e)));
    let id = opened.journal.record_call(v5_call(1)).await.unwrap();
    let call = read(&opened, move |reader| reader.call(id)).await;
    assert_eq!(call.map(|call| call.id), Some(id));
    // The server says dfdg-mock's connections are encrypted (and it rejects plain ones).
    let encrypted = cluster.psql(
        "journal",
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE application_name = 'dfdg-mock' AND ssl",
    );
    assert_ne!(encrypted, "0", "no TLS connection of dfdg-mock's");
    opened.journal.close().await.unwrap();

    // A CA that did not issue the server's certificate: refused, saying why.
    let foreign = dir.path().join("foreign.pem");
    std::fs::write(
        &foreign,
        crate::support::Pki::named("Another CA").ca.cert_pem(),
    )
    .unwrap();
    let error = journal::open(&tls_settings(&url, &foreign)).unwrap_err();
    let message = chain(&error);
    assert!(
        message.contains("cannot use the journal database") && message.contains("certificate"),
        "{message}"
    );
    // Without TLS the server turns the connection away: what passed above was TLS.
    let plain: journal::Database = format!("{url}?sslmode=disable").parse().unwrap();
    let error = journal::open(&Settings {
        location: Location::Database(std::sync::Arc::new(plain)),
        retention: Retention::UNBOUNDED,
    })
    .unwrap_err();
    let message = chain(&error);
    assert!(message.contains("no encryption"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_counting_the_same_certificates_at_once_never_deadlock() {
    let Some(Store::Postgres(_cluster, location)) = Store::postgres() else {
        return;
    };
    let settings = Settings {
        location,
        retention: Retention::UNBOUNDED,
    };
    // Two writers on one database, as two replicas; each batch counts calls of many of the
    // same certificates, the two in opposite orders.
    let (one, two) = (
        journal::open(&settings).unwrap(),
        journal::open(&settings).unwrap(),
    );
    let mut tasks = Vec::new();
    for (opened, reversed) in [(&one, false), (&two, true)] {
        for n in 0..400u32 {
            let journal = opened.journal.clone();
            let certificate = if reversed { 19 - n % 20 } else { n % 20 };
            tasks.push(tokio::spawn(async move {
                let mut call = v5_call(n);
                call.identity = Some(identity(certificate).into());
                (journal.record_call(call.clone()).await.unwrap(), call)
            }));
        }
    }
    let mut recorded = Vec::new();
    for task in tasks {
        recorded.push(task.await.unwrap());
    }
    assert_eq!(counters(&one).await, expected_counters(&recorded));
    for opened in [&one, &two] {
        assert_eq!(opened.journal.stats().failed_batches, 0);
        assert!(opened.journal.batches_written() < 400);
    }
    one.journal.close().await.unwrap();
    two.journal.close().await.unwrap();
}

#[allow(clippy::module_inception)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use time::macros::datetime;

    use super::super::records::*;
    use super::super::*;
    use rusqlite::Connection;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::oneshot;

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
            fingerprint: format!("{caller_id}-fingerprint"),
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
            identity: Some(identity("supplier-a", Some("12345678")).into()),
            method: "POST".to_owned(),
            path: "/dfdg/ServiceA?x=1".to_owned(),
            soap_version: Some("1.1".to_owned()),
            soap_action: Some("urn:action".to_owned()),
            operation: Some("Submit".to_owned()),
            operation_namespace: Some("urn:star".to_owned()),
            star_headers: Some(serde_json::json!({ "TransactionID": format!("t-{n}") })),
            request_body: b"<Envelope>\xff</Envelope>".to_vec().into(),
            request_truncated: false,
            response_body: b"<Envelope/>".to_vec().into(),
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
            Err(JournalError::Storage(_))
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

    #[tokio::test]
    async fn ids_are_not_reused_after_a_reset_and_reopening() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let journal = Journal::open_sqlite(&path).unwrap();
        let mut last = 0;
        for n in 0..3 {
            last = journal.record_call(call(n)).await.unwrap();
        }
        journal.reset().await.unwrap();
        journal.close().await.unwrap();
        // No call is left to say which ids were given: the store must remember.
        let journal = Journal::open_sqlite(&path).unwrap();
        let next = journal.record_call(call(3)).await.unwrap();
        journal.close().await.unwrap();
        assert!(next > last, "id {next} after {last}");
    }

    /// Calls 0..6: receipts from supplier-a (0, 1), a fault 1014 from supplier-b (2), a
    /// fault without a number (3), an HTTP answer (4), another receipt with another operation (5).
    async fn journal_with_varied_calls(path: &Path) -> Vec<i64> {
        let journal = Journal::open_sqlite(path).unwrap();
        let mut other_supplier = fault(2, Some(1014), "Client");
        other_supplier.identity = Some(identity("supplier-b", Some("87654321")).into());
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
    fn a_call_compressed_by_its_caller_reads_back_as_one_the_writer_compressed() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let mut store = SqliteStore::open(&path).unwrap();
        let compressor = store.compressor();
        // No dictionary committed yet: the caller leaves the work to the writer.
        assert!(compressor.compress(&call(1)).is_none());
        let failing = vec![
            Entry::Call(call(1)),
            Entry::Confirmation(ConfirmationRecord {
                guid: "never-sent".to_owned(),
                time: datetime!(2025-01-01 00:00:00 UTC),
                note: None,
                supplier: None,
            }),
        ];
        assert!(store.append(&failing).is_err());
        assert!(
            compressor.compress(&call(1)).is_none(),
            "a rolled-back dictionary is never shared"
        );
        let first = store.append(&[Entry::Call(call(1))]).unwrap();
        let compressed = compressor
            .compress(&call(2))
            .expect("the committed dictionary is shared");
        assert_ne!(compressed.dictionary, 0);
        let second = store
            .append_compressed(
                &[Entry::Call(call(2)), Entry::Call(call(3))],
                &[Some(compressed), None],
            )
            .unwrap();
        drop(store);
        let reader = SqliteStore::open_read_only(&path).unwrap();
        for (id, n) in [(first[0], 1), (second[0], 2), (second[1], 3)] {
            assert_eq!(
                reader.call(id).unwrap().unwrap().record,
                call(n),
                "call {n}"
            );
        }
    }

    #[test]
    fn a_fresh_database_ends_at_the_latest_schema_version() {
        let folder = tempfile::tempdir().unwrap();
        let path = journal_path(&folder);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        // Opening again applies nothing and keeps the version.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_database_newer_than_the_code_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("future.sqlite");
        let newer = SCHEMA_VERSION + 1;
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
        // The totals the counts come from went with the calls: only the one after the reset.
        assert_eq!(reader.count_calls(&CallQuery::default()).unwrap(), 1);
        let receipts = CallQuery {
            outcome: Some("receipt".to_owned()),
            ..CallQuery::default()
        };
        assert_eq!(
            reader
                .count_each(&[receipts.clone(), CallQuery::default()])
                .unwrap(),
            [reader.calls(&receipts).unwrap().len() as u64, 1]
        );
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
        assert_eq!(
            reader
                .count_calls(&CallQuery {
                    supplier: Some("leverandør a".to_owned()),
                    ..CallQuery::default()
                })
                .unwrap(),
            5
        );
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

    /// Fails every write while `full` is set, as a store on a full disk does.
    struct FullStore {
        full: Arc<std::sync::atomic::AtomicBool>,
        next_id: i64,
    }

    impl FullStore {
        fn check(&self) -> Result<(), JournalError> {
            if self.full.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(JournalError::Storage(StorageError::from_parts(
                    StorageFault::Full,
                    "database or disk is full".to_owned(),
                )));
            }
            Ok(())
        }
    }

    impl JournalStore for FullStore {
        fn append(&mut self, entries: &[Entry]) -> Result<Vec<i64>, JournalError> {
            self.check()?;
            let first = self.next_id;
            self.next_id += entries.len() as i64;
            Ok((first..self.next_id).collect())
        }

        fn probe(&mut self) -> Result<(), JournalError> {
            self.check()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_store_fails_every_caller_at_once_and_a_probe_notices_the_space_coming_back() {
        let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let journal = Journal::start(FullStore {
            full: Arc::clone(&full),
            next_id: 1,
        })
        .unwrap();
        assert_eq!(journal.record_call(call(0)).await.unwrap(), 1);
        assert!(journal.is_available());
        full.store(true, std::sync::atomic::Ordering::SeqCst);
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let journal = journal.clone();
                tokio::spawn(async move { journal.record_call(call(n)).await })
            })
            .collect();
        for task in tasks {
            let error = task.await.unwrap().unwrap_err();
            assert_eq!(error.storage_fault(), Some(StorageFault::Full), "{error}");
        }
        assert!(!journal.is_available());
        assert!(!journal.probe().await);
        assert!(journal.stats().failed_batches >= 1);
        full.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(journal.probe().await);
        assert!(journal.is_available());
        assert!(journal.record_call(call(99)).await.is_ok());
        journal.close().await.unwrap();
    }

    /// Hands the write lock of [`a_batch_or_pruning_step_waits_for_a_write_lock_held_elsewhere`]
    /// over: "release" to the connection holding it, "released" back.
    type Handover = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);
    static LOCK_HOLDER: Mutex<Option<Handover>> = Mutex::new(None);

    /// A busy handler that, the first time the store finds the lock taken, has the holder let
    /// go and tries again; any other time it gives up.
    fn release_the_holder(_attempts: i32) -> bool {
        let Some((release, released)) = LOCK_HOLDER.lock().unwrap().take() else {
            return false;
        };
        release.send(()).unwrap();
        released.recv_timeout(WAIT).unwrap();
        true
    }

    /// The checkpoint thread holds the log's write lock during a restarting checkpoint. A writer
    /// transaction that read before it wrote then failed at its first write, at once, with
    /// SQLITE_BUSY (its snapshot could be outdated by waiting, so SQLite does not wait): under
    /// load on a full journal, calls got fault 1011. Here another connection holds the lock
    /// until the store's busy handler asks for it; a transaction that takes the lock at BEGIN
    /// waits and succeeds, one that reads first fails without asking.
    #[test]
    fn a_batch_or_pruning_step_waits_for_a_write_lock_held_elsewhere() {
        for step in ["batch", "pruning step"] {
            let folder = tempfile::tempdir().unwrap();
            let path = journal_path(&folder);
            let mut store = SqliteStore::open(&path).unwrap();
            if step == "pruning step" {
                let calls: Vec<_> = (0..5).map(|n| Entry::Call(call(n))).collect();
                store.append(&calls).unwrap();
            }
            let holder = Connection::open(&path).unwrap();
            holder.execute_batch("BEGIN IMMEDIATE").unwrap();
            let (release, release_asked) = std::sync::mpsc::channel();
            let (released, release_done) = std::sync::mpsc::channel();
            *LOCK_HOLDER.lock().unwrap() = Some((release, release_done));
            let holding = std::thread::spawn(move || {
                let asked = release_asked.recv_timeout(WAIT).is_ok();
                holder.execute_batch("ROLLBACK").unwrap();
                let _ = released.send(());
                asked
            });
            store
                .connection()
                .busy_handler(Some(release_the_holder))
                .unwrap();
            let result = match step {
                "batch" => store.append(&[Entry::Call(call(9))]).map(|ids| ids.len()),
                _ => store
                    .prune(
                        &Retention {
                            max_calls: Some(1),
                            ..Retention::UNBOUNDED
                        },
                        100,
                    )
                    .map(|pruned| pruned.calls as usize),
            };
            // A store that never waited left the hand-over unused: dropping it ends the
            // holder's wait, unasked.
            LOCK_HOLDER.lock().unwrap().take();
            assert!(
                holding.join().unwrap(),
                "{step}: the lock was never waited for"
            );
            assert!(result.unwrap() > 0, "{step}: wrote nothing");
        }
    }

    /// SQLite compiles a statement again once its bindings are cleared if a bound value could
    /// change its plan (in 3.54, the read of a call by id), and the statement cache clears them
    /// whenever it takes a statement back: that read was parsed and planned again at every use,
    /// and a pruning step that read each call it removed spent a third of the writer's time on
    /// it, on a full journal.
    #[test]
    fn reading_calls_by_id_reuses_the_compiled_statement() {
        let folder = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&journal_path(&folder)).unwrap();
        let calls: Vec<_> = (0..20).map(|n| Entry::Call(call(n))).collect();
        let ids = store.append(&calls).unwrap();
        for id in &ids {
            assert!(store.call(*id).unwrap().is_some());
        }
        let read = store
            .connection()
            .prepare_cached(super::super::sqlite::SELECT_CALL_BY_ID)
            .unwrap();
        assert!(
            read.get_status(rusqlite::StatementStatus::Run) >= 20,
            "the calls were not read with this statement"
        );
        assert_eq!(
            read.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "the read of a call was compiled again"
        );
    }

    /// A time window holding few calls is listed from the time index, the few calls' ids
    /// sorted, where walking the ids down from the newest would read every newer call in vain
    /// (a window later than the last call read all of a 1 M-call journal, 130 ms). Either way
    /// the same calls come back, in the same order, with the other criteria and the limit.
    #[test]
    fn a_sparse_time_window_is_listed_from_the_time_index_with_the_same_calls() {
        let folder = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&journal_path(&folder)).unwrap();
        let calls: Vec<_> = (0..40)
            .map(|n| {
                let mut call = call(n);
                if n % 3 == 0 {
                    call.operation = Some("Other".to_owned());
                }
                Entry::Call(call)
            })
            .collect();
        let ids = store.append(&calls).unwrap();
        let at = |n: i64| call(n).time;
        let listed = |store: &SqliteStore, query: &CallQuery| -> Vec<i64> {
            store.calls(query).unwrap().iter().map(|c| c.id).collect()
        };
        let expected = |range: std::ops::Range<i64>,
                        keep: &dyn Fn(i64) -> bool,
                        newest_first: bool,
                        limit: usize| {
            let mut wanted: Vec<i64> = range
                .filter(|n| keep(*n))
                .map(|n| ids[n as usize])
                .collect();
            if newest_first {
                wanted.reverse();
            }
            wanted.truncate(limit);
            wanted
        };
        let all = |_: i64| true;
        let submit = |n: i64| n % 3 != 0;
        let cases: Vec<(CallQuery, Vec<i64>)> = vec![
            (
                CallQuery {
                    since: Some(at(30)),
                    ..CallQuery::default()
                },
                expected(30..40, &all, true, 100),
            ),
            (
                CallQuery {
                    since: Some(at(30)),
                    operation: Some("Submit".to_owned()),
                    limit: 3,
                    ..CallQuery::default()
                },
                expected(30..40, &submit, true, 3),
            ),
            (
                CallQuery {
                    since: Some(at(10)),
                    until: Some(at(20)),
                    ..CallQuery::default()
                },
                expected(10..20, &all, true, 100),
            ),
            (
                CallQuery {
                    until: Some(at(5)),
                    ..CallQuery::default()
                },
                expected(0..5, &all, true, 100),
            ),
            (
                CallQuery {
                    since: Some(at(10)),
                    after_id: Some(ids[20]),
                    limit: 4,
                    ..CallQuery::default()
                },
                expected(21..40, &all, false, 4),
            ),
            (
                CallQuery {
                    since: Some(at(41)),
                    ..CallQuery::default()
                },
                Vec::new(),
            ),
        ];
        for (query, wanted) in &cases {
            assert_eq!(&listed(&store, query), wanted, "{query:?}");
        }
        // The window's plan, where a cursor does not already bound the ids.
        let (sql, values) = store.list_statement(&cases[1].0).unwrap().unwrap();
        let connection = store.connection();
        let mut explain = connection
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let plan: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(&values), |row| row.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(
            plan.iter().any(|step| step.contains("calls_time")),
            "{plan:?}"
        );
    }
}

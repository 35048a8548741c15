//! WSB through the server as `serve` assembles it: a supplier syncs its subscriptions over
//! mutual TLS on the SOAP listener with its own certificate, the administrator sends through
//! the admin API and the CLI, and a real webhook receiver (hyper + rustls, requiring a client
//! certificate from the test CA) gets the pushes, presented with STAR's certificate. The time
//! scale of the retries is compressed through `[wsb]` config. Tests wait for the worker's
//! events, never for time.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use dfdg_mock::config::{Config, WsbConfig};
use dfdg_mock::pki::STAR_CVR;
use dfdg_mock::supplier::LiveRegistry;
use dfdg_mock::tls::TlsMaterial;
use dfdg_mock::wsb::{DeliveryId, DeliveryState, WebhookTls, WsbEvent};
use http_body_util::Full;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::broadcast;

use crate::support::*;
use crate::wsb::{answer, within, Mode, Receiver, ReceiverSpec, CPR_A, CPR_B, SYSTEM};

pub(crate) const SUPPLIER: &str = "Testleverandør ApS";
pub(crate) const SYNC: &str = "/AbonnementService/v1/SyncWebhookAbonnementer";

/// `[wsb]` as a config file writes it: the backoff's second lasts 10 ms.
pub(crate) fn compressed(extra: &str) -> WsbConfig {
    let text = format!("[wsb]\nbackoff_unit = \"10ms\"\nconnect_timeout = \"5s\"\nresponse_timeout = \"5s\"\n{extra}");
    Config::from_toml(Path::new("dfdg-mock.toml"), &text)
        .expect("the [wsb] section")
        .wsb
}

/// A supplier with a webhook receiver, registered with one system at the receiver, and the
/// server with WSB on.
pub(crate) struct Rehearsal {
    pub pki: Pki,
    pub server: TestServer,
    pub receiver: Receiver,
    pub client: Client,
    pub registry: PathBuf,
    /// The supplier's certificate's caller id.
    pub caller_id: String,
    pub events: broadcast::Receiver<WsbEvent>,
    _dir: tempfile::TempDir,
}

/// STAR's sending certificate from the test CA, trusting the test CA for webhooks.
pub(crate) fn star_tls(pki: &Pki) -> WebhookTls {
    let star = pki.ca.issue_star(30).expect("STAR's certificate");
    WebhookTls::new(
        vec![CertificateDer::from(star.cert_der.clone())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(star.key_der())),
        vec![CertificateDer::from(pki.ca.cert_der().to_vec())],
    )
    .expect("STAR's TLS")
}

/// The registry: the supplier of the OCES3 test certificate, with one system at `base_url`.
pub(crate) fn registry_text(caller_id: &str, base_url: &str) -> String {
    format!(
        r#"[[supplier]]
name = "{SUPPLIER}"
cvr = "{CVR}"
category = "large"
identities = ["{caller_id}"]
services = ["JobcenterMessageService"]

[[supplier.system]]
id = "{SYSTEM}"
name = "Fagsystem"
base_url = "{base_url}"
authorities = ["8/101"]
"#
    )
}

/// The whole list: Cv and Frist for jobcenter 101 at `/webhook`.
pub(crate) fn subscription_list() -> String {
    serde_json::json!({
        "systemIdentifier": SYSTEM,
        "abonnementer": [
            {"orgType": 8, "orgCode": 101, "entityType": 30000, "webhookUrl": "/webhook",
             "startDato": "2024-01-01T00:00:00", "slutDato": "2099-12-31T23:59:59"},
            {"orgType": 8, "orgCode": 101, "entityType": 90001, "webhookUrl": "/webhook/frist"},
        ]
    })
    .to_string()
}

impl Rehearsal {
    pub async fn start(mode: Mode, wsb: WsbConfig, scenarios: Option<PathBuf>) -> Rehearsal {
        let pki = Pki::new();
        let receiver = Receiver::start(ReceiverSpec {
            server: pki
                .ca
                .issue_webhook_server("127.0.0.1", &["localhost".into()], 30)
                .expect("webhook certificate"),
            client_cas: vec![pki.ca.cert_der().to_vec()],
            versions: rustls::ALL_VERSIONS,
            mode,
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("suppliers.toml");
        let client_certificate = pki.oces3_client();
        let caller_id = dfdg_mock::identity::CallerIdentity::from_der(&client_certificate.cert_der)
            .unwrap()
            .caller_id;
        std::fs::write(
            &registry,
            registry_text(
                &caller_id,
                &format!("https://127.0.0.1:{}", receiver.addr.port()),
            ),
        )
        .unwrap();
        let server = TestServer::start_with(
            &pki,
            Options {
                admin: Some(AdminOptions::loopback()),
                suppliers: Some(Arc::new(LiveRegistry::load(&registry, false).unwrap())),
                wsb_tls: Some(star_tls(&pki)),
                wsb,
                scenarios,
                ..Options::default()
            },
        )
        .await;
        let events = server.app.wsb().expect("WSB runs").events();
        let client = pki.client_with(Some(&client_certificate));
        Rehearsal {
            pki,
            server,
            receiver,
            client,
            registry,
            caller_id,
            events,
            _dir: dir,
        }
    }

    /// A request to the AbonnementService on the SOAP listener, with the supplier's certificate.
    pub async fn rest(
        &self,
        method: &str,
        path: &str,
        request_id: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(id) = request_id {
            request = request.header("x-requestId", id);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
            .unwrap();
        let reply = self
            .client
            .send(self.server.addr, request)
            .await
            .expect("the SOAP listener answers");
        assert_eq!(reply.content_type(), "application/json; charset=utf-8");
        (
            reply.status,
            serde_json::from_str(&reply.body).expect("a JSON answer"),
        )
    }

    /// Syncs [`subscription_list`]; asserts 200.
    pub async fn subscribe(&self) {
        let (status, body) = self
            .rest("POST", SYNC, None, Some(&subscription_list()))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// An admin API request, JSON in and out.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let reply = admin_request(self.server.admin(), method, path, None, body).await;
        (
            reply.status,
            serde_json::from_str(&reply.body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Sends through the admin API; the delivery ids.
    pub async fn send(&self, message: serde_json::Value) -> (String, Vec<DeliveryId>) {
        let (status, sent) = self
            .admin("POST", "/api/wsb/messages", Some(&message.to_string()))
            .await;
        assert_eq!(status, 200, "{sent}");
        let ids = sent["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| DeliveryId(d["delivery"].as_i64().unwrap()))
            .collect();
        (sent["message_id"].as_str().unwrap().to_owned(), ids)
    }

    /// Waits until `delivery` reaches a final state; its last attempt's state.
    pub async fn finished(&mut self, delivery: DeliveryId) -> DeliveryState {
        let events = &mut self.events;
        within("a delivery to finish", async {
            loop {
                match events.recv().await {
                    Ok(WsbEvent::Attempt(attempt))
                        if attempt.delivery == delivery && attempt.state.is_final() =>
                    {
                        return attempt.state
                    }
                    Ok(_) => {}
                    Err(error) => panic!("event stream: {error}"),
                }
            }
        })
        .await
    }

    /// Runs the CLI against this server's admin listener.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let admin = format!("http://{}", self.server.admin());
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--admin".to_owned(), admin]);
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
                .args(&all)
                .env_remove("DFDG_MOCK_ADMIN_TOKEN")
                .env_remove("DFDG_MOCK_LOG")
                .output()
                .expect("run dfdg-mock")
        })
        .await
        .unwrap()
    }
}

fn cv(cpr: &str) -> serde_json::Value {
    serde_json::json!({"type": "Cv", "recipient": "8/101", "cpr": cpr})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsb_served_subscriptions_sync_over_mutual_tls_with_the_suppliers_certificate() {
    let rehearsal = Rehearsal::start(answer(200), compressed(""), None).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let (status, body) = rehearsal
        .rest("POST", SYNC, Some(&request_id), Some(&subscription_list()))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["oprettet"], 2, "{body}");
    assert_eq!(body["abonnementer"][0]["webhookUrl"], "/webhook");

    // The same x-requestId again: 412; the same list under a new id: nothing changes.
    let (status, body) = rehearsal
        .rest("POST", SYNC, Some(&request_id), Some(&subscription_list()))
        .await;
    assert_eq!(status, 412, "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("used before"));
    let (status, body) = rehearsal
        .rest(
            "POST",
            SYNC,
            Some(&uuid::Uuid::new_v4().to_string()),
            Some(&subscription_list()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["oprettet"], &body["uaendret"]),
        (&0.into(), &2.into()),
        "{body}"
    );

    // A bad list: 400 with every problem, and nothing changes.
    let bad = serde_json::json!({"systemIdentifier": SYSTEM, "abonnementer": [
        {"orgType": 8, "orgCode": 999, "entityType": 30000, "webhookUrl": "/w"},
        {"orgType": 8, "orgCode": 101, "entityType": 4242, "webhookUrl": "https://elsewhere.test/w"},
    ]});
    let (status, body) = rehearsal
        .rest("POST", SYNC, None, Some(&bad.to_string()))
        .await;
    assert_eq!(status, 400, "{body}");
    let paths: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "abonnementer[0]",
            "abonnementer[1].webhookUrl",
            "abonnementer[1].entityType"
        ],
        "{body}"
    );
    let (status, listed) = rehearsal
        .rest(
            "GET",
            "/AbonnementService/v1/WebhookAbonnementer",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let system = &listed["systemer"][0];
    assert_eq!(system["systemIdentifier"], SYSTEM);
    assert_eq!(
        system["baseUrl"],
        format!("https://127.0.0.1:{}", rehearsal.receiver.addr.port())
    );
    assert_eq!(system["abonnementer"].as_array().unwrap().len(), 2);

    // A certificate of no supplier may not act for the system.
    let stranger = rehearsal.pki.client(
        dfdg_mock::pki::CertificateShape::Oces3 {
            uuid: uuid::Uuid::new_v4(),
        },
        30,
    );
    let reply = rehearsal
        .pki
        .client_with(Some(&stranger))
        .send(
            rehearsal.server.addr,
            http::Request::post(SYNC)
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(subscription_list())))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body.contains("may not act for system"),
        "{}",
        reply.body
    );
    // No certificate: the handshake fails, as for SOAP.
    assert!(rehearsal
        .pki
        .client_with(None)
        .get(rehearsal.server.addr, "/AbonnementService/v1/Beskedtyper")
        .await
        .is_err());

    // Every request is journaled, as the supplier's call.
    let journal = rehearsal.server.journal();
    let syncs: Vec<(u16, Option<&str>)> = journal
        .calls
        .iter()
        .filter(|c| c.record.operation.as_deref() == Some("SyncWebhookAbonnementer"))
        .map(|c| (c.record.http_status, c.record.supplier.as_deref()))
        .collect();
    assert_eq!(
        syncs,
        [
            (400, None),
            (400, Some(SUPPLIER)),
            (200, Some(SUPPLIER)),
            (412, Some(SUPPLIER)),
            (200, Some(SUPPLIER)),
        ]
    );
    assert_eq!(
        journal
            .calls
            .iter()
            .find(|c| c.record.http_status == 412)
            .unwrap()
            .record
            .service
            .as_deref(),
        Some("AbonnementService")
    );

    // The registry changes: the system goes, and the sync says so.
    let mut reloads = rehearsal.server.reloads();
    reloads.borrow_and_update();
    std::fs::write(
        &rehearsal.registry,
        registry_text(&rehearsal.caller_id, "https://127.0.0.1:1")
            .replace(SYSTEM, "5a5a5a5a-0000-4000-8000-000000000001"),
    )
    .unwrap();
    within("the registry reload", reloads.changed())
        .await
        .unwrap();
    let systems = rehearsal.server.app.wsb().unwrap().systems();
    assert_eq!(systems[0].base_url.to_string(), "https://127.0.0.1:1");
    let (status, body) = rehearsal
        .rest("POST", SYNC, None, Some(&subscription_list()))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no system"),
        "{body}"
    );
}

/// A receiver answering 500 to its first `failures` requests, then 200.
fn failing_first(failures: usize) -> Mode {
    let calls = Arc::new(AtomicUsize::new(0));
    Mode::Http(Arc::new(move |_| {
        if calls.fetch_add(1, Ordering::SeqCst) < failures {
            (500, None)
        } else {
            (200, None)
        }
    }))
}

/// A receiver answering 500 until the gate opens, then 200.
pub(crate) fn gated() -> (Mode, Arc<std::sync::atomic::AtomicBool>) {
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = open.clone();
    let mode = Mode::Http(Arc::new(move |_| {
        if gate.load(Ordering::SeqCst) {
            (200, None)
        } else {
            (500, None)
        }
    }));
    (mode, open)
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "dfdg-mock failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsb_served_cli_sends_and_lists_deliveries_after_a_retry_sequence() {
    let mut rehearsal = Rehearsal::start(failing_first(2), compressed(""), None).await;
    rehearsal.subscribe().await;

    let sent = stdout(
        &rehearsal
            .cli(&[
                "wsb", "send", "--type", "Cv", "--to", "8/101", "--cpr", CPR_A,
            ])
            .await,
    );
    println!("$ dfdg-mock wsb send --type Cv --to 8/101 --cpr {CPR_A}\n{sent}");
    assert!(sent.starts_with("sent message "), "{sent}");
    assert!(sent.contains("(Cv to 8/101): 1 delivery"), "{sent}");
    let webhook = format!(
        "https://127.0.0.1:{}/webhook",
        rehearsal.receiver.addr.port()
    );
    assert!(sent.contains(&webhook), "{sent}");
    let delivery = DeliveryId(
        sent.lines()
            .find_map(|l| l.trim().strip_prefix("delivery "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|id| id.parse().ok())
            .expect("the delivery's number"),
    );
    assert_eq!(rehearsal.finished(delivery).await, DeliveryState::Delivered);

    // The webhook got it three times, as STAR's certificate, with the JSON of the Cv template.
    let first = rehearsal.receiver.next().await;
    let message_id = sent.split_whitespace().nth(2).unwrap();
    assert_eq!(first.path, "/webhook");
    assert!(
        first.content_type.starts_with("application/json"),
        "{}",
        first.content_type
    );
    assert_eq!(first.body["metadata"]["beskedId"], message_id);
    assert_eq!(first.body["metadata"]["EntitetId"], 30000);
    assert_eq!(first.subject(), CPR_A);
    assert_eq!(first.client.cvr.as_deref(), Some(STAR_CVR));
    assert_eq!(
        first.client.caller_id,
        rehearsal.server.app.wsb().unwrap().star().caller_id
    );
    for _ in 0..2 {
        assert_eq!(
            rehearsal.receiver.next().await.body["metadata"]["beskedId"],
            message_id
        );
    }

    let listed = stdout(&rehearsal.cli(&["wsb", "deliveries", "--attempts"]).await);
    println!("$ dfdg-mock wsb deliveries --attempts\n{listed}");
    let lines: Vec<&str> = listed.lines().collect();
    assert!(lines[0].starts_with("ID "), "{listed}");
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[0], delivery.0.to_string(), "{listed}");
    assert!(lines[1].contains("30000 Cv"), "{listed}");
    assert!(lines[1].contains("delivered"), "{listed}");
    assert!(lines[1].contains("cli"), "{listed}");
    let attempts: Vec<&str> = lines[2..5].to_vec();
    for (line, (number, status)) in attempts.iter().zip([(1, "500"), (2, "500"), (3, "200")]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            (words[0], words[1], words[5]),
            ("attempt", number.to_string().as_str(), status),
            "{listed}"
        );
    }
    assert!(attempts[0].contains("(next attempt "), "{listed}");
    assert!(!attempts[2].contains("(next attempt "), "{listed}");
    assert!(
        lines.last().unwrap().starts_with("queue: 0 undelivered"),
        "{listed}"
    );

    // One delivery in full: every attempt with its TLS outcome and the webhook's certificate.
    let detail = stdout(
        &rehearsal
            .cli(&["wsb", "delivery", &delivery.0.to_string()])
            .await,
    );
    println!("$ dfdg-mock wsb delivery {}\n{detail}", delivery.0);
    assert!(
        detail.contains("state:      delivered after 3 attempt(s)"),
        "{detail}"
    );
    assert_eq!(
        detail.matches("webhook certificate CN=127.0.0.1").count(),
        3,
        "{detail}"
    );

    // The subscriptions as synced.
    let subscriptions = stdout(&rehearsal.cli(&["wsb", "subscriptions"]).await);
    assert_eq!(subscriptions.lines().count(), 3, "{subscriptions}");
    assert!(subscriptions.contains("/webhook/frist"), "{subscriptions}");
    assert!(subscriptions.contains("8/101"), "{subscriptions}");

    // --json: one delivery per line, readable by a script.
    let json = stdout(&rehearsal.cli(&["wsb", "deliveries", "--json"]).await);
    let line: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(line["state"], "delivered");
    assert_eq!(line["attempts"], 3);

    // /metrics counts the attempts by outcome.
    let metrics = admin_request(rehearsal.server.admin(), "GET", "/metrics", None, None).await;
    for line in [
        "dfdg_mock_wsb_messages_total 1",
        "dfdg_mock_wsb_attempts_total{outcome=\"server_error\"} 2",
        "dfdg_mock_wsb_attempts_total{outcome=\"delivered\"} 1",
        "dfdg_mock_wsb_subscription_syncs_total{status=\"200\"} 1",
        "dfdg_mock_wsb_queue_undelivered 0",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line} missing:\n{}",
            metrics.body
        );
    }

    // A bad send is refused with the reason, and nothing is queued.
    let refused = rehearsal
        .cli(&[
            "wsb", "send", "--type", "4242", "--to", "8/101", "--cpr", CPR_B,
        ])
        .await;
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("answered 400"), "{error}");
    assert!(error.contains("4242"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsb_served_supplier_check_passes_after_a_delivery_a_duplicate_and_a_retry_in_order() {
    // The webhook fails until the gate opens: the check's retry-in-order part needs one that
    // failed while a later one for the same citizen waited.
    let (mode, open) = gated();
    let mut rehearsal = Rehearsal::start(mode, compressed(""), None).await;
    rehearsal.subscribe().await;

    let before = rehearsal.cli(&["wsb", "check"]).await;
    assert!(
        !before.status.success(),
        "the check passes with nothing sent"
    );
    assert!(String::from_utf8_lossy(&before.stdout).contains("nothing sent yet"));

    // Two messages for one citizen: the second is held back while the first fails.
    let (first_id, first) = rehearsal.send(cv(CPR_A)).await;
    let (second_id, second) = rehearsal.send(cv(CPR_A)).await;
    rehearsal.receiver.next().await;
    open.store(true, Ordering::SeqCst);
    assert_eq!(rehearsal.finished(first[0]).await, DeliveryState::Delivered);
    assert_eq!(
        rehearsal.finished(second[0]).await,
        DeliveryState::Delivered
    );
    // The webhook saw the first (retried) before the second, and the second once.
    let order: Vec<String> = rehearsal
        .receiver
        .drain()
        .iter()
        .map(|r| r.body["metadata"]["beskedId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order.last(), Some(&second_id), "{order:?}");
    assert!(
        order[..order.len() - 1].iter().all(|id| *id == first_id),
        "{order:?}"
    );

    // A replay is the duplicate (same beskedId).
    let (status, replayed) = rehearsal
        .admin(
            "POST",
            &format!("/api/wsb/deliveries/{}/replay", first[0].0),
            Some("{}"),
        )
        .await;
    assert_eq!(status, 200, "{replayed}");
    let duplicate = DeliveryId(replayed["delivery"].as_i64().unwrap());
    assert_eq!(
        rehearsal.finished(duplicate).await,
        DeliveryState::Delivered
    );

    let check = rehearsal
        .cli(&["wsb", "check", "--supplier", SUPPLIER])
        .await;
    let text = stdout(&check);
    println!("$ dfdg-mock wsb check --supplier '{SUPPLIER}'\n{text}");
    assert!(
        text.contains(&format!("{SUPPLIER}: receives STAR's messages")),
        "{text}"
    );
    assert_eq!(text.matches("  [x] ").count(), 3, "{text}");
}

/// A child process killed when dropped, its stdout lines on a channel.
struct Child {
    process: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Child {
    fn spawn(mut command: std::process::Command) -> Child {
        let mut process = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start the child");
        let stdout = process.stdout.take().unwrap();
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Child { process, lines }
    }

    async fn line(&mut self) -> String {
        within("a line from the child", self.lines.recv())
            .await
            .expect("the child exited")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The README's "Rehearsing WSB" as a supplier follows it: a welcome pack, a webhook server
/// certificate from the test CA, the pack's Python receiver (standard library only), the
/// system registered, the subscription synced with curl and the pack's certificate, a message
/// sent from the CLI, then its duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsb_served_the_welcome_packs_python_receiver_gets_a_message_and_its_duplicate() {
    let Some(python) = crate::suites::require(
        crate::suites::Suite::Python,
        crate::suites::python(&["ssl", "http.server"]),
    ) else {
        return;
    };
    // The receiver the README shows is the one the pack ships.
    let readme = include_str!("../../README.md");
    let shown = readme
        .split("```python\n")
        .nth(1)
        .and_then(|block| block.split("```").next())
        .expect("README's Rehearsing WSB shows the receiver");
    assert_eq!(shown, dfdg_mock::welcome::RECEIVER_SOURCE);
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("DFDG_MOCK_CERTS_DIR")
            .env_remove("DFDG_MOCK_SUPPLIERS")
            .env_remove("DFDG_MOCK_WSDL")
            .output()
            .expect("run dfdg-mock");
        stdout(&output)
    };
    let wsdl = Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl");
    let made = run(&[
        "welcome-pack",
        "--supplier",
        SUPPLIER,
        "--cvr",
        CVR,
        "--category",
        "medium",
        "--services",
        "PersonStatusService",
        "--out",
        "packs/testleverandoer",
        "--wsdl",
        wsdl.to_str().unwrap(),
    ]);
    assert!(made.contains("welcome pack for"), "{made}");
    let pack = dir.path().join("packs/testleverandoer");
    let certs = dir.path().join("certs");
    assert_eq!(
        std::fs::read(pack.join("star.crt")).unwrap(),
        std::fs::read(certs.join("star.crt")).unwrap()
    );
    let star = dfdg_mock::pki::ensure_star(&dfdg_mock::pki::PkiPaths::new(&certs)).unwrap();
    assert!(!star.issued, "the pack's star.crt is the one serve uses");
    let thumbprint = std::fs::read_to_string(pack.join("star-thumbprint.txt")).unwrap();
    assert!(
        thumbprint.contains(&star.thumbprints.sha256.with_colons()),
        "{thumbprint}"
    );
    let readme = std::fs::read_to_string(pack.join("README.md")).unwrap();
    assert!(
        readme.contains(&star.thumbprints.sha256.with_colons()),
        "{readme}"
    );

    // The pack README's commands as written, but on a port the system picks.
    let section = &readme[readme.find("## WSB").expect("the pack's WSB section")..];
    let block = section
        .split("```bash\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the WSB commands");
    let (setup, receiver_line) = block.trim_end().rsplit_once('\n').unwrap();
    let setup = setup.replace(
        "dfdg-mock ",
        &format!("{} ", env!("CARGO_BIN_EXE_dfdg-mock")),
    );
    let status = std::process::Command::new("bash")
        .args(["-ec", &setup])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "{setup}");
    assert_eq!(
        receiver_line,
        "(cd 'packs/testleverandoer' && python3 webhook_receiver.py --port 9443)"
    );
    let mut receiver = Child::spawn({
        let mut command = std::process::Command::new(&python);
        command
            .args(["webhook_receiver.py", "--port", "0"])
            .current_dir(&pack);
        command
    });
    let listening = receiver.line().await;
    let base_url = listening
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{listening}"))
        .to_owned();

    // The systemforvalter registers the system (the supplier entry is the pack's).
    let registry = dir.path().join("suppliers.toml");
    let mut text = std::fs::read_to_string(&registry).unwrap();
    text.push_str(&format!(
        "\n[[supplier.system]]\nid = \"{SYSTEM}\"\nname = \"Fagsystem\"\nbase_url = \"{base_url}\"\nauthorities = [\"8/101\"]\n"
    ));
    std::fs::write(&registry, text).unwrap();
    let server = TestServer::start_with(
        &Pki::new(),
        Options {
            admin: Some(AdminOptions::loopback()),
            tls: Some(
                TlsMaterial::from_files(
                    &certs.join("server.crt"),
                    &certs.join("server.key"),
                    &[&certs.join("ca.crt")],
                )
                .unwrap(),
            ),
            suppliers: Some(Arc::new(LiveRegistry::load(&registry, true).unwrap())),
            wsb_tls: Some(
                WebhookTls::from_files(&star.cert, &star.key, &[&certs.join("ca.crt")]).unwrap(),
            ),
            wsb: compressed(""),
            ..Options::default()
        },
    )
    .await;
    let mut events = server.app.wsb().unwrap().events();

    // The supplier subscribes with the pack README's curl line, its system's GUID filled in.
    let curl = section
        .split("```bash\n")
        .nth(2)
        .and_then(|b| b.split("```").next())
        .expect("the pack's subscription command")
        .replace("<system-GUID>", SYSTEM)
        .replace(
            "https://localhost:8443",
            &format!("https://localhost:{}", server.addr.port()),
        );
    let sync = tokio::task::spawn_blocking({
        let pack = pack.clone();
        move || {
            std::process::Command::new("bash")
                .args(["-ec", &curl])
                .current_dir(pack)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let answer = stdout(&sync);
    assert!(answer.contains("\"oprettet\":1"), "{answer}");

    // STAR sends; the receiver checks it is STAR's certificate and answers 200.
    let admin = format!("http://{}", server.admin());
    let cli = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
                .args(args)
                .env_remove("DFDG_MOCK_ADMIN_TOKEN")
                .output()
                .unwrap()
        })
    };
    let sent = stdout(
        &cli([
            "wsb", "send", "--type", "Cv", "--to", "8/101", "--cpr", CPR_A, "--admin", &admin,
        ]
        .map(String::from)
        .to_vec())
        .await
        .unwrap(),
    );
    let message_id = sent.split_whitespace().nth(2).unwrap().to_owned();
    let delivery = within("the delivery", async {
        loop {
            if let Ok(WsbEvent::Attempt(attempt)) = events.recv().await {
                if attempt.state.is_final() {
                    return attempt;
                }
            }
        }
    })
    .await;
    assert_eq!(delivery.state, DeliveryState::Delivered, "{delivery:?}");
    assert_eq!(
        receiver.line().await,
        format!("received /webhook {message_id} Cv {CPR_A}")
    );
    let replayed = stdout(
        &cli([
            "wsb",
            "replay",
            &delivery.delivery.0.to_string(),
            "--admin",
            &admin,
        ]
        .map(String::from)
        .to_vec())
        .await
        .unwrap(),
    );
    assert!(replayed.contains("(same beskedId)"), "{replayed}");
    assert_eq!(
        receiver.line().await,
        format!("duplicate /webhook {message_id} Cv {CPR_A}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsb_served_every_admin_route_is_in_the_openapi_document() {
    let rehearsal = Rehearsal::start(answer(200), compressed(""), None).await;
    let (status, document) = rehearsal.admin("GET", "/openapi.json", None).await;
    assert_eq!(status, 200);
    for (method, path) in [
        ("get", "/api/wsb"),
        ("get", "/api/wsb/subscriptions"),
        ("get", "/api/wsb/deliveries"),
        ("get", "/api/wsb/deliveries/{id}"),
        ("post", "/api/wsb/deliveries/{id}/replay"),
        ("get", "/api/wsb/attempts"),
        ("post", "/api/wsb/messages"),
        ("get", "/api/wsb/checks"),
        ("post", "/api/wsb/checks/{supplier}/run"),
        ("get", "/api/wsb/events"),
    ] {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
    // Every key a delivery has is described.
    rehearsal.subscribe().await;
    let (_, ids) = rehearsal.send(cv(CPR_A)).await;
    let (_, listed) = rehearsal.admin("GET", "/api/wsb/deliveries", None).await;
    let described = &document["components"]["schemas"]["WsbDelivery"]["properties"];
    for key in listed["deliveries"][0].as_object().unwrap().keys() {
        assert!(described[key].is_object(), "WsbDelivery lacks {key}");
    }
    assert_eq!(listed["deliveries"][0]["id"], ids[0].0);
}

/// A scenario rule whose registration also pushes a Frist notification, as DFDG does.
const PUSHING_RULE: &str = r#"[[rule]]
name = "registration-notifies"
when.operation = "SaveAvailabilityAssessment"
respond.push = [
  { type = "Frist", to = "{{ star.organisation_type }}/{{ star.organisation_code }}", cpr = "{{ request('*/CivilRegistrationIdentifier') }}", change = "create" },
]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsb_served_a_scenario_rule_pushes_a_notification_after_the_soap_registration() {
    let scenarios = tempfile::tempdir().unwrap();
    std::fs::write(scenarios.path().join("push.toml"), PUSHING_RULE).unwrap();
    let mut rehearsal = Rehearsal::start(
        answer(200),
        compressed(""),
        Some(scenarios.path().to_path_buf()),
    )
    .await;
    rehearsal.subscribe().await;

    // The SOAP registration is answered with its receipt; the push follows it.
    let reply = rehearsal
        .client
        .soap11(
            rehearsal.server.addr,
            "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment",
            &registration(&rehearsal.caller_id),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("MessageIdentifier"), "{}", reply.body);
    let received = rehearsal.receiver.next().await;
    assert_eq!(received.path, "/webhook/frist");
    let metadata = &received.body["metadata"];
    assert_eq!(metadata["EntitetNavn"], "Frist");
    assert_eq!(metadata["Identifikation"], "0101701234");
    assert_eq!(metadata["Aendringstype"], 1);
    assert_eq!(metadata["modtager"]["orgCode"], 101);
    assert_eq!(received.client.cvr.as_deref(), Some(STAR_CVR));

    // The delivery says which rule sent it.
    let (_, listed) = rehearsal.admin("GET", "/api/wsb/deliveries", None).await;
    let delivery = &listed["deliveries"][0];
    assert_eq!(
        delivery["origin"],
        "scenario push.toml#registration-notifies"
    );
    let id = DeliveryId(delivery["id"].as_i64().unwrap());
    assert_eq!(rehearsal.finished(id).await, DeliveryState::Delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wsb_served_a_schedule_fires_test_messages_through_the_served_assembly() {
    let wsb = compressed(
        "\n[[wsb.schedule]]\nname = \"frist\"\nevery = \"100ms\"\ntype = \"Frist\"\nrecipient = \"8/101\"\ncpr = \"0101901234\"\n",
    );
    let mut rehearsal = Rehearsal::start(answer(200), wsb, None).await;
    // Ticks before the subscription find no subscriber and queue nothing; after it, each
    // tick's message reaches the webhook.
    rehearsal.subscribe().await;
    let first = rehearsal.receiver.next().await;
    let second = rehearsal.receiver.next().await;
    assert_eq!(first.path, "/webhook/frist");
    assert_eq!(first.body["metadata"]["EntitetNavn"], "Frist");
    assert_ne!(
        first.body["metadata"]["beskedId"], second.body["metadata"]["beskedId"],
        "each tick is a new message"
    );
    let (_, listed) = rehearsal.admin("GET", "/api/wsb/deliveries", None).await;
    assert_eq!(listed["deliveries"][0]["origin"], "schedule frist");
}

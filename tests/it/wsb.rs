//! WSB pushes against real webhook receivers: each test starts a receiver on 127.0.0.1:0
//! (hyper + tokio-rustls, requiring a client certificate, its server certificate from the
//! test's fresh CA) and drives the delivery worker directly, with STAR's certificate issued by
//! the same CA and a real SQLite store. Tests wait for the worker's events, never for time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dfdg_mock::identity::CallerIdentity;
use dfdg_mock::pki::{CertificateAuthority, IssuedCertificate, Thumbprints, STAR_CVR};
use dfdg_mock::wsb::{
    Attempt, AttemptQuery, Authority, Backoff, Catalog, ChangeType, Cpr, DeliveryId, DeliveryState,
    Message, Outcome, Replayed, RetryPolicy, SqliteWsbStore, Subject, SyncRejection, System,
    Timeouts, WebhookTls, Wsb, WsbEvent, WsbSettings, WsbStore,
};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_rustls::TlsAcceptor;

pub(crate) const SYSTEM: &str = "0b6e2d8e-4c1a-4f3e-9a57-2d7c9e1f0a11";
pub(crate) const CPR_A: &str = "0101901234";
pub(crate) const CPR_B: &str = "0202902345";
pub(crate) const JOBCENTER: Authority = Authority {
    org_type: 8,
    org_code: 101,
};

/// The bound on any wait in these tests: a failure, not a synchronisation.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

// ---------------------------------------------------------------------------------------------
// the webhook receiver

/// What a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub path: String,
    pub content_type: String,
    pub body: serde_json::Value,
    /// The client certificate it was sent with.
    pub client: CallerIdentity,
    pub at: Instant,
}

impl Received {
    pub fn subject(&self) -> &str {
        self.body["metadata"]["Identifikation"]
            .as_str()
            .unwrap_or_default()
    }
}

pub(crate) type Responder = Arc<dyn Fn(&Received) -> (u16, Option<&'static str>) + Send + Sync>;

/// How a receiver behaves.
#[derive(Clone)]
pub(crate) enum Mode {
    /// HTTP over TLS, answering with the responder's status (and Location).
    Http(Responder),
    /// TLS handshake, then silence.
    HangAfterHandshake,
    /// TLS handshake, then bytes that are not HTTP.
    GarbageAfterHandshake,
    /// No TLS at all: accept and never answer.
    Silent,
    /// No TLS at all: answer with plain text.
    Plaintext,
    /// Accept and reset the connection at once.
    Reset,
}

pub(crate) struct ReceiverSpec {
    pub server: IssuedCertificate,
    /// CA certificates (DER) trusted for client certificates.
    pub client_cas: Vec<Vec<u8>>,
    pub versions: &'static [&'static SupportedProtocolVersion],
    pub mode: Mode,
}

pub(crate) struct Receiver {
    pub addr: SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(spec: ReceiverSpec) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in spec.client_cas {
            roots.add(CertificateDer::from(ca)).expect("client CA");
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .expect("client verifier");
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(spec.versions)
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from(spec.server.cert_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(spec.server.key_der())),
            )
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (sender, received) = mpsc::unbounded_channel();
        let mode = spec.mode;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                // As a webhook server should: no Nagle delay on the answer.
                let _ = tcp.set_nodelay(true);
                let (acceptor, sender, mode) = (acceptor.clone(), sender.clone(), mode.clone());
                connections.spawn(async move {
                    serve_connection(tcp, acceptor, sender, mode).await;
                });
            }
        });
        Receiver {
            addr,
            received,
            task,
        }
    }

    pub async fn next(&mut self) -> Received {
        within("the receiver to get a request", self.received.recv())
            .await
            .expect("receiver running")
    }

    /// Requests received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(received) = self.received.try_recv() {
            all.push(received);
        }
        all
    }
}

async fn serve_connection(
    mut tcp: tokio::net::TcpStream,
    acceptor: TlsAcceptor,
    sender: mpsc::UnboundedSender<Received>,
    mode: Mode,
) {
    match mode {
        Mode::Silent => {
            // Hold the connection open, saying nothing, until the receiver stops.
            std::future::pending::<()>().await;
        }
        Mode::Reset => {
            // Linger 0 makes the close a reset; it does not block, which is what the
            // deprecation warns of.
            #[allow(deprecated)]
            let _ = tcp.set_linger(Some(Duration::ZERO));
            drop(tcp);
        }
        Mode::Plaintext => {
            let mut buffer = [0u8; 512];
            let _ = tcp.read(&mut buffer).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nthis port speaks plain HTTP\n")
                .await;
        }
        Mode::HangAfterHandshake => {
            let _tls = acceptor.accept(tcp).await;
            std::future::pending::<()>().await;
        }
        Mode::GarbageAfterHandshake => {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buffer = [0u8; 4096];
            let _ = tls.read(&mut buffer).await;
            let _ = tls
                .write_all(b"220 mail.leverandor.test ESMTP ready\r\n")
                .await;
            let _ = tls.shutdown().await;
        }
        Mode::Http(responder) => {
            // A refused client certificate fails here; the sender sees the alert.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| CallerIdentity::from_der(leaf).ok())
                .expect("a verified client certificate");
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (client, sender, responder) =
                    (client.clone(), sender.clone(), responder.clone());
                async move {
                    let path = request.uri().path().to_owned();
                    let content_type = request
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let bytes = request.into_body().collect().await?.to_bytes();
                    let received = Received {
                        path,
                        content_type,
                        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
                        client,
                        at: Instant::now(),
                    };
                    let (status, location) = responder(&received);
                    let _ = sender.send(received);
                    let mut response = hyper::Response::builder().status(status);
                    if let Some(location) = location {
                        response = response.header(http::header::LOCATION, location);
                    }
                    Ok::<_, hyper::Error>(
                        response
                            .body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
                            .expect("response"),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    }
}

pub(crate) fn answer(status: u16) -> Mode {
    Mode::Http(Arc::new(move |_| (status, None)))
}

// ---------------------------------------------------------------------------------------------
// the sending side

/// A fresh PKI: the test CA, STAR's certificate from it, and a webhook server certificate.
struct Pki {
    ca: CertificateAuthority,
    star: IssuedCertificate,
}

impl Pki {
    fn new() -> Pki {
        let ca = CertificateAuthority::generate("dfdg-mock Test CA").expect("ca");
        let star = ca.issue_star(30).expect("star");
        Pki { ca, star }
    }

    fn webhook_server(&self, valid_days: i64) -> IssuedCertificate {
        self.ca
            .issue_webhook_server("127.0.0.1", &["localhost".into()], valid_days)
            .expect("webhook server")
    }

    fn receiver(&self, mode: Mode) -> ReceiverSpec {
        ReceiverSpec {
            server: self.webhook_server(30),
            client_cas: vec![self.ca.cert_der().to_vec()],
            versions: rustls::ALL_VERSIONS,
            mode,
        }
    }

    fn tls(&self) -> WebhookTls {
        WebhookTls::new(
            vec![CertificateDer::from(self.star.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.star.key_der())),
            vec![CertificateDer::from(self.ca.cert_der().to_vec())],
        )
        .expect("STAR's TLS")
    }
}

/// Settings with a compressed backoff (one backoff second = 10 ms) and short timeouts.
fn settings(retry: RetryPolicy) -> WsbSettings {
    WsbSettings {
        retry,
        backoff: Backoff {
            unit: Duration::from_millis(10),
            ..Backoff::default()
        },
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(5),
        },
        ..WsbSettings::default()
    }
}

/// The sender: a [`Wsb`] over a fresh SQLite file, one system at the receiver's address
/// subscribed to Cv (30000) for jobcenter 101 at `/webhook`.
struct Sender {
    wsb: Wsb,
    events: broadcast::Receiver<WsbEvent>,
    store: Arc<SqliteWsbStore>,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn system(addr: SocketAddr) -> System {
    System {
        id: SYSTEM.parse().expect("uuid"),
        supplier: "Testleverandør ApS".into(),
        category: dfdg_mock::supplier::Category::Large,
        base_url: format!("https://{addr}").parse().expect("base url"),
        authorities: vec![],
    }
}

fn subscriptions(entries: &[(u32, &str)]) -> Vec<u8> {
    let list: Vec<serde_json::Value> = entries
        .iter()
        .map(|(type_id, path)| {
            serde_json::json!({"orgType": JOBCENTER.org_type, "orgCode": JOBCENTER.org_code,
                "entityType": type_id, "webhookUrl": path,
                "startDato": "2024-01-01T00:00:00", "slutDato": "2099-12-31T23:59:59"})
        })
        .collect();
    serde_json::json!({"systemIdentifier": SYSTEM, "abonnementer": list})
        .to_string()
        .into_bytes()
}

impl Sender {
    async fn start(pki: &Pki, addr: SocketAddr, settings: WsbSettings) -> Sender {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wsb.sqlite");
        let sender = Sender::open(pki, addr, settings, path.clone(), dir).await;
        sender
            .wsb
            .sync(
                &[SYSTEM.parse().expect("uuid")],
                &subscriptions(&[(30000, "/webhook")]),
            )
            .await
            .expect("subscribe");
        sender
    }

    async fn open(
        pki: &Pki,
        addr: SocketAddr,
        settings: WsbSettings,
        path: std::path::PathBuf,
        dir: tempfile::TempDir,
    ) -> Sender {
        let store = Arc::new(SqliteWsbStore::open(&path).expect("store"));
        let wsb = Wsb::start(
            settings,
            Arc::new(Catalog::shipped().expect("catalog")),
            pki.tls(),
            vec![system(addr)],
            store.clone(),
        )
        .await
        .expect("wsb");
        let events = wsb.events();
        Sender {
            wsb,
            events,
            store,
            path,
            _dir: dir,
        }
    }

    /// Sends a Cv update about `cpr` to jobcenter 101; the one delivery's id.
    async fn send(&self, cpr: &str) -> (uuid::Uuid, DeliveryId) {
        let message = Message::new(
            30000,
            JOBCENTER,
            Subject::Cpr(Cpr::try_from(cpr.to_owned()).expect("cpr")),
            ChangeType::Update,
        );
        let sent = self.wsb.send(message).await.expect("send");
        assert_eq!(sent.deliveries.len(), 1, "{sent:?}");
        (sent.message_id, sent.deliveries[0].delivery)
    }

    /// A delivery as stored.
    async fn stored(&self, delivery: DeliveryId) -> dfdg_mock::wsb::Delivery {
        self.wsb
            .delivery(delivery)
            .await
            .expect("read the store")
            .expect("the delivery is stored")
    }

    /// The next attempt of `delivery`.
    async fn attempt(&mut self, delivery: DeliveryId) -> Attempt {
        within("a delivery attempt", async {
            loop {
                match self.events.recv().await {
                    Ok(WsbEvent::Attempt(attempt)) if attempt.delivery == delivery => {
                        return *attempt
                    }
                    Ok(_) => {}
                    Err(error) => panic!("event stream: {error}"),
                }
            }
        })
        .await
    }

    /// Waits for the first event `pick` accepts.
    async fn event<T>(&mut self, what: &str, pick: impl Fn(&WsbEvent) -> Option<T>) -> T {
        within(what, async {
            loop {
                let event = self.events.recv().await.expect("event stream");
                if let Some(found) = pick(&event) {
                    return found;
                }
            }
        })
        .await
    }
}

/// One Cv message to a receiver behaving as `mode`, under the intended retry policy (so a
/// failure is given up after one attempt): that attempt.
async fn one_attempt(pki: &Pki, spec: ReceiverSpec, timeouts: Timeouts) -> Attempt {
    let receiver = Receiver::start(spec).await;
    let mut sender = Sender::start(
        pki,
        receiver.addr,
        WsbSettings {
            timeouts,
            ..settings(RetryPolicy::ServerErrors)
        },
    )
    .await;
    let (_, delivery) = sender.send(CPR_A).await;
    let attempt = sender.attempt(delivery).await;
    sender.wsb.shutdown().await;
    attempt
}

// ---------------------------------------------------------------------------------------------
// tests

#[tokio::test]
async fn wsb_delivers_a_message_with_the_expected_json_over_mutual_tls() {
    let pki = Pki::new();
    let spec = pki.receiver(answer(200));
    let server_fingerprint = Thumbprints::of(&spec.server.cert_der).sha256.hex();
    let mut receiver = Receiver::start(spec).await;
    let mut sender = Sender::start(&pki, receiver.addr, settings(RetryPolicy::AllFailures)).await;

    let (message_id, delivery) = sender.send(CPR_A).await;
    let attempt = sender.attempt(delivery).await;
    assert_eq!(attempt.outcome, Outcome::Delivered, "{attempt:?}");
    assert_eq!((attempt.status, attempt.number), (Some(200), 1));
    assert_eq!(attempt.state, DeliveryState::Delivered);
    assert_eq!(attempt.next_retry, None);
    assert_eq!(attempt.url, format!("https://{}/webhook", receiver.addr));
    assert_eq!(attempt.response_excerpt.as_deref(), Some("{\"ok\":true}"));
    let server = attempt
        .tls
        .server_certificate
        .as_ref()
        .expect("server certificate");
    assert_eq!(server.fingerprint, server_fingerprint.to_ascii_lowercase());
    assert_eq!(server.subject, "CN=127.0.0.1");
    assert!(
        server.issuer.contains("CN=dfdg-mock Test CA"),
        "{}",
        server.issuer
    );
    assert!(attempt.tls.version.is_some());

    let received = receiver.next().await;
    assert_eq!(received.path, "/webhook");
    assert_eq!(received.content_type, "application/json; charset=utf-8");
    // The webhook saw STAR's certificate.
    assert_eq!(received.client.cvr.as_deref(), Some(STAR_CVR));
    assert_eq!(received.client.caller_id, sender.wsb.star().caller_id);
    assert_eq!(
        received.client.fingerprint,
        CallerIdentity::from_der(&pki.star.cert_der)
            .expect("id")
            .fingerprint
    );
    let metadata = &received.body["metadata"];
    assert_eq!(metadata["beskedId"], message_id.to_string());
    assert_eq!(metadata["EntitetId"], 30000);
    assert_eq!(metadata["EntitetNavn"], "Cv");
    assert_eq!(
        metadata["EksternIdentifier"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(metadata["IdentifikationstypeId"], 1);
    assert_eq!(metadata["Identifikation"], CPR_A);
    assert_eq!(metadata["Aendringstype"], 2);
    assert_eq!(metadata["HarBody"], false);
    assert_eq!(
        metadata["modtager"],
        serde_json::json!({"orgType": 8, "orgCode": 101})
    );
    assert_eq!(metadata["registreretAf"]["brugerId"], "dfdg-mock");
    assert!(metadata["Registreringstidspunkt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(received.body["body"], serde_json::Value::Null);

    // Journaled: the delivery and its attempt.
    let stored = sender.stored(delivery).await;
    assert_eq!(
        (stored.state, stored.attempts),
        (DeliveryState::Delivered, 1)
    );
    assert_eq!(stored.last_outcome, Some(Outcome::Delivered));
    let journaled = sender
        .wsb
        .attempts(AttemptQuery {
            message: Some(message_id),
            ..AttemptQuery::default()
        })
        .await
        .expect("attempts");
    assert_eq!(journaled, vec![attempt]);
    assert_eq!(sender.wsb.queue().undelivered, 0);
    sender.wsb.shutdown().await;
}

#[tokio::test]
async fn wsb_subscription_sync_is_the_whole_list_idempotent_and_lists_every_error() {
    let pki = Pki::new();
    let receiver = Receiver::start(pki.receiver(answer(500))).await;
    let mut sender = Sender::start(&pki, receiver.addr, settings(RetryPolicy::AllFailures)).await;
    let system: uuid::Uuid = SYSTEM.parse().expect("uuid");
    let both = subscriptions(&[(30000, "/webhook"), (90001, "/frist")]);

    let first = sender.wsb.sync(&[system], &both).await.expect("sync");
    assert_eq!(
        (
            first.plan.created.len(),
            first.plan.unchanged.len(),
            first.plan.deleted.len()
        ),
        (1, 1, 0)
    );
    let again = sender.wsb.sync(&[system], &both).await.expect("repeat");
    assert!(again.plan.is_noop(), "a repeated request changes nothing");
    assert_eq!(
        again.body()["abonnementer"].as_array().map(Vec::len),
        Some(2)
    );
    let listed = sender.store.subscriptions().expect("stored");
    assert_eq!(listed.len(), 2);

    // Every problem in one 400 answer; nothing changes.
    let bad = serde_json::json!({"systemIdentifier": SYSTEM, "abonnementer": [
        {"orgType": 8, "orgCode": 101, "entityType": 4242, "webhookUrl": "/x"},
        {"orgType": 8, "orgCode": 101, "entityType": 30000, "webhookUrl": "webhook", "slutDato": "2020-01-01T00:00:00"},
    ]});
    let rejection = sender
        .wsb
        .sync(&[system], bad.to_string().as_bytes())
        .await
        .expect_err("invalid");
    assert_eq!(rejection.status(), 400);
    let errors = rejection.body()["errors"]
        .as_array()
        .cloned()
        .expect("errors");
    let paths: Vec<&str> = errors.iter().filter_map(|e| e["path"].as_str()).collect();
    assert_eq!(
        paths,
        [
            "abonnementer[0].entityType",
            "abonnementer[1].webhookUrl",
            "abonnementer[1].slutDato"
        ]
    );
    assert_eq!(errors[0]["code"], 150002);
    assert_eq!(errors[2]["code"], 150000);
    assert_eq!(sender.store.subscriptions().expect("stored"), listed);
    // Another supplier's certificate may not act for the system.
    let foreign = sender
        .wsb
        .sync(&[uuid::Uuid::new_v4()], &both)
        .await
        .expect_err("foreign");
    assert!(foreign.to_string().contains("may not act for"), "{foreign}");

    // A storage failure half-way through: 500, and nothing changes.
    let side = rusqlite::Connection::open(&sender.path).expect("second connection");
    side.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON wsb_subscriptions \
         BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END;",
    )
    .expect("trigger");
    let failed = sender
        .wsb
        .sync(&[system], &subscriptions(&[(30000, "/moved")]))
        .await
        .expect_err("storage failure");
    assert!(matches!(failed, SyncRejection::Storage(_)));
    assert_eq!(failed.status(), 500);
    assert_eq!(sender.store.subscriptions().expect("stored"), listed);
    assert_eq!(sender.wsb.subscriptions(Some(system)), listed);
    side.execute_batch("DROP TRIGGER refuse;")
        .expect("drop trigger");

    // A message that keeps failing, then its subscription is deleted: its queue is dropped.
    let (_, delivery) = sender.send(CPR_A).await;
    let attempt = sender.attempt(delivery).await;
    assert_eq!(attempt.state, DeliveryState::Retrying);
    let only_frist = subscriptions(&[(90001, "/frist")]);
    let report = sender
        .wsb
        .sync(&[system], &only_frist)
        .await
        .expect("delete Cv");
    assert_eq!((report.plan.deleted.len(), report.dropped), (1, 1));
    let dropped = sender
        .event("the drop", |e| match e {
            WsbEvent::Dropped { deliveries } => Some(deliveries.clone()),
            _ => None,
        })
        .await;
    assert_eq!(dropped, vec![delivery]);
    let stored = sender.stored(delivery).await;
    assert_eq!(stored.state, DeliveryState::Dropped);
    assert_eq!(sender.wsb.queue().undelivered, 0);
    assert!(matches!(
        sender.wsb.replay(delivery).await,
        Err(dfdg_mock::wsb::ReplayError::SubscriptionDeleted(_))
    ));
    sender.wsb.shutdown().await;
}

#[tokio::test]
async fn wsb_retries_a_500_twice_then_delivers_with_backoff() {
    let pki = Pki::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mode = Mode::Http(Arc::new(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < 2 {
            (500, None)
        } else {
            (200, None)
        }
    }));
    let mut receiver = Receiver::start(pki.receiver(mode)).await;
    let unit = Duration::from_millis(20);
    let mut sender = Sender::start(
        &pki,
        receiver.addr,
        WsbSettings {
            backoff: Backoff {
                unit,
                ..Backoff::default()
            },
            ..settings(RetryPolicy::ServerErrors)
        },
    )
    .await;

    let (message_id, delivery) = sender.send(CPR_A).await;
    let mut attempts = Vec::new();
    for _ in 0..3 {
        attempts.push(sender.attempt(delivery).await);
    }
    let summary: Vec<(u32, Option<u16>, DeliveryState)> = attempts
        .iter()
        .map(|a| (a.number, a.status, a.state))
        .collect();
    assert_eq!(
        summary,
        [
            (1, Some(500), DeliveryState::Retrying),
            (2, Some(500), DeliveryState::Retrying),
            (3, Some(200), DeliveryState::Delivered),
        ]
    );
    assert_eq!(attempts[0].outcome, Outcome::ServerError);
    assert!(
        attempts[0].detail.contains("500 Internal Server Error"),
        "{}",
        attempts[0].detail
    );
    // Backoff: 2^1 - 1 = 1 and 2^2 - 1 = 3 backoff seconds after the first and second failure.
    for (attempt, seconds) in attempts.iter().zip([1u32, 3]) {
        let next = attempt.next_retry.expect("a next retry");
        let ended = attempt.started_at + attempt.latency;
        assert!(next - ended >= unit * seconds, "{attempt:?}");
    }
    assert_eq!(attempts[2].next_retry, None);

    // The webhook saw the same message three times, no earlier than the backoff allowed.
    let seen: Vec<Received> = vec![
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ];
    for received in &seen {
        assert_eq!(
            received.body["metadata"]["beskedId"],
            message_id.to_string()
        );
    }
    assert!(seen[1].at - seen[0].at >= unit);
    assert!(seen[2].at - seen[1].at >= unit * 3);
    let stored = sender.stored(delivery).await;
    assert_eq!(
        (stored.state, stored.attempts),
        (DeliveryState::Delivered, 3)
    );
    sender.wsb.shutdown().await;
}

#[tokio::test]
async fn wsb_holds_back_later_messages_for_the_same_citizen_while_one_fails() {
    let pki = Pki::new();
    let failing = Arc::new(AtomicBool::new(true));
    let gate = failing.clone();
    let mode = Mode::Http(Arc::new(move |received: &Received| {
        if received.subject() == CPR_A && gate.load(Ordering::SeqCst) {
            (503, None)
        } else {
            (200, None)
        }
    }));
    let mut receiver = Receiver::start(pki.receiver(mode)).await;
    let mut sender = Sender::start(&pki, receiver.addr, settings(RetryPolicy::ServerErrors)).await;

    let (first_id, first) = sender.send(CPR_A).await;
    let failed = sender.attempt(first).await;
    assert_eq!(failed.state, DeliveryState::Retrying);

    // A later message about the same citizen waits; another citizen's goes through.
    let (second_id, second) = sender.send(CPR_A).await;
    let behind = sender
        .event("the hold-back", |e| match e {
            WsbEvent::HeldBack { delivery, behind } if *delivery == second => Some(*behind),
            _ => None,
        })
        .await;
    assert_eq!(behind, first);
    let (_, other) = sender.send(CPR_B).await;
    let delivered = sender.attempt(other).await;
    assert_eq!(delivered.state, DeliveryState::Delivered);
    let held = sender.stored(second).await;
    assert_eq!(
        (held.state, held.attempts, held.held_behind),
        (DeliveryState::Queued, 0, Some(first))
    );
    let so_far = receiver.drain();
    assert!(
        so_far
            .iter()
            .all(|r| r.body["metadata"]["beskedId"] != second_id.to_string()),
        "the held-back message must not have been sent yet"
    );
    assert!(so_far.iter().any(|r| r.subject() == CPR_B));

    // The webhook recovers: the first is delivered, then the second, in order.
    failing.store(false, Ordering::SeqCst);
    let first_ok = loop {
        let attempt = sender.attempt(first).await;
        if attempt.state == DeliveryState::Delivered {
            break attempt;
        }
    };
    let second_ok = sender.attempt(second).await;
    assert_eq!(second_ok.state, DeliveryState::Delivered);
    assert_eq!(second_ok.number, 1);
    assert_eq!(first_ok.outcome, Outcome::Delivered);
    let mut order: Vec<String> = so_far
        .into_iter()
        .chain(receiver.drain())
        .filter(|r| r.subject() == CPR_A)
        .map(|r| {
            r.body["metadata"]["beskedId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    order.dedup();
    assert_eq!(order, [first_id.to_string(), second_id.to_string()]);
    sender.wsb.shutdown().await;
}

#[tokio::test]
async fn wsb_journals_a_webhook_that_refuses_the_star_certificate() {
    let pki = Pki::new();
    // The webhook trusts another CA for client certificates, so STAR's is refused: after the
    // handshake in TLS 1.3, during it in TLS 1.2.
    let other = CertificateAuthority::generate("Leverandørens egen CA").expect("ca");
    static TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    static TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
    for versions in [TLS13, TLS12] {
        let spec = ReceiverSpec {
            client_cas: vec![other.cert_der().to_vec()],
            versions,
            ..pki.receiver(answer(200))
        };
        let attempt = one_attempt(&pki, spec, settings(RetryPolicy::ServerErrors).timeouts).await;
        assert_eq!(attempt.outcome, Outcome::CertificateRefused, "{attempt:?}");
        assert!(
            attempt
                .detail
                .contains("refused STAR's client certificate (TLS alert"),
            "{}",
            attempt.detail
        );
        assert_eq!(attempt.status, None);
        assert_eq!(
            attempt.state,
            DeliveryState::Failed,
            "5xx-only policy gives it up"
        );
        // The webhook's own certificate was fine and is journaled.
        assert_eq!(
            attempt
                .tls
                .server_certificate
                .as_ref()
                .map(|c| c.subject.as_str()),
            Some("CN=127.0.0.1")
        );
    }
}

#[tokio::test]
async fn wsb_refuses_untrusted_and_expired_webhook_certificates() {
    let pki = Pki::new();
    let stranger = CertificateAuthority::generate("Ukendt CA").expect("ca");
    let untrusted = ReceiverSpec {
        server: stranger
            .issue_webhook_server("127.0.0.1", &[], 30)
            .expect("server"),
        ..pki.receiver(answer(200))
    };
    let attempt = one_attempt(&pki, untrusted, Timeouts::default()).await;
    assert_eq!(
        attempt.outcome,
        Outcome::UntrustedServerCertificate,
        "{attempt:?}"
    );
    assert!(
        attempt.detail.contains("not issued by a CA STAR trusts"),
        "{}",
        attempt.detail
    );
    let presented = attempt
        .tls
        .server_certificate
        .expect("journaled although untrusted");
    assert!(
        presented.issuer.contains("Ukendt CA"),
        "{}",
        presented.issuer
    );
    assert_eq!(attempt.tls.version, None, "no handshake completed");

    let expired = ReceiverSpec {
        server: pki.webhook_server(-3),
        ..pki.receiver(answer(200))
    };
    let attempt = one_attempt(&pki, expired, Timeouts::default()).await;
    assert_eq!(
        attempt.outcome,
        Outcome::ExpiredServerCertificate,
        "{attempt:?}"
    );
    assert!(attempt.detail.contains("expired on"), "{}", attempt.detail);
    assert!(attempt.tls.server_certificate.is_some());
}

#[tokio::test]
async fn wsb_times_out_a_webhook_that_hangs() {
    let pki = Pki::new();
    let short = Timeouts {
        connect: Duration::from_millis(300),
        response: Duration::from_millis(300),
    };
    let attempt = one_attempt(&pki, pki.receiver(Mode::Silent), short).await;
    assert_eq!(attempt.outcome, Outcome::ConnectTimeout, "{attempt:?}");
    assert!(
        attempt
            .detail
            .contains("did not complete the TCP connect and TLS handshake within 0.3 s"),
        "{}",
        attempt.detail
    );

    let attempt = one_attempt(&pki, pki.receiver(Mode::HangAfterHandshake), short).await;
    assert_eq!(attempt.outcome, Outcome::ResponseTimeout, "{attempt:?}");
    assert!(
        attempt.detail.contains("no complete answer within 0.3 s"),
        "{}",
        attempt.detail
    );
    assert!(attempt.tls.version.is_some(), "the handshake completed");
}

#[tokio::test]
async fn wsb_names_redirects_resets_and_garbage() {
    let pki = Pki::new();
    let timeouts = Timeouts::default();
    let redirect = Mode::Http(Arc::new(|_| (302, Some("https://elsewhere.test/hook"))));
    let attempt = one_attempt(&pki, pki.receiver(redirect), timeouts).await;
    assert_eq!(
        (attempt.outcome, attempt.status),
        (Outcome::Redirect, Some(302))
    );
    assert!(
        attempt
            .detail
            .contains("(Location: https://elsewhere.test/hook)"),
        "{}",
        attempt.detail
    );
    assert_eq!(attempt.state, DeliveryState::Failed);

    let attempt = one_attempt(&pki, pki.receiver(Mode::Reset), timeouts).await;
    assert_eq!(attempt.outcome, Outcome::Reset, "{attempt:?}");

    let attempt = one_attempt(&pki, pki.receiver(Mode::GarbageAfterHandshake), timeouts).await;
    assert_eq!(attempt.outcome, Outcome::NotHttp, "{attempt:?}");
    assert!(
        attempt.detail.contains("not HTTP/1.1"),
        "{}",
        attempt.detail
    );

    let attempt = one_attempt(&pki, pki.receiver(Mode::Plaintext), timeouts).await;
    assert_eq!(attempt.outcome, Outcome::NotTls, "{attempt:?}");
}

#[tokio::test]
async fn wsb_policy_decides_whether_a_4xx_is_retried_and_a_failed_message_replays() {
    let pki = Pki::new();
    let mut receiver = Receiver::start(pki.receiver(answer(404))).await;

    // STAR's intended rule: a 4xx is given up.
    let mut sender = Sender::start(&pki, receiver.addr, settings(RetryPolicy::ServerErrors)).await;
    let (message_id, delivery) = sender.send(CPR_A).await;
    let attempt = sender.attempt(delivery).await;
    assert_eq!(
        (attempt.outcome, attempt.state),
        (Outcome::ClientError, DeliveryState::Failed)
    );
    assert_eq!(attempt.next_retry, None);
    // Replay: a new delivery of the same message.
    let Replayed::Queued { delivery: replay } = sender.wsb.replay(delivery).await.expect("replay")
    else {
        panic!("a failed delivery replays as a new one");
    };
    assert_ne!(replay, delivery);
    let again = sender.attempt(replay).await;
    assert_eq!(
        (again.number, again.outcome, again.message_id),
        (1, Outcome::ClientError, message_id)
    );
    let stored = sender.stored(replay).await;
    assert_eq!(stored.replay_of, Some(delivery));
    assert_eq!(
        receiver.next().await.body["metadata"]["beskedId"],
        message_id.to_string()
    );
    assert_eq!(
        receiver.next().await.body["metadata"]["beskedId"],
        message_id.to_string()
    );
    sender.wsb.shutdown().await;

    // STAR's practice: the same 404 is retried.
    let mut sender = Sender::start(&pki, receiver.addr, settings(RetryPolicy::AllFailures)).await;
    let (_, delivery) = sender.send(CPR_A).await;
    let first = sender.attempt(delivery).await;
    assert_eq!(
        (first.outcome, first.state),
        (Outcome::ClientError, DeliveryState::Retrying)
    );
    let second = sender.attempt(delivery).await;
    assert_eq!(second.number, 2);
    sender.wsb.shutdown().await;
}

#[tokio::test]
async fn wsb_resumes_undelivered_deliveries_after_a_restart() {
    let pki = Pki::new();
    let recovered = Arc::new(AtomicBool::new(false));
    let flag = recovered.clone();
    let mode = Mode::Http(Arc::new(move |_| {
        if flag.load(Ordering::SeqCst) {
            (200, None)
        } else {
            (500, None)
        }
    }));
    let receiver = Receiver::start(pki.receiver(mode)).await;
    // A retry due 200 ms after the failure: the shutdown below comes before it.
    let slow = WsbSettings {
        backoff: Backoff {
            unit: Duration::from_millis(200),
            ..Backoff::default()
        },
        ..settings(RetryPolicy::ServerErrors)
    };
    let mut sender = Sender::start(&pki, receiver.addr, slow.clone()).await;
    let (_, delivery) = sender.send(CPR_A).await;
    assert_eq!(
        sender.attempt(delivery).await.state,
        DeliveryState::Retrying
    );
    sender.wsb.shutdown().await;
    let before = sender.stored(delivery).await;
    assert_eq!(before.state, DeliveryState::Retrying);

    recovered.store(true, Ordering::SeqCst);
    let Sender { path, _dir, .. } = sender;
    let mut restarted = Sender::open(&pki, receiver.addr, slow, path, _dir).await;
    assert_eq!(
        restarted.wsb.queue().undelivered,
        1,
        "resumed from the store"
    );
    let attempt = restarted.attempt(delivery).await;
    assert_eq!(attempt.state, DeliveryState::Delivered);
    assert_eq!(attempt.number, before.attempts + 1, "numbering continues");
    restarted.wsb.shutdown().await;
}

#[tokio::test]
async fn wsb_queue_is_bounded_and_a_full_queue_refuses_at_once() {
    let pki = Pki::new();
    let receiver = Receiver::start(pki.receiver(answer(500))).await;
    let mut sender = Sender::start(
        &pki,
        receiver.addr,
        WsbSettings {
            max_queue: 1,
            ..settings(RetryPolicy::AllFailures)
        },
    )
    .await;
    let (_, delivery) = sender.send(CPR_A).await;
    assert_eq!(
        sender.attempt(delivery).await.state,
        DeliveryState::Retrying
    );
    let message = Message::new(
        30000,
        JOBCENTER,
        Subject::Cpr(Cpr::try_from(CPR_B.to_owned()).expect("cpr")),
        ChangeType::Create,
    );
    let refused = sender.wsb.send(message.clone()).await.expect_err("full");
    assert!(
        matches!(
            refused,
            dfdg_mock::wsb::SendError::QueueFull { capacity: 1 }
        ),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("queue is full (1 undelivered"),
        "{refused}"
    );
    let queue = sender.wsb.queue();
    assert_eq!((queue.undelivered, queue.capacity), (1, 1));

    // Deleting the subscription drops the retrying delivery and frees its slot.
    let system: uuid::Uuid = SYSTEM.parse().expect("uuid");
    sender
        .wsb
        .sync(&[system], &subscriptions(&[]))
        .await
        .expect("delete all");
    sender
        .event("the drop", |e| {
            matches!(e, WsbEvent::Dropped { .. }).then_some(())
        })
        .await;
    assert_eq!(sender.wsb.queue().undelivered, 0);
    let sent = sender
        .wsb
        .send(message)
        .await
        .expect("no subscription, no delivery");
    assert!(sent.deliveries.is_empty());
    sender.wsb.shutdown().await;
}

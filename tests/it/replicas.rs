//! Several replicas on one PostgreSQL journal, each in its own throw-away cluster: what one
//! replica takes, the others' admin API, live feed and CLI show; the database going away mid-load
//! is answered with fault 1011 and recovered from without a restart; a replica killed with
//! SIGKILL under load loses none of the calls it acknowledged.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use dfdg_mock::identity::CallerIdentity;
use dfdg_mock::journal::{Database, JournalReader};

use crate::pg::Cluster;
use crate::support::*;

const ACTION: &str = "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment";
const BINARY: &str = env!("CARGO_BIN_EXE_dfdg-mock");

/// Bounds every wait for something to happen.
const WAIT: Duration = Duration::from_secs(60);

async fn replica(pki: &Pki, database: &Arc<Database>, name: &str) -> TestServer {
    TestServer::start_with(
        pki,
        Options {
            database: Some(Arc::clone(database)),
            replica: Some(name.to_owned()),
            admin: Some(AdminOptions::loopback()),
            ..Options::default()
        },
    )
    .await
}

fn call_id(reply: &Reply) -> i64 {
    reply.headers["x-dfdg-mock-call-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_taken_by_one_replica_shows_on_the_other_with_its_confirmation_and_onboarding() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.create("journal");
    let database: Arc<Database> = Arc::new(url.parse().unwrap());
    let pki = Pki::new();
    let a = replica(&pki, &database, "replica-a").await;
    let b = replica(&pki, &database, "replica-b").await;
    let mut feed_a = Events::open(a.admin()).await;
    let mut feed_b = Events::open(b.admin()).await;

    let certificate = pki.oces3_client();
    let caller_id = CallerIdentity::from_der(&certificate.cert_der)
        .unwrap()
        .caller_id;
    let reply = pki
        .client_with(Some(&certificate))
        .soap11(a.addr, ACTION, &registration(&caller_id))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = call_id(&reply);
    let guid = element_text(&reply.body, "MessageIdentifier")
        .unwrap()
        .to_owned();

    // B's live feed shows the call A took, and B's API has it with its receipt.
    let event = feed_b.next("call").await;
    assert_eq!(event, format!("data: {{\"id\":{id}}}"));
    let calls = admin_json(b.admin(), "/api/calls").await;
    assert_eq!(calls["calls"][0]["id"], id, "{calls}");
    assert_eq!(calls["calls"][0]["caller_id"], caller_id.as_str());
    let detail = admin_json(b.admin(), &format!("/api/calls/{id}")).await;
    assert_eq!(detail["receipts"][0]["guid"], guid.as_str(), "{detail}");
    assert_eq!(detail["receipts"][0]["confirmed"], false);
    let callers = admin_json(b.admin(), "/api/callers").await;
    assert_eq!(callers["callers"][0]["caller_id"], caller_id.as_str());

    // Confirmed through B: A's feed and API show the confirmation, and the onboarding status
    // of both is complete.
    let confirmed = admin_request(
        b.admin(),
        "POST",
        &format!("/api/receipts/{guid}/confirm"),
        None,
        Some("{\"note\": \"via replica B\"}"),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    // The other replicas' commits reach A in commit order, so A's own call, were it announced
    // back through the database, would come before B's confirmation of it.
    let mut calls_on_a = Vec::new();
    let event = loop {
        match feed_a.line().await.as_str() {
            "event: call" => calls_on_a.push(feed_a.line().await),
            "event: confirmation" => break feed_a.line().await,
            _ => {}
        }
    };
    assert!(
        event.contains(&guid) && event.contains(&id.to_string()),
        "{event}"
    );
    assert_eq!(
        calls_on_a,
        [format!("data: {{\"id\":{id}}}")],
        "A shows its own call once, not again through the database"
    );
    let detail = admin_json(a.admin(), &format!("/api/calls/{id}")).await;
    assert_eq!(detail["receipts"][0]["confirmed"], true, "{detail}");
    for server in [&a, &b] {
        let status = admin_json(server.admin(), "/api/suppliers").await;
        assert_eq!(status["suppliers"][0]["complete"], true, "{status}");
        let ready = admin_request(server.admin(), "GET", "/health/ready", None, None).await;
        assert_eq!(ready.status, 200, "{}", ready.body);
    }

    // Each replica's /metrics counts what it answered itself, labelled with its name.
    let metrics = admin_request(a.admin(), "GET", "/metrics", None, None).await;
    assert!(
        metrics
            .body
            .contains("dfdg_mock_calls_total{replica=\"replica-a\",service="),
        "{}",
        metrics.body
    );
    let metrics = admin_request(b.admin(), "GET", "/metrics", None, None).await;
    assert!(
        metrics
            .body
            .contains("dfdg_mock_journal_available{replica=\"replica-b\"} 1")
            && !metrics.body.contains("dfdg_mock_calls_total{"),
        "{}",
        metrics.body
    );

    // The command line reads the same database.
    let calls = Command::new(BINARY)
        .args(["calls", "--json", "--journal-url", &url])
        .output()
        .unwrap();
    assert!(calls.status.success(), "{calls:?}");
    let line: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&calls.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["id"], id);
    let status = Command::new(BINARY)
        .args(["onboarding", "status", "--journal-url", &url])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "onboarding complete: {}{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    drop((a, b));
}

/// Clients calling `addr` in a loop until `stop`; the outcome of every call.
struct Load {
    acknowledged: Mutex<Vec<(i64, String)>>,
    refused: Mutex<Vec<Reply>>,
    failed: Mutex<Vec<String>>,
    /// How many calls were acknowledged and refused so far, for waiting on.
    counts: watch::Sender<Counts>,
    stop: AtomicBool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    acknowledged: usize,
    refused: usize,
}

impl Load {
    fn start(
        pki: &Pki,
        addr: std::net::SocketAddr,
        workers: usize,
    ) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
        let load = Arc::new(Load {
            acknowledged: Mutex::default(),
            refused: Mutex::default(),
            failed: Mutex::default(),
            counts: watch::Sender::new(Counts::default()),
            stop: AtomicBool::new(false),
        });
        let certificate = pki.oces3_client();
        let caller_id = CallerIdentity::from_der(&certificate.cert_der)
            .unwrap()
            .caller_id;
        let tasks = (0..workers)
            .map(|_| {
                let (load, client) = (Arc::clone(&load), pki.client_with(Some(&certificate)));
                let request = registration(&caller_id);
                tokio::spawn(async move {
                    while !load.stop.load(Ordering::Relaxed) {
                        match client.soap11(addr, ACTION, &request).await {
                            Ok(reply) if reply.status == 200 => {
                                let guid = element_text(&reply.body, "MessageIdentifier")
                                    .unwrap_or_default()
                                    .to_owned();
                                load.acknowledged
                                    .lock()
                                    .unwrap()
                                    .push((call_id(&reply), guid));
                                load.counts.send_modify(|counts| counts.acknowledged += 1);
                            }
                            Ok(reply) => {
                                load.refused.lock().unwrap().push(reply);
                                load.counts.send_modify(|counts| counts.refused += 1);
                            }
                            Err(error) => {
                                load.failed.lock().unwrap().push(error);
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        (load, tasks)
    }

    fn acknowledged(&self) -> usize {
        self.counts.borrow().acknowledged
    }

    /// Waits (bounded) until the counts satisfy `condition`.
    async fn until(&self, what: &str, condition: impl Fn(&Counts) -> bool) {
        let mut counts = self.counts.subscribe();
        let waited = tokio::time::timeout(WAIT, counts.wait_for(|counts| condition(counts))).await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "timed out waiting until {what}: {:?}",
            *self.counts.borrow()
        );
    }

    async fn stop(&self, tasks: Vec<tokio::task::JoinHandle<()>>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in tasks {
            tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        }
    }
}

/// Every acknowledged call is in the journal, with the receipt its caller got.
async fn assert_all_journaled(server: &TestServer, acknowledged: Vec<(i64, String)>) {
    let count = acknowledged.len();
    let missing = server
        .readers
        .read(move |reader| {
            let mut missing = Vec::new();
            for (id, guid) in &acknowledged {
                match reader.call(*id)? {
                    Some(call) if call.record.receipts.contains(guid) => {}
                    other => missing.push((*id, other.map(|c| c.record.receipts))),
                }
            }
            Ok(missing)
        })
        .await
        .unwrap();
    assert!(
        missing.is_empty(),
        "{} of {count} acknowledged calls are not journaled as answered: {missing:?}",
        missing.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_mid_load_gets_fault_1011_and_the_replica_recovers_by_itself() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let database: Arc<Database> = Arc::new(cluster.database("journal"));
    let pki = Pki::new();
    let server = replica(&pki, &database, "replica-a").await;
    let (load, tasks) = Load::start(&pki, server.addr, 8);
    load.until("calls are answered", |counts| counts.acknowledged >= 50)
        .await;

    cluster.kill();
    load.until("a call is refused", |counts| counts.refused > 0)
        .await;
    let ready = admin_request(server.admin(), "GET", "/health/ready", None, None).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let live = admin_request(server.admin(), "GET", "/health/live", None, None).await;
    assert_eq!(live.status, 200, "the replica stays up");
    let before_restart = load.acknowledged();

    cluster.restart();
    // No restart of the replica, no call to wake it: the callers' next calls find the
    // database back.
    load.until("calls are answered again", |counts| {
        counts.acknowledged >= before_restart + 50
    })
    .await;
    load.stop(tasks).await;
    let ready = admin_request(server.admin(), "GET", "/health/ready", None, None).await;
    assert_eq!(ready.status, 200, "ready again: {}", ready.body);

    let refused = std::mem::take(&mut *load.refused.lock().unwrap());
    assert!(!refused.is_empty());
    for reply in &refused {
        assert_eq!(reply.status, 500, "{}", reply.body);
        assert!(reply.body.contains("1011"), "{}", reply.body);
        assert!(
            !reply.body.contains("MessageIdentifier"),
            "no receipt: {}",
            reply.body
        );
        assert!(reply.headers.get("x-dfdg-mock-call-id").is_none());
    }
    let failed = load.failed.lock().unwrap().len();
    assert_eq!(
        failed,
        0,
        "every call got an answer: {:?}",
        load.failed.lock().unwrap()
    );
    let acknowledged = std::mem::take(&mut *load.acknowledged.lock().unwrap());
    eprintln!(
        "database restart mid-load: {} calls acknowledged, {} answered with fault 1011",
        acknowledged.len(),
        refused.len()
    );
    assert_all_journaled(&server, acknowledged).await;
}

/// The test PKI's CA, server certificate and key as files in `dir`, for `serve --cert`.
fn write_pki(pki: &Pki, dir: &std::path::Path) {
    for (name, pem) in [
        ("ca.crt", pki.ca.cert_pem()),
        ("server.crt", pki.server.cert_pem.as_str()),
        ("server.key", pki.server.key_pem()),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
}

/// `dfdg-mock serve` on ports of its own with the test PKI and `args`; its SOAP address.
fn serve(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = spawn_serve(dir, args, env);
    let addr = address(&mut child);
    (child, addr)
}

/// `dfdg-mock serve` started, its output piped.
fn spawn_serve(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    Command::new(BINARY)
        .envs(env.iter().copied())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--cert",
            "server.crt",
            "--key",
            "server.key",
            "--client-ca",
            "ca.crt",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The SOAP address from the banner's first line (read when the server is started; its later
/// output is read and dropped).
fn address(child: &mut std::process::Child) -> std::net::SocketAddr {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    let port: u16 = first
        .split("https://localhost:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_name_the_replica_and_each_call_its_id_and_caller() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    write_pki(&pki, dir.path());
    let (mut child, addr) = serve(
        dir.path(),
        &["--log-format", "json", "--replica", "mock-7"],
        &[("DFDG_MOCK_LOG", "info,dfdg_mock::app=debug")],
    );
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let certificate = pki.oces3_client();
    let caller_id = CallerIdentity::from_der(&certificate.cert_der)
        .unwrap()
        .caller_id;
    let reply = pki
        .client_with(Some(&certificate))
        .soap11(addr, ACTION, &registration(&caller_id))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let id = call_id(&reply);
    let lines = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in stderr.lines() {
            let line = line.unwrap();
            let done = line.contains("\"call_id\"");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let lines = tokio::task::spawn_blocking(move || lines.join().unwrap())
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lines.len() >= 2, "{lines:?}");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(object["replica"], "mock-7", "{line}");
        assert!(
            object["time"].is_string() && object["level"].is_string(),
            "{line}"
        );
    }
    let call: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(call["call_id"], id, "{call}");
    assert_eq!(call["caller_id"], caller_id.as_str(), "{call}");
    assert_eq!(call["message"], "call", "{call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_acknowledged_call() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.create("journal");
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    write_pki(&pki, dir.path());
    let (mut child, addr) = serve(
        dir.path(),
        &["--journal-url", &url, "--replica", "doomed"],
        &[],
    );
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || stderr.lines().for_each(drop));

    let (load, tasks) = Load::start(&pki, addr, 16);
    load.until("the replica answers under load", |counts| {
        counts.acknowledged >= 300
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    load.stop(tasks).await;

    let acknowledged = std::mem::take(&mut *load.acknowledged.lock().unwrap());
    let unique: BTreeSet<i64> = acknowledged.iter().map(|(id, _)| *id).collect();
    assert_eq!(unique.len(), acknowledged.len(), "ids are unique");
    eprintln!(
        "kill -9 under load: {} calls acknowledged before the replica died, {} failed after",
        acknowledged.len(),
        load.failed.lock().unwrap().len()
    );
    // The surviving replica sees every one of them.
    let survivor = replica(&pki, &Arc::new(url.parse().unwrap()), "survivor").await;
    assert_all_journaled(&survivor, acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let location = cluster.journal("journal");
    let settings = dfdg_mock::journal::Settings {
        location: location.clone(),
        retention: dfdg_mock::journal::Retention::default(),
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || dfdg_mock::journal::open(&settings))
        })
        .collect();
    for start in starts {
        let opened = start
            .await
            .unwrap()
            .unwrap_or_else(|error| panic!("{error:#}"));
        opened.journal.close().await.unwrap();
    }
    assert_eq!(
        cluster.psql(
            "journal",
            "SELECT count(*), max(version) FROM dfdg_mock.schema_version"
        ),
        format!(
            "1|{}",
            dfdg_mock::journal::postgres::POSTGRES_SCHEMA_VERSION
        )
    );
    cluster.psql(
        "journal",
        "UPDATE dfdg_mock.schema_version SET version = 99",
    );
    let error = dfdg_mock::journal::open(&settings).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("schema version 99, newer than this dfdg-mock understands"),
        "{message}"
    );
    // The command line says the same, and never shows a password.
    let output = Command::new(BINARY)
        .args(["calls", "--journal-url"])
        .arg(format!("{location}"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("newer than this dfdg-mock"),
        "{stderr}"
    );
    let output = Command::new(BINARY)
        .args(["calls", "--journal-url"])
        .arg(format!(
            "postgres://dfdg:s3cret@127.0.0.1:{}/absent",
            cluster.port
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("postgres://dfdg:***@127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_before_its_database_waits_for_it_and_then_serves() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.create("journal");
    cluster.kill();
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    write_pki(&pki, dir.path());
    let with_password = url.replace("dfdg@", "dfdg:s3cret@");
    let mut child = spawn_serve(dir.path(), &["--journal-url", &with_password], &[]);

    // It says it is waiting (password masked), and keeps trying.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (waiting, said) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut waiting = Some(waiting);
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("waiting for the journal database") {
                if let Some(waiting) = waiting.take() {
                    let _ = waiting.send(line);
                }
            }
        }
    });
    let line = tokio::time::timeout(WAIT, said)
        .await
        .expect("a warning that it waits for the database")
        .unwrap();
    assert!(
        line.contains("dfdg:***@127.0.0.1") && !line.contains("s3cret"),
        "{line}"
    );

    // The database comes up: the replica starts and answers.
    cluster.restart();
    let addr = tokio::task::spawn_blocking(move || {
        let addr = address(&mut child);
        (child, addr)
    })
    .await
    .unwrap();
    let (mut child, addr) = addr;
    let certificate = pki.oces3_client();
    let caller_id = CallerIdentity::from_der(&certificate.cert_der)
        .unwrap()
        .caller_id;
    let reply = pki
        .client_with(Some(&certificate))
        .soap11(addr, ACTION, &registration(&caller_id))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        cluster.psql("journal", "SELECT count(*) FROM dfdg_mock.calls"),
        "1"
    );
}

//! The binary as a user meets it: first start on a fresh folder, the printed curl call, `calls`,
//! `pki client` with its PKCS#12 bundle opened by openssl, and a clean stop on SIGTERM.
//! Needs curl and openssl on the PATH (`cargo xtask test` installs them when missing).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_dfdg-mock");

fn dfdg_mock(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BINARY)
        .args(args)
        .current_dir(dir)
        .env_remove("DFDG_MOCK_LOG")
        .output()
        .unwrap()
}

/// The catalog shipped in the repository.
fn shipped_wsdl() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl")
}

/// Kills the server if a test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn first_start_prints_a_curl_call_that_works_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Running(
        Command::new(BINARY)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--validation",
                "enforce",
            ])
            .arg("--wsdl")
            .arg(shipped_wsdl())
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut banner = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        let done = line.contains("dfdg-mock calls");
        banner.push(line);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(banner.contains("created a test PKI in certs"), "{banner}");
    assert!(banner.contains("serving 4 services from"), "{banner}");
    for file in [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "demo-client.crt",
        "demo-client.key",
        "demo-client-java.p12",
        "demo-client-dotnet.p12",
    ] {
        assert!(
            dir.path().join("certs").join(file).exists(),
            "{file} missing"
        );
    }
    #[cfg(unix)]
    for key in ["ca.key", "server.key", "demo-client.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("certs").join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    assert!(!banner.contains("PRIVATE KEY"));

    // The curl command exactly as printed: from "curl" to the line without a continuation.
    let start = banner.find("curl ").expect("no curl command in the banner");
    let command: String = banner[start..]
        .lines()
        .scan(true, |more, line| {
            let take = *more;
            *more = line.trim_end().ends_with('\\');
            take.then(|| line.to_owned())
        })
        .collect::<Vec<_>>()
        .join("\n");
    let output = Command::new("bash")
        .args(["-c", &format!("{command} --silent --show-error")])
        .current_dir(dir.path())
        .output()
        .expect("bash");
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "curl failed: {}\n{command}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(answer.contains("<MessageIdentifier>"), "{answer}");

    let calls = dfdg_mock(dir.path(), &["calls"]);
    let table = String::from_utf8_lossy(&calls.stdout);
    assert!(
        calls.status.success(),
        "{}",
        String::from_utf8_lossy(&calls.stderr)
    );
    assert!(table.contains("CVR:91234567-UUID:"), "{table}");
    assert!(table.contains("SaveAvailabilityAssessment"), "{table}");
    assert!(table.contains("receipt"), "{table}");

    let json = dfdg_mock(dir.path(), &["calls", "--json", "--caller", "91234567"]);
    let line = String::from_utf8_lossy(&json.stdout);
    let call: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(call["outcome"]["kind"], "receipt");
    assert_eq!(call["service"], "JobcenterMessageService");
    assert_eq!(call["service_operation"], "SaveAvailabilityAssessment");

    // The admin listener started with it and shows the same call.
    let admin = banner
        .lines()
        .find_map(|line| line.strip_prefix("admin: dashboard "))
        .and_then(|rest| rest.split('/').nth(2))
        .expect("no admin address in the banner")
        .to_owned();
    let calls = Command::new("curl")
        .args(["--silent", "--show-error", "--fail"])
        .arg(format!("http://{admin}/api/calls"))
        .output()
        .unwrap();
    assert!(
        calls.status.success(),
        "{}",
        String::from_utf8_lossy(&calls.stderr)
    );
    let calls: serde_json::Value = serde_json::from_slice(&calls.stdout).unwrap();
    assert_eq!(calls["calls"][0]["operation"], "SaveAvailabilityAssessment");

    sigterm(&server.0);
    let status = server.0.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");

    // Second start: the PKI is reused, not regenerated.
    let before = std::fs::read(dir.path().join("certs/ca.crt")).unwrap();
    let mut again = Running(
        Command::new(BINARY)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(again.0.stdout.take().unwrap()).lines();
    let first_line = lines.next().unwrap().unwrap();
    // Keep reading, so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    assert!(
        first_line.contains("listening on https://localhost:"),
        "{first_line}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("certs/ca.crt")).unwrap(),
        before
    );
    sigterm(&again.0);
    assert!(again.0.wait().unwrap().success());
}

#[test]
fn pki_client_writes_a_pkcs12_that_openssl_opens_with_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let init = dfdg_mock(dir.path(), &["pki", "init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );

    let issued = dfdg_mock(
        dir.path(),
        &[
            "pki",
            "client",
            "--out",
            "supplier",
            "--name",
            "Fagsystem Test",
            "--cvr",
            "98765432",
            "--oces2",
            "fid",
            "--number",
            "1234",
        ],
    );
    let text = String::from_utf8_lossy(&issued.stdout);
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    assert!(text.contains("caller id CVR:98765432-FID:1234"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let password = text
        .lines()
        .find_map(|l| l.split("(shown once): ").nth(1))
        .expect("no password printed")
        .trim()
        .to_owned();

    // Both PKCS#12 files, each named for what opens it, open with the printed password.
    for p12 in ["certs/supplier-java.p12", "certs/supplier-dotnet.p12"] {
        assert!(text.contains(&format!("PKCS#12:     {p12} (")), "{text}");
        let info = Command::new("openssl")
            .args(["pkcs12", "-info", "-nokeys", "-in", p12, "-passin"])
            .arg(format!("pass:{password}"))
            .current_dir(dir.path())
            .output()
            .expect("openssl is needed for this test");
        let shown = String::from_utf8_lossy(&info.stdout);
        assert!(
            info.status.success(),
            "{p12}: {}",
            String::from_utf8_lossy(&info.stderr)
        );
        assert!(shown.contains("CVR:98765432-FID:1234"), "{shown}");

        let wrong = Command::new("openssl")
            .args(["pkcs12", "-info", "-nokeys", "-in", p12])
            .args(["-passin", "pass:wrong"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!wrong.status.success(), "{p12}");
    }

    // Without --force nothing is overwritten.
    let again = dfdg_mock(dir.path(), &["pki", "client", "--out", "supplier"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn a_broken_config_file_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("dfdg-mock.toml"),
        "listen = \"127.0.0.1:0\"\n[limits]\nmax_bdy = 5\n",
    )
    .unwrap();
    let output = dfdg_mock(dir.path(), &["serve"]);
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        error.contains("dfdg-mock.toml:3:1: unknown field `max_bdy`"),
        "{error}"
    );
}

#[test]
fn calls_without_a_journal_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = dfdg_mock(dir.path(), &["calls"]);
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(error.contains("start `dfdg-mock serve` first"), "{error}");
}

#[test]
fn serve_refuses_an_exposed_admin_listener_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BINARY)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "0.0.0.0:0",
        ])
        .current_dir(dir.path())
        .env_remove("DFDG_MOCK_ADMIN_TOKEN")
        .env_remove("DFDG_MOCK_ADMIN_TOKEN_FILE")
        .output()
        .unwrap();
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        error.contains("would be reachable from other machines without a token"),
        "{error}"
    );
}

#[test]
fn serve_with_a_token_file_guards_the_admin_listener_and_stops_with_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "cli-test-token\n").unwrap();
    let mut server = Running(
        Command::new(BINARY)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "0.0.0.0:0",
                "--admin-token-file",
                "token",
            ])
            .current_dir(dir.path())
            .env_remove("DFDG_MOCK_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let admin_line = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.starts_with("admin: "))
        .expect("no admin line in the banner");
    std::thread::spawn(move || lines.for_each(drop));
    assert!(
        admin_line.contains("(bearer token required)"),
        "{admin_line}"
    );
    let port = admin_line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|address| address.rsplit(':').next())
        .unwrap()
        .to_owned();
    let status = |token: Option<&str>| {
        let mut curl = Command::new("curl");
        curl.args([
            "--silent",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
        ]);
        if let Some(token) = token {
            curl.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        let output = curl
            .arg(format!("http://127.0.0.1:{port}/api/calls"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert_eq!(status(None), "401");
    assert_eq!(status(Some("wrong")), "401");
    assert_eq!(status(Some("cli-test-token")), "200");
    sigterm(&server.0);
    assert!(server.0.wait().unwrap().success());
}

#[test]
fn check_reports_every_problem_with_its_position_and_passes_the_shipped_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("broken.toml"),
        "[[rule]]\nname = \"x\"\nwhen.caller = { cvn = \"1\" }\nrespond.connection = \"rest\"\n",
    )
    .unwrap();
    let output = dfdg_mock(dir.path(), &["check", "--scenarios", "rules"]);
    // `check` lists problems on stdout and ends with a summary on stderr.
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success());
    assert!(stderr.contains("rules/broken.toml:3:"), "{stderr}");
    assert!(stderr.contains("did you mean \"cvr\""), "{stderr}");
    assert!(stderr.contains("rules/broken.toml:4:"), "{stderr}");
    assert!(stderr.contains("did you mean \"reset\""), "{stderr}");

    // A server does not start on broken rules.
    let output = dfdg_mock(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--scenarios", "rules"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("rules/broken.toml:3:"), "{stderr}");
    assert!(
        !dir.path().join("certs").exists(),
        "nothing is written before the rules load"
    );

    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let output = dfdg_mock(
        dir.path(),
        &["check", "--scenarios", shipped.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("onboarding.toml"), "{stdout}");
}

#[test]
fn sighup_reloads_the_scenarios_and_starts_sequences_over() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut server = Running(
        Command::new(BINARY)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--scenarios",
            ])
            .arg(&shipped)
            .current_dir(dir.path())
            .env("DFDG_MOCK_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let first = stdout.next().unwrap().unwrap();
    let url = first
        .split_whitespace()
        .find(|word| word.starts_with("https://"))
        .unwrap()
        .to_owned();
    // Keep reading stdout in the background so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in stdout {});
    let mut log = BufReader::new(server.0.stderr.take().unwrap()).lines();

    std::fs::write(
        dir.path().join("lookup.xml"),
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetVariablePersonStatus xmlns="urn:dfdg-mock:PersonStatusService:20"><CivilRegistrationIdentifier>0101709990</CivilRegistrationIdentifier></GetVariablePersonStatus></soap:Body></soap:Envelope>"#,
    )
    .unwrap();
    let call = || {
        let output = Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--cacert",
                "certs/ca.crt",
                "--cert",
                "certs/demo-client.crt",
                "--key",
                "certs/demo-client.key",
                "-H",
                "Content-Type: text/xml; charset=utf-8",
                "--data-binary",
                "@lookup.xml",
            ])
            .arg(format!(
                "{url}/PersonStatusService/20/PersonStatusService.svc"
            ))
            .current_dir(dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(call().contains("<ErrorCode>1011</ErrorCode>"));
    assert!(call().contains("<MessageIdentifier>"));

    let status = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The server logs the reload once it is in force.
    let reloaded = log
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("scenarios reloaded"));
    assert!(reloaded, "the server stopped without logging a reload");
    std::thread::spawn(move || for _ in log {});
    assert!(call().contains("<ErrorCode>1011</ErrorCode>"));

    sigterm(&server.0);
    assert!(server.0.wait().unwrap().success());
}

#[test]
fn check_passes_on_the_shipped_catalog_and_fails_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = shipped_wsdl();
    let output = dfdg_mock(dir.path(), &["check", "--wsdl", shipped.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("catalog: 4 WSDL file(s), 4 endpoint(s), 6 operation(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("GetBorgerstatus [read]"), "{stdout}");

    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("Bad.wsdl"),
        "<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\" xmlns:tns=\"urn:t\" targetNamespace=\"urn:t\">\n\
         <wsdl:portType name=\"P\"/>\n\
         <wsdl:binding name=\"B\" type=\"tns:P\"><soap:binding xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\"/>\n\
         <wsdl:operation name=\"Missing\"/></wsdl:binding>\n\
         <wsdl:service name=\"S\"><wsdl:port name=\"P\" binding=\"tns:B\"><soap:address xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\" location=\"/s.svc\"/></wsdl:port></wsdl:service>\n\
         </wsdl:definitions>\n",
    )
    .unwrap();
    std::fs::write(broken.join("NotXml.wsdl"), "<a>\n<b>\n</a>\n").unwrap();
    let output = dfdg_mock(
        dir.path(),
        &[
            "check",
            "--wsdl",
            shipped.to_str().unwrap(),
            "--wsdl",
            broken.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("Bad.wsdl:4: binding operation Missing is not in portType {urn:t}P"),
        "{stdout}"
    );
    assert!(stdout.contains("NotXml.wsdl:3:"), "{stdout}");
    assert!(
        stdout.contains("catalog: 4 WSDL file(s)"),
        "the others still load: {stdout}"
    );
    assert!(stderr.contains("check found 2 problems"), "{stderr}");
}

/// Calls answered while the server is killed with SIGKILL: every call acknowledged with 200 is
/// in the journal, with the receipt its caller got (each is committed before it is answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_call() {
    use crate::support::{element_text, registration, Pki};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path();
    std::fs::write(files.join("ca.crt"), pki.ca.cert_pem()).unwrap();
    std::fs::write(files.join("server.crt"), &pki.server.cert_pem).unwrap();
    std::fs::write(files.join("server.key"), pki.server.key_pem()).unwrap();
    let mut server = Running(
        Command::new(BINARY)
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
            .args([
                "--journal",
                "journal.sqlite",
                "--suppliers",
                "suppliers.toml",
            ])
            .current_dir(files)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let port: u16 = first
        .split("https://localhost:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // Eight callers, each calling until the server is gone, remembering what was acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let client = Arc::new(pki.client_with(Some(&pki.oces3_client())));
    let mut callers = Vec::new();
    for _ in 0..8 {
        let (client, acknowledged, count, enough) = (
            client.clone(),
            acknowledged.clone(),
            count.clone(),
            enough.clone(),
        );
        callers.push(tokio::spawn(async move {
            let body = registration("CVR:91234567-UUID:3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13");
            while let Ok(reply) = client
                .soap11(addr, "urn:x#SaveAvailabilityAssessment", &body)
                .await
            {
                if reply.status != 200 {
                    continue;
                }
                let id: i64 = reply.headers["x-dfdg-mock-call-id"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let receipt = element_text(&reply.body, "MessageIdentifier")
                    .unwrap()
                    .to_owned();
                acknowledged.lock().unwrap().push((id, receipt));
                if count.fetch_add(1, Ordering::Relaxed) + 1 == 200 {
                    enough.notify_one();
                }
            }
        }));
    }
    // Kill it mid-load: once 200 calls were acknowledged, with the callers still calling.
    tokio::time::timeout(std::time::Duration::from_secs(60), enough.notified())
        .await
        .expect("200 calls not answered within 60 s");
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for caller in callers {
        caller.await.unwrap();
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 200);
    let store =
        dfdg_mock::journal::SqliteStore::open_read_only(&files.join("journal.sqlite")).unwrap();
    for (id, receipt) in &acknowledged {
        use dfdg_mock::journal::JournalReader;
        let call = store
            .call(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged call {id} is not in the journal"));
        assert_eq!(
            call.record.receipts,
            std::slice::from_ref(receipt),
            "call {id}"
        );
    }
}

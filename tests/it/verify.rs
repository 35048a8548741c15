//! `dfdg-mock verify` as CI runs it: expectations passing and failing against the journal
//! file and through the admin listener, exit codes 0/1, near misses on failure, and the JUnit
//! XML report parsed back; a broken expectations file names its line and column.

use std::path::Path;
use std::process::{Command, Output};

use quick_xml::events::Event;
use quick_xml::XmlVersion;

use crate::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_dfdg-mock");
const ACTION: &str = "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment";

/// Runs the binary off the async runtime's threads, so the in-process server keeps serving.
async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BINARY)
            .args(args)
            .env_remove("DFDG_MOCK_ADMIN_TOKEN")
            .env_remove("DFDG_MOCK_ADMIN_TOKEN_FILE")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// A journal with one good registration from the OCES3 caller, one malformed call (fault 1014)
/// from the same caller, and one SOAP 1.2 lookup from the OCES2 caller.
async fn server_with_calls(pki: &Pki) -> TestServer {
    let server = TestServer::with_admin(pki).await;
    let oces3 = pki.client_with(Some(&pki.oces3_client()));
    let caller_id = format!("CVR:{CVR}-UUID:{OCES3_UUID}");
    let good = oces3
        .soap11(server.addr, ACTION, &registration(&caller_id))
        .await
        .unwrap();
    assert_eq!(good.status, 200);
    let bad = oces3
        .soap11(server.addr, ACTION, "<soap:Envelope")
        .await
        .unwrap();
    assert_eq!(bad.status, 400);
    let lookup = pki
        .client_with(Some(&pki.oces2_client()))
        .soap12(server.addr, "urn:x#GetBorgerstatus", &soap12_lookup())
        .await
        .unwrap();
    assert_eq!(lookup.status, 200);
    server
}

/// What a JUnit report says: (tests, failures) of the suite, test case names, and failure
/// messages with their texts.
struct Junit {
    tests: usize,
    failures: usize,
    cases: Vec<String>,
    failed: Vec<(String, String)>,
}

fn parse_junit(path: &Path) -> Junit {
    let xml = std::fs::read_to_string(path).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut junit = Junit {
        tests: 0,
        failures: 0,
        cases: Vec::new(),
        failed: Vec::new(),
    };
    let attribute = |element: &quick_xml::events::BytesStart<'_>, name: &str| -> String {
        element
            .try_get_attribute(name)
            .unwrap()
            .unwrap_or_else(|| panic!("no {name} attribute"))
            .normalized_value(XmlVersion::Implicit1_0)
            .unwrap()
            .into_owned()
    };
    let mut in_failure = false;
    loop {
        match reader.read_event().unwrap() {
            Event::Start(element) | Event::Empty(element) => match element.name().as_ref() {
                "testsuite" => {
                    junit.tests = attribute(&element, "tests").parse().unwrap();
                    junit.failures = attribute(&element, "failures").parse().unwrap();
                }
                "testcase" => junit.cases.push(attribute(&element, "name")),
                "failure" => {
                    junit
                        .failed
                        .push((attribute(&element, "message"), String::new()));
                    in_failure = true;
                }
                _ => {}
            },
            Event::Text(text) if in_failure => {
                if let Some((_, body)) = junit.failed.last_mut() {
                    body.push_str(&text.xml10_content());
                }
            }
            Event::End(element) if element.name().as_ref() == "failure" => in_failure = false,
            Event::Eof => break,
            _ => {}
        }
    }
    junit
}

const PASSING: &str = r#"
[[expect]]
name = "the supplier's registration arrived with the right identity"
at_least = 1
caller_id = "CVR:91234567-UUID:3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13"
operation = "SaveAvailabilityAssessment"
outcome = "receipt"
identity_check = true

[[expect]]
exactly = 1
outcome = "fault 1014"

[[expect]]
name = "nothing deleted"
at_most = 0
operation = "DeleteEverything"
"#;

const FAILING: &str = r#"
[[expect]]
name = "two registrations"
exactly = 2
caller_id = "CVR:91234567-UUID:3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13"
operation = "SaveAvailabilityAssessment"

[[expect]]
name = "lookups over SOAP 1.2"
at_least = 1
service = "JobnetCitizenStatusService"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_and_writes_a_junit_report_without_failures() {
    let pki = Pki::new();
    let server = server_with_calls(&pki).await;
    let folder = tempfile::tempdir().unwrap();
    let expect = folder.path().join("expect.toml");
    std::fs::write(&expect, PASSING).unwrap();
    let junit = folder.path().join("junit.xml");
    let output = run(vec![
        "verify".into(),
        "--expect".into(),
        expect.display().to_string(),
        "--journal".into(),
        server.journal_path.display().to_string(),
        "--junit".into(),
        junit.display().to_string(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("3 of 3 expectations passed (3 calls examined)"),
        "{stdout}"
    );
    let report = parse_junit(&junit);
    assert_eq!((report.tests, report.failures), (3, 0));
    assert_eq!(
        report.cases,
        [
            "the supplier's registration arrived with the right identity",
            "exactly 1 calls with outcome=fault 1014",
            "nothing deleted"
        ]
    );
    assert!(report.failed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_with_near_misses_in_the_output_and_the_junit_report() {
    let pki = Pki::new();
    let server = server_with_calls(&pki).await;
    let fault_id = server
        .journal()
        .calls
        .iter()
        .find(|call| call.record.http_status == 400)
        .unwrap()
        .id;
    let folder = tempfile::tempdir().unwrap();
    let expect = folder.path().join("expect.toml");
    std::fs::write(&expect, FAILING).unwrap();
    let junit = folder.path().join("junit.xml");
    let output = run(vec![
        "verify".into(),
        "--expect".into(),
        expect.display().to_string(),
        "--journal".into(),
        server.journal_path.display().to_string(),
        "--junit".into(),
        junit.display().to_string(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("FAIL  two registrations"), "{stdout}");
    assert!(
        stdout.contains("expected exactly 2 matching calls, found 1"),
        "{stdout}"
    );
    // The malformed call matched everything but the operation.
    assert!(
        stdout.contains(&format!("call {fault_id} at "))
            && stdout.contains("operation is \"(none)\", expected \"SaveAvailabilityAssessment\""),
        "{stdout}"
    );
    assert!(stdout.contains("PASS  lookups over SOAP 1.2"), "{stdout}");
    assert!(
        stderr.contains("verification failed: 1 of 2 expectations not met"),
        "{stderr}"
    );

    let report = parse_junit(&junit);
    assert_eq!((report.tests, report.failures), (2, 1));
    let (message, text) = &report.failed[0];
    assert_eq!(
        message,
        "expected exactly 2 matching calls, found 1; near misses (all criteria but one):"
    );
    assert!(text.contains(&format!("call {fault_id} at")), "{text}");
    assert!(text.contains("operation is"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_asks_a_running_server_through_its_admin_listener() {
    let pki = Pki::new();
    let server = server_with_calls(&pki).await;
    let folder = tempfile::tempdir().unwrap();
    let passing = folder.path().join("passing.toml");
    std::fs::write(&passing, PASSING).unwrap();
    let failing = folder.path().join("failing.toml");
    std::fs::write(&failing, FAILING).unwrap();
    let url = format!("http://{}", server.admin());
    let output = run(vec![
        "verify".into(),
        "--expect".into(),
        passing.display().to_string(),
        "--admin".into(),
        url.clone(),
        "--json".into(),
    ])
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["verdicts"].as_array().unwrap().len(), 3);

    let output = run(vec![
        "verify".into(),
        "--expect".into(),
        failing.display().to_string(),
        "--admin".into(),
        url,
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("near misses"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_expectations_file_names_its_line_and_column() {
    let folder = tempfile::tempdir().unwrap();
    let expect = folder.path().join("expect.toml");
    std::fs::write(
        &expect,
        "[[expect]]\nat_least = 1\n\n[[expect]]\nexactly = 1\nopration = \"X\"\n",
    )
    .unwrap();
    let output = run(vec![
        "verify".into(),
        "--expect".into(),
        expect.display().to_string(),
        "--journal".into(),
        folder.path().join("none.sqlite").display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:6:1: unknown field `opration`",
            expect.display()
        )),
        "{stderr}"
    );
}

/// "exactly 0 faults 1014": the failure lists the offending call itself, not near misses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_exactly_zero_lists_the_offending_calls() {
    let pki = Pki::new();
    let server = server_with_calls(&pki).await;
    let journal = server.journal();
    let fault = journal
        .calls
        .iter()
        .find(|call| call.record.http_status == 400)
        .unwrap();
    let folder = tempfile::tempdir().unwrap();
    let expect = folder.path().join("expect.toml");
    std::fs::write(
        &expect,
        "[[expect]]\nname = \"no invalid messages\"\nexactly = 0\nfault_code = 1014\n",
    )
    .unwrap();
    let junit = folder.path().join("junit.xml");
    let output = run(vec![
        "verify".into(),
        "--expect".into(),
        expect.display().to_string(),
        "--journal".into(),
        server.journal_path.display().to_string(),
        "--junit".into(),
        junit.display().to_string(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("expected exactly 0 matching calls, found 1; the matching calls:"),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|line| line.contains(&format!("call {} at ", fault.id)))
        .unwrap_or_else(|| panic!("the offending call is not listed:\n{stdout}"));
    assert!(line.contains("fault 1014"), "{line}");
    // To the second, as `calls` shows times.
    let time = line
        .split(" at ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        time.len() == "2026-11-27T10:00:00Z".len() && time.ends_with('Z'),
        "{time}"
    );
    // The other calls are not near misses of this expectation.
    assert!(!stdout.contains("near misses"), "{stdout}");
    assert_eq!(stdout.matches("\n        call ").count(), 1, "{stdout}");
    let report = parse_junit(&junit);
    assert!(
        report.failed[0]
            .1
            .contains(&format!("call {} at", fault.id)),
        "{}",
        report.failed[0].1
    );

    // The journal from DFDG_MOCK_JOURNAL, as `calls` and `serve` take it.
    let from_env = tokio::task::spawn_blocking({
        let journal = server.journal_path.clone();
        move || {
            Command::new(BINARY)
                .args(["verify", "--expect"])
                .arg(&expect)
                .env("DFDG_MOCK_JOURNAL", journal)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&from_env.stdout),
        stdout,
        "{}",
        String::from_utf8_lossy(&from_env.stderr)
    );
}

//! Scenarios over mutual TLS: each matcher kind, each response kind, sequences, state, delays,
//! connection faults, reloads (explicit and by the watcher), and every trigger documented in
//! scenarios/README.md.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use dfdg_mock::journal::{Outcome, SqliteStore};
use dfdg_mock::pki::CertificateShape;
use http_body_util::Full;

use crate::support::*;

const LOOKUP_PATH: &str = "/PersonStatusService/20/PersonStatusService.svc";
const LOOKUP_NS: &str = "urn:dfdg-mock:PersonStatusService:20";

/// A scenario folder with these files.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

async fn serve(pki: &Pki, dir: &Path) -> TestServer {
    TestServer::start_with(
        pki,
        Options {
            scenarios: Some(dir.to_owned()),
            ..Options::default()
        },
    )
    .await
}

/// A SOAP 1.1 GetVariablePersonStatus for `cpr`.
fn lookup(cpr: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <GetVariablePersonStatus xmlns="{LOOKUP_NS}">
      <CivilRegistrationIdentifier>{cpr}</CivilRegistrationIdentifier>
    </GetVariablePersonStatus>
  </soap:Body>
</soap:Envelope>"#
    )
}

/// A registration of `code` for `cpr`, with STAR's headers.
fn register(cpr: &str, code: &str) -> String {
    registration(&format!("CVR:{CVR}-UUID:{OCES3_UUID}"))
        .replace("0101701234", cpr)
        .replace(
            "<AvailabilityAssessmentCode>1<",
            &format!("<AvailabilityAssessmentCode>{code}<"),
        )
}

/// POSTs `body` as SOAP 1.1 to `path` with extra headers.
async fn post(
    client: &Client,
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply, String> {
    let mut request = http::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "text/xml; charset=utf-8");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    client
        .send(
            addr,
            request
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap(),
        )
        .await
}

async fn ask(client: &Client, server: &TestServer, cpr: &str) -> Result<Reply, String> {
    post(client, server.addr, LOOKUP_PATH, &[], &lookup(cpr)).await
}

fn fault_code(reply: &Reply) -> Option<i64> {
    element_text(&reply.body, "ErrorCode").and_then(|code| code.parse().ok())
}

fn other_caller(pki: &Pki) -> Client {
    pki.client_with(Some(&pki.client(
        CertificateShape::Oces3 {
            uuid: "0d7b2c4e-1111-4222-8333-944455556666".parse().unwrap(),
        },
        365,
    )))
}

#[tokio::test]
async fn request_values_match_by_equals_one_of_regex_and_exists() {
    let dir = folder(&[(
        "values.toml",
        r#"
[[rule]]
name = "equals"
when.values."GetVariablePersonStatus/CivilRegistrationIdentifier" = "1111111111"
respond.fault = { code = 1001 }

[[rule]]
name = "one-of"
when.values."GetVariablePersonStatus/CivilRegistrationIdentifier" = ["2222222222", "3333333333"]
respond.fault = { code = 4405 }

[[rule]]
name = "regex"
when.values."*/CivilRegistrationIdentifier" = { regex = '0000$' }
respond.fault = { code = 1010 }

[[rule]]
name = "missing-cpr"
when.operation = "GetVariablePersonStatus"
when.values."GetVariablePersonStatus/CivilRegistrationIdentifier" = { exists = false }
respond.fault = { code = 1014, message = "CivilRegistrationIdentifier is required" }
"#,
    )]);
    let pki = Pki::new();
    let server = serve(&pki, dir.path()).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    let cases = [
        ("1111111111", Some(1001)),
        ("3333333333", Some(4405)),
        ("0101700000", Some(1010)),
        ("0101701234", None),
    ];
    for (cpr, expected) in cases {
        let reply = ask(&client, &server, cpr).await.unwrap();
        assert_eq!(fault_code(&reply), expected, "{cpr}: {}", reply.body);
    }
    let no_cpr = lookup("x").replace(
        "<CivilRegistrationIdentifier>x</CivilRegistrationIdentifier>",
        "",
    );
    let reply = post(&client, server.addr, LOOKUP_PATH, &[], &no_cpr)
        .await
        .unwrap();
    assert_eq!(fault_code(&reply), Some(1014), "{}", reply.body);
    assert!(reply
        .body
        .contains("CivilRegistrationIdentifier is required"));

    let journal = server.journal();
    let rules: Vec<Option<&str>> = journal
        .calls
        .iter()
        .rev()
        .map(|call| call.record.scenario_rule.as_deref())
        .collect();
    assert_eq!(
        rules,
        [
            Some("equals"),
            Some("one-of"),
            Some("regex"),
            Some("default"),
            Some("missing-cpr")
        ]
    );
    assert_eq!(
        journal.calls[0].record.scenario_file.as_deref(),
        Some("values.toml")
    );
    assert_eq!(journal.calls[1].record.scenario_file, None);
}

#[tokio::test]
async fn two_certificates_get_different_answers_from_the_same_rules() {
    let dir = folder(&[(
        "identity.toml",
        &format!(
            r#"
[[rule]]
name = "known-supplier"
when.caller.id = "CVR:{CVR}-UUID:{OCES3_UUID}"
respond.body = "<ok>{{{{ caller.id }}}} {{{{ caller.cvr }}}}</ok>"

[[rule]]
name = "oces2-is-refused"
when.caller.kind = {{ regex = "^oces2" }}
respond.fault = {{ code = 4575 }}

[[rule]]
name = "everyone-else"
when.caller.subject = {{ regex = "organizationIdentifier=NTRDK-" }}
when.caller.issuer = {{ exists = true }}
when.caller.fingerprint = {{ regex = "^[0-9a-f]{{64}}$" }}
respond.fault = {{ code = 1013 }}
"#
        ),
    )]);
    let pki = Pki::new();
    let server = serve(&pki, dir.path()).await;

    let known = pki.client_with(Some(&pki.oces3_client()));
    let reply = ask(&known, &server, "0101701234").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        format!("<ok>CVR:{CVR}-UUID:{OCES3_UUID} {CVR}</ok>")
    );

    let stranger = other_caller(&pki);
    let reply = ask(&stranger, &server, "0101701234").await.unwrap();
    assert_eq!(fault_code(&reply), Some(1013), "{}", reply.body);

    let oces2 = pki.client_with(Some(&pki.oces2_client()));
    let reply = ask(&oces2, &server, "0101701234").await.unwrap();
    assert_eq!(fault_code(&reply), Some(4575), "{}", reply.body);
}

#[tokio::test]
async fn path_headers_soap_version_operation_and_star_headers_match() {
    let dir = folder(&[(
        "transport.toml",
        r#"
[[rule]]
name = "by-header"
when.headers = { "x-rehearsal" = "timeout" }
respond.status = 503
respond.body = "<by-header/>"

[[rule]]
name = "by-path"
when.path = { regex = "^/PersonStatusService/" }
when.operation = "GetVariablePersonStatus"
respond.body = "<by-path/>"

[[rule]]
name = "by-version"
when.soap_version = "1.2"
respond.body = "<by-version/>"

[[rule]]
name = "by-star-header"
when.star = { organisation_code = "101", user_type = "3", user_identifier = { exists = true } }
respond.body = "<by-star {{ star.organisation_code }}/>"
"#,
    )]);
    let pki = Pki::new();
    let server = serve(&pki, dir.path()).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    let reply = post(
        &client,
        server.addr,
        LOOKUP_PATH,
        &[("x-rehearsal", "timeout")],
        &lookup("1"),
    )
    .await
    .unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (503, "<by-header/>"));
    let reply = ask(&client, &server, "1").await.unwrap();
    assert_eq!(reply.body, "<by-path/>");
    let reply = client
        .soap12(server.addr, "urn:x#GetBorgerstatus", &soap12_lookup())
        .await
        .unwrap();
    assert_eq!(reply.body, "<by-version/>");
    let caller_id = format!("CVR:{CVR}-UUID:{OCES3_UUID}");
    let reply = client
        .soap11(
            server.addr,
            "urn:x#SaveAvailabilityAssessment",
            &registration(&caller_id),
        )
        .await
        .unwrap();
    assert_eq!(reply.body, "<by-star 101/>");
}

#[tokio::test]
async fn templates_insert_escaped_values_identity_guids_receipts_and_times() {
    let dir = folder(&[
        (
            "templates.toml",
            r#"
[[rule]]
name = "templated"
when.operation = "GetVariablePersonStatus"
respond.template = "answer.xml"
respond.headers = { "x-scenario" = "templated" }
"#,
        ),
        (
            "answer.xml",
            r#"<answer ns="{{ namespace }}" version="{{ soap_version }}">
<cpr>{{ request("GetVariablePersonStatus/CivilRegistrationIdentifier") }}</cpr>
<caller>{{ caller.id }}</caller>
<guid>{{ guid() }}</guid>
<MessageIdentifier>{{ receipt() }}</MessageIdentifier>
<now>{{ now() }}</now>
<yesterday>{{ now(offset="-1d", format="[year]-[month]-[day]") }}</yesterday>
<call>{{ call_number }}</call>
</answer>"#,
        ),
    ]);
    let pki = Pki::new();
    let server = serve(&pki, dir.path()).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    let reply = ask(&client, &server, "01017&lt;b&gt;\"1").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["x-scenario"], "templated");
    assert!(
        reply.body.contains(&format!("ns=\"{LOOKUP_NS}\"")),
        "{}",
        reply.body
    );
    // The request value is inserted escaped: no markup can be injected.
    assert!(
        reply.body.contains("<cpr>01017&lt;b&gt;&quot;1</cpr>"),
        "{}",
        reply.body
    );
    assert!(reply
        .body
        .contains(&format!("<caller>CVR:{CVR}-UUID:{OCES3_UUID}</caller>")));
    let guid = element_text(&reply.body, "guid").unwrap();
    let receipt = element_text(&reply.body, "MessageIdentifier").unwrap();
    assert!(uuid::Uuid::parse_str(guid).is_ok() && uuid::Uuid::parse_str(receipt).is_ok());
    assert_ne!(guid, receipt);
    // UTC, at most millisecond precision: .NET reads at most seven fractional digits.
    let now_text = element_text(&reply.body, "now").unwrap();
    assert!(now_text.ends_with('Z'), "{now_text}");
    assert!(
        now_text
            .split('.')
            .nth(1)
            .is_none_or(|fraction| fraction.len() <= 4),
        "{now_text}"
    );
    let now = time::OffsetDateTime::parse(
        element_text(&reply.body, "now").unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let yesterday = (now - time::Duration::days(1)).date().to_string();
    assert_eq!(
        element_text(&reply.body, "yesterday"),
        Some(yesterday.as_str())
    );
    assert_eq!(element_text(&reply.body, "call"), Some("1"));

    // The receipt GUID is the call's journaled receipt.
    let journal = server.journal();
    assert_eq!(journal.calls[0].record.receipts, vec![receipt.to_owned()]);
    let store = SqliteStore::open_read_only(&server.journal_path).unwrap();
    use dfdg_mock::journal::JournalReader;
    let found = store.call_by_receipt(receipt).unwrap().unwrap();
    assert_eq!(found.record.scenario_rule.as_deref(), Some("templated"));
}

#[tokio::test]
async fn faults_come_in_the_callers_soap_version_with_status_override() {
    let dir = folder(&[(
        "faults.toml",
        r#"
[[rule]]
name = "unknown-cpr"
respond.fault = { code = 1010 }

[[rule]]
name = "never"
when.operation = "Nothing"
respond.status = 418
"#,
    )]);
    let pki = Pki::new();
    let server = serve(&pki, dir.path()).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    let reply = ask(&client, &server, "1").await.unwrap();
    assert_eq!(reply.status, 500);
    assert!(
        reply.body.contains("<faultcode>s:Client</faultcode>"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("<FaultDetails xmlns=\"http://service.bm.dk/xml/schemas/2011/01/12/\"><ErrorCode>1010</ErrorCode><Message>Unknown CPR number</Message>"), "{}", reply.body);
    let reply = client
        .soap12(server.addr, "urn:x#GetBorgerstatus", &soap12_lookup())
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.content_type().starts_with("application/soap+xml"));
    assert!(
        reply.body.contains("<s:Value>s:Sender</s:Value>"),
        "{}",
        reply.body
    );
    assert_eq!(fault_code(&reply), Some(1010));
    let journal = server.journal();
    assert_eq!(
        journal.calls[0].record.outcome,
        Outcome::Fault {
            code: Some(1010),
            fault_code: "Sender".to_owned()
        }
    );
}

#[tokio::test]
async fn sequences_count_calls_per_caller() {
    let dir = folder(&[(
        "sequence.toml",
        r#"
[[rule]]
name = "first-call-fails"
when.operation = "GetVariablePersonStatus"
when.call = { nth = 1 }
respond.fault = { code = 1011 }

[[rule]]
name = "every-third-is-slow-to-find"
when.operation = "GetVariablePersonStatus"
when.call = { every = 3 }
respond.fault = { code = 1010 }
"#,
    )]);
    let pki = Pki::new();
    let server = serve(&pki, dir.path()).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let stranger = other_caller(&pki);

    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(fault_code(&ask(&client, &server, "1").await.unwrap()));
    }
    // The "first-call-fails" counter sees calls 1..4; "every-third" sees calls 2..4 (its 1..3).
    assert_eq!(codes, [Some(1011), None, None, Some(1010)]);
    // Another caller has its own counters.
    assert_eq!(
        fault_code(&ask(&stranger, &server, "1").await.unwrap()),
        Some(1011)
    );
    // Resetting the state starts the sequence over.
    server.app.reset_state();
    assert_eq!(
        fault_code(&ask(&client, &server, "1").await.unwrap()),
        Some(1011)
    );
}

#[tokio::test]
async fn state_set_by_a_registration_is_read_by_a_lookup() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let pki = Pki::new();
    let server = serve(&pki, &shipped).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let stranger = other_caller(&pki);

    let reply = ask(&client, &server, "0101705678").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        !reply.body.contains("AvailabilityAssessmentCode"),
        "{}",
        reply.body
    );

    let reply = client
        .soap11(
            server.addr,
            "urn:x#SaveAvailabilityAssessment",
            &register("0101705678", "7"),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("<ServiceReceipt><MessageIdentifier>")
            || reply.body.contains("<MessageIdentifier>")
    );

    let reply = ask(&client, &server, "0101705678").await.unwrap();
    assert!(
        reply
            .body
            .contains("<AvailabilityAssessmentCode>7</AvailabilityAssessmentCode>"),
        "{}",
        reply.body
    );
    // State is per caller.
    let reply = ask(&stranger, &server, "0101705678").await.unwrap();
    assert!(
        !reply.body.contains("AvailabilityAssessmentCode"),
        "{}",
        reply.body
    );
    // And forgotten on reset.
    server.app.reset_state();
    let reply = ask(&client, &server, "0101705678").await.unwrap();
    assert!(
        !reply.body.contains("AvailabilityAssessmentCode"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_delayed_answer_is_overtaken_by_a_quick_one() {
    let dir = folder(&[(
        "delay.toml",
        r#"
[[rule]]
name = "slow"
when.values."*/CivilRegistrationIdentifier" = "slow"
respond.delay = "1500ms"

[[rule]]
name = "random"
when.values."*/CivilRegistrationIdentifier" = "random"
respond.delay = { min = "50ms", max = "60ms" }
"#,
    )]);
    let pki = Pki::new();
    let server = serve(&pki, dir.path()).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    let slow = ask(&client, &server, "slow");
    tokio::pin!(slow);
    // The quick call is sent after the slow one and answered while the slow one still waits.
    let quick = tokio::select! {
        reply = &mut slow => panic!("the delayed answer came first: {reply:?}"),
        reply = ask(&client, &server, "quick") => reply.unwrap(),
    };
    assert_eq!(quick.status, 200);
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, 200);
    let random = ask(&client, &server, "random").await.unwrap();
    assert_eq!(random.status, 200);

    let journal = server.journal();
    let latency = |cpr: &str| {
        journal
            .calls
            .iter()
            .find(|c| String::from_utf8_lossy(&c.record.request_body).contains(cpr))
            .unwrap()
            .record
            .latency_micros
    };
    assert!(latency("slow") >= 1_500_000);
    assert!(latency("random") >= 50_000);
}

#[tokio::test]
async fn connection_faults_break_the_connection_after_journaling() {
    let dir = folder(&[(
        "drops.toml",
        r#"
[[rule]]
name = "reset"
when.values."*/CivilRegistrationIdentifier" = "reset"
respond.connection = "reset"

[[rule]]
name = "close-after-headers"
when.values."*/CivilRegistrationIdentifier" = "close_after_headers"
respond.connection = "close_after_headers"

[[rule]]
name = "garbage"
when.values."*/CivilRegistrationIdentifier" = "garbage"
respond.connection = "garbage"

[[rule]]
name = "empty"
when.values."*/CivilRegistrationIdentifier" = "empty"
respond.connection = "empty"
"#,
    )]);
    let pki = Pki::new();
    let server = serve(&pki, dir.path()).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    for kind in ["reset", "close_after_headers", "garbage", "empty"] {
        let result = ask(&client, &server, kind).await;
        assert_connection_fault(kind, &result);
    }
    // The server still answers afterwards.
    assert_eq!(ask(&client, &server, "1").await.unwrap().status, 200);
    let journal = server.journal();
    assert_eq!(journal.calls.len(), 5);
    let reset = &journal.calls[4].record;
    assert_eq!(reset.scenario_rule.as_deref(), Some("reset"));
    assert_eq!(reset.http_status, 0);
    assert!(reset.receipts.is_empty());
    assert_eq!(reset.outcome, Outcome::Http);
    assert!(reset.detail.as_deref().unwrap().contains("TCP reset"));
    assert_eq!(
        journal.calls[3].record.http_status, 200,
        "close_after_headers"
    );
}

/// What a client sees for each connection fault.
fn assert_connection_fault(kind: &str, result: &Result<Reply, String>) {
    match kind {
        "reset" => {
            let error = result.as_ref().expect_err("reset must fail");
            assert!(error.starts_with("request:"), "{kind}: {error}");
            assert!(error.contains("reset by peer"), "{kind}: {error}");
        }
        "close_after_headers" => {
            let error = result.as_ref().expect_err("close_after_headers must fail");
            // The status line and headers arrived; the body did not.
            assert!(error.starts_with("body:"), "{kind}: {error}");
        }
        "garbage" => {
            let error = result.as_ref().expect_err("garbage must fail");
            assert!(error.starts_with("request:"), "{kind}: {error}");
            assert!(error.contains("invalid HTTP"), "{kind}: {error}");
            assert!(
                !error.contains("closed before message completed"),
                "{kind}: {error}"
            );
        }
        "empty" => {
            let error = result.as_ref().expect_err("empty must fail");
            assert!(
                error.contains("closed before message completed"),
                "{kind}: {error}"
            );
        }
        other => panic!("unknown connection fault {other}"),
    }
}

#[tokio::test]
async fn reload_swaps_good_rules_and_keeps_the_old_ones_on_a_broken_edit() {
    let dir = folder(&[(
        "rules.toml",
        "[[rule]]\nname = \"a\"\nrespond.fault = { code = 1010 }\n",
    )]);
    let pki = Pki::new();
    // Reloaded by hand only: the watcher would journal reloads of its own.
    let server = TestServer::start_with(
        &pki,
        Options {
            scenarios: Some(dir.path().to_owned()),
            watch: false,
            ..Options::default()
        },
    )
    .await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    assert_eq!(
        fault_code(&ask(&client, &server, "1").await.unwrap()),
        Some(1010)
    );

    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rule]]\nname = \"b\"\nrespond.fault = { code = 4575 }\n",
    )
    .unwrap();
    let status = server.app.reload_scenarios().await;
    assert!(status.ok, "{status:?}");
    assert_eq!(
        fault_code(&ask(&client, &server, "1").await.unwrap()),
        Some(4575)
    );

    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rule]]\nname = \"c\"\nrespond.fault = { code = \"x\" }\n",
    )
    .unwrap();
    let status = server.app.reload_scenarios().await;
    assert!(!status.ok);
    let error = status.error.unwrap();
    assert!(error.contains("rules.toml:3:"), "{error}");
    // The previous good rules stay in force.
    assert_eq!(
        fault_code(&ask(&client, &server, "1").await.unwrap()),
        Some(4575)
    );

    let reloads = SqliteStore::open_read_only(&server.journal_path)
        .unwrap()
        .reloads(10)
        .unwrap();
    // Newest first: the refused edit, the good one, and the load at start (as `serve` does).
    assert_eq!(reloads.len(), 3);
    assert!(!reloads[0].record.ok);
    assert!(reloads[0]
        .record
        .error
        .as_deref()
        .unwrap()
        .contains("rules.toml:3:"));
    assert_eq!(reloads[0].record.rules, 1);
    assert!(reloads[1].record.ok);
    assert_eq!(reloads[1].record.files, vec!["rules.toml".to_owned()]);
    assert!(reloads[2].record.ok);
    assert_eq!(reloads[2].record.rules, 1);
}

#[tokio::test]
async fn the_watcher_picks_up_a_changed_file() {
    let dir = folder(&[(
        "rules.toml",
        "[[rule]]\nname = \"a\"\nrespond.fault = { code = 1010 }\n",
    )]);
    let pki = Pki::new();
    let server = TestServer::start_with(
        &pki,
        Options {
            scenarios: Some(dir.path().to_owned()),
            watch: true,
            ..Options::default()
        },
    )
    .await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let mut reloads = server.app.scenarios().subscribe();
    reloads.mark_unchanged();

    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rule]]\nname = \"b\"\nrespond.fault = { code = 4575 }\n# a longer file\n",
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), reloads.changed())
        .await
        .expect("the watcher reloads within 10 s")
        .unwrap();
    assert!(reloads.borrow().ok);
    assert_eq!(
        fault_code(&ask(&client, &server, "1").await.unwrap()),
        Some(4575)
    );
}

/// One row of the trigger table in scenarios/README.md.
struct Trigger {
    cpr: String,
    answer: String,
}

fn documented_triggers() -> Vec<Trigger> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/README.md");
    let text = std::fs::read_to_string(readme).unwrap();
    text.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let cpr = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let answer = cells.get(2)?.strip_prefix('`')?.strip_suffix('`')?;
            (cpr.len() == 10 && cpr.bytes().all(|b| b.is_ascii_digit())).then(|| Trigger {
                cpr: cpr.to_owned(),
                answer: answer.to_owned(),
            })
        })
        .collect()
}

#[tokio::test]
async fn every_documented_trigger_answers_as_documented() {
    let triggers = documented_triggers();
    // Every DFDG fault code of docs/domain.md, plus the behaviours.
    assert!(triggers.len() >= 28, "{} triggers", triggers.len());
    for (code, _) in dfdg_mock::scenario::names::DFDG_CODES {
        assert!(
            triggers.iter().any(|t| t.answer == format!("fault {code}")),
            "no documented trigger for fault {code}"
        );
    }
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let pki = Pki::new();
    let server = serve(&pki, &shipped).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    for trigger in &triggers {
        let result = ask(&client, &server, &trigger.cpr).await;
        let answer = trigger.answer.as_str();
        if let Some(code) = answer.strip_prefix("fault ") {
            if let Some((first, _then)) = code.split_once(", then ") {
                let reply = result.unwrap();
                assert_eq!(
                    fault_code(&reply).map(|c| c.to_string()).as_deref(),
                    Some(first)
                );
                let again = ask(&client, &server, &trigger.cpr).await.unwrap();
                assert_eq!(again.status, 200, "{}: {}", trigger.cpr, again.body);
                assert!(again.body.contains("<MessageIdentifier>"));
                continue;
            }
            let reply = result.unwrap();
            assert_eq!(
                fault_code(&reply).map(|c| c.to_string()).as_deref(),
                Some(code),
                "{}: {}",
                trigger.cpr,
                reply.body
            );
            assert!(reply.body.contains("<faultcode>"), "{}", reply.body);
        } else if let Some(delay) = answer.strip_prefix("slow ") {
            let reply = result.unwrap();
            assert_eq!(reply.status, 200);
            let minimum = delay
                .parse::<dfdg_mock::config::Seconds>()
                .unwrap()
                .0
                .as_micros();
            let journal = server.journal();
            let call = journal
                .calls
                .iter()
                .find(|c| String::from_utf8_lossy(&c.record.request_body).contains(&trigger.cpr))
                .unwrap();
            assert!(
                u128::from(call.record.latency_micros) >= minimum,
                "{}: latency {} < {minimum}",
                trigger.cpr,
                call.record.latency_micros
            );
        } else if answer == "receipt" {
            let reply = result.unwrap();
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert!(element_text(&reply.body, "MessageIdentifier").is_some());
        } else {
            assert_connection_fault(answer, &result);
        }
    }
}

#[tokio::test]
async fn shipped_onboarding_answers_each_service_with_a_journaled_receipt() {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let pki = Pki::new();
    let server = serve(&pki, &shipped).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let caller_id = format!("CVR:{CVR}-UUID:{OCES3_UUID}");

    let code_list = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetCodeList xmlns="urn:dfdg-mock:CodeListService:1"><CodeListName>OrganisationType</CodeListName></GetCodeList></soap:Body></soap:Envelope>"#;
    let replies = [
        client
            .soap11(
                server.addr,
                "urn:x#SaveAvailabilityAssessment",
                &registration(&caller_id),
            )
            .await
            .unwrap(),
        ask(&client, &server, "0101701234").await.unwrap(),
        post(
            &client,
            server.addr,
            "/CodeListService/1/CodeListService.svc",
            &[],
            code_list,
        )
        .await
        .unwrap(),
        client
            .soap12(server.addr, "urn:x#GetBorgerstatus", &soap12_lookup())
            .await
            .unwrap(),
    ];
    let journal = server.journal();
    for (reply, call) in replies.iter().zip(journal.calls.iter().rev()) {
        assert_eq!(reply.status, 200, "{}", reply.body);
        let receipt = element_text(&reply.body, "MessageIdentifier").unwrap();
        assert_eq!(call.record.receipts, vec![receipt.to_owned()]);
        assert_eq!(
            call.record.scenario_file.as_deref(),
            Some("onboarding.toml")
        );
        // Each answer is a SOAP envelope of the request's version.
        dfdg_mock::soap::parse_envelope(&reply.body).unwrap();
    }
    assert!(replies[3].body.contains(&caller_id));
    assert!(replies[3]
        .content_type()
        .starts_with("application/soap+xml"));
}

#[tokio::test]
async fn check_suggests_names_from_the_catalog() {
    let dir = folder(&[(
        "typo.toml",
        "[[rule]]\nname = \"x\"\nwhen.operation = \"GetVariablePersonStatu\"\n",
    )]);
    let known = vec![(
        "PersonStatusService".to_owned(),
        "GetVariablePersonStatus".to_owned(),
    )];
    let error = dfdg_mock::check::scenarios(dir.path(), Some(&known)).unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("did you mean \"GetVariablePersonStatus\""),
        "{message}"
    );
    let report = dfdg_mock::check::scenarios(dir.path(), None).unwrap();
    assert!(report.contains("1 rules in 1 files"), "{report}");
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    assert!(dfdg_mock::check::scenarios(&shipped, None).is_ok());
}

#[tokio::test]
async fn a_template_that_fails_at_render_time_answers_fault_1011_naming_the_rule() {
    let dir = folder(&[(
        "broken.toml",
        "[[rule]]\nname = \"bad-offset\"\nrespond.body = \"<a>{{ now(offset='soon') }}</a>\"\n",
    )]);
    let pki = Pki::new();
    let server = serve(&pki, dir.path()).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let reply = ask(&client, &server, "1").await.unwrap();
    assert_eq!(reply.status, 500);
    assert_eq!(fault_code(&reply), Some(1011));
    assert!(
        reply.body.contains("broken.toml#bad-offset"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("offset"), "{}", reply.body);
}

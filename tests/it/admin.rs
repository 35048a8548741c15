//! The admin listener: exposure rules and bearer tokens, every API endpoint (filters, paging,
//! one call in full, refusals, callers and their checklist, confirmation, resets, export,
//! events, health, metrics, request caps) and the OpenAPI document validated as OpenAPI 3.

use std::io::{BufRead, BufReader, Write};
use std::sync::Arc;
use std::time::Duration;

use dfdg_mock::config::AdminToken;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::suites::{self, Suite};
use crate::support::*;

const ACTION: &str = "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment";
const TOKEN: &str = "test-token-0123456789";

fn caller_id() -> String {
    format!("CVR:{CVR}-UUID:{OCES3_UUID}")
}

/// A registration from the OCES3 test certificate; its receipt GUID.
async fn registration_call(pki: &Pki, server: &TestServer, user_identifier: &str) -> String {
    let reply = pki
        .client_with(Some(&pki.oces3_client()))
        .soap11(server.addr, ACTION, &registration(user_identifier))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    element_text(&reply.body, "MessageIdentifier")
        .unwrap()
        .to_owned()
}

async fn malformed_call(pki: &Pki, server: &TestServer) {
    let reply = pki
        .client_with(Some(&pki.oces3_client()))
        .soap11(server.addr, ACTION, "<soap:Envelope")
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
}

fn ids(page: &Value) -> Vec<i64> {
    page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|call| call["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn off_loopback_without_a_token_the_admin_listener_refuses_to_start() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let journal = dfdg_mock::journal::Journal::open_sqlite(&server.journal_path).unwrap();
    let app = dfdg_mock::app::App::new(journal, dfdg_mock::config::Limits::default());
    let admin = Arc::new(dfdg_mock::admin::Admin::new(
        &app,
        server.readers.clone(),
        None,
    ));
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let started = tokio::time::timeout(
        Duration::from_secs(10),
        dfdg_mock::admin::run(listener, admin, std::future::pending()),
    )
    .await
    .expect("run must fail at once, not serve");
    let error = started.unwrap_err().to_string();
    assert!(error.contains("without a token"), "{error}");
    assert!(error.contains("DFDG_MOCK_ADMIN_TOKEN"), "{error}");
}

#[tokio::test]
async fn off_loopback_with_a_token_every_path_but_health_needs_the_bearer() {
    let pki = Pki::new();
    let server = TestServer::start_with(
        &pki,
        Options {
            admin: Some(AdminOptions {
                listen: "0.0.0.0:0".parse().unwrap(),
                token: Some(AdminToken::new(TOKEN).unwrap()),
            }),
            ..Options::default()
        },
    )
    .await;
    let admin = server.admin();
    for path in [
        "/api/calls",
        "/",
        "/metrics",
        "/openapi.json",
        "/api/callers",
    ] {
        let none = admin_request(admin, "GET", path, None, None).await;
        assert_eq!(none.status, 401, "{path} without a token");
        assert_eq!(
            none.headers.get("www-authenticate").unwrap(),
            "Bearer",
            "{path}"
        );
        let wrong = admin_request(admin, "GET", path, Some("test-token-0123456788"), None).await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let short = admin_request(admin, "GET", path, Some("test"), None).await;
        assert_eq!(short.status, 401, "{path} with a short token");
        let right = admin_request(admin, "GET", path, Some(TOKEN), None).await;
        assert_eq!(right.status, 200, "{path} with the token: {}", right.body);
    }
    let post = admin_request(
        admin,
        "POST",
        "/api/journal/reset",
        None,
        Some(r#"{"confirm":"reset"}"#),
    )
    .await;
    assert_eq!(post.status, 401);
    assert!(post.body.contains("Authorization: Bearer"), "{}", post.body);
    let health = admin_request(admin, "GET", "/health", None, None).await;
    assert_eq!(health.status, 200, "{}", health.body);
    // The browser's way: the token prompt, then its cookie.
    let browser = admin_request(admin, "GET", "/", None, None).await;
    assert!(browser.body.contains("dfdg_mock_admin_token"));
    let with_cookie = |value: &'static str| async move {
        let tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
        let (read_half, mut write_half) = tcp.into_split();
        write_half
            .write_all(
                format!("GET /api/calls HTTP/1.1\r\nhost: x\r\ncookie: a=b; dfdg_mock_admin_token={value}\r\nconnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut status = String::new();
        tokio::io::BufReader::new(read_half)
            .read_line(&mut status)
            .await
            .unwrap();
        status
    };
    assert!(with_cookie("test-token-0123456789").await.contains(" 200 "));
    assert!(with_cookie("test%2Dtoken-0123456789")
        .await
        .contains(" 200 "));
    assert!(with_cookie("test-token-0123456788").await.contains(" 401 "));
}

#[tokio::test]
async fn on_loopback_without_a_token_it_is_open_and_with_one_it_is_required() {
    let pki = Pki::new();
    let open = TestServer::with_admin(&pki).await;
    let reply = admin_request(open.admin(), "GET", "/api/calls", None, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let guarded = TestServer::start_with(
        &pki,
        Options {
            admin: Some(AdminOptions {
                listen: "127.0.0.1:0".parse().unwrap(),
                token: Some(AdminToken::new(TOKEN).unwrap()),
            }),
            ..Options::default()
        },
    )
    .await;
    let reply = admin_request(guarded.admin(), "GET", "/api/calls", None, None).await;
    assert_eq!(reply.status, 401);
    let reply = admin_request(guarded.admin(), "GET", "/api/calls", Some(TOKEN), None).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn calls_are_filtered_and_paged_with_a_cursor() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let admin = server.admin();
    for _ in 0..3 {
        registration_call(&pki, &server, &caller_id()).await;
    }
    malformed_call(&pki, &server).await;
    let oces2 = pki
        .client_with(Some(&pki.oces2_client()))
        .soap12(server.addr, "urn:x#GetBorgerstatus", &soap12_lookup())
        .await
        .unwrap();
    assert_eq!(oces2.status, 200, "{}", oces2.body);

    let all = admin_json(admin, "/api/calls").await;
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 5);
    assert!(all_ids.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(all["next"], Value::Null);
    let newest = &all["calls"][0];
    assert_eq!(newest["caller_id"], "CVR:91234567-FID:1234567890123");
    assert_eq!(newest["operation"], "GetBorgerstatus");
    assert_eq!(newest["service"], "JobnetCitizenStatusService");

    // Paging: pages of two, following `next`, see every call once.
    let mut seen = Vec::new();
    let mut path = "/api/calls?limit=2".to_owned();
    loop {
        let page = admin_json(admin, &path).await;
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/calls?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen, all_ids);

    let count = |path: String| async move { ids(&admin_json(admin, &path).await).len() };
    let oces3 = caller_id().replace(':', "%3A");
    assert_eq!(count(format!("/api/calls?caller_id={oces3}")).await, 4);
    assert_eq!(
        count("/api/calls?caller_id=CVR%3A91234567-FID%3A1234567890123".to_owned()).await,
        1
    );
    assert_eq!(count(format!("/api/calls?cvr={CVR}")).await, 5);
    assert_eq!(count("/api/calls?cvr=99999999".to_owned()).await, 0);
    assert_eq!(
        count("/api/calls?operation=SaveAvailabilityAssessment".to_owned()).await,
        3
    );
    assert_eq!(
        count("/api/calls?service=JobcenterMessageService".to_owned()).await,
        4
    );
    assert_eq!(count("/api/calls?outcome=receipt".to_owned()).await, 4);
    assert_eq!(count("/api/calls?outcome=fault".to_owned()).await, 1);
    assert_eq!(count("/api/calls?outcome=fault+1014".to_owned()).await, 1);
    assert_eq!(count("/api/calls?fault_code=1014".to_owned()).await, 1);
    assert_eq!(count("/api/calls?since=1h".to_owned()).await, 5);
    assert_eq!(
        count("/api/calls?until=2020-01-01T00%3A00%3A00Z".to_owned()).await,
        0
    );
    let oldest = *all_ids.last().unwrap();
    assert_eq!(count(format!("/api/calls?after_id={oldest}")).await, 4);

    for (query, status, message) in [
        ("nonsense=1", 400, "unknown query parameter"),
        ("limit=0", 400, "1 to 500"),
        ("limit=501", 400, "1 to 500"),
        ("since=yesterday", 400, "RFC 3339"),
        ("outcome=recept", 400, "invalid outcome filter"),
        ("cursor=12", 400, "not one this API handed out"),
        ("fault_code=x", 400, "not a number"),
    ] {
        let reply = admin_request(admin, "GET", &format!("/api/calls?{query}"), None, None).await;
        assert_eq!(reply.status, status, "{query}: {}", reply.body);
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(message),
            "{query}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn one_call_in_full_shows_identity_headers_bodies_findings_and_receipt() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let admin = server.admin();
    let receipt = registration_call(&pki, &server, "CVR:91234567-UUID:someone-else").await;
    let id = ids(&admin_json(admin, "/api/calls").await)[0];

    let detail = admin_json(admin, &format!("/api/calls/{id}")).await;
    let call = &detail["call"];
    assert_eq!(call["id"], id);
    assert_eq!(call["identity"]["caller_id"], caller_id());
    assert!(call["identity"]["subject"]
        .as_str()
        .unwrap()
        .contains("NTRDK-91234567"));
    assert_eq!(
        call["star_headers"]["request_user"]["user_identifier"],
        "CVR:91234567-UUID:someone-else"
    );
    assert!(call["request_body"]
        .as_str()
        .unwrap()
        .contains("<SaveAvailabilityAssessment"));
    assert!(call["response_body"].as_str().unwrap().contains(&receipt));
    assert_eq!(detail["identity"]["certificate_caller_id"], caller_id());
    assert_eq!(
        detail["identity"]["header_user_identifier"],
        "CVR:91234567-UUID:someone-else"
    );
    assert_eq!(detail["identity"]["matches"], false);
    let identity_finding = detail["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "identity")
        .unwrap();
    assert_eq!(identity_finding["passed"], false);
    assert!(identity_finding["message"]
        .as_str()
        .unwrap()
        .contains("differs"));
    assert_eq!(detail["receipts"][0]["guid"], receipt.as_str());
    assert_eq!(detail["receipts"][0]["confirmed"], false);

    let missing = admin_request(admin, "GET", "/api/calls/999999", None, None).await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("no call 999999"));
    let bad = admin_request(admin, "GET", "/api/calls/abc", None, None).await;
    assert_eq!(bad.status, 400);
    let unknown = admin_request(admin, "GET", "/api/nothing", None, None).await;
    assert_eq!(unknown.status, 404);
    let wrong_method = admin_request(admin, "DELETE", "/api/calls", None, None).await;
    assert_eq!(wrong_method.status, 405);
}

#[tokio::test]
async fn callers_show_the_three_steps_and_confirmation_completes_them() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let admin = server.admin();

    let empty = admin_json(admin, "/api/callers").await;
    assert_eq!(empty["callers"].as_array().unwrap().len(), 0);

    let receipt = registration_call(&pki, &server, &caller_id()).await;
    let callers = admin_json(admin, "/api/callers").await;
    let caller = &callers["callers"][0];
    assert_eq!(caller["caller_id"], caller_id());
    assert_eq!(caller["cvr"], CVR);
    assert_eq!(caller["call_received"]["done"], true);
    assert_eq!(caller["call_received"]["receipt"], receipt.as_str());
    assert_eq!(caller["identity_checked"]["done"], true);
    assert_eq!(caller["identity"]["certificate_caller_id"], caller_id());
    assert_eq!(caller["identity"]["header_user_identifier"], caller_id());
    assert_eq!(caller["receipt_confirmed"]["done"], false);
    assert_eq!(caller["complete"], false);

    let unknown = admin_request(
        admin,
        "POST",
        "/api/receipts/00000000-0000-4000-8000-000000000000/confirm",
        None,
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown
            .body
            .contains("unknown receipt 00000000-0000-4000-8000-000000000000"),
        "{}",
        unknown.body
    );
    let invalid = admin_request(
        admin,
        "POST",
        "/api/receipts/not%20a%20guid/confirm",
        None,
        None,
    )
    .await;
    assert_eq!(invalid.status, 400);
    assert!(
        invalid.body.contains("MessageIdentifier"),
        "{}",
        invalid.body
    );

    let confirmed = admin_request(
        admin,
        "POST",
        &format!("/api/receipts/{receipt}/confirm"),
        None,
        Some(r#"{"note":"by the test"}"#),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let confirmed: Value = serde_json::from_str(&confirmed.body).unwrap();
    assert_eq!(confirmed["guid"], receipt.as_str());
    assert_eq!(confirmed["caller_id"], caller_id());

    let callers = admin_json(admin, "/api/callers").await;
    let caller = &callers["callers"][0];
    assert_eq!(caller["receipt_confirmed"]["done"], true);
    assert_eq!(caller["receipt_confirmed"]["receipt"], receipt.as_str());
    assert_eq!(caller["complete"], true);
    let id = caller["call_received"]["call_id"].as_i64().unwrap();
    let detail = admin_json(admin, &format!("/api/calls/{id}")).await;
    assert_eq!(detail["receipts"][0]["confirmed"], true);
    assert_eq!(detail["receipts"][0]["note"], "by the test");
}

#[tokio::test]
async fn a_caller_whose_user_identifier_differs_does_not_pass_step_two() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    registration_call(&pki, &server, "CVR:11111111-UUID:not-me").await;
    let callers = admin_json(server.admin(), "/api/callers").await;
    let caller = &callers["callers"][0];
    assert_eq!(caller["call_received"]["done"], true);
    assert_eq!(caller["identity_checked"]["done"], false);
    assert_eq!(
        caller["identity"]["header_user_identifier"],
        "CVR:11111111-UUID:not-me"
    );
    assert_eq!(caller["identity"]["certificate_caller_id"], caller_id());
}

#[tokio::test]
async fn refused_handshakes_are_listed_with_reasons_and_counted() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let admin = server.admin();
    // The refusal is journaled after the client saw the handshake fail: wait for its event.
    let mut events = Events::open(admin).await;
    let refused = pki
        .client_with(None)
        .soap11(server.addr, ACTION, &registration(&caller_id()))
        .await;
    assert!(refused.is_err());
    let data = events.next("rejection").await;
    let rejections = admin_json(admin, "/api/rejections").await;
    assert_eq!(
        data,
        format!("data: {{\"id\":{}}}", rejections["rejections"][0]["id"])
    );
    assert_eq!(rejections["rejections"][0]["reason"], "no_certificate");
    assert_eq!(rejections["next"], Value::Null);
    let filtered = admin_json(admin, "/api/rejections?reason=expired").await;
    assert_eq!(filtered["rejections"].as_array().unwrap().len(), 0);
    let bad = admin_request(admin, "GET", "/api/rejections?reason=nope", None, None).await;
    assert_eq!(bad.status, 400);
    let metrics = admin_request(admin, "GET", "/metrics", None, None).await;
    assert!(
        metrics
            .body
            .contains("dfdg_mock_refused_handshakes_total{reason=\"no_certificate\"} 1"),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn journal_reset_needs_an_explicit_confirmation() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let admin = server.admin();
    registration_call(&pki, &server, &caller_id()).await;
    for body in [None, Some("{}"), Some(r#"{"confirm":"yes"}"#)] {
        let reply = admin_request(admin, "POST", "/api/journal/reset", None, body).await;
        assert_eq!(reply.status, 400, "{body:?}");
        assert!(
            reply.body.contains(r#"{\"confirm\": \"reset\"}"#),
            "{}",
            reply.body
        );
    }
    assert_eq!(ids(&admin_json(admin, "/api/calls").await).len(), 1);
    let reply = admin_request(
        admin,
        "POST",
        "/api/journal/reset",
        None,
        Some(r#"{"confirm":"reset"}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(ids(&admin_json(admin, "/api/calls").await).len(), 0);
    assert_eq!(
        admin_json(admin, "/api/callers").await["callers"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn scenario_routes_reload_the_rules_and_reset_the_state() {
    let pki = Pki::new();
    let rules = tempfile::tempdir().unwrap();
    let file = rules.path().join("rules.toml");
    let rule = "[[rule]]\nname = \"always-1011\"\nrespond.fault = { code = 1011 }\n";
    std::fs::write(&file, rule).unwrap();
    let server = TestServer::start_with(
        &pki,
        Options {
            admin: Some(AdminOptions::loopback()),
            scenarios: Some(rules.path().to_path_buf()),
            ..Options::default()
        },
    )
    .await;

    std::fs::write(
        &file,
        format!("{rule}{}", rule.replace("always-1011", "second")),
    )
    .unwrap();
    let reply = admin_request(server.admin(), "POST", "/api/scenarios/reload", None, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("2 rules from 1 files in force"),
        "{}",
        reply.body
    );

    std::fs::write(
        &file,
        "[[rule]]\nname = \"broken\"\nrespond.fault = { code = \"x\" }\n",
    )
    .unwrap();
    let reply = admin_request(server.admin(), "POST", "/api/scenarios/reload", None, None).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(
        reply.body.contains("previous rules stay in force"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("rules.toml:3:"), "{}", reply.body);

    let reply = admin_request(server.admin(), "POST", "/api/scenarios/reset", None, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn export_streams_every_matching_call_as_json_lines() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    for _ in 0..3 {
        registration_call(&pki, &server, &caller_id()).await;
    }
    malformed_call(&pki, &server).await;
    let reply = admin_request(server.admin(), "GET", "/api/calls/export", None, None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type(), "application/x-ndjson");
    let lines: Vec<Value> = reply
        .body
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[1]["request_body"]
        .as_str()
        .unwrap()
        .contains("SaveAvailabilityAssessment"));
    let faults = admin_request(
        server.admin(),
        "GET",
        "/api/calls/export?outcome=fault",
        None,
        None,
    )
    .await;
    assert_eq!(faults.body.lines().count(), 1);
}

#[tokio::test]
async fn health_and_metrics_report_in_their_formats() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let admin = server.admin();
    registration_call(&pki, &server, &caller_id()).await;
    assert_eq!(
        admin_json(admin, "/health").await,
        serde_json::json!({ "live": true, "ready": true })
    );
    assert_eq!(admin_json(admin, "/health/live").await["live"], true);
    assert_eq!(admin_json(admin, "/health/ready").await["ready"], true);
    let metrics = admin_request(admin, "GET", "/metrics", None, None).await;
    assert!(metrics
        .content_type()
        .starts_with("text/plain; version=0.0.4"));
    for line in [
        "dfdg_mock_calls_total{service=\"JobcenterMessageService\",operation=\"SaveAvailabilityAssessment\",outcome=\"receipt\"} 1",
        "dfdg_mock_call_duration_seconds_bucket{le=\"+Inf\"} 1",
        "dfdg_mock_call_duration_seconds_count 1",
        "# TYPE dfdg_mock_journal_queue_depth gauge",
        "dfdg_mock_journal_queue_depth 0",
    ] {
        assert!(metrics.body.contains(line), "{line} in\n{}", metrics.body);
    }
}

#[tokio::test]
async fn request_bodies_are_capped() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let huge = format!("{{\"note\":\"{}\"}}", "x".repeat(300 * 1024));
    let reply = admin_request(server.admin(), "POST", "/api/verify", None, Some(&huge)).await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    let long_note = format!("{{\"note\":\"{}\"}}", "x".repeat(2000));
    let receipt = registration_call(&pki, &server, &caller_id()).await;
    let reply = admin_request(
        server.admin(),
        "POST",
        &format!("/api/receipts/{receipt}/confirm"),
        None,
        Some(&long_note),
    )
    .await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn the_event_stream_announces_each_new_call() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let mut events = Events::open(server.admin()).await;
    assert_eq!(events.content_type, "text/event-stream");
    registration_call(&pki, &server, &caller_id()).await;
    let id = ids(&admin_json(server.admin(), "/api/calls").await)[0];
    assert_eq!(events.next("call").await, format!("data: {{\"id\":{id}}}"));
    // Idle, the stream gets keep-alive comments (every 500 ms in tests).
    while events.line().await != ": keep-alive" {}
    let receipt = registration_call(&pki, &server, &caller_id()).await;
    events.next("call").await;
    admin_request(
        server.admin(),
        "POST",
        &format!("/api/receipts/{receipt}/confirm"),
        None,
        None,
    )
    .await;
    assert!(events.next("confirmation").await.contains(&receipt));
}

#[tokio::test]
async fn the_openapi_document_is_valid_openapi_3_and_covers_every_route() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let reply = admin_request(server.admin(), "GET", "/openapi.json", None, None).await;
    assert_eq!(reply.status, 200);
    let document: Value = serde_json::from_str(&reply.body).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
        "/",
        "/api/calls",
        "/api/calls/export",
        "/api/calls/{id}",
        "/api/rejections",
        "/api/callers",
        "/api/suppliers",
        "/api/receipts/{guid}/confirm",
        "/onboarding/receipts/{guid}/confirm",
        "/api/journal/reset",
        "/api/scenarios/reload",
        "/api/scenarios/reset",
        "/api/verify",
        "/api/events",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} is not documented"
        );
    }

    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("openapi.json");
    std::fs::write(&file, &reply.body).unwrap();
    let script = "import sys\n\
        try:\n    from openapi_spec_validator import validate\n    from openapi_spec_validator.readers import read_from_filename\n\
        except ImportError as e:\n    print('IMPORT-FAILED', e); sys.exit(3)\n\
        spec, _ = read_from_filename(sys.argv[1])\nvalidate(spec)\nprint('VALID')\n";
    let Some(python) = suites::require(Suite::Python, suites::python(&["openapi_spec_validator"]))
    else {
        return;
    };
    let output = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stdout.contains("IMPORT-FAILED"),
        "the Python package openapi-spec-validator is not importable ({stdout}); `cargo xtask test` installs it"
    );
    assert!(
        output.status.success() && stdout.contains("VALID"),
        "the OpenAPI document is not valid OpenAPI 3:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_follow_prints_new_calls_as_they_arrive() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    registration_call(&pki, &server, &caller_id()).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .args(["calls", "--follow", "--journal"])
        .arg(&server.journal_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_sender, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_sender.send(line).is_err() {
                break;
            }
        }
    });
    async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(Duration::from_secs(10), lines.recv())
            .await
            .expect("calls --follow printed nothing new")
            .expect("calls --follow ended")
    }
    assert!(next_line(&mut lines).await.starts_with("ID "));
    assert!(next_line(&mut lines).await.contains(&caller_id()));
    let receipt = registration_call(&pki, &server, &caller_id()).await;
    let line = next_line(&mut lines).await;
    assert!(line.contains(&receipt), "{line}");
    assert!(line.contains("SaveAvailabilityAssessment"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::io::stdout().flush();
}

#[tokio::test]
async fn the_verify_endpoint_answers_a_report_and_refuses_bad_expectations() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    registration_call(&pki, &server, &caller_id()).await;
    let admin = server.admin();
    let body = r#"{"expect": [{"name": "one registration", "exactly": 1, "operation": "SaveAvailabilityAssessment"},
                             {"at_least": 1, "outcome": "fault"}]}"#;
    let reply = admin_request(admin, "POST", "/api/verify", None, Some(body)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let report: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(report["passed"], false);
    assert_eq!(report["calls_examined"], 1);
    assert_eq!(report["verdicts"][0]["passed"], true);
    assert_eq!(report["verdicts"][1]["passed"], false);
    assert_eq!(report["verdicts"][1]["expected"], "at least 1");
    // The registration matched everything but the outcome.
    assert_eq!(
        report["verdicts"][1]["near_misses"][0]["mismatch"]["criterion"],
        "outcome"
    );
    for (bad, message) in [
        (
            r#"{"expect": [{"exactly": 1, "at_most": 2}]}"#,
            "expect[0]: `exactly` cannot be combined",
        ),
        (
            r#"{"expect": [{"operaton": "X"}]}"#,
            "unknown field `operaton`",
        ),
        ("not json", "expectations JSON"),
    ] {
        let reply = admin_request(admin, "POST", "/api/verify", None, Some(bad)).await;
        assert_eq!(reply.status, 400, "{bad}");
        assert!(reply.body.contains(message), "{}", reply.body);
    }
}

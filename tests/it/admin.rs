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
                format!("GET /api/calls HTTP/1.1\r\nhost: localhost\r\ncookie: a=b; dfdg_mock_admin_token={value}\r\nconnection: close\r\n\r\n")
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

/// `GET /api/calls` reads a long page from the journal in several queries (50 calls each); the
/// joined pages are the same calls, in order, each once, newest first or (following) oldest
/// first, and `next` names the last.
#[tokio::test]
async fn a_long_page_of_calls_is_every_call_once_in_order() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let admin = server.admin();
    for _ in 0..130 {
        malformed_call(&pki, &server).await;
    }
    let all = admin_json(admin, "/api/calls?limit=500").await;
    let all_ids = ids(&all);
    assert_eq!(all_ids.len(), 130);
    assert!(
        all_ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, each once"
    );
    assert_eq!(all["next"], Value::Null);

    let first = admin_json(admin, "/api/calls?limit=120").await;
    assert_eq!(ids(&first), all_ids[..120]);
    assert_eq!(first["next"], format!("c{}", all_ids[119]));
    let rest = admin_json(
        admin,
        &format!("/api/calls?limit=120&cursor=c{}", all_ids[119]),
    )
    .await;
    assert_eq!(ids(&rest), all_ids[120..]);

    let oldest = all_ids[129];
    let following = admin_json(admin, &format!("/api/calls?limit=500&after_id={oldest}")).await;
    let mut ascending = all_ids[..129].to_vec();
    ascending.reverse();
    assert_eq!(ids(&following), ascending, "oldest first after the id");
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

/// The issue's case: a passing call, then a newer one whose UserIdentifier names someone else.
/// Every step cites the passing call; confirming the other call's receipt does not complete
/// step 3 (and says why); confirming the passing call's does, still citing that call.
#[tokio::test]
async fn the_three_steps_cite_the_one_call_that_passed() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let admin = server.admin();
    let good = registration_call(&pki, &server, &caller_id()).await;
    let bad = registration_call(&pki, &server, "CVR:11111111-UUID:not-me").await;
    let calls = server.journal().calls;
    let id_of = |receipt: &str| {
        calls
            .iter()
            .find(|call| call.record.receipts.iter().any(|r| r == receipt))
            .unwrap()
            .id
    };
    let (good_id, bad_id) = (id_of(&good), id_of(&bad));
    let steps = |status: &Value| {
        ["call_received", "identity_checked", "receipt_confirmed"].map(|step| {
            (
                status[step]["state"].as_str().unwrap().to_owned(),
                status[step]["call_id"].as_i64(),
            )
        })
    };
    let status = admin_json(admin, "/api/suppliers").await;
    let caller = &status["suppliers"][0];
    assert_eq!(
        steps(caller),
        [
            ("received".to_owned(), Some(good_id)),
            ("passed".to_owned(), Some(good_id)),
            ("not_confirmed".to_owned(), Some(good_id)),
        ],
        "{caller}"
    );
    assert_eq!(caller["confirmable"], good.as_str());
    assert_eq!(caller["identity"]["call_id"], good_id);
    // /api/callers and /api/suppliers tell the same.
    let callers = admin_json(admin, "/api/callers").await;
    assert_eq!(callers["callers"][0]["call_received"]["call_id"], good_id);

    // The mismatched call's detail: the warning the feed shows, and a confirm that can succeed.
    let detail = admin_json(admin, &format!("/api/calls/{bad_id}")).await;
    assert_eq!(detail["warnings"], serde_json::json!(["identity"]));
    assert_eq!(detail["confirm"]["possible"], true);
    let feed = admin_json(admin, "/api/calls").await;
    assert_eq!(
        feed["calls"][0]["warnings"],
        serde_json::json!(["identity"])
    );
    assert_eq!(feed["calls"][1]["warnings"], serde_json::json!([]));

    let confirm = |receipt: String| async move {
        let reply = admin_request(
            admin,
            "POST",
            &format!("/api/receipts/{receipt}/confirm"),
            None,
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    confirm(bad.clone()).await;
    let status = admin_json(admin, "/api/suppliers").await;
    let caller = &status["suppliers"][0];
    assert_eq!(caller["complete"], false, "{caller}");
    assert_eq!(
        caller["receipt_confirmed"]["state"],
        "confirmed_failing_call"
    );
    assert_eq!(caller["receipt_confirmed"]["call_id"], bad_id);
    assert!(caller["receipt_confirmed"]["evidence"]
        .as_str()
        .unwrap()
        .contains(&format!("confirm the receipt of call {good_id}")));

    confirm(good.clone()).await;
    let status = admin_json(admin, "/api/suppliers").await;
    let caller = &status["suppliers"][0];
    assert_eq!(caller["complete"], true, "{caller}");
    assert_eq!(
        steps(caller),
        [
            ("received".to_owned(), Some(good_id)),
            ("passed".to_owned(), Some(good_id)),
            ("confirmed".to_owned(), Some(good_id)),
        ]
    );
    assert_eq!(caller["receipt_confirmed"]["receipt"], good.as_str());
    assert_eq!(caller["confirmable"], Value::Null);
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

/// What a foreign web page in the administrator's browser can send: each is refused with the
/// reason, and nothing changes; the same requests from the listener's own page pass.
#[tokio::test]
async fn cross_site_requests_are_refused_with_the_reason_and_change_nothing() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let admin = server.admin();
    let receipt = registration_call(&pki, &server, &caller_id()).await;
    let own = format!("127.0.0.1:{}", admin.port());
    let reset = Some(r#"{"confirm":"reset"}"#);
    let confirm = format!("/api/receipts/{receipt}/confirm");

    // A cross-site form or no-cors fetch: text/plain needs no CORS preflight.
    let plain = admin_request_with(
        admin,
        "POST",
        "/api/journal/reset",
        &[("host", &own), ("content-type", "text/plain")],
        reset,
    )
    .await;
    assert_eq!(plain.status, 415, "{}", plain.body);
    assert!(plain.body.contains("application/json"), "{}", plain.body);
    let bare = admin_request_with(admin, "POST", &confirm, &[("host", &own)], None).await;
    assert_eq!(bare.status, 415, "{}", bare.body);

    // Another origin, even with a JSON body (a page that got a preflight answered elsewhere).
    for origin in ["http://evil.example", "http://127.0.0.1:1", "null"] {
        let foreign = admin_request_with(
            admin,
            "POST",
            "/api/journal/reset",
            &[
                ("host", &own),
                ("content-type", "application/json"),
                ("origin", origin),
            ],
            reset,
        )
        .await;
        assert_eq!(foreign.status, 403, "{origin}: {}", foreign.body);
        assert!(foreign.body.contains("Origin"), "{}", foreign.body);
    }
    let fetched = admin_request_with(
        admin,
        "POST",
        &confirm,
        &[
            ("host", &own),
            ("content-type", "application/json"),
            ("sec-fetch-site", "cross-site"),
        ],
        Some("{}"),
    )
    .await;
    assert_eq!(fetched.status, 403, "{}", fetched.body);

    // DNS rebinding: evil.example resolved to 127.0.0.1, so the browser sends its name.
    let rebound = format!("evil.example:{}", admin.port());
    for (method, path, body) in [
        ("GET", "/api/calls", None),
        ("GET", "/", None),
        ("GET", "/api/events", None),
        ("POST", "/api/journal/reset", reset),
    ] {
        let reply = admin_request_with(
            admin,
            method,
            path,
            &[("host", &rebound), ("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.body);
        assert!(reply.body.contains("DNS rebinding"), "{}", reply.body);
        assert!(!reply.body.contains(&receipt), "{}", reply.body);
    }

    // Nothing changed: the call and its unconfirmed receipt are still there.
    let journal = server.journal();
    assert_eq!(journal.calls.len(), 1);
    let detail = admin_json(admin, &format!("/api/calls/{}", journal.calls[0].id)).await;
    assert_eq!(detail["receipts"][0]["confirmed"], false);

    // The listener's own page: same origin, JSON.
    let same = admin_request_with(
        admin,
        "POST",
        &confirm,
        &[
            ("host", &own),
            ("content-type", "application/json"),
            ("origin", &format!("http://{own}")),
            ("sec-fetch-site", "same-origin"),
        ],
        Some("{}"),
    )
    .await;
    assert_eq!(same.status, 200, "{}", same.body);
    let localhost = admin_request_with(
        admin,
        "GET",
        "/api/calls",
        &[("host", &format!("localhost:{}", admin.port()))],
        None,
    )
    .await;
    assert_eq!(localhost.status, 200, "{}", localhost.body);
}

/// A name of the machine (a compose service name) is accepted once configured.
#[tokio::test]
async fn a_configured_admin_host_name_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = dfdg_mock::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        certs_dir: dir.path().join("certs"),
        journal: dir.path().join("journal.sqlite"),
        ..dfdg_mock::config::Config::default()
    };
    config.catalog.dirs = Vec::new();
    config.onboarding.registry = dir.path().join("suppliers.toml");
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.hosts = vec!["Mock-Admin.CI".to_owned()];
    config.server_names = vec!["dfdg-mock".to_owned()];
    let instance = dfdg_mock::instance::Instance::build(config).unwrap();
    let soap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = admin_listener.local_addr().unwrap();
    let running = instance.start(soap, Some(admin_listener)).await.unwrap();
    for (host, status) in [
        ("mock-admin.ci:8080", 200),
        ("dfdg-mock:8080", 200),
        ("other.ci:8080", 403),
    ] {
        let reply = admin_request_with(admin, "GET", "/api/calls", &[("host", host)], None).await;
        assert_eq!(reply.status, status, "{host}: {}", reply.body);
    }
    running.stop().await.unwrap();
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

/// A rule naming an operation the catalog does not serve loads (it is valid) but can never
/// match: the live reload says so, with check's "did you mean", and so does the file watcher's.
#[tokio::test]
async fn a_live_reload_warns_about_rules_naming_unknown_operations() {
    let pki = Pki::new();
    let rules = tempfile::tempdir().unwrap();
    let file = rules.path().join("rules.toml");
    std::fs::write(&file, "[[rule]]\nname = \"ok\"\nwhen.operation = \"GetVariablePersonStatus\"\nrespond.fault = { code = 1010 }\n").unwrap();
    let catalog = dfdg_mock::wsdl::Catalog::load(&dfdg_mock::config::CatalogConfig {
        dirs: vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl")],
        ..dfdg_mock::config::CatalogConfig::default()
    });
    let server = TestServer::start_with(
        &pki,
        Options {
            admin: Some(AdminOptions::loopback()),
            scenarios: Some(rules.path().to_path_buf()),
            catalog: Some(Arc::new(catalog.catalog)),
            ..Options::default()
        },
    )
    .await;
    let status = server.app.scenarios().subscribe().borrow().clone();
    assert!(status.warnings.is_empty(), "{:?}", status.warnings);

    let mut reloads = server.reloads();
    reloads.mark_unchanged();
    std::fs::write(&file, "[[rule]]\nname = \"typo\"\nwhen.operation = \"GetVariablePersonStatuss\"\nrespond.fault = { code = 1010 }\n").unwrap();
    tokio::time::timeout(
        Duration::from_secs(10),
        reloads.wait_for(|reload| reload.source == "scenarios"),
    )
    .await
    .expect("the file watcher did not reload within 10 s")
    .unwrap();
    let status = server.app.scenarios().subscribe().borrow().clone();
    assert!(status.ok, "{status:?}");
    assert_eq!(status.warnings.len(), 1, "{status:?}");
    assert!(
        status.warnings[0].contains("rules.toml:")
            && status.warnings[0].contains("rule \"typo\"")
            && status.warnings[0].contains("did you mean \"GetVariablePersonStatus\""),
        "{status:?}"
    );
    let reply = admin_request(server.admin(), "POST", "/api/scenarios/reload", None, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("can never match"), "{}", reply.body);
    assert!(reply.body.contains("did you mean"), "{}", reply.body);
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

/// `calls --follow` as a child process, its stdout line by line.
struct Follow {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Follow {
    fn start(journal: &std::path::Path, extra: &[&str]) -> Follow {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
            .args(["calls", "--follow", "--journal"])
            .arg(journal)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Follow { child, lines }
    }

    async fn next(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.lines.recv())
            .await
            .expect("calls --follow printed nothing new")
            .expect("calls --follow ended")
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_follow_starts_at_the_newest_call_in_the_columns_of_calls() {
    let pki = Pki::new();
    let server = TestServer::with_admin(&pki).await;
    let first = registration_call(&pki, &server, &caller_id()).await;
    let second = registration_call(&pki, &server, &caller_id()).await;

    let mut follow = Follow::start(&server.journal_path, &[]);
    let header = follow.next().await;
    for column in [
        "ID",
        "TIME (UTC)",
        "CALLER",
        "OPERATION",
        "OUTCOME",
        "RECEIPT",
        "RULE",
        "FINDINGS",
    ] {
        assert!(header.contains(column), "{header}");
    }
    // The newest call only, not the whole journal.
    let newest = follow.next().await;
    assert!(newest.contains(&second), "{newest}");
    assert!(aligned(&header, &newest), "{header}\n{newest}");
    let third = registration_call(&pki, &server, &caller_id()).await;
    let line = follow.next().await;
    assert!(line.contains(&third), "{line}");
    assert!(line.contains("SaveAvailabilityAssessment"), "{line}");
    assert!(aligned(&header, &line), "{header}\n{line}");
    drop(follow);

    // --from-start: every call, oldest first.
    let mut all = Follow::start(&server.journal_path, &["--from-start"]);
    assert!(all.next().await.starts_with("ID "));
    for receipt in [&first, &second, &third] {
        let line = all.next().await;
        assert!(line.contains(receipt.as_str()), "{line}");
    }
    drop(all);
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

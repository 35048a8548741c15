//! The core: mutual TLS, caller identity, SOAP answers and faults, and the journal.

use std::time::Duration;

use bytes::Bytes;
use dfdg_mock::config::{ClientAuthMode, Limits};
use dfdg_mock::journal::{Outcome, RejectionReason};
use dfdg_mock::pki::CertificateShape;
use http_body_util::Full;

use crate::support::*;

const ACTION: &str = "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment";

#[tokio::test]
async fn oces3_call_gets_a_receipt_and_is_journaled_with_its_caller_id() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let caller_id = format!("CVR:{CVR}-UUID:{OCES3_UUID}");
    let client = pki.client_with(Some(&pki.oces3_client()));

    let reply = client
        .soap11(server.addr, ACTION, &registration(&caller_id))
        .await
        .unwrap();

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type().starts_with("text/xml"));
    assert!(reply.body.contains("<SaveAvailabilityAssessmentResponse xmlns=\"urn:dfdg-mock:JobcenterMessageService:2\">"), "{}", reply.body);
    let receipt = element_text(&reply.body, "MessageIdentifier").unwrap();
    let log_reference = element_text(&reply.body, "ServiceRequestLogReferenceIdentifier").unwrap();
    assert_ne!(receipt, log_reference);
    assert!(uuid::Uuid::parse_str(receipt).is_ok());
    assert!(element_text(&reply.body, "EventDate").is_some());

    let journal = server.journal();
    assert_eq!(journal.calls.len(), 1);
    let call = &journal.calls[0];
    let identity = call.record.identity.as_ref().unwrap();
    assert_eq!(identity.caller_id, caller_id);
    assert_eq!(identity.cvr.as_deref(), Some(CVR));
    assert!(
        identity
            .subject
            .contains("organizationIdentifier=NTRDK-91234567"),
        "{}",
        identity.subject
    );
    assert_eq!(call.record.receipts, vec![receipt.to_owned()]);
    assert_eq!(call.record.outcome, Outcome::Receipt);
    assert_eq!(
        call.record.operation.as_deref(),
        Some("SaveAvailabilityAssessment")
    );
    assert_eq!(call.record.operation_namespace.as_deref(), Some(NS));
    assert_eq!(call.record.soap_version.as_deref(), Some("1.1"));
    assert_eq!(call.record.soap_action.as_deref(), Some(ACTION));
    assert_eq!(call.record.http_status, 200);
    assert!(call.record.tls_version.starts_with("TLSv1."));
    let headers = call.record.star_headers.as_ref().unwrap();
    assert_eq!(
        headers["request_user"]["user_identifier"],
        caller_id.as_str()
    );
    assert_eq!(headers["active_organisation"]["organisation_type"], "8");
    assert!(String::from_utf8_lossy(&call.record.response_body).contains(receipt));
    assert_eq!(
        reply
            .headers
            .get("x-dfdg-mock-call-id")
            .unwrap()
            .to_str()
            .unwrap(),
        call.id.to_string()
    );
}

#[tokio::test]
async fn oces2_call_is_journaled_with_its_fid_caller_id() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let client = pki.client_with(Some(&pki.oces2_client()));

    let reply = client
        .soap11(
            server.addr,
            ACTION,
            &registration("CVR:91234567-FID:1234567890123"),
        )
        .await
        .unwrap();

    assert_eq!(reply.status, 200, "{}", reply.body);
    let journal = server.journal();
    let identity = journal.calls[0].record.identity.as_ref().unwrap();
    assert_eq!(identity.caller_id, "CVR:91234567-FID:1234567890123");
}

/// The four certificates that must never get through.
fn bad_clients(pki: &Pki) -> Vec<(&'static str, Client, RejectionReason)> {
    let foreign = Pki::named("Some Other CA");
    let impostor = Pki::named("dfdg-mock Test CA");
    let server_only = pki.server.clone();
    vec![
        (
            "no certificate",
            pki.client_with(None),
            RejectionReason::NoCertificate,
        ),
        (
            "foreign CA",
            pki.client_with(Some(&foreign.oces3_client())),
            RejectionReason::UnknownCa,
        ),
        (
            "CA impostor with the trusted CA's name",
            pki.client_with(Some(&impostor.oces3_client())),
            RejectionReason::BadSignature,
        ),
        (
            "expired",
            pki.client_with(Some(&pki.client(
                CertificateShape::Oces3 {
                    uuid: uuid::Uuid::new_v4(),
                },
                -1,
            ))),
            RejectionReason::Expired,
        ),
        (
            "server-only certificate",
            pki.client_with(Some(&server_only)),
            RejectionReason::WrongKeyUsage,
        ),
    ]
}

#[tokio::test]
async fn require_mode_refuses_bad_certificates_and_journals_why() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;

    for (name, client, _) in bad_clients(&pki) {
        let result = client.soap11(server.addr, ACTION, &registration("x")).await;
        assert!(result.is_err(), "{name}: got an answer: {result:?}");
    }

    let journal = server.stop().await;
    assert!(journal.calls.is_empty(), "a refused caller got through");
    let mut reasons: Vec<RejectionReason> =
        journal.rejections.iter().map(|r| r.record.reason).collect();
    reasons.reverse(); // oldest first
    let expected: Vec<RejectionReason> = bad_clients(&pki).into_iter().map(|(_, _, r)| r).collect();
    assert_eq!(reasons, expected);
    for rejection in &journal.rejections {
        assert_eq!(rejection.record.mode, "require");
        assert!(rejection.record.peer.starts_with("127.0.0.1:"));
        match rejection.record.reason {
            RejectionReason::NoCertificate => assert!(rejection.record.identity.is_none()),
            _ => {
                // The presented certificate's identity is recorded.
                let identity = rejection.record.identity.as_ref().unwrap();
                assert!(!identity.fingerprint.is_empty());
            }
        }
    }
    let foreign = journal
        .rejections
        .iter()
        .find(|r| r.record.reason == RejectionReason::UnknownCa)
        .unwrap();
    assert!(foreign
        .record
        .identity
        .as_ref()
        .unwrap()
        .caller_id
        .starts_with("CVR:91234567-UUID:"));
}

#[tokio::test]
async fn diagnose_mode_answers_bad_certificates_with_dfdg_faults() {
    let pki = Pki::new();
    let server = TestServer::start_with(
        &pki,
        Options {
            mode: ClientAuthMode::Diagnose,
            ..Options::default()
        },
    )
    .await;

    for (name, client, reason) in bad_clients(&pki) {
        let reply = client
            .soap11(server.addr, ACTION, &registration("x"))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reply.status, 500, "{name}: {}", reply.body);
        assert!(
            reply.body.contains("<faultcode>s:Client</faultcode>"),
            "{name}: {}",
            reply.body
        );
        let code = element_text(&reply.body, "ErrorCode").unwrap();
        let message = element_text(&reply.body, "Message").unwrap();
        match reason {
            RejectionReason::NoCertificate => assert_eq!(code, "1101", "{name}"),
            _ => assert_eq!(code, "1012", "{name}"),
        }
        let expected_words = match reason {
            RejectionReason::NoCertificate => "no client certificate",
            RejectionReason::UnknownCa => "not issued by a trusted CA",
            RejectionReason::Expired => "expired on",
            RejectionReason::BadSignature => "issued by another CA",
            _ => "not valid for client authentication",
        };
        assert!(message.contains(expected_words), "{name}: {message}");
        assert!(
            !reply.body.contains("MessageIdentifier"),
            "{name}: a receipt leaked"
        );
    }

    // A good certificate still passes in diagnose mode.
    let good = pki.client_with(Some(&pki.oces3_client()));
    let reply = good
        .soap11(server.addr, ACTION, &registration("x"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    let journal = server.stop().await;
    let mut outcomes: Vec<String> = journal
        .calls
        .iter()
        .map(|c| c.record.outcome.label())
        .collect();
    outcomes.reverse();
    assert_eq!(
        outcomes,
        [
            "fault 1101",
            "fault 1012",
            "fault 1012",
            "fault 1012",
            "fault 1012",
            "receipt"
        ]
    );
}

#[tokio::test]
async fn soap12_is_answered_in_soap12() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    let reply = client
        .soap12(server.addr, "urn:jobnet#GetBorgerstatus", &soap12_lookup())
        .await
        .unwrap();

    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type().starts_with("application/soap+xml"));
    assert!(reply
        .body
        .contains("http://www.w3.org/2003/05/soap-envelope"));
    assert!(reply.body.contains("GetBorgerstatusResponse"));
    let journal = server.journal();
    assert_eq!(journal.calls[0].record.soap_version.as_deref(), Some("1.2"));
    assert_eq!(
        journal.calls[0].record.soap_action.as_deref(),
        Some("urn:jobnet#GetBorgerstatus")
    );
}

#[tokio::test]
async fn malformed_xml_gets_a_client_fault_with_line_and_column() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let broken = "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">\n<soap:Body>\n  <Op></Po>\n</soap:Body></soap:Envelope>";

    let reply = client.soap11(server.addr, ACTION, broken).await.unwrap();

    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(
        reply.body.contains("<faultcode>s:Client</faultcode>"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("line 3, column"), "{}", reply.body);
    assert_eq!(element_text(&reply.body, "ErrorCode"), Some("1014"));
    let journal = server.journal();
    assert_eq!(journal.calls[0].record.outcome.label(), "fault 1014");
    assert_eq!(journal.calls[0].record.request_body, broken.as_bytes());
}

#[tokio::test]
async fn a_dtd_with_entities_is_refused_and_never_expanded() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Op>&lol2;</Op></soap:Body></soap:Envelope>"#;

    let reply = client.soap11(server.addr, ACTION, bomb).await.unwrap();

    assert_eq!(reply.status, 400);
    assert!(
        reply
            .body
            .contains("document type declarations (DTDs) are not allowed"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("line 2, column 1"), "{}", reply.body);
    assert!(!reply.body.contains("lollol"));
}

#[tokio::test]
async fn an_oversized_body_gets_413_with_a_fault() {
    let pki = Pki::new();
    let server = TestServer::with_limits(
        &pki,
        Limits {
            max_body: 4096,
            ..Limits::default()
        },
    )
    .await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let large = registration(&"x".repeat(8192));

    let reply = client.soap11(server.addr, ACTION, &large).await.unwrap();

    assert_eq!(reply.status, 413);
    assert!(
        reply.body.contains("larger than this server accepts"),
        "{}",
        reply.body
    );
    let journal = server.journal();
    assert_eq!(journal.calls[0].record.http_status, 413);
    assert!(journal.calls[0].record.request_truncated);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_cut_off_too() {
    let pki = Pki::new();
    let server = TestServer::with_limits(
        &pki,
        Limits {
            max_body: 4096,
            ..Limits::default()
        },
    )
    .await;
    let client = pki.client_with(Some(&pki.oces3_client())).http2();
    // Over HTTP/2 without content-length the limit is enforced while reading.
    let request = http::Request::post("/x")
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(registration(&"y".repeat(8192)))))
        .unwrap();
    let reply = client.send(server.addr, request).await.unwrap();
    assert_eq!(reply.status, 413);
}

/// A server that takes at most 4 KiB of body.
async fn small_body_server(pki: &Pki) -> TestServer {
    TestServer::with_limits(
        pki,
        Limits {
            max_body: 4096,
            ..Limits::default()
        },
    )
    .await
}

fn assert_413_journaled(server: &TestServer) {
    let journal = server.journal();
    let call = &journal.calls[0].record;
    assert_eq!(call.http_status, 413);
    assert!(call.request_truncated);
    assert!(
        call.detail
            .as_deref()
            .unwrap()
            .contains("larger than this server accepts"),
        "{call:?}"
    );
}

#[tokio::test]
async fn an_oversized_body_announced_over_http2_gets_413_with_a_fault() {
    let pki = Pki::new();
    let server = small_body_server(&pki).await;
    let client = pki.client_with(Some(&pki.oces3_client())).http2();
    let large = registration(&"z".repeat(64 * 1024));
    let request = http::Request::post("/JobcenterMessageService/2/JobcenterMessageService.svc")
        .header("content-type", "text/xml; charset=utf-8")
        .header("content-length", large.len())
        .body(Full::new(Bytes::from(large)))
        .unwrap();

    let reply = client.send(server.addr, request).await.unwrap();

    assert_eq!(reply.status, 413, "{}", reply.body);
    assert!(reply.content_type().starts_with("text/xml"));
    assert!(
        reply.body.contains("<faultcode>s:Client</faultcode>"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("larger than this server accepts"),
        "{}",
        reply.body
    );
    assert_413_journaled(&server);
}

/// curl POSTs a 4 MiB registration to a server taking 4 KiB: the HTTP status, HTTP version and
/// body it printed (it must exit 0: 92 means the stream was reset instead of answered, 55 or
/// 56 that the connection broke).
async fn curl_oversized(pki: &Pki, server: &TestServer, args: &[&str]) -> String {
    let files = tempfile::tempdir().unwrap();
    let client = pki.oces3_client();
    let (ca, cert, key, body) = (
        files.path().join("ca.crt"),
        files.path().join("client.crt"),
        files.path().join("client.key"),
        files.path().join("large.xml"),
    );
    std::fs::write(&ca, pki.ca.cert_pem()).unwrap();
    std::fs::write(&cert, &client.cert_pem).unwrap();
    std::fs::write(&key, client.key_pem()).unwrap();
    std::fs::write(&body, registration(&"z".repeat(4 << 20))).unwrap();
    let port = server.addr.port();
    let mut curl = std::process::Command::new("curl");
    curl.arg("-sS")
        .args(args)
        .arg("--connect-to")
        .arg(format!("localhost:{port}:127.0.0.1:{port}"))
        .arg("--cacert")
        .arg(&ca)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["-H", "Content-Type: text/xml; charset=utf-8"])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("https://localhost:{port}/x"));
    let output = tokio::task::spawn_blocking(move || curl.output())
        .await
        .unwrap()
        .expect("curl is needed (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "curl {args:?}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_the_413_of_an_oversized_body_over_http2_and_chunked_http1() {
    let pki = Pki::new();
    for (args, version) in [
        // Announced by content-length over h2: the stream used to be reset (curl's error 92).
        (&["--http2"][..], "2"),
        // Chunked over HTTP/1.1, without waiting for 100 Continue.
        (
            &["--http1.1", "-H", "Transfer-Encoding: chunked"][..],
            "1.1",
        ),
    ] {
        let server = small_body_server(&pki).await;
        let printed = curl_oversized(&pki, &server, args).await;
        assert!(
            printed.ends_with(&format!("413 {version}")),
            "{args:?}: {printed}"
        );
        assert!(
            printed.contains("larger than this server accepts"),
            "{args:?}: {printed}"
        );
        assert_413_journaled(&server);
    }
}

#[tokio::test]
async fn a_chunked_http1_body_over_the_limit_gets_413_before_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new();
    let server = small_body_server(&pki).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let mut stream = client.connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /JobcenterMessageService/2/JobcenterMessageService.svc HTTP/1.1\r\n\
              Host: localhost\r\nContent-Type: text/xml; charset=utf-8\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
    // 2 MiB in chunks of 16 KiB, all of it sent before reading.
    let chunk = format!("4000\r\n{}\r\n", "x".repeat(16 * 1024));
    for _ in 0..128 {
        stream
            .write_all(chunk.as_bytes())
            .await
            .expect("the server stopped reading the body");
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    stream.flush().await.unwrap();

    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("</s:Envelope>") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("no answer within 10 s")
            .expect("the connection failed before the answer arrived");
        assert!(
            read > 0,
            "closed before the answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("larger than this server accepts"),
        "{answer}"
    );
    assert_413_journaled(&server);
}

#[tokio::test]
async fn wrong_content_type_gets_a_fault_saying_so() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    let request = http::Request::post("/x")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(registration("x"))))
        .unwrap();
    let reply = client.send(server.addr, request).await.unwrap();
    assert_eq!(reply.status, 415);
    assert!(
        reply
            .body
            .contains("Content-Type 'application/json' is not SOAP"),
        "{}",
        reply.body
    );

    // A SOAP 1.2 envelope sent as text/xml is answered in SOAP 1.2, naming the mismatch.
    let request = http::Request::post("/x")
        .header("content-type", "text/xml")
        .body(Full::new(Bytes::from(soap12_lookup())))
        .unwrap();
    let reply = client.send(server.addr, request).await.unwrap();
    assert_eq!(reply.status, 415);
    assert!(reply.content_type().starts_with("application/soap+xml"));
    assert!(
        reply.body.contains("must be sent as application/soap+xml"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn not_an_envelope_and_empty_body_get_faults() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let client = pki.client_with(Some(&pki.oces3_client()));

    let reply = client.soap11(server.addr, ACTION, "<html/>").await.unwrap();
    assert!(reply.body.contains("not a SOAP Envelope"), "{}", reply.body);
    let empty =
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body/></s:Envelope>";
    let reply = client.soap11(server.addr, ACTION, empty).await.unwrap();
    assert!(
        reply.body.contains("Body at line 1, column 65 is empty"),
        "{}",
        reply.body
    );
    let reply = client
        .soap11(server.addr, ACTION, "not xml at all")
        .await
        .unwrap();
    assert!(
        reply.body.contains("<faultcode>s:Client</faultcode>"),
        "{}",
        reply.body
    );
    assert_eq!(server.journal().calls.len(), 3);
}

#[tokio::test]
async fn http2_and_tls12_clients_are_served() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let certificate = pki.oces3_client();

    let h2 = pki.client_with(Some(&certificate)).http2();
    let reply = h2
        .soap11(server.addr, ACTION, &registration("x"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);

    let tls12 = Client::new(pki.ca.cert_der(), Some(&certificate), Versions::Tls12Only);
    let reply = tls12
        .soap11(server.addr, ACTION, &registration("x"))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);

    let journal = server.journal();
    let mut seen: Vec<(String, Option<String>)> = journal
        .calls
        .iter()
        .map(|c| (c.record.tls_version.clone(), c.record.alpn.clone()))
        .collect();
    seen.reverse();
    assert_eq!(
        seen,
        [
            ("TLSv1.3".to_owned(), Some("h2".to_owned())),
            ("TLSv1.2".to_owned(), None)
        ]
    );
}

#[tokio::test]
async fn the_journal_survives_a_restart() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let client = pki.client_with(Some(&pki.oces3_client()));

    let first = TestServer::start_with(
        &pki,
        Options {
            journal: Some(path.clone()),
            ..Options::default()
        },
    )
    .await;
    let reply = client
        .soap11(first.addr, ACTION, &registration("x"))
        .await
        .unwrap();
    let first_receipt = element_text(&reply.body, "MessageIdentifier")
        .unwrap()
        .to_owned();
    first.stop().await;

    let second = TestServer::start_with(
        &pki,
        Options {
            journal: Some(path.clone()),
            ..Options::default()
        },
    )
    .await;
    client
        .soap11(second.addr, ACTION, &registration("x"))
        .await
        .unwrap();
    let journal = second.stop().await;

    assert_eq!(journal.calls.len(), 2);
    assert_eq!(journal.calls[1].record.receipts, vec![first_receipt]);
    assert!(journal.calls[0].id > journal.calls[1].id);
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_cut_off_and_journaled() {
    let pki = Pki::new();
    let server = TestServer::with_limits(
        &pki,
        Limits {
            handshake_timeout: Duration::from_millis(200),
            ..Limits::default()
        },
    )
    .await;
    // Connect and say nothing: the server must close the connection by itself.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buffer = [0u8; 16];
    let read = tokio::io::AsyncReadExt::read(&mut stream, &mut buffer).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

    let journal = server.stop().await;
    assert_eq!(journal.rejections.len(), 1);
    assert_eq!(
        journal.rejections[0].record.reason,
        RejectionReason::HandshakeTimeout
    );
}

#[tokio::test]
async fn many_concurrent_calls_are_all_journaled() {
    let pki = Pki::new();
    let server = TestServer::start(&pki).await;
    let certificate = pki.oces3_client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let client = pki.client_with(Some(&certificate));
        let addr = server.addr;
        tasks.spawn(async move { client.soap11(addr, ACTION, &registration("x")).await });
    }
    let mut receipts = Vec::new();
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap().unwrap();
        receipts.push(
            element_text(&reply.body, "MessageIdentifier")
                .unwrap()
                .to_owned(),
        );
    }
    let journal = server.journal();
    assert_eq!(journal.calls.len(), 40);
    for receipt in receipts {
        assert!(journal
            .calls
            .iter()
            .any(|c| c.record.receipts == [receipt.clone()]));
    }
}

/// Opens a mutual-TLS connection and returns the raw stream, for writing partial requests.
async fn raw_tls(
    pki: &Pki,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    pki.client_with(Some(&pki.oces3_client()))
        .connect(addr)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new();
    let server = TestServer::with_limits(
        &pki,
        Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    )
    .await;
    let mut stream = raw_tls(&pki, server.addr).await;
    stream
        .write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    // The server closes the connection on its own (with or without a 408 first).
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408_with_a_fault() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new();
    let server = TestServer::with_limits(
        &pki,
        Limits {
            body_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
    )
    .await;
    let mut stream = raw_tls(&pki, server.addr).await;
    stream
        .write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n<s:Envelope")
        .await
        .unwrap();
    stream.flush().await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    drop(stream);
    let journal = server.stop().await;
    assert_eq!(journal.calls[0].record.http_status, 408);
    assert!(journal.calls[0]
        .record
        .detail
        .as_deref()
        .unwrap()
        .contains("did not arrive in time"));
}

#[tokio::test]
async fn the_connection_cap_holds_further_connections_until_one_closes() {
    let pki = Pki::new();
    let server = TestServer::with_limits(
        &pki,
        Limits {
            max_connections: 1,
            ..Limits::default()
        },
    )
    .await;
    // The first connection is established and stays open.
    let first = raw_tls(&pki, server.addr).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let addr = server.addr;
    let mut second =
        tokio::spawn(async move { client.soap11(addr, ACTION, &registration("x")).await });
    // While the first is open, the second is not served (this can only fail if the cap leaks).
    let early = tokio::time::timeout(Duration::from_millis(300), &mut second).await;
    assert!(
        early.is_err(),
        "a second connection was served past the cap"
    );
    drop(first);
    let reply = second.await.unwrap().unwrap();
    assert_eq!(reply.status, 200);
}

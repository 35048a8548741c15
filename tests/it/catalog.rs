//! The WSDL catalog over mutual TLS: `?wsdl` and its parts, every shipped operation answered
//! with a schema-valid response, validation in enforce and report mode, routing refusals, the
//! real STAR WSDL from `../shared/fixtures` when it is there, and a real SOAP client (Python
//! zeep) built from the served WSDL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dfdg_mock::config::{CatalogConfig, ValidationMode};
use dfdg_mock::journal::Outcome;
use dfdg_mock::soap::SoapVersion;
use dfdg_mock::wsdl::{xml, Catalog, Route};
use time::OffsetDateTime;

use crate::suites::{self, Suite};
use crate::support::*;

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl")
}

fn catalog_of(dir: &Path, validation: ValidationMode) -> Arc<Catalog> {
    let loaded = Catalog::load(&CatalogConfig {
        dirs: vec![dir.to_owned()],
        validation,
        services: HashMap::new(),
    });
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    Arc::new(loaded.catalog)
}

async fn serve(pki: &Pki, catalog: &Arc<Catalog>) -> TestServer {
    TestServer::start_with(
        pki,
        Options {
            catalog: Some(Arc::clone(catalog)),
            ..Options::default()
        },
    )
    .await
}

/// Every (route, example request) of a catalog.
fn routes(catalog: &Catalog) -> Vec<Route<'_>> {
    let mut routes = Vec::new();
    for endpoint in &catalog.endpoints {
        for port in &endpoint.ports {
            for operation in &port.operations {
                routes.push(
                    catalog
                        .route(
                            &endpoint.path,
                            port.version,
                            operation.action.as_deref(),
                            &operation.input_name,
                        )
                        .unwrap(),
                );
            }
        }
    }
    routes
}

/// Calls every operation of `catalog` with a valid request and checks each answer against the
/// operation's output schema.
async fn call_every_operation(catalog: &Arc<Catalog>) -> usize {
    let pki = Pki::new();
    let server = serve(&pki, catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let mut called = 0;
    for route in routes(catalog) {
        let request = route.example_request(OffsetDateTime::now_utc());
        assert_eq!(route.validate(&request), vec![], "{request}");
        let reply = client
            .soap_to(
                server.addr,
                &route.endpoint.path,
                route.port.version,
                route.operation.action.as_deref(),
                &request,
            )
            .await
            .unwrap();
        assert_eq!(
            reply.status, 200,
            "{}: {}",
            route.operation.name, reply.body
        );
        assert!(
            reply
                .content_type()
                .starts_with(route.port.version.media_type()),
            "{}",
            reply.content_type()
        );
        assert_eq!(
            route.validate_response(&reply.body),
            vec![],
            "{}: {}",
            route.operation.name,
            reply.body
        );
        called += 1;
    }
    let journal = server.journal();
    assert_eq!(journal.calls.len(), called);
    for call in &journal.calls {
        assert!(call.record.service.is_some(), "{:?}", call.record);
        assert!(call.record.service_operation.is_some());
        assert!(
            call.record.findings.is_empty(),
            "{:?}",
            call.record.findings
        );
        assert_eq!(call.record.outcome, Outcome::Receipt);
    }
    called
}

#[tokio::test]
async fn each_shipped_service_serves_its_wsdl_and_parts_over_mutual_tls() {
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Enforce);
    let pki = Pki::new();
    let server = serve(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let base = format!("https://localhost:{}", server.addr.port());
    for endpoint in &catalog.endpoints {
        for query in ["?wsdl", "?WSDL", "?singleWsdl"] {
            let reply = client
                .get(server.addr, &format!("{}{query}", endpoint.path))
                .await
                .unwrap();
            assert_eq!(reply.status, 200, "{}", reply.body);
            assert!(reply.content_type().starts_with("text/xml"));
            let root = xml::parse(&reply.body).unwrap();
            assert!(root.is(dfdg_mock::wsdl::WSDL_NS, "definitions"));
            assert!(
                reply
                    .body
                    .contains(&format!("location=\"{base}{}\"", endpoint.path)),
                "{}",
                reply.body
            );
        }
        // Follow every imported part, as a client would.
        let wsdl = client
            .get(server.addr, &format!("{}?wsdl", endpoint.path))
            .await
            .unwrap()
            .body;
        let mut pending: Vec<String> = part_links(&wsdl, &base);
        let mut fetched = std::collections::HashSet::new();
        while let Some(link) = pending.pop() {
            if !fetched.insert(link.clone()) {
                continue;
            }
            let reply = client.get(server.addr, &link).await.unwrap();
            assert_eq!(reply.status, 200, "{link}: {}", reply.body);
            xml::parse(&reply.body).unwrap();
            pending.extend(part_links(&reply.body, &base));
        }
        assert_eq!(fetched.len(), 7, "{fetched:?}");
    }
    let listing = client.get(server.addr, "/").await.unwrap();
    assert_eq!(listing.status, 200);
    assert!(
        listing.body.contains("GetVariablePersonStatus [read]"),
        "{}",
        listing.body
    );
    assert!(listing.body.contains("SaveAvailabilityAssessment [write]"));
    let example = client
        .get(
            server.addr,
            "/JobnetCitizenStatusService/10/JobnetCitizenStatusService.svc?example=GetBorgerstatus",
        )
        .await
        .unwrap();
    assert_eq!(example.status, 200);
    assert!(example.content_type().starts_with("application/soap+xml"));
    assert!(
        example
            .body
            .contains("<CivilRegistrationIdentifier>0101701234<"),
        "{}",
        example.body
    );
    let missing = client.get(server.addr, "/Nope.svc?wsdl").await.unwrap();
    assert_eq!(missing.status, 404);
    assert!(missing
        .body
        .contains("/CodeListService/1/CodeListService.svc"));
}

/// Paths of `?part=` links in a served document.
fn part_links(text: &str, base: &str) -> Vec<String> {
    text.split('"')
        .filter(|value| value.starts_with(base) && value.contains("?part="))
        .map(|value| value[base.len()..].to_owned())
        .collect()
}

#[tokio::test]
async fn every_shipped_operation_answers_a_valid_request_with_a_schema_valid_response() {
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Enforce);
    assert_eq!(call_every_operation(&catalog).await, 6);
}

#[tokio::test]
async fn the_printed_demo_call_passes_enforce_mode() {
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Enforce);
    let pki = Pki::new();
    let server = serve(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let reply = client
        .soap11(
            server.addr,
            &format!(
                "{}#SaveAvailabilityAssessment",
                dfdg_mock::cli::DEMO_NAMESPACE
            ),
            &registration(&format!("CVR:{CVR}-UUID:{OCES3_UUID}")),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let receipt = element_text(&reply.body, "MessageIdentifier").unwrap();
    let call = &server.journal().calls[0];
    assert_eq!(call.record.receipts, vec![receipt.to_owned()]);
    assert_eq!(
        call.record.service.as_deref(),
        Some("JobcenterMessageService")
    );
    assert_eq!(
        call.record.service_operation.as_deref(),
        Some("SaveAvailabilityAssessment")
    );
}

#[tokio::test]
async fn invalid_request_in_enforce_mode_gets_fault_1014_with_the_element_path() {
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Enforce);
    let pki = Pki::new();
    let server = serve(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let request = registration("CVR:91234567-UUID:x").replace(
        "<CivilRegistrationIdentifier>0101701234<",
        "<CivilRegistrationIdentifier>010170-1234<",
    );
    let reply = client
        .soap11(
            server.addr,
            "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment",
            &request,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(
        reply.body.contains("<ErrorCode>1014</ErrorCode>"),
        "{}",
        reply.body
    );
    assert!(
        reply
            .body
            .contains("/SaveAvailabilityAssessment/CivilRegistrationIdentifier: expected a value of type CivilRegistrationIdentifierType, found '010170-1234' does not match the pattern [0-9]{10}"),
        "{}",
        reply.body
    );
    let call = &server.journal().calls[0];
    assert_eq!(
        call.record.outcome,
        Outcome::Fault {
            code: Some(1014),
            fault_code: "Client".to_owned()
        }
    );
    assert_eq!(
        call.record.findings[0].path,
        "/SaveAvailabilityAssessment/CivilRegistrationIdentifier"
    );
}

#[tokio::test]
async fn missing_star_headers_get_8232_and_8233_in_enforce_mode() {
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Enforce);
    let pki = Pki::new();
    let server = serve(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let request = registration("CVR:91234567-UUID:x");
    let action = "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment";
    let start = request.find("<ActiveOrganisationHeader").unwrap();
    let end =
        request.find("</ActiveOrganisationHeader>").unwrap() + "</ActiveOrganisationHeader>".len();
    let without_organisation = format!("{}{}", &request[..start], &request[end..]);
    let reply = client
        .soap11(server.addr, action, &without_organisation)
        .await
        .unwrap();
    assert!(
        reply.body.contains("<ErrorCode>8232</ErrorCode>"),
        "{}",
        reply.body
    );

    let start = request.find("<RequestUserMetadataHeader").unwrap();
    let end = request.find("</RequestUserMetadataHeader>").unwrap()
        + "</RequestUserMetadataHeader>".len();
    let without_user = format!("{}{}", &request[..start], &request[end..]);
    let reply = client
        .soap11(server.addr, action, &without_user)
        .await
        .unwrap();
    assert!(
        reply.body.contains("<ErrorCode>8233</ErrorCode>"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn report_mode_journals_findings_and_answers_normally() {
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Report);
    let pki = Pki::new();
    let server = serve(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let request = registration("CVR:91234567-UUID:x").replace(
        "<AvailabilityAssessmentCode>1<",
        "<AvailabilityAssessmentCode>9<",
    );
    let reply = client
        .soap11(
            server.addr,
            "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment",
            &request,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let call = &server.journal().calls[0];
    assert_eq!(call.record.outcome, Outcome::Receipt);
    assert_eq!(call.record.findings.len(), 1, "{:?}", call.record.findings);
    assert_eq!(
        call.record.findings[0].path,
        "/SaveAvailabilityAssessment/AvailabilityAssessmentCode"
    );
}

#[tokio::test]
async fn soap12_service_answers_in_soap12_and_refuses_soap11() {
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Report);
    let pki = Pki::new();
    let server = serve(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let reply = client
        .soap12(
            server.addr,
            "urn:dfdg-mock:JobnetCitizenStatusService:10#GetBorgerstatus",
            &soap12_lookup(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.content_type().starts_with("application/soap+xml"));
    assert!(reply.body.contains(dfdg_mock::soap::SOAP12_ENVELOPE));
    assert!(
        reply.body.contains(
            "<GetBorgerstatusResponse xmlns=\"urn:dfdg-mock:JobnetCitizenStatusService:10\">"
        ),
        "{}",
        reply.body
    );

    let soap11 = format!(
        r#"<s:Envelope xmlns:s="{}"><s:Body><GetBorgerstatus xmlns="urn:dfdg-mock:JobnetCitizenStatusService:10"><CivilRegistrationIdentifier>0101701234</CivilRegistrationIdentifier></GetBorgerstatus></s:Body></s:Envelope>"#,
        dfdg_mock::soap::SOAP11_ENVELOPE
    );
    let reply = client
        .soap_to(
            server.addr,
            "/JobnetCitizenStatusService/10/JobnetCitizenStatusService.svc",
            SoapVersion::V11,
            None,
            &soap11,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 500);
    assert!(
        reply
            .body
            .contains("JobnetCitizenStatusService speaks SOAP 1.2 here, but the request is a SOAP 1.1 envelope"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn unknown_paths_and_operations_are_refused_with_what_is_served() {
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Report);
    let pki = Pki::new();
    let server = serve(&pki, &catalog).await;
    let client = pki.client_with(Some(&pki.oces3_client()));
    let request = registration("CVR:91234567-UUID:x");
    let reply = client
        .soap_to(
            server.addr,
            "/Nowhere.svc",
            SoapVersion::V11,
            None,
            &request,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 404);
    assert!(
        reply
            .body
            .contains("/PersonStatusService/20/PersonStatusService.svc"),
        "{}",
        reply.body
    );

    let reply = client
        .soap_to(
            server.addr,
            "/CodeListService/1/CodeListService.svc",
            SoapVersion::V11,
            Some("urn:wrong"),
            &request,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 500);
    assert!(
        reply
            .body
            .contains("known operations: GetCodeList, GetCodeListNames"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn star_planner_calendar_wsdl_answers_each_operation_when_the_fixture_is_there() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/star");
    if !dir.join("PlannerExternalCalendarService.wsdl").is_file() {
        eprintln!(
            "skipped: {} is not there (the project's tests do not need it)",
            dir.display()
        );
        return;
    }
    // Load a copy of just that file, so other fixtures cannot interfere.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("PlannerExternalCalendarService.wsdl"),
        copy.path().join("PlannerExternalCalendarService.wsdl"),
    )
    .unwrap();
    let catalog = catalog_of(copy.path(), ValidationMode::Enforce);
    let names: Vec<String> = routes(&catalog)
        .iter()
        .map(|r| r.operation.name.clone())
        .collect();
    assert_eq!(
        names,
        [
            "CreateEvents",
            "UpdateEvents",
            "DeleteEvents",
            "GetEvents",
            "GetResources"
        ]
    );
    assert_eq!(call_every_operation(&catalog).await, 5);
}

#[tokio::test]
async fn zeep_builds_its_client_from_the_served_wsdl_and_calls_over_mutual_tls() {
    let Some(python) = suites::require(Suite::Python, suites::python(&["zeep"])) else {
        return;
    };
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Enforce);
    let pki = Pki::new();
    let server = serve(&pki, &catalog).await;
    let files = tempfile::tempdir().unwrap();
    let client_certificate = pki.oces3_client();
    let ca = files.path().join("ca.crt");
    let cert = files.path().join("client.crt");
    let key = files.path().join("client.key");
    std::fs::write(&ca, pki.ca.cert_pem()).unwrap();
    std::fs::write(&cert, &client_certificate.cert_pem).unwrap();
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        file.write_all(client_certificate.key_pem().as_bytes())
            .unwrap();
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/zeep_client.py");
    let base = format!("https://localhost:{}", server.addr.port());
    let mut command = std::process::Command::new(python);
    command
        .arg(&script)
        .args(["--base", &base])
        .arg("--ca")
        .arg(&ca)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--caller", &format!("CVR:{CVR}-UUID:{OCES3_UUID}")]);
    // The server runs on this test's runtime: wait for Python on a blocking thread.
    // The script bounds each HTTP request with a timeout of its own.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "zeep client failed:\n{stdout}\n{stderr}"
    );
    println!("{stdout}");
    for line in [
        "JobcenterMessageService.SaveAvailabilityAssessment receipt ",
        "PersonStatusService.GetVariablePersonStatus cpr 0101701234",
        "CodeListService.GetCodeList items 1",
        "JobnetCitizenStatusService.GetBorgerstatus status Aktiv",
        "fault 1014",
    ] {
        assert!(
            stdout.contains(line),
            "missing '{line}' in:\n{stdout}\n{stderr}"
        );
    }
    let journal = server.journal();
    let receipts: Vec<&str> = journal
        .calls
        .iter()
        .filter(|c| c.record.service_operation.as_deref() == Some("SaveAvailabilityAssessment"))
        .flat_map(|c| c.record.receipts.iter().map(String::as_str))
        .collect();
    assert!(
        receipts.iter().any(|r| stdout.contains(r)),
        "the receipt zeep printed is journaled: {receipts:?}\n{stdout}"
    );
    for call in journal.calls.iter().filter(|c| c.record.method == "POST") {
        let identity = call.record.identity.as_ref().unwrap();
        assert_eq!(identity.caller_id, format!("CVR:{CVR}-UUID:{OCES3_UUID}"));
    }
}

/// A second real SOAP stack beside zeep: Node's node-soap builds its clients from the served
/// WSDL, calls SOAP 1.1 and SOAP 1.2 services over mutual TLS in enforce mode, and gets a DFDG
/// fault for an invalid request.
#[tokio::test]
async fn node_soap_builds_its_client_from_the_served_wsdl_and_calls_over_mutual_tls() {
    let Some(dir) = suites::require(Suite::Node, suites::node_soap()) else {
        return;
    };
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Enforce);
    let pki = Pki::new();
    let server = serve(&pki, &catalog).await;
    let files = tempfile::tempdir().unwrap();
    let client_certificate = pki.oces3_client();
    let ca = files.path().join("ca.crt");
    let cert = files.path().join("client.crt");
    let key = files.path().join("client.key");
    std::fs::write(&ca, pki.ca.cert_pem()).unwrap();
    std::fs::write(&cert, &client_certificate.cert_pem).unwrap();
    std::fs::write(&key, client_certificate.key_pem()).unwrap();
    let base = format!("https://localhost:{}", server.addr.port());
    let caller = format!("CVR:{CVR}-UUID:{OCES3_UUID}");
    let mut command = std::process::Command::new("node");
    command
        .arg(dir.join("soap_client.js"))
        .args(["--base", &base])
        .arg("--ca")
        .arg(&ca)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--caller", &caller])
        .current_dir(&dir);
    // The server runs on this test's runtime: wait for Node on a blocking thread. The script
    // bounds its WSDL fetches with a timeout of its own.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node-soap client failed:\n{stdout}\n{stderr}"
    );
    for line in [
        "JobcenterMessageService.SaveAvailabilityAssessment receipt ",
        "PersonStatusService.GetVariablePersonStatus answered ServiceRequestLogReferenceIdentifier",
        "JobnetCitizenStatusService.GetBorgerstatus answered ServiceRequestLogReferenceIdentifier",
        "fault 1014",
    ] {
        assert!(
            stdout.contains(line),
            "missing '{line}' in:\n{stdout}\n{stderr}"
        );
    }
    let journal = server.journal();
    let posts: Vec<_> = journal
        .calls
        .iter()
        .filter(|c| c.record.method == "POST")
        .collect();
    assert_eq!(posts.len(), 4, "{stdout}");
    for call in &posts {
        assert_eq!(call.record.identity.as_ref().unwrap().caller_id, caller);
    }
    let soap12 = posts
        .iter()
        .find(|c| c.record.service_operation.as_deref() == Some("GetBorgerstatus"))
        .unwrap();
    assert_eq!(soap12.record.soap_version.as_deref(), Some("1.2"));
    assert!(
        soap12.record.findings.is_empty(),
        "{:?}",
        soap12.record.findings
    );
    let receipt = posts
        .iter()
        .filter(|c| c.record.outcome == dfdg_mock::journal::Outcome::Receipt)
        .find(|c| c.record.service_operation.as_deref() == Some("SaveAvailabilityAssessment"))
        .unwrap();
    assert!(stdout.contains(&receipt.record.receipts[0]), "{stdout}");
}

/// Every generated message of the shipped catalog and of STAR's own WSDL passes two
/// independent validators (libxml2 and `xmlschema`) as well as ours.
#[test]
fn generated_messages_validate_with_libxml2_and_xmlschema_too() {
    let Some(python) = suites::require(Suite::Python, suites::python(&["lxml", "xmlschema"]))
    else {
        return;
    };
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Enforce);
    let shipped = crate::contracts::crosscheck(&python, &catalog);
    assert_eq!(shipped.refusals, Vec::<String>::new());
    // 6 operations: 6 bodies and 12 headers in requests, 6 response bodies.
    assert_eq!(
        (shipped.operations_accepted, shipped.parts_accepted),
        (6, 24)
    );
    println!(
        "shipped catalog: {} of {} operations accepted by all three validators",
        shipped.operations_accepted, shipped.operations
    );
    if let Some(copy) = crate::contracts::star_copy() {
        let catalog = catalog_of(copy.path(), ValidationMode::Enforce);
        let star = crate::contracts::crosscheck(&python, &catalog);
        assert_eq!(star.refusals, Vec::<String>::new());
        assert_eq!((star.operations_accepted, star.parts_accepted), (5, 20));
        println!(
            "STAR fixture: {} of {} operations accepted by all three validators",
            star.operations_accepted, star.operations
        );
    }
}

/// Follows `dfdg-mock calls --follow` on `journal`: its lines, as they come.
fn follow_calls(journal: &Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .args(["calls", "--follow", "--journal"])
        .arg(journal)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}

fn next_line(lines: &std::sync::mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("calls --follow printed nothing within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soapaction_naming_another_operation_is_a_finding_that_every_view_shows() {
    let pki = Pki::new();
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Report);
    let server = TestServer::start_with(
        &pki,
        Options {
            catalog: Some(Arc::clone(&catalog)),
            admin: Some(AdminOptions::loopback()),
            ..Options::default()
        },
    )
    .await;
    let path = CODE_LIST_PATH;
    let names = code_list_names_request(&catalog);
    let (mut follow, lines) = follow_calls(&server.journal_path);
    assert!(next_line(&lines).starts_with("ID "));

    // The Body asks for GetCodeListNames, the SOAPAction names GetCodeList.
    let client = pki.client_with(Some(&pki.oces3_client()));
    let reply = client
        .soap_to(
            server.addr,
            path,
            SoapVersion::V11,
            Some("urn:dfdg-mock:CodeListService:1#GetCodeList"),
            &names,
        )
        .await
        .unwrap();
    // Report mode: answered, as the Body asked.
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("GetCodeListNamesResponse"),
        "{}",
        reply.body
    );

    // The journal: the Body's operation, routed to it, with the finding.
    let journal = server.journal();
    let call = &journal.calls[0];
    assert_eq!(call.record.operation.as_deref(), Some("GetCodeListNames"));
    assert_eq!(
        call.record.service_operation.as_deref(),
        Some("GetCodeListNames")
    );
    assert_eq!(call.record.findings.len(), 1, "{:?}", call.record.findings);
    assert_eq!(call.record.findings[0].path, "SOAPAction");
    assert!(
        call.record.findings[0]
            .found
            .contains("the action of GetCodeList,"),
        "{}",
        call.record.findings[0]
    );

    // `calls --follow` and `calls`: the same operation, and the finding.
    let line = next_line(&lines);
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(line.contains(" GetCodeListNames "), "{line}");
    assert!(line.ends_with("1: SOAPAction"), "{line}");
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .args(["calls", "--journal"])
        .arg(&server.journal_path)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let row = table.lines().nth(1).unwrap();
    assert!(row.contains(" GetCodeListNames "), "{table}");
    assert!(row.ends_with("1: SOAPAction"), "{table}");

    // The admin API: the list and the call's detail.
    let list = admin_json(server.admin(), "/api/calls").await;
    assert_eq!(list["calls"][0]["operation"], "GetCodeListNames");
    assert_eq!(list["calls"][0]["wsdl_findings"], 1);
    let detail = admin_json(server.admin(), &format!("/api/calls/{}", call.id)).await;
    assert_eq!(detail["call"]["operation"], "GetCodeListNames");
    assert_eq!(detail["call"]["findings"][0]["path"], "SOAPAction");

    // `verify` counts it as a call of GetCodeListNames, and of no other operation.
    let expectations = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        expectations.path(),
        "[[expect]]\noperation = \"GetCodeListNames\"\nexactly = 1\n\n[[expect]]\noperation = \"GetCodeList\"\nexactly = 0\n",
    )
    .unwrap();
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_dfdg-mock"))
        .args(["verify", "--expect"])
        .arg(expectations.path())
        .arg("--journal")
        .arg(&server.journal_path)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
}

#[tokio::test]
async fn enforce_mode_answers_a_mismatching_or_unknown_soapaction_with_1014() {
    let pki = Pki::new();
    let catalog = catalog_of(&shipped_dir(), ValidationMode::Enforce);
    let server = serve(&pki, &catalog).await;
    let path = CODE_LIST_PATH;
    let names = code_list_names_request(&catalog);
    let client = pki.client_with(Some(&pki.oces3_client()));
    for (action, found) in [
        (
            "urn:dfdg-mock:CodeListService:1#GetCodeList",
            "the action of GetCodeList,",
        ),
        (
            "urn:somewhere-else#GetCodeListNames",
            "which no operation of CodeListService declares",
        ),
    ] {
        let reply = client
            .soap_to(server.addr, path, SoapVersion::V11, Some(action), &names)
            .await
            .unwrap();
        assert_eq!(reply.status, 500, "{}", reply.body);
        assert_eq!(element_text(&reply.body, "ErrorCode"), Some("1014"));
        assert!(
            reply.body.contains("SOAPAction: expected"),
            "{}",
            reply.body
        );
        assert!(reply.body.contains(found), "{}", reply.body);
        let journal = server.journal();
        assert_eq!(journal.calls[0].record.findings[0].path, "SOAPAction");
    }
    // Its own action is answered.
    let reply = client
        .soap_to(
            server.addr,
            path,
            SoapVersion::V11,
            Some("urn:dfdg-mock:CodeListService:1#GetCodeListNames"),
            &names,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
}

//! The onboarding rehearsal through the real server: the supplier registry authorizes each call
//! with DFDG's codes (1012, 1013, 4575, revoked certificates), identity findings are journaled
//! (and are faults in strict mode), receipts are confirmed only by their own supplier, and the
//! three-step status and HTML report follow a whole onboarding.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dfdg_mock::config::{CatalogConfig, ValidationMode};
use dfdg_mock::identity::CallerIdentity;
use dfdg_mock::journal::Outcome;
use dfdg_mock::pki::{CertificateShape, IssuedCertificate};
use dfdg_mock::soap::SoapVersion;
use dfdg_mock::supplier::{Category, LiveRegistry, Registry, Supplier};
use dfdg_mock::wsdl::Catalog;
use serde_json::Value;
use time::OffsetDateTime;

use crate::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_dfdg-mock");
const PERSON_STATUS_PATH: &str = "/PersonStatusService/20/PersonStatusService.svc";

fn shipped_catalog() -> Arc<Catalog> {
    shipped_catalog_in(ValidationMode::Report)
}

fn shipped_catalog_in(validation: ValidationMode) -> Arc<Catalog> {
    let loaded = Catalog::load(&CatalogConfig {
        dirs: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl")],
        validation,
        services: HashMap::new(),
    });
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    Arc::new(loaded.catalog)
}

fn caller_id(certificate: &IssuedCertificate) -> String {
    CallerIdentity::from_der(&certificate.cert_der)
        .unwrap()
        .caller_id
}

/// Another OCES3 certificate of the same test organisation (a different system UUID).
fn second_client(pki: &Pki) -> IssuedCertificate {
    pki.client(
        CertificateShape::Oces3 {
            uuid: uuid::Uuid::new_v4(),
        },
        365,
    )
}

fn supplier(name: &str, category: Category, identity: &str, services: &[&str]) -> Supplier {
    Supplier {
        name: name.to_owned(),
        cvr: CVR.to_owned(),
        category,
        identities: vec![identity.to_owned()],
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        revoked: Vec::new(),
        systems: Vec::new(),
    }
}

/// A registry file in `dir` holding `suppliers`.
fn registry_file(dir: &Path, suppliers: Vec<Supplier>) -> PathBuf {
    let path = dir.join("suppliers.toml");
    Registry::of(suppliers).save(&path).unwrap();
    path
}

/// The server with the shipped catalog, the registry at `path`, and an admin listener.
async fn serve(pki: &Pki, registry: &Path, strict: bool) -> TestServer {
    TestServer::start_with(
        pki,
        Options {
            catalog: Some(shipped_catalog()),
            suppliers: Some(Arc::new(LiveRegistry::load(registry, strict).unwrap())),
            admin: Some(AdminOptions::loopback()),
            ..Options::default()
        },
    )
    .await
}

/// A valid GetVariablePersonStatus request carrying STAR's headers for `user_identifier` (a
/// system call, user type 3).
fn person_status_request(catalog: &Catalog, user_identifier: &str) -> String {
    let route = catalog
        .route(
            PERSON_STATUS_PATH,
            SoapVersion::V11,
            Some("urn:dfdg-mock:PersonStatusService:20#GetVariablePersonStatus"),
            &dfdg_mock::soap::QualifiedName {
                namespace: "urn:dfdg-mock:PersonStatusService:20".to_owned(),
                local: "GetVariablePersonStatus".to_owned(),
            },
        )
        .unwrap();
    let example = route.example_request(OffsetDateTime::now_utc());
    let demo = registration(user_identifier);
    let headers = &demo[demo.find("<soap:Header>").unwrap() + "<soap:Header>".len()
        ..demo.find("</soap:Header>").unwrap()];
    let start = example.find("<s:Header>").unwrap() + "<s:Header>".len();
    let end = example.find("</s:Header>").unwrap();
    format!("{}{headers}{}", &example[..start], &example[end..])
}

async fn person_status(
    pki: &Pki,
    server: &TestServer,
    certificate: &IssuedCertificate,
    user_identifier: &str,
) -> Reply {
    let request = person_status_request(&shipped_catalog(), user_identifier);
    pki.client_with(Some(certificate))
        .soap_to(
            server.addr,
            PERSON_STATUS_PATH,
            SoapVersion::V11,
            Some("urn:dfdg-mock:PersonStatusService:20#GetVariablePersonStatus"),
            &request,
        )
        .await
        .unwrap()
}

async fn save_availability(
    pki: &Pki,
    server: &TestServer,
    certificate: &IssuedCertificate,
) -> Reply {
    pki.client_with(Some(certificate))
        .soap11(
            server.addr,
            &format!(
                "{}#SaveAvailabilityAssessment",
                dfdg_mock::cli::DEMO_NAMESPACE
            ),
            &registration(&caller_id(certificate)),
        )
        .await
        .unwrap()
}

fn fault_code(server: &TestServer) -> Option<i64> {
    match &server.journal().calls[0].record.outcome {
        Outcome::Fault { code, .. } => *code,
        other => panic!("not a fault: {other:?}"),
    }
}

fn dfdg(args: &[&str], journal: &Path, registry: &Path) -> std::process::Output {
    std::process::Command::new(BINARY)
        .args(args)
        .arg("--journal")
        .arg(journal)
        .arg("--suppliers")
        .arg(registry)
        .env_remove("DFDG_MOCK_JOURNAL")
        .env_remove("DFDG_MOCK_SUPPLIERS")
        .output()
        .unwrap()
}

#[tokio::test]
async fn scenario_rules_match_on_the_supplier_and_its_category() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let small = pki.oces3_client();
    let medium = second_client(&pki);
    let registry = registry_file(
        dir.path(),
        vec![
            supplier(
                "Lille ApS",
                Category::Small,
                &caller_id(&small),
                &["PersonStatusService"],
            ),
            supplier(
                "Mellem ApS",
                Category::Medium,
                &caller_id(&medium),
                &["PersonStatusService"],
            ),
        ],
    );
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir(&scenarios).unwrap();
    std::fs::write(
        scenarios.join("suppliers.toml"),
        "[[rule]]\nname = \"small-gets-1010\"\nwhen = { supplier = \"Lille ApS\", category = \"small\" }\nrespond = { fault = { code = 1010 } }\n",
    )
    .unwrap();
    let server = TestServer::start_with(
        &pki,
        Options {
            catalog: Some(shipped_catalog()),
            suppliers: Some(Arc::new(LiveRegistry::load(&registry, false).unwrap())),
            scenarios: Some(scenarios),
            ..Options::default()
        },
    )
    .await;
    let reply = person_status(&pki, &server, &small, &caller_id(&small)).await;
    assert!(reply.body.contains("1010"), "{}", reply.body);
    assert_eq!(
        server.journal().calls[0].record.scenario_rule.as_deref(),
        Some("small-gets-1010")
    );
    let reply = person_status(&pki, &server, &medium, &caller_id(&medium)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn a_trusted_certificate_of_no_registered_supplier_gets_1012() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let other = second_client(&pki);
    let registry = registry_file(
        dir.path(),
        vec![supplier(
            "Anden ApS",
            Category::Large,
            &caller_id(&other),
            &["PersonStatusService"],
        )],
    );
    let server = serve(&pki, &registry, false).await;
    let reply = person_status(
        &pki,
        &server,
        &pki.oces3_client(),
        &caller_id(&pki.oces3_client()),
    )
    .await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body.contains("1012"), "{}", reply.body);
    assert_eq!(fault_code(&server), Some(1012));
    let call = &server.journal().calls[0].record;
    assert_eq!(call.authorization.as_deref(), Some("refused 1012"));
    assert_eq!(call.supplier, None);
    assert!(call
        .detail
        .as_deref()
        .unwrap()
        .contains("belongs to no registered supplier"));
}

#[tokio::test]
async fn a_service_the_supplier_may_not_call_gets_1013() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let client = pki.oces3_client();
    let registry = registry_file(
        dir.path(),
        vec![supplier(
            "Kodeliste ApS",
            Category::Small,
            &caller_id(&client),
            &["CodeListService"],
        )],
    );
    let server = serve(&pki, &registry, false).await;
    let reply = person_status(&pki, &server, &client, &caller_id(&client)).await;
    assert!(reply.body.contains("1013"), "{}", reply.body);
    assert_eq!(fault_code(&server), Some(1013));
    let call = &server.journal().calls[0].record;
    assert_eq!(call.authorization.as_deref(), Some("refused 1013"));
    assert_eq!(call.supplier.as_deref(), Some("Kodeliste ApS"));
    assert!(call.detail.as_deref().unwrap().contains("CodeListService"));
}

/// In enforce mode the registry decides before the schema: a supplier's invalid call is
/// journaled under the supplier (1014), and a caller that may not call the service gets 1013
/// without learning what its schema expects.
#[tokio::test]
async fn enforce_mode_authorizes_before_it_validates() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let allowed = pki.oces3_client();
    let other = second_client(&pki);
    let registry = registry_file(
        dir.path(),
        vec![
            supplier(
                "Ledighed A/S",
                Category::Large,
                &caller_id(&allowed),
                &["JobcenterMessageService"],
            ),
            supplier(
                "Kodeliste ApS",
                Category::Large,
                &caller_id(&other),
                &["CodeListService"],
            ),
        ],
    );
    let server = TestServer::start_with(
        &pki,
        Options {
            catalog: Some(shipped_catalog_in(ValidationMode::Enforce)),
            suppliers: Some(Arc::new(LiveRegistry::load(&registry, false).unwrap())),
            ..Options::default()
        },
    )
    .await;
    let action = format!(
        "{}#SaveAvailabilityAssessment",
        dfdg_mock::cli::DEMO_NAMESPACE
    );
    let invalid = |certificate: &IssuedCertificate| {
        registration(&caller_id(certificate)).replace(
            "<CivilRegistrationIdentifier>0101701234<",
            "<CivilRegistrationIdentifier>010170-1234<",
        )
    };
    let reply = pki
        .client_with(Some(&allowed))
        .soap11(server.addr, &action, &invalid(&allowed))
        .await
        .unwrap();
    assert!(
        reply.body.contains("<ErrorCode>1014</ErrorCode>"),
        "{}",
        reply.body
    );
    let reply = pki
        .client_with(Some(&other))
        .soap11(server.addr, &action, &invalid(&other))
        .await
        .unwrap();
    assert!(
        reply.body.contains("<ErrorCode>1013</ErrorCode>"),
        "{}",
        reply.body
    );
    assert!(
        !reply.body.contains("CivilRegistrationIdentifier"),
        "{}",
        reply.body
    );

    let calls = server.journal().calls;
    let of = |name: &str| {
        calls
            .iter()
            .map(|call| &call.record)
            .find(|record| record.supplier.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no call journaled under {name}"))
    };
    let (first, second) = (of("Ledighed A/S"), of("Kodeliste ApS"));
    assert!(
        matches!(
            first.outcome,
            Outcome::Fault {
                code: Some(1014),
                ..
            }
        ),
        "{:?}",
        first.outcome
    );
    assert_eq!(first.authorization.as_deref(), Some("allowed"));
    assert!(
        matches!(
            second.outcome,
            Outcome::Fault {
                code: Some(1013),
                ..
            }
        ),
        "{:?}",
        second.outcome
    );
}

#[tokio::test]
async fn a_small_supplier_calling_a_write_operation_gets_4575() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let client = pki.oces3_client();
    let registry = registry_file(
        dir.path(),
        vec![supplier(
            "Lille ApS",
            Category::Small,
            &caller_id(&client),
            &["JobcenterMessageService"],
        )],
    );
    let server = serve(&pki, &registry, false).await;
    let reply = save_availability(&pki, &server, &client).await;
    assert!(reply.body.contains("4575"), "{}", reply.body);
    assert_eq!(fault_code(&server), Some(4575));
    let call = &server.journal().calls[0].record;
    assert_eq!(call.authorization.as_deref(), Some("refused 4575"));
    assert_eq!(
        call.service_operation.as_deref(),
        Some("SaveAvailabilityAssessment")
    );
    assert!(call.detail.as_deref().unwrap().contains("may only read"));
}

#[tokio::test]
async fn a_user_identifier_that_is_not_the_certificate_is_a_finding_and_a_fault_when_strict() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let client = pki.oces3_client();
    let registry = registry_file(
        dir.path(),
        vec![supplier(
            "Lille ApS",
            Category::Small,
            &caller_id(&client),
            &["PersonStatusService"],
        )],
    );
    let someone_else = format!("CVR:{CVR}-UUID:00000000-0000-4000-8000-000000000000");

    let lenient = serve(&pki, &registry, false).await;
    let reply = person_status(&pki, &lenient, &client, &someone_else).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let call = &lenient.journal().calls[0].record;
    assert_eq!(call.authorization.as_deref(), Some("allowed"));
    let checks: Vec<&str> = call
        .identity_findings
        .iter()
        .map(|f| f.check.as_str())
        .collect();
    assert_eq!(checks, ["identity"]);
    assert_eq!(call.identity_findings[0].found, someone_else);
    assert_eq!(call.identity_findings[0].expected, caller_id(&client));
    let detail = admin_json(
        lenient.admin(),
        &format!("/api/calls/{}", lenient.journal().calls[0].id),
    )
    .await;
    let identity = detail["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "identity")
        .unwrap();
    assert_eq!(identity["passed"], false);

    let strict = serve(&pki, &registry, true).await;
    let reply = person_status(&pki, &strict, &client, &someone_else).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(reply.body.contains("strict"), "{}", reply.body);
    assert_eq!(fault_code(&strict), Some(1012));
    assert_eq!(strict.journal().calls[0].record.identity_findings.len(), 1);
    // The proper identity passes in strict mode too.
    let reply = person_status(&pki, &strict, &client, &caller_id(&client)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_with_1012_and_the_reason_journaled() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let client = pki.oces3_client();
    let registry = registry_file(
        dir.path(),
        vec![supplier(
            "Lille ApS",
            Category::Small,
            &caller_id(&client),
            &["PersonStatusService"],
        )],
    );
    let server = serve(&pki, &registry, false).await;
    let reply = person_status(&pki, &server, &client, &caller_id(&client)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // Revoke with the CLI, as an operator would, then have the server read the file again.
    let output = std::process::Command::new(BINARY)
        .args(["supplier", "revoke", "--suppliers"])
        .arg(&registry)
        .args(["Lille ApS", "--identity", &caller_id(&client)])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    server.app.suppliers().reload().unwrap();

    let reply = person_status(&pki, &server, &client, &caller_id(&client)).await;
    assert!(reply.body.contains("1012"), "{}", reply.body);
    let call = &server.journal().calls[0].record;
    assert_eq!(call.authorization.as_deref(), Some("refused 1012"));
    assert_eq!(call.supplier.as_deref(), Some("Lille ApS"));
    assert!(
        call.detail.as_deref().unwrap().contains("revoked"),
        "{call:?}"
    );
}

#[tokio::test]
async fn registry_changes_are_picked_up_without_restart_and_a_broken_file_keeps_the_last() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suppliers.toml");
    let client = pki.oces3_client();
    // No file yet: open mode.
    let server = serve(&pki, &path, false).await;
    let reply = person_status(&pki, &server, &client, &caller_id(&client)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        server.journal().calls[0].record.authorization.as_deref(),
        Some("open")
    );

    let mut reloads = server.reloads();
    reloads.mark_unchanged();
    registry_file(
        dir.path(),
        vec![supplier(
            "Anden ApS",
            Category::Small,
            "CVR:99999999-UUID:someone",
            &["PersonStatusService"],
        )],
    );
    // The file watcher reloads the registry and says so.
    let reload = tokio::time::timeout(
        Duration::from_secs(10),
        reloads.wait_for(|reload| reload.source == "suppliers"),
    )
    .await
    .expect("the registry file was not picked up within 10 s")
    .unwrap()
    .clone();
    assert!(reload.ok, "{reload:?}");
    assert!(!server.app.suppliers().current().is_open());
    let reply = person_status(&pki, &server, &client, &caller_id(&client)).await;
    assert!(reply.body.contains("1012"), "{}", reply.body);

    std::fs::write(
        &path,
        "[[supplier]]\nname = \"X\"\ncvr = \"91234567\"\ncategory = \"huge\"\n",
    )
    .unwrap();
    let error = format!("{:#}", server.app.suppliers().reload().unwrap_err());
    assert!(error.contains("suppliers.toml:4:12"), "{error}");
    assert_eq!(
        server.app.suppliers().current().suppliers()[0].name,
        "Anden ApS"
    );
}

#[tokio::test]
async fn confirming_an_unknown_or_someone_elses_receipt_is_refused() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let mine = pki.oces3_client();
    let theirs = second_client(&pki);
    let registry = registry_file(
        dir.path(),
        vec![
            supplier(
                "Lille ApS",
                Category::Small,
                &caller_id(&mine),
                &["PersonStatusService"],
            ),
            supplier(
                "Anden ApS",
                Category::Small,
                &caller_id(&theirs),
                &["PersonStatusService"],
            ),
        ],
    );
    let server = serve(&pki, &registry, false).await;
    let reply = person_status(&pki, &server, &mine, &caller_id(&mine)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let receipt = server.journal().calls[0].record.receipts[0].clone();

    let path = format!("/onboarding/receipts/{receipt}/confirm");
    let foreign = admin_request(
        server.admin(),
        "POST",
        &path,
        None,
        Some(r#"{"supplier":"Anden ApS"}"#),
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    assert!(foreign.body.contains("Lille ApS"), "{}", foreign.body);
    assert!(
        foreign.body.contains("only its own receipts"),
        "{}",
        foreign.body
    );

    let unknown = admin_request(
        server.admin(),
        "POST",
        "/onboarding/receipts/00000000-0000-4000-8000-000000000000/confirm",
        None,
        Some(r#"{"supplier":"Lille ApS"}"#),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert!(unknown.body.contains("unknown receipt"), "{}", unknown.body);

    // The older route needs the supplier too while a registry is in force.
    let nameless = admin_request(
        server.admin(),
        "POST",
        &format!("/api/receipts/{receipt}/confirm"),
        None,
        None,
    )
    .await;
    assert_eq!(nameless.status, 400, "{}", nameless.body);
    let stranger = admin_request(
        server.admin(),
        "POST",
        &path,
        None,
        Some(r#"{"supplier":"Ukendt"}"#),
    )
    .await;
    assert_eq!(stranger.status, 404, "{}", stranger.body);

    let output = dfdg(
        &["confirm", &receipt, "--supplier", "Anden ApS"],
        &server.journal_path,
        &registry,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("only its own receipts"), "{stderr}");
    let output = dfdg(
        &[
            "confirm",
            "00000000-0000-4000-8000-000000000000",
            "--supplier",
            "Lille ApS",
        ],
        &server.journal_path,
        &registry,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("no call in the journal"));

    let own = admin_request(
        server.admin(),
        "POST",
        &path,
        None,
        Some(r#"{"supplier":"lille aps"}"#),
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.body);
    let own: Value = serde_json::from_str(&own.body).unwrap();
    assert_eq!(own["supplier"], "Lille ApS");
}

#[tokio::test]
async fn a_small_supplier_completes_the_three_steps_and_gets_its_report() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let client = pki.oces3_client();
    let registry = registry_file(
        dir.path(),
        vec![supplier(
            "Lille ApS",
            Category::Small,
            &caller_id(&client),
            &["PersonStatusService"],
        )],
    );
    let server = serve(&pki, &registry, false).await;
    let reply = person_status(&pki, &server, &client, &caller_id(&client)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // A lookup has no ServiceReceipt: its ServiceRequestLogReferenceIdentifier is the receipt.
    let receipt = element_text(&reply.body, "ServiceRequestLogReferenceIdentifier")
        .unwrap()
        .to_owned();
    assert_eq!(
        server.journal().calls[0].record.receipts,
        vec![receipt.clone()]
    );

    let status = dfdg(
        &["onboarding", "status", "--json", "--supplier", "Lille ApS"],
        &server.journal_path,
        &registry,
    );
    assert_eq!(status.status.code(), Some(1), "{status:?}");
    let json: Value = serde_json::from_slice(&status.stdout).unwrap();
    let lille = &json["suppliers"][0];
    assert_eq!(lille["supplier"], "Lille ApS");
    assert_eq!(lille["call_received"]["done"], true);
    assert_eq!(lille["call_received"]["receipt"], receipt.as_str());
    assert_eq!(lille["identity_checked"]["done"], true, "{lille}");
    assert_eq!(lille["receipt_confirmed"]["done"], false);
    assert_eq!(
        lille["identity"]["certificate"]["caller_id"],
        caller_id(&client)
    );
    assert_eq!(
        lille["identity"]["headers"]["user_identifier"],
        caller_id(&client)
    );
    assert_eq!(lille["identity"]["registered"]["cvr"], CVR);
    let table = dfdg(&["onboarding", "status"], &server.journal_path, &registry);
    assert_eq!(table.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&table.stdout).contains("incomplete"));

    let confirmed = dfdg(
        &["confirm", &receipt, "--supplier", "Lille ApS"],
        &server.journal_path,
        &registry,
    );
    assert!(confirmed.status.success(), "{confirmed:?}");

    let report = dir.path().join("rapport.html");
    let status = dfdg(
        &["onboarding", "status", "--html", report.to_str().unwrap()],
        &server.journal_path,
        &registry,
    );
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("complete"), "{stdout}");
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.contains(&caller_id(&client)));
    assert!(page.contains(&receipt));
    assert!(page.contains("Kvittering bekræftet"));
    // Both languages throughout, the allowed services, times to the second.
    for text in [
        "Tilladte webservices",
        "Allowed services",
        "PersonStatusService",
        "alle identitetskontroller bestod",
        "every identity check passed",
    ] {
        assert!(page.contains(text), "the report lacks {text:?}");
    }
    let fraction = regex::Regex::new(r"T\d\d:\d\d:\d\d\.\d").unwrap();
    assert!(!fraction.is_match(&page), "sub-second times in the report");

    let api = admin_json(server.admin(), "/api/suppliers").await;
    assert_eq!(api["open"], false);
    assert_eq!(api["suppliers"][0]["complete"], true);
    let calls = admin_json(server.admin(), "/api/calls?supplier=lille%20aps").await;
    assert_eq!(calls["calls"].as_array().unwrap().len(), 1);
    assert_eq!(calls["calls"][0]["supplier"], "Lille ApS");
    let none = admin_json(server.admin(), "/api/calls?supplier=Anden").await;
    assert_eq!(none["calls"].as_array().unwrap().len(), 0);
}

/// `supplier add` never replaces silently, names what it would change, checks service names
/// against the catalog; `revoke` refuses identities the supplier does not have; the first
/// registration says that open mode is over.
#[test]
fn supplier_commands_refuse_what_would_mislead_and_say_what_changes() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("suppliers.toml");
    let wsdl = Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl");
    let first = format!("CVR:{CVR}-UUID:{OCES3_UUID}");
    let second = format!("CVR:{CVR}-UUID:00000000-0000-4000-8000-000000000002");
    let supplier = |args: &[&str]| {
        let output = std::process::Command::new(BINARY)
            .arg("supplier")
            .args(args)
            .arg("--suppliers")
            .arg(&registry)
            .env_remove("DFDG_MOCK_SUPPLIERS")
            .env_remove("DFDG_MOCK_WSDL")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let add = |identity: &str, services: &str, extra: &[&str]| {
        let mut args = vec![
            "add",
            "--name",
            "Lille ApS",
            "--cvr",
            CVR,
            "--category",
            "small",
            "--identity",
            identity,
            "--services",
            services,
            "--wsdl",
            wsdl.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        supplier(&args)
    };

    // The first registration ends open mode, and says so.
    let (code, stdout, stderr) = add(&first, "personstatusservice", &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("open mode") && stderr.contains("1012"),
        "{stderr}"
    );
    let registered = Registry::load(&registry).unwrap();
    assert_eq!(registered.suppliers()[0].services, ["PersonStatusService"]);

    // The same again changes nothing, and says so.
    let (code, stdout, stderr) = add(&first, "PersonStatusService", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("nothing changed"), "{stdout}");
    assert!(!stderr.contains("open mode"), "{stderr}");

    // Another identity and service: refused without --force, with what would change.
    let before = std::fs::read(&registry).unwrap();
    let (code, _, stderr) = add(&second, "PersonStatusService,CodeListService", &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("already registered"), "{stderr}");
    assert!(
        stderr.contains("services added: CodeListService"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "identities dropped: {first} (their calls would get 1012)"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("identities added: {second}")),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(
        std::fs::read(&registry).unwrap(),
        before,
        "the registry changed"
    );

    // A misspelt service: refused with the catalog's name.
    let (code, _, stderr) = add(&first, "PersonStatusServic", &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("did you mean \"PersonStatusService\""),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&registry).unwrap(), before);

    // --force replaces, listing the changes.
    let (code, stdout, stderr) = add(&second, "PersonStatusService,CodeListService", &["--force"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("replaced Lille ApS"), "{stdout}");
    assert!(
        stdout.contains("services added: CodeListService"),
        "{stdout}"
    );
    assert_eq!(
        Registry::load(&registry).unwrap().suppliers()[0].identities,
        std::slice::from_ref(&second)
    );

    // revoke: an identity the supplier does not have is refused; its own is revoked once.
    let before = std::fs::read(&registry).unwrap();
    let (code, _, stderr) = supplier(&[
        "revoke",
        "Lille ApS",
        "--identity",
        "CVR:11111111-UUID:nobody",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("Lille ApS has no identity CVR:11111111-UUID:nobody"),
        "{stderr}"
    );
    assert!(stderr.contains(&second), "{stderr}");
    assert_eq!(std::fs::read(&registry).unwrap(), before);
    let (code, stdout, stderr) =
        supplier(&["revoke", "Lille ApS", "--identity", &second.to_lowercase()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("now refused with 1012"), "{stdout}");
    let revoked = Registry::load(&registry).unwrap();
    assert_eq!(
        revoked.suppliers()[0].revoked,
        std::slice::from_ref(&second)
    );
    assert!(revoked.suppliers()[0].identities.is_empty());
    let (code, stdout, _) = supplier(&["revoke", "Lille ApS", "--identity", &second]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("revoked already"), "{stdout}");

    // Removing the last supplier leaves a registry that refuses everyone: said too.
    let (code, _, stderr) = supplier(&["remove", "Lille ApS"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("every call is refused"), "{stderr}");
}

/// The shipped GetVariablePersonStatus answer carries both a ServiceReceipt and a log
/// reference: its receipt is the MessageIdentifier, and either id confirms it, on the command
/// line and through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_id_of_an_answer_confirms_its_receipt() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let client = pki.oces3_client();
    let registry = registry_file(
        dir.path(),
        vec![supplier(
            "Lille ApS",
            Category::Small,
            &caller_id(&client),
            &["PersonStatusService"],
        )],
    );
    let server = TestServer::start_with(
        &pki,
        Options {
            catalog: Some(shipped_catalog()),
            suppliers: Some(Arc::new(LiveRegistry::load(&registry, false).unwrap())),
            scenarios: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")),
            admin: Some(AdminOptions::loopback()),
            ..Options::default()
        },
    )
    .await;
    let reply = person_status(&pki, &server, &client, &caller_id(&client)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let message_identifier = element_text(&reply.body, "MessageIdentifier")
        .unwrap()
        .to_owned();
    let log_reference = element_text(&reply.body, "ServiceRequestLogReferenceIdentifier")
        .unwrap()
        .to_owned();
    assert_ne!(message_identifier, log_reference);
    assert_eq!(
        server.journal().calls[0].record.receipts,
        vec![message_identifier.clone()]
    );

    // The log reference, on the command line.
    let journal_path = server.journal_path.clone();
    let (registry_path, given) = (registry.clone(), log_reference.clone());
    let output = tokio::task::spawn_blocking(move || {
        dfdg(
            &["confirm", &given, "--supplier", "Lille ApS"],
            &journal_path,
            &registry_path,
        )
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(
        stdout.contains(&format!("receipt {message_identifier} of call ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("ServiceRequestLogReferenceIdentifier of the same answer"),
        "{stdout}"
    );
    let status = admin_json(server.admin(), "/api/suppliers").await;
    let lille = &status["suppliers"][0];
    assert_eq!(lille["receipt_confirmed"]["done"], true, "{lille}");
    assert_eq!(
        lille["receipt_confirmed"]["receipt"],
        message_identifier.as_str()
    );

    // Through the API, with a second call's log reference (upper case, as some clients print).
    let reply = person_status(&pki, &server, &client, &caller_id(&client)).await;
    let second_receipt = element_text(&reply.body, "MessageIdentifier")
        .unwrap()
        .to_owned();
    let second_reference = element_text(&reply.body, "ServiceRequestLogReferenceIdentifier")
        .unwrap()
        .to_uppercase();
    let confirmed = admin_request(
        server.admin(),
        "POST",
        &format!("/api/receipts/{second_reference}/confirm"),
        None,
        Some(r#"{"supplier":"Lille ApS"}"#),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let confirmed: Value = serde_json::from_str(&confirmed.body).unwrap();
    assert_eq!(confirmed["guid"], second_receipt.as_str());
    assert_eq!(confirmed["given"], second_reference.as_str());

    // Neither id of any answer: the error names both.
    let unknown = admin_request(
        server.admin(),
        "POST",
        "/api/receipts/00000000-0000-4000-8000-000000000000/confirm",
        None,
        Some(r#"{"supplier":"Lille ApS"}"#),
    )
    .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    let unknown: Value = serde_json::from_str(&unknown.body).unwrap();
    assert_eq!(unknown["reason"], "unknown_receipt");
    let message = unknown["error"].as_str().unwrap();
    assert!(
        message.contains("MessageIdentifier")
            && message.contains("ServiceRequestLogReferenceIdentifier"),
        "{message}"
    );
}

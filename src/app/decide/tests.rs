//! `decide` without a server: requests built from HTTP parts and bytes, a caller identity from a
//! freshly issued certificate, the shipped catalog and scenarios.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::*;
use crate::config::CatalogConfig;
use crate::pki::{CertificateAuthority, CertificateShape, ClientSpec};
use crate::scenario::Scenarios;
use crate::supplier::{Category, Supplier};
use crate::tls;

const SAVE_PATH: &str = "/JobcenterMessageService/2/JobcenterMessageService.svc";
const SAVE_ACTION: &str = "urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment";
const CODE_LIST_PATH: &str = "/CodeListService/1/CodeListService.svc";

fn catalog(validation: ValidationMode) -> Catalog {
    Catalog::load(&CatalogConfig {
        dirs: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("wsdl")],
        validation,
        services: HashMap::new(),
    })
    .catalog
}

fn shipped_scenarios() -> Scenarios {
    Scenarios::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")).unwrap()
}

/// A verified OCES3 caller, issued once for all tests.
fn identity() -> Arc<CallerIdentity> {
    static IDENTITY: OnceLock<Arc<CallerIdentity>> = OnceLock::new();
    IDENTITY
        .get_or_init(|| {
            let ca = CertificateAuthority::generate("decide test CA").unwrap();
            let issued = ca
                .issue_client(&ClientSpec {
                    name: "Fagsystem Test".into(),
                    organisation: "Testleverandør ApS".into(),
                    cvr: "91234567".into(),
                    shape: CertificateShape::Oces3 {
                        uuid: uuid::Uuid::nil(),
                    },
                    valid_days: 30,
                })
                .unwrap();
            Arc::new(CallerIdentity::from_der(&issued.cert_der).unwrap())
        })
        .clone()
}

fn verified() -> ClientCertificate {
    ClientCertificate::Verified(identity())
}

fn post(path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Request {
    let mut builder = http::Request::post(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    Request::parse(parts, Ok(body.into()), OffsetDateTime::now_utc())
}

fn soap11(path: &str, action: &str, body: &str) -> Request {
    let action = format!("\"{action}\"");
    post(
        path,
        &[
            ("content-type", "text/xml; charset=utf-8"),
            ("soapaction", &action),
        ],
        body.to_owned(),
    )
}

/// The registration the banner prints, for the demo client, with `cpr`.
fn registration(cpr: &str) -> String {
    crate::banner::demo_request(&identity().caller_id).replace("0101701234", cpr)
}

struct Setup {
    catalog: Catalog,
    scenarios: Scenarios,
    registry: Registry,
    strict: bool,
}

impl Setup {
    fn new(validation: ValidationMode) -> Setup {
        Setup {
            catalog: catalog(validation),
            scenarios: Scenarios::none(),
            registry: Registry::open(),
            strict: false,
        }
    }

    fn decide(&self, request: &Request, caller: &ClientCertificate) -> Verdict {
        let spec = self.scenarios.spec();
        let rules = Rules {
            catalog: &self.catalog,
            scenarios: &spec,
            runtime: self.scenarios.runtime(),
            registry: &self.registry,
            strict: self.strict,
        };
        decide(request, caller, &rules)
    }
}

fn fault_code(verdict: &Verdict) -> Option<i64> {
    match &verdict.outcome {
        Outcome::Fault { code, .. } => *code,
        _ => None,
    }
}

#[test]
fn a_valid_registration_gets_the_catalogs_receipt_and_the_facts_of_its_route() {
    let setup = Setup::new(ValidationMode::Enforce);
    let verdict = setup.decide(
        &soap11(SAVE_PATH, SAVE_ACTION, &registration("0101701234")),
        &verified(),
    );
    assert_eq!(verdict.status, StatusCode::OK, "{}", verdict.body);
    assert_eq!(verdict.outcome, Outcome::Receipt);
    assert_eq!(verdict.receipts.len(), 1);
    assert!(verdict.body.contains(&verdict.receipts[0]));
    assert_eq!(
        verdict.facts.service.as_deref(),
        Some("JobcenterMessageService")
    );
    assert_eq!(
        verdict.facts.service_operation.as_deref(),
        Some("SaveAvailabilityAssessment")
    );
    assert!(
        verdict.facts.findings.is_empty(),
        "{:?}",
        verdict.facts.findings
    );
    assert_eq!(verdict.facts.authorization.as_deref(), Some("open"));
    // The scenarios saw the call and no rule matched.
    let script = verdict.script.unwrap();
    assert!(script.rule.is_none());
    assert!(verdict.effects.is_empty());
}

#[test]
fn deciding_changes_no_state_until_the_effects_are_applied() {
    let mut setup = Setup::new(ValidationMode::Enforce);
    setup.scenarios = shipped_scenarios();
    // 9990: the first call of each caller fails with 1011, later ones succeed.
    let request = soap11(SAVE_PATH, SAVE_ACTION, &registration("0101709990"));
    let first = setup.decide(&request, &verified());
    assert_eq!(fault_code(&first), Some(1011), "{}", first.body);
    // Not journaled, so not applied: deciding again gives the first call's answer again.
    let again = setup.decide(&request, &verified());
    assert_eq!(fault_code(&again), Some(1011));
    assert_eq!(first.effects, again.effects);
    assert!(first
        .effects
        .iter()
        .any(|effect| matches!(effect, Effect::Count { rule, .. } if rule.ends_with("#internal-error-then-success"))));

    setup.scenarios.apply(&first.effects);
    let second = setup.decide(&request, &verified());
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    let rule = second.script.as_ref().unwrap().rule.as_ref().unwrap();
    assert_eq!(&*rule.name, "save-availability-assessment");
    // The registration's state is an effect too, and is in force only once applied.
    let stored = second.effects.iter().find_map(|effect| match effect {
        Effect::SetState {
            bucket, key, value, ..
        } => Some((bucket.clone(), key.clone(), value.clone())),
        Effect::Count { .. } => None,
    });
    assert_eq!(
        stored,
        Some((
            "assessments".to_owned(),
            "0101709990".to_owned(),
            "1".to_owned()
        ))
    );
    let caller = &identity().caller_id;
    assert_eq!(
        setup
            .scenarios
            .runtime()
            .state(caller, "assessments", "0101709990"),
        None
    );
    setup.scenarios.apply(&second.effects);
    assert_eq!(
        setup
            .scenarios
            .runtime()
            .state(caller, "assessments", "0101709990")
            .as_deref(),
        Some("1")
    );
}

#[test]
fn a_soapaction_naming_another_operation_is_a_finding_and_a_1014_when_enforced() {
    let now = OffsetDateTime::now_utc();
    let report = Setup::new(ValidationMode::Report);
    let element = crate::soap::QualifiedName {
        namespace: "urn:dfdg-mock:CodeListService:1".into(),
        local: "GetCodeListNames".into(),
    };
    let names = report
        .catalog
        .route(CODE_LIST_PATH, SoapVersion::V11, None, &element)
        .unwrap()
        .example_request(now);
    let other_action = "urn:dfdg-mock:CodeListService:1#GetCodeList";
    let request = soap11(CODE_LIST_PATH, other_action, &names);

    let verdict = report.decide(&request, &verified());
    assert_eq!(verdict.status, StatusCode::OK, "{}", verdict.body);
    // Routed by what the Body carries, so every view names that operation.
    assert_eq!(
        verdict.facts.service_operation.as_deref(),
        Some("GetCodeListNames")
    );
    let [finding] = verdict.facts.findings.as_slice() else {
        panic!("{:?}", verdict.facts.findings);
    };
    assert_eq!(finding.path, "SOAPAction");
    assert!(
        finding.found.contains("the action of GetCodeList,"),
        "{finding}"
    );
    assert!(finding.expected.contains("#GetCodeListNames'"), "{finding}");

    let enforce = Setup::new(ValidationMode::Enforce);
    let verdict = enforce.decide(&request, &verified());
    assert_eq!(fault_code(&verdict), Some(1014), "{}", verdict.body);
    assert!(
        verdict.body.contains("SOAPAction: expected"),
        "{}",
        verdict.body
    );
    assert_eq!(verdict.facts.findings.len(), 1);

    // An action no operation declares.
    let unknown = soap11(CODE_LIST_PATH, "urn:nowhere#Nothing", &names);
    let verdict = report.decide(&unknown, &verified());
    assert!(
        verdict.facts.findings[0]
            .found
            .contains("which no operation of CodeListService declares"),
        "{:?}",
        verdict.facts.findings
    );
    // No action at all is not a finding.
    let none = post(
        CODE_LIST_PATH,
        &[("content-type", "text/xml; charset=utf-8")],
        names.clone(),
    );
    assert!(report.decide(&none, &verified()).facts.findings.is_empty());
}

#[test]
fn refusals_are_answered_by_their_mapping_and_reach_no_scenario() {
    let setup = Setup::new(ValidationMode::Enforce);
    let cases: Vec<(Request, u16, Option<i64>)> = vec![
        (
            post(SAVE_PATH, &[("content-type", "text/xml")], "<a/>"),
            400,
            Some(1014),
        ),
        (post(SAVE_PATH, &[], registration("0101701234")), 415, None),
        (
            post(
                SAVE_PATH,
                &[("content-type", "text/xml; charset=latin9")],
                registration("0101701234"),
            ),
            415,
            None,
        ),
        (
            soap11("/Nothing.svc", SAVE_ACTION, &registration("0101701234")),
            404,
            None,
        ),
        (
            soap11(
                SAVE_PATH,
                SAVE_ACTION,
                &registration("0101701234").replace(
                    "<OrganisationCode>101</OrganisationCode>\n    </ActiveOrganisationHeader>",
                    "</ActiveOrganisationHeader>",
                ),
            ),
            500,
            Some(1014),
        ),
        (
            soap11(
                SAVE_PATH,
                SAVE_ACTION,
                &registration("0101701234").replace("ActiveOrganisationHeader", "SomeOtherHeader"),
            ),
            500,
            Some(8232),
        ),
    ];
    for (request, status, code) in cases {
        let verdict = setup.decide(&request, &verified());
        assert_eq!(verdict.status.as_u16(), status, "{}", verdict.body);
        assert_eq!(fault_code(&verdict), code, "{}", verdict.body);
        assert!(verdict.script.is_none());
        assert!(verdict.effects.is_empty());
    }

    let (parts, ()) = http::Request::post(SAVE_PATH)
        .header("content-type", "application/soap+xml")
        .body(())
        .unwrap()
        .into_parts();
    let too_large = Request::parse(parts, Err(Refusal::BodyTooLarge), OffsetDateTime::now_utc());
    let verdict = setup.decide(&too_large, &verified());
    assert_eq!(verdict.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Answered in the version the content type names.
    assert!(verdict.body.contains(crate::soap::SOAP12_ENVELOPE));

    // Diagnose mode lets a missing certificate through, and the answer says so.
    let missing = ClientCertificate::Refused(tls::Refusal {
        reason: RejectionReason::NoCertificate,
        detail: "no client certificate was presented".into(),
        identity: None,
    });
    let verdict = setup.decide(
        &soap11(SAVE_PATH, SAVE_ACTION, &registration("0101701234")),
        &missing,
    );
    assert_eq!(fault_code(&verdict), Some(1101));
}

#[test]
fn the_registry_refuses_with_dfdgs_codes_and_strict_mode_answers_the_first_identity_finding() {
    let mut setup = Setup::new(ValidationMode::Report);
    setup.registry = Registry::of(vec![Supplier {
        name: "Lille ApS".into(),
        cvr: "91234567".into(),
        category: Category::Small,
        identities: vec![identity().caller_id.clone()],
        services: vec!["JobcenterMessageService".into()],
        revoked: Vec::new(),
    }]);
    // A small supplier may not write.
    let verdict = setup.decide(
        &soap11(SAVE_PATH, SAVE_ACTION, &registration("0101701234")),
        &verified(),
    );
    assert_eq!(fault_code(&verdict), Some(4575), "{}", verdict.body);
    assert_eq!(verdict.facts.supplier.as_deref(), Some("Lille ApS"));
    assert_eq!(verdict.facts.authorization.as_deref(), Some("refused 4575"));

    let mut setup = Setup::new(ValidationMode::Report);
    setup.strict = true;
    let foreign =
        registration("0101701234").replace(&identity().caller_id, "CVR:99999999-UUID:someone-else");
    let verdict = setup.decide(&soap11(SAVE_PATH, SAVE_ACTION, &foreign), &verified());
    assert!(!verdict.facts.identity_findings.is_empty());
    assert_eq!(
        fault_code(&verdict),
        Some(verdict.facts.identity_findings[0].code)
    );
    assert!(
        verdict.body.contains("Identity check failed (strict mode)"),
        "{}",
        verdict.body
    );
}

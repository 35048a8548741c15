//! A benchmark harness (not a test): the pure part of one call of the benchmark's real endpoint
//! — `Request::parse` (the one parse) and `decide` (route, SOAPAction and schema checks in
//! enforce mode, authorization, the shipped scenario rules with their template) — on
//! `bench/request.xml`, without TLS, HTTP or the journal. Prints the time per call of each.
//!
//! `cargo run --release --example request_path`

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dfdg_mock::app::decide::{decide, Request, Rules};
use dfdg_mock::config::{CatalogConfig, ValidationMode};
use dfdg_mock::identity::CallerIdentity;
use dfdg_mock::pki::{CertificateAuthority, CertificateShape, ClientSpec};
use dfdg_mock::scenario::Scenarios;
use dfdg_mock::supplier::Registry;
use dfdg_mock::tls::ClientCertificate;
use dfdg_mock::wsdl::Catalog;

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let body = Bytes::from(std::fs::read(root.join("bench/request.xml"))?);
    let catalog = Catalog::load(&CatalogConfig {
        dirs: vec![root.join("wsdl")],
        validation: ValidationMode::Enforce,
        services: HashMap::new(),
    })
    .catalog;
    let scenarios = Scenarios::load(&root.join("scenarios"))?;
    let ca = CertificateAuthority::generate("bench CA")?;
    let certificate = ca.issue_client(&ClientSpec {
        name: "Bench".into(),
        organisation: "Bench ApS".into(),
        cvr: "12345678".into(),
        shape: CertificateShape::Oces3 {
            uuid: uuid::Uuid::new_v4(),
        },
        valid_days: 30,
    })?;
    let caller =
        ClientCertificate::Verified(Arc::new(CallerIdentity::from_der(&certificate.cert_der)?));
    let registry = Registry::open();
    let spec = scenarios.spec();
    let rules = Rules {
        catalog: &catalog,
        scenarios: &spec,
        runtime: scenarios.runtime(),
        registry: &registry,
        strict: false,
    };
    let request = || {
        let (parts, ()) =
            http::Request::post("/JobcenterMessageService/2/JobcenterMessageService.svc")
                .header("content-type", "text/xml; charset=utf-8")
                .header(
                    "soapaction",
                    "\"urn:dfdg-mock:JobcenterMessageService:2#SaveAvailabilityAssessment\"",
                )
                .body(())
                .expect("a request")
                .into_parts();
        Request::parse(parts, Ok(body.clone()), time::OffsetDateTime::now_utc())
    };
    let check = decide(&request(), &caller, &rules);
    anyhow::ensure!(check.status == 200, "not answered 200: {}", check.body);

    let iterations: u32 = std::env::var("ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let started = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(request());
    }
    let parse = started.elapsed() / iterations;
    let requests: Vec<Request> = (0..iterations).map(|_| request()).collect();
    let started = Instant::now();
    for request in &requests {
        std::hint::black_box(decide(request, &caller, &rules));
    }
    let decided = started.elapsed() / iterations;
    println!("Request::parse {parse:>10.2?} per call");
    println!("decide         {decided:>10.2?} per call");
    Ok(())
}

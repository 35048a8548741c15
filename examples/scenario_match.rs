//! A benchmark harness (not a test): how long deciding one request takes with no rules, one
//! templated rule (a plain template, then the same answer through minijinja: one filter makes
//! the difference), and 100 non-matching rules of four kinds plus that rule — the pure part of
//! the pipeline, without TLS, HTTP or the journal. Prints figures.
//!
//! `cargo run --release --example scenario_match`

use std::path::Path;
use std::time::Instant;

use dfdg_mock::identity::CallerIdentity;
use dfdg_mock::pki::{CertificateAuthority, CertificateShape, ClientSpec};
use dfdg_mock::scenario::{RequestFacts, Scenarios};
use dfdg_mock::soap;

const REQUEST: &str = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><inv:SubmitInvoice xmlns:inv="urn:bench:invoice:1.0"><inv:SenderId>NTRDK-12345678</inv:SenderId><inv:DocumentId>INV-2024-000123</inv:DocumentId><inv:Currency>DKK</inv:Currency><inv:Amount>12500.00</inv:Amount></inv:SubmitInvoice></soap:Body></soap:Envelope>"#;

const MATCH: &str = r#"
[[rule]]
name = "submit"
when.operation = "SubmitInvoice"
respond.body = """<s:Envelope xmlns:s="{{ envelope_namespace }}"><s:Body><SubmitInvoiceResponse xmlns="{{ namespace }}"><DocumentId>{{ request("SubmitInvoice/DocumentId") }}</DocumentId><MessageIdentifier>{{ receipt() }}</MessageIdentifier><EventDate>{{ now() }}</EventDate></SubmitInvoiceResponse></s:Body></s:Envelope>"""
"#;

/// The same rule, its template needing minijinja (a filter that changes nothing).
const MATCH_MINIJINJA: &str = r#"
[[rule]]
name = "submit"
when.operation = "SubmitInvoice"
respond.body = """<s:Envelope xmlns:s="{{ envelope_namespace }}"><s:Body><SubmitInvoiceResponse xmlns="{{ namespace }}"><DocumentId>{{ request("SubmitInvoice/DocumentId")|string }}</DocumentId><MessageIdentifier>{{ receipt() }}</MessageIdentifier><EventDate>{{ now() }}</EventDate></SubmitInvoiceResponse></s:Body></s:Envelope>"""
"#;

fn misses() -> String {
    let mut text = String::new();
    for i in 0..100 {
        let condition = match i % 4 {
            0 => format!(
                "when.values.\"SubmitInvoice/DocumentId\" = {{ regex = \"^NOPE-{i}-[0-9]+$\" }}"
            ),
            1 => format!("when.operation = [\"Op{i}\", \"Other{i}\", \"Third{i}\"]"),
            2 => format!("when.caller.subject = {{ regex = \"CN=Nobody{i},\" }}"),
            _ => format!(
                "when.values.\"*/Amount\" = \"{i}.00\"\nwhen.headers = {{ \"x-nope-{i}\" = {{ exists = true }} }}"
            ),
        };
        text.push_str(&format!(
            "[[rule]]\nname = \"miss-{i}\"\n{condition}\nrespond.fault = {{ code = 1010 }}\n\n"
        ));
    }
    text
}

fn main() -> anyhow::Result<()> {
    let ca = CertificateAuthority::generate("bench CA")?;
    let certificate = ca.issue_client(&ClientSpec {
        name: "Bench".into(),
        organisation: "Bench ApS".into(),
        cvr: "91234567".into(),
        shape: CertificateShape::Oces3 {
            uuid: uuid::Uuid::new_v4(),
        },
        valid_days: 30,
    })?;
    let identity = std::sync::Arc::new(CallerIdentity::from_der(&certificate.cert_der)?);
    let envelope = soap::parse_envelope(REQUEST)?;
    let headers = http::HeaderMap::new();

    let misses = misses();
    for (label, files) in [
        ("no rules", vec![]),
        ("1 templated rule (plain)", vec![("match.toml", MATCH)]),
        (
            "1 templated rule (minijinja)",
            vec![("match.toml", MATCH_MINIJINJA)],
        ),
        (
            "100 misses + 1 templated rule",
            vec![("misses.toml", misses.as_str()), ("match.toml", MATCH)],
        ),
    ] {
        let dir = tempfile::tempdir()?;
        for (name, text) in &files {
            std::fs::write(dir.path().join(name), text)?;
        }
        let scenarios = Scenarios::load(Path::new(dir.path()))?;
        let spec = scenarios.spec();
        let iterations = 50_000u32;
        let started = Instant::now();
        let mut matched = 0u32;
        for _ in 0..iterations {
            let facts = RequestFacts {
                service: None,
                supplier: None,
                category: None,
                operation: &envelope.operation,
                version: envelope.version,
                path: "/soap",
                headers: &headers,
                identity: Some(&identity),
                star: &envelope.star_headers,
                now: time::OffsetDateTime::now_utc(),
            };
            let choice = spec.decide(&facts, scenarios.runtime());
            matched += u32::from(choice.decision.is_some());
        }
        let per_call = started.elapsed() / iterations;
        println!("{label:<32} {per_call:>10.2?} per decision ({matched} of {iterations} matched)");
    }
    Ok(())
}

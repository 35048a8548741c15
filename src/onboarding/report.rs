//! The onboarding status as a person reads it: a plain-text table for the terminal, and a
//! self-contained HTML report (inline CSS, no external resources; every text in Danish with its
//! English translation beneath, times to the second) a supplier can attach to its request for
//! production access.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::{Step, StepState, SupplierStatus};
use crate::supplier::{Category, Finding};

/// One line per supplier (or caller id) with its three steps, then each step's evidence.
pub fn table(statuses: &[SupplierStatus]) -> String {
    let mut out = String::new();
    if statuses.is_empty() {
        out.push_str("no suppliers (or callers) to show yet\n");
        return out;
    }
    let width = statuses
        .iter()
        .map(|s| s.title().chars().count())
        .max()
        .unwrap_or(0)
        .max("SUPPLIER".len());
    let _ = writeln!(
        out,
        "{:<width$}  {:<8}  {:<6}  {:<10}  {:<10}  {:<10}  STATUS",
        "SUPPLIER", "CATEGORY", "CALLS", "1 CALL", "2 IDENTITY", "3 RECEIPT"
    );
    for status in statuses {
        let mark = |step: &Step| if step.done { "done" } else { "-" };
        let _ = writeln!(
            out,
            "{:<width$}  {:<8}  {:<6}  {:<10}  {:<10}  {:<10}  {}",
            status.title(),
            status.category.map_or("-", |c| c.as_str()),
            status.calls,
            mark(&status.call_received),
            mark(&status.identity_checked),
            mark(&status.receipt_confirmed),
            if status.complete {
                "complete"
            } else {
                "incomplete"
            }
        );
    }
    for status in statuses {
        let _ = writeln!(out, "\n{}", status.title());
        for (label, step) in [
            ("1 call received", &status.call_received),
            ("2 identity checked", &status.identity_checked),
            ("3 receipt confirmed", &status.receipt_confirmed),
        ] {
            let _ = writeln!(
                out,
                "  {label:<20} {}{}",
                step.evidence,
                step.time
                    .map_or(String::new(), |t| format!(" ({})", seconds(t)))
            );
        }
    }
    out
}

/// A time to the second, UTC, as RFC 3339 (`2026-12-01T09:30:00Z`).
pub fn seconds(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    time.replace_nanosecond(0)
        .unwrap_or(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// RFC 3339 text (as journaled with a certificate) to the second; other text as it is.
fn seconds_of(text: &str) -> String {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_or_else(|_| text.to_owned(), seconds)
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A text in Danish with its English translation beneath (both escaped).
fn both(da: &str, en: &str) -> String {
    format!(
        "{}<span class=\"en\" lang=\"en\">{}</span>",
        escape(da),
        escape(en)
    )
}

/// What a step says, in Danish and in English, from where it stands.
pub fn step_words(step: &Step) -> (String, String) {
    let call = step
        .call_id
        .map_or_else(|| "?".to_owned(), |id| id.to_string());
    let receipt = step.receipt.as_deref().unwrap_or("-");
    match step.state {
        StepState::Received => (
            format!("Kald {call} besvaret med kvittering {receipt}"),
            format!("Call {call} answered with receipt {receipt}"),
        ),
        StepState::NoCall => (
            "Endnu intet kald besvaret med en kvittering".to_owned(),
            "No call answered with a receipt yet".to_owned(),
        ),
        StepState::Passed => (
            format!("Kald {call}: headerne angiver certifikatets caller id, og alle identitetskontroller bestod"),
            format!("Call {call}: the headers name the certificate's caller id and every identity check passed"),
        ),
        StepState::Failed => (
            format!("Kald {call}: en identitetskontrol fejlede (se fundene)"),
            format!("Call {call}: an identity check failed (see the findings)"),
        ),
        StepState::NotChecked => (
            format!("Kald {call}: identiteten blev ikke kontrolleret"),
            format!("Call {call}: the identity checks did not run"),
        ),
        StepState::Waiting if step.call_id.is_some() => (
            "Kræver først et kald, der består identitetskontrollen".to_owned(),
            "Needs a call that passes the identity checks first".to_owned(),
        ),
        StepState::Waiting => (
            "Kræver først et vellykket kald".to_owned(),
            "Needs a successful call first".to_owned(),
        ),
        StepState::Confirmed => (
            format!("Kvittering {receipt} for kald {call} bekræftet"),
            format!("Receipt {receipt} of call {call} confirmed"),
        ),
        StepState::ConfirmedFailingCall => (
            format!("Kvittering {receipt} for kald {call} er bekræftet, men kald {call} bestod ikke identitetskontrollen"),
            format!("Receipt {receipt} of call {call} is confirmed, but call {call} did not pass the identity checks"),
        ),
        StepState::NotConfirmed => (
            format!("Kvitteringen for kald {call} er endnu ikke bekræftet"),
            format!("The receipt of call {call} is not confirmed yet"),
        ),
    }
}

/// What an identity finding means, in Danish and in English.
pub fn finding_words(finding: &Finding) -> (String, String) {
    let (da, en) = match finding.check.as_str() {
        "supplier_cvr" => (
            "Certifikatets CVR er ikke leverandørens registrerede CVR",
            "The certificate's CVR is not the supplier's registered CVR",
        ),
        "identity" => (
            "UserIdentifier svarer ikke til certifikatets caller id",
            "UserIdentifier differs from the certificate's caller id",
        ),
        "organisation_code" => (
            "RequestOrganisationStructure/OrganisationCode er ikke -1 eller 1-8 cifre",
            "RequestOrganisationStructure/OrganisationCode is not -1 or 1 to 8 digits",
        ),
        "active_organisation_code" => (
            "ActiveOrganisationHeader/OrganisationCode er ikke 1-20 tegn",
            "ActiveOrganisationHeader/OrganisationCode is not 1 to 20 characters",
        ),
        "active_organisation_header" => (
            "ActiveOrganisationHeader mangler",
            "The ActiveOrganisationHeader is missing",
        ),
        "request_user_metadata_header" => (
            "RequestUserMetadataHeader mangler",
            "The RequestUserMetadataHeader is missing",
        ),
        _ => return (finding.message.clone(), finding.message.clone()),
    };
    (
        format!(
            "{da}: forventet {}, fundet {} (DFDG {})",
            finding.expected, finding.found, finding.code
        ),
        format!(
            "{en}: expected {}, found {} (DFDG {})",
            finding.expected, finding.found, finding.code
        ),
    )
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2433}\
h1{font-size:1.6rem;margin-bottom:0}h2{margin-top:2.2rem;border-bottom:2px solid #c9d3e3}h3{margin:1.2rem 0 .3rem}\
.en{color:#5a6478;font-size:.85em;font-weight:normal;display:block}\
.ok{color:#116b2e}.bad{color:#a1261b}.badge{display:inline-block;padding:.05rem .5rem;border-radius:.6rem;font-weight:600}\
.badge.ok{background:#dcf3e3}.badge.bad{background:#fbe1de}.badge .en{display:inline;color:inherit;font-size:inherit}\
table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{border:1px solid #d5dbe6;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f1f4f9;width:16rem}.mono{font-family:ui-monospace,monospace;font-size:.88em;word-break:break-all}\
footer{margin-top:3rem;color:#5a6478;font-size:.85em}";

/// A self-contained HTML report of `statuses`, generated at `now`: every text in Danish with
/// its English translation beneath, times to the second (UTC).
pub fn html(statuses: &[SupplierStatus], now: OffsetDateTime) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<!doctype html>\n<html lang=\"da\"><head><meta charset=\"utf-8\">");
    out.push_str("<title>Integrationstest – onboarding-rapport / onboarding report (dfdg-mock)</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n");
    let _ = writeln!(
        out,
        "<h1>{}</h1>",
        both(
            "Integrationstest mod DFDG – rapport",
            "Integration test against DFDG – report"
        )
    );
    let _ = writeln!(
        out,
        "<p>{}</p>",
        both(
            &format!(
                "Dannet {} (UTC) af dfdg-mock {}: et øvelsesmiljø, ikke STAR",
                seconds(now),
                env!("CARGO_PKG_VERSION")
            ),
            &format!(
                "Generated {} (UTC) by dfdg-mock {}: a rehearsal environment, not STAR",
                seconds(now),
                env!("CARGO_PKG_VERSION")
            )
        )
    );
    if statuses.is_empty() {
        let _ = writeln!(
            out,
            "<p>{}</p>",
            both("Ingen leverandører endnu.", "No suppliers yet.")
        );
    }
    for status in statuses {
        supplier_section(&mut out, status);
    }
    let _ = writeln!(
        out,
        "<footer>{}</footer>",
        both(
            "De tre trin følger STARs integrationstest: (1) kald modtaget, (2) identitet kontrolleret, (3) kvittering bekræftet. Trinene henviser til ét og samme kald.",
            "The three steps follow STAR's integration test: (1) call received, (2) identity checked, (3) receipt confirmed. The steps cite one and the same call."
        )
    );
    out.push_str("</body></html>\n");
    out
}

fn verdict(done: bool, yes: (&str, &str), no: (&str, &str)) -> String {
    let (da, en) = if done { yes } else { no };
    format!(
        "<span class=\"badge {}\">{} / <span class=\"en\" lang=\"en\">{}</span></span>",
        if done { "ok" } else { "bad" },
        escape(da),
        escape(en)
    )
}

/// A table row: a bilingual heading and a value (escaped here).
fn row(out: &mut String, da: &str, en: &str, value: &str) {
    let _ = write!(
        out,
        "<tr><th>{}</th><td class=\"mono\">{}</td></tr>",
        both(da, en),
        escape(value)
    );
}

/// A table row whose value is already bilingual HTML.
fn row_html(out: &mut String, da: &str, en: &str, value: &str) {
    let _ = write!(out, "<tr><th>{}</th><td>{value}</td></tr>", both(da, en));
}

fn supplier_section(out: &mut String, status: &SupplierStatus) {
    let _ = writeln!(
        out,
        "<h2>{} {}</h2>",
        escape(status.title()),
        verdict(
            status.complete,
            ("Gennemført", "complete"),
            ("Ikke gennemført", "incomplete")
        )
    );
    out.push_str("<table>");
    match &status.supplier {
        Some(name) => row(out, "Leverandør", "Supplier", name),
        None => row_html(
            out,
            "Leverandør",
            "Supplier",
            &both(
                "(åben tilstand: intet leverandørregister)",
                "(open mode: no supplier registry)",
            ),
        ),
    }
    let category = match status.category {
        Some(Category::Small) => both("lille", "small"),
        Some(Category::Medium) => both("mellem", "medium"),
        Some(Category::Large) => both("stor", "large"),
        None => "-".to_owned(),
    };
    row_html(out, "Kategori", "Category", &category);
    row(out, "CVR", "CVR", status.cvr.as_deref().unwrap_or("-"));
    if let Some(registered) = &status.registered {
        let services = if registered.services.is_empty() {
            both("(ingen)", "(none)")
        } else {
            format!(
                "<span class=\"mono\">{}</span>",
                escape(&registered.services.join(", "))
            )
        };
        row_html(out, "Tilladte webservices", "Allowed services", &services);
        row(
            out,
            "Registrerede identiteter",
            "Registered identities",
            &registered.identities.join(", "),
        );
        if !registered.revoked.is_empty() {
            row(
                out,
                "Spærrede identiteter",
                "Revoked identities",
                &registered.revoked.join(", "),
            );
        }
    }
    row(
        out,
        "Caller id (certifikat)",
        "Caller id (certificate)",
        status.caller_id.as_deref().unwrap_or("-"),
    );
    row(
        out,
        "Kald med leverandørens certifikater",
        "Calls with the supplier's certificates",
        &status.calls.to_string(),
    );
    out.push_str("</table>\n");

    for (da, en, step) in [
        (
            "Trin 1 · Kald modtaget",
            "Step 1 · Call received",
            &status.call_received,
        ),
        (
            "Trin 2 · Identitet kontrolleret",
            "Step 2 · Identity checked",
            &status.identity_checked,
        ),
        (
            "Trin 3 · Kvittering bekræftet",
            "Step 3 · Receipt confirmed",
            &status.receipt_confirmed,
        ),
    ] {
        let _ = writeln!(
            out,
            "<h3>{da} {}<span class=\"en\" lang=\"en\">{en}</span></h3>",
            verdict(step.done, ("✓ udført", "done"), ("✗ mangler", "missing"))
        );
        out.push_str("<table>");
        let (words_da, words_en) = step_words(step);
        row_html(out, "Bevis", "Evidence", &both(&words_da, &words_en));
        if let Some(id) = step.call_id {
            row(out, "Kald", "Call", &id.to_string());
        }
        if let Some(time) = step.time {
            row(out, "Tidspunkt (UTC)", "Time (UTC)", &seconds(time));
        }
        if let Some(receipt) = &step.receipt {
            row(out, "Kvittering (GUID)", "Receipt (GUID)", receipt);
        }
        out.push_str("</table>\n");
    }

    let Some(identity) = &status.identity else {
        return;
    };
    let _ = writeln!(
        out,
        "<h3>{}</h3>",
        both(
            &format!("Identitet side om side (kald {})", identity.call_id),
            &format!("Identity side by side (call {})", identity.call_id)
        )
    );
    let _ = write!(
        out,
        "<table><tr><th></th><th>{}</th><th>{}</th><th>{}</th></tr>",
        both("Certifikat", "Certificate"),
        both("SOAP-headere", "SOAP headers"),
        both("Registreret", "Registered")
    );
    let certificate = identity.certificate.as_ref();
    let registered = identity.registered.as_ref();
    let cell = |value: Option<&str>| escape(value.unwrap_or("-"));
    let _ = write!(
        out,
        "<tr><th>Caller id / UserIdentifier</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
        cell(certificate.map(|c| c.caller_id.as_str())),
        cell(identity.headers.user_identifier.as_deref()),
        escape(&registered.map_or("-".to_owned(), |r| r.identities.join(", ")))
    );
    let _ = write!(
        out,
        "<tr><th>{}</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
        both("CVR / organisation", "CVR / organisation"),
        cell(certificate.and_then(|c| c.cvr.as_deref())),
        escape(&format!(
            "ActiveOrganisation {} / {} · RequestOrganisation {}",
            identity.headers.active_organisation_type.as_deref().unwrap_or("-"),
            identity.headers.active_organisation_code.as_deref().unwrap_or("-"),
            identity.headers.organisation_code.as_deref().unwrap_or("-")
        )),
        cell(registered.map(|r| r.cvr.as_str()))
    );
    let _ = write!(
        out,
        "<tr><th>{}</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
        both("Navn", "Name"),
        cell(certificate.and_then(|c| c.common_name.as_deref())),
        cell(identity.headers.user_full_name.as_deref()),
        cell(registered.map(|r| r.name.as_str()))
    );
    out.push_str("</table>\n");
    if let Some(certificate) = certificate {
        let _ = write!(
            out,
            "<h3>{}</h3><table>",
            both("Certifikat", "Certificate details")
        );
        row(out, "Subjekt", "Subject", &certificate.subject);
        row(out, "Udsteder", "Issuer", &certificate.issuer);
        row(out, "Serienummer", "Serial", &certificate.serial);
        row(
            out,
            "Fingeraftryk (SHA-256)",
            "Fingerprint (SHA-256)",
            &certificate.fingerprint,
        );
        row(
            out,
            "Gyldig fra (UTC)",
            "Valid from (UTC)",
            &seconds_of(&certificate.not_before),
        );
        row(
            out,
            "Gyldig til (UTC)",
            "Valid until (UTC)",
            &seconds_of(&certificate.not_after),
        );
        out.push_str("</table>\n");
    }
    if !identity.findings.is_empty() {
        let _ = write!(out, "<h3>{}</h3><ul>", both("Fund", "Findings"));
        for finding in &identity.findings {
            let (da, en) = finding_words(finding);
            let _ = write!(out, "<li class=\"bad\">{}</li>", both(&da, &en));
        }
        out.push_str("</ul>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(done: bool) -> SupplierStatus {
        let time = OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(123_456_789);
        let step = |state: StepState, evidence: &str| Step {
            done,
            state,
            call_id: Some(1),
            time: Some(time),
            receipt: None,
            evidence: evidence.to_owned(),
        };
        SupplierStatus {
            supplier: Some("Test <ApS>".to_owned()),
            category: Some(crate::supplier::Category::Small),
            cvr: Some("91234567".to_owned()),
            caller_id: Some("CVR:91234567-UUID:x".to_owned()),
            calls: 1,
            registered: Some(super::super::RegisteredIdentity {
                name: "Test <ApS>".to_owned(),
                cvr: "91234567".to_owned(),
                category: crate::supplier::Category::Small,
                identities: vec!["CVR:91234567-UUID:x".to_owned()],
                services: vec!["PersonStatusService".to_owned()],
                revoked: Vec::new(),
            }),
            certificates: Vec::new(),
            call_received: step(StepState::Received, "call 1"),
            identity_checked: step(
                if done {
                    StepState::Passed
                } else {
                    StepState::Failed
                },
                "passed",
            ),
            identity: None,
            receipt_confirmed: step(
                if done {
                    StepState::Confirmed
                } else {
                    StepState::NotConfirmed
                },
                "confirmed",
            ),
            confirmable: None,
            complete: done,
        }
    }

    #[test]
    fn the_table_lists_each_step_and_the_verdict() {
        let text = table(&[status(true), status(false)]);
        assert!(text.contains("complete"), "{text}");
        assert!(text.contains("incomplete"), "{text}");
        assert!(text.contains("small"), "{text}");
        assert!(text.contains("(1970-01-01T00:00:00Z)"), "{text}");
    }

    #[test]
    fn the_html_report_is_self_contained_and_escaped() {
        let page = html(&[status(true)], OffsetDateTime::UNIX_EPOCH);
        assert!(page.contains("Test &lt;ApS&gt;"));
        assert!(page.contains("CVR:91234567-UUID:x"));
        assert!(page.contains("Kvittering bekræftet") && page.contains("Receipt confirmed"));
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
    }

    #[test]
    fn the_html_report_says_everything_in_both_languages_to_the_second() {
        let page = html(&[status(true), status(false)], OffsetDateTime::UNIX_EPOCH);
        for (da, en) in [
            ("Tilladte webservices", "Allowed services"),
            (
                "Kald 1 besvaret med kvittering",
                "Call 1 answered with receipt",
            ),
            (
                "alle identitetskontroller bestod",
                "every identity check passed",
            ),
            ("en identitetskontrol fejlede", "an identity check failed"),
            (
                "Kvitteringen for kald 1 er endnu ikke",
                "The receipt of call 1 is not",
            ),
            ("Gennemført", "complete"),
            ("lille", "small"),
        ] {
            assert!(page.contains(da), "no {da:?}");
            assert!(page.contains(en), "no {en:?}");
        }
        assert!(page.contains("PersonStatusService"));
        assert!(page.contains("1970-01-01T00:00:00Z"));
        assert!(!page.contains(".123"), "sub-second times in the report");
        // The English evidence of the API is not what the report prints.
        assert!(!page.contains(">passed<"));
    }

    #[test]
    fn every_finding_is_worded_in_both_languages() {
        let finding = Finding {
            check: "identity".to_owned(),
            expected: "CVR:1-UUID:a".to_owned(),
            found: "CVR:1-UUID:b".to_owned(),
            message: "differs".to_owned(),
            code: 1012,
        };
        let (da, en) = finding_words(&finding);
        assert!(
            da.contains("svarer ikke") && da.contains("fundet CVR:1-UUID:b"),
            "{da}"
        );
        assert!(en.contains("differs") && en.contains("(DFDG 1012)"), "{en}");
    }
}

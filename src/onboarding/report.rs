//! The onboarding status as a person reads it: a plain-text table for the terminal, and a
//! self-contained HTML report (inline CSS, no external resources; Danish with English
//! subtitles) a supplier can attach to its request for production access.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::{Step, SupplierStatus};

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
                    .map_or(String::new(), |t| format!(" ({})", rfc3339(t)))
            );
        }
    }
    out
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2433}\
h1{font-size:1.6rem;margin-bottom:0}h2{margin-top:2.2rem;border-bottom:2px solid #c9d3e3}h3{margin:1.2rem 0 .3rem}\
.en{color:#5a6478;font-size:.85em;font-weight:normal;display:block}\
.ok{color:#116b2e}.bad{color:#a1261b}.badge{display:inline-block;padding:.05rem .5rem;border-radius:.6rem;font-weight:600}\
.badge.ok{background:#dcf3e3}.badge.bad{background:#fbe1de}\
table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{border:1px solid #d5dbe6;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f1f4f9}.mono{font-family:ui-monospace,monospace;font-size:.88em;word-break:break-all}\
footer{margin-top:3rem;color:#5a6478;font-size:.85em}";

/// A self-contained HTML report of `statuses`, generated at `now`.
pub fn html(statuses: &[SupplierStatus], now: OffsetDateTime) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<!doctype html>\n<html lang=\"da\"><head><meta charset=\"utf-8\">");
    out.push_str("<title>Integrationstest – onboarding-rapport (dfdg-mock)</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n");
    out.push_str("<h1>Integrationstest mod DFDG – rapport<span class=\"en\">Integration test against DFDG – report</span></h1>\n");
    let _ = writeln!(
        out,
        "<p>Dannet / generated: {} · dfdg-mock {} (øvelsesmiljø, ikke STAR / rehearsal environment, not STAR)</p>",
        escape(&rfc3339(now)),
        env!("CARGO_PKG_VERSION")
    );
    if statuses.is_empty() {
        out.push_str("<p>Ingen leverandører endnu.<span class=\"en\">No suppliers yet.</span></p>");
    }
    for status in statuses {
        supplier_section(&mut out, status);
    }
    out.push_str("<footer>De tre trin følger STARs integrationstest: (1) kald modtaget, (2) identitet kontrolleret, (3) kvittering bekræftet.<span class=\"en\">The three steps follow STAR's integration test: (1) call received, (2) identity checked, (3) receipt confirmed.</span></footer>\n");
    out.push_str("</body></html>\n");
    out
}

fn verdict(done: bool, yes: &str, no: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        if done { "ok" } else { "bad" },
        if done { yes } else { no }
    )
}

fn supplier_section(out: &mut String, status: &SupplierStatus) {
    let _ = writeln!(
        out,
        "<h2>{} {}</h2>",
        escape(status.title()),
        verdict(
            status.complete,
            "Gennemført / complete",
            "Ikke gennemført / incomplete"
        )
    );
    out.push_str("<table>");
    let row = |out: &mut String, da: &str, en: &str, value: &str| {
        let _ = write!(
            out,
            "<tr><th>{da}<span class=\"en\">{en}</span></th><td class=\"mono\">{}</td></tr>",
            escape(value)
        );
    };
    row(
        out,
        "Leverandør",
        "Supplier",
        status
            .supplier
            .as_deref()
            .unwrap_or("(åben tilstand / open mode)"),
    );
    row(
        out,
        "Kategori",
        "Category",
        status.category.map_or("-", |c| c.as_str()),
    );
    row(out, "CVR", "CVR", status.cvr.as_deref().unwrap_or("-"));
    row(
        out,
        "Caller id (certifikat)",
        "Caller id (certificate)",
        status.caller_id.as_deref().unwrap_or("-"),
    );
    row(out, "Antal kald", "Calls", &status.calls.to_string());
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
            "<h3>{da} {}<span class=\"en\">{en}</span></h3>",
            verdict(step.done, "✓ udført / done", "✗ mangler / missing")
        );
        out.push_str("<table>");
        row(out, "Bevis", "Evidence", &step.evidence);
        if let Some(id) = step.call_id {
            row(out, "Kald", "Call", &id.to_string());
        }
        if let Some(time) = step.time {
            row(out, "Tidspunkt", "Time", &rfc3339(time));
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
        "<h3>Identitet side om side (kald {})<span class=\"en\">Identity side by side (call {})</span></h3>",
        identity.call_id, identity.call_id
    );
    out.push_str("<table><tr><th></th><th>Certifikat<span class=\"en\">Certificate</span></th><th>SOAP-headere<span class=\"en\">SOAP headers</span></th><th>Registreret<span class=\"en\">Registered</span></th></tr>");
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
        "<tr><th>CVR / organisation</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
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
        "<tr><th>Navn / name</th><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
        cell(certificate.and_then(|c| c.common_name.as_deref())),
        cell(identity.headers.user_full_name.as_deref()),
        cell(registered.map(|r| r.name.as_str()))
    );
    out.push_str("</table>\n");
    if let Some(certificate) = certificate {
        out.push_str("<h3>Certifikat<span class=\"en\">Certificate details</span></h3><table>");
        row(out, "Subjekt", "Subject", &certificate.subject);
        row(out, "Udsteder", "Issuer", &certificate.issuer);
        row(out, "Serienummer", "Serial", &certificate.serial);
        row(
            out,
            "Fingeraftryk (SHA-256)",
            "Fingerprint (SHA-256)",
            &certificate.fingerprint,
        );
        row(out, "Gyldig fra", "Valid from", &certificate.not_before);
        row(out, "Gyldig til", "Valid until", &certificate.not_after);
        out.push_str("</table>\n");
    }
    if !identity.findings.is_empty() {
        out.push_str("<h3>Fund<span class=\"en\">Findings</span></h3><ul>");
        for finding in &identity.findings {
            let _ = write!(
                out,
                "<li class=\"bad\">{} (DFDG {})</li>",
                escape(&finding.message),
                finding.code
            );
        }
        out.push_str("</ul>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(done: bool) -> SupplierStatus {
        let step = |evidence: &str| Step {
            done,
            call_id: done.then_some(1),
            time: done.then_some(OffsetDateTime::UNIX_EPOCH),
            receipt: None,
            evidence: evidence.to_owned(),
        };
        SupplierStatus {
            supplier: Some("Test <ApS>".to_owned()),
            category: Some(crate::supplier::Category::Small),
            cvr: Some("91234567".to_owned()),
            caller_id: Some("CVR:91234567-UUID:x".to_owned()),
            calls: 1,
            call_received: step("call 1"),
            identity_checked: step("passed"),
            identity: None,
            receipt_confirmed: step("confirmed"),
            complete: done,
        }
    }

    #[test]
    fn the_table_lists_each_step_and_the_verdict() {
        let text = table(&[status(true), status(false)]);
        assert!(text.contains("complete"), "{text}");
        assert!(text.contains("incomplete"), "{text}");
        assert!(text.contains("small"), "{text}");
    }

    #[test]
    fn the_html_report_is_self_contained_and_escaped() {
        let page = html(&[status(true)], OffsetDateTime::UNIX_EPOCH);
        assert!(page.contains("Test &lt;ApS&gt;"));
        assert!(page.contains("CVR:91234567-UUID:x"));
        assert!(page.contains("Kvittering bekræftet") && page.contains("Receipt confirmed"));
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("src="));
    }
}

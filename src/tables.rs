//! The terminal tables of the command line: journaled calls (`calls`, and the rows `calls
//! --follow` adds as they arrive), refused handshakes (`calls --rejected`), registered suppliers
//! (`supplier list`). Every table names a call's operation the same way ([`operation`]) as the
//! admin API, the dashboard and `verify` do.

use std::io::{self, Write};

use time::OffsetDateTime;

use crate::journal::{CallRecord, StoredCall, StoredRejection};
use crate::supplier::Supplier;

/// A time as `2026-11-27 10:00:00` (UTC).
pub fn short_time(time: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// The operation a call is known by everywhere: its Body element's local name, which the
/// catalog routes by (and `--operation`, `verify` and the API's `operation` filter match).
pub fn operation(record: &CallRecord) -> &str {
    record.operation.as_deref().unwrap_or("-")
}

/// The call's findings in one cell: how many, and the first one's place ("1: SOAPAction").
pub fn findings(record: &CallRecord) -> String {
    match record.findings.first() {
        None => "-".to_owned(),
        Some(first) => format!("{}: {}", record.findings.len(), first.path),
    }
}

fn caller(record: &CallRecord) -> &str {
    record
        .identity
        .as_ref()
        .map_or("(no certificate)", |identity| identity.caller_id.as_str())
}

fn rule(record: &CallRecord) -> String {
    match (&record.scenario_file, &record.scenario_rule) {
        (Some(file), Some(rule)) => format!("{file}#{rule}"),
        (None, Some(rule)) => rule.clone(),
        _ => "-".to_owned(),
    }
}

/// `calls`: newest first, with the receipt, the scenario rule and the findings.
pub fn calls(out: &mut impl Write, calls: &[StoredCall]) -> io::Result<()> {
    calls_header(out)?;
    for call in calls {
        call_row(out, call)?;
    }
    if calls.is_empty() {
        writeln!(out, "(no calls)")?;
    }
    Ok(())
}

/// The header line of [`calls`], for printing rows as they are read.
pub fn calls_header(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<20} {:<52} {:<30} {:<12} {:<38} {:<40} FINDINGS",
        "ID", "TIME (UTC)", "CALLER", "OPERATION", "OUTCOME", "RECEIPT", "RULE"
    )
}

/// One row of [`calls`].
pub fn call_row(out: &mut impl Write, call: &StoredCall) -> io::Result<()> {
    let record = &call.record;
    writeln!(
        out,
        "{:<6} {:<20} {:<52} {:<30} {:<12} {:<38} {:<40} {}",
        call.id,
        short_time(record.time),
        caller(record),
        operation(record),
        record.outcome.label(),
        record.receipts.first().map_or("-", String::as_str),
        rule(record),
        findings(record),
    )
}

/// The head of `calls --follow`.
pub fn follow_header(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<20} {:<52} {:<30} {:<12} {:<38} FINDINGS",
        "ID", "TIME (UTC)", "CALLER", "OPERATION", "OUTCOME", "RECEIPT"
    )
}

/// One row of `calls --follow`.
pub fn follow_row(out: &mut impl Write, call: &StoredCall) -> io::Result<()> {
    let record = &call.record;
    writeln!(
        out,
        "{:<6} {:<20} {:<52} {:<30} {:<12} {:<38} {}",
        call.id,
        short_time(record.time),
        caller(record),
        operation(record),
        record.outcome.label(),
        record.receipts.first().map_or("-", String::as_str),
        findings(record),
    )
}

/// `calls --rejected`: refused TLS handshakes, newest first.
pub fn rejections(out: &mut impl Write, rejections: &[StoredRejection]) -> io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<20} {:<22} {:<18} {:<44} DETAIL",
        "ID", "TIME (UTC)", "PEER", "REASON", "PRESENTED"
    )?;
    for rejection in rejections {
        let record = &rejection.record;
        writeln!(
            out,
            "{:<6} {:<20} {:<22} {:<18} {:<44} {}",
            rejection.id,
            short_time(record.time),
            record.peer,
            record.reason.as_str(),
            record
                .identity
                .as_ref()
                .map_or("-", |i| i.caller_id.as_str()),
            record.detail
        )?;
    }
    if rejections.is_empty() {
        writeln!(out, "(no refused handshakes)")?;
    }
    Ok(())
}

/// `supplier list`.
pub fn suppliers(out: &mut impl Write, suppliers: &[Supplier]) -> io::Result<()> {
    writeln!(
        out,
        "{:<28} {:<9} {:<8} {:<40} IDENTITIES",
        "NAME", "CVR", "CATEGORY", "SERVICES"
    )?;
    for supplier in suppliers {
        let mut identities = supplier.identities.join(", ");
        if !supplier.revoked.is_empty() {
            identities.push_str(&format!(" (revoked: {})", supplier.revoked.join(", ")));
        }
        writeln!(
            out,
            "{:<28} {:<9} {:<8} {:<40} {identities}",
            supplier.name,
            supplier.cvr,
            supplier.category.as_str(),
            supplier.services.join(",")
        )?;
    }
    Ok(())
}

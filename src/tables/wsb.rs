//! WSB's terminal tables: deliveries (`wsb deliveries`, with `--attempts` each attempt under
//! its delivery), one delivery in full (`wsb delivery`), subscriptions, and the per-supplier
//! check "receives STAR's messages" (`wsb check`).

use std::io::{self, Write};
use std::time::Duration;

use super::short_time;
use crate::wsb::{Attempt, Delivery};

/// The type as `90001 Frist` (or the id alone when the name is not known).
fn type_label(type_id: u32, names: &[(u32, String)]) -> String {
    match names.iter().find(|(id, _)| *id == type_id) {
        Some((_, name)) => format!("{type_id} {name}"),
        None => type_id.to_string(),
    }
}

fn latency(latency: Duration) -> String {
    let ms = latency.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// The header of [`delivery_row`].
pub fn deliveries_header(out: &mut impl Write) -> io::Result<()> {
    writeln!(
        out,
        "{:<6} {:<20} {:<20} {:<10} {:<5} {:<28} {:<20} {:<40} NOTE",
        "ID", "SENT (UTC)", "TYPE", "STATE", "TRIES", "LAST OUTCOME", "NEXT RETRY (UTC)", "URL"
    )
}

/// One delivery.
pub fn delivery_row(
    out: &mut impl Write,
    delivery: &Delivery,
    names: &[(u32, String)],
) -> io::Result<()> {
    let mut notes = Vec::new();
    if let Some(behind) = delivery.held_behind {
        notes.push(format!("held back behind {behind}"));
    }
    if let Some(original) = delivery.replay_of {
        notes.push(format!("replay of {original}"));
    }
    if let Some(origin) = &delivery.origin {
        notes.push(origin.clone());
    }
    writeln!(
        out,
        "{:<6} {:<20} {:<20} {:<10} {:<5} {:<28} {:<20} {:<40} {}",
        delivery.id,
        short_time(delivery.created_at),
        type_label(delivery.type_id, names),
        delivery.state.as_str(),
        delivery.attempts,
        delivery.last_outcome.map_or("-", |o| o.as_str()),
        delivery
            .next_retry
            .map_or_else(|| "-".to_owned(), short_time),
        delivery.url,
        notes.join("; ")
    )
}

/// One attempt, indented under its delivery.
pub fn attempt_row(out: &mut impl Write, attempt: &Attempt) -> io::Result<()> {
    writeln!(
        out,
        "         attempt {:<3} {:<20} {:<28} {:<4} {:>9}  {}{}",
        attempt.number,
        short_time(attempt.started_at),
        attempt.outcome.as_str(),
        attempt
            .status
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
        latency(attempt.latency),
        attempt.detail,
        attempt.next_retry.map_or_else(String::new, |at| format!(
            " (next attempt {})",
            short_time(at)
        ))
    )
}

/// `wsb delivery`: the delivery's facts, then every attempt with its TLS outcome.
pub fn delivery_detail(
    out: &mut impl Write,
    delivery: &Delivery,
    attempts: &[Attempt],
) -> io::Result<()> {
    writeln!(
        out,
        "delivery {} of message {}",
        delivery.id, delivery.message_id
    )?;
    writeln!(out, "  to:         {}", delivery.url)?;
    writeln!(out, "  type:       {}", delivery.type_id)?;
    writeln!(
        out,
        "  state:      {} after {} attempt(s)",
        delivery.state.as_str(),
        delivery.attempts
    )?;
    if let Some(at) = delivery.next_retry {
        writeln!(out, "  next retry: {} UTC", short_time(at))?;
    }
    if let Some(behind) = delivery.held_behind {
        writeln!(
            out,
            "  held back behind delivery {behind} (same citizen and authority)"
        )?;
    }
    if let Some(original) = delivery.replay_of {
        writeln!(out, "  replays:    delivery {original}")?;
    }
    if let Some(origin) = &delivery.origin {
        writeln!(out, "  sent by:    {origin}")?;
    }
    writeln!(out, "  payload:    {}", delivery.payload)?;
    for attempt in attempts {
        writeln!(
            out,
            "attempt {} at {} UTC: {} ({}), {}",
            attempt.number,
            short_time(attempt.started_at),
            attempt.outcome.as_str(),
            attempt
                .status
                .map_or_else(|| "no HTTP status".to_owned(), |s| format!("HTTP {s}")),
            latency(attempt.latency)
        )?;
        writeln!(out, "  {}", attempt.detail)?;
        match (&attempt.tls.version, &attempt.tls.server_certificate) {
            (Some(version), Some(cert)) => writeln!(
                out,
                "  TLS {version}; webhook certificate {} issued by {} (SHA-256 {})",
                cert.subject, cert.issuer, cert.fingerprint
            )?,
            (None, Some(cert)) => writeln!(
                out,
                "  no TLS session; the webhook presented {} issued by {}",
                cert.subject, cert.issuer
            )?,
            (Some(version), None) => writeln!(out, "  TLS {version}")?,
            (None, None) => writeln!(out, "  no TLS session")?,
        }
        if let Some(excerpt) = attempt
            .response_excerpt
            .as_deref()
            .filter(|e| !e.is_empty())
        {
            writeln!(out, "  answer: {}", excerpt.trim())?;
        }
        if let Some(at) = attempt.next_retry {
            writeln!(out, "  next attempt: {} UTC", short_time(at))?;
        }
    }
    Ok(())
}

/// `wsb subscriptions`, from the admin API's JSON.
pub fn subscriptions(out: &mut impl Write, list: &[serde_json::Value]) -> io::Result<()> {
    writeln!(
        out,
        "{:<38} {:<38} {:<10} {:<11} {:<30} {:<20} UNTIL",
        "SUBSCRIPTION", "SYSTEM", "AUTHORITY", "ENTITYTYPE", "WEBHOOK PATH", "FROM"
    )?;
    for s in list {
        let text = |key: &str| s[key].as_str().unwrap_or("-").to_owned();
        writeln!(
            out,
            "{:<38} {:<38} {:<10} {:<11} {:<30} {:<20} {}",
            text("abonnementId"),
            text("systemIdentifier"),
            format!("{}/{}", s["orgType"], s["orgCode"]),
            s["entityType"],
            text("webhookUrl"),
            text("startDato"),
            text("slutDato")
        )?;
    }
    if list.is_empty() {
        writeln!(out, "(no subscriptions)")?;
    }
    Ok(())
}

/// `wsb check`, from the admin API's JSON: per supplier the three checks.
pub fn checks(out: &mut impl Write, suppliers: &[serde_json::Value]) -> io::Result<()> {
    for supplier in suppliers {
        let receives = &supplier["receives"];
        writeln!(
            out,
            "{}: {} ({} deliveries)",
            supplier["supplier"].as_str().unwrap_or("?"),
            if receives["passed"] == serde_json::Value::Bool(true) {
                "receives STAR's messages"
            } else {
                "not yet"
            },
            supplier["deliveries"]
        )?;
        for (key, label) in [
            ("delivered", "a message delivered"),
            ("duplicate", "a duplicate handled"),
            ("retried_in_order", "a retried one delivered in order"),
        ] {
            let check = &receives[key];
            writeln!(
                out,
                "  [{}] {label}: {}",
                if check["passed"] == serde_json::Value::Bool(true) {
                    "x"
                } else {
                    " "
                },
                check["note"].as_str().unwrap_or("")
            )?;
        }
    }
    Ok(())
}

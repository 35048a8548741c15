//! Subscriptions, as STAR's `AbonnementService` keeps them, and the rules of
//! `SyncWebhookAbonnementer`: the request holds a system's *whole* list; afterwards the system
//! has exactly those subscriptions. [`plan_sync`] is pure: it checks every entry, collects
//! *every* problem (the 400 answer lists them all), and otherwise says what to create, update,
//! keep and delete; the caller applies the plan in one transaction.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

use super::catalog::Catalog;
use super::message::Authority;
use crate::supplier::Category;

/// The largest sync request body read.
pub const MAX_SYNC_BYTES: usize = 1024 * 1024;
/// The most subscriptions one system may have (one sync request's list).
pub const MAX_SUBSCRIPTIONS: usize = 1000;
/// The longest webhook path.
const MAX_WEBHOOK_PATH: usize = 2000;

/// STAR: the end date is in the past.
pub const CODE_END_IN_PAST: u32 = 150000;
/// STAR: the start is after the end (a negative duration).
pub const CODE_NEGATIVE_DURATION: u32 = 1003;
/// STAR: unknown message type.
pub const CODE_UNKNOWN_TYPE: u32 = 150002;
/// STAR: no such sending strategy (the type is not sent to that organisation type).
pub const CODE_NO_STRATEGY: u32 = 150010;

/// The base URL STAR's system administration registered for a system: `https://host[:port][/prefix]`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BaseUrl {
    /// `https://host[:port]` plus any path prefix, without a trailing slash.
    text: String,
    /// The host as TLS names it: a DNS name or an IP address (without brackets).
    host: String,
    port: u16,
}

impl BaseUrl {
    /// The host the TLS server name is checked against.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port (443 unless the URL names one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The webhook URL for a subscription's path (which starts with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.text)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({})", self.text)
    }
}

impl FromStr for BaseUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim().trim_end_matches('/');
        let uri: http::Uri = text
            .parse()
            .map_err(|e| format!("{text:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!(
                "{text:?}: a webhook base URL must start with https:// (STAR pushes over mutual TLS only)"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{text:?} names no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!(
                "{text:?}: a base URL carries no user name or password"
            ));
        }
        if uri.query().is_some() || text.contains('#') {
            return Err(format!("{text:?}: a base URL has no query or fragment"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if host.is_empty() {
            return Err(format!("{text:?} names no host"));
        }
        Ok(BaseUrl {
            text: text.to_owned(),
            host,
            port: authority.port_u16().unwrap_or(443),
        })
    }
}

impl TryFrom<String> for BaseUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<BaseUrl> for String {
    fn from(url: BaseUrl) -> String {
        url.text
    }
}

/// A supplier's client system, as STAR's system administration registers it: where its
/// webhooks live and which authorities it may receive messages for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct System {
    /// `systemIdentifier`.
    pub id: uuid::Uuid,
    /// The supplier it belongs to (its registry name).
    pub supplier: String,
    /// The supplier's category: which message types it may receive.
    pub category: Category,
    /// Where its webhooks are.
    pub base_url: BaseUrl,
    /// The authorities it may hold subscriptions for; empty: any.
    pub authorities: Vec<Authority>,
}

impl System {
    /// The systems the supplier registry holds (`[[supplier.system]]`), as WSB uses them.
    pub fn all_of(registry: &crate::supplier::Registry) -> Vec<System> {
        registry
            .systems()
            .map(|(supplier, system)| System {
                id: system.id,
                supplier: supplier.name.clone(),
                category: supplier.category,
                base_url: system.base_url.clone(),
                authorities: system.authorities.clone(),
            })
            .collect()
    }

    /// The systems the holder of `identity` may act for: those of its supplier, unless the
    /// certificate is unknown or revoked.
    pub fn allowed_for(
        registry: &crate::supplier::Registry,
        identity: &crate::identity::CallerIdentity,
    ) -> Vec<uuid::Uuid> {
        registry
            .find(identity)
            .filter(|supplier| !supplier.is_revoked(identity))
            .map(|supplier| supplier.systems.iter().map(|s| s.id).collect())
            .unwrap_or_default()
    }
}

/// One subscription: messages of one type for one authority go to one webhook of a system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Stable across syncs while system, authority and type stay the same.
    pub id: uuid::Uuid,
    /// The system (`systemIdentifier`).
    pub system: uuid::Uuid,
    /// `orgType` / `orgCode`.
    pub recipient: Authority,
    /// `entityType`: the message type.
    pub type_id: u32,
    /// `webhookUrl`: appended to the system's base URL.
    pub webhook_path: String,
    /// `startDato`: first moment it applies (none: from the start).
    #[serde(with = "time::serde::rfc3339::option")]
    pub start: Option<OffsetDateTime>,
    /// `slutDato`: last moment it applies (none: no end).
    #[serde(with = "time::serde::rfc3339::option")]
    pub end: Option<OffsetDateTime>,
}

impl Subscription {
    /// Does it apply at `now`?
    pub fn active_at(&self, now: OffsetDateTime) -> bool {
        self.start.is_none_or(|start| start <= now) && self.end.is_none_or(|end| now <= end)
    }

    /// The identity of a subscription within its system: one per authority and type.
    fn key(&self) -> (Authority, u32) {
        (self.recipient, self.type_id)
    }

    /// As `SyncWebhookAbonnementer` and the list show it (STAR's key names, plus its id).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "abonnementId": self.id,
            "orgType": self.recipient.org_type,
            "orgCode": self.recipient.org_code,
            "entityType": self.type_id,
            "webhookUrl": self.webhook_path,
            "startDato": self.start.map(star_date),
            "slutDato": self.end.map(star_date),
        })
    }
}

/// STAR's date notation, `2023-01-01T00:00:00` (UTC).
fn star_date(time: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    time.format(&format).unwrap_or_else(|_| time.to_string())
}

/// One problem found in a sync request: where, STAR's code when it has one, what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncProblem {
    /// Where in the request: `systemIdentifier`, `abonnementer[2].slutDato`, `$` for the whole.
    pub path: String,
    /// STAR's error code (150000, 1003, 150002, 150010) where one is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for SyncProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{}: {} ({code})", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// What a valid sync request changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// The system.
    pub system: uuid::Uuid,
    /// Its whole list afterwards, in the request's order.
    pub subscriptions: Vec<Subscription>,
    /// New subscriptions.
    pub created: Vec<uuid::Uuid>,
    /// Existing ones whose path or dates change.
    pub updated: Vec<uuid::Uuid>,
    /// Existing ones left as they are.
    pub unchanged: Vec<uuid::Uuid>,
    /// Existing ones not in the request: deleted, their undelivered messages dropped.
    pub deleted: Vec<uuid::Uuid>,
}

impl SyncPlan {
    /// True when applying it changes nothing (a repeated request).
    pub fn is_noop(&self) -> bool {
        self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty()
    }
}

/// What the sync rules need to know besides the request.
#[derive(Debug, Clone, Copy)]
pub struct SyncContext<'a> {
    /// The message catalog (types, who may receive them).
    pub catalog: &'a Catalog,
    /// Every registered system.
    pub systems: &'a [System],
    /// The systems the calling certificate may act for.
    pub allowed: &'a [uuid::Uuid],
    /// The current subscriptions of *all* systems (only the request's system's are used).
    pub existing: &'a [Subscription],
    /// Now, for the date rules.
    pub now: OffsetDateTime,
}

/// Checks a `SyncWebhookAbonnementer` request body and plans its effect, or lists every
/// problem found.
pub fn plan_sync(context: SyncContext<'_>, body: &[u8]) -> Result<SyncPlan, Vec<SyncProblem>> {
    let mut problems = Problems::default();
    if body.len() > MAX_SYNC_BYTES {
        problems.add(
            "$",
            None,
            format!(
                "the request is {} bytes; the most accepted is {MAX_SYNC_BYTES}",
                body.len()
            ),
        );
        return Err(problems.0);
    }
    let document: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(error) => {
            problems.add(
                "$",
                None,
                format!(
                    "not JSON at line {}, column {}: {error}",
                    error.line(),
                    error.column()
                ),
            );
            return Err(problems.0);
        }
    };
    let Some(object) = document.as_object() else {
        problems.add(
            "$",
            None,
            "expected an object {\"systemIdentifier\": …, \"abonnementer\": […]}".into(),
        );
        return Err(problems.0);
    };
    problems.unknown_keys("", object, &["systemIdentifier", "abonnementer"]);

    let system = system_of(context, object.get("systemIdentifier"), &mut problems);
    let entries: &[Value] = match object.get("abonnementer") {
        Some(Value::Array(entries)) => entries,
        Some(Value::Null) | None => {
            problems.add(
                "abonnementer",
                None,
                "missing: give the whole list of subscriptions ([] deletes them all)".into(),
            );
            &[]
        }
        Some(other) => {
            problems.add(
                "abonnementer",
                None,
                format!("expected an array, got {}", kind_of(other)),
            );
            &[]
        }
    };
    if entries.len() > MAX_SUBSCRIPTIONS {
        problems.add(
            "abonnementer",
            None,
            format!(
                "{} subscriptions; a system may have at most {MAX_SUBSCRIPTIONS}",
                entries.len()
            ),
        );
    }

    let mut wanted: Vec<Subscription> = Vec::with_capacity(entries.len());
    let mut first_at: Vec<((Authority, u32), usize)> = Vec::new();
    for (index, entry) in entries.iter().enumerate().take(MAX_SUBSCRIPTIONS) {
        let path = format!("abonnementer[{index}]");
        let Some(subscription) = entry_of(context, system, &path, entry, &mut problems) else {
            continue;
        };
        if let Some((_, first)) = first_at.iter().find(|(key, _)| *key == subscription.key()) {
            problems.add(
                &path,
                None,
                format!(
                    "a second subscription of orgType {} orgCode {} to entityType {}: abonnementer[{first}] \
                     already has it (one webhook per authority and message type)",
                    subscription.recipient.org_type,
                    subscription.recipient.org_code,
                    subscription.type_id
                ),
            );
            continue;
        }
        first_at.push((subscription.key(), index));
        wanted.push(subscription);
    }
    let Some(system) = system else {
        return Err(problems.0);
    };
    if !problems.0.is_empty() {
        return Err(problems.0);
    }

    let current: Vec<&Subscription> = context
        .existing
        .iter()
        .filter(|s| s.system == system.id)
        .collect();
    let mut plan = SyncPlan {
        system: system.id,
        subscriptions: Vec::with_capacity(wanted.len()),
        created: Vec::new(),
        updated: Vec::new(),
        unchanged: Vec::new(),
        deleted: Vec::new(),
    };
    for mut subscription in wanted {
        match current.iter().find(|s| s.key() == subscription.key()) {
            Some(existing) => {
                subscription.id = existing.id;
                if **existing == subscription {
                    plan.unchanged.push(subscription.id);
                } else {
                    plan.updated.push(subscription.id);
                }
            }
            None => plan.created.push(subscription.id),
        }
        plan.subscriptions.push(subscription);
    }
    plan.deleted = current
        .iter()
        .filter(|s| !plan.subscriptions.iter().any(|w| w.id == s.id))
        .map(|s| s.id)
        .collect();
    Ok(plan)
}

#[derive(Default)]
struct Problems(Vec<SyncProblem>);

impl Problems {
    fn add(&mut self, path: &str, code: Option<u32>, message: String) {
        self.0.push(SyncProblem {
            path: if path.is_empty() {
                "$".into()
            } else {
                path.to_owned()
            },
            code,
            message,
        });
    }

    fn unknown_keys(&mut self, path: &str, object: &Map<String, Value>, known: &[&str]) {
        for key in object.keys() {
            if !known.contains(&key.as_str()) {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                self.add(
                    &at,
                    None,
                    format!("unknown field; expected {}", known.join(", ")),
                );
            }
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The system the request names, if it is registered and the caller may act for it.
fn system_of<'a>(
    context: SyncContext<'a>,
    value: Option<&Value>,
    problems: &mut Problems,
) -> Option<&'a System> {
    let path = "systemIdentifier";
    let text = match value {
        Some(Value::String(text)) => text,
        Some(other) => {
            problems.add(
                path,
                None,
                format!(
                    "expected the system's GUID as a string, got {}",
                    kind_of(other)
                ),
            );
            return None;
        }
        None => {
            problems.add(path, None, "missing: name the system (its GUID)".into());
            return None;
        }
    };
    let Ok(id) = uuid::Uuid::try_parse(text.trim()) else {
        problems.add(path, None, format!("{text:?} is not a GUID"));
        return None;
    };
    let Some(system) = context.systems.iter().find(|s| s.id == id) else {
        problems.add(
            path,
            None,
            format!("no system {id} is registered with STAR's system administration"),
        );
        return None;
    };
    if !context.allowed.contains(&id) {
        problems.add(
            path,
            None,
            format!(
                "the calling certificate may not act for system {id} (it belongs to supplier {})",
                system.supplier
            ),
        );
        return None;
    }
    Some(system)
}

/// One entry of the list, checked; `None` if it has a problem (recorded).
fn entry_of(
    context: SyncContext<'_>,
    system: Option<&System>,
    path: &str,
    entry: &Value,
    problems: &mut Problems,
) -> Option<Subscription> {
    let Some(object) = entry.as_object() else {
        problems.add(
            path,
            None,
            format!("expected an object, got {}", kind_of(entry)),
        );
        return None;
    };
    let before = problems.0.len();
    problems.unknown_keys(
        path,
        object,
        &[
            "orgType",
            "orgCode",
            "entityType",
            "webhookUrl",
            "startDato",
            "slutDato",
        ],
    );
    let number = |key: &str, problems: &mut Problems| -> Option<u32> {
        let at = format!("{path}.{key}");
        match object.get(key) {
            Some(Value::Number(n)) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => Some(n),
                None => {
                    problems.add(&at, None, format!("{n} is not a whole number 0-4294967295"));
                    None
                }
            },
            Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                match s.parse() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        problems.add(&at, None, format!("{s} is too large"));
                        None
                    }
                }
            }
            Some(other) => {
                problems.add(
                    &at,
                    None,
                    format!("expected a number, got {}", kind_of(other)),
                );
                None
            }
            None => {
                problems.add(&at, None, "missing".into());
                None
            }
        }
    };
    let org_type = number("orgType", problems);
    let org_code = number("orgCode", problems);
    let type_id = number("entityType", problems);
    let webhook_path = webhook_path_of(system, &format!("{path}.webhookUrl"), object, problems);
    let start = date_of(
        &format!("{path}.startDato"),
        object.get("startDato"),
        problems,
    );
    let end = date_of(
        &format!("{path}.slutDato"),
        object.get("slutDato"),
        problems,
    );

    if let Some(type_id) = type_id {
        match context.catalog.message_type(type_id) {
            None => problems.add(
                &format!("{path}.entityType"),
                Some(CODE_UNKNOWN_TYPE),
                format!(
                    "unknown message type {type_id}; known: {}",
                    context
                        .catalog
                        .types()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some(kind) => {
                if let Some(system) = system {
                    if !kind.categories.contains(&system.category) {
                        problems.add(
                            &format!("{path}.entityType"),
                            None,
                            format!(
                                "message type {kind} is not permitted for {} suppliers' systems \
                                 (permitted: {})",
                                system.category.as_str(),
                                kind.categories
                                    .iter()
                                    .map(|c| c.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
                if let Some(org_type) = org_type {
                    if !kind.recipients.contains(&org_type) {
                        problems.add(
                            &format!("{path}.orgType"),
                            Some(CODE_NO_STRATEGY),
                            format!(
                                "no sending strategy sends {kind} to organisation type {}; it goes to: {}",
                                context.catalog.describe_org_type(org_type),
                                kind.recipients
                                    .iter()
                                    .map(|c| context.catalog.describe_org_type(*c))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        );
                    }
                }
            }
        }
    }
    if let (Some(system), Some(org_type), Some(org_code)) = (system, org_type, org_code) {
        let authority = Authority { org_type, org_code };
        if !system.authorities.is_empty() && !system.authorities.contains(&authority) {
            problems.add(
                path,
                None,
                format!(
                    "system {} may not receive messages for authority {} {org_code}; it is permitted: {}",
                    system.id,
                    context.catalog.describe_org_type(org_type),
                    system
                        .authorities
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    if let Some(Some(end)) = end {
        if end < context.now {
            problems.add(
                &format!("{path}.slutDato"),
                Some(CODE_END_IN_PAST),
                format!("the end date {} is in the past", star_date(end)),
            );
        }
        if let Some(Some(start)) = start {
            if start > end {
                problems.add(
                    &format!("{path}.startDato"),
                    Some(CODE_NEGATIVE_DURATION),
                    format!(
                        "the start {} is after the end {}",
                        star_date(start),
                        star_date(end)
                    ),
                );
            }
        }
    }
    if problems.0.len() > before {
        return None;
    }
    Some(Subscription {
        id: uuid::Uuid::new_v4(),
        system: system?.id,
        recipient: Authority {
            org_type: org_type?,
            org_code: org_code?,
        },
        type_id: type_id?,
        webhook_path: webhook_path?,
        start: start?,
        end: end?,
    })
}

/// The webhook path: relative to the system's base URL, and a valid URL once joined.
fn webhook_path_of(
    system: Option<&System>,
    path: &str,
    object: &Map<String, Value>,
    problems: &mut Problems,
) -> Option<String> {
    let text = match object.get("webhookUrl") {
        Some(Value::String(text)) => text.trim(),
        Some(other) => {
            problems.add(
                path,
                None,
                format!("expected a string, got {}", kind_of(other)),
            );
            return None;
        }
        None => {
            problems.add(path, None, "missing: write e.g. /webhook".into());
            return None;
        }
    };
    let base = system.map_or_else(
        || "https://webhook.invalid".to_owned(),
        |s| s.base_url.to_string(),
    );
    let problem = if text.starts_with("https://") || text.starts_with("http://") {
        Some(format!(
            "{text:?}: webhookUrl is relative to the base URL STAR's system administration registered \
             for the system ({base}); write the path, e.g. /webhook"
        ))
    } else if !text.starts_with('/') {
        Some(format!("{text:?} must start with / (e.g. /webhook)"))
    } else if text.len() > MAX_WEBHOOK_PATH {
        Some(format!("longer than {MAX_WEBHOOK_PATH} characters"))
    } else if text.contains('#') {
        Some(format!("{text:?}: a webhook URL has no fragment (#…)"))
    } else if text.split(['/', '?']).any(|segment| segment == "..") {
        Some(format!("{text:?}: '..' segments are not allowed"))
    } else if let Err(error) = format!("{base}{text}").parse::<http::Uri>() {
        Some(format!("{text:?} is not a valid URL path: {error}"))
    } else {
        None
    };
    match problem {
        Some(message) => {
            problems.add(path, None, message);
            None
        }
        None => Some(text.to_owned()),
    }
}

/// A STAR date: `2023-01-01T00:00:00` (taken as UTC), RFC 3339, or a bare `2023-01-01`;
/// null or absent means none. `None` if there is a problem (recorded).
fn date_of(
    path: &str,
    value: Option<&Value>,
    problems: &mut Problems,
) -> Option<Option<OffsetDateTime>> {
    let text = match value {
        None | Some(Value::Null) => return Some(None),
        Some(Value::String(text)) => text.trim(),
        Some(other) => {
            problems.add(
                path,
                None,
                format!(
                    "expected a date string like 2023-01-01T00:00:00, got {}",
                    kind_of(other)
                ),
            );
            return None;
        }
    };
    let naive = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let day = format_description!("[year]-[month]-[day]");
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .or_else(|| {
            PrimitiveDateTime::parse(text, &naive)
                .ok()
                .map(PrimitiveDateTime::assume_utc)
        })
        .or_else(|| {
            time::Date::parse(text, &day)
                .ok()
                .map(|d| d.midnight().assume_utc())
        });
    match parsed {
        Some(time) => Some(Some(time)),
        None => {
            problems.add(
                path,
                None,
                format!("{text:?} is not a date: write e.g. 2023-01-01T00:00:00"),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SYSTEM: &str = "0b6e2d8e-4c1a-4f3e-9a57-2d7c9e1f0a11";
    const OTHER: &str = "7d1c3b2a-0f9e-4d8c-8b7a-6e5f4d3c2b1a";

    fn systems() -> Vec<System> {
        vec![
            System {
                id: SYSTEM.parse().expect("uuid"),
                supplier: "Testleverandør ApS".into(),
                category: Category::Large,
                base_url: "https://webhook.leverandor.test:8443/star"
                    .parse()
                    .expect("url"),
                authorities: vec![
                    Authority {
                        org_type: 8,
                        org_code: 101,
                    },
                    Authority {
                        org_type: 1,
                        org_code: 42,
                    },
                ],
            },
            System {
                id: OTHER.parse().expect("uuid"),
                supplier: "Lille Leverandør".into(),
                category: Category::Small,
                base_url: "https://lille.test".parse().expect("url"),
                authorities: vec![],
            },
        ]
    }

    fn plan(
        catalog: &Catalog,
        systems: &[System],
        allowed: &[&str],
        existing: &[Subscription],
        body: Value,
    ) -> Result<SyncPlan, Vec<SyncProblem>> {
        let allowed: Vec<uuid::Uuid> = allowed.iter().map(|a| a.parse().expect("uuid")).collect();
        plan_sync(
            SyncContext {
                catalog,
                systems,
                allowed: &allowed,
                existing,
                now: datetime!(2025-06-01 12:00 UTC),
            },
            body.to_string().as_bytes(),
        )
    }

    fn entry(org_type: u32, org_code: u32, entity_type: u32, path: &str) -> Value {
        serde_json::json!({"orgType": org_type, "orgCode": org_code, "entityType": entity_type,
            "webhookUrl": path, "startDato": "2025-01-01T00:00:00", "slutDato": "2026-12-31T23:59:59"})
    }

    #[test]
    fn a_valid_list_is_planned_and_repeating_it_changes_nothing() {
        let catalog = Catalog::shipped().expect("catalog");
        let systems = systems();
        let body = serde_json::json!({"systemIdentifier": SYSTEM, "abonnementer": [
            entry(8, 101, 30000, "/webhook"),
            entry(1, 42, 60010, "/webhook/akasse?x=1"),
        ]});
        let first = plan(&catalog, &systems, &[SYSTEM], &[], body.clone()).expect("valid");
        assert_eq!(first.created.len(), 2);
        assert!(first.updated.is_empty() && first.deleted.is_empty());
        assert_eq!(
            first.subscriptions[0].start,
            Some(datetime!(2025-01-01 00:00 UTC))
        );
        assert_eq!(
            systems[0]
                .base_url
                .join(&first.subscriptions[1].webhook_path),
            "https://webhook.leverandor.test:8443/star/webhook/akasse?x=1"
        );

        let again = plan(&catalog, &systems, &[SYSTEM], &first.subscriptions, body).expect("again");
        assert!(again.is_noop());
        assert_eq!(again.unchanged, first.created, "ids are kept");

        // A new path for one, the other left out: one update, one delete.
        let body = serde_json::json!({"systemIdentifier": SYSTEM, "abonnementer": [
            entry(8, 101, 30000, "/v2/webhook"),
        ]});
        let third = plan(&catalog, &systems, &[SYSTEM], &first.subscriptions, body).expect("third");
        assert_eq!(third.updated, [first.subscriptions[0].id]);
        assert_eq!(third.deleted, [first.subscriptions[1].id]);

        let empty = serde_json::json!({"systemIdentifier": SYSTEM, "abonnementer": []});
        let cleared =
            plan(&catalog, &systems, &[SYSTEM], &first.subscriptions, empty).expect("empty");
        assert_eq!(cleared.deleted.len(), 2);
        assert!(cleared.subscriptions.is_empty());
    }

    #[test]
    fn every_problem_is_listed_at_once_with_its_path_and_code() {
        let catalog = Catalog::shipped().expect("catalog");
        let systems = systems();
        let body = serde_json::json!({"systemIdentifier": SYSTEM, "extra": 1, "abonnementer": [
            entry(8, 101, 30000, "/webhook"),
            {"orgType": 8, "orgCode": 101, "entityType": 4242, "webhookUrl": "/x"},
            {"orgType": 7, "orgCode": 101, "entityType": 30000, "webhookUrl": "https://evil.test/x"},
            {"orgType": 8, "orgCode": 101, "entityType": 90001, "webhookUrl": "/x",
             "startDato": "2025-02-01T00:00:00", "slutDato": "2025-01-01T00:00:00"},
            {"orgType": 8, "orgCode": 999, "entityType": 90001, "webhookUrl": "x/../y", "startDato": "gisp"},
            entry(8, 101, 30000, "/again"),
            {"orgType": "otte", "entityType": 30000, "webhookUrl": "/ok", "typo": true},
            "not an object",
        ]});
        let problems = plan(&catalog, &systems, &[SYSTEM], &[], body).expect_err("invalid");
        let listed: Vec<(String, Option<u32>)> =
            problems.iter().map(|p| (p.path.clone(), p.code)).collect();
        let expected: Vec<(String, Option<u32>)> = [
            ("extra", None),
            ("abonnementer[1].entityType", Some(CODE_UNKNOWN_TYPE)),
            ("abonnementer[2].webhookUrl", None),
            ("abonnementer[2].orgType", Some(CODE_NO_STRATEGY)),
            ("abonnementer[2]", None),
            ("abonnementer[3].slutDato", Some(CODE_END_IN_PAST)),
            ("abonnementer[3].startDato", Some(CODE_NEGATIVE_DURATION)),
            ("abonnementer[4].webhookUrl", None),
            ("abonnementer[4].startDato", None),
            ("abonnementer[4]", None),
            ("abonnementer[5]", None),
            ("abonnementer[6].typo", None),
            ("abonnementer[6].orgType", None),
            ("abonnementer[6].orgCode", None),
            ("abonnementer[7]", None),
        ]
        .into_iter()
        .map(|(p, c)| (p.to_owned(), c))
        .collect();
        assert_eq!(listed, expected, "{problems:#?}");
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(text[2].contains("relative to the base URL"), "{}", text[2]);
        assert!(
            text[10].contains("abonnementer[0] already has it"),
            "{}",
            text[10]
        );
    }

    #[test]
    fn the_system_must_be_registered_and_the_callers() {
        let catalog = Catalog::shipped().expect("catalog");
        let systems = systems();
        let list = serde_json::json!([entry(8, 101, 30000, "/w")]);
        let not_yours = plan(
            &catalog,
            &systems,
            &[OTHER],
            &[],
            serde_json::json!({"systemIdentifier": SYSTEM, "abonnementer": list}),
        )
        .expect_err("not the caller's");
        assert_eq!(not_yours.len(), 1);
        assert!(
            not_yours[0].message.contains("may not act for"),
            "{not_yours:?}"
        );

        let unknown = plan(
            &catalog,
            &systems,
            &[SYSTEM],
            &[],
            serde_json::json!({"systemIdentifier": "3c1d2e3f-0000-4000-8000-000000000000", "abonnementer": list}),
        )
        .expect_err("unknown system");
        assert!(unknown[0].message.contains("no system"), "{unknown:?}");

        // A small supplier's system may not subscribe to anything shipped.
        let small = plan(
            &catalog,
            &systems,
            &[OTHER],
            &[],
            serde_json::json!({"systemIdentifier": OTHER, "abonnementer": [entry(8, 101, 30000, "/w")]}),
        )
        .expect_err("small");
        assert!(
            small[0].message.contains("not permitted for small"),
            "{small:?}"
        );

        for (body, needle) in [
            (b"{".to_vec(), "not JSON at line 1"),
            (b"[]".to_vec(), "expected an object"),
            (vec![b' '; MAX_SYNC_BYTES + 1], "bytes; the most"),
        ] {
            let problems = plan_sync(
                SyncContext {
                    catalog: &catalog,
                    systems: &systems,
                    allowed: &[],
                    existing: &[],
                    now: OffsetDateTime::now_utc(),
                },
                &body,
            )
            .expect_err("bad body");
            assert!(problems[0].message.contains(needle), "{problems:?}");
        }
    }

    #[test]
    fn base_urls_must_be_https_hosts() {
        let url: BaseUrl = "https://[::1]:9443/prefix/".parse().expect("ipv6");
        assert_eq!((url.host(), url.port()), ("::1", 9443));
        assert_eq!(url.join("/w"), "https://[::1]:9443/prefix/w");
        assert_eq!(
            "https://a.test".parse::<BaseUrl>().expect("url").port(),
            443
        );
        for bad in [
            "http://a.test",
            "https://",
            "a.test",
            "https://u:p@a.test",
            "https://a.test/?q",
        ] {
            assert!(bad.parse::<BaseUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn subscriptions_apply_between_their_dates() {
        let subscription = Subscription {
            id: uuid::Uuid::nil(),
            system: uuid::Uuid::nil(),
            recipient: Authority {
                org_type: 8,
                org_code: 101,
            },
            type_id: 30000,
            webhook_path: "/w".into(),
            start: Some(datetime!(2025-01-01 00:00 UTC)),
            end: Some(datetime!(2025-12-31 23:59:59 UTC)),
        };
        assert!(subscription.active_at(datetime!(2025-06-01 00:00 UTC)));
        assert!(!subscription.active_at(datetime!(2024-12-31 23:59 UTC)));
        assert!(!subscription.active_at(datetime!(2026-01-01 00:00 UTC)));
        assert_eq!(subscription.to_json()["startDato"], "2025-01-01T00:00:00");
    }
}

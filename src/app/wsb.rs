//! The AbonnementService-like REST endpoint on the SOAP listener: a supplier keeps its WSB
//! subscriptions with its own certificate over the same mutual TLS as its SOAP calls.
//!
//! - `POST /AbonnementService/v1/SyncWebhookAbonnementer`: the request's list becomes the whole
//!   list of its system ([`crate::wsb::Wsb::sync`]): 200 with the list, 400 listing every
//!   problem, 500 when nothing could be stored;
//! - `GET /AbonnementService/v1/WebhookAbonnementer[?systemIdentifier=…]`: the caller's systems
//!   with their base URLs and subscriptions;
//! - `GET /AbonnementService/v1/Beskedtyper`: the message types and who may receive them.
//!
//! The systems a certificate may act for are its supplier's `[[supplier.system]]` entries in
//! the registry. An `x-requestId` header (a GUID, at most 46 characters, as DFDG's newer REST
//! services take it) is remembered; a repeated one is answered 412. Every request is journaled
//! like a SOAP call (service `AbonnementService`, outcome `http`) and answered only once the
//! journal committed it.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{read_body, App, Connection, LiveEvent, ResponseBody, CALL_ID_HEADER};
use crate::journal::{CallRecord, Outcome};
use crate::tls::ClientCertificate;
use crate::wsb::{Subscription, System};

/// Where the endpoint lives on the SOAP listener.
pub const PREFIX: &str = "/AbonnementService/v1";
/// The service name the journal files these calls under.
pub const SERVICE: &str = "AbonnementService";
/// STAR's limit on an `x-requestId`.
pub const MAX_REQUEST_ID: usize = 46;
/// How many request ids are remembered for the 412 on a repeat.
pub const REMEMBERED_REQUEST_IDS: usize = 10_000;

/// Does this path belong to the subscription endpoint?
pub fn is_subscription_path(path: &str) -> bool {
    path == PREFIX
        || path
            .strip_prefix(PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The operations of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Sync,
    List,
    Types,
}

impl Operation {
    fn of(path: &str) -> Option<Operation> {
        match path.strip_prefix(PREFIX)?.trim_end_matches('/') {
            "/SyncWebhookAbonnementer" => Some(Operation::Sync),
            "/WebhookAbonnementer" => Some(Operation::List),
            "/Beskedtyper" => Some(Operation::Types),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Operation::Sync => "SyncWebhookAbonnementer",
            Operation::List => "WebhookAbonnementer",
            Operation::Types => "Beskedtyper",
        }
    }

    fn method(self) -> Method {
        match self {
            Operation::Sync => Method::POST,
            Operation::List | Operation::Types => Method::GET,
        }
    }
}

/// The request ids seen, oldest first, bounded.
#[derive(Debug, Default)]
pub struct RequestIds {
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl RequestIds {
    /// Remembers `id`; false if it was seen before.
    fn first_time(&self, id: &str) -> bool {
        let mut guard = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (set, order) = &mut *guard;
        if set.contains(id) {
            return false;
        }
        if order.len() >= REMEMBERED_REQUEST_IDS {
            if let Some(oldest) = order.pop_front() {
                set.remove(&oldest);
            }
        }
        set.insert(id.to_owned());
        order.push_back(id.to_owned());
        true
    }
}

/// An answer before it is journaled.
struct Answer {
    status: StatusCode,
    body: Value,
    detail: String,
    supplier: Option<String>,
}

impl Answer {
    fn error(status: StatusCode, path: &str, message: impl Into<String>) -> Answer {
        let message = message.into();
        Answer {
            status,
            detail: message.clone(),
            body: json!({ "errors": [{ "path": path, "message": message }] }),
            supplier: None,
        }
    }
}

/// Answers one request to the endpoint on `connection`.
pub async fn handle(
    app: &App,
    request: http::Request<Incoming>,
    connection: &Connection,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let time = OffsetDateTime::now_utc();
    let (parts, body) = request.into_parts();
    let operation = Operation::of(parts.uri.path());
    let body = match (&operation, &parts.method) {
        (Some(Operation::Sync), &Method::POST) => read_body(&parts, body, &app.limits).await,
        _ => Ok(bytes::Bytes::new()),
    };
    let (answer, body) = match body {
        Ok(body) => (
            answer(app, &parts, operation, connection, &body).await,
            body,
        ),
        Err(refusal) => (
            Answer::error(
                refusal.answer(crate::soap::SoapVersion::V11).0,
                "$",
                refusal.to_string(),
            ),
            bytes::Bytes::new(),
        ),
    };
    let response_body = answer.body.to_string();
    let record = record(
        app,
        &parts,
        operation,
        connection,
        &answer,
        (&body, &response_body),
        time,
        started,
    );
    let id = match app.journal.record_call(record).await {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "cannot journal a subscription call; answering 500");
            let failed = Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "$",
                "internal error: the journal cannot commit; nothing changed in the answer's record",
            );
            return json_response(failed.status, &failed.body.to_string(), None);
        }
    };
    let latency = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    app.metrics.record_call(
        SERVICE,
        operation.map_or("-", Operation::name),
        "http",
        latency,
    );
    drop(app.events.send(LiveEvent::Call(id)));
    let mut response = json_response(answer.status, &response_body, Some(id));
    if answer.status == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(operation) = operation {
            if let Ok(allow) = HeaderValue::from_str(operation.method().as_str()) {
                response.headers_mut().insert(ALLOW, allow);
            }
        }
    }
    response
}

async fn answer(
    app: &App,
    parts: &Parts,
    operation: Option<Operation>,
    connection: &Connection,
    body: &[u8],
) -> Answer {
    let identity = match &connection.session.client {
        ClientCertificate::Verified(identity) => identity.clone(),
        ClientCertificate::Refused(refusal) => {
            return Answer::error(
                StatusCode::FORBIDDEN,
                "$",
                format!("the client certificate is refused: {}", refusal.detail),
            )
        }
    };
    let registry = app.suppliers.current();
    let mut answer = answer_for(app, parts, operation, &identity, &registry, body).await;
    answer.supplier = registry.find(&identity).map(|s| s.name.clone());
    answer
}

/// The answer to a caller with a verified certificate.
async fn answer_for(
    app: &App,
    parts: &Parts,
    operation: Option<Operation>,
    identity: &crate::identity::CallerIdentity,
    registry: &crate::supplier::Registry,
    body: &[u8],
) -> Answer {
    let Some(operation) = operation else {
        return Answer::error(
            StatusCode::NOT_FOUND,
            "$",
            format!(
                "no such operation {}; the AbonnementService has POST {PREFIX}/SyncWebhookAbonnementer, GET {PREFIX}/WebhookAbonnementer and GET {PREFIX}/Beskedtyper",
                parts.uri.path()
            ),
        );
    };
    if parts.method != operation.method() {
        return Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "$",
            format!(
                "{} takes {}, not {}",
                operation.name(),
                operation.method(),
                parts.method
            ),
        );
    }
    let Some(wsb) = app.wsb() else {
        return Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "$",
            "WSB is off on this server: it has no STAR certificate to push with, or was started with --no-wsb",
        );
    };
    if let Some(value) = parts.headers.get("x-requestid") {
        let id = match value.to_str() {
            Ok(id) if !id.trim().is_empty() && id.trim().len() <= MAX_REQUEST_ID => id.trim(),
            _ => {
                return Answer::error(
                    StatusCode::BAD_REQUEST,
                    "x-requestId",
                    format!(
                        "x-requestId must be 1 to {MAX_REQUEST_ID} visible characters (a GUID)"
                    ),
                )
            }
        };
        if !app.request_ids.first_time(id) {
            return Answer::error(
                StatusCode::PRECONDITION_FAILED,
                "x-requestId",
                format!("x-requestId {id} was used before: send each request with a new GUID"),
            );
        }
    }
    if registry.is_open() {
        return Answer::error(
            StatusCode::FORBIDDEN,
            "$",
            "no supplier registry: STAR's system administration registers each supplier's systems and their base URLs; add the supplier and a [[supplier.system]] to suppliers.toml",
        );
    }
    let allowed = System::allowed_for(registry, identity);
    match operation {
        Operation::Sync => match wsb.sync(&allowed, body).await {
            Ok(report) => Answer {
                status: StatusCode::OK,
                detail: format!(
                    "subscriptions of system {}: {} created, {} updated, {} unchanged, {} deleted",
                    report.plan.system,
                    report.plan.created.len(),
                    report.plan.updated.len(),
                    report.plan.unchanged.len(),
                    report.plan.deleted.len()
                ),
                body: report.body(),
                supplier: None,
            },
            Err(rejection) => Answer {
                status: StatusCode::from_u16(rejection.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                detail: rejection.to_string(),
                body: rejection.body(),
                supplier: None,
            },
        },
        Operation::List => {
            let wanted = match query_system(parts) {
                Ok(wanted) => wanted,
                Err(message) => {
                    return Answer::error(StatusCode::BAD_REQUEST, "systemIdentifier", message)
                }
            };
            if let Some(id) = wanted.filter(|id| !allowed.contains(id)) {
                return Answer::error(
                    StatusCode::BAD_REQUEST,
                    "systemIdentifier",
                    format!("the calling certificate may not act for system {id}"),
                );
            }
            let systems = wsb.systems();
            let listed: Vec<Value> = systems
                .iter()
                .filter(|s| allowed.contains(&s.id) && wanted.is_none_or(|id| id == s.id))
                .map(|s| {
                    json!({
                        "systemIdentifier": s.id,
                        "baseUrl": s.base_url.to_string(),
                        "myndigheder": s.authorities.iter().map(|a| json!({"orgType": a.org_type, "orgCode": a.org_code})).collect::<Vec<_>>(),
                        "abonnementer": wsb.subscriptions(Some(s.id)).iter().map(Subscription::to_json).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Answer {
                status: StatusCode::OK,
                detail: format!("{} system(s) listed", listed.len()),
                body: json!({ "systemer": listed }),
                supplier: None,
            }
        }
        Operation::Types => {
            let category = registry.find(identity).map(|s| s.category);
            let catalog = wsb.catalog();
            let types: Vec<Value> = catalog
                .types()
                .map(|t| {
                    json!({
                        "entityType": t.id,
                        "navn": t.name,
                        "orgTypes": t.recipients,
                        "body": t.body,
                        "hentAfData": t.fetch,
                        "tilladt": category.is_some_and(|c| t.categories.contains(&c)),
                    })
                })
                .collect();
            Answer {
                status: StatusCode::OK,
                detail: format!("{} message types listed", types.len()),
                body: json!({ "beskedtyper": types }),
                supplier: None,
            }
        }
    }
}

/// `?systemIdentifier=<guid>`, if given.
fn query_system(parts: &Parts) -> Result<Option<uuid::Uuid>, String> {
    let Some(query) = parts.uri.query() else {
        return Ok(None);
    };
    let mut wanted = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "systemIdentifier" => {
                wanted = Some(
                    uuid::Uuid::try_parse(value).map_err(|_| format!("{value:?} is not a GUID"))?,
                );
            }
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}; known: systemIdentifier"
                ))
            }
        }
    }
    Ok(wanted)
}

#[allow(clippy::too_many_arguments)]
fn record(
    app: &App,
    parts: &Parts,
    operation: Option<Operation>,
    connection: &Connection,
    answer: &Answer,
    (request_body, response_body): (&[u8], &str),
    time: OffsetDateTime,
    started: Instant,
) -> CallRecord {
    let cap = usize::try_from(app.limits.journal_body_cap).unwrap_or(usize::MAX);
    CallRecord {
        time,
        peer: connection.peer.to_string(),
        tls_version: connection.session.tls_version.to_owned(),
        cipher_suite: connection.session.cipher_suite.clone(),
        alpn: connection.session.alpn.clone(),
        identity: connection.identity.clone(),
        method: parts.method.to_string(),
        path: crate::encoding::decoded_path_and_query(&parts.uri),
        soap_version: None,
        soap_action: None,
        operation: operation.map(|o| o.name().to_owned()),
        operation_namespace: None,
        star_headers: None,
        request_body: bytes::Bytes::copy_from_slice(&request_body[..request_body.len().min(cap)]),
        request_truncated: request_body.len() > cap,
        response_body: bytes::Bytes::copy_from_slice(
            &response_body.as_bytes()[..response_body.len().min(cap)],
        ),
        response_truncated: response_body.len() > cap,
        http_status: answer.status.as_u16(),
        receipts: Vec::new(),
        outcome: Outcome::Http,
        detail: Some(answer.detail.clone()),
        latency_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        scenario_file: None,
        scenario_rule: None,
        service: Some(SERVICE.to_owned()),
        service_operation: operation.map(|o| o.name().to_owned()),
        findings: Vec::new(),
        supplier: answer.supplier.clone(),
        authorization: None,
        identity_findings: Vec::new(),
    }
}

fn json_response(status: StatusCode, body: &str, call_id: Option<i64>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(id) = call_id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        response.headers_mut().insert(CALL_ID_HEADER, id);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_request_ids() {
        assert!(is_subscription_path(
            "/AbonnementService/v1/SyncWebhookAbonnementer"
        ));
        assert!(is_subscription_path("/AbonnementService/v1"));
        assert!(!is_subscription_path("/AbonnementService/v10/x"));
        assert!(!is_subscription_path("/JobcenterMessageService/2/x.svc"));
        assert_eq!(
            Operation::of("/AbonnementService/v1/WebhookAbonnementer/"),
            Some(Operation::List)
        );
        assert_eq!(Operation::of("/AbonnementService/v1/Other"), None);
        let ids = RequestIds::default();
        assert!(ids.first_time("a"));
        assert!(!ids.first_time("a"));
        for n in 0..REMEMBERED_REQUEST_IDS {
            ids.first_time(&n.to_string());
        }
        assert!(ids.first_time("a"), "the oldest ids are forgotten");
    }
}

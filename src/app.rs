//! The request pipeline, free of sockets: read the body under a size and time bound, check the
//! caller's certificate verdict, parse the SOAP envelope, decide the answer, journal the call
//! (committed before the answer leaves), respond.
//!
//! Deciding is synchronous and pure apart from the clock, fresh GUIDs and the scenarios'
//! per-caller counters; the only awaits are reading the body, a scenario's delay and the journal
//! commit. A scenario may also break the connection ([`ConnectionFault`]): the app journals the
//! call, then tells the transport through the connection's [`ConnectionControl`] or by
//! answering with [`Dropped`] or a body that fails after the headers. Once a call or refusal is
//! journaled, the App counts it in [`Metrics`] and publishes its id as a [`LiveEvent`] for the
//! admin side's live views.
//!
//! With a WSDL catalog ([`crate::wsdl`]) a call is routed to its service and operation and
//! checked against the operation's schema before any scenario rule sees it; where no rule
//! answers, the catalog's schema-valid default response does (without a catalog, the generic
//! receipt).
//!
//! Between the route check and the scenario rules the supplier registry
//! ([`crate::supplier::LiveRegistry`]) authorizes the call with DFDG's codes (1012, 1013, 4575)
//! and the identity checks run; both are journaled with the call, and in strict mode the first
//! identity finding is the answer.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Incoming};
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::config::{ClientAuthMode, Limits, ValidationMode};
use crate::identity::CallerIdentity;
use crate::journal::{
    self, CallRecord, IdentityFields, Journal, Outcome, RejectionRecord, ReloadRecord,
};
use crate::metrics::Metrics;
use crate::scenario::{
    ConnectionFault, Decision, ReloadStatus, RequestFacts, RuleRef, Scenarios, ScriptedAnswer,
};
use crate::soap::{self, Fault, FaultParty, Receipt, SoapVersion};
use crate::supplier::{self, LiveRegistry, Registry};
use crate::tls::{ClientCertificate, Refusal, Session};
use crate::wsdl::validate::Finding;
use crate::wsdl::{serve, Access, Catalog, Route, RouteProblem};

/// DFDG's code for "client certificate missing".
pub const CODE_CERTIFICATE_MISSING: i64 = 1101;
/// DFDG's code for "logon failed".
pub const CODE_LOGON_FAILED: i64 = 1012;
/// DFDG's code for "message not valid".
pub const CODE_MESSAGE_NOT_VALID: i64 = 1014;
/// DFDG's code for "internal error".
pub const CODE_INTERNAL_ERROR: i64 = 1011;

/// Response header carrying the journal id of the call, so a supplier can quote it.
pub const CALL_ID_HEADER: &str = "x-dfdg-mock-call-id";

/// One accepted connection: who is on the other end, established once per connection.
#[derive(Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    pub session: Session,
    /// How the transport should treat the connection's next writes (scenario faults).
    pub control: ConnectionControl,
}

/// A per-connection instruction from the app to the transport's IO wrapper
/// ([`crate::server`]): write normally, replace the next response with garbage, or reset.
#[derive(Debug, Clone, Default)]
pub struct ConnectionControl(Arc<AtomicU8>);

/// What [`ConnectionControl`] tells the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Normal,
    /// Write bytes that are not HTTP instead of the next response, then close.
    Garbage,
    /// Close with a TCP reset (linger 0) instead of writing.
    Reset,
    /// Close cleanly (TLS close_notify, FIN) instead of writing the next response.
    Close,
}

impl ConnectionControl {
    pub fn set(&self, mode: WriteMode) {
        let value = match mode {
            WriteMode::Normal => 0,
            WriteMode::Garbage => 1,
            WriteMode::Reset => 2,
            WriteMode::Close => 3,
        };
        self.0.store(value, Ordering::Release);
    }

    pub fn mode(&self) -> WriteMode {
        match self.0.load(Ordering::Acquire) {
            1 => WriteMode::Garbage,
            2 => WriteMode::Reset,
            3 => WriteMode::Close,
            _ => WriteMode::Normal,
        }
    }
}

/// The answer is to drop the connection without a response (the `reset` scenario fault): hyper
/// drops the connection when the service fails (HTTP/1.1), or resets the stream (h2).
#[derive(Debug, thiserror::Error)]
#[error("scenario connection fault: {0}")]
pub struct Dropped(pub &'static str);

/// A response body: the whole answer, or one that fails right after the headers so that hyper
/// aborts the connection (the `close_after_headers` scenario fault).
#[derive(Debug)]
pub enum ResponseBody {
    Full(Full<Bytes>),
    /// Announces `length` bytes, lets the headers go out (one `Pending`), then fails.
    FailAfterHeaders {
        length: u64,
        headers_sent: bool,
    },
}

impl ResponseBody {
    pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
        ResponseBody::Full(Full::new(bytes.into()))
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Dropped;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Dropped>>> {
        match self.get_mut() {
            ResponseBody::Full(full) => Pin::new(full)
                .poll_frame(context)
                .map_err(|never| match never {}),
            ResponseBody::FailAfterHeaders { headers_sent, .. } => {
                if *headers_sent {
                    Poll::Ready(Some(Err(Dropped("close_after_headers"))))
                } else {
                    // hyper flushes what it has (the head) while the body is pending.
                    *headers_sent = true;
                    context.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(full) => full.is_end_stream(),
            ResponseBody::FailAfterHeaders { .. } => false,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            ResponseBody::Full(full) => full.size_hint(),
            ResponseBody::FailAfterHeaders { length, .. } => {
                hyper::body::SizeHint::with_exact(*length)
            }
        }
    }
}

/// How many live events wait for a slow subscriber before it starts missing some (it is told
/// how many it missed and can re-read the journal).
pub const LIVE_EVENTS_CAPACITY: usize = 256;

/// Something that was just journaled, for live views (the dashboard's feed, SSE).
pub use crate::journal::LiveEvent;

/// The request pipeline and what it needs.
#[derive(Debug)]
pub struct App {
    journal: Journal,
    limits: Limits,
    /// Counted after each journal commit; rendered by the admin listener's `/metrics`.
    metrics: Arc<Metrics>,
    /// Each journaled call and refusal, for live views; sending never waits.
    events: broadcast::Sender<LiveEvent>,
    /// The scripted answers; the default receipt where no rule matches.
    scenarios: Scenarios,
    /// The services served; empty: every POST gets the generic receipt.
    catalog: Arc<Catalog>,
    /// The supplier registry (open mode without one) and strict mode.
    suppliers: Arc<LiveRegistry>,
}

/// What decides a call, beside the request itself.
struct Rules<'a> {
    catalog: &'a Catalog,
    scenarios: &'a Scenarios,
    /// The registry in force when the call arrived.
    registry: &'a Registry,
    /// Strict identity checks: the first finding is the answer.
    strict: bool,
}

/// The answer to one request, decided before anything is journaled or sent.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    version: Option<SoapVersion>,
    body: String,
    receipts: Vec<String>,
    outcome: Outcome,
    detail: Option<String>,
    /// What the scenarios added: which rule, headers, delay, connection fault.
    script: Option<Script>,
}

/// What the journal records as sent, which a connection fault changes.
struct SentAnswer {
    status: u16,
    receipts: Vec<String>,
    outcome: Outcome,
    detail: Option<String>,
}

/// The parts of a scenario decision that act beyond the body.
#[derive(Debug)]
struct Script {
    /// `None` when no rule matched (the default answer).
    rule: Option<RuleRef>,
    headers: Vec<(http::HeaderName, HeaderValue)>,
    delay: Option<Duration>,
    connection: Option<ConnectionFault>,
}

/// What was learned about the request on the way, for the journal.
#[derive(Debug, Default)]
struct Facts {
    soap_version: Option<SoapVersion>,
    soap_action: Option<String>,
    operation: Option<soap::QualifiedName>,
    star_headers: Option<soap::StarHeaders>,
    /// WSDL service and operation the call was routed to.
    service: Option<String>,
    service_operation: Option<String>,
    findings: Vec<Finding>,
    /// The registered supplier of the certificate.
    supplier: Option<String>,
    /// Its category, for scenario rules.
    category: Option<supplier::Category>,
    /// The registry's decision label: `open`, `allowed`, `refused 1013`.
    authorization: Option<String>,
    /// The identity checks that did not pass.
    identity_findings: Vec<supplier::Finding>,
}

/// Why a request body could not be read.
#[derive(Debug)]
enum BodyProblem {
    TooLarge,
    TooSlow,
    Broken(String),
}

impl App {
    /// An app without scenarios: every call gets the default answer.
    pub fn new(journal: Journal, limits: Limits) -> App {
        App::with_scenarios(journal, limits, Scenarios::none())
    }

    pub fn with_scenarios(journal: Journal, limits: Limits, scenarios: Scenarios) -> App {
        let (events, _) = broadcast::channel(LIVE_EVENTS_CAPACITY);
        App {
            journal,
            limits,
            metrics: Arc::new(Metrics::default()),
            events,
            scenarios,
            catalog: Arc::new(Catalog::default()),
            suppliers: Arc::new(LiveRegistry::default()),
        }
    }

    /// Authorizes calls with `suppliers` (open mode and lenient checks without it).
    pub fn with_suppliers(mut self, suppliers: Arc<LiveRegistry>) -> App {
        self.suppliers = suppliers;
        self
    }

    /// The supplier registry in force (and its file, to reload).
    pub fn suppliers(&self) -> &Arc<LiveRegistry> {
        &self.suppliers
    }

    /// Serves the services of `catalog`.
    pub fn with_catalog(mut self, catalog: Arc<Catalog>) -> App {
        self.catalog = catalog;
        self
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Where live events are published; `subscribe` to follow them.
    pub fn events(&self) -> &broadcast::Sender<LiveEvent> {
        &self.events
    }

    pub fn scenarios(&self) -> &Scenarios {
        &self.scenarios
    }

    /// Reads the scenario files again (see [`Scenarios::reload`]), logs and journals the
    /// outcome. Called by the file watcher, on SIGHUP, and by tests that want a reload now.
    pub async fn reload_scenarios(&self) -> ReloadStatus {
        let status = self.scenarios.reload();
        if status.ok {
            tracing::info!(rules = status.rules, files = ?status.files, "scenarios reloaded");
        } else {
            tracing::error!(
                error = status.error.as_deref().unwrap_or_default(),
                "scenario files refused; the previous rules stay in force"
            );
        }
        self.journal_reload(&status).await;
        status
    }

    /// Journals a reload attempt (also the load at start).
    pub async fn journal_reload(&self, status: &ReloadStatus) {
        let record = ReloadRecord {
            time: OffsetDateTime::now_utc(),
            ok: status.ok,
            files: status.files.clone(),
            rules: status.rules,
            error: status.error.clone(),
        };
        if let Err(error) = self.journal.record_reload(record).await {
            tracing::error!(%error, "cannot journal a scenario reload");
        }
    }

    /// Forgets the scenarios' per-caller counters and state: sequences start over. SIGHUP
    /// calls this (with a reload); the admin API will too.
    pub fn reset_state(&self) {
        self.scenarios.reset_state();
    }

    /// Records a refused TLS handshake.
    pub async fn refused_handshake(
        &self,
        peer: SocketAddr,
        refusal: Refusal,
        mode: ClientAuthMode,
    ) {
        tracing::info!(%peer, reason = refusal.reason.as_str(), detail = %refusal.detail, "refused TLS handshake");
        let record = RejectionRecord {
            time: OffsetDateTime::now_utc(),
            peer: peer.to_string(),
            reason: refusal.reason,
            detail: refusal.detail,
            identity: refusal.identity.as_deref().map(identity_fields),
            mode: mode.as_str().to_owned(),
        };
        let reason = record.reason;
        self.metrics.record_refusal(reason);
        match self.journal.record_rejection(record).await {
            // No subscriber is not an error.
            Ok(id) => drop(self.events.send(LiveEvent::Rejection(id))),
            Err(error) => tracing::error!(%error, "cannot journal a refused handshake"),
        }
    }

    /// Answers one HTTP request on `connection`.
    pub async fn handle(
        &self,
        request: http::Request<Incoming>,
        connection: &Connection,
    ) -> Result<Response<ResponseBody>, Dropped> {
        let started = Instant::now();
        let time = OffsetDateTime::now_utc();
        let (parts, body) = request.into_parts();
        if parts.method != Method::POST {
            return Ok(self.non_soap(&parts, connection));
        }
        let body = read_body(&parts, body, &self.limits).await;
        let mut facts = Facts::default();
        let registry = self.suppliers.current();
        let rules = Rules {
            catalog: &self.catalog,
            scenarios: &self.scenarios,
            registry: &registry,
            strict: self.suppliers.strict(),
        };
        let mut answer = decide(&parts, &body, connection, time, &mut facts, &rules);
        let script = answer.script.take();
        if let Some(delay) = script.as_ref().and_then(|s| s.delay) {
            tokio::time::sleep(delay).await;
        }
        let connection_fault = script.as_ref().and_then(|s| s.connection);
        // What the journal says was sent: for a broken connection, no receipt reached the
        // caller, and for all but close_after_headers no HTTP status either (0).
        let mut sent = SentAnswer {
            status: answer.status.as_u16(),
            receipts: answer.receipts.clone(),
            outcome: answer.outcome.clone(),
            detail: answer.detail.clone(),
        };
        if let Some(fault) = connection_fault {
            sent.receipts.clear();
            sent.outcome = Outcome::Http;
            if fault != ConnectionFault::CloseAfterHeaders {
                sent.status = 0;
            }
            sent.detail = Some(format!(
                "scenario connection fault {}: {}",
                fault.as_str(),
                match fault {
                    ConnectionFault::Reset => "TCP reset, no response sent",
                    ConnectionFault::CloseAfterHeaders => "status and headers sent, then closed",
                    ConnectionFault::Garbage => "non-HTTP bytes sent instead of the response",
                    ConnectionFault::Empty => "closed without a response",
                }
            ));
        }

        let cap = usize::try_from(self.limits.journal_body_cap).unwrap_or(usize::MAX);
        let request_body = body.as_ref().map(Bytes::as_ref).unwrap_or_default();
        let record = CallRecord {
            time,
            peer: connection.peer.to_string(),
            tls_version: connection.session.tls_version.to_owned(),
            cipher_suite: connection.session.cipher_suite.clone(),
            alpn: connection.session.alpn.clone(),
            identity: caller(connection).map(identity_fields),
            method: parts.method.to_string(),
            // Percent-decoded, so non-ASCII service paths read and filter as written.
            path: crate::encoding::decoded_path_and_query(&parts.uri),
            soap_version: facts.soap_version.map(|v| v.label().to_owned()),
            soap_action: facts.soap_action,
            operation: facts.operation.as_ref().map(|o| o.local.clone()),
            operation_namespace: facts.operation.map(|o| o.namespace),
            star_headers: facts
                .star_headers
                .filter(|h| !h.is_empty())
                .and_then(|h| serde_json::to_value(h).ok()),
            request_body: request_body[..request_body.len().min(cap)].to_vec(),
            request_truncated: request_body.len() > cap || body.is_err(),
            response_body: answer.body.as_bytes()[..answer.body.len().min(cap)].to_vec(),
            response_truncated: answer.body.len() > cap,
            http_status: sent.status,
            receipts: sent.receipts,
            outcome: sent.outcome,
            detail: sent.detail,
            latency_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            scenario_file: script
                .as_ref()
                .and_then(|s| s.rule.as_ref())
                .map(|rule| rule.file.to_string()),
            scenario_rule: script.as_ref().map(|s| {
                s.rule
                    .as_ref()
                    .map_or_else(|| "default".to_owned(), |rule| rule.name.to_string())
            }),
            service: facts.service,
            service_operation: facts.service_operation,
            findings: facts.findings,
            supplier: facts.supplier,
            authorization: facts.authorization,
            identity_findings: facts.identity_findings,
        };
        let service = journal::service_of(&record.path).to_owned();
        let operation = record.operation.clone().unwrap_or_else(|| "-".to_owned());
        let caller = record.caller_id().map(str::to_owned);
        match self.journal.record_call(record).await {
            Ok(id) => {
                let latency = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                self.metrics
                    .record_call(&service, &operation, &answer.outcome.label(), latency);
                // No subscriber is not an error.
                drop(self.events.send(LiveEvent::Call(id)));
                tracing::debug!(call_id = id, caller_id = caller.as_deref(), peer = %connection.peer, status = answer.status.as_u16(), outcome = %answer.outcome.label(), "call");
                match connection_fault {
                    Some(ConnectionFault::Empty) => connection.control.set(WriteMode::Close),
                    Some(ConnectionFault::Reset) => {
                        connection.control.set(WriteMode::Reset);
                        return Err(Dropped("reset"));
                    }
                    Some(ConnectionFault::Garbage) => connection.control.set(WriteMode::Garbage),
                    Some(ConnectionFault::CloseAfterHeaders) | None => {}
                }
                let mut response = soap_response(answer);
                if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
                    response.headers_mut().insert(CALL_ID_HEADER, value);
                }
                if let Some(script) = script {
                    for (name, value) in script.headers {
                        response.headers_mut().insert(name, value);
                    }
                }
                if connection_fault == Some(ConnectionFault::CloseAfterHeaders) {
                    let length = response.body().size_hint().exact().unwrap_or(1).max(1);
                    *response.body_mut() = ResponseBody::FailAfterHeaders {
                        length,
                        headers_sent: false,
                    };
                }
                Ok(response)
            }
            Err(error) => {
                // No receipt may leave that the journal does not hold.
                tracing::error!(%error, caller_id = caller.as_deref(), "cannot journal a call; answering with a fault");
                let version = answer.version.unwrap_or(SoapVersion::V11);
                let fault = Fault::dfdg(
                    FaultParty::Service,
                    CODE_INTERNAL_ERROR,
                    format!("the mock's journal could not record this call, so no receipt was issued: {error}"),
                );
                Ok(soap_response(Answer {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    version: Some(version),
                    body: fault.render(version),
                    receipts: Vec::new(),
                    outcome: Outcome::Http,
                    detail: None,
                    script: None,
                }))
            }
        }
    }

    /// GET and other methods: not SOAP calls, so not journaled.
    fn non_soap(&self, parts: &Parts, connection: &Connection) -> Response<ResponseBody> {
        if let ClientCertificate::Refused(refusal) = &connection.session.client {
            return text(StatusCode::FORBIDDEN, &format!("{}\n", refusal.detail));
        }
        match parts.method {
            Method::GET | Method::HEAD if !self.catalog.is_empty() => {
                let base = format!("https://{}", authority(parts));
                match serve::get(
                    &self.catalog,
                    parts.uri.path(),
                    parts.uri.query(),
                    &base,
                ) {
                    serve::Page::Found { content_type, body } => {
                        let mut response = text(StatusCode::OK, &body);
                        response
                            .headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                        response
                    }
                    serve::Page::NotFound(body) => text(StatusCode::NOT_FOUND, &body),
                }
            }
            Method::GET | Method::HEAD => text(
                StatusCode::OK,
                "dfdg-mock: an offline imitation of STAR's DFDG/Jobnet SOAP webservices.\n\
                 POST a SOAP 1.1 (text/xml) or SOAP 1.2 (application/soap+xml) envelope to any path.\n",
            ),
            _ => {
                let mut response = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "SOAP requests use POST; GET shows what is served here.\n",
                );
                response
                    .headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
                response
            }
        }
    }
}

/// The host (and port) the caller addressed: the Host header, else the URI's authority.
fn authority(parts: &Parts) -> String {
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(ToString::to_string))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The verified caller, if the connection has one.
fn caller(connection: &Connection) -> Option<&CallerIdentity> {
    match &connection.session.client {
        ClientCertificate::Verified(identity) => Some(identity),
        ClientCertificate::Refused(refusal) => refusal.identity.as_deref(),
    }
}

/// The journal's copy of an identity.
pub fn identity_fields(identity: &CallerIdentity) -> IdentityFields {
    IdentityFields {
        caller_id: identity.caller_id.clone(),
        kind: identity.kind.label().to_owned(),
        cvr: identity.cvr.clone(),
        common_name: identity.common_name.clone(),
        subject: identity.subject.clone(),
        issuer: identity.issuer.clone(),
        serial: identity.serial.clone(),
        fingerprint: identity.fingerprint.clone(),
        not_before: rfc3339(identity.not_before),
        not_after: rfc3339(identity.not_after),
    }
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time.to_string())
}

async fn read_body(parts: &Parts, body: Incoming, limits: &Limits) -> Result<Bytes, BodyProblem> {
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_body) {
        return Err(BodyProblem::TooLarge);
    }
    let max = usize::try_from(limits.max_body).unwrap_or(usize::MAX);
    match tokio::time::timeout(limits.body_timeout, Limited::new(body, max).collect()).await {
        Err(_elapsed) => Err(BodyProblem::TooSlow),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => {
            Err(BodyProblem::TooLarge)
        }
        Ok(Err(error)) => Err(BodyProblem::Broken(error.to_string())),
    }
}

/// `Content-Type` split into its media type and the parameters SOAP cares about.
#[derive(Debug, Default)]
struct ContentType {
    media_type: String,
    charset: Option<String>,
    action: Option<String>,
}

fn content_type(parts: &Parts) -> Option<ContentType> {
    let value = std::str::from_utf8(parts.headers.get(CONTENT_TYPE)?.as_bytes()).ok()?;
    let mut pieces = value.split(';');
    let mut parsed = ContentType {
        media_type: pieces
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
        ..ContentType::default()
    };
    for parameter in pieces {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"').to_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "charset" => parsed.charset = Some(value),
            "action" => parsed.action = Some(value),
            _ => {}
        }
    }
    Some(parsed)
}

/// Decides the answer to a POST. Fills `facts` with what it learned for the journal.
fn decide(
    parts: &Parts,
    body: &Result<Bytes, BodyProblem>,
    connection: &Connection,
    now: OffsetDateTime,
    facts: &mut Facts,
    rules: &Rules<'_>,
) -> Answer {
    let catalog = rules.catalog;
    let content_type = content_type(parts);
    let declared_version = content_type
        .as_ref()
        .and_then(|c| SoapVersion::from_media_type(&c.media_type));
    let body = match body {
        Ok(body) => body,
        Err(problem) => {
            let version = declared_version.unwrap_or(SoapVersion::V11);
            let (status, reason) = match problem {
                BodyProblem::TooLarge => (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is larger than this server accepts (see --max-body)"
                        .to_owned(),
                ),
                BodyProblem::TooSlow => (
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time (see --body-timeout)".to_owned(),
                ),
                BodyProblem::Broken(error) => (
                    StatusCode::BAD_REQUEST,
                    format!("the request body could not be read: {error}"),
                ),
            };
            return fault_answer(version, Fault::caller(reason), Some(status));
        }
    };
    let version = soap::sniff_version(body)
        .or(declared_version)
        .unwrap_or(SoapVersion::V11);

    // Diagnose mode: the handshake let a bad certificate through so we can say what is wrong.
    if let ClientCertificate::Refused(refusal) = &connection.session.client {
        let fault = match refusal.reason {
            crate::journal::RejectionReason::NoCertificate => Fault::dfdg(
                FaultParty::Caller,
                CODE_CERTIFICATE_MISSING,
                format!("Client certificate missing: {}", refusal.detail),
            ),
            _ => Fault::dfdg(
                FaultParty::Caller,
                CODE_LOGON_FAILED,
                format!("Logon failed: {}", refusal.detail),
            ),
        };
        return fault_answer(version, fault, None);
    }

    let Some(content_type) = content_type else {
        return fault_answer(
            version,
            Fault::caller(
                "the request has no Content-Type: send text/xml for SOAP 1.1 or application/soap+xml for SOAP 1.2",
            ),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        );
    };
    let Some(declared_version) = declared_version else {
        return fault_answer(
            version,
            Fault::caller(format!(
                "Content-Type '{}' is not SOAP: send text/xml for SOAP 1.1 or application/soap+xml for SOAP 1.2",
                content_type.media_type
            )),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        );
    };
    let parsed = soap::body_text(body, content_type.charset.as_deref())
        .and_then(|text| soap::parse_envelope(&text).map(|envelope| (text, envelope)));
    let (text, envelope) = match parsed {
        Ok(parsed) => parsed,
        Err(problem) => {
            return fault_answer(
                version,
                Fault::dfdg(
                    FaultParty::Caller,
                    CODE_MESSAGE_NOT_VALID,
                    format!("Message not valid: {problem}"),
                ),
                Some(StatusCode::BAD_REQUEST),
            )
        }
    };
    facts.soap_version = Some(envelope.version);
    facts.soap_action = match envelope.version {
        SoapVersion::V11 => soap_action_header(parts),
        SoapVersion::V12 => content_type
            .action
            .clone()
            .or_else(|| soap_action_header(parts)),
    };
    facts.operation = Some(envelope.operation.clone());
    facts.star_headers = Some(envelope.star_headers.clone());
    if envelope.version != declared_version {
        return fault_answer(
            envelope.version,
            Fault::caller(format!(
                "a {} envelope must be sent as {}, not as {}",
                envelope.version,
                envelope.version.media_type(),
                content_type.media_type
            )),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        );
    }

    // The catalog routes and checks the call; its refusals come before any scenario rule.
    let route = if catalog.is_empty() {
        None
    } else {
        match check_route(catalog, parts.uri.path(), &text, &envelope, facts) {
            Ok(route) => Some(route),
            Err(refusal) => return *refusal,
        }
    };
    // The supplier registry: who may call what; then the identity checks (strict mode).
    if let Some(refusal) = authorize(
        rules,
        caller(connection),
        route.as_ref(),
        &envelope,
        parts.uri.path(),
        facts,
    ) {
        return refusal;
    }
    let scenarios = rules.scenarios;
    let request = RequestFacts {
        service: facts.service.as_deref(),
        supplier: facts.supplier.as_deref(),
        category: facts.category.map(supplier::Category::as_str),
        operation: &envelope.operation,
        version: envelope.version,
        path: parts.uri.path(),
        headers: &parts.headers,
        identity: caller(connection),
        star: &envelope.star_headers,
        operation_xml: text
            .get(envelope.operation_span.clone())
            .unwrap_or_default(),
        now,
    };
    let Some(decision) = scenarios.decide(&request) else {
        let mut answer = default_answer(route.as_ref(), envelope.version, &envelope.operation, now);
        answer.script = Some(Script {
            rule: None,
            headers: Vec::new(),
            delay: None,
            connection: None,
        });
        return answer;
    };
    scripted_answer(
        decision,
        route.as_ref(),
        envelope.version,
        &envelope.operation,
        now,
    )
}

/// Authorizes the call with the registry and runs the identity checks, recording both in
/// `facts`: the refusal to send (DFDG's code and reason), or `None` to go on. Without a catalog
/// route the service is the path's first segment and the access follows the operation's name
/// (as [`Access::of`] guesses it for WSDLs without marks).
fn authorize(
    rules: &Rules<'_>,
    identity: Option<&CallerIdentity>,
    route: Option<&Route<'_>>,
    envelope: &soap::Envelope,
    path: &str,
    facts: &mut Facts,
) -> Option<Answer> {
    let version = envelope.version;
    let service = facts.service.clone().or_else(|| {
        let service = journal::service_of(path);
        (!service.is_empty()).then(|| service.to_owned())
    });
    let access = route.map_or_else(
        || Access::of(&envelope.operation.local, None),
        |route| route.operation.access,
    );
    let Some(identity) = identity else {
        if rules.registry.is_open() {
            facts.authorization = Some(supplier::Decision::Open.label());
            return None;
        }
        facts.authorization = Some(format!("refused {}", supplier::CODE_LOGON_FAILED));
        return Some(fault_answer(
            version,
            Fault::dfdg(
                FaultParty::Caller,
                supplier::CODE_LOGON_FAILED,
                "Logon failed: no client certificate identity, and only registered suppliers' certificates may call",
            ),
            None,
        ));
    };
    let decision = rules
        .registry
        .authorize(identity, service.as_deref(), access);
    facts.supplier = decision.supplier().map(str::to_owned);
    facts.authorization = Some(decision.label());
    let registered = rules.registry.find(identity);
    facts.category = registered.map(|s| s.category);
    facts.identity_findings =
        supplier::identity_findings(identity, registered, &envelope.star_headers);
    if let supplier::Decision::Refused { code, reason, .. } = decision {
        return Some(fault_answer(
            version,
            Fault::dfdg(FaultParty::Caller, code, reason),
            None,
        ));
    }
    if rules.strict {
        if let Some(first) = facts.identity_findings.first() {
            return Some(fault_answer(
                version,
                Fault::dfdg(
                    FaultParty::Caller,
                    first.code,
                    format!("Identity check failed (strict mode): {}", first.message),
                ),
                None,
            ));
        }
    }
    None
}

/// The answer when no rule matches: the catalog's schema-valid default response for a routed
/// call, else the generic receipt.
fn default_answer(
    route: Option<&Route<'_>>,
    version: SoapVersion,
    operation: &soap::QualifiedName,
    now: OffsetDateTime,
) -> Answer {
    if let Some(route) = route {
        let response = route.default_response(now);
        return Answer {
            status: StatusCode::OK,
            version: Some(route.port.version),
            body: response.body,
            receipts: response.receipts,
            outcome: Outcome::Receipt,
            detail: None,
            script: None,
        };
    }
    let receipt = Receipt::fresh(now);
    Answer {
        status: StatusCode::OK,
        version: Some(version),
        body: receipt.render(version, operation),
        receipts: vec![receipt.message_identifier.to_string()],
        outcome: Outcome::Receipt,
        detail: None,
        script: None,
    }
}

/// A matched rule's decision as an answer.
fn scripted_answer(
    decision: Decision,
    route: Option<&Route<'_>>,
    version: SoapVersion,
    operation: &soap::QualifiedName,
    now: OffsetDateTime,
) -> Answer {
    let Decision {
        rule,
        answer,
        status,
        headers,
        delay,
        connection,
    } = decision;
    let mut answer = match answer {
        ScriptedAnswer::Default => default_answer(route, version, operation, now),
        ScriptedAnswer::Fault(fault) => fault_answer(version, fault, None),
        ScriptedAnswer::Xml { text, receipts } => Answer {
            status: StatusCode::OK,
            version: Some(version),
            body: text,
            // A SOAP answer; `receipts` lists what it issued, possibly nothing (a lookup).
            outcome: Outcome::Receipt,
            receipts,
            detail: None,
            script: None,
        },
        ScriptedAnswer::Broken(problem) => {
            tracing::error!(file = %rule.file, rule = %rule.name, %problem, "scenario rule failed");
            fault_answer(
                version,
                Fault::dfdg(
                    FaultParty::Service,
                    CODE_INTERNAL_ERROR,
                    format!(
                        "scenario rule {}#{} failed: {problem}",
                        rule.file, rule.name
                    ),
                ),
                None,
            )
        }
    };
    if let Some(status) = status.and_then(|s| StatusCode::from_u16(s).ok()) {
        answer.status = status;
    }
    answer.script = Some(Script {
        rule: Some(rule),
        headers,
        delay,
        connection,
    });
    answer
}

/// Routes a well-formed envelope through the catalog and checks the request against its
/// operation's schema (per the service's validation mode): the route, or the refusal to send.
fn check_route<'c>(
    catalog: &'c Catalog,
    path: &str,
    text: &str,
    envelope: &soap::Envelope,
    facts: &mut Facts,
) -> Result<Route<'c>, Box<Answer>> {
    let version = envelope.version;
    let route = match resolve(catalog, path, envelope, facts) {
        Ok(route) => route,
        Err(problem) => {
            let status = match &problem {
                RouteProblem::UnknownPath { .. } => Some(StatusCode::NOT_FOUND),
                RouteProblem::VersionMismatch { service, .. }
                | RouteProblem::UnknownOperation { service, .. } => {
                    facts.service = Some(service.clone());
                    None
                }
            };
            return Err(Box::new(fault_answer(
                version,
                Fault::caller(problem.to_string()),
                status,
            )));
        }
    };
    let mode = route.endpoint.validation;
    if mode != ValidationMode::Off {
        facts.findings = route.validate(text);
        if mode == ValidationMode::Enforce {
            if let Some(missing) = route.missing_star_header(envelope) {
                return Err(Box::new(fault_answer(
                    version,
                    Fault::dfdg(FaultParty::Caller, missing.code, missing.message),
                    None,
                )));
            }
            if !facts.findings.is_empty() {
                return Err(Box::new(fault_answer(
                    version,
                    Fault::dfdg(
                        FaultParty::Caller,
                        CODE_MESSAGE_NOT_VALID,
                        not_valid_message(&facts.findings),
                    ),
                    None,
                )));
            }
        }
    }
    Ok(route)
}

/// The request's (service, operation), recorded in `facts`.
fn resolve<'c>(
    catalog: &'c Catalog,
    path: &str,
    envelope: &soap::Envelope,
    facts: &mut Facts,
) -> Result<Route<'c>, RouteProblem> {
    let route = catalog.route(
        path,
        envelope.version,
        facts.soap_action.as_deref(),
        &envelope.operation,
    )?;
    facts.service = Some(route.endpoint.service.clone());
    facts.service_operation = Some(route.operation.name.clone());
    Ok(route)
}

/// DFDG's 1014 text listing the first findings.
fn not_valid_message(findings: &[Finding]) -> String {
    const SHOWN: usize = 5;
    let mut message = format!(
        "Message not valid: {} schema violation{}: ",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    );
    let listed: Vec<String> = findings
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect();
    message.push_str(&listed.join("; "));
    if findings.len() > SHOWN {
        message.push_str(&format!("; and {} more", findings.len() - SHOWN));
    }
    message
}

fn soap_action_header(parts: &Parts) -> Option<String> {
    // UTF-8, not only ASCII: OIO operation names (and so actions) may be Danish.
    let value = std::str::from_utf8(parts.headers.get("soapaction")?.as_bytes()).ok()?;
    Some(value.trim().trim_matches('"').to_owned())
}

fn fault_answer(version: SoapVersion, fault: Fault, status: Option<StatusCode>) -> Answer {
    let status = status.unwrap_or_else(|| {
        StatusCode::from_u16(fault.http_status(version))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    });
    Answer {
        status,
        version: Some(version),
        body: fault.render(version),
        receipts: Vec::new(),
        outcome: Outcome::Fault {
            code: fault.dfdg.as_ref().map(|d| d.code),
            fault_code: fault.party.code(version).to_owned(),
        },
        detail: Some(fault.reason),
        script: None,
    }
}

fn soap_response(answer: Answer) -> Response<ResponseBody> {
    let content_type = answer.version.unwrap_or(SoapVersion::V11).content_type();
    let mut response = Response::new(ResponseBody::full(answer.body));
    *response.status_mut() = answer.status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn text(status: StatusCode, body: &str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl crate::admin::ScenarioControl for App {
    fn reload(&self) -> crate::admin::ScenarioAnswer<'_> {
        Box::pin(async move {
            let status = self.reload_scenarios().await;
            Some(match status.error {
                None => Ok(format!(
                    "{} rules from {} files in force",
                    status.rules,
                    status.files.len()
                )),
                Some(error) => Err(format!(
                    "the scenario files were refused; the previous rules stay in force: {error}"
                )),
            })
        })
    }

    fn reset_state(&self) -> crate::admin::ScenarioAnswer<'_> {
        Box::pin(async move {
            App::reset_state(self);
            Some(Ok("per-caller counters and state forgotten".to_owned()))
        })
    }
}

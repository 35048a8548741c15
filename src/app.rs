//! The request pipeline, free of sockets, with its I/O at the edges: read the body under a size
//! and time bound → parse it once into a typed [`decide::Request`] → [`decide::decide`] the
//! answer (pure: route, SOAPAction and schema checks, authorization, identity checks, scenario
//! rules) → journal the call (committed before the answer leaves) → advance the scenarios'
//! counters and state from the verdict → respond. Every refusal is one [`Refusal`], answered by
//! its one mapping to an HTTP status and a SOAP fault in the caller's version.
//!
//! A scenario may delay the answer, or break the connection ([`ConnectionFault`]): the app
//! journals the call, then tells the transport through the connection's [`ConnectionControl`]
//! or by answering with [`Dropped`] or a body that fails after the headers. Once a call or
//! refusal is journaled, the App counts it in [`Metrics`] and publishes its id as a
//! [`LiveEvent`] for the admin side's live views.

pub mod decide;
pub mod refusal;
pub mod wsb;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, EXPECT};
use http::request::Parts;
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::config::{ClientAuthMode, Limits};
use crate::identity::CallerIdentity;
use crate::journal::{
    self, CallRecord, IdentityFields, Journal, Outcome, RejectionRecord, ReloadRecord,
};
use crate::metrics::Metrics;
use crate::scenario::{ConnectionFault, ReloadStatus, Scenarios};
use crate::supplier::LiveRegistry;
use crate::tls::{self, ClientCertificate, Session};
use crate::wsdl::{serve, Catalog};
use decide::{Request, Rules, Verdict};
pub use refusal::Refusal;

/// Response header carrying the journal id of the call, so a supplier can quote it.
pub const CALL_ID_HEADER: &str = "x-dfdg-mock-call-id";

/// One accepted connection: who is on the other end, established once per connection.
#[derive(Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    pub session: Session,
    /// How the transport should treat the connection's next writes (scenario faults).
    pub control: ConnectionControl,
    /// The journal's copy of the caller's certificate identity, made once per connection.
    identity: Option<Arc<IdentityFields>>,
    /// `peer` as the journal writes it, formatted once per connection.
    peer_text: String,
}

impl Connection {
    pub fn new(peer: SocketAddr, session: Session, control: ConnectionControl) -> Connection {
        let identity = match &session.client {
            ClientCertificate::Verified(identity) => Some(identity_fields(identity)),
            ClientCertificate::Refused(refusal) => refusal.identity.as_deref().map(identity_fields),
        }
        .map(Arc::new);
        Connection {
            peer,
            session,
            control,
            identity,
            peer_text: peer.to_string(),
        }
    }
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
    /// WSB, once started ([`crate::instance`]): the subscription endpoint, scenario pushes.
    wsb: std::sync::OnceLock<crate::wsb::Wsb>,
    /// The subscription endpoint's `x-requestId`s seen (a repeat gets 412).
    request_ids: wsb::RequestIds,
}

/// What the journal records as sent, which a connection fault changes.
struct Sent {
    status: u16,
    receipts: Vec<String>,
    outcome: Outcome,
    detail: Option<String>,
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
            wsb: std::sync::OnceLock::new(),
            request_ids: wsb::RequestIds::default(),
        }
    }

    /// Plugs in WSB (once; later calls change nothing).
    pub fn set_wsb(&self, wsb: crate::wsb::Wsb) {
        let _ = self.wsb.set(wsb);
    }

    /// WSB, when it runs.
    pub fn wsb(&self) -> Option<&crate::wsb::Wsb> {
        self.wsb.get()
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
    /// calls this (with a reload), and so does `POST /api/scenarios/reset`.
    pub fn reset_state(&self) {
        self.scenarios.reset_state();
    }

    /// Records a refused TLS handshake.
    pub async fn refused_handshake(
        &self,
        peer: SocketAddr,
        refusal: tls::Refusal,
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
        if wsb::is_subscription_path(request.uri().path()) {
            return Ok(wsb::handle(self, request, connection).await);
        }
        let started = Instant::now();
        let time = OffsetDateTime::now_utc();
        let (parts, body) = request.into_parts();
        if parts.method != Method::POST {
            return Ok(self.non_soap(&parts, connection));
        }
        let body = read_body(&parts, body, &self.limits).await;
        // From here until it is queued the call takes only CPU: the writer may wait for it.
        let mut coming = self.journal.coming();
        let request = Request::parse(parts, body, time);
        let mut verdict = {
            let registry = self.suppliers.current();
            let scenarios = self.scenarios.spec();
            let rules = Rules {
                catalog: &self.catalog,
                scenarios: &scenarios,
                runtime: self.scenarios.runtime(),
                registry: &registry,
                strict: self.suppliers.strict(),
            };
            decide::decide(&request, &connection.session.client, &rules)
        };
        if let Some(delay) = verdict.script.as_ref().and_then(|s| s.delay) {
            drop(coming);
            tokio::time::sleep(delay).await;
            coming = self.journal.coming();
        }
        let connection_fault = verdict.script.as_ref().and_then(|s| s.connection);
        // Shared by the journal's record and the response, not copied.
        let answer = Bytes::from(std::mem::take(&mut verdict.body));
        let record = self.record(
            &request,
            &mut verdict,
            &answer,
            connection,
            connection_fault,
            started,
        );
        let service = journal::service_of(&record.path).to_owned();
        let operation = record.operation.clone().unwrap_or_else(|| "-".to_owned());
        let caller = record.caller_id().map(str::to_owned);
        drop(request);
        let id = match self.journal.record_coming_call(record, coming).await {
            Ok(id) => id,
            Err(error) => {
                // No receipt may leave that the journal does not hold, and nothing advances.
                tracing::error!(%error, caller_id = caller.as_deref(), "cannot journal a call; answering with a fault");
                let refusal = Refusal::JournalUnavailable(error.to_string());
                let mut answer =
                    Verdict::refused(verdict.version, &refusal, decide::Facts::default());
                answer.outcome = Outcome::Http;
                return Ok(soap_response(answer.status, answer.version, answer.body));
            }
        };
        // Committed: now the scenarios' sequences and state move on, and their pushes leave.
        self.scenarios.apply(&verdict.effects);
        if let Some(script) = &verdict.script {
            self.push(script, id);
        }
        let latency = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let outcome = verdict.outcome.label();
        self.metrics
            .record_call(&service, &operation, &outcome, latency);
        // No subscriber is not an error.
        drop(self.events.send(LiveEvent::Call(id)));
        tracing::debug!(call_id = id, caller_id = caller.as_deref(), peer = %connection.peer, status = verdict.status.as_u16(), %outcome, "call");
        match connection_fault {
            Some(ConnectionFault::Empty) => connection.control.set(WriteMode::Close),
            Some(ConnectionFault::Reset) => {
                connection.control.set(WriteMode::Reset);
                return Err(Dropped("reset"));
            }
            Some(ConnectionFault::Garbage) => connection.control.set(WriteMode::Garbage),
            Some(ConnectionFault::CloseAfterHeaders) | None => {}
        }
        let Verdict {
            status,
            version,
            script,
            ..
        } = verdict;
        let mut response = soap_response(status, version, answer);
        response
            .headers_mut()
            .insert(CALL_ID_HEADER, HeaderValue::from(id));
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

    /// Hands a rule's WSB pushes to the delivery worker without waiting (a full queue or WSB
    /// being off is logged, never felt by the SOAP caller).
    fn push(&self, script: &decide::Script, call: i64) {
        if script.pushes.is_empty() {
            return;
        }
        let rule = script
            .rule
            .as_ref()
            .map(|r| format!("{}#{}", r.file, r.name))
            .unwrap_or_default();
        let Some(wsb) = self.wsb() else {
            tracing::warn!(call, %rule, "scenario push skipped: WSB is off on this server");
            return;
        };
        for request in &script.pushes {
            let sent = request
                .message(wsb.catalog())
                .map_err(|problem| problem.to_string())
                .and_then(|message| wsb.send_later(message).map_err(|e| e.to_string()));
            if let Err(problem) = sent {
                tracing::warn!(call, %rule, "scenario push not sent: {problem}");
            }
        }
    }

    /// The journal's record of a call: the request as received and parsed, the verdict, and
    /// what was sent (which a connection fault changes). The record takes the verdict's facts,
    /// receipts and detail (the answer needs only its status, body and script afterwards), so
    /// they are moved rather than copied.
    fn record(
        &self,
        request: &Request,
        verdict: &mut Verdict,
        answer: &Bytes,
        connection: &Connection,
        connection_fault: Option<ConnectionFault>,
        started: Instant,
    ) -> CallRecord {
        // For a broken connection no receipt reached the caller, and for all but
        // close_after_headers no HTTP status either (0).
        let sent = match connection_fault {
            None => Sent {
                status: verdict.status.as_u16(),
                receipts: std::mem::take(&mut verdict.receipts),
                outcome: verdict.outcome.clone(),
                detail: verdict.detail.take(),
            },
            Some(fault) => Sent {
                status: match fault {
                    ConnectionFault::CloseAfterHeaders => verdict.status.as_u16(),
                    _ => 0,
                },
                receipts: Vec::new(),
                outcome: Outcome::Http,
                detail: Some(format!(
                    "scenario connection fault {}: {}",
                    fault.as_str(),
                    match fault {
                        ConnectionFault::Reset => "TCP reset, no response sent",
                        ConnectionFault::CloseAfterHeaders => {
                            "status and headers sent, then closed"
                        }
                        ConnectionFault::Garbage => {
                            "non-HTTP bytes sent instead of the response"
                        }
                        ConnectionFault::Empty => "closed without a response",
                    }
                )),
            },
        };
        let cap = usize::try_from(self.limits.journal_body_cap).unwrap_or(usize::MAX);
        let message = request.message.as_ref().ok();
        let envelope = message.map(|message| &message.envelope);
        let operation = envelope.map(|envelope| envelope.operation_name());
        let facts = std::mem::take(&mut verdict.facts);
        let script = verdict.script.as_ref();
        CallRecord {
            time: request.time,
            peer: connection.peer_text.clone(),
            tls_version: connection.session.tls_version.to_owned(),
            cipher_suite: connection.session.cipher_suite.clone(),
            alpn: connection.session.alpn.clone(),
            identity: connection.identity.clone(),
            method: request.parts.method.to_string(),
            // Percent-decoded, so non-ASCII service paths read and filter as written.
            path: crate::encoding::decoded_path_and_query(&request.parts.uri),
            soap_version: envelope.map(|envelope| envelope.version.label().to_owned()),
            soap_action: message.and_then(|message| message.soap_action.clone()),
            operation: operation.map(|name| name.local.clone()),
            operation_namespace: operation.map(|name| name.namespace.clone()),
            star_headers: envelope
                .map(|envelope| &envelope.star_headers)
                .filter(|headers| !headers.is_empty())
                .map(crate::soap::StarHeaders::to_json),
            request_body: request.body.slice(..request.body.len().min(cap)),
            request_truncated: request.body.len() > cap
                || matches!(
                    request.message,
                    Err(Refusal::BodyTooLarge | Refusal::BodyTooSlow | Refusal::BodyUnreadable(_))
                ),
            response_body: answer.slice(..answer.len().min(cap)),
            response_truncated: answer.len() > cap,
            http_status: sent.status,
            receipts: sent.receipts,
            outcome: sent.outcome,
            detail: sent.detail,
            latency_micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            scenario_file: script
                .and_then(|script| script.rule.as_ref())
                .map(|rule| rule.file.to_string()),
            scenario_rule: script.map(|script| {
                script
                    .rule
                    .as_ref()
                    .map_or_else(|| "default".to_owned(), |rule| rule.name.to_string())
            }),
            service: facts.service,
            service_operation: facts.service_operation,
            findings: facts.findings,
            supplier: facts.supplier,
            authorization: facts.authorization,
            identity_findings: facts.identity_findings,
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
                // `?example=` names the caller's own certificate in the STAR headers.
                let caller = match &connection.session.client {
                    ClientCertificate::Verified(identity) => {
                        crate::wsdl::sample::Overrides::for_identity(identity)
                    }
                    ClientCertificate::Refused(_) => crate::wsdl::sample::Overrides::default(),
                };
                match serve::get_as(
                    &self.catalog,
                    parts.uri.path(),
                    parts.uri.query(),
                    &base,
                    &caller,
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

/// How much more of an oversized body is read (and thrown away) so that the 413 reaches the
/// caller as an answer, on HTTP/1.1 and h2 alike, rather than as a reset connection or stream:
/// four times the limit, at least 16 MiB, within the body's time limit.
fn drain_limit(limits: &Limits) -> u64 {
    limits.max_body.saturating_mul(4).max(16 << 20)
}

/// Reads the body under the size and time caps.
async fn read_body(parts: &Parts, mut body: Incoming, limits: &Limits) -> Result<Bytes, Refusal> {
    let deadline = tokio::time::Instant::now() + limits.body_timeout;
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|length| *length > limits.max_body) {
        // A client waiting for `100 Continue` has sent nothing yet: answer at once. Others are
        // sending: take what they send (within bounds), then answer.
        let waits = parts
            .headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits && length <= drain_limit(limits) {
            drain(body, length, deadline).await;
        }
        return Err(Refusal::BodyTooLarge);
    }
    let max = usize::try_from(limits.max_body).unwrap_or(usize::MAX);
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_elapsed) => return Err(Refusal::BodyTooSlow),
            Ok(None) => break,
            Ok(Some(Err(error))) => return Err(Refusal::BodyUnreadable(error.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let read = first.as_ref().map_or(0, Bytes::len).max(rest.len());
        if read + data.len() > max {
            drain(body, drain_limit(limits), deadline).await;
            return Err(Refusal::BodyTooLarge);
        }
        // The usual body is one frame; more are joined. Either way the body is copied out of
        // the connection's read buffer (`Bytes::copy_from_slice` below): a frame kept as it
        // came held hyper's whole buffer (8 KiB and more) until the journal was done with the
        // call, so hyper read the next request into a new one, and the old one's freeing could
        // empty an allocator page, given back to the system and faulted in again (release
        // build, keep-alive c=32: 2,100 madvise calls in 6 s, 300-400 once copied).
        match (&first, rest.is_empty()) {
            (None, _) => first = Some(data),
            (Some(head), true) => {
                rest.extend_from_slice(head);
                rest.extend_from_slice(&data);
            }
            (Some(_), false) => rest.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest.is_empty()) {
        (_, false) => Bytes::from(rest),
        (Some(first), true) => Bytes::copy_from_slice(&first),
        (None, true) => Bytes::new(),
    })
}

/// Reads and discards up to `limit` bytes of `body` before `deadline`.
async fn drain(mut body: Incoming, limit: u64, deadline: tokio::time::Instant) {
    let mut drained = 0u64;
    while drained <= limit {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                drained += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            _ => return,
        }
    }
}

fn soap_response(
    status: StatusCode,
    version: crate::soap::SoapVersion,
    body: impl Into<Bytes>,
) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(version.content_type()),
    );
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
                None if status.warnings.is_empty() => Ok(format!(
                    "{} rules from {} files in force",
                    status.rules,
                    status.files.len()
                )),
                None => Ok(format!(
                    "{} rules from {} files in force; warning, these can never match:\n{}",
                    status.rules,
                    status.files.len(),
                    status.warnings.join("\n")
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

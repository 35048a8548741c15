//! The administrator's side: a separate plain-HTTP (HTTP/1.1) listener, loopback by default,
//! serving the JSON API (documented in `admin/openapi.json`, served at `/openapi.json`), the
//! live dashboard (`admin/dashboard.html` at `/`), server-sent events, `/metrics` and `/health`.
//!
//! Off loopback it refuses to start without a token; with a token every path except `/health*`
//! needs `Authorization: Bearer <token>` (or the dashboard's cookie holding the same token),
//! compared in constant time. Before that, `guard` refuses what a foreign web page could send:
//! a Host that is not the listener's (DNS rebinding), and state changes from another origin or
//! not as JSON. Every wait and input is bounded: connections, header time, body size and time,
//! open event streams.
//!
//! The caller binds, the library serves: [`run`] takes a bound listener.

mod guard;
mod stream;
mod wsb;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch, Semaphore};

use crate::app::{App, LiveEvent};
use crate::config::AdminToken;
use crate::journal::{
    self, CallQuery, Journal, JournalError, JournalReader, RejectionQuery, StoredCall,
};
use crate::listener::{self, Bounds};
use crate::metrics::Metrics;
use crate::supplier::LiveRegistry;
use crate::{onboarding, verify};

/// The OpenAPI 3 description of this API, written by hand.
pub const OPENAPI: &str = include_str!("admin/openapi.json");

/// The dashboard: one HTML file with inline CSS and JavaScript (the WSB tab's script, below,
/// is served beside it); no external resources.
pub const DASHBOARD: &str = include_str!("admin/dashboard.html");

/// The dashboard's WSB tab (`/wsb.js`), loaded by the dashboard after its own script.
pub const DASHBOARD_WSB: &str = include_str!("admin/dashboard-wsb.js");

/// Admin connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Event streams open at once; more get 503.
pub const MAX_EVENT_STREAMS: usize = 16;

/// Largest request body on the admin API.
pub const MAX_BODY: usize = 256 * 1024;

/// Time allowed for a request's headers, and for its body.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for admin connections (event streams end at once).
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(2);

/// The most rows one page of `/api/calls` or `/api/rejections` holds.
pub const MAX_PAGE: usize = 500;

/// The cookie the dashboard's token prompt sets, for browsers that cannot send a header.
const TOKEN_COOKIE: &str = "dfdg_mock_admin_token";

type Body = BoxBody<Bytes, Infallible>;

/// What a scenario control call answers: `None` means "scenarios not available" (501);
/// `Ok` carries a summary for the operator.
pub type ScenarioAnswer<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<Result<String, String>>> + Send + 'a>,
>;

/// Scenario control (reload, state reset), implemented by [`App`]. [`NoScenarios`] answers 501
/// "scenarios not available".
pub trait ScenarioControl: Send + Sync + 'static {
    /// Re-reads the scenario files.
    fn reload(&self) -> ScenarioAnswer<'_> {
        Box::pin(async { None })
    }
    /// Forgets the scenarios' runtime state (counters, stateful responses).
    fn reset_state(&self) -> ScenarioAnswer<'_> {
        Box::pin(async { None })
    }
}

/// A build without scenarios.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoScenarios;

impl ScenarioControl for NoScenarios {}

/// Everything the admin listener serves from.
pub struct Admin {
    /// For writes (confirmations, reset) and the queue depth.
    journal: Journal,
    /// Reads go through a small pool of reading connections to the journal.
    readers: journal::Readers,
    /// Labels every `/metrics` sample, so that the replicas of one deployment tell apart.
    replica: Option<String>,
    metrics: Arc<Metrics>,
    /// Live events: the App's calls and refusals; the admin's confirmations and resets.
    events: broadcast::Sender<LiveEvent>,
    token: Option<AdminToken>,
    scenarios: Arc<dyn ScenarioControl>,
    /// Caps open event streams.
    streams: Arc<Semaphore>,
    /// Set when the listener stops, so event streams end.
    stop: watch::Sender<bool>,
    /// Keep-alive interval of event streams.
    keep_alive: Duration,
    /// The supplier registry the App authorizes with: per-supplier status, confirmations.
    suppliers: Arc<LiveRegistry>,
    /// Names besides its own address and localhost that requests may address it by.
    hosts: Vec<String>,
    /// STAR's pushes: deliveries, sending, replay (`/api/wsb/…`); `None` when WSB is off.
    wsb: Option<crate::wsb::Wsb>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("readers", &self.readers)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Admin {
    /// The admin side of `app`, reading the journal through `readers`.
    pub fn new(app: &App, readers: journal::Readers, token: Option<AdminToken>) -> Admin {
        let (stop, _) = watch::channel(false);
        Admin {
            journal: app.journal().clone(),
            readers,
            replica: None,
            metrics: app.metrics().clone(),
            events: app.events().clone(),
            token,
            scenarios: Arc::new(NoScenarios),
            streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
            stop,
            keep_alive: stream::KEEP_ALIVE,
            suppliers: app.suppliers().clone(),
            hosts: Vec::new(),
            wsb: None,
        }
    }

    /// Names (besides its own address and localhost) the listener may be addressed by, e.g.
    /// a compose service name; any other Host is refused.
    pub fn with_hosts(mut self, hosts: Vec<String>) -> Admin {
        self.hosts = hosts;
        self
    }

    /// Serves WSB's views and actions.
    pub fn with_wsb(mut self, wsb: crate::wsb::Wsb) -> Admin {
        self.wsb = Some(wsb);
        self
    }

    /// Plugs in scenario control (reload, state reset).
    pub fn with_scenarios(mut self, scenarios: Arc<dyn ScenarioControl>) -> Admin {
        self.scenarios = scenarios;
        self
    }

    /// Labels `/metrics` with this replica's name.
    pub fn with_replica(mut self, replica: impl Into<String>) -> Admin {
        self.replica = Some(replica.into());
        self
    }

    /// Sets the keep-alive interval of event streams (tests use a short one).
    pub fn with_keep_alive(mut self, keep_alive: Duration) -> Admin {
        self.keep_alive = keep_alive;
        self
    }
}

/// Refuses an admin listener reachable from other machines without a token.
pub fn check_exposure(address: SocketAddr, token: Option<&AdminToken>) -> anyhow::Result<()> {
    if !address.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "the admin listener on {address} would be reachable from other machines without a token: \
             set DFDG_MOCK_ADMIN_TOKEN or DFDG_MOCK_ADMIN_TOKEN_FILE (--admin-token-file, or \
             [admin] token_file in the config file), or listen on loopback (--admin-listen 127.0.0.1:8080)"
        );
    }
    Ok(())
}

/// Serves the admin listener until `shutdown` completes. Fails at once, before serving, when
/// the listener is off loopback without a token.
pub async fn run(
    listener: TcpListener,
    admin: Arc<Admin>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("cannot read the admin listener's address")?;
    check_exposure(address, admin.token.as_ref())?;
    let guard = Arc::new(guard::Guard::new(address, &admin.hosts));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT)
        .max_buf_size(64 * 1024);
    let http = Arc::new(http);
    let bounds = Bounds {
        name: "admin",
        max_connections: MAX_CONNECTIONS,
        drain: SHUTDOWN_DRAIN,
    };
    // Event streams never end by themselves: tell them to, before the drain waits for them.
    let stop = admin.stop.clone();
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    listener::serve(listener, bounds, shutdown, |stream, peer, watcher| {
        let (admin, guard) = (admin.clone(), guard.clone());
        let service = service_fn(move |request| {
            let (admin, guard) = (admin.clone(), guard.clone());
            async move { Ok::<_, Infallible>(handle(&admin, &guard, request).await) }
        });
        let connection = watcher.watch(http.serve_connection(TokioIo::new(stream), service));
        async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "admin connection ended with an error");
            }
        }
    })
    .await;
    Ok(())
}

/// An API failure: a status and a message for the JSON `{"error": …}` body, and for the
/// refusals the dashboard words itself a stable `reason` (e.g. `foreign_receipt`).
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    reason: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            reason: None,
        }
    }

    fn because(mut self, reason: &'static str) -> ApiError {
        self.reason = Some(reason);
        self
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<JournalError> for ApiError {
    fn from(error: JournalError) -> ApiError {
        match error {
            JournalError::InvalidFilter { .. } => ApiError::bad_request(error.to_string()),
            JournalError::UnknownReceipt { .. } => ApiError::not_found(error.to_string()),
            other => {
                let mut message = other.to_string();
                let mut source = std::error::Error::source(&other);
                while let Some(cause) = source {
                    message.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
            }
        }
    }
}

type ApiResult = Result<Response<Body>, ApiError>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    encoded_json(status, encode(value))
}

/// `value` as JSON, in pieces ([`stream::Pieces`]).
fn encode(value: &impl serde::Serialize) -> serde_json::Result<stream::Pieces> {
    let mut pieces = stream::Pieces::default();
    serde_json::to_writer(&mut pieces, value).map(|()| pieces)
}

/// An answer already encoded as JSON (by [`json`], or by a read on its reading thread, so that
/// what the answer is made of is freed where the read's memory is given back),
/// or the error saying it could not be.
fn encoded_json(status: StatusCode, encoded: serde_json::Result<stream::Pieces>) -> Response<Body> {
    match encoded {
        Ok(pieces) => {
            let mut response = respond(status, "application/json", Bytes::new());
            *response.body_mut() = pieces.into_body().boxed();
            response
        }
        Err(error) => error_response(&ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer as JSON: {error}"),
        )),
    }
}

fn error_response(error: &ApiError) -> Response<Body> {
    let body = match error.reason {
        Some(reason) => serde_json::json!({ "error": error.message, "reason": reason }),
        None => serde_json::json!({ "error": error.message }),
    };
    respond(error.status, "application/json", body.to_string())
}

async fn handle(admin: &Admin, guard: &guard::Guard, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if let Err(refusal) = guard.check(&method, request.uri(), request.headers()) {
        tracing::warn!(%method, %path, reason = refusal.message(), "admin request refused");
        return error_response(&ApiError::new(refusal.status(), refusal.message()));
    }
    let result = if path.starts_with("/health") {
        health(admin, &path).await
    } else if !authorized(admin, &request) {
        Ok(unauthorized(&method, &path))
    } else {
        route(admin, request, &method, &path).await
    };
    result.unwrap_or_else(|error| error_response(&error))
}

/// Whether the request carries the token (or no token is configured).
fn authorized(admin: &Admin, request: &Request<Incoming>) -> bool {
    let Some(token) = &admin.token else {
        return true;
    };
    let bearer = request
        .headers()
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.strip_prefix("Bearer "))
        .any(|presented| token.matches(presented.trim().as_bytes()));
    let cookie = request
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| {
            // The token prompt stores the token URI-encoded.
            name == TOKEN_COOKIE
                && percent_decode(value).is_ok_and(|value| token.matches(value.as_bytes()))
        });
    bearer || cookie
}

fn unauthorized(method: &Method, path: &str) -> Response<Body> {
    let mut response = if *method == Method::GET && path == "/" {
        respond(
            StatusCode::UNAUTHORIZED,
            "text/html; charset=utf-8",
            TOKEN_PROMPT,
        )
    } else {
        error_response(&ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this admin listener needs `Authorization: Bearer <token>` (the token set with DFDG_MOCK_ADMIN_TOKEN or --admin-token-file)",
        ))
    };
    response
        .headers_mut()
        .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    response
}

/// Asks a browser for the token and keeps it in a same-site cookie for this listener.
const TOKEN_PROMPT: &str = r#"<!doctype html><html lang="da"><meta charset="utf-8"><title>dfdg-mock admin</title>
<body style="font:18px system-ui;margin:3em">
<h1>dfdg-mock</h1><p>Adgangsnøgle / Admin token:</p>
<form onsubmit="document.cookie='dfdg_mock_admin_token='+encodeURIComponent(this.t.value.trim())+'; path=/; SameSite=Strict';location.reload();return false">
<input name="t" type="password" autofocus size="40"> <button>OK</button></form></body></html>"#;

async fn health(admin: &Admin, path: &str) -> ApiResult {
    // After a failed commit, try one small write: space may have come back.
    let journal = &admin.journal;
    let available = journal.is_available() || journal.probe().await;
    let ready = journal.is_open() && available && read(admin, |_store| Ok(())).await.is_ok();
    let status = |ok: bool| {
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    match path {
        "/health" => Ok(json(
            status(ready),
            &serde_json::json!({ "live": true, "ready": ready }),
        )),
        "/health/live" => Ok(json(StatusCode::OK, &serde_json::json!({ "live": true }))),
        "/health/ready" if !available => Ok(json(
            status(false),
            &serde_json::json!({
                "ready": false,
                "journal": "cannot commit (disk full or not writable): calls are answered with fault 1011 until it can",
            }),
        )),
        "/health/ready" => Ok(json(status(ready), &serde_json::json!({ "ready": ready }))),
        _ => Err(ApiError::not_found(format!("no such path {path}"))),
    }
}

async fn route(
    admin: &Admin,
    request: Request<Incoming>,
    method: &Method,
    path: &str,
) -> ApiResult {
    let query = request.uri().query().unwrap_or_default().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, [""]) => Ok(respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            DASHBOARD,
        )),
        (&Method::GET, ["wsb.js"]) => Ok(respond(
            StatusCode::OK,
            "text/javascript; charset=utf-8",
            DASHBOARD_WSB,
        )),
        (&Method::GET, ["openapi.json"]) => {
            Ok(respond(StatusCode::OK, "application/json", OPENAPI))
        }
        (&Method::GET, ["metrics"]) => {
            let mut text = admin
                .metrics
                .render(&admin.journal.stats(), admin.replica.as_deref());
            if let Some(wsb) = &admin.wsb {
                text.push_str(&wsb.metrics());
            }
            Ok(respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            ))
        }
        (_, ["api", "wsb", rest @ ..]) => wsb::route(admin, request, method, rest, &query).await,
        (&Method::GET, ["api", "calls"]) => list_calls(admin, &query).await,
        (&Method::GET, ["api", "calls", "export"]) => export_calls(admin, &query),
        (&Method::GET, ["api", "calls", id]) => call_detail(admin, id).await,
        (&Method::GET, ["api", "rejections"]) => list_rejections(admin, &query).await,
        (&Method::GET, ["api", "callers"]) => {
            // Each status written as it is worked out (see `read_list`).
            read_list(admin, r#"{"callers":["#, |store, list| {
                onboarding::each_caller(store, |status| list.push(&status))?;
                Ok("]}".to_owned())
            })
            .await
        }
        (&Method::GET, ["api", "suppliers"]) => supplier_status(admin, &query).await,
        (&Method::GET, ["api", "events"]) => events(admin),
        (&Method::POST, ["api", "receipts", guid, "confirm"])
        | (&Method::POST, ["onboarding", "receipts", guid, "confirm"]) => {
            let guid = (*guid).to_owned();
            confirm(admin, request, &guid).await
        }
        (&Method::POST, ["api", "journal", "reset"]) => reset_journal(admin, request).await,
        (&Method::POST, ["api", "scenarios", "reload"]) => {
            scenario_answer(admin.scenarios.reload().await)
        }
        (&Method::POST, ["api", "scenarios", "reset"]) => {
            scenario_answer(admin.scenarios.reset_state().await)
        }
        (&Method::POST, ["api", "verify"]) => verify_api(admin, request).await,
        (_, ["" | "openapi.json" | "metrics"])
        | (_, ["api", "calls" | "rejections" | "callers" | "suppliers" | "events"])
        | (_, ["api", "calls", _])
        | (_, ["api" | "onboarding", "receipts", _, "confirm"])
        | (_, ["api", "journal", "reset"])
        | (_, ["api", "scenarios", "reload" | "reset"])
        | (_, ["api", "verify"]) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}; see /openapi.json"),
        )),
        _ => Err(ApiError::not_found(format!(
            "no such path {path}; the API is described at /openapi.json"
        ))),
    }
}

/// Runs a read on a blocking thread with one of the pool's read-only connections.
async fn read<T: Send + 'static>(
    admin: &Admin,
    work: impl FnOnce(&journal::Reader) -> Result<T, JournalError> + Send + 'static,
) -> Result<T, ApiError> {
    admin.readers.read(work).await.map_err(ApiError::from)
}

/// A JSON object ending in a list, worked out on a reading thread by `fill` (which writes the
/// items and returns what closes the object, e.g. `]}`), and sent as it is written once it
/// outgrows a few pieces ([`stream::Pieces::spilling`]): a list of a thousand suppliers is
/// never held whole. A smaller answer, or an error before the first piece went out, is
/// answered whole, with its length or status. An error after that cuts the answer short
/// (it is logged).
async fn read_list(
    admin: &Admin,
    start: &'static str,
    fill: impl FnOnce(&journal::Reader, &mut stream::JsonList) -> Result<String, JournalError>
        + Send
        + 'static,
) -> ApiResult {
    let (started, streaming) = tokio::sync::oneshot::channel();
    let runtime = tokio::runtime::Handle::current();
    let readers = admin.readers.clone();
    let work = tokio::spawn(async move {
        readers
            .read(move |store| {
                let pieces = stream::Pieces::spilling(runtime, started);
                let mut list = stream::JsonList::into(pieces, start);
                let end = fill(store, &mut list).inspect_err(|error| {
                    if list.is_streaming() {
                        tracing::warn!(%error, "a streamed admin answer was cut short");
                    }
                })?;
                Ok(list
                    .finish(&end)
                    .map_err(std::io::Error::from)
                    .and_then(stream::Pieces::end))
            })
            .await
    });
    if let Ok(body) = streaming.await {
        let mut response = respond(StatusCode::OK, "application/json", Bytes::new());
        *response.body_mut() = body.boxed();
        return Ok(response);
    }
    let internal = |message: String| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message);
    match work.await {
        Ok(Ok(Ok(Some(pieces)))) => Ok(encoded_json(StatusCode::OK, Ok(pieces))),
        Ok(Ok(Ok(None))) => Err(internal("the answer was sent as a stream".to_owned())),
        Ok(Ok(Err(error))) => Err(internal(format!("cannot encode the answer: {error}"))),
        Ok(Err(error)) => Err(error.into()),
        Err(error) => Err(internal(format!("the read stopped: {error}"))),
    }
}

/// Reads a request body under [`MAX_BODY`] and [`REQUEST_TIMEOUT`].
async fn body_bytes(request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limited = Limited::new(request.into_body(), MAX_BODY);
    match tokio::time::timeout(REQUEST_TIMEOUT, limited.collect()).await {
        Err(_elapsed) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {MAX_BODY} bytes"),
        )),
        Ok(Err(error)) => Err(ApiError::bad_request(format!(
            "the request body could not be read: {error}"
        ))),
    }
}

/// A JSON body, or `T::default()` for an empty one.
async fn json_body<T: for<'de> Deserialize<'de> + Default>(
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let bytes = body_bytes(request).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::bad_request(format!(
            "the request body is not the expected JSON: {error}"
        ))
    })
}

/// `a=1&b=x%20y` → pairs, percent-decoded (`+` is a space).
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Result<String, ApiError> {
    crate::encoding::decode_query_value(text)
        .map(std::borrow::Cow::into_owned)
        .map_err(|problem| ApiError::bad_request(problem.to_string()))
}

fn parse_time(name: &str, value: &str) -> Result<OffsetDateTime, ApiError> {
    crate::cli::parse_since(value).map_err(|error| {
        ApiError::bad_request(format!(
            "{name}={value:?}: {error} (write RFC 3339, e.g. 2026-11-27T10:00:00Z, or an age like 10m)"
        ))
    })
}

fn parse_number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{name}={value:?} is not a number")))
}

/// Filters of `/api/calls` and `/api/calls/export` into a journal query.
fn call_query(query: &str, export: bool) -> Result<CallQuery, ApiError> {
    let mut parsed = CallQuery {
        limit: 50,
        ..CallQuery::default()
    };
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "caller_id" | "caller" => parsed.caller = Some(value),
            "cvr" => parsed.cvr = Some(value),
            "operation" => parsed.operation = Some(value),
            "service" => parsed.service = Some(value),
            "outcome" => parsed.outcome = Some(value),
            "fault_code" => parsed.fault_code = Some(parse_number(&name, &value)?),
            "since" => parsed.since = Some(parse_time(&name, &value)?),
            "until" => parsed.until = Some(parse_time(&name, &value)?),
            "after_id" => parsed.after_id = Some(parse_number(&name, &value)?),
            "cursor" if !export => parsed.before_id = Some(parse_cursor(&value)?),
            "limit" if !export => {
                let limit: usize = parse_number(&name, &value)?;
                if limit == 0 || limit > MAX_PAGE {
                    return Err(ApiError::bad_request(format!(
                        "limit={limit}: ask for 1 to {MAX_PAGE} rows"
                    )));
                }
                parsed.limit = limit;
            }
            "supplier" => parsed.supplier = Some(value),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; known: caller_id, cvr, supplier, service, operation, outcome, fault_code, since, until, limit, cursor, after_id"
                )))
            }
        }
    }
    Ok(parsed)
}

/// Cursors are opaque to clients; today they hold the last id of the previous page.
fn parse_cursor(value: &str) -> Result<i64, ApiError> {
    value
        .strip_prefix('c')
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "cursor {value:?} is not one this API handed out (use `next` of the previous page)"
            ))
        })
}

/// Calls read per query by `GET /api/calls` (see `list_calls`).
const LIST_PAGE: usize = 50;

fn cursor(id: i64) -> String {
    format!("c{id}")
}

/// A call in a list: what a feed shows, without bodies.
/// One call of `GET /api/calls`, borrowed from the stored call and written straight into the
/// answer: a JSON tree of 200 calls first would take several times the answer's size. The
/// fields are in alphabetical order, the order the answer has always had (serde_json's maps).
#[derive(serde::Serialize)]
struct CallSummary<'a> {
    authorization: Option<&'a str>,
    caller_id: Option<&'a str>,
    cvr: Option<&'a str>,
    detail: Option<&'a str>,
    fault_code: Option<i64>,
    http_status: u16,
    id: i64,
    identity_check: Option<bool>,
    identity_findings: usize,
    latency_micros: u64,
    operation: Option<&'a str>,
    outcome: String,
    path: &'a str,
    peer: &'a str,
    receipts: &'a [String],
    scenario_rule: Option<&'a str>,
    service: &'a str,
    soap_action: Option<&'a str>,
    soap_fault_code: Option<&'a str>,
    soap_version: Option<&'a str>,
    supplier: Option<&'a str>,
    time: String,
    warnings: Vec<&'static str>,
    wsdl_findings: usize,
}

fn summary(call: &StoredCall) -> CallSummary<'_> {
    let record = &call.record;
    let (fault_code, soap_fault_code) = match &record.outcome {
        journal::Outcome::Fault { code, fault_code } => (*code, Some(fault_code.as_str())),
        _ => (None, None),
    };
    CallSummary {
        authorization: record.authorization.as_deref(),
        caller_id: record.identity.as_ref().map(|i| i.caller_id.as_str()),
        cvr: record.identity.as_ref().and_then(|i| i.cvr.as_deref()),
        detail: record.detail.as_deref(),
        fault_code,
        http_status: record.http_status,
        id: call.id,
        identity_check: record
            .identity
            .as_ref()
            .map(|_| onboarding::identity_passed(record)),
        identity_findings: record.identity_findings.len(),
        latency_micros: record.latency_micros,
        operation: record.operation.as_deref(),
        outcome: record.outcome.label(),
        path: &record.path,
        peer: &record.peer,
        receipts: &record.receipts,
        scenario_rule: record.scenario_rule.as_deref(),
        service: journal::service_of(&record.path),
        soap_action: record.soap_action.as_deref(),
        soap_fault_code,
        soap_version: record.soap_version.as_deref(),
        supplier: record.supplier.as_deref(),
        time: rfc3339(record.time),
        warnings: warnings(record),
        wsdl_findings: record.findings.len(),
    }
}

/// What the feed marks a call with (⚠), whatever its outcome: `identity` (the certificate's
/// caller id or CVR does not match the headers or the registry), `headers` (a STAR header
/// missing or implausible), `soap_action` (it names another operation), `schema` (the request
/// departs from its schema), `no_certificate`.
fn warnings(record: &journal::CallRecord) -> Vec<&'static str> {
    let mut warnings = Vec::new();
    let mut add = |kind: &'static str| {
        if !warnings.contains(&kind) {
            warnings.push(kind);
        }
    };
    if record.identity.is_none() {
        add("no_certificate");
    }
    for finding in &record.identity_findings {
        match finding.check.as_str() {
            "identity" | "supplier_cvr" => add("identity"),
            _ => add("headers"),
        }
    }
    for finding in &record.findings {
        if finding.path == "SOAPAction" || finding.path == "Content-Type action" {
            add("soap_action");
        } else {
            add("schema");
        }
    }
    warnings
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

async fn list_calls(admin: &Admin, query: &str) -> ApiResult {
    let query = call_query(query, false)?;
    let limit = query.limit;
    let following = query.after_id.is_some();
    // LIST_PAGE calls per query, each page's summaries written before the next is read:
    // the calls (bodies and all, as the journal returns them) of a long page are never held
    // at once.
    read_list(admin, r#"{"calls":["#, move |store, list| {
        let mut last = None;
        let listed = journal::each_call_by(store, &query, limit, LIST_PAGE, |call| {
            list.push(&summary(call));
            last = Some(call.id);
            Ok::<_, JournalError>(())
        })?;
        let next = (!following && listed == limit)
            .then(|| last.map(cursor))
            .flatten();
        Ok(format!(
            "],\"next\":{}}}",
            serde_json::to_string(&next).unwrap_or_else(|_| "null".to_owned())
        ))
    })
    .await
}

fn export_calls(admin: &Admin, query: &str) -> ApiResult {
    let query = call_query(query, true)?;
    let (sender, body) = stream::ChannelBody::new(4);
    let readers = admin.readers.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || stream::export(&runtime, &sender, &readers, &query));
    let mut response = Response::new(body.boxed());
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response.headers_mut().insert(
        "content-disposition",
        HeaderValue::from_static("attachment; filename=\"dfdg-mock-calls.jsonl\""),
    );
    Ok(response)
}

async fn call_detail(admin: &Admin, id: &str) -> ApiResult {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("call id {id:?} is not a number")))?;
    let (call, confirmations) = read(admin, move |store| {
        let Some(call) = store.call(id)? else {
            return Ok((None, Vec::new()));
        };
        let mut confirmations = Vec::new();
        for guid in &call.record.receipts {
            confirmations.push((guid.clone(), store.confirmation(guid)?));
        }
        Ok((Some(call), confirmations))
    })
    .await?;
    let call = call.ok_or_else(|| ApiError::not_found(format!("no call {id} in the journal")))?;
    let confirm = confirm_offer(&admin.suppliers.current(), &call);
    let receipts: Vec<serde_json::Value> = confirmations
        .into_iter()
        .map(|(guid, confirmation)| {
            serde_json::json!({
                "guid": guid,
                "confirmed": confirmation.is_some(),
                "confirmed_at": confirmation.as_ref().map(|c| rfc3339(c.record.time)),
                "note": confirmation.and_then(|c| c.record.note),
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "call": call,
            "service": journal::service_of(&call.record.path),
            "identity": onboarding::identity_comparison(&call.record),
            "findings": onboarding::checks(&call.record),
            "warnings": warnings(&call.record),
            "receipts": receipts,
            "confirm": confirm,
        }),
    ))
}

async fn list_rejections(admin: &Admin, query: &str) -> ApiResult {
    let mut parsed = RejectionQuery {
        limit: 50,
        ..RejectionQuery::default()
    };
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "reason" => parsed.reason = Some(value),
            "since" => parsed.since = Some(parse_time(&name, &value)?),
            "cursor" => parsed.before_id = Some(parse_cursor(&value)?),
            "limit" => {
                let limit: usize = parse_number(&name, &value)?;
                if limit == 0 || limit > MAX_PAGE {
                    return Err(ApiError::bad_request(format!(
                        "limit={limit}: ask for 1 to {MAX_PAGE} rows"
                    )));
                }
                parsed.limit = limit;
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; known: reason, since, limit, cursor"
                )))
            }
        }
    }
    let limit = parsed.limit;
    let rejections = read(admin, move |store| store.rejections(&parsed)).await?;
    let next = (rejections.len() == limit)
        .then(|| rejections.last().map(|r| cursor(r.id)))
        .flatten();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "rejections": rejections, "next": next }),
    ))
}

fn events(admin: &Admin) -> ApiResult {
    let permit = admin.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("already {MAX_EVENT_STREAMS} event streams open; close one and retry"),
        )
    })?;
    let (sender, body) = stream::ChannelBody::new(16);
    tokio::spawn(stream::events(
        sender,
        admin.events.subscribe(),
        admin.stop.subscribe(),
        admin.keep_alive,
        permit,
    ));
    let mut response = Response::new(body.boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Whether confirming a call's receipt can succeed, and as which supplier: in open mode
/// anyone's receipt; with a registry only as the supplier owning the call's certificate.
/// `why_not` names what stands in the way: `no_receipt`, `no_supplier` (no registered supplier
/// has the certificate).
fn confirm_offer(registry: &crate::supplier::Registry, call: &StoredCall) -> serde_json::Value {
    if call.record.receipts.is_empty() {
        return serde_json::json!({ "possible": false, "why_not": "no_receipt" });
    }
    if registry.is_open() {
        return serde_json::json!({ "possible": true, "supplier": null });
    }
    let owner = call.record.identity.as_ref().and_then(|identity| {
        registry
            .suppliers()
            .iter()
            .find(|s| s.owns_identity(&identity.caller_id, &identity.fingerprint))
    });
    match owner {
        Some(owner) => serde_json::json!({ "possible": true, "supplier": owner.name }),
        None => serde_json::json!({ "possible": false, "why_not": "no_supplier" }),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    note: Option<String>,
    /// The supplier confirming; required while a supplier registry is in force.
    supplier: Option<String>,
}

/// `GET /api/suppliers[?supplier=NAME]`: the three-step status per registered supplier (per
/// caller id in open mode).
async fn supplier_status(admin: &Admin, query: &str) -> ApiResult {
    let mut only = None;
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "supplier" => only = Some(value),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; known: supplier"
                )))
            }
        }
    }
    let registry = admin.suppliers.current();
    let start = if registry.is_open() {
        r#"{"open":true,"suppliers":["#
    } else {
        r#"{"open":false,"suppliers":["#
    };
    // Each status written as it is worked out, on the reading thread (see `read_list`).
    read_list(admin, start, move |store, list| {
        onboarding::each_supplier(store, &registry, only.as_deref(), |status| {
            list.push(&status)
        })?;
        Ok("]}".to_owned())
    })
    .await
}

async fn confirm(admin: &Admin, request: Request<Incoming>, guid: &str) -> ApiResult {
    let guid = percent_decode(guid)?;
    let body: ConfirmBody = json_body(request).await?;
    if body.note.as_ref().is_some_and(|note| note.len() > 1000) {
        return Err(ApiError::bad_request("note is longer than 1000 bytes"));
    }
    let time = OffsetDateTime::now_utc();
    let (registry, asked) = (admin.suppliers.current(), guid.clone());
    let confirmation = read(admin, move |store| {
        let (supplier, note) = (body.supplier.as_deref(), body.note);
        Ok(onboarding::confirmation(
            store, &registry, &asked, supplier, note, time,
        ))
    })
    .await?
    .map_err(|refusal| {
        let kind = refusal.kind();
        match refusal {
            onboarding::ConfirmRefusal::UnknownSupplier { .. }
            | onboarding::ConfirmRefusal::UnknownReceipt { .. } => {
                ApiError::not_found(refusal.to_string())
            }
            onboarding::ConfirmRefusal::ForeignReceipt { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, refusal.to_string())
            }
            onboarding::ConfirmRefusal::Journal(error) => error.into(),
            _ => ApiError::bad_request(refusal.to_string()),
        }
        .because(kind)
    })?;
    let onboarding::Confirmation { record, given, .. } = confirmation;
    let guid = record.guid.clone();
    let confirmed_by = record.supplier.clone();
    let call_id = match admin.journal.confirm_receipt(record).await {
        Ok(call_id) => call_id,
        Err(JournalError::UnknownReceipt { .. }) => {
            return Err(ApiError::not_found(format!(
                "unknown receipt {guid}: no call in this journal was answered with it"
            ))
            .because("unknown_receipt"))
        }
        Err(error) => return Err(error.into()),
    };
    let lookup = guid.clone();
    let confirmation = read(admin, move |store| store.confirmation(&lookup)).await?;
    let _ = admin.events.send(LiveEvent::Confirmation {
        guid: guid.clone(),
        call_id,
    });
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "guid": guid,
            "given": given,
            "call_id": call_id,
            "caller_id": confirmation.as_ref().and_then(|c| c.caller_id.clone()),
            "supplier": confirmed_by,
            "confirmed_at": confirmation.map_or_else(|| rfc3339(time), |c| rfc3339(c.record.time)),
        }),
    ))
}

#[derive(Debug, Default, Deserialize)]
struct ResetBody {
    confirm: Option<String>,
}

async fn reset_journal(admin: &Admin, request: Request<Incoming>) -> ApiResult {
    let body: ResetBody = json_body(request).await?;
    if body.confirm.as_deref() != Some("reset") {
        return Err(ApiError::bad_request(
            "resetting deletes every journaled call, receipt, confirmation and refusal: send {\"confirm\": \"reset\"} to do it",
        ));
    }
    admin.journal.reset().await?;
    let _ = admin.events.send(LiveEvent::Reset);
    tracing::info!("journal reset through the admin API");
    Ok(json(StatusCode::OK, &serde_json::json!({ "reset": true })))
}

fn scenario_answer(answer: Option<Result<String, String>>) -> ApiResult {
    match answer {
        None => Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "scenarios not available",
        )),
        Some(Ok(summary)) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "ok": true, "summary": summary }),
        )),
        Some(Err(error)) => Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error)),
    }
}

async fn verify_api(admin: &Admin, request: Request<Incoming>) -> ApiResult {
    let bytes = body_bytes(request).await?;
    let expectations = verify::Expectations::from_json(&bytes)
        .map_err(|error| ApiError::bad_request(format!("{error:#}")))?;
    let report = read(admin, move |store| verify::verify(store, &expectations)).await?;
    Ok(json(StatusCode::OK, &report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded_and_bad_encodings_refused() {
        let pairs = query_pairs("caller_id=CVR%3A1-UUID%3Ax&outcome=fault+1014&flag").unwrap();
        assert_eq!(
            pairs,
            [
                ("caller_id".to_owned(), "CVR:1-UUID:x".to_owned()),
                ("outcome".to_owned(), "fault 1014".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%ff").is_err(), "not UTF-8");
        assert_eq!(percent_decode("%C3%A6").unwrap(), "æ");
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(parse_cursor(&cursor(42)).unwrap(), 42);
        assert!(parse_cursor("42").is_err());
        assert!(parse_cursor("cx").is_err());
        let query = call_query("limit=5&cursor=c9&service=S", false).unwrap();
        assert_eq!(
            (query.limit, query.before_id, query.service.as_deref()),
            (5, Some(9), Some("S"))
        );
        // The export takes every matching call: no paging parameters.
        assert!(call_query("limit=5", true).is_err());
    }

    #[test]
    fn only_loopback_may_go_without_a_token() {
        let token = AdminToken::new("t0ken").unwrap();
        for address in ["127.0.0.1:8080", "[::1]:8080"] {
            assert!(check_exposure(address.parse().unwrap(), None).is_ok());
        }
        for address in ["0.0.0.0:8080", "[::]:8080", "192.0.2.1:8080"] {
            let address = address.parse().unwrap();
            assert!(check_exposure(address, None).is_err(), "{address}");
            assert!(check_exposure(address, Some(&token)).is_ok());
        }
    }
}

//! The admin API's WSB part (`/api/wsb/…`, described in `openapi.json`): STAR's pushes as the
//! administrator sees and drives them — the overview (STAR's certificate, settings, queue,
//! systems, message types), subscriptions, deliveries with their attempts, sending a message,
//! replaying a delivery, the per-supplier check "receives STAR's messages" (and running it),
//! and a live event stream.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::broadcast;

use super::{body_bytes, json, parse_number, query_pairs, stream, Admin, ApiError, ApiResult};
use crate::wsb::{
    checks, AttemptQuery, DeliveryId, DeliveryQuery, DeliveryState, ReplayError, SendError,
    SendRequest, Wsb, WsbEvent,
};

/// The most rows one page of deliveries or attempts holds.
pub const MAX_ROWS: usize = 1000;

/// How many deliveries per system the check reads.
const CHECK_WINDOW: usize = 2000;

/// How long a check run waits for its message's delivery before it sends the duplicate.
const CHECK_WAIT: Duration = Duration::from_secs(600);

pub(super) async fn route(
    admin: &Admin,
    request: Request<Incoming>,
    method: &Method,
    path: &[&str],
    query: &str,
) -> ApiResult {
    let Some(wsb) = &admin.wsb else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "WSB is off on this server: it has no STAR certificate to push with (a server certificate of your own needs [wsb] star_cert and star_key), or it was started with --no-wsb",
        ));
    };
    match (method, path) {
        (&Method::GET, []) => Ok(json(StatusCode::OK, &overview(wsb))),
        (&Method::GET, ["subscriptions"]) => subscriptions(wsb, query),
        (&Method::GET, ["deliveries"]) => deliveries(wsb, query).await,
        (&Method::GET, ["deliveries", id]) => delivery(wsb, id).await,
        (&Method::POST, ["deliveries", id, "replay"]) => replay(wsb, id).await,
        (&Method::GET, ["attempts"]) => attempts(wsb, query).await,
        (&Method::POST, ["messages"]) => send(wsb, request).await,
        (&Method::GET, ["checks"]) => supplier_checks(wsb, query).await,
        (&Method::POST, ["checks", supplier, "run"]) => {
            let supplier = super::percent_decode(supplier)?;
            run_check(wsb, &supplier).await
        }
        (&Method::GET, ["events"]) => events(admin, wsb),
        (
            _,
            [] | ["subscriptions" | "deliveries" | "attempts" | "messages" | "checks" | "events"],
        )
        | (_, ["deliveries", _] | ["deliveries", _, "replay"] | ["checks", _, "run"]) => {
            Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "{method} is not allowed on /api/wsb/{}; see /openapi.json",
                    path.join("/")
                ),
            ))
        }
        _ => Err(ApiError::not_found(format!(
            "no such path /api/wsb/{}; the API is described at /openapi.json",
            path.join("/")
        ))),
    }
}

/// What WSB is and how it stands.
fn overview(wsb: &Wsb) -> serde_json::Value {
    let star = wsb.star();
    let thumbprints = wsb.star_thumbprints();
    let settings = wsb.settings();
    let systems: Vec<serde_json::Value> = wsb
        .systems()
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "supplier": s.supplier,
                "category": s.category,
                "base_url": s.base_url.to_string(),
                "authorities": s.authorities.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "subscriptions": wsb.subscriptions(Some(s.id)).len(),
            })
        })
        .collect();
    let types: Vec<serde_json::Value> = wsb
        .catalog()
        .types()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "categories": t.categories,
                "recipients": t.recipients.iter().map(|code| wsb.catalog().describe_org_type(*code)).collect::<Vec<_>>(),
                "recipient_codes": t.recipients,
                "body": t.body,
                "fetch": t.fetch,
            })
        })
        .collect();
    json!({
        "star": {
            "caller_id": star.caller_id,
            "subject": star.subject,
            "issuer": star.issuer,
            "not_after": super::rfc3339(star.not_after),
            "sha256": thumbprints.sha256.hex(),
            "sha1": thumbprints.sha1.hex(),
        },
        "settings": {
            "retry": settings.retry.as_str(),
            "backoff_cap_seconds": settings.backoff.cap_seconds,
            "backoff_unit_ms": u64::try_from(settings.backoff.unit.as_millis()).unwrap_or(u64::MAX),
            "connect_timeout_ms": u64::try_from(settings.timeouts.connect.as_millis()).unwrap_or(u64::MAX),
            "response_timeout_ms": u64::try_from(settings.timeouts.response.as_millis()).unwrap_or(u64::MAX),
            "max_queue": settings.max_queue,
        },
        "queue": wsb.queue(),
        "subscription_endpoint": crate::app::wsb::PREFIX,
        "systems": systems,
        "types": types,
    })
}

fn uuid_of(name: &str, value: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::try_parse(value)
        .map_err(|_| ApiError::bad_request(format!("{name}={value:?} is not a GUID")))
}

fn limit_of(value: &str) -> Result<usize, ApiError> {
    let limit: usize = parse_number("limit", value)?;
    if limit == 0 || limit > MAX_ROWS {
        return Err(ApiError::bad_request(format!(
            "limit={limit}: ask for 1 to {MAX_ROWS} rows"
        )));
    }
    Ok(limit)
}

fn subscriptions(wsb: &Wsb, query: &str) -> ApiResult {
    let mut system = None;
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "system" => system = Some(uuid_of(&name, &value)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; known: system"
                )))
            }
        }
    }
    let list: Vec<serde_json::Value> = wsb
        .subscriptions(system)
        .iter()
        .map(|s| {
            let mut entry = s.to_json();
            entry["systemIdentifier"] = json!(s.system);
            entry
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "subscriptions": list })))
}

async fn deliveries(wsb: &Wsb, query: &str) -> ApiResult {
    let mut parsed = DeliveryQuery {
        limit: 50,
        ..DeliveryQuery::default()
    };
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "system" => parsed.system = Some(uuid_of(&name, &value)?),
            "subscription" => parsed.subscription = Some(uuid_of(&name, &value)?),
            "message" => parsed.message = Some(uuid_of(&name, &value)?),
            "state" => {
                for state in value.split(',').filter(|s| !s.is_empty()) {
                    parsed.states.push(DeliveryState::parse(state).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "state={state:?}: use queued, retrying, delivered, failed or dropped"
                        ))
                    })?);
                }
            }
            "before" => parsed.before = Some(DeliveryId(parse_number(&name, &value)?)),
            "limit" => parsed.limit = limit_of(&value)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; known: system, subscription, message, state, before, limit"
                )))
            }
        }
    }
    let limit = parsed.limit;
    let list = wsb.deliveries(parsed).await.map_err(|e| storage(&e))?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|d| d.id))
        .flatten();
    Ok(json(
        StatusCode::OK,
        &json!({ "deliveries": list, "queue": wsb.queue(), "next_before": next }),
    ))
}

fn delivery_id(id: &str) -> Result<DeliveryId, ApiError> {
    id.parse()
        .map(DeliveryId)
        .map_err(|_| ApiError::bad_request(format!("delivery id {id:?} is not a number")))
}

async fn delivery(wsb: &Wsb, id: &str) -> ApiResult {
    let id = delivery_id(id)?;
    let found = wsb.delivery(id).await.map_err(|e| storage(&e))?;
    let found = found.ok_or_else(|| ApiError::not_found(format!("no delivery {id}")))?;
    let attempts = wsb
        .attempts(AttemptQuery {
            delivery: Some(id),
            limit: MAX_ROWS,
            ..AttemptQuery::default()
        })
        .await
        .map_err(|e| storage(&e))?;
    Ok(json(
        StatusCode::OK,
        &json!({ "delivery": found, "attempts": attempts }),
    ))
}

async fn attempts(wsb: &Wsb, query: &str) -> ApiResult {
    let mut parsed = AttemptQuery {
        limit: 50,
        ..AttemptQuery::default()
    };
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "delivery" => parsed.delivery = Some(DeliveryId(parse_number(&name, &value)?)),
            "message" => parsed.message = Some(uuid_of(&name, &value)?),
            "system" => parsed.system = Some(uuid_of(&name, &value)?),
            "limit" => parsed.limit = limit_of(&value)?,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; known: delivery, message, system, limit"
                )))
            }
        }
    }
    let list = wsb.attempts(parsed).await.map_err(|e| storage(&e))?;
    Ok(json(StatusCode::OK, &json!({ "attempts": list })))
}

async fn replay(wsb: &Wsb, id: &str) -> ApiResult {
    let id = delivery_id(id)?;
    match wsb.replay(id).await {
        Ok(replayed) => Ok(json(StatusCode::OK, &replayed)),
        Err(error) => Err(match &error {
            ReplayError::NotFound(_) => ApiError::not_found(error.to_string()),
            ReplayError::StillQueued(_) | ReplayError::SubscriptionDeleted(_) => {
                ApiError::new(StatusCode::CONFLICT, error.to_string())
            }
            ReplayError::QueueFull { .. } | ReplayError::Stopped => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            }
            ReplayError::Storage(source) => storage(source),
        }),
    }
}

async fn send(wsb: &Wsb, request: Request<Incoming>) -> ApiResult {
    let bytes = body_bytes(request).await?;
    let mut asked: SendRequest = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::bad_request(format!(
            "the request body is not a message: {error} (send e.g. {{\"type\": \"Frist\", \"recipient\": \"8/101\", \"cpr\": \"0101901234\"}})"
        ))
    })?;
    if asked.origin.is_none() {
        asked.origin = Some("admin API".to_owned());
    }
    let message = asked
        .message(wsb.catalog())
        .map_err(ApiError::bad_request)?;
    let sent = wsb.send(message).await.map_err(|error| match &error {
        SendError::Invalid(_) => ApiError::bad_request(error.to_string()),
        SendError::QueueFull { .. } | SendError::Stopped => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
        }
        SendError::Storage(source) => storage(source),
    })?;
    Ok(json(StatusCode::OK, &sent))
}

/// The suppliers with systems, each with its deliveries' check.
async fn supplier_checks(wsb: &Wsb, query: &str) -> ApiResult {
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
    let systems = wsb.systems();
    let mut suppliers: Vec<&str> = systems.iter().map(|s| s.supplier.as_str()).collect();
    suppliers.sort_unstable();
    suppliers.dedup();
    let mut out = Vec::new();
    for supplier in suppliers {
        if only
            .as_deref()
            .is_some_and(|o| !o.eq_ignore_ascii_case(supplier))
        {
            continue;
        }
        let mut deliveries = Vec::new();
        let mut listed = Vec::new();
        for system in systems.iter().filter(|s| s.supplier == supplier) {
            deliveries.extend(
                wsb.deliveries(DeliveryQuery {
                    system: Some(system.id),
                    limit: CHECK_WINDOW,
                    ..DeliveryQuery::default()
                })
                .await
                .map_err(|e| storage(&e))?,
            );
            listed.push(json!({
                "id": system.id,
                "base_url": system.base_url.to_string(),
                "subscriptions": wsb.subscriptions(Some(system.id)).len(),
            }));
        }
        out.push(json!({
            "supplier": supplier,
            "systems": listed,
            "deliveries": deliveries.len(),
            "receives": checks::receives(&deliveries),
        }));
    }
    if let (Some(name), true) = (&only, out.is_empty()) {
        return Err(ApiError::not_found(format!(
            "no supplier {name:?} has a system registered for WSB ([[supplier.system]] in the registry)"
        )));
    }
    Ok(json(StatusCode::OK, &json!({ "suppliers": out })))
}

/// Sends one test message per active subscription of the supplier's systems, and once each
/// is delivered, its duplicate (a replay of the same `beskedId`).
async fn run_check(wsb: &Wsb, supplier: &str) -> ApiResult {
    let systems: Vec<uuid::Uuid> = wsb
        .systems()
        .iter()
        .filter(|s| s.supplier.eq_ignore_ascii_case(supplier))
        .map(|s| s.id)
        .collect();
    if systems.is_empty() {
        return Err(ApiError::not_found(format!(
            "no supplier {supplier:?} has a system registered for WSB ([[supplier.system]] in the registry)"
        )));
    }
    let now = time::OffsetDateTime::now_utc();
    let mut targets: Vec<(uuid::Uuid, u32, crate::wsb::Authority)> = systems
        .iter()
        .flat_map(|id| wsb.subscriptions(Some(*id)))
        .filter(|s| s.active_at(now))
        .map(|s| (s.system, s.type_id, s.recipient))
        .collect();
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{supplier} has no active subscription: sync one first (POST {}/SyncWebhookAbonnementer with the supplier's certificate)", crate::app::wsb::PREFIX),
        ));
    }
    let mut events = wsb.events();
    let mut waiting = Vec::new();
    let mut sent = Vec::new();
    for (system, type_id, recipient) in targets {
        let mut message = crate::wsb::Message::new(
            type_id,
            recipient,
            crate::wsb::Subject::Cpr(
                crate::wsb::Cpr::try_from(CHECK_CPR.to_owned()).map_err(ApiError::bad_request)?,
            ),
            crate::wsb::ChangeType::Update,
        );
        message.origin = Some(format!("check of {supplier}"));
        message.only_system = Some(system);
        let result = wsb
            .send(message)
            .await
            .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        waiting.extend(result.deliveries.iter().map(|d| d.delivery));
        sent.push(result);
    }
    // The duplicates follow their deliveries, without holding up the answer.
    let replayer = wsb.clone();
    let mut pending = waiting.clone();
    tokio::spawn(async move {
        let wait = tokio::time::sleep(CHECK_WAIT);
        tokio::pin!(wait);
        while !pending.is_empty() {
            let event = tokio::select! {
                () = &mut wait => break,
                event = events.recv() => event,
            };
            match event {
                Ok(WsbEvent::Attempt(attempt))
                    if pending.contains(&attempt.delivery) && attempt.state.is_final() =>
                {
                    pending.retain(|d| *d != attempt.delivery);
                    if attempt.state == DeliveryState::Delivered {
                        if let Err(error) = replayer.replay(attempt.delivery).await {
                            tracing::warn!(delivery = %attempt.delivery, "check: the duplicate was not sent: {error}");
                        }
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    Ok(json(
        StatusCode::OK,
        &json!({
            "supplier": supplier,
            "sent": sent,
            "duplicates_follow": waiting,
            "note": "each message is sent again (same beskedId) once it is delivered; the retry check needs the webhook to fail at first (answer 5xx), see GET /api/wsb/checks",
        }),
    ))
}

/// The fictitious citizen of check messages (a CPR number from STAR's test ranges' form).
pub const CHECK_CPR: &str = "0101019999";

/// Server-sent events: each [`WsbEvent`] as `event: wsb` with its JSON.
fn events(admin: &Admin, wsb: &Wsb) -> ApiResult {
    let permit = admin.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "already {} event streams open; close one and retry",
                super::MAX_EVENT_STREAMS
            ),
        )
    })?;
    let (sender, body) = stream::ChannelBody::new(16);
    let mut received = wsb.events();
    let mut stop = admin.stop.subscribe();
    let keep_alive = admin.keep_alive;
    tokio::spawn(async move {
        let _permit = permit;
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
        let end = tokio::time::sleep(stream::STREAM_LIFETIME);
        tokio::pin!(end);
        if !stream::send(&sender, Bytes::from_static(b"retry: 2000\n: connected\n\n")).await {
            return;
        }
        loop {
            let frame = tokio::select! {
                _ = stop.changed() => break,
                () = &mut end => break,
                _ = tick.tick() => Bytes::from_static(b": keep-alive\n\n"),
                event = received.recv() => match event {
                    Ok(event) => match serde_json::to_string(&event) {
                        Ok(data) => Bytes::from(format!("event: wsb\ndata: {data}\n\n")),
                        Err(_) => continue,
                    },
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        Bytes::from(format!("event: lagged\ndata: {{\"missed\":{missed}}}\n\n"))
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            };
            if !stream::send(&sender, frame).await {
                break;
            }
        }
    });
    let mut response = Response::new(body.boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn storage(error: &crate::wsb::StoreError) -> ApiError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
}

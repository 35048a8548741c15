//! What WSB keeps, and the storage interface it keeps it through: subscriptions, messages, their
//! deliveries (one per message and subscription) and every delivery attempt. Nothing here is
//! specific to a database; [`super::sqlite`] implements it over SQLite.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::message::Message;
use super::retry::OutcomeClass;
use super::subscription::Subscription;

/// Rows a query returns when its limit is 0.
pub const DEFAULT_LIMIT: usize = 50;
/// The most rows one query returns.
pub const MAX_LIMIT: usize = 10_000;

/// A delivery's number: assigned by the store, never reused, in sending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(pub i64);

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting to be sent (perhaps held back behind an earlier delivery of its lane).
    Queued,
    /// Failed; waiting for its next attempt.
    Retrying,
    /// A 2xx answer.
    Delivered,
    /// Given up: the retry policy does not retry how it failed. A replay sends it again.
    Failed,
    /// Its subscription was deleted before it was delivered.
    Dropped,
}

impl DeliveryState {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Dropped => "dropped",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        [
            DeliveryState::Queued,
            DeliveryState::Retrying,
            DeliveryState::Delivered,
            DeliveryState::Failed,
            DeliveryState::Dropped,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// True when nothing more happens to it unless replayed.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryState::Delivered | DeliveryState::Failed | DeliveryState::Dropped
        )
    }
}

/// How one attempt ended: each failure its own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// 5xx.
    ServerError,
    /// 4xx.
    ClientError,
    /// 3xx: STAR does not follow redirects.
    Redirect,
    /// 1xx or a status outside 100-599.
    UnexpectedStatus,
    /// The webhook refused STAR's client certificate (a TLS alert).
    CertificateRefused,
    /// The webhook's server certificate is not issued by a trusted CA.
    UntrustedServerCertificate,
    /// The webhook's server certificate has expired.
    ExpiredServerCertificate,
    /// The webhook's server certificate is wrong otherwise: another host name, not yet valid,
    /// not for servers.
    InvalidServerCertificate,
    /// Another TLS failure (no common protocol version or cipher, a TLS alert unrelated to
    /// certificates).
    TlsFailed,
    /// The webhook does not speak TLS.
    NotTls,
    /// No connection: refused, unreachable, name not found.
    ConnectFailed,
    /// The TCP connect or the TLS handshake did not complete in time.
    ConnectTimeout,
    /// No (complete) answer in time.
    ResponseTimeout,
    /// The webhook reset or closed the connection before answering.
    Reset,
    /// The answer is not HTTP.
    NotHttp,
    /// The mock itself failed during the attempt (a bug; the detail says what).
    Internal,
}

impl Outcome {
    /// Every outcome, for views and parsing.
    pub const ALL: [Outcome; 17] = [
        Outcome::Delivered,
        Outcome::ServerError,
        Outcome::ClientError,
        Outcome::Redirect,
        Outcome::UnexpectedStatus,
        Outcome::CertificateRefused,
        Outcome::UntrustedServerCertificate,
        Outcome::ExpiredServerCertificate,
        Outcome::InvalidServerCertificate,
        Outcome::TlsFailed,
        Outcome::NotTls,
        Outcome::ConnectFailed,
        Outcome::ConnectTimeout,
        Outcome::ResponseTimeout,
        Outcome::Reset,
        Outcome::NotHttp,
        Outcome::Internal,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::ServerError => "server_error",
            Outcome::ClientError => "client_error",
            Outcome::Redirect => "redirect",
            Outcome::UnexpectedStatus => "unexpected_status",
            Outcome::CertificateRefused => "certificate_refused",
            Outcome::UntrustedServerCertificate => "untrusted_server_certificate",
            Outcome::ExpiredServerCertificate => "expired_server_certificate",
            Outcome::InvalidServerCertificate => "invalid_server_certificate",
            Outcome::TlsFailed => "tls_failed",
            Outcome::NotTls => "not_tls",
            Outcome::ConnectFailed => "connect_failed",
            Outcome::ConnectTimeout => "connect_timeout",
            Outcome::ResponseTimeout => "response_timeout",
            Outcome::Reset => "reset",
            Outcome::NotHttp => "not_http",
            Outcome::Internal => "internal",
        }
    }

    /// Reads a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == text)
    }

    /// What the retry policy sees.
    pub fn class(self) -> OutcomeClass {
        match self {
            Outcome::Delivered => OutcomeClass::Delivered,
            Outcome::ServerError => OutcomeClass::ServerError,
            _ => OutcomeClass::OtherFailure,
        }
    }
}

/// The webhook's server certificate, as presented (trusted or not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSummary {
    /// RFC 4514 subject.
    pub subject: String,
    /// RFC 4514 issuer.
    pub issuer: String,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// What TLS did in one attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsOutcome {
    /// `TLSv1.3` / `TLSv1.2` when the handshake completed.
    pub version: Option<String>,
    /// The server certificate presented, when there was one.
    pub server_certificate: Option<CertificateSummary>,
}

/// One attempt to deliver: what was sent where, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The delivery.
    pub delivery: DeliveryId,
    /// The message (`beskedId`).
    pub message_id: uuid::Uuid,
    /// The subscription it is delivered for.
    pub subscription: uuid::Uuid,
    /// The webhook URL.
    pub url: String,
    /// 1 for the first attempt of the delivery, counting on through retries and replays.
    pub number: u32,
    /// When the attempt started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// From connecting to the end of the answer (or the failure).
    #[serde(with = "duration_us")]
    pub latency: Duration,
    /// What TLS did, and the webhook's certificate.
    pub tls: TlsOutcome,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// How it ended.
    pub outcome: Outcome,
    /// The reason, for people.
    pub detail: String,
    /// The start of the answer's body (at most 1 KiB, as text).
    pub response_excerpt: Option<String>,
    /// When the next attempt is due, if there is one.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_retry: Option<OffsetDateTime>,
    /// The delivery's state after this attempt.
    pub state: DeliveryState,
}

/// A new message and its deliveries, as [`WsbStore::insert_message`] takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// `beskedId`.
    pub id: uuid::Uuid,
    /// When it was sent.
    pub created_at: OffsetDateTime,
    /// The message itself.
    pub message: Message,
}

/// One delivery of a new message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The subscription.
    pub subscription: uuid::Uuid,
    /// The subscription's system.
    pub system: uuid::Uuid,
    /// The webhook URL, fixed when the message is sent.
    pub url: String,
    /// The lane it is ordered in ([`super::lanes::OrderKey`]'s text).
    pub order_key: String,
    /// The JSON document pushed.
    pub payload: String,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Its number.
    pub id: DeliveryId,
    /// The message (`beskedId`).
    pub message_id: uuid::Uuid,
    /// The message's type.
    pub type_id: u32,
    /// The subscription.
    pub subscription: uuid::Uuid,
    /// The system.
    pub system: uuid::Uuid,
    /// Where it goes.
    pub url: String,
    /// Its lane.
    pub order_key: String,
    /// The JSON document pushed.
    pub payload: String,
    /// Where it is.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (state `retrying`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_retry: Option<OffsetDateTime>,
    /// How the last attempt ended.
    pub last_outcome: Option<Outcome>,
    /// Its reason.
    pub last_detail: Option<String>,
    /// The earliest undelivered delivery of the same lane, when this one waits behind it.
    pub held_behind: Option<DeliveryId>,
    /// The delivery this one replays.
    pub replay_of: Option<DeliveryId>,
    /// What fired the message ([`Message::origin`]).
    pub origin: Option<String>,
    /// When the message was sent.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Which deliveries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only this system's.
    pub system: Option<uuid::Uuid>,
    /// Only this subscription's.
    pub subscription: Option<uuid::Uuid>,
    /// Only this message's.
    pub message: Option<uuid::Uuid>,
    /// Only in these states (empty: any).
    pub states: Vec<DeliveryState>,
    /// Only deliveries with a smaller id (paging backwards).
    pub before: Option<DeliveryId>,
    /// At most this many ([`DEFAULT_LIMIT`] when 0, never more than [`MAX_LIMIT`]).
    pub limit: usize,
}

/// Which attempts to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptQuery {
    /// Only this delivery's.
    pub delivery: Option<DeliveryId>,
    /// Only this message's.
    pub message: Option<uuid::Uuid>,
    /// Only this system's.
    pub system: Option<uuid::Uuid>,
    /// At most this many ([`DEFAULT_LIMIT`] when 0, never more than [`MAX_LIMIT`]).
    pub limit: usize,
}

/// A limit as the queries apply it.
pub fn effective_limit(limit: usize) -> usize {
    match limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// A storage failure, whatever the backend.
#[derive(Debug, thiserror::Error)]
#[error("WSB storage: {what}")]
pub struct StoreError {
    /// What was being done.
    what: String,
    /// The backend's error.
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// A failure while doing `what`, caused by `source`.
    pub fn new(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// A failure without an underlying error (e.g. a stored value that does not parse).
    pub fn message(what: impl Into<String>) -> Self {
        StoreError {
            what: what.into(),
            source: None,
        }
    }
}

/// Where WSB keeps its state. Synchronous: the async side calls it from blocking tasks. Each
/// method is one transaction.
pub trait WsbStore: Send + Sync + 'static {
    /// Every subscription of every system.
    fn subscriptions(&self) -> Result<Vec<Subscription>, StoreError>;

    /// Makes `list` the whole list of `system`'s subscriptions and marks the undelivered
    /// deliveries of the subscriptions in `deleted` as dropped, in one transaction; nothing
    /// changes if it fails. Returns how many deliveries were dropped.
    fn replace_subscriptions(
        &self,
        system: uuid::Uuid,
        list: &[Subscription],
        deleted: &[uuid::Uuid],
        now: OffsetDateTime,
    ) -> Result<usize, StoreError>;

    /// Stores a message and its deliveries (state queued); their ids, in the same order.
    fn insert_message(
        &self,
        message: &MessageRecord,
        deliveries: &[NewDelivery],
    ) -> Result<Vec<DeliveryId>, StoreError>;

    /// Stores an attempt and moves its delivery to `attempt.state` (a dropped delivery stays
    /// dropped).
    fn record_attempt(&self, attempt: &Attempt) -> Result<(), StoreError>;

    /// A new delivery (state queued, no attempts yet) of the same message to the same
    /// subscription as `original`: a replay. `None` if there is no such delivery.
    fn insert_replay(
        &self,
        original: DeliveryId,
        now: OffsetDateTime,
    ) -> Result<Option<Delivery>, StoreError>;

    /// The deliveries still to send (queued or retrying), in id order: what a restart resumes.
    fn pending(&self) -> Result<Vec<Delivery>, StoreError>;

    /// One delivery.
    fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError>;

    /// Deliveries, newest first.
    fn deliveries(&self, query: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError>;

    /// Attempts, newest first.
    fn attempts(&self, query: &AttemptQuery) -> Result<Vec<Attempt>, StoreError>;
}

/// Durations as whole microseconds in JSON.
mod duration_us {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_micros()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_micros(u64::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(outcome));
            assert_eq!(
                serde_json::to_value(outcome).expect("json"),
                serde_json::Value::from(outcome.as_str())
            );
        }
        for state in ["queued", "retrying", "delivered", "failed", "dropped"] {
            assert_eq!(
                DeliveryState::parse(state).map(DeliveryState::as_str),
                Some(state)
            );
        }
        assert_eq!(Outcome::ServerError.class(), OutcomeClass::ServerError);
        assert_eq!(Outcome::Redirect.class(), OutcomeClass::OtherFailure);
        assert_eq!(effective_limit(0), DEFAULT_LIMIT);
        assert_eq!(effective_limit(1 << 40), MAX_LIMIT);
    }
}

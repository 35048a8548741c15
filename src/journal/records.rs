//! What is journaled and what queries ask for and return: plain data, independent of the store.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Finding, RejectionReason};

/// A flattened copy of the caller's certificate identity, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityFields {
    pub caller_id: String,
    pub kind: String,
    pub cvr: Option<String>,
    pub common_name: Option<String>,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub fingerprint: String,
    /// RFC 3339 text.
    pub not_before: String,
    /// RFC 3339 text.
    pub not_after: String,
}

/// How a call was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// A SOAP answer carrying receipts.
    Receipt,
    /// A SOAP fault.
    Fault {
        /// STAR's numeric fault code, when the fault carries one.
        code: Option<i64>,
        /// The SOAP fault code: "Client"/"Server" (1.1) or "Sender"/"Receiver" (1.2).
        fault_code: String,
    },
    /// A plain HTTP answer, not SOAP (wrong method, unknown path, ...).
    Http,
}

impl Outcome {
    /// A short label: "receipt", "fault 1014", "fault Client", "http".
    pub fn label(&self) -> String {
        match self {
            Outcome::Receipt => "receipt".to_owned(),
            Outcome::Fault {
                code: Some(code), ..
            } => format!("fault {code}"),
            Outcome::Fault {
                code: None,
                fault_code,
            } => format!("fault {fault_code}"),
            Outcome::Http => "http".to_owned(),
        }
    }
}

/// One SOAP (or non-SOAP) call as it reached the mock and was answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// When the request arrived (UTC; stored to the microsecond).
    #[serde(with = "rfc3339")]
    pub time: OffsetDateTime,
    /// "127.0.0.1:51234".
    pub peer: String,
    /// "TLSv1.3".
    pub tls_version: String,
    /// "TLS13_AES_128_GCM_SHA256".
    pub cipher_suite: String,
    /// "h2" / "http/1.1".
    pub alpn: Option<String>,
    /// None when no (valid) certificate was presented (diagnose mode). Shared: every call of a
    /// connection carries the same one.
    pub identity: Option<Arc<IdentityFields>>,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// "1.1" / "1.2".
    pub soap_version: Option<String>,
    pub soap_action: Option<String>,
    /// Local name of the first Body child.
    pub operation: Option<String>,
    pub operation_namespace: Option<String>,
    /// The STAR header values extracted (a JSON object).
    pub star_headers: Option<serde_json::Value>,
    /// Already capped by the caller (a slice of the body as received, not a copy). JSON shows
    /// it as UTF-8 text (lossy).
    #[serde(with = "body_text")]
    pub request_body: Bytes,
    pub request_truncated: bool,
    /// JSON shows it as UTF-8 text (lossy).
    #[serde(with = "body_text")]
    pub response_body: Bytes,
    pub response_truncated: bool,
    /// 0 when no HTTP response was sent (a scenario's connection fault).
    pub http_status: u16,
    /// Receipt GUIDs sent in the response.
    pub receipts: Vec<String>,
    pub outcome: Outcome,
    /// Human-readable reason for faults and refusals.
    pub detail: Option<String>,
    /// Stored saturated at `i64::MAX`.
    pub latency_micros: u64,
    /// The scenario file whose rule answered, if a rule did.
    #[serde(default)]
    pub scenario_file: Option<String>,
    /// The rule that answered, `"default"` when no rule matched, `None` when the call never
    /// reached the scenarios (refused or malformed).
    #[serde(default)]
    pub scenario_rule: Option<String>,
    /// The catalog service the call was routed to (its WSDL service name).
    #[serde(default)]
    pub service: Option<String>,
    /// The WSDL operation the call was matched to.
    #[serde(default)]
    pub service_operation: Option<String>,
    /// Where the request departs from its schema (validation `report` or `enforce`).
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// The registered supplier the certificate belongs to (also on refused calls).
    #[serde(default)]
    pub supplier: Option<String>,
    /// The registry's decision: `open`, `allowed`, `refused 1013`; `None`: not authorized
    /// (refused before, or journaled by an older version).
    #[serde(default)]
    pub authorization: Option<String>,
    /// The identity checks that did not pass ([`crate::supplier::identity_findings`]); empty
    /// with an `authorization` means they all passed.
    #[serde(default)]
    pub identity_findings: Vec<crate::supplier::Finding>,
}

impl CallRecord {
    /// The caller id of the verified certificate, if there was one.
    pub fn caller_id(&self) -> Option<&str> {
        self.identity
            .as_ref()
            .map(|identity| identity.caller_id.as_str())
    }

    /// `RequestUserMetadataHeader/UserIdentifier` as journaled with the STAR headers, trimmed.
    pub fn header_user_identifier(&self) -> Option<&str> {
        self.star_headers
            .as_ref()?
            .get("request_user")?
            .get("user_identifier")?
            .as_str()
            .map(str::trim)
    }

    /// Whether the headers' UserIdentifier names the certificate's caller id (ASCII case
    /// aside); false without a certificate or without the header.
    pub fn header_names_caller(&self) -> bool {
        match (self.header_user_identifier(), self.caller_id()) {
            (Some(user), Some(caller)) => user.eq_ignore_ascii_case(caller),
            _ => false,
        }
    }

    /// Whether the identity checks ran on a call with a certificate and all passed.
    pub fn identity_passed(&self) -> bool {
        self.identity.is_some() && self.authorization.is_some() && self.identity_findings.is_empty()
    }
}

/// One attempt to load the scenario files, at start, on a file change or on a signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadRecord {
    #[serde(with = "rfc3339")]
    pub time: OffsetDateTime,
    /// Whether the new rules are now in force; when not, the previous ones still are.
    pub ok: bool,
    /// The files read.
    pub files: Vec<String>,
    /// Rules in force afterwards.
    pub rules: usize,
    /// Why the new files were refused.
    pub error: Option<String>,
}

/// A journaled reload and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReload {
    pub id: i64,
    #[serde(flatten)]
    pub record: ReloadRecord,
}

/// One refused TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionRecord {
    /// When the connection arrived (UTC; stored to the microsecond).
    #[serde(with = "rfc3339")]
    pub time: OffsetDateTime,
    pub peer: String,
    pub reason: RejectionReason,
    /// The TLS library's message.
    pub detail: String,
    /// Of the presented certificate, where one was presented and parsed.
    pub identity: Option<IdentityFields>,
    /// "require" / "diagnose".
    pub mode: String,
}

/// A supplier's confirmation that it received one of the mock's receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmationRecord {
    /// The receipt's `MessageIdentifier`, as sent.
    pub guid: String,
    #[serde(with = "rfc3339")]
    pub time: OffsetDateTime,
    /// Free text, e.g. who confirmed and how.
    pub note: Option<String>,
    /// The supplier confirming: the receipt must have been sent to one of its certificates
    /// ([`JournalError::ForeignReceipt`] otherwise). `None`: anyone may confirm (open mode).
    #[serde(default)]
    pub supplier: Option<String>,
}

/// What the writer is asked to do. All writes go through the one writer thread, so the admin
/// side never races the hot path for the write lock.
// Calls far outnumber rejections: boxing the call would cost the common case an allocation to
// save space in the rare one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Call(CallRecord),
    Rejection(RejectionRecord),
    /// Confirms a receipt; its id is the id of the call that sent the receipt. Fails with
    /// [`JournalError::UnknownReceipt`] when no call sent it.
    Confirmation(ConfirmationRecord),
    /// Deletes every call, receipt, confirmation and rejection (ids are never reused); id 0.
    Reset,
    Reload(ReloadRecord),
}

/// Something that was just committed, for live views (the dashboard's feed, SSE): published by
/// the server for what it journals, and by the PostgreSQL store's feed for what other replicas
/// journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveEvent {
    /// A call with this journal id.
    Call(i64),
    /// A refused handshake with this journal id.
    Rejection(i64),
    /// A receipt was confirmed; the id is the call that sent it.
    Confirmation { guid: String, call_id: i64 },
    /// The journal was emptied.
    Reset,
}

/// A confirmed receipt, with the call and caller it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConfirmation {
    pub call_id: i64,
    /// Caller id of the call that sent the receipt, if it had a certificate identity.
    pub caller_id: Option<String>,
    /// The registered supplier of the call that sent the receipt.
    #[serde(default)]
    pub call_supplier: Option<String>,
    /// Fingerprint of the certificate of the call that sent the receipt.
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(flatten)]
    pub record: ConfirmationRecord,
}

/// One caller id seen in the journal (over all its certificates), with how often and when, and
/// the calls onboarding's first two steps cite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerSummary {
    pub caller_id: String,
    pub cvr: Option<String>,
    /// Calls the journal holds.
    pub calls: i64,
    #[serde(with = "rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub last_seen: OffsetDateTime,
    /// The newest call answered with a receipt.
    #[serde(default)]
    pub latest_receipt: Option<i64>,
    /// The newest call answered with a receipt whose identity checks ran and all passed
    /// ([`CallRecord::identity_passed`]).
    #[serde(default)]
    pub latest_passed: Option<i64>,
}

/// One client certificate seen in the journal, with the same facts as [`CallerSummary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSummary {
    pub identity: CertificateKeys,
    pub calls: i64,
    #[serde(with = "rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub last_seen: OffsetDateTime,
    pub latest_receipt: Option<i64>,
    pub latest_passed: Option<i64>,
}

/// What is read of a certificate's journaled identity ([`IdentityFields`]) for a
/// [`CertificateSummary`]: the keys a registry names it by and its expiry. The rest of the
/// identity is skipped as it is read: a thousand certificates' whole identities held about a
/// megabyte while the onboarding status of every supplier was worked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateKeys {
    pub caller_id: String,
    pub fingerprint: String,
    pub not_after: String,
}

/// A journaled call and its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCall {
    pub id: i64,
    #[serde(flatten)]
    pub record: CallRecord,
}

/// A journaled rejection and its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRejection {
    pub id: i64,
    #[serde(flatten)]
    pub record: RejectionRecord,
}

/// Which calls to list. Results are newest first (by id), except when `after_id` is set: then
/// they are oldest first, so a follower paging forward from its last id misses none.
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    /// Exact caller id or CVR.
    pub caller: Option<String>,
    /// Exact caller id (not a CVR).
    pub caller_id: Option<String>,
    /// Registered supplier name (case-insensitive).
    pub supplier: Option<String>,
    /// Exact CVR of the caller's certificate.
    pub cvr: Option<String>,
    /// Service: the first segment of the path (see [`service_of`]).
    pub service: Option<String>,
    /// Exact operation (local name).
    pub operation: Option<String>,
    /// Arrived at or after.
    pub since: Option<OffsetDateTime>,
    /// Arrived strictly before.
    pub until: Option<OffsetDateTime>,
    /// "receipt", "fault", "http", or a label such as "fault 1014" / "fault Client".
    pub outcome: Option<String>,
    /// STAR's numeric fault code.
    pub fault_code: Option<i64>,
    /// Exact SOAPAction.
    pub soap_action: Option<String>,
    /// Exact path, without its query.
    pub path: Option<String>,
    /// Whether the headers' UserIdentifier names the certificate's caller id
    /// ([`CallRecord::header_names_caller`]; a call without certificate does not).
    pub identity_check: Option<bool>,
    /// Turns this criterion around: the calls that do *not* meet it, and meet every other one
    /// (the near misses of `verify`).
    pub negate: Option<Criterion>,
    /// Only ids below this (paging back).
    pub before_id: Option<i64>,
    /// Only ids above this (following); switches the order to oldest first.
    pub after_id: Option<i64>,
    /// 0 means [`DEFAULT_LIMIT`]; capped at [`MAX_LIMIT`].
    pub limit: usize,
}

/// One criterion of a [`CallQuery`], to name in [`CallQuery::negate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Criterion {
    Caller,
    CallerId,
    Supplier,
    Cvr,
    Service,
    Operation,
    Since,
    Until,
    Outcome,
    FaultCode,
    SoapAction,
    Path,
    IdentityCheck,
}

/// Which rejections to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RejectionQuery {
    /// Arrived at or after.
    pub since: Option<OffsetDateTime>,
    /// A [`RejectionReason::as_str`] name.
    pub reason: Option<String>,
    /// Only ids below this (paging back).
    pub before_id: Option<i64>,
    /// 0 means [`DEFAULT_LIMIT`]; capped at [`MAX_LIMIT`].
    pub limit: usize,
}

/// Serde for bodies: UTF-8 text (lossy) in JSON rather than an array of numbers.
pub(crate) mod body_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(body: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&String::from_utf8_lossy(body))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<bytes::Bytes, D::Error> {
        String::deserialize(deserializer).map(bytes::Bytes::from)
    }
}

/// Serde for times: RFC 3339 text.
pub(crate) mod rfc3339 {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(
        time: &OffsetDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text = time.format(&Rfc3339).map_err(S::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(D::Error::custom)
    }
}

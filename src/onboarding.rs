//! STAR's three-step onboarding test, computed from the journal:
//! 1. a successful call (one answered with a receipt) to an allowed operation was received;
//! 2. its identity checks passed ([`crate::supplier::identity_findings`], journaled with each
//!    call): what the certificate says, what the headers say and what is registered, side by side;
//! 3. the supplier confirmed one of *its own* receipts.
//!
//! With a supplier registry the status is kept per registered supplier ([`suppliers`]); in open
//! mode (no registry) per certificate caller id ([`callers`], also what the admin dashboard
//! shows). The per-call check list of the admin API ([`checks`]) is read from the same journaled
//! findings, never recomputed. The printable report is in [`report`].

pub mod report;

use std::collections::HashMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::journal::{
    CallRecord, CertificateSummary, IdentityFields, JournalError, JournalReader, StoredCall,
    StoredConfirmation, MAX_LIMIT,
};
use crate::supplier::{Category, Registry, Supplier};

/// The most callers listed.
pub const MAX_CALLERS: usize = 500;

/// What the certificate says and what the headers say, side by side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityComparison {
    /// STAR's caller id read from the client certificate.
    pub certificate_caller_id: String,
    /// `RequestUserMetadataHeader/UserIdentifier`, if the request carried it.
    pub header_user_identifier: Option<String>,
    /// Whether the two are equal.
    pub matches: bool,
}

/// One identity check of one call, passed or not, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// `active_organisation_header`, `request_user_metadata_header`, `identity`, or the name
    /// of another journaled finding (`supplier_cvr`, `organisation_code`, ...).
    pub check: String,
    pub passed: bool,
    /// What was found, in English.
    pub message: String,
    /// The DFDG code strict mode answers a failure with.
    pub code: Option<i64>,
}

/// One step of the test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub done: bool,
    /// The call that is the evidence (or the latest attempt, when not done).
    pub call_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub time: Option<OffsetDateTime>,
    /// The receipt, for step 3 (and the receipt that could be confirmed, for step 1).
    pub receipt: Option<String>,
    /// What a person reads: why done, or what is missing.
    pub evidence: String,
}

impl Step {
    fn missing(evidence: &str) -> Step {
        Step {
            done: false,
            call_id: None,
            time: None,
            receipt: None,
            evidence: evidence.to_owned(),
        }
    }
}

/// A caller id and where it stands in the test (open mode; the dashboard's view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerStatus {
    pub caller_id: String,
    /// The registered supplier of the caller's latest successful call, if any.
    pub supplier: Option<String>,
    pub cvr: Option<String>,
    pub calls: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub first_seen: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// Step 1: a successful call received.
    pub call_received: Step,
    /// Step 2: identity check passed.
    pub identity_checked: Step,
    /// The comparison behind step 2 (of the passing call, or the latest attempt).
    pub identity: Option<IdentityComparison>,
    /// Step 3: a receipt of theirs confirmed.
    pub receipt_confirmed: Step,
    /// All three steps done.
    pub complete: bool,
}

/// The headers' side of the identity check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeaderIdentity {
    pub user_identifier: Option<String>,
    pub user_type: Option<String>,
    pub user_full_name: Option<String>,
    /// `RequestOrganisationStructure/OrganisationCode`.
    pub organisation_code: Option<String>,
    /// `ActiveOrganisationHeader` type and code.
    pub active_organisation_type: Option<String>,
    pub active_organisation_code: Option<String>,
}

/// The registry's side of the identity check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisteredIdentity {
    pub name: String,
    pub cvr: String,
    pub category: Category,
    pub identities: Vec<String>,
    pub services: Vec<String>,
    pub revoked: Vec<String>,
}

impl From<&Supplier> for RegisteredIdentity {
    fn from(supplier: &Supplier) -> Self {
        RegisteredIdentity {
            name: supplier.name.clone(),
            cvr: supplier.cvr.clone(),
            category: supplier.category,
            identities: supplier.identities.clone(),
            services: supplier.services.clone(),
            revoked: supplier.revoked.clone(),
        }
    }
}

/// Step 2's evidence: certificate, headers and registration side by side, and what differed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityEvidence {
    pub call_id: i64,
    pub certificate: Option<IdentityFields>,
    pub headers: HeaderIdentity,
    pub registered: Option<RegisteredIdentity>,
    pub findings: Vec<crate::supplier::Finding>,
}

/// A registered supplier (or, in open mode, a caller id) and where it stands in the test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SupplierStatus {
    /// The registered name; `None` in open mode.
    pub supplier: Option<String>,
    pub category: Option<Category>,
    pub cvr: Option<String>,
    /// The certificate caller id of the evidence (or the caller id itself in open mode).
    pub caller_id: Option<String>,
    /// Calls journaled for the supplier (or caller id).
    pub calls: usize,
    pub call_received: Step,
    pub identity_checked: Step,
    pub identity: Option<IdentityEvidence>,
    pub receipt_confirmed: Step,
    pub complete: bool,
}

impl SupplierStatus {
    /// The name a person reads: the supplier, else the caller id.
    pub fn title(&self) -> &str {
        self.supplier
            .as_deref()
            .or(self.caller_id.as_deref())
            .unwrap_or("?")
    }
}

/// The identity comparison of a call, if it had a certificate identity.
pub fn identity_comparison(call: &CallRecord) -> Option<IdentityComparison> {
    let identity = call.identity.as_ref()?;
    Some(IdentityComparison {
        matches: call.header_names_caller(),
        certificate_caller_id: identity.caller_id.clone(),
        header_user_identifier: call.header_user_identifier().map(str::to_owned),
    })
}

/// The STAR header values journaled with a call.
pub fn header_identity(call: &CallRecord) -> HeaderIdentity {
    let headers = call.star_headers.as_ref();
    let text = |section: &str, field: &str| {
        headers
            .and_then(|h| h.get(section))
            .and_then(|s| s.get(field))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    HeaderIdentity {
        user_identifier: text("request_user", "user_identifier"),
        user_type: text("request_user", "user_type"),
        user_full_name: text("request_user", "user_full_name"),
        organisation_code: text("request_user", "organisation_code"),
        active_organisation_type: text("active_organisation", "organisation_type"),
        active_organisation_code: text("active_organisation", "organisation_code"),
    }
}

/// Whether a call's identity checks ran and all passed.
pub fn identity_passed(call: &CallRecord) -> bool {
    call.identity_passed()
}

/// The identity checks of a call as journaled: the three the dashboard names (headers present,
/// UserIdentifier equals the certificate) passed or not, then every other finding.
pub fn checks(call: &CallRecord) -> Vec<Check> {
    let mut checks = Vec::new();
    let finding = |name: &str| call.identity_findings.iter().find(|f| f.check == name);
    let checked = call.authorization.is_some();
    let core = [
        (
            "active_organisation_header",
            "ActiveOrganisationHeader present",
        ),
        (
            "request_user_metadata_header",
            "RequestUserMetadataHeader present",
        ),
        (
            "identity",
            "UserIdentifier equals the certificate's caller id",
        ),
    ];
    for (name, passed_message) in core {
        checks.push(match finding(name) {
            Some(finding) => Check {
                check: name.to_owned(),
                passed: false,
                message: finding.message.clone(),
                code: Some(finding.code),
            },
            None if call.identity.is_none() => Check {
                check: name.to_owned(),
                passed: false,
                message: "no verified client certificate: no caller id to compare".to_owned(),
                code: None,
            },
            None if !checked => Check {
                check: name.to_owned(),
                passed: false,
                message: "not checked: the call was refused before the identity checks".to_owned(),
                code: None,
            },
            None => Check {
                check: name.to_owned(),
                passed: true,
                message: passed_message.to_owned(),
                code: None,
            },
        });
    }
    for other in call
        .identity_findings
        .iter()
        .filter(|f| !core.iter().any(|(name, _)| *name == f.check))
    {
        checks.push(Check {
            check: other.check.clone(),
            passed: false,
            message: other.message.clone(),
            code: Some(other.code),
        });
    }
    checks
}

/// Every caller id seen in the journal with its three-step status, most recently seen first.
/// Reads one summary row per caller and the two calls it cites: no call is scanned.
pub fn callers(reader: &impl JournalReader) -> Result<Vec<CallerStatus>, JournalError> {
    Ok(caller_evidence(reader)?
        .into_iter()
        .map(|evidence| evidence.status)
        .collect())
}

/// A caller's status and the call behind its step 2.
struct CallerEvidence {
    status: CallerStatus,
    identity_call: Option<StoredCall>,
}

fn caller_evidence(reader: &impl JournalReader) -> Result<Vec<CallerEvidence>, JournalError> {
    let confirmations = reader.confirmations(MAX_LIMIT)?;
    // Newest first, so the first one seen per caller is its newest.
    let mut confirmed: HashMap<&str, &StoredConfirmation> = HashMap::new();
    for confirmation in &confirmations {
        if let Some(caller) = confirmation.caller_id.as_deref() {
            confirmed.entry(caller).or_insert(confirmation);
        }
    }
    let summaries = reader.callers(MAX_CALLERS)?;
    let mut all = Vec::with_capacity(summaries.len());
    for chunk in summaries.chunks(EVIDENCE_CHUNK) {
        let found = Evidence::read(
            reader,
            chunk
                .iter()
                .map(|summary| (summary.latest_receipt, summary.latest_passed)),
        )?;
        for summary in chunk {
            let (latest, passed) = found.calls(summary.latest_receipt, summary.latest_passed);
            let steps = steps(
                latest,
                passed,
                confirmed.get(summary.caller_id.as_str()).copied(),
                "of this caller",
            );
            let identity_call = steps.identity_call.cloned();
            let identity = identity_call
                .as_ref()
                .and_then(|call| identity_comparison(&call.record));
            let supplier = latest.and_then(|call| call.record.supplier.clone());
            all.push(CallerEvidence {
                status: CallerStatus {
                    caller_id: summary.caller_id.clone(),
                    supplier,
                    cvr: summary.cvr.clone(),
                    calls: summary.calls,
                    first_seen: summary.first_seen,
                    last_seen: summary.last_seen,
                    complete: steps.complete(),
                    call_received: steps.call_received,
                    identity_checked: steps.identity_checked,
                    identity,
                    receipt_confirmed: steps.receipt_confirmed,
                },
                identity_call,
            });
        }
    }
    Ok(all)
}

/// Callers (or suppliers) whose evidence calls are read together: few round trips to a
/// database server, and a bounded number of calls in memory at once.
const EVIDENCE_CHUNK: usize = 100;

/// The calls behind steps 1 and 2 (the newest receipt and the newest passing receipt) of a
/// chunk of callers or suppliers, read with one query.
struct Evidence(HashMap<i64, StoredCall>);

impl Evidence {
    fn read(
        reader: &impl JournalReader,
        cited: impl IntoIterator<Item = (Option<i64>, Option<i64>)>,
    ) -> Result<Evidence, JournalError> {
        let mut ids: Vec<i64> = cited
            .into_iter()
            .flat_map(|(latest, passed)| [latest, passed])
            .flatten()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(Evidence(
            reader
                .calls_by_id(&ids)?
                .into_iter()
                .map(|call| (call.id, call))
                .collect(),
        ))
    }

    fn calls(
        &self,
        latest_receipt: Option<i64>,
        latest_passed: Option<i64>,
    ) -> (Option<&StoredCall>, Option<&StoredCall>) {
        (
            latest_receipt.and_then(|id| self.0.get(&id)),
            latest_passed.and_then(|id| self.0.get(&id)),
        )
    }
}

/// The three-step status of each registered supplier (registry order), or of each caller id
/// in open mode; `only` keeps the one named (supplier name or caller id, case-insensitive).
///
/// A supplier's calls are those of its certificates ([`Supplier::identities`], revoked ones
/// included), whatever the registry said when each call arrived: a call made just before the
/// supplier was registered counts once it is.
pub fn suppliers(
    reader: &impl JournalReader,
    registry: &Registry,
    only: Option<&str>,
) -> Result<Vec<SupplierStatus>, JournalError> {
    let wanted = |name: &str| only.is_none_or(|only| only.eq_ignore_ascii_case(name));
    if registry.is_open() {
        let mut statuses = Vec::new();
        for CallerEvidence {
            status: caller,
            identity_call,
        } in caller_evidence(reader)?
        {
            if !wanted(&caller.caller_id) {
                continue;
            }
            statuses.push(SupplierStatus {
                supplier: None,
                category: None,
                cvr: caller.cvr,
                caller_id: Some(caller.caller_id),
                calls: usize::try_from(caller.calls).unwrap_or(0),
                complete: caller.complete,
                identity: identity_call.as_ref().map(|call| evidence(call, None)),
                call_received: caller.call_received,
                identity_checked: caller.identity_checked,
                receipt_confirmed: caller.receipt_confirmed,
            });
        }
        return Ok(statuses);
    }
    let certificates = reader.certificates()?;
    let mut by_caller: HashMap<String, Vec<&CertificateSummary>> = HashMap::new();
    let mut by_fingerprint: HashMap<String, &CertificateSummary> = HashMap::new();
    for certificate in &certificates {
        by_caller
            .entry(certificate.identity.caller_id.to_ascii_lowercase())
            .or_default()
            .push(certificate);
        by_fingerprint.insert(
            certificate.identity.fingerprint.to_ascii_lowercase(),
            certificate,
        );
    }
    let confirmations = reader.confirmations(MAX_LIMIT)?;
    let mut confirmed: HashMap<&str, &StoredConfirmation> = HashMap::new();
    for confirmation in &confirmations {
        if let Some(fingerprint) = confirmation.fingerprint.as_deref() {
            confirmed.entry(fingerprint).or_insert(confirmation);
        }
    }
    // Each wanted supplier's certificates and what they cite, then the cited calls a chunk at
    // a time.
    let mut pending = Vec::new();
    for supplier in registry.suppliers() {
        if !wanted(&supplier.name) {
            continue;
        }
        let mut own: Vec<&CertificateSummary> = Vec::new();
        for known in supplier.identities.iter().chain(&supplier.revoked) {
            let (caller_id, fingerprint) = crate::supplier::identity_keys(known);
            let found = by_caller
                .get(&caller_id)
                .into_iter()
                .flatten()
                .copied()
                .chain(by_fingerprint.get(&fingerprint).copied());
            for certificate in found {
                if !own
                    .iter()
                    .any(|o| o.identity.fingerprint == certificate.identity.fingerprint)
                {
                    own.push(certificate);
                }
            }
        }
        pending.push((supplier, own));
    }
    let cited = |own: &[&CertificateSummary]| {
        (
            own.iter().filter_map(|c| c.latest_receipt).max(),
            own.iter().filter_map(|c| c.latest_passed).max(),
        )
    };
    let mut statuses = Vec::new();
    for chunk in pending.chunks(EVIDENCE_CHUNK) {
        let found = Evidence::read(reader, chunk.iter().map(|(_, own)| cited(own)))?;
        for (supplier, own) in chunk {
            let calls: i64 = own.iter().map(|c| c.calls).sum();
            let (latest_receipt, latest_passed) = cited(own);
            let (latest, passed) = found.calls(latest_receipt, latest_passed);
            let confirmation = own
                .iter()
                .filter_map(|c| confirmed.get(c.identity.fingerprint.as_str()).copied())
                .max_by_key(|c| c.record.time);
            let steps = steps(latest, passed, confirmation, "of this supplier");
            statuses.push(SupplierStatus {
                supplier: Some(supplier.name.clone()),
                category: Some(supplier.category),
                cvr: Some(supplier.cvr.clone()),
                caller_id: steps
                    .identity_call
                    .and_then(|call| call.record.identity.as_ref())
                    .map(|identity| identity.caller_id.clone())
                    .or_else(|| supplier.identities.first().cloned()),
                calls: usize::try_from(calls).unwrap_or(0),
                complete: steps.complete(),
                identity: steps
                    .identity_call
                    .map(|call| evidence(call, Some(supplier))),
                call_received: steps.call_received,
                identity_checked: steps.identity_checked,
                receipt_confirmed: steps.receipt_confirmed,
            });
        }
    }
    Ok(statuses)
}

/// Why a confirmation is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmRefusal {
    #[error(
        "{0:?} is not a receipt GUID: give the MessageIdentifier (or ServiceRequestLogReferenceIdentifier) from the response"
    )]
    NotAGuid(String),
    #[error("no supplier named {name:?} in the registry; registered: {known}")]
    UnknownSupplier { name: String, known: String },
    #[error(
        "the supplier registry is in force: name the supplier confirming (\"supplier\" in the JSON body, --supplier on the command line), so that only its own receipts count"
    )]
    SupplierNeeded,
    #[error(
        "unknown receipt {guid}: no call in the journal was answered with that MessageIdentifier; check the GUID in your response's ServiceReceipt"
    )]
    UnknownReceipt { guid: String },
    #[error(
        "receipt {guid} was sent to {}, not to {supplier}: a supplier can confirm only its own receipts",
        owner.as_deref().unwrap_or("a caller of no registered supplier")
    )]
    ForeignReceipt {
        guid: String,
        supplier: String,
        owner: Option<String>,
    },
    #[error("cannot read the journal")]
    Journal(#[from] JournalError),
}

/// Checks a confirmation request: the GUID's shape, the supplier (required and known with a
/// registry; only noted in open mode), and that the receipt went to one of that supplier's
/// certificates. The journal then records it (and still refuses a receipt it does not hold).
pub fn confirmation(
    reader: &impl JournalReader,
    registry: &Registry,
    guid: &str,
    supplier: Option<&str>,
    note: Option<String>,
    time: OffsetDateTime,
) -> Result<crate::journal::ConfirmationRecord, ConfirmRefusal> {
    let guid = guid.trim();
    if guid.is_empty()
        || guid.len() > 64
        || !guid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        return Err(ConfirmRefusal::NotAGuid(guid.to_owned()));
    }
    let supplier = supplier.map(str::trim).filter(|s| !s.is_empty());
    let (supplier, note) = if registry.is_open() {
        // No suppliers to own receipts: note who said they confirmed.
        let note = match (note, supplier) {
            (Some(note), _) => Some(note),
            (None, Some(name)) => Some(format!("confirmed by {name}")),
            (None, None) => None,
        };
        (None, note)
    } else {
        let name = supplier.ok_or(ConfirmRefusal::SupplierNeeded)?;
        let registered = registry
            .suppliers()
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| ConfirmRefusal::UnknownSupplier {
                name: name.to_owned(),
                known: registry
                    .suppliers()
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let call = reader
            .call_by_receipt(guid)?
            .ok_or_else(|| ConfirmRefusal::UnknownReceipt {
                guid: guid.to_owned(),
            })?;
        let identity = call.record.identity.as_ref();
        let owns = |s: &Supplier| {
            identity
                .is_some_and(|identity| s.owns_identity(&identity.caller_id, &identity.fingerprint))
        };
        if !owns(registered) {
            return Err(ConfirmRefusal::ForeignReceipt {
                guid: guid.to_owned(),
                supplier: registered.name.clone(),
                owner: registry
                    .suppliers()
                    .iter()
                    .find(|s| owns(s))
                    .map(|s| s.name.clone()),
            });
        }
        (Some(registered.name.clone()), note)
    };
    Ok(crate::journal::ConfirmationRecord {
        guid: guid.to_owned(),
        time,
        note,
        supplier,
    })
}

fn evidence(call: &StoredCall, supplier: Option<&Supplier>) -> IdentityEvidence {
    IdentityEvidence {
        call_id: call.id,
        certificate: call.record.identity.clone(),
        headers: header_identity(&call.record),
        registered: supplier.map(RegisteredIdentity::from),
        findings: call.record.identity_findings.clone(),
    }
}

/// The three steps and the call behind step 2.
struct Steps<'a> {
    call_received: Step,
    identity_checked: Step,
    receipt_confirmed: Step,
    /// The call that passed step 2, or the latest attempt.
    identity_call: Option<&'a StoredCall>,
}

impl Steps<'_> {
    fn complete(&self) -> bool {
        self.call_received.done && self.identity_checked.done && self.receipt_confirmed.done
    }
}

/// The three steps from the newest successful call, the newest one that passed the identity
/// checks, and a confirmation.
fn steps<'a>(
    latest: Option<&'a StoredCall>,
    passing: Option<&'a StoredCall>,
    confirmed: Option<&StoredConfirmation>,
    whose: &str,
) -> Steps<'a> {
    let call_received = match latest {
        Some(call) => Step {
            done: true,
            call_id: Some(call.id),
            time: Some(call.record.time),
            receipt: call.record.receipts.first().cloned(),
            evidence: format!(
                "call {} ({}) answered with receipt {}",
                call.id,
                call.record.operation.as_deref().unwrap_or("?"),
                call.record
                    .receipts
                    .first()
                    .map_or("(none)", String::as_str)
            ),
        },
        None => Step::missing("no call answered with a receipt yet"),
    };
    let (identity_checked, identity_call) = match (passing, latest) {
        (Some(call), _) => (
            Step {
                done: true,
                call_id: Some(call.id),
                time: Some(call.record.time),
                receipt: None,
                evidence: format!(
                    "call {}: the headers name the certificate's caller id and every identity check passed",
                    call.id
                ),
            },
            Some(call),
        ),
        (None, Some(call)) => {
            let why: Vec<&str> = call
                .record
                .identity_findings
                .iter()
                .map(|f| f.message.as_str())
                .collect();
            (
                Step {
                    done: false,
                    call_id: Some(call.id),
                    time: Some(call.record.time),
                    receipt: None,
                    evidence: if why.is_empty() {
                        format!("call {}: the identity checks did not run", call.id)
                    } else {
                        format!("call {}: {}", call.id, why.join("; "))
                    },
                },
                Some(call),
            )
        }
        (None, None) => (Step::missing("needs a successful call first"), None),
    };
    let receipt_confirmed = match confirmed {
        Some(confirmation) => Step {
            done: true,
            call_id: Some(confirmation.call_id),
            time: Some(confirmation.record.time),
            receipt: Some(confirmation.record.guid.clone()),
            evidence: format!(
                "receipt {} of call {} confirmed",
                confirmation.record.guid, confirmation.call_id
            ),
        },
        None => Step::missing(&format!("no receipt {whose} confirmed yet")),
    };
    Steps {
        call_received,
        identity_checked,
        receipt_confirmed,
        identity_call,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Outcome;

    fn call(user_identifier: Option<&str>) -> CallRecord {
        let headers = match user_identifier {
            Some(user) => serde_json::json!({
                "active_organisation": { "organisation_type": "8" },
                "request_user": { "user_identifier": user },
            }),
            None => serde_json::json!({ "active_organisation": { "organisation_type": "8" } }),
        };
        let mismatch = user_identifier.is_some_and(|u| u.trim() != "CVR:1-UUID:a");
        CallRecord {
            time: OffsetDateTime::UNIX_EPOCH,
            peer: "127.0.0.1:1".to_owned(),
            tls_version: "TLSv1.3".to_owned(),
            cipher_suite: "x".to_owned(),
            alpn: None,
            identity: Some(IdentityFields {
                caller_id: "CVR:1-UUID:a".to_owned(),
                kind: "organisation".to_owned(),
                cvr: Some("1".to_owned()),
                common_name: None,
                subject: "CN=a".to_owned(),
                issuer: "CN=ca".to_owned(),
                serial: "01".to_owned(),
                fingerprint: "ff".to_owned(),
                not_before: String::new(),
                not_after: String::new(),
            }),
            method: "POST".to_owned(),
            path: "/S/1/S.svc".to_owned(),
            soap_version: Some("1.1".to_owned()),
            soap_action: None,
            operation: Some("Op".to_owned()),
            operation_namespace: None,
            star_headers: Some(headers),
            request_body: Vec::new(),
            request_truncated: false,
            response_body: Vec::new(),
            response_truncated: false,
            http_status: 200,
            receipts: vec!["guid".to_owned()],
            outcome: Outcome::Receipt,
            detail: None,
            latency_micros: 1,
            scenario_file: None,
            scenario_rule: None,
            service: None,
            service_operation: None,
            findings: Vec::new(),
            supplier: None,
            authorization: Some("open".to_owned()),
            identity_findings: if mismatch {
                vec![crate::supplier::Finding {
                    check: "identity".to_owned(),
                    expected: "CVR:1-UUID:a".to_owned(),
                    found: user_identifier.unwrap_or_default().to_owned(),
                    message: "UserIdentifier differs".to_owned(),
                    code: 1012,
                }]
            } else if user_identifier.is_none() {
                vec![crate::supplier::Finding {
                    check: "request_user_metadata_header".to_owned(),
                    expected: "RequestUserMetadataHeader".to_owned(),
                    found: "(missing)".to_owned(),
                    message: "the RequestUserMetadataHeader is missing".to_owned(),
                    code: 8233,
                }]
            } else {
                Vec::new()
            },
        }
    }

    #[test]
    fn identity_compares_user_identifier_with_the_certificate() {
        let same = identity_comparison(&call(Some(" CVR:1-UUID:a "))).unwrap();
        assert!(same.matches);
        let other = identity_comparison(&call(Some("CVR:1-UUID:b"))).unwrap();
        assert!(!other.matches);
        assert_eq!(
            other.header_user_identifier.as_deref(),
            Some("CVR:1-UUID:b")
        );
        let mut anonymous = call(Some("CVR:1-UUID:a"));
        anonymous.identity = None;
        assert_eq!(identity_comparison(&anonymous), None);
    }

    #[test]
    fn checks_come_from_the_journaled_findings() {
        let checks = checks(&call(None));
        let by_check = |check: &str| checks.iter().find(|f| f.check == check).unwrap();
        assert!(by_check("active_organisation_header").passed);
        let missing = by_check("request_user_metadata_header");
        assert!(!missing.passed);
        assert_eq!(missing.code, Some(8233));
        assert!(by_check("identity").passed);
        let mut unchecked = call(Some("CVR:1-UUID:a"));
        unchecked.authorization = None;
        assert!(super::checks(&unchecked).iter().all(|c| !c.passed));
    }

    #[test]
    fn steps_follow_the_calls_and_the_confirmation() {
        let stored = StoredCall {
            id: 7,
            record: call(Some("CVR:1-UUID:a")),
        };
        let open = steps(Some(&stored), Some(&stored), None, "x");
        assert!(open.call_received.done && open.identity_checked.done);
        assert!(!open.receipt_confirmed.done && !open.complete());
        assert_eq!(open.call_received.receipt.as_deref(), Some("guid"));
        let confirmation = StoredConfirmation {
            call_id: 7,
            caller_id: Some("CVR:1-UUID:a".to_owned()),
            call_supplier: None,
            fingerprint: None,
            record: crate::journal::ConfirmationRecord {
                guid: "guid".to_owned(),
                time: OffsetDateTime::UNIX_EPOCH,
                note: None,
                supplier: None,
            },
        };
        assert!(steps(Some(&stored), Some(&stored), Some(&confirmation), "x").complete());
        let nothing = steps(None, None, None, "x");
        assert!(!nothing.call_received.done && !nothing.identity_checked.done);
        let wrong = StoredCall {
            id: 8,
            record: call(Some("CVR:1-UUID:b")),
        };
        let failing = steps(Some(&wrong), None, None, "x");
        assert!(failing.call_received.done && !failing.identity_checked.done);
        assert!(failing.identity_checked.evidence.contains("differs"));
    }
}

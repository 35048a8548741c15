//! STAR's three-step onboarding test, computed from the journal:
//! 1. a successful call (one answered with a receipt) to an allowed operation was received;
//! 2. its identity checks passed ([`crate::supplier::identity_findings`], journaled with each
//!    call): what the certificate says, what the headers say and what is registered, side by side;
//! 3. the supplier confirmed the receipt of *that* call (one of its own receipts).
//!
//! The three steps cite one call (see `evidence_steps`), so a newer call that fails the checks
//! does not hide an older one that passed, and a step never borrows another call's evidence.
//! With a supplier registry the status is kept per registered supplier ([`suppliers`]: what the
//! dashboard, `onboarding status` and the report show); in open mode (no registry) per
//! certificate caller id ([`callers`]). The per-call check list of the admin API ([`checks`]) is
//! read from the same journaled findings, never recomputed. The printable report is in
//! [`report`].

pub mod report;

use std::collections::HashMap;

use serde::Serialize;
use time::OffsetDateTime;

use crate::journal::{
    CallQuery, CallRecord, CallerSummary, CertificateSummary, IdentityFields, JournalError,
    JournalReader, StoredCall, StoredConfirmation, MAX_LIMIT,
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
    /// What the check expected and found, when it failed.
    pub expected: Option<String>,
    pub found: Option<String>,
    /// The DFDG code strict mode answers a failure with.
    pub code: Option<i64>,
}

/// One step of the test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub done: bool,
    /// Where the step stands, for the dashboard and the report to word in Danish or English.
    pub state: StepState,
    /// The call that is the evidence (or the latest attempt, when not done).
    pub call_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub time: Option<OffsetDateTime>,
    /// The receipt, for step 3 (and the receipt that could be confirmed, for step 1).
    pub receipt: Option<String>,
    /// What a person reads: why done, or what is missing.
    pub evidence: String,
}

/// Where a step stands. Steps 1 and 2 (and 3, once done) cite one call: the one the test
/// rests on (`evidence_steps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Step 1: the call was answered with a receipt.
    Received,
    /// Step 1: no call answered with a receipt yet.
    NoCall,
    /// Step 2: the call's identity checks all passed.
    Passed,
    /// Step 2: an identity check of the call failed (see its findings).
    Failed,
    /// Step 2: the call was answered before its identity was checked.
    NotChecked,
    /// Step 2 or 3: needs the step before it first.
    Waiting,
    /// Step 3: the call's receipt was confirmed.
    Confirmed,
    /// Step 3: a receipt was confirmed, but of a call that did not pass step 2 (cited).
    ConfirmedFailingCall,
    /// Step 3: the call's receipt is not confirmed yet.
    NotConfirmed,
}

impl Step {
    fn missing(state: StepState, evidence: &str) -> Step {
        Step {
            done: false,
            state,
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
    /// Calls journaled with the supplier's certificates (or the caller id's): the one count
    /// of a supplier's calls, the same on the dashboard, in `onboarding status` and the report.
    pub calls: usize,
    /// What the registry holds for it (allowed services, identities); `None` in open mode.
    pub registered: Option<RegisteredIdentity>,
    /// Its certificates seen in the journal, with their calls (empty in open mode).
    pub certificates: Vec<SeenCertificate>,
    pub call_received: Step,
    pub identity_checked: Step,
    pub identity: Option<IdentityEvidence>,
    pub receipt_confirmed: Step,
    /// The receipt a confirmation would complete the test with (steps 1 and 2 done on the
    /// call they cite, step 3 open): where the dashboard offers to confirm.
    pub confirmable: Option<String>,
    pub complete: bool,
}

/// One of a supplier's certificates as the journal saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeenCertificate {
    pub caller_id: String,
    pub fingerprint: String,
    /// RFC 3339 text, as journaled.
    pub not_after: String,
    pub calls: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// Revoked in the registry: its calls are refused with 1012.
    pub revoked: bool,
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
                expected: Some(finding.expected.clone()),
                found: Some(finding.found.clone()),
                code: Some(finding.code),
            },
            None if call.identity.is_none() => Check {
                check: name.to_owned(),
                passed: false,
                message: "no verified client certificate: no caller id to compare".to_owned(),
                expected: None,
                found: None,
                code: None,
            },
            None if !checked => Check {
                check: name.to_owned(),
                passed: false,
                message: "not checked: the call was refused before the identity checks".to_owned(),
                expected: None,
                found: None,
                code: None,
            },
            None => Check {
                check: name.to_owned(),
                passed: true,
                message: passed_message.to_owned(),
                expected: None,
                found: None,
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
            expected: Some(other.expected.clone()),
            found: Some(other.found.clone()),
            code: Some(other.code),
        });
    }
    checks
}

/// Every caller id seen in the journal with its three-step status, most recently seen first.
/// Reads one summary row per caller and the calls it cites: no call is scanned.
pub fn callers(reader: &impl JournalReader) -> Result<Vec<CallerStatus>, JournalError> {
    let mut callers = Vec::new();
    each_caller(reader, |status| callers.push(status))?;
    Ok(callers)
}

/// [`callers`], handing each status to `each` as soon as it is worked out, so that an answer
/// can be written without holding them all.
pub fn each_caller(
    reader: &impl JournalReader,
    mut each: impl FnMut(CallerStatus),
) -> Result<(), JournalError> {
    caller_evidence(reader, |evidence| each(evidence.status))
}

/// A caller's status and the call its steps cite.
struct CallerEvidence {
    status: CallerStatus,
    identity_call: Option<StoredCall>,
    confirmable: Option<String>,
}

/// Works out each caller's evidence, most recently seen first, and hands it to `each`. The
/// callers are taken [`CITED_AT_ONCE`] at a time, each batch's cited calls read and dropped
/// before the next: a journal of many callers is answered in bounded memory.
fn caller_evidence(
    reader: &impl JournalReader,
    mut each: impl FnMut(CallerEvidence),
) -> Result<(), JournalError> {
    let confirmations = reader.confirmations(MAX_LIMIT)?;
    // Newest first, as the journal lists them.
    let mut confirmed: HashMap<&str, Vec<&StoredConfirmation>> = HashMap::new();
    for confirmation in &confirmations {
        if let Some(caller) = confirmation.caller_id.as_deref() {
            confirmed.entry(caller).or_default().push(confirmation);
        }
    }
    let confirmations_of =
        |caller_id: &str| confirmed.get(caller_id).map_or(&[][..], Vec::as_slice);
    let mut summaries = reader.callers(MAX_CALLERS)?.into_iter().peekable();
    while summaries.peek().is_some() {
        let batch: Vec<CallerSummary> = summaries.by_ref().take(CITED_AT_ONCE).collect();
        let cited = Cited::read(
            reader,
            batch.iter().map(|summary| {
                (
                    summary.latest_receipt,
                    summary.latest_passed,
                    confirmations_of(&summary.caller_id),
                )
            }),
        )?;
        for summary in batch {
            let steps = evidence_steps(
                &cited,
                summary.latest_receipt,
                summary.latest_passed,
                confirmations_of(&summary.caller_id),
                "of this caller",
            );
            let identity = steps
                .call
                .as_ref()
                .and_then(|call| identity_comparison(&call.record));
            let supplier = steps
                .call
                .as_ref()
                .and_then(|call| call.record.supplier.clone());
            each(CallerEvidence {
                status: CallerStatus {
                    caller_id: summary.caller_id,
                    supplier,
                    cvr: summary.cvr,
                    calls: summary.calls,
                    first_seen: summary.first_seen,
                    last_seen: summary.last_seen,
                    complete: steps.complete(),
                    call_received: steps.call_received,
                    identity_checked: steps.identity_checked,
                    identity,
                    receipt_confirmed: steps.receipt_confirmed,
                },
                identity_call: steps.call,
                confirmable: steps.confirmable,
            });
        }
    }
    Ok(())
}

/// The three-step status of each registered supplier (registry order), or of each caller id
/// in open mode; `only` keeps the one named (supplier name or caller id, case-insensitive).
///
/// A supplier's calls are those of its certificates ([`Supplier::identities`], revoked ones
/// included), whatever the registry said when each call arrived: a call made just before the
/// supplier was registered counts once it is. This is the one count of "a supplier's calls"
/// that the dashboard, `onboarding status` and the report all show.
pub fn suppliers(
    reader: &impl JournalReader,
    registry: &Registry,
    only: Option<&str>,
) -> Result<Vec<SupplierStatus>, JournalError> {
    let mut statuses = Vec::new();
    each_supplier(reader, registry, only, |status| statuses.push(status))?;
    Ok(statuses)
}

/// [`suppliers`], handing each status to `each` as soon as it is worked out, so that an answer
/// can be written without holding them all.
pub fn each_supplier(
    reader: &impl JournalReader,
    registry: &Registry,
    only: Option<&str>,
    mut each: impl FnMut(SupplierStatus),
) -> Result<(), JournalError> {
    let wanted = |name: &str| only.is_none_or(|only| only.eq_ignore_ascii_case(name));
    if registry.is_open() {
        return caller_evidence(reader, |found| {
            let CallerEvidence {
                status: caller,
                identity_call,
                confirmable,
            } = found;
            if !wanted(&caller.caller_id) {
                return;
            }
            each(SupplierStatus {
                supplier: None,
                category: None,
                cvr: caller.cvr,
                caller_id: Some(caller.caller_id),
                calls: usize::try_from(caller.calls).unwrap_or(0),
                registered: None,
                certificates: Vec::new(),
                complete: caller.complete,
                identity: identity_call.as_ref().map(|call| evidence(call, None)),
                call_received: caller.call_received,
                identity_checked: caller.identity_checked,
                receipt_confirmed: caller.receipt_confirmed,
                confirmable,
            });
        });
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
    struct Subject<'a> {
        supplier: &'a Supplier,
        own: Vec<&'a CertificateSummary>,
        latest_receipt: Option<i64>,
        latest_passed: Option<i64>,
        confirmations: Vec<&'a StoredConfirmation>,
    }
    let mut subjects = Vec::new();
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
        let mine: Vec<&StoredConfirmation> = confirmations
            .iter()
            .filter(|c| {
                c.fingerprint
                    .as_deref()
                    .is_some_and(|f| own.iter().any(|o| o.identity.fingerprint == f))
            })
            .collect();
        subjects.push(Subject {
            supplier,
            latest_receipt: own.iter().filter_map(|c| c.latest_receipt).max(),
            latest_passed: own.iter().filter_map(|c| c.latest_passed).max(),
            own,
            confirmations: mine,
        });
    }
    // The cited calls of one batch of suppliers at a time, as for callers: a thousand
    // suppliers' calls are never held at once.
    for batch in subjects.chunks(CITED_AT_ONCE) {
        let cited = Cited::read(
            reader,
            batch.iter().map(|subject| {
                (
                    subject.latest_receipt,
                    subject.latest_passed,
                    &subject.confirmations[..],
                )
            }),
        )?;
        for subject in batch {
            let (supplier, own) = (subject.supplier, &subject.own);
            let calls: i64 = own.iter().map(|c| c.calls).sum();
            let steps = evidence_steps(
                &cited,
                subject.latest_receipt,
                subject.latest_passed,
                &subject.confirmations,
                "of this supplier",
            );
            let seen = own
                .iter()
                .map(|certificate| SeenCertificate {
                    caller_id: certificate.identity.caller_id.clone(),
                    fingerprint: certificate.identity.fingerprint.clone(),
                    not_after: certificate.identity.not_after.clone(),
                    calls: usize::try_from(certificate.calls).unwrap_or(0),
                    last_seen: certificate.last_seen,
                    revoked: supplier.revoked.iter().any(|known| {
                        crate::supplier::keys_match(
                            known,
                            &certificate.identity.caller_id,
                            &certificate.identity.fingerprint,
                        )
                    }),
                })
                .collect();
            each(SupplierStatus {
                supplier: Some(supplier.name.clone()),
                category: Some(supplier.category),
                cvr: Some(supplier.cvr.clone()),
                caller_id: steps
                    .call
                    .as_ref()
                    .and_then(|call| call.record.identity.as_ref())
                    .map(|identity| identity.caller_id.clone())
                    .or_else(|| supplier.identities.first().cloned()),
                calls: usize::try_from(calls).unwrap_or(0),
                registered: Some(RegisteredIdentity::from(supplier)),
                certificates: seen,
                complete: steps.complete(),
                identity: steps
                    .call
                    .as_ref()
                    .map(|call| evidence(call, Some(supplier))),
                call_received: steps.call_received,
                identity_checked: steps.identity_checked,
                receipt_confirmed: steps.receipt_confirmed,
                confirmable: steps.confirmable,
            });
        }
    }
    Ok(())
}

/// How many of the newest answered calls a `ServiceRequestLogReferenceIdentifier` is looked up
/// among (a receipt's `MessageIdentifier` is found by the journal's index, whatever its age).
pub const LOG_REFERENCE_SEARCH: usize = 10_000;

/// Why a confirmation is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmRefusal {
    #[error(
        "{0:?} is not a receipt GUID: give the MessageIdentifier of the answer's ServiceReceipt, or the answer's ServiceRequestLogReferenceIdentifier"
    )]
    NotAGuid(String),
    #[error("no supplier named {name:?} in the registry; registered: {known}")]
    UnknownSupplier { name: String, known: String },
    #[error(
        "the supplier registry is in force: name the supplier confirming (\"supplier\" in the JSON body, --supplier on the command line), so that only its own receipts count"
    )]
    SupplierNeeded,
    #[error(
        "unknown receipt {guid}: no call in the journal was answered with it, neither as the MessageIdentifier of its ServiceReceipt nor as its ServiceRequestLogReferenceIdentifier (looked up among the newest {LOG_REFERENCE_SEARCH} answered calls); check the GUID in the answer you got"
    )]
    UnknownReceipt { guid: String },
    #[error(
        "call {call_id} was answered with ServiceRequestLogReferenceIdentifier {guid} but carried no receipt to confirm"
    )]
    NoReceipt { guid: String, call_id: i64 },
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

impl ConfirmRefusal {
    /// A stable name of the refusal, for the dashboard to say it in the page's language.
    pub fn kind(&self) -> &'static str {
        match self {
            ConfirmRefusal::NotAGuid(_) => "not_a_guid",
            ConfirmRefusal::UnknownSupplier { .. } => "unknown_supplier",
            ConfirmRefusal::SupplierNeeded => "supplier_needed",
            ConfirmRefusal::UnknownReceipt { .. } => "unknown_receipt",
            ConfirmRefusal::NoReceipt { .. } => "no_receipt",
            ConfirmRefusal::ForeignReceipt { .. } => "foreign_receipt",
            ConfirmRefusal::Journal(_) => "journal",
        }
    }
}

/// A confirmation ready for the journal, and what it confirms.
#[derive(Debug, Clone)]
pub struct Confirmation {
    /// The receipt confirmed: the call's own (its MessageIdentifier, or for an answer without a
    /// ServiceReceipt its ServiceRequestLogReferenceIdentifier).
    pub record: crate::journal::ConfirmationRecord,
    /// The call that sent it.
    pub call_id: i64,
    /// The other id of the same answer, when that is what was given.
    pub given: Option<String>,
}

/// The `ServiceRequestLogReferenceIdentifier` in a journaled answer, if it has one (whatever
/// its namespace prefix).
pub fn log_reference(call: &CallRecord) -> Option<&str> {
    const NAME: &[u8] = b"ServiceRequestLogReferenceIdentifier";
    let body = &call.response_body;
    let mut from = 0;
    while let Some(found) = find(&body[from..], NAME) {
        let at = from + found;
        from = at + NAME.len();
        // An opening tag: `<`, an optional `prefix:`, the name, then `>` or attributes.
        let Some(open) = body[..at].iter().rposition(|b| *b == b'<') else {
            continue;
        };
        let prefix = &body[open + 1..at];
        let prefix_ok = prefix.is_empty()
            || (prefix.ends_with(b":")
                && prefix
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(b)));
        let ends = body
            .get(from)
            .is_some_and(|b| *b == b'>' || b.is_ascii_whitespace());
        if !prefix_ok || !ends {
            continue;
        }
        let Some(close) = body[from..].iter().position(|b| *b == b'>') else {
            break;
        };
        let text = &body[from + close + 1..];
        let end = text.iter().position(|b| *b == b'<').unwrap_or(text.len());
        if let Ok(text) = std::str::from_utf8(&text[..end]) {
            let text = text.trim();
            if !text.is_empty() {
                return Some(text);
            }
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The call a confirmation names: by its receipt (the journal's index), else by the
/// `ServiceRequestLogReferenceIdentifier` of its answer among the newest answered calls.
fn call_of(
    reader: &impl JournalReader,
    guid: &str,
) -> Result<Option<(StoredCall, bool)>, JournalError> {
    if let Some(call) = reader.call_by_receipt(guid)? {
        return Ok(Some((call, false)));
    }
    let query = CallQuery {
        outcome: Some("receipt".to_owned()),
        limit: 200,
        ..CallQuery::default()
    };
    let mut page = query.clone();
    let mut searched = 0;
    while searched < LOG_REFERENCE_SEARCH {
        let calls = reader.calls(&page)?;
        for call in &calls {
            if log_reference(&call.record).is_some_and(|r| r.eq_ignore_ascii_case(guid)) {
                return Ok(Some((call.clone(), true)));
            }
        }
        searched += calls.len();
        match calls.last() {
            Some(last) if calls.len() == page.limit => page.before_id = Some(last.id),
            _ => break,
        }
    }
    Ok(None)
}

/// Checks a confirmation request: the GUID's shape; the call it names, by either id of its
/// answer (the receipt, or the answer's `ServiceRequestLogReferenceIdentifier`: the call's
/// receipt is what gets confirmed); the supplier (required and known with a registry, only
/// noted in open mode), and that the receipt went to one of that supplier's certificates.
pub fn confirmation(
    reader: &impl JournalReader,
    registry: &Registry,
    guid: &str,
    supplier: Option<&str>,
    note: Option<String>,
    time: OffsetDateTime,
) -> Result<Confirmation, ConfirmRefusal> {
    let guid = guid.trim();
    if guid.is_empty()
        || guid.len() > 64
        || !guid.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        return Err(ConfirmRefusal::NotAGuid(guid.to_owned()));
    }
    let supplier = supplier.map(str::trim).filter(|s| !s.is_empty());
    // The supplier first: naming it is required whatever the receipt.
    let registered = if registry.is_open() {
        None
    } else {
        let name = supplier.ok_or(ConfirmRefusal::SupplierNeeded)?;
        Some(registry.get(name).ok_or_else(|| {
            ConfirmRefusal::UnknownSupplier {
                name: name.to_owned(),
                known: registry
                    .suppliers()
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?)
    };
    let (call, by_log_reference) =
        call_of(reader, guid)?.ok_or_else(|| ConfirmRefusal::UnknownReceipt {
            guid: guid.to_owned(),
        })?;
    let receipt = if by_log_reference {
        call.record
            .receipts
            .first()
            .cloned()
            .ok_or(ConfirmRefusal::NoReceipt {
                guid: guid.to_owned(),
                call_id: call.id,
            })?
    } else {
        // As journaled (the GUID given may differ in case).
        call.record
            .receipts
            .iter()
            .find(|r| r.eq_ignore_ascii_case(guid))
            .cloned()
            .unwrap_or_else(|| guid.to_owned())
    };
    let (supplier, note) = match registered {
        None => {
            // No suppliers to own receipts: note who said they confirmed.
            let note = match (note, supplier) {
                (Some(note), _) => Some(note),
                (None, Some(name)) => Some(format!("confirmed by {name}")),
                (None, None) => None,
            };
            (None, note)
        }
        Some(registered) => {
            let identity = call.record.identity.as_ref();
            let owns = |s: &Supplier| {
                identity.is_some_and(|identity| {
                    s.owns_identity(&identity.caller_id, &identity.fingerprint)
                })
            };
            if !owns(registered) {
                return Err(ConfirmRefusal::ForeignReceipt {
                    guid: receipt,
                    supplier: registered.name.clone(),
                    owner: registry
                        .suppliers()
                        .iter()
                        .find(|s| owns(s))
                        .map(|s| s.name.clone()),
                });
            }
            (Some(registered.name.clone()), note)
        }
    };
    Ok(Confirmation {
        given: (!receipt.eq_ignore_ascii_case(guid)).then(|| guid.to_owned()),
        record: crate::journal::ConfirmationRecord {
            guid: receipt,
            time,
            note,
            supplier,
        },
        call_id: call.id,
    })
}

fn evidence(call: &StoredCall, supplier: Option<&Supplier>) -> IdentityEvidence {
    IdentityEvidence {
        call_id: call.id,
        certificate: call.record.identity.as_deref().cloned(),
        headers: header_identity(&call.record),
        registered: supplier.map(RegisteredIdentity::from),
        findings: call.record.identity_findings.clone(),
    }
}

/// The three steps, the call they cite, and the receipt a confirmation would complete them with.
struct Steps {
    call_received: Step,
    identity_checked: Step,
    receipt_confirmed: Step,
    /// The call the test rests on: the one that passed step 2, else the latest attempt.
    call: Option<StoredCall>,
    /// Steps 1 and 2 done, 3 open: the cited call's receipt, which a confirmation would
    /// complete the test with.
    confirmable: Option<String>,
}

impl Steps {
    fn complete(&self) -> bool {
        self.call_received.done && self.identity_checked.done && self.receipt_confirmed.done
    }
}

/// Confirmations read back to find one of a call that passed step 2.
const CONFIRMATIONS_READ: usize = 50;

/// The calls the steps of many subjects may cite, read in a few batches
/// ([`JournalReader::calls_by_id`]: one query where a round trip costs) before their steps
/// are worked out.
struct Cited(HashMap<i64, StoredCall>);

/// How many cited calls [`Cited::add`] reads with their bodies at once.
const CITED_AT_ONCE: usize = 64;

impl Cited {
    /// The calls each subject's steps may cite, read as [`evidence_steps`] would ask for them:
    /// its newest confirmed ones (at most [`CONFIRMATIONS_READ`]) and its newest call that
    /// passed, then, only for the subjects none of those completes, the newest with a receipt.
    /// Subjects are given as (latest receipt, latest passed, confirmations).
    fn read<'a>(
        reader: &impl JournalReader,
        subjects: impl Iterator<Item = (Option<i64>, Option<i64>, &'a [&'a StoredConfirmation])>,
    ) -> Result<Cited, JournalError> {
        let subjects: Vec<_> = subjects.collect();
        let mut cited = Cited(HashMap::new());
        let first = subjects
            .iter()
            .flat_map(|(_, latest_passed, confirmations)| {
                confirmations
                    .iter()
                    .take(CONFIRMATIONS_READ)
                    .map(|c| c.call_id)
                    .chain(*latest_passed)
            })
            .collect();
        cited.add(reader, first)?;
        let passing = |id: i64| cited.0.get(&id).is_some_and(passes);
        let then = subjects
            .iter()
            .filter(|(_, latest_passed, confirmations)| {
                !confirmations
                    .iter()
                    .take(CONFIRMATIONS_READ)
                    .any(|c| passing(c.call_id))
                    && !latest_passed.is_some_and(passing)
            })
            .filter_map(|(latest_receipt, _, _)| *latest_receipt)
            .filter(|id| !cited.0.contains_key(id))
            .collect();
        cited.add(reader, then)?;
        Ok(cited)
    }

    /// Reads `ids` [`CITED_AT_ONCE`] at a time and keeps them without their bodies, which no
    /// step reads: a thousand callers' cited calls then take a few MiB at most, not one
    /// decompressed request and answer each held at once.
    fn add(&mut self, reader: &impl JournalReader, mut ids: Vec<i64>) -> Result<(), JournalError> {
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(CITED_AT_ONCE) {
            self.0
                .extend(reader.calls_by_id(chunk)?.into_iter().map(|mut call| {
                    call.record.request_body = bytes::Bytes::new();
                    call.record.response_body = bytes::Bytes::new();
                    (call.id, call)
                }));
        }
        Ok(())
    }

    fn call(&self, id: i64) -> Option<StoredCall> {
        self.0.get(&id).cloned()
    }
}

/// Whether a call passes steps 1 and 2: answered with a receipt, every identity check passed.
fn passes(call: &StoredCall) -> bool {
    call.record.outcome == crate::journal::Outcome::Receipt && call.record.identity_passed()
}

/// The three steps of one subject (a supplier, or a caller id in open mode), all citing one
/// call: a call that passed the identity checks and whose receipt was confirmed completes the
/// test; else the newest call that passed them (step 3 open: confirm its receipt); else the
/// newest call answered with a receipt (step 2 failed on it); else none. `confirmations` are
/// the subject's, newest first.
fn evidence_steps(
    cited: &Cited,
    latest_receipt: Option<i64>,
    latest_passed: Option<i64>,
    confirmations: &[&StoredConfirmation],
    whose: &str,
) -> Steps {
    let mut confirmed_elsewhere = None;
    for confirmation in confirmations.iter().take(CONFIRMATIONS_READ) {
        match cited.call(confirmation.call_id) {
            Some(call) if passes(&call) => {
                let receipt_confirmed = Step {
                    done: true,
                    state: StepState::Confirmed,
                    call_id: Some(call.id),
                    time: Some(confirmation.record.time),
                    receipt: Some(confirmation.record.guid.clone()),
                    evidence: format!(
                        "receipt {} of call {} confirmed",
                        confirmation.record.guid, call.id
                    ),
                };
                return Steps {
                    call_received: received(&call),
                    identity_checked: passed(&call),
                    receipt_confirmed,
                    call: Some(call),
                    confirmable: None,
                };
            }
            _ => {
                confirmed_elsewhere.get_or_insert(*confirmation);
            }
        }
    }
    let passing = latest_passed.and_then(|id| cited.call(id)).filter(passes);
    if let Some(call) = passing {
        let receipt_confirmed = match confirmed_elsewhere {
            Some(other) => Step {
                done: false,
                state: StepState::ConfirmedFailingCall,
                call_id: Some(other.call_id),
                time: Some(other.record.time),
                receipt: Some(other.record.guid.clone()),
                evidence: format!(
                    "receipt {} of call {} was confirmed, but call {} did not pass the identity checks: confirm the receipt of call {}",
                    other.record.guid, other.call_id, other.call_id, call.id
                ),
            },
            None => Step {
                call_id: Some(call.id),
                ..Step::missing(
                    StepState::NotConfirmed,
                    &format!(
                        "the receipt of call {} is not confirmed yet (no receipt {whose} is)",
                        call.id
                    ),
                )
            },
        };
        return Steps {
            call_received: received(&call),
            identity_checked: passed(&call),
            receipt_confirmed,
            confirmable: call.record.receipts.first().cloned(),
            call: Some(call),
        };
    }
    let Some(call) = latest_receipt.and_then(|id| cited.call(id)) else {
        return Steps {
            call_received: Step::missing(StepState::NoCall, "no call answered with a receipt yet"),
            identity_checked: Step::missing(StepState::Waiting, "needs a successful call first"),
            receipt_confirmed: Step::missing(
                StepState::Waiting,
                "needs a call that passed the identity checks first",
            ),
            call: None,
            confirmable: None,
        };
    };
    let why: Vec<&str> = call
        .record
        .identity_findings
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    let identity_checked = Step {
        done: false,
        state: if why.is_empty() {
            StepState::NotChecked
        } else {
            StepState::Failed
        },
        call_id: Some(call.id),
        time: Some(call.record.time),
        receipt: None,
        evidence: if why.is_empty() {
            format!("call {}: the identity checks did not run", call.id)
        } else {
            format!("call {}: {}", call.id, why.join("; "))
        },
    };
    Steps {
        call_received: received(&call),
        identity_checked,
        receipt_confirmed: Step {
            call_id: Some(call.id),
            ..Step::missing(
                StepState::Waiting,
                "needs a call that passed the identity checks first",
            )
        },
        call: Some(call),
        confirmable: None,
    }
}

/// Step 1, done by `call`.
fn received(call: &StoredCall) -> Step {
    Step {
        done: true,
        state: StepState::Received,
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
    }
}

/// Step 2, done by `call`.
fn passed(call: &StoredCall) -> Step {
    Step {
        done: true,
        state: StepState::Passed,
        call_id: Some(call.id),
        time: Some(call.record.time),
        receipt: None,
        evidence: format!(
            "call {}: the headers name the certificate's caller id and every identity check passed",
            call.id
        ),
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
            identity: Some(std::sync::Arc::new(IdentityFields {
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
            })),
            method: "POST".to_owned(),
            path: "/S/1/S.svc".to_owned(),
            soap_version: Some("1.1".to_owned()),
            soap_action: None,
            operation: Some("Op".to_owned()),
            operation_namespace: None,
            star_headers: Some(headers),
            request_body: bytes::Bytes::new(),
            request_truncated: false,
            response_body: bytes::Bytes::new(),
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
    fn the_log_reference_is_read_whatever_the_prefix() {
        let mut record = call(Some("CVR:1-UUID:a"));
        for (body, expected) in [
            ("<a:R xmlns:a=\"x\"><a:ServiceRequestLogReferenceIdentifier>\n 5b0c-1 </a:ServiceRequestLogReferenceIdentifier></a:R>", Some("5b0c-1")),
            ("<R><ServiceRequestLogReferenceIdentifier xmlns=\"y\">abc</ServiceRequestLogReferenceIdentifier></R>", Some("abc")),
            ("<R><Message>no ServiceRequestLogReferenceIdentifier here</Message></R>", None),
            ("<R><ServiceRequestLogReferenceIdentifierX>1</ServiceRequestLogReferenceIdentifierX></R>", None),
            ("", None),
        ] {
            record.response_body = body.as_bytes().to_vec().into();
            assert_eq!(log_reference(&record), expected, "{body}");
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
}

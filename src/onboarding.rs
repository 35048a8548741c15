//! STAR's three-step onboarding test, computed from the journal, per caller:
//! 1. a successful call (one answered with a receipt) was received;
//! 2. its identity check passed: `RequestUserMetadataHeader/UserIdentifier` equals the caller id
//!    read from the client certificate (both shown side by side);
//! 3. the caller confirmed one of *its own* receipts.
//!
//! Also the per-call header findings shown next to a call. Today a "caller" is a certificate
//! caller id seen in the journal; the supplier registry (issue 5) will group caller ids into
//! suppliers and add its own checks here, in [`callers`] and [`findings`].

use serde::Serialize;
use time::OffsetDateTime;

use crate::journal::{
    CallQuery, CallRecord, JournalError, JournalReader, StoredCall, StoredConfirmation, MAX_LIMIT,
};

/// The most callers listed.
pub const MAX_CALLERS: usize = 500;

/// How many of a caller's latest successful calls are searched for one that passes step 2.
pub const CALLS_SEARCHED: usize = 50;

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

/// One check on one call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// "identity", "active_organisation_header", "request_user_metadata_header".
    pub check: &'static str,
    pub passed: bool,
    /// What was found, in English.
    pub message: String,
}

/// One step of the test for one caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub done: bool,
    /// The call that is the evidence (or the latest attempt, when not done).
    pub call_id: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub time: Option<OffsetDateTime>,
    /// The receipt, for step 3 (and the receipts that could be confirmed, for step 1).
    pub receipt: Option<String>,
    /// What a person reads: why done, or what is missing.
    pub evidence: String,
}

/// A caller and where it stands in the test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerStatus {
    pub caller_id: String,
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

/// The identity comparison of a call, if it had a certificate identity.
pub fn identity_comparison(call: &CallRecord) -> Option<IdentityComparison> {
    let identity = call.identity.as_ref()?;
    let header_user_identifier = call
        .star_headers
        .as_ref()
        .and_then(|headers| headers.get("request_user"))
        .and_then(|user| user.get("user_identifier"))
        .and_then(|value| value.as_str())
        .map(|text| text.trim().to_owned());
    Some(IdentityComparison {
        matches: header_user_identifier.as_deref() == Some(identity.caller_id.as_str()),
        certificate_caller_id: identity.caller_id.clone(),
        header_user_identifier,
    })
}

/// The header findings of a call, as a systemforvalter would check them.
pub fn findings(call: &CallRecord) -> Vec<Finding> {
    let mut findings = Vec::new();
    let headers = call.star_headers.as_ref();
    let present = |name: &str| headers.and_then(|h| h.get(name)).is_some();
    findings.push(Finding {
        check: "active_organisation_header",
        passed: present("active_organisation"),
        message: if present("active_organisation") {
            "ActiveOrganisationHeader present".to_owned()
        } else {
            "ActiveOrganisationHeader missing (DFDG answers 8232)".to_owned()
        },
    });
    findings.push(Finding {
        check: "request_user_metadata_header",
        passed: present("request_user"),
        message: if present("request_user") {
            "RequestUserMetadataHeader present".to_owned()
        } else {
            "RequestUserMetadataHeader missing (DFDG answers 8233)".to_owned()
        },
    });
    match identity_comparison(call) {
        None => findings.push(Finding {
            check: "identity",
            passed: false,
            message: "no verified client certificate: no caller id to compare".to_owned(),
        }),
        Some(comparison) => findings.push(Finding {
            check: "identity",
            passed: comparison.matches,
            message: match (&comparison.header_user_identifier, comparison.matches) {
                (_, true) => format!(
                    "UserIdentifier equals the certificate's caller id {}",
                    comparison.certificate_caller_id
                ),
                (None, false) => format!(
                    "no UserIdentifier in RequestUserMetadataHeader; a system call sets it to the certificate's caller id {}",
                    comparison.certificate_caller_id
                ),
                (Some(header), false) => format!(
                    "UserIdentifier {header:?} differs from the certificate's caller id {}",
                    comparison.certificate_caller_id
                ),
            },
        }),
    }
    findings
}

/// Every caller seen in the journal with its three-step status, most recently seen first.
pub fn callers(reader: &impl JournalReader) -> Result<Vec<CallerStatus>, JournalError> {
    let confirmations = reader.confirmations(MAX_LIMIT)?;
    reader
        .callers(MAX_CALLERS)?
        .into_iter()
        .map(|summary| {
            let successes = reader.calls(&CallQuery {
                caller: Some(summary.caller_id.clone()),
                outcome: Some("receipt".to_owned()),
                limit: CALLS_SEARCHED,
                ..CallQuery::default()
            })?;
            // The caller filter also matches a CVR; keep this caller id's calls only.
            let successes: Vec<&StoredCall> = successes
                .iter()
                .filter(|call| {
                    call.record.identity.as_ref().map(|i| i.caller_id.as_str())
                        == Some(summary.caller_id.as_str())
                })
                .collect();
            let confirmed = confirmations
                .iter()
                .find(|c| c.caller_id.as_deref() == Some(summary.caller_id.as_str()));
            let status = status(summary.caller_id.clone(), &successes, confirmed);
            Ok(CallerStatus {
                cvr: summary.cvr,
                calls: summary.calls,
                first_seen: summary.first_seen,
                last_seen: summary.last_seen,
                ..status
            })
        })
        .collect()
}

/// The three steps from a caller's latest successful calls (newest first) and its confirmation.
fn status(
    caller_id: String,
    successes: &[&StoredCall],
    confirmed: Option<&StoredConfirmation>,
) -> CallerStatus {
    let latest = successes.first();
    let call_received = match latest {
        Some(call) => Step {
            done: true,
            call_id: Some(call.id),
            time: Some(call.record.time),
            receipt: call.record.receipts.first().cloned(),
            evidence: format!(
                "call {} ({}) answered with a receipt",
                call.id,
                call.record.operation.as_deref().unwrap_or("?")
            ),
        },
        None => Step {
            done: false,
            call_id: None,
            time: None,
            receipt: None,
            evidence: "no call answered with a receipt yet".to_owned(),
        },
    };
    let passing = successes.iter().find(|call| {
        identity_comparison(&call.record).is_some_and(|comparison| comparison.matches)
    });
    let (identity_checked, identity) = match (passing, latest) {
        (Some(call), _) => (
            Step {
                done: true,
                call_id: Some(call.id),
                time: Some(call.record.time),
                receipt: None,
                evidence: format!(
                    "call {}: UserIdentifier equals the certificate's caller id",
                    call.id
                ),
            },
            identity_comparison(&call.record),
        ),
        (None, Some(call)) => {
            let comparison = identity_comparison(&call.record);
            (
                Step {
                    done: false,
                    call_id: Some(call.id),
                    time: Some(call.record.time),
                    receipt: None,
                    evidence: format!(
                        "call {}: UserIdentifier {} does not equal the certificate's caller id",
                        call.id,
                        comparison
                            .as_ref()
                            .and_then(|c| c.header_user_identifier.as_deref())
                            .map_or("(missing)".to_owned(), |u| format!("{u:?}"))
                    ),
                },
                comparison,
            )
        }
        (None, None) => (
            Step {
                done: false,
                call_id: None,
                time: None,
                receipt: None,
                evidence: "needs a successful call first".to_owned(),
            },
            None,
        ),
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
        None => Step {
            done: false,
            call_id: None,
            time: None,
            receipt: None,
            evidence: "no receipt of this caller confirmed yet".to_owned(),
        },
    };
    let complete = call_received.done && identity_checked.done && receipt_confirmed.done;
    let epoch = OffsetDateTime::UNIX_EPOCH;
    CallerStatus {
        caller_id,
        cvr: None,
        calls: 0,
        first_seen: epoch,
        last_seen: epoch,
        call_received,
        identity_checked,
        identity,
        receipt_confirmed,
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{IdentityFields, Outcome};

    fn call(user_identifier: Option<&str>) -> CallRecord {
        let headers = match user_identifier {
            Some(user) => serde_json::json!({
                "active_organisation": { "organisation_type": "8" },
                "request_user": { "user_identifier": user },
            }),
            None => serde_json::json!({ "active_organisation": { "organisation_type": "8" } }),
        };
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
    fn findings_name_missing_headers_with_their_dfdg_codes() {
        let findings = findings(&call(None));
        let by_check = |check: &str| findings.iter().find(|f| f.check == check).unwrap();
        assert!(by_check("active_organisation_header").passed);
        let missing = by_check("request_user_metadata_header");
        assert!(!missing.passed);
        assert!(missing.message.contains("8233"));
        assert!(!by_check("identity").passed);
    }

    #[test]
    fn steps_follow_the_calls_and_the_confirmation() {
        let stored = StoredCall {
            id: 7,
            record: call(Some("CVR:1-UUID:a")),
        };
        let open = status("CVR:1-UUID:a".to_owned(), &[&stored], None);
        assert!(open.call_received.done && open.identity_checked.done);
        assert!(!open.receipt_confirmed.done && !open.complete);
        assert_eq!(open.call_received.receipt.as_deref(), Some("guid"));
        let confirmation = StoredConfirmation {
            call_id: 7,
            caller_id: Some("CVR:1-UUID:a".to_owned()),
            record: crate::journal::ConfirmationRecord {
                guid: "guid".to_owned(),
                time: OffsetDateTime::UNIX_EPOCH,
                note: None,
            },
        };
        let confirmed = status("CVR:1-UUID:a".to_owned(), &[&stored], Some(&confirmation));
        assert!(confirmed.complete);
        let nothing = status("CVR:1-UUID:a".to_owned(), &[], None);
        assert!(!nothing.call_received.done && !nothing.identity_checked.done);
    }
}

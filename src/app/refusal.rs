//! Everything the mock refuses (or fails at) while answering a call, as one enum, and the one
//! exhaustive mapping of each to the HTTP status and the SOAP fault it is answered with
//! ([`Refusal::answer`]); the fault is rendered in the caller's SOAP version.

use http::StatusCode;

use crate::encoding::{EncodingProblem, EncodingProblemKind};
use crate::soap::{EnvelopeProblem, Fault, FaultParty, SoapVersion};
use crate::wsdl::validate::Finding;
use crate::wsdl::{MissingHeader, RouteProblem};

/// DFDG's code for "client certificate missing".
pub const CODE_CERTIFICATE_MISSING: i64 = 1101;
/// DFDG's code for "logon failed".
pub const CODE_LOGON_FAILED: i64 = 1012;
/// DFDG's code for "message not valid".
pub const CODE_MESSAGE_NOT_VALID: i64 = 1014;
/// DFDG's code for "internal error".
pub const CODE_INTERNAL_ERROR: i64 = 1011;

/// Why a call is not answered the way it asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request body is larger than this server accepts (see --max-body)")]
    BodyTooLarge,
    #[error("the request body did not arrive in time (see --body-timeout)")]
    BodyTooSlow,
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// `diagnose` mode: the handshake let a connection without a certificate through.
    #[error("Client certificate missing: {0}")]
    CertificateMissing(String),
    /// `diagnose` mode: the certificate would have been refused (expired, foreign CA, …).
    #[error("Logon failed: {0}")]
    CertificateRefused(String),
    #[error("the request has no Content-Type: send text/xml for SOAP 1.1 or application/soap+xml for SOAP 1.2")]
    NoContentType,
    #[error("Content-Type '{0}' is not SOAP: send text/xml for SOAP 1.1 or application/soap+xml for SOAP 1.2")]
    NotSoap(String),
    /// The body is not text we read, or not a SOAP envelope.
    #[error("{}", envelope_message(.0))]
    NotAnEnvelope(EnvelopeProblem),
    #[error("a {envelope} envelope must be sent as {}, not as {media_type}", .envelope.media_type())]
    VersionMismatch {
        envelope: SoapVersion,
        media_type: String,
    },
    /// The catalog has no such path, SOAP version or operation.
    #[error("{0}")]
    Route(RouteProblem),
    /// `enforce`: a STAR header the operation declares is missing (8232, 8233).
    #[error("{}", .0.message)]
    MissingStarHeader(MissingHeader),
    /// `enforce`: the request departs from its schema, or its SOAPAction from its operation.
    #[error("{}", not_valid_message(.0))]
    NotValid(Vec<Finding>),
    /// The registry refuses the caller or the call (1012, 1013, 4575).
    #[error("{reason}")]
    Unauthorized { code: i64, reason: String },
    /// Strict mode: the first identity check that did not pass.
    #[error("Identity check failed (strict mode): {message}")]
    Identity { code: i64, message: String },
    /// A scenario rule's template failed at render time.
    #[error("scenario rule {rule} failed: {problem}")]
    ScenarioBroken { rule: String, problem: String },
    /// The journal did not commit the call, so nothing may be answered as if it had.
    #[error("the mock's journal could not record this call, so no receipt was issued: {0}")]
    JournalUnavailable(String),
}

impl Refusal {
    /// The HTTP status and the SOAP fault this refusal is answered with in `version`.
    pub fn answer(&self, version: SoapVersion) -> (StatusCode, Fault) {
        let reason = self.to_string();
        let caller = |code| Fault::dfdg(FaultParty::Caller, code, reason.clone());
        let (status, fault) = match self {
            Refusal::BodyTooLarge => (Some(StatusCode::PAYLOAD_TOO_LARGE), Fault::caller(reason)),
            Refusal::BodyTooSlow => (Some(StatusCode::REQUEST_TIMEOUT), Fault::caller(reason)),
            Refusal::BodyUnreadable(_) => (Some(StatusCode::BAD_REQUEST), Fault::caller(reason)),
            Refusal::CertificateMissing(_) => (None, caller(CODE_CERTIFICATE_MISSING)),
            Refusal::CertificateRefused(_) => (None, caller(CODE_LOGON_FAILED)),
            Refusal::NoContentType
            | Refusal::NotSoap(_)
            | Refusal::NotAnEnvelope(EnvelopeProblem::Encoding(EncodingProblem {
                kind: EncodingProblemKind::Unknown { .. },
                ..
            }))
            | Refusal::VersionMismatch { .. } => (
                Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
                Fault::caller(reason),
            ),
            Refusal::NotAnEnvelope(_) => (
                Some(StatusCode::BAD_REQUEST),
                caller(CODE_MESSAGE_NOT_VALID),
            ),
            Refusal::Route(RouteProblem::UnknownPath { .. }) => {
                (Some(StatusCode::NOT_FOUND), Fault::caller(reason))
            }
            Refusal::Route(_) => (None, Fault::caller(reason)),
            Refusal::MissingStarHeader(missing) => (None, caller(missing.code)),
            Refusal::NotValid(_) => (None, caller(CODE_MESSAGE_NOT_VALID)),
            Refusal::Unauthorized { code, .. } | Refusal::Identity { code, .. } => {
                (None, caller(*code))
            }
            Refusal::ScenarioBroken { .. } => (
                None,
                Fault::dfdg(FaultParty::Service, CODE_INTERNAL_ERROR, reason),
            ),
            Refusal::JournalUnavailable(_) => (
                Some(StatusCode::INTERNAL_SERVER_ERROR),
                Fault::dfdg(FaultParty::Service, CODE_INTERNAL_ERROR, reason),
            ),
        };
        let status = status.unwrap_or_else(|| {
            StatusCode::from_u16(fault.http_status(version))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        });
        (status, fault)
    }
}

/// DFDG's 1014 text for a body that is no envelope; an unknown charset is a matter of the media
/// type.
fn envelope_message(problem: &EnvelopeProblem) -> String {
    match problem {
        EnvelopeProblem::Encoding(EncodingProblem {
            kind: EncodingProblemKind::Unknown { .. },
            ..
        }) => problem.to_string(),
        _ => format!("Message not valid: {problem}"),
    }
}

/// DFDG's 1014 text listing the first findings (schema, SOAPAction).
fn not_valid_message(findings: &[Finding]) -> String {
    const SHOWN: usize = 5;
    let mut message = format!(
        "Message not valid: {} finding{} against the WSDL: ",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refusal, for the mapping's table test.
    fn every_refusal() -> Vec<Refusal> {
        vec![
            Refusal::BodyTooLarge,
            Refusal::BodyTooSlow,
            Refusal::BodyUnreadable("reset".into()),
            Refusal::CertificateMissing("no certificate".into()),
            Refusal::CertificateRefused("expired".into()),
            Refusal::NoContentType,
            Refusal::NotSoap("application/json".into()),
            Refusal::NotAnEnvelope(EnvelopeProblem::Encoding(EncodingProblem {
                offset: 0,
                line: 1,
                kind: EncodingProblemKind::Unknown {
                    label: "latin9x".into(),
                },
            })),
            Refusal::NotAnEnvelope(EnvelopeProblem::Empty),
            Refusal::VersionMismatch {
                envelope: SoapVersion::V12,
                media_type: "text/xml".into(),
            },
            Refusal::Route(RouteProblem::UnknownPath { served: vec![] }),
            Refusal::Route(RouteProblem::VersionMismatch {
                service: "S".into(),
                speaks: vec![SoapVersion::V11],
                got: SoapVersion::V12,
            }),
            Refusal::MissingStarHeader(MissingHeader {
                code: 8232,
                message: "missing".into(),
            }),
            Refusal::NotValid(vec![Finding {
                path: "/Op".into(),
                expected: "a".into(),
                found: "b".into(),
            }]),
            Refusal::Unauthorized {
                code: 1013,
                reason: "not allowed".into(),
            },
            Refusal::Identity {
                code: 8174,
                message: "user type".into(),
            },
            Refusal::ScenarioBroken {
                rule: "a.toml#x".into(),
                problem: "boom".into(),
            },
            Refusal::JournalUnavailable("disk full".into()),
        ]
    }

    #[test]
    fn each_refusal_has_its_status_and_fault_in_both_versions() {
        let expected: [(u16, u16, Option<i64>, &str); 18] = [
            (413, 413, None, "Client"),
            (408, 408, None, "Client"),
            (400, 400, None, "Client"),
            (500, 400, Some(1101), "Client"),
            (500, 400, Some(1012), "Client"),
            (415, 415, None, "Client"),
            (415, 415, None, "Client"),
            (415, 415, None, "Client"),
            (400, 400, Some(1014), "Client"),
            (415, 415, None, "Client"),
            (404, 404, None, "Client"),
            (500, 400, None, "Client"),
            (500, 400, Some(8232), "Client"),
            (500, 400, Some(1014), "Client"),
            (500, 400, Some(1013), "Client"),
            (500, 400, Some(8174), "Client"),
            (500, 500, Some(1011), "Server"),
            (500, 500, Some(1011), "Server"),
        ];
        for (refusal, (v11, v12, code, party)) in every_refusal().iter().zip(expected) {
            let (status, fault) = refusal.answer(SoapVersion::V11);
            assert_eq!(status.as_u16(), v11, "{refusal:?}");
            assert_eq!(fault.dfdg.as_ref().map(|d| d.code), code, "{refusal:?}");
            assert_eq!(fault.party.code(SoapVersion::V11), party, "{refusal:?}");
            assert_eq!(fault.reason, refusal.to_string());
            let (status, fault) = refusal.answer(SoapVersion::V12);
            assert_eq!(status.as_u16(), v12, "{refusal:?}");
            assert!(fault
                .render(SoapVersion::V12)
                .contains(crate::soap::SOAP12_ENVELOPE));
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let not_utf8 =
            Refusal::NotAnEnvelope(crate::soap::body_text(b"<a>\xff</a>", None).unwrap_err());
        let text = not_utf8.to_string();
        assert!(text.starts_with("Message not valid: "), "{text}");
        assert!(text.contains("byte offset 3"), "{text}");
        let charset =
            Refusal::NotAnEnvelope(crate::soap::body_text(b"<a/>", Some("latin9x")).unwrap_err());
        let (status, _) = charset.answer(SoapVersion::V11);
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(charset.to_string().contains("latin9x"), "{charset}");
        let mismatch = Refusal::VersionMismatch {
            envelope: SoapVersion::V12,
            media_type: "text/xml".into(),
        };
        assert_eq!(
            mismatch.to_string(),
            "a SOAP 1.2 envelope must be sent as application/soap+xml, not as text/xml"
        );
        let findings = (0..7)
            .map(|i| Finding {
                path: format!("/Op/E{i}"),
                expected: "x".into(),
                found: "y".into(),
            })
            .collect();
        let message = Refusal::NotValid(findings).to_string();
        assert!(message.starts_with("Message not valid: 7 findings against the WSDL: /Op/E0"));
        assert!(message.ends_with("; and 2 more"), "{message}");
    }
}

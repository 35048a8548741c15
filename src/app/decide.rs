//! Deciding a call: [`decide`] takes the request as parsed once ([`Request`]), the caller's
//! certificate verdict and what decides ([`Rules`]: catalog, scenario rules and their state,
//! supplier registry), and returns the [`Verdict`]: the answer and every fact the journal
//! records (route, findings, authorization, rule). It is synchronous, does no I/O and changes
//! nothing: the scenario counters and state a verdict advances are in [`Verdict::effects`], which
//! the app applies once the journal committed the call. Besides the arrival time it is given, it
//! draws only fresh GUIDs (receipts) and a random delay within a rule's bounds.
//!
//! The order: a body that could not be read; in `diagnose` mode, a refused certificate; a
//! request that is no SOAP message; the catalog's route, SOAPAction and schema checks; the
//! registry's authorization and identity checks; the scenario rules; else the default answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderName, StatusCode};
use time::OffsetDateTime;

use super::refusal::Refusal;
use crate::config::ValidationMode;
use crate::identity::CallerIdentity;
use crate::journal::{self, Outcome, RejectionReason};
use crate::scenario::{
    ConnectionFault, Decision, Effect, RequestFacts, RuleRef, Runtime, ScriptedAnswer, Spec,
};
use crate::soap::{self, Envelope, Fault, Receipt, SoapVersion};
use crate::supplier::{self, Registry};
use crate::tls::ClientCertificate;
use crate::wsdl::validate::{self, Finding};
use crate::wsdl::{Access, Catalog, Route, RouteProblem};

/// One POST, parsed once: what every later step reads.
#[derive(Debug)]
pub struct Request {
    /// Method, URI and headers as received.
    pub parts: Parts,
    /// When it arrived.
    pub time: OffsetDateTime,
    /// The SOAP version to answer in whatever happens: the envelope's (sniffed even from a
    /// broken body), else the one the `Content-Type` names, else 1.1.
    pub version: SoapVersion,
    /// The body as received; empty when it could not be read.
    pub body: Bytes,
    /// The SOAP message, or why the request is none.
    pub message: Result<Message, Refusal>,
}

/// A request that is a SOAP message.
#[derive(Debug)]
pub struct Message {
    pub envelope: Envelope,
    /// The version the `Content-Type` names, and that media type.
    pub declared: SoapVersion,
    pub media_type: String,
    /// SOAP 1.1's `SOAPAction` header; SOAP 1.2's `action` parameter (else the header).
    pub soap_action: Option<String>,
}

impl Request {
    /// Reads a POST whose body was read (or not) into `body`: the content type, the body's
    /// text, the envelope — each once.
    pub fn parse(parts: Parts, body: Result<Bytes, Refusal>, time: OffsetDateTime) -> Request {
        let content_type = ContentType::of(&parts);
        let declared = content_type
            .as_ref()
            .and_then(|c| SoapVersion::from_media_type(&c.media_type));
        let (body, read) = match body {
            Ok(body) => (body, Ok(())),
            Err(refusal) => (Bytes::new(), Err(refusal)),
        };
        let message = read.and_then(|()| Message::parse(&parts, content_type, declared, &body));
        let version = match &message {
            Ok(message) => message.envelope.version,
            // Read cheaply from the root element, even of a broken body.
            Err(_) => soap::sniff_version(&body)
                .or(declared)
                .unwrap_or(SoapVersion::V11),
        };
        Request {
            parts,
            time,
            version,
            body,
            message,
        }
    }

    /// The HTTP path, without the query.
    pub fn path(&self) -> &str {
        self.parts.uri.path()
    }
}

impl Message {
    fn parse(
        parts: &Parts,
        content_type: Option<ContentType>,
        declared: Option<SoapVersion>,
        body: &[u8],
    ) -> Result<Message, Refusal> {
        let content_type = content_type.ok_or(Refusal::NoContentType)?;
        let Some(declared) = declared else {
            return Err(Refusal::NotSoap(content_type.media_type));
        };
        let text = soap::body_text(body, content_type.charset.as_deref())
            .map_err(Refusal::NotAnEnvelope)?;
        let envelope = soap::parse_envelope(&text).map_err(Refusal::NotAnEnvelope)?;
        let header = || {
            // UTF-8, not only ASCII: OIO operation names (and so actions) may be Danish.
            let value = std::str::from_utf8(parts.headers.get("soapaction")?.as_bytes()).ok()?;
            Some(value.trim().trim_matches('"').to_owned())
        };
        let soap_action = match envelope.version {
            SoapVersion::V11 => header(),
            SoapVersion::V12 => content_type.action.or_else(header),
        };
        Ok(Message {
            envelope,
            declared,
            media_type: content_type.media_type,
            soap_action,
        })
    }
}

/// `Content-Type` split into its media type and the parameters SOAP cares about.
#[derive(Debug, Default)]
struct ContentType {
    media_type: String,
    charset: Option<String>,
    action: Option<String>,
}

impl ContentType {
    fn of(parts: &Parts) -> Option<ContentType> {
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
}

/// What decides a call, beside the request itself: snapshots taken when it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The services served; empty: every POST gets the generic receipt.
    pub catalog: &'a Catalog,
    /// The scenario rules in force.
    pub scenarios: &'a Spec,
    /// Their per-caller counters and state, read (never written) while deciding.
    pub runtime: &'a Arc<Runtime>,
    /// The supplier registry in force.
    pub registry: &'a Registry,
    /// Strict identity checks: the first finding is the answer.
    pub strict: bool,
}

/// The answer to one call and everything the journal records about it.
#[derive(Debug)]
pub struct Verdict {
    pub status: StatusCode,
    /// The SOAP version of the answer.
    pub version: SoapVersion,
    pub body: String,
    /// Receipt GUIDs the answer issues.
    pub receipts: Vec<String>,
    pub outcome: Outcome,
    /// Why, for faults and refusals.
    pub detail: Option<String>,
    pub facts: Facts,
    /// The scenarios' part: `None` when the call never reached them (refused or malformed).
    pub script: Option<Script>,
    /// What the call advances in the scenarios' state once it is journaled.
    pub effects: Vec<Effect>,
}

/// What was learned about the call on the way, for the journal.
#[derive(Debug, Default)]
pub struct Facts {
    /// The WSDL service and operation the call was routed to.
    pub service: Option<String>,
    pub service_operation: Option<String>,
    /// Where the request departs from its WSDL (schema, SOAPAction).
    pub findings: Vec<Finding>,
    /// The registered supplier of the certificate.
    pub supplier: Option<String>,
    /// Its category, for scenario rules.
    pub category: Option<supplier::Category>,
    /// The registry's decision label: `open`, `allowed`, `refused 1013`.
    pub authorization: Option<String>,
    /// The identity checks that did not pass.
    pub identity_findings: Vec<supplier::Finding>,
}

/// The parts of a scenario decision that act beyond the body.
#[derive(Debug, Default)]
pub struct Script {
    /// `None` when no rule matched (the default answer).
    pub rule: Option<RuleRef>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub delay: Option<Duration>,
    pub connection: Option<ConnectionFault>,
}

impl Verdict {
    /// A refusal answered in `version`.
    pub fn refused(version: SoapVersion, refusal: &Refusal, facts: Facts) -> Verdict {
        let (status, fault) = refusal.answer(version);
        Verdict::fault(version, status, &fault, facts)
    }

    fn fault(version: SoapVersion, status: StatusCode, fault: &Fault, facts: Facts) -> Verdict {
        Verdict {
            status,
            version,
            body: fault.render(version),
            receipts: Vec::new(),
            outcome: Outcome::Fault {
                code: fault.dfdg.as_ref().map(|d| d.code),
                fault_code: fault.party.code(version).to_owned(),
            },
            detail: Some(fault.reason.clone()),
            facts,
            script: None,
            effects: Vec::new(),
        }
    }

    fn receipt(version: SoapVersion, body: String, receipts: Vec<String>, facts: Facts) -> Verdict {
        Verdict {
            status: StatusCode::OK,
            version,
            body,
            receipts,
            outcome: Outcome::Receipt,
            detail: None,
            facts,
            script: None,
            effects: Vec::new(),
        }
    }
}

/// Decides the answer to a POST.
pub fn decide(request: &Request, caller: &ClientCertificate, rules: &Rules<'_>) -> Verdict {
    let version = request.version;
    let message = match (&request.message, caller) {
        (Err(refusal @ (Refusal::BodyTooLarge | Refusal::BodyTooSlow)), _)
        | (Err(refusal @ Refusal::BodyUnreadable(_)), _) => {
            return Verdict::refused(version, refusal, Facts::default())
        }
        // Diagnose mode: the handshake let a bad certificate through so we can say what is wrong.
        (_, ClientCertificate::Refused(refused)) => {
            let refusal = match refused.reason {
                RejectionReason::NoCertificate => {
                    Refusal::CertificateMissing(refused.detail.clone())
                }
                _ => Refusal::CertificateRefused(refused.detail.clone()),
            };
            return Verdict::refused(version, &refusal, Facts::default());
        }
        (Err(refusal), _) => return Verdict::refused(version, refusal, Facts::default()),
        (Ok(message), ClientCertificate::Verified(identity)) => (message, identity),
    };
    let (message, identity) = message;
    let mut facts = Facts::default();
    match answer(request, message, identity, rules, &mut facts) {
        Ok(verdict) => verdict,
        Err(refusal) => Verdict::refused(message.envelope.version, &refusal, facts),
    }
}

/// The answer to a well-formed SOAP message of a verified caller, or the refusal.
fn answer(
    request: &Request,
    message: &Message,
    identity: &Arc<CallerIdentity>,
    rules: &Rules<'_>,
    facts: &mut Facts,
) -> Result<Verdict, Refusal> {
    let envelope = &message.envelope;
    if envelope.version != message.declared {
        return Err(Refusal::VersionMismatch {
            envelope: envelope.version,
            media_type: message.media_type.clone(),
        });
    }
    // The catalog routes and checks the call; its refusals come before any scenario rule.
    let route = if rules.catalog.is_empty() {
        None
    } else {
        Some(route(rules.catalog, request.path(), message, facts)?)
    };
    // The supplier registry: who may call what; then the identity checks (strict mode).
    authorize(
        rules,
        identity,
        route.as_ref(),
        envelope,
        request.path(),
        facts,
    )?;
    let scenario_facts = RequestFacts {
        service: facts.service.as_deref(),
        supplier: facts.supplier.as_deref(),
        category: facts.category.map(supplier::Category::as_str),
        operation: &envelope.operation,
        version: envelope.version,
        path: request.path(),
        headers: &request.parts.headers,
        identity: Some(identity),
        star: &envelope.star_headers,
        now: request.time,
    };
    let choice = rules.scenarios.decide(&scenario_facts, rules.runtime);
    let mut verdict = match choice.decision {
        None => {
            let mut verdict = default_answer(route.as_ref(), envelope, request.time, facts);
            // The scenarios saw the call: no rule matched.
            verdict.script = Some(Script::default());
            verdict
        }
        Some(decision) => scripted(decision, route.as_ref(), envelope, request.time, facts),
    };
    verdict.effects = choice.effects;
    Ok(verdict)
}

/// Routes a well-formed envelope through the catalog — by its Body element, falling back to
/// the SOAPAction for an element the port does not know — and checks it per the service's
/// validation mode: the SOAPAction against the operation, the request against its schema.
fn route<'c>(
    catalog: &'c Catalog,
    path: &str,
    message: &Message,
    facts: &mut Facts,
) -> Result<Route<'c>, Refusal> {
    let envelope = &message.envelope;
    let element = envelope.operation_name();
    let action = message.soap_action.as_deref();
    let routed = catalog
        .route(path, envelope.version, None, element)
        .or_else(|problem| match problem {
            RouteProblem::UnknownOperation { .. } => {
                catalog.route(path, envelope.version, action, element)
            }
            problem => Err(problem),
        });
    let route = match routed {
        Ok(route) => route,
        Err(problem) => {
            if let RouteProblem::VersionMismatch { service, .. }
            | RouteProblem::UnknownOperation { service, .. } = &problem
            {
                facts.service = Some(service.clone());
            }
            return Err(Refusal::Route(problem));
        }
    };
    facts.service = Some(route.endpoint.service.clone());
    facts.service_operation = Some(route.operation.name.clone());
    let mode = route.endpoint.validation;
    if mode != ValidationMode::Off {
        facts.findings.extend(validate::soap_action(&route, action));
        facts.findings.extend(validate::request(&route, envelope));
        if mode == ValidationMode::Enforce {
            if let Some(missing) = route.missing_star_header(envelope) {
                return Err(Refusal::MissingStarHeader(missing));
            }
            if !facts.findings.is_empty() {
                return Err(Refusal::NotValid(facts.findings.clone()));
            }
        }
    }
    Ok(route)
}

/// Authorizes the call with the registry and runs the identity checks, recording both in
/// `facts`: the refusal (DFDG's code and reason), or `Ok` to go on. Without a catalog route the
/// service is the path's first segment and the access follows the operation's name (as
/// [`Access::of`] guesses it for WSDLs without marks).
fn authorize(
    rules: &Rules<'_>,
    identity: &CallerIdentity,
    route: Option<&Route<'_>>,
    envelope: &Envelope,
    path: &str,
    facts: &mut Facts,
) -> Result<(), Refusal> {
    let service = facts.service.clone().or_else(|| {
        let service = journal::service_of(path);
        (!service.is_empty()).then(|| service.to_owned())
    });
    let access = route.map_or_else(
        || Access::of(&envelope.operation_name().local, None),
        |route| route.operation.access,
    );
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
        return Err(Refusal::Unauthorized { code, reason });
    }
    if rules.strict {
        if let Some(first) = facts.identity_findings.first() {
            return Err(Refusal::Identity {
                code: first.code,
                message: first.message.clone(),
            });
        }
    }
    Ok(())
}

/// The answer when no rule matches: the catalog's schema-valid default response for a routed
/// call, else the generic receipt.
fn default_answer(
    route: Option<&Route<'_>>,
    envelope: &Envelope,
    now: OffsetDateTime,
    facts: &mut Facts,
) -> Verdict {
    let facts = std::mem::take(facts);
    if let Some(route) = route {
        let response = route.default_response(now);
        return Verdict::receipt(route.port.version, response.body, response.receipts, facts);
    }
    let receipt = Receipt::fresh(now);
    let body = receipt.render(envelope.version, envelope.operation_name());
    Verdict::receipt(
        envelope.version,
        body,
        vec![receipt.message_identifier.to_string()],
        facts,
    )
}

/// A matched rule's decision as a verdict.
fn scripted(
    decision: Decision,
    route: Option<&Route<'_>>,
    envelope: &Envelope,
    now: OffsetDateTime,
    facts: &mut Facts,
) -> Verdict {
    let Decision {
        rule,
        answer,
        status,
        headers,
        delay,
        connection,
    } = decision;
    let version = envelope.version;
    let mut verdict = match answer {
        ScriptedAnswer::Default => default_answer(route, envelope, now, facts),
        ScriptedAnswer::Fault(fault) => {
            let status = StatusCode::from_u16(fault.http_status(version))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Verdict::fault(version, status, &fault, std::mem::take(facts))
        }
        // A SOAP answer; `receipts` lists what it issued, possibly nothing (a lookup).
        ScriptedAnswer::Xml { text, receipts } => {
            Verdict::receipt(version, text, receipts, std::mem::take(facts))
        }
        ScriptedAnswer::Broken(problem) => {
            tracing::error!(file = %rule.file, rule = %rule.name, %problem, "scenario rule failed");
            let refusal = Refusal::ScenarioBroken {
                rule: format!("{}#{}", rule.file, rule.name),
                problem,
            };
            Verdict::refused(version, &refusal, std::mem::take(facts))
        }
    };
    if let Some(status) = status.and_then(|s| StatusCode::from_u16(s).ok()) {
        verdict.status = status;
    }
    verdict.script = Some(Script {
        rule: Some(rule),
        headers,
        delay,
        connection,
    });
    verdict
}

#[cfg(test)]
mod tests;

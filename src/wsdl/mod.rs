//! The service catalog: every WSDL 1.1 file in the catalog folders, loaded once at start-up with
//! everything it imports, compiled into endpoints (one per `soap:address` path) whose operations
//! carry their compiled input, header and output schemas. The request path then needs two map
//! look-ups: path ([`path_key`]) → [`Endpoint`], SOAPAction (or Body element) → [`Operation`].
//!
//! Submodules: `load` (reading a WSDL and its imports into endpoints), `compile` (XSD
//! documents into the model), [`xml`] (namespace-aware element tree), [`xsd`] (the schema model),
//! [`validate`] (instance validation), [`sample`] (schema-valid default answers), [`serve`]
//! (`?wsdl` with rewritten addresses, as published or tool-friendly; the catalog listing),
//! [`policy`] (WS-Policy, listed and not enforced).
//!
//! Parse, don't validate: a [`Catalog`] holds only WSDLs that loaded without a problem; the
//! problems of the others are returned beside it ([`Loaded`]), each naming file, line and what.
//! [`Catalog::self_check`] holds the generator and the validator to each other.

mod compile;
mod load;
pub mod policy;
pub mod sample;
pub mod serve;
pub mod validate;
pub mod xml;
pub mod xsd;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{CatalogConfig, ValidationMode};
use crate::soap::{self, QualifiedName, SoapVersion};
use validate::Finding;
use xsd::{ElementId, Schema};

pub const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
pub const SOAP11_BINDING_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
pub const SOAP12_BINDING_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
/// Namespace of our own WSDL extension attributes (`catalog:access="read|write"`).
pub const CATALOG_NS: &str = "urn:dfdg-mock:catalog";

/// The service of a request path, as the journal's service filter and the metrics name it: its
/// first segment (`/JobcenterMessageService/2/X.svc` → `JobcenterMessageService`), or `""` for
/// `/`.
pub fn service_of(path: &str) -> &str {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
}

/// The `xml:` namespace.
pub fn xml_namespace() -> &'static str {
    "http://www.w3.org/XML/1998/namespace"
}

/// The rule that matches request paths to endpoints: IIS paths are case-insensitive, in every
/// script (`/Påmindelse/1/X.svc` is `/PÅMINDELSE/1/x.svc`); paths are compared decoded.
pub fn path_key(path: &str) -> String {
    path.to_lowercase()
}

/// Something wrong in a catalog file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Whether an operation reads or writes DFDG data (Small suppliers only read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

impl Access {
    /// From our WSDL extension attribute, else by naming habits: STAR's Get*/Search*/Ping
    /// (any case, as KOMBIT's `getOIO…` too) and OIO's Danish verb last (`PersonHent`,
    /// `SagSøg`, `…List`) read.
    pub fn of(operation: &str, declared: Option<&str>) -> Access {
        match declared.map(str::trim) {
            Some("read") => Access::Read,
            Some("write") => Access::Write,
            _ => {
                let lower = operation.to_lowercase();
                let reads = [
                    "get", "search", "find", "list", "ping", "read", "lookup", "hent", "søg",
                    "fremsøg", "læs",
                ];
                let verbs_last = ["hent", "søg", "list", "læs", "opslag"];
                if reads.iter().any(|prefix| lower.starts_with(prefix))
                    || verbs_last.iter().any(|suffix| lower.ends_with(suffix))
                {
                    Access::Read
                } else {
                    Access::Write
                }
            }
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

/// A SOAP header an operation's input declares.
#[derive(Debug, Clone)]
pub struct HeaderPart {
    pub name: QualifiedName,
    pub element: ElementId,
}

/// One operation of a port.
#[derive(Debug, Clone)]
pub struct Operation {
    pub name: String,
    /// SOAPAction (1.1) / action (1.2), when the binding declares a non-empty one.
    pub action: Option<String>,
    pub access: Access,
    /// The Body's request element.
    pub input: ElementId,
    pub input_name: QualifiedName,
    pub headers: Vec<HeaderPart>,
    /// The Body's response element; None for one-way operations.
    pub output: Option<ElementId>,
    /// Elements of the declared faults.
    pub faults: Vec<QualifiedName>,
}

/// A WSDL port: one binding (one SOAP version) at an endpoint.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub version: SoapVersion,
    pub operations: Vec<Operation>,
    by_action: HashMap<String, usize>,
    by_element: HashMap<QualifiedName, usize>,
}

/// One served path.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub path: String,
    pub service: String,
    pub validation: ValidationMode,
    pub ports: Vec<Port>,
    /// Index into [`Catalog::wsdls`].
    pub wsdl: usize,
}

/// A served document of a WSDL: the WSDL itself or a part it imports.
#[derive(Debug, Clone)]
pub struct Part {
    /// "" for the WSDL itself, else the name used in `?part=` links.
    pub key: String,
    pub file: PathBuf,
    pub text: String,
    /// Import locations written in this document → the key of the part they load.
    pub locations: HashMap<String, String>,
    /// Target namespaces of the schemas this document defines (its inline schemas, or its
    /// own), for the xs:imports the tool-friendly variant adds.
    pub namespaces: Vec<String>,
    /// Prefixes this document (an included schema) uses without declaring, as the document
    /// that includes it declares them: the tool-friendly variant declares them.
    pub inherited: Vec<(String, String)>,
}

/// One WSDL file with everything it pulled in, compiled.
#[derive(Debug)]
pub struct Wsdl {
    pub file: PathBuf,
    pub schema: Schema,
    /// The WSDL first, then imported parts.
    pub parts: Vec<Part>,
    /// Its WS-Policies: listed by `check`, not enforced.
    pub policies: Vec<policy::Policy>,
}

/// The loaded catalog.
#[derive(Debug, Default)]
pub struct Catalog {
    pub wsdls: Vec<Wsdl>,
    /// Endpoints in the order loaded.
    pub endpoints: Vec<Endpoint>,
    /// [`path_key`] → index into `endpoints`.
    by_path: HashMap<String, usize>,
}

/// What loading produced: the catalog of everything that loaded, and what did not.
#[derive(Debug, Default)]
pub struct Loaded {
    pub catalog: Catalog,
    /// Files that did not load, and why. Non-empty makes `check` fail.
    pub problems: Vec<Problem>,
    /// Things worth knowing that do not stop a file (e.g. a pattern that is not checked).
    pub notes: Vec<Problem>,
}

/// Why a request could not be matched to an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteProblem {
    UnknownPath {
        served: Vec<String>,
    },
    VersionMismatch {
        service: String,
        speaks: Vec<SoapVersion>,
        got: SoapVersion,
    },
    UnknownOperation {
        service: String,
        action: Option<String>,
        element: QualifiedName,
        known: Vec<String>,
    },
}

impl fmt::Display for RouteProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteProblem::UnknownPath { served } => write!(
                f,
                "no service at this path; served endpoints: {}",
                served.join(", ")
            ),
            RouteProblem::VersionMismatch {
                service,
                speaks,
                got,
            } => {
                let speaks: Vec<String> = speaks.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "{service} speaks {} here, but the request is a {got} envelope",
                    speaks.join(" and ")
                )
            }
            RouteProblem::UnknownOperation {
                service,
                action,
                element,
                known,
            } => write!(
                f,
                "{service} has no operation for {}Body element {element}; known operations: {}",
                action
                    .as_deref()
                    .map_or(String::new(), |a| format!("SOAPAction '{a}' or ")),
                known.join(", ")
            ),
        }
    }
}

/// A request matched to its operation.
#[derive(Debug, Clone, Copy)]
pub struct Route<'c> {
    pub endpoint: &'c Endpoint,
    pub port: &'c Port,
    pub operation: &'c Operation,
    pub schema: &'c Schema,
}

/// A generated answer: the whole envelope and the receipt GUIDs in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultResponse {
    pub body: String,
    pub receipts: Vec<String>,
}

/// A missing STAR header the operation declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingHeader {
    pub code: i64,
    pub message: String,
}

impl Catalog {
    /// Loads every `*.wsdl` file of the configured folders; never fails as a whole.
    pub fn load(config: &CatalogConfig) -> Loaded {
        let mut loaded = Loaded::default();
        let mut patterns = compile::PatternCache::new();
        xsd::warm_up();
        for dir in &config.dirs {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension()
                            .is_some_and(|e| e.eq_ignore_ascii_case("wsdl"))
                    })
                    .collect(),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    loaded.notes.push(Problem {
                        file: dir.clone(),
                        line: None,
                        message:
                            "catalog folder does not exist; every POST gets the generic receipt"
                                .to_owned(),
                    });
                    continue;
                }
                Err(error) => {
                    loaded.problems.push(Problem {
                        file: dir.clone(),
                        line: None,
                        message: format!("cannot read the catalog folder: {error}"),
                    });
                    continue;
                }
            };
            files.sort();
            for file in files {
                let index = loaded.catalog.wsdls.len();
                match load::load_wsdl(&file, index, config, &mut patterns) {
                    Ok((wsdl, endpoints, notes)) => {
                        loaded.notes.extend(notes);
                        for endpoint in endpoints {
                            let key = path_key(&endpoint.path);
                            if let Some(existing) = loaded.catalog.by_path.get(&key) {
                                let other = &loaded.catalog.endpoints[*existing];
                                loaded.problems.push(Problem {
                                    file: file.clone(),
                                    line: None,
                                    message: format!(
                                        "service {} uses path {}, already served by {} from {}; set another path in the config",
                                        endpoint.service,
                                        endpoint.path,
                                        other.service,
                                        loaded.catalog.wsdls[other.wsdl].file.display()
                                    ),
                                });
                                continue;
                            }
                            loaded
                                .catalog
                                .by_path
                                .insert(key, loaded.catalog.endpoints.len());
                            loaded.catalog.endpoints.push(endpoint);
                        }
                        // Endpoints refer to their WSDL by this index.
                        loaded.catalog.wsdls.push(wsdl);
                    }
                    Err(problems) => loaded.problems.extend(problems),
                }
            }
        }
        loaded
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// The endpoint served at `path` as it came in a request: percent-decoded, case-insensitive.
    pub fn endpoint(&self, path: &str) -> Option<&Endpoint> {
        let path = crate::encoding::percent_decode(path).ok()?;
        self.by_path
            .get(&path_key(&path))
            .map(|i| &self.endpoints[*i])
    }

    /// Every served path, in load order.
    pub fn paths(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.path.clone()).collect()
    }

    /// Matches a request to its operation: by path, SOAP version, then SOAPAction, falling back
    /// to the Body's first element.
    pub fn route(
        &self,
        path: &str,
        version: SoapVersion,
        action: Option<&str>,
        body_element: &QualifiedName,
    ) -> Result<Route<'_>, RouteProblem> {
        let Some(endpoint) = self.endpoint(path) else {
            return Err(RouteProblem::UnknownPath {
                served: self.paths(),
            });
        };
        let Some(port) = endpoint.ports.iter().find(|p| p.version == version) else {
            return Err(RouteProblem::VersionMismatch {
                service: endpoint.service.clone(),
                speaks: endpoint.ports.iter().map(|p| p.version).collect(),
                got: version,
            });
        };
        let index = action
            .filter(|a| !a.is_empty())
            .and_then(|a| port.by_action.get(a))
            .or_else(|| port.by_element.get(body_element));
        let Some(index) = index else {
            return Err(RouteProblem::UnknownOperation {
                service: endpoint.service.clone(),
                action: action.filter(|a| !a.is_empty()).map(str::to_owned),
                element: body_element.clone(),
                known: port.operations.iter().map(|o| o.name.clone()).collect(),
            });
        };
        Ok(Route {
            endpoint,
            port,
            operation: &port.operations[*index],
            schema: &self.wsdls[endpoint.wsdl].schema,
        })
    }
}

/// What [`Catalog::self_check`] found: generated messages our own validator refuses.
#[derive(Debug, Default)]
pub struct SelfCheck {
    /// Operations checked (an example request and a default answer each).
    pub operations: usize,
    /// Operations whose generated messages all validate.
    pub passed: usize,
    /// One per refused message: our bug, not the user's.
    pub problems: Vec<Problem>,
}

impl SelfCheck {
    /// One line for `check`.
    pub fn summary(&self) -> String {
        format!(
            "self-check: generated an example request and a default answer for each of {} operation(s); {} validate against their own schemas",
            self.operations, self.passed
        )
    }
}

impl Catalog {
    /// Every route of the catalog: each operation of each port of each endpoint.
    pub fn routes(&self) -> impl Iterator<Item = Route<'_>> + '_ {
        self.endpoints.iter().flat_map(move |endpoint| {
            endpoint.ports.iter().flat_map(move |port| {
                port.operations.iter().map(move |operation| Route {
                    endpoint,
                    port,
                    operation,
                    schema: &self.wsdls[endpoint.wsdl].schema,
                })
            })
        })
    }

    /// Generates an example request and a default answer for every operation and validates
    /// both with our own validator. A refusal is a bug of dfdg-mock (the generator or the
    /// validator), reported as a problem so `check` fails on it.
    pub fn self_check(&self, now: OffsetDateTime) -> SelfCheck {
        let mut report = SelfCheck::default();
        for route in self.routes() {
            report.operations += 1;
            let mut ok = true;
            let request = route.example_request(now);
            let response = route.default_response(now).body;
            for (kind, findings) in [
                ("example request", route.validate(&request)),
                ("default answer", route.validate_response(&response)),
            ] {
                if let Some(first) = findings.first() {
                    ok = false;
                    report.problems.push(Problem {
                        file: self.wsdls[route.endpoint.wsdl].file.clone(),
                        line: None,
                        message: format!(
                            "{}.{}: the generated {kind} does not validate against its own schema ({} finding(s); first: {first}). This is a dfdg-mock bug: please report it with this WSDL",
                            route.endpoint.service,
                            route.operation.name,
                            findings.len()
                        ),
                    });
                }
            }
            if ok {
                report.passed += 1;
            }
        }
        report
    }
}

impl Route<'_> {
    /// Validates the request envelope's Body element and declared headers (parsed as the
    /// server parses it; see [`validate::request`]).
    pub fn validate(&self, envelope_text: &str) -> Vec<Finding> {
        match soap::parse_envelope(envelope_text) {
            Ok(envelope) => validate::request(self, &envelope),
            Err(problem) => vec![Finding {
                path: "/".to_owned(),
                expected: "a well-formed SOAP envelope".to_owned(),
                found: problem.to_string(),
            }],
        }
    }

    /// The DFDG fault for a missing STAR header that the operation declares (8232, 8233).
    pub fn missing_star_header(&self, envelope: &soap::Envelope) -> Option<MissingHeader> {
        let declares = |namespace: &str, local: &str| {
            self.operation
                .headers
                .iter()
                .any(|h| h.name.namespace == namespace && h.name.local == local)
        };
        if declares(soap::ACTIVE_ORGANISATION_NS, "ActiveOrganisationHeader")
            && envelope.star_headers.active_organisation.is_none()
        {
            return Some(MissingHeader {
                code: 8232,
                message: format!(
                    "ActiveOrganisationHeader is missing: {} requires the SOAP header {{{}}}ActiveOrganisationHeader",
                    self.operation.name,
                    soap::ACTIVE_ORGANISATION_NS
                ),
            });
        }
        if declares(soap::REQUEST_USER_METADATA_NS, "RequestUserMetadataHeader")
            && envelope.star_headers.request_user.is_none()
        {
            return Some(MissingHeader {
                code: 8233,
                message: format!(
                    "RequestUserMetadataHeader is missing: {} requires the SOAP header {{{}}}RequestUserMetadataHeader",
                    self.operation.name,
                    soap::REQUEST_USER_METADATA_NS
                ),
            });
        }
        None
    }

    /// The answer for a call nobody scripted: the output element generated from its schema, in
    /// the port's SOAP version, with fresh GUIDs and the time `now`.
    pub fn default_response(&self, now: OffsetDateTime) -> DefaultResponse {
        let mut body = String::with_capacity(1024);
        body.push_str(r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s=""#);
        body.push_str(self.port.version.envelope_namespace());
        body.push_str(r#""><s:Body>"#);
        let mut receipts = Vec::new();
        if let Some(output) = self.operation.output {
            let generated = sample::element(self.schema, output, now);
            body.push_str(&generated.xml);
            receipts = generated.receipts;
        }
        body.push_str("</s:Body></s:Envelope>");
        DefaultResponse { body, receipts }
    }

    /// An example request that validates: the declared headers and the input element generated
    /// from their schemas, in the port's SOAP version.
    pub fn example_request(&self, now: OffsetDateTime) -> String {
        self.example_request_with(now, &sample::Overrides::default())
    }

    /// An example request with `overrides` in place of generated values (e.g. the STAR headers
    /// filled in for one supplier's certificate), wherever they fit the schema.
    pub fn example_request_with(
        &self,
        now: OffsetDateTime,
        overrides: &sample::Overrides,
    ) -> String {
        let mut body = String::with_capacity(2048);
        body.push_str(r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s=""#);
        body.push_str(self.port.version.envelope_namespace());
        body.push_str(r#"">"#);
        if !self.operation.headers.is_empty() {
            body.push_str("<s:Header>");
            for header in &self.operation.headers {
                body.push_str(
                    &sample::element_with(self.schema, header.element, now, overrides).xml,
                );
            }
            body.push_str("</s:Header>");
        }
        body.push_str("<s:Body>");
        body.push_str(&sample::element_with(self.schema, self.operation.input, now, overrides).xml);
        body.push_str("</s:Body></s:Envelope>");
        body
    }

    /// Checks a response envelope's Body element against the operation's output element.
    pub fn validate_response(&self, envelope_text: &str) -> Vec<Finding> {
        let mut findings = Vec::new();
        let root = match xml::parse(envelope_text) {
            Ok(root) => root,
            Err(problem) => {
                findings.push(Finding {
                    path: "/".to_owned(),
                    expected: "well-formed XML".to_owned(),
                    found: problem.to_string(),
                });
                return findings;
            }
        };
        let envelope_ns = self.port.version.envelope_namespace();
        let element = root
            .child(envelope_ns, "Body")
            .and_then(|b| b.children.first());
        match (element, self.operation.output) {
            (Some(element), Some(output)) => validate::element(
                self.schema,
                output,
                element,
                &format!("/{}", element.name.local),
                &mut findings,
            ),
            (None, Some(output)) => findings.push(Finding {
                path: "/".to_owned(),
                expected: format!(
                    "a {} envelope with Body element {}",
                    self.port.version,
                    self.schema.element(output).name
                ),
                found: format!("{}", root.name),
            }),
            (_, None) => {}
        }
        findings
    }
}

#[cfg(test)]
mod tests;

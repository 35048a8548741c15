//! The service catalog: every WSDL 1.1 file in the catalog folders, loaded once at start-up with
//! everything it imports, compiled into endpoints (one per `soap:address` path) whose operations
//! carry their compiled input, header and output schemas. The request path then needs two map
//! look-ups: path → [`Endpoint`], SOAPAction (or Body element) → [`Operation`].
//!
//! Submodules: [`xml`] (namespace-aware element tree), [`xsd`] (compiled schema model),
//! [`validate`] (instance validation), [`sample`] (schema-valid default answers), [`serve`]
//! (`?wsdl` with rewritten addresses, the catalog listing).
//!
//! Parse, don't validate: a [`Catalog`] holds only WSDLs that loaded without a problem; the
//! problems of the others are returned beside it ([`Loaded`]), each naming file, line and what.

pub mod sample;
pub mod serve;
pub mod validate;
pub mod xml;
pub mod xsd;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{CatalogConfig, ValidationMode};
use crate::soap::{self, QualifiedName, SoapVersion};
use validate::Finding;
use xml::Element;
use xsd::{Compiler, ElementId, Schema, SchemaSource, TypeRef, XSD_NS};

pub const WSDL_NS: &str = "http://schemas.xmlsoap.org/wsdl/";
pub const SOAP11_BINDING_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
pub const SOAP12_BINDING_NS: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";
/// Namespace of our own WSDL extension attributes (`catalog:access="read|write"`).
pub const CATALOG_NS: &str = "urn:dfdg-mock:catalog";

/// The `xml:` namespace.
pub fn xml_namespace() -> &'static str {
    "http://www.w3.org/XML/1998/namespace"
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
    /// From our WSDL extension attribute, else by STAR's naming habits: Get*/Search*/Ping read.
    fn of(operation: &str, declared: Option<&str>) -> Access {
        match declared.map(str::trim) {
            Some("read") => Access::Read,
            Some("write") => Access::Write,
            _ => {
                let reads = [
                    "Get", "Search", "Find", "List", "Ping", "Read", "Lookup", "Hent",
                ];
                if reads.iter().any(|prefix| operation.starts_with(prefix)) {
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
}

/// One WSDL file with everything it pulled in, compiled.
#[derive(Debug)]
pub struct Wsdl {
    pub file: PathBuf,
    pub schema: Schema,
    /// The WSDL first, then imported parts.
    pub parts: Vec<Part>,
}

/// The loaded catalog.
#[derive(Debug, Default)]
pub struct Catalog {
    pub wsdls: Vec<Wsdl>,
    /// Endpoints in the order loaded.
    pub endpoints: Vec<Endpoint>,
    /// Lower-cased path → index into `endpoints` (IIS paths are case-insensitive).
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
        let mut patterns = xsd::PatternCache::new();
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
                match load_wsdl(&file, index, config, &mut patterns) {
                    Ok((wsdl, endpoints, notes)) => {
                        loaded.notes.extend(notes);
                        for endpoint in endpoints {
                            let key = endpoint.path.to_ascii_lowercase();
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

    /// The endpoint served at `path` (case-insensitive).
    pub fn endpoint(&self, path: &str) -> Option<&Endpoint> {
        self.by_path
            .get(&path.to_ascii_lowercase())
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

impl Route<'_> {
    /// Validates the request envelope's Body element and declared headers.
    pub fn validate(&self, envelope_text: &str) -> Vec<Finding> {
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
        let header = root.child(envelope_ns, "Header");
        for declared in &self.operation.headers {
            let path = format!("/Header/{}", declared.name.local);
            match header.and_then(|h| h.child(&declared.name.namespace, &declared.name.local)) {
                Some(block) => {
                    validate::element(self.schema, declared.element, block, &path, &mut findings)
                }
                None => findings.push(Finding {
                    path,
                    expected: format!("SOAP header {}", declared.name),
                    found: "nothing".to_owned(),
                }),
            }
        }
        let body = root
            .child(envelope_ns, "Body")
            .and_then(|b| b.children.first());
        if let Some(body) = body {
            let path = format!("/{}", body.name.local);
            validate::element(
                self.schema,
                self.operation.input,
                body,
                &path,
                &mut findings,
            );
        }
        findings
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
        let mut body = String::with_capacity(2048);
        body.push_str(r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s=""#);
        body.push_str(self.port.version.envelope_namespace());
        body.push_str(r#"">"#);
        if !self.operation.headers.is_empty() {
            body.push_str("<s:Header>");
            for header in &self.operation.headers {
                body.push_str(&sample::element(self.schema, header.element, now).xml);
            }
            body.push_str("</s:Header>");
        }
        body.push_str("<s:Body>");
        body.push_str(&sample::element(self.schema, self.operation.input, now).xml);
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

// ---------------------------------------------------------------------------------------------
// Loading

/// What kind of document an import pulls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocKind {
    Wsdl,
    Xsd,
}

/// A loaded document of one WSDL set.
struct Doc {
    file: PathBuf,
    kind: DocKind,
    root: Element,
    text: String,
    /// For an included schema without a target namespace: its includer's.
    chameleon: Option<String>,
    locations: HashMap<String, String>,
    key: String,
}

fn problem(file: &Path, line: Option<usize>, message: impl Into<String>) -> Problem {
    Problem {
        file: file.to_owned(),
        line,
        message: message.into(),
    }
}

/// Loads one WSDL and its imports; any problem rejects the whole file.
fn load_wsdl(
    file: &Path,
    index: usize,
    config: &CatalogConfig,
    patterns: &mut xsd::PatternCache,
) -> Result<(Wsdl, Vec<Endpoint>, Vec<Problem>), Vec<Problem>> {
    let mut problems = Vec::new();
    let docs = load_documents(file, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let Some(first) = docs.first() else {
        return Err(vec![problem(file, None, "nothing loaded")]);
    };
    if !first.root.is(WSDL_NS, "definitions") {
        return Err(vec![problem(
            file,
            Some(first.root.line),
            format!(
                "the root element is {}, not a WSDL 1.1 {{{WSDL_NS}}}definitions",
                first.root.name
            ),
        )]);
    }

    // Schemas: every xs:schema inside wsdl:types, and every imported XSD document.
    let mut schema_roots: Vec<(&Element, String, &Path)> = Vec::new();
    for doc in &docs {
        match doc.kind {
            DocKind::Wsdl => {
                for types in doc.root.children_named(WSDL_NS, "types") {
                    for schema in types.children_named(XSD_NS, "schema") {
                        let target = schema.attribute("targetNamespace").unwrap_or("").to_owned();
                        schema_roots.push((schema, target, &doc.file));
                    }
                }
            }
            DocKind::Xsd => {
                let target = doc
                    .root
                    .attribute("targetNamespace")
                    .map(str::to_owned)
                    .or_else(|| doc.chameleon.clone())
                    .unwrap_or_default();
                schema_roots.push((&doc.root, target, &doc.file));
            }
        }
    }
    let sources = schema_roots
        .iter()
        .map(|(root, target, file)| SchemaSource { root, target, file })
        .collect();
    let (mut schema, schema_problems, notes) = Compiler::new(sources, patterns).compile_all();
    problems.extend(schema_problems);

    let definitions = Definitions::collect(&docs, &mut problems);
    let endpoints = definitions.endpoints(&mut schema, index, config, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let parts = docs
        .into_iter()
        .map(|doc| Part {
            key: doc.key,
            file: doc.file,
            text: doc.text,
            locations: doc.locations,
        })
        .collect();
    Ok((
        Wsdl {
            file: file.to_owned(),
            schema,
            parts,
        },
        endpoints,
        notes,
    ))
}

/// Reads the WSDL and, breadth first, every document it imports by relative location.
fn load_documents(file: &Path, problems: &mut Vec<Problem>) -> Vec<Doc> {
    let base = file.parent().unwrap_or(Path::new(".")).to_owned();
    let mut docs: Vec<Doc> = Vec::new();
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    let mut keys: HashSet<String> = HashSet::new();
    let mut queue: Vec<(PathBuf, DocKind, Option<String>)> =
        vec![(file.to_owned(), DocKind::Wsdl, None)];
    let mut next = 0;
    while let Some((path, kind, chameleon)) = queue.get(next).cloned() {
        next += 1;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) => {
                problems.push(problem(&path, None, format!("cannot read: {error}")));
                continue;
            }
        };
        let root = match xml::parse(&text) {
            Ok(root) => root,
            Err(error) => {
                problems.push(problem(&path, Some(error.line), error.message));
                continue;
            }
        };
        let key = if docs.is_empty() {
            String::new()
        } else {
            part_key(&base, &path, &mut keys)
        };
        // Imports of this document: (element, location attribute, kind, chameleon namespace).
        let mut imports: Vec<(&Element, String, DocKind, Option<String>)> = Vec::new();
        let mut schemas: Vec<&Element> = Vec::new();
        match kind {
            DocKind::Wsdl => {
                for import in root.children_named(WSDL_NS, "import") {
                    if let Some(location) = import.attribute("location") {
                        let kind = if location.to_ascii_lowercase().ends_with(".xsd") {
                            DocKind::Xsd
                        } else {
                            DocKind::Wsdl
                        };
                        imports.push((import, location.to_owned(), kind, None));
                    }
                }
                for types in root.children_named(WSDL_NS, "types") {
                    schemas.extend(types.children_named(XSD_NS, "schema"));
                }
            }
            DocKind::Xsd => {
                if !root.is(XSD_NS, "schema") {
                    problems.push(problem(
                        &path,
                        Some(root.line),
                        format!("expected an xs:schema document, found {}", root.name),
                    ));
                    continue;
                }
                schemas.push(&root);
            }
        }
        for schema in schemas {
            let target = schema
                .attribute("targetNamespace")
                .map(str::to_owned)
                .or_else(|| chameleon.clone());
            for child in schema.children_in(XSD_NS) {
                let include = match child.name.local.as_str() {
                    "import" => false,
                    "include" | "redefine" => true,
                    _ => continue,
                };
                if let Some(location) = child.attribute("schemaLocation") {
                    let chameleon = if include { target.clone() } else { None };
                    imports.push((child, location.to_owned(), DocKind::Xsd, chameleon));
                }
            }
        }
        let mut locations = HashMap::new();
        for (at, location, kind, chameleon) in imports {
            if location.contains("://") {
                problems.push(problem(
                    &path,
                    Some(at.line),
                    format!("import location '{location}' is remote; put the file beside the WSDL and import it by a relative location"),
                ));
                continue;
            }
            let folder = path.parent().unwrap_or(Path::new("."));
            let target = normalise(&folder.join(location.split(['?', '#']).next().unwrap_or("")));
            if !target.is_file() {
                problems.push(problem(
                    &path,
                    Some(at.line),
                    format!(
                        "import location '{location}' does not name a file ({} not found)",
                        target.display()
                    ),
                ));
                continue;
            }
            let index = match seen.get(&target) {
                Some(index) => *index,
                None => {
                    let index = queue.len();
                    seen.insert(target.clone(), index);
                    queue.push((target, kind, chameleon));
                    index
                }
            };
            locations.insert(location, format!("#{index}"));
        }
        if docs.is_empty() {
            seen.insert(normalise(&path), 0);
        }
        docs.push(Doc {
            file: path,
            kind,
            root,
            text,
            chameleon,
            locations,
            key,
        });
    }
    // Locations were recorded as queue indices; turn them into part keys.
    if docs.len() == queue.len() {
        let keys: Vec<String> = docs.iter().map(|d| d.key.clone()).collect();
        for doc in &mut docs {
            for value in doc.locations.values_mut() {
                if let Some(index) = value
                    .strip_prefix('#')
                    .and_then(|i| i.parse::<usize>().ok())
                {
                    if let Some(key) = keys.get(index) {
                        value.clone_from(key);
                    }
                }
            }
        }
    }
    docs
}

/// Removes `.` and `..` components without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A URL-safe, unique name for a served part, from its path relative to the WSDL's folder.
fn part_key(base: &Path, path: &Path, taken: &mut HashSet<String>) -> String {
    let relative = path
        .strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    let mut key: String = relative
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() || key.starts_with('/') || key.contains("..") {
        key = path
            .file_name()
            .map_or_else(|| "part".to_owned(), |n| n.to_string_lossy().into_owned());
    }
    let original = key.clone();
    let mut n = 2;
    while !taken.insert(key.clone()) {
        key = format!("{n}-{original}");
        n += 1;
    }
    key
}

/// A message part.
#[derive(Debug, Clone)]
struct MessagePart {
    name: String,
    element: Option<QualifiedName>,
    ty: Option<QualifiedName>,
}

#[derive(Debug, Clone)]
struct AbstractOperation {
    input: Option<QualifiedName>,
    output: Option<QualifiedName>,
    faults: Vec<QualifiedName>,
    access: Option<String>,
}

#[derive(Debug, Clone)]
struct BoundOperation {
    name: String,
    line: usize,
    action: Option<String>,
    rpc: bool,
    input_parts: Option<Vec<String>>,
    input_namespace: Option<String>,
    output_parts: Option<Vec<String>>,
    output_namespace: Option<String>,
    headers: Vec<(QualifiedName, String)>,
}

#[derive(Debug, Clone)]
struct Binding {
    port_type: QualifiedName,
    version: SoapVersion,
    operations: Vec<BoundOperation>,
}

#[derive(Debug, Clone)]
struct ServicePort {
    service: String,
    port: String,
    binding: QualifiedName,
    location: String,
    file: PathBuf,
    line: usize,
}

/// The WSDL components of every WSDL document in a set, by qualified name.
#[derive(Default)]
struct Definitions {
    messages: HashMap<QualifiedName, Vec<MessagePart>>,
    port_types: HashMap<QualifiedName, HashMap<String, AbstractOperation>>,
    bindings: HashMap<QualifiedName, (Binding, PathBuf)>,
    ports: Vec<ServicePort>,
}

fn resolve(
    at: &Element,
    value: &str,
    file: &Path,
    problems: &mut Vec<Problem>,
) -> Option<QualifiedName> {
    match at.resolve_qname(value) {
        Ok(name) => Some(name),
        Err(message) => {
            problems.push(problem(file, Some(at.line), message));
            None
        }
    }
}

impl Definitions {
    fn collect(docs: &[Doc], problems: &mut Vec<Problem>) -> Definitions {
        let mut definitions = Definitions::default();
        for doc in docs.iter().filter(|d| d.kind == DocKind::Wsdl) {
            let root = &doc.root;
            let file = &doc.file;
            let target = root.attribute("targetNamespace").unwrap_or("").to_owned();
            let qualified = |local: &str| QualifiedName {
                namespace: target.clone(),
                local: local.to_owned(),
            };
            for message in root.children_named(WSDL_NS, "message") {
                let Some(name) = message.attribute("name") else {
                    continue;
                };
                let mut parts = Vec::new();
                for part in message.children_named(WSDL_NS, "part") {
                    let element = part
                        .attribute("element")
                        .and_then(|v| resolve(part, v, file, problems));
                    let ty = part
                        .attribute("type")
                        .and_then(|v| resolve(part, v, file, problems));
                    parts.push(MessagePart {
                        name: part.attribute("name").unwrap_or("").to_owned(),
                        element,
                        ty,
                    });
                }
                definitions.messages.insert(qualified(name), parts);
            }
            for port_type in root.children_named(WSDL_NS, "portType") {
                let Some(name) = port_type.attribute("name") else {
                    continue;
                };
                let mut operations = HashMap::new();
                for operation in port_type.children_named(WSDL_NS, "operation") {
                    let Some(op_name) = operation.attribute("name") else {
                        continue;
                    };
                    let message_of = |local: &str, problems: &mut Vec<Problem>| {
                        operation
                            .child(WSDL_NS, local)
                            .and_then(|e| e.attribute("message").map(|m| (e, m)))
                            .and_then(|(e, m)| resolve(e, m, file, problems))
                    };
                    let input = message_of("input", problems);
                    let output = message_of("output", problems);
                    let faults = operation
                        .children_named(WSDL_NS, "fault")
                        .filter_map(|f| {
                            f.attribute("message")
                                .and_then(|m| resolve(f, m, file, problems))
                        })
                        .collect();
                    operations.insert(
                        op_name.to_owned(),
                        AbstractOperation {
                            input,
                            output,
                            faults,
                            access: operation
                                .attribute_ns(CATALOG_NS, "access")
                                .map(str::to_owned),
                        },
                    );
                }
                definitions.port_types.insert(qualified(name), operations);
            }
            for binding in root.children_named(WSDL_NS, "binding") {
                let Some(name) = binding.attribute("name") else {
                    continue;
                };
                let (version, ns) = if let Some(b) = binding.child(SOAP11_BINDING_NS, "binding") {
                    (SoapVersion::V11, b)
                } else if let Some(b) = binding.child(SOAP12_BINDING_NS, "binding") {
                    (SoapVersion::V12, b)
                } else {
                    continue; // Not a SOAP binding (HTTP, MIME): not served.
                };
                let soap_ns = match version {
                    SoapVersion::V11 => SOAP11_BINDING_NS,
                    SoapVersion::V12 => SOAP12_BINDING_NS,
                };
                let default_rpc = ns.attribute("style") == Some("rpc");
                let Some(port_type) = binding
                    .attribute("type")
                    .and_then(|t| resolve(binding, t, file, problems))
                else {
                    problems.push(problem(
                        file,
                        Some(binding.line),
                        format!("binding {name} has no type"),
                    ));
                    continue;
                };
                let mut operations = Vec::new();
                for operation in binding.children_named(WSDL_NS, "operation") {
                    let soap_operation = operation.child(soap_ns, "operation");
                    let body_of = |local: &str| {
                        operation
                            .child(WSDL_NS, local)
                            .and_then(|m| m.child(soap_ns, "body"))
                    };
                    let parts_of = |body: Option<&Element>| {
                        body.and_then(|b| b.attribute("parts"))
                            .map(|p| p.split_whitespace().map(str::to_owned).collect())
                    };
                    let input_body = body_of("input");
                    let output_body = body_of("output");
                    let mut headers = Vec::new();
                    if let Some(input) = operation.child(WSDL_NS, "input") {
                        for header in input.children_named(soap_ns, "header") {
                            let message = header
                                .attribute("message")
                                .and_then(|m| resolve(header, m, file, problems));
                            if let (Some(message), Some(part)) = (message, header.attribute("part"))
                            {
                                headers.push((message, part.to_owned()));
                            }
                        }
                    }
                    operations.push(BoundOperation {
                        name: operation.attribute("name").unwrap_or("").to_owned(),
                        line: operation.line,
                        action: soap_operation
                            .and_then(|o| o.attribute("soapAction"))
                            .map(str::to_owned)
                            .filter(|a| !a.is_empty()),
                        rpc: soap_operation
                            .and_then(|o| o.attribute("style"))
                            .map_or(default_rpc, |s| s == "rpc"),
                        input_parts: parts_of(input_body),
                        input_namespace: input_body
                            .and_then(|b| b.attribute("namespace"))
                            .map(str::to_owned),
                        output_parts: parts_of(output_body),
                        output_namespace: output_body
                            .and_then(|b| b.attribute("namespace"))
                            .map(str::to_owned),
                        headers,
                    });
                }
                definitions.bindings.insert(
                    qualified(name),
                    (
                        Binding {
                            port_type,
                            version,
                            operations,
                        },
                        file.clone(),
                    ),
                );
            }
            for service in root.children_named(WSDL_NS, "service") {
                let service_name = service.attribute("name").unwrap_or("").to_owned();
                for port in service.children_named(WSDL_NS, "port") {
                    let address = port
                        .child(SOAP11_BINDING_NS, "address")
                        .or_else(|| port.child(SOAP12_BINDING_NS, "address"));
                    let Some(address) = address else {
                        continue; // Not a SOAP port.
                    };
                    let Some(binding) = port
                        .attribute("binding")
                        .and_then(|b| resolve(port, b, file, problems))
                    else {
                        problems.push(problem(file, Some(port.line), "port has no binding"));
                        continue;
                    };
                    let Some(location) = address.attribute("location") else {
                        problems.push(problem(
                            file,
                            Some(address.line),
                            "soap:address has no location",
                        ));
                        continue;
                    };
                    definitions.ports.push(ServicePort {
                        service: service_name.clone(),
                        port: port.attribute("name").unwrap_or("").to_owned(),
                        binding,
                        location: location.to_owned(),
                        file: file.clone(),
                        line: port.line,
                    });
                }
            }
        }
        definitions
    }

    /// Builds the endpoints of every SOAP port, compiling rpc wrappers into `schema`.
    fn endpoints(
        &self,
        schema: &mut Schema,
        wsdl: usize,
        config: &CatalogConfig,
        problems: &mut Vec<Problem>,
    ) -> Vec<Endpoint> {
        let mut names: Vec<&QualifiedName> = self.bindings.keys().collect();
        names.sort_by(|a, b| (&a.namespace, &a.local).cmp(&(&b.namespace, &b.local)));
        let mut compiled: HashMap<QualifiedName, Option<Vec<Operation>>> = HashMap::new();
        for name in names {
            let (binding, file) = &self.bindings[name];
            let operations = self.operations(name, binding, file, schema, problems);
            compiled.insert(name.clone(), operations);
        }
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for service_port in &self.ports {
            let file = &service_port.file;
            let Some((binding, _)) = self.bindings.get(&service_port.binding) else {
                problems.push(problem(
                    file,
                    Some(service_port.line),
                    format!(
                        "port {} names binding {}, which is not a SOAP binding of this WSDL",
                        service_port.port, service_port.binding
                    ),
                ));
                continue;
            };
            let Some(Some(operations)) = compiled.get(&service_port.binding).cloned() else {
                continue;
            };
            let mut port = Port {
                name: service_port.port.clone(),
                version: binding.version,
                operations,
                by_action: HashMap::new(),
                by_element: HashMap::new(),
            };
            for (index, operation) in port.operations.iter().enumerate() {
                if let Some(action) = &operation.action {
                    port.by_action.insert(action.clone(), index);
                }
                port.by_element.insert(operation.input_name.clone(), index);
            }
            let settings = config.services.get(&service_port.service);
            let path = match settings.and_then(|s| s.path.clone()) {
                Some(path) => path,
                None => path_of(&service_port.location),
            };
            let validation = settings
                .and_then(|s| s.validation)
                .unwrap_or(config.validation);
            match endpoints
                .iter_mut()
                .find(|e| e.path.eq_ignore_ascii_case(&path))
            {
                Some(endpoint) if endpoint.ports.iter().any(|p| p.version == port.version) => {
                    problems.push(problem(
                        file,
                        Some(service_port.line),
                        format!("two {} ports at path {path}", port.version),
                    ));
                }
                Some(endpoint) => endpoint.ports.push(port),
                None => endpoints.push(Endpoint {
                    path,
                    service: service_port.service.clone(),
                    validation,
                    ports: vec![port],
                    wsdl,
                }),
            }
        }
        endpoints
    }

    /// The operations of a binding, with their compiled messages (rpc wrappers are added to
    /// `schema`). Every binding is compiled, served or not, so `check` reports all problems.
    fn operations(
        &self,
        binding_name: &QualifiedName,
        binding: &Binding,
        binding_file: &Path,
        schema: &mut Schema,
        problems: &mut Vec<Problem>,
    ) -> Option<Vec<Operation>> {
        let Some(abstract_operations) = self.port_types.get(&binding.port_type) else {
            problems.push(problem(
                binding_file,
                None,
                format!(
                    "binding {} names portType {}, which is not defined",
                    binding_name, binding.port_type
                ),
            ));
            return None;
        };
        let mut operations = Vec::new();
        for bound in &binding.operations {
            let Some(abstract_operation) = abstract_operations.get(&bound.name) else {
                problems.push(problem(
                    binding_file,
                    Some(bound.line),
                    format!(
                        "binding operation {} is not in portType {}",
                        bound.name, binding.port_type
                    ),
                ));
                continue;
            };
            let at = (binding_file, bound.line);
            let Some(input_message) = &abstract_operation.input else {
                problems.push(problem(
                    binding_file,
                    Some(bound.line),
                    format!("operation {} has no input message", bound.name),
                ));
                continue;
            };
            let Some(input) = self.body_element(
                schema,
                input_message,
                bound.input_parts.as_deref(),
                bound.rpc.then(|| {
                    (
                        bound.input_namespace.as_deref().unwrap_or(""),
                        bound.name.clone(),
                    )
                }),
                at,
                problems,
            ) else {
                continue;
            };
            let output = match &abstract_operation.output {
                Some(message) => {
                    match self.body_element(
                        schema,
                        message,
                        bound.output_parts.as_deref(),
                        bound.rpc.then(|| {
                            (
                                bound.output_namespace.as_deref().unwrap_or(""),
                                format!("{}Response", bound.name),
                            )
                        }),
                        at,
                        problems,
                    ) {
                        Some(output) => Some(output),
                        None => continue,
                    }
                }
                None => None,
            };
            let mut headers = Vec::new();
            for (message, part_name) in &bound.headers {
                let part = self
                    .messages
                    .get(message)
                    .and_then(|parts| parts.iter().find(|p| &p.name == part_name));
                match part.and_then(|p| p.element.as_ref()) {
                    Some(name) => match schema.global_element(name) {
                        Some(element) => headers.push(HeaderPart {
                            name: name.clone(),
                            element,
                        }),
                        None => problems.push(problem(binding_file, Some(bound.line), format!("header element {name} of operation {} is not declared in any schema", bound.name))),
                    },
                    None => problems.push(problem(binding_file, Some(bound.line), format!("header part {part_name} of message {message} (operation {}) is not an element part", bound.name))),
                }
            }
            let faults = abstract_operation
                .faults
                .iter()
                .filter_map(|m| self.messages.get(m))
                .flat_map(|parts| parts.iter().filter_map(|p| p.element.clone()))
                .collect();
            operations.push(Operation {
                name: bound.name.clone(),
                action: bound.action.clone(),
                access: Access::of(&bound.name, abstract_operation.access.as_deref()),
                input_name: schema.element(input).name.clone(),
                input,
                headers,
                output,
                faults,
            });
        }
        Some(operations)
    }

    /// The Body element of a message: the element part (document style) or an rpc wrapper
    /// `{namespace}operation` holding the parts.
    fn body_element(
        &self,
        schema: &mut Schema,
        message: &QualifiedName,
        parts_filter: Option<&[String]>,
        rpc: Option<(&str, String)>,
        (file, line): (&Path, usize),
        problems: &mut Vec<Problem>,
    ) -> Option<ElementId> {
        let Some(parts) = self.messages.get(message) else {
            problems.push(problem(
                file,
                Some(line),
                format!("message {message} is not defined"),
            ));
            return None;
        };
        let parts: Vec<&MessagePart> = parts
            .iter()
            .filter(|p| parts_filter.is_none_or(|names| names.contains(&p.name)))
            .collect();
        if let Some((namespace, wrapper)) = rpc {
            let mut members = Vec::new();
            for part in parts {
                let ty = match (&part.ty, &part.element) {
                    (Some(ty), _) if ty.namespace == XSD_NS => xsd::Builtin::from_local(&ty.local)
                        .map_or(TypeRef::Builtin(xsd::Builtin::AnyType), TypeRef::Builtin),
                    (Some(ty), _) => match schema.global_types.get(ty) {
                        Some(id) => TypeRef::Defined(*id),
                        None => {
                            problems.push(problem(
                                file,
                                Some(line),
                                format!("type {ty} of part {} is not defined", part.name),
                            ));
                            return None;
                        }
                    },
                    (None, Some(element)) => match schema.global_element(element) {
                        Some(id) => schema.element(id).ty,
                        None => {
                            problems.push(problem(
                                file,
                                Some(line),
                                format!("element {element} of part {} is not declared", part.name),
                            ));
                            return None;
                        }
                    },
                    (None, None) => TypeRef::Builtin(xsd::Builtin::AnyType),
                };
                members.push((
                    QualifiedName {
                        namespace: String::new(),
                        local: part.name.clone(),
                    },
                    ty,
                ));
            }
            return Some(Compiler::add_synthetic_element(
                schema,
                QualifiedName {
                    namespace: namespace.to_owned(),
                    local: wrapper,
                },
                members,
            ));
        }
        let [part] = parts.as_slice() else {
            problems.push(problem(file, Some(line), format!("message {message} has {} body parts; document/literal needs exactly one element part", parts.len())));
            return None;
        };
        let Some(element) = &part.element else {
            problems.push(problem(
                file,
                Some(line),
                format!(
                    "part {} of message {message} has no element (document/literal needs element=)",
                    part.name
                ),
            ));
            return None;
        };
        match schema.global_element(element) {
            Some(id) => Some(id),
            None => {
                problems.push(problem(file, Some(line), format!("element {element} of message {message} is not declared in any schema of this WSDL")));
                None
            }
        }
    }
}

/// The path of a soap:address location (`https://host/a/b.svc` → `/a/b.svc`).
fn path_of(location: &str) -> String {
    let rest = match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => location,
    };
    let path = rest.split(['?', '#']).next().unwrap_or("/");
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

#[cfg(test)]
mod tests;

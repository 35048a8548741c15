//! Loading a WSDL: reading it (decoded by [`crate::encoding`]) and, breadth first, every
//! document it imports by relative location — WSDLs, schemas and WS-Policy documents; collecting
//! its messages, portTypes, bindings and services across those documents; compiling its schemas;
//! and building the endpoints of its SOAP ports. Any problem rejects the file, and every problem
//! is reported with file and line.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::compile::{Compiler, PatternCache, SchemaSource};
use super::policy;
use super::xml::{self, Element};
use super::xsd::{self, ElementId, Schema, TypeRef, XSD_NS};
use super::{
    Access, Endpoint, HeaderPart, Operation, Part, Port, Problem, Wsdl, CATALOG_NS,
    SOAP11_BINDING_NS, SOAP12_BINDING_NS, WSDL_NS,
};
use crate::config::CatalogConfig;
use crate::soap::{QualifiedName, SoapVersion};

/// What kind of document an import pulls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DocKind {
    Wsdl,
    Xsd,
    /// A WS-Policy document (`wsdl:import`ed, as OIO services do): listed, not enforced.
    Policy,
}

/// A document still to read, and what the document that refers to it says about it.
#[derive(Debug, Clone)]
struct Pending {
    path: PathBuf,
    /// What the reference expects (a `wsdl:import` may also name a schema or a policy).
    kind: DocKind,
    chameleon: Option<String>,
    /// The namespace prefixes in scope where the document is referred to, for prefixes an
    /// included schema uses without declaring them (seen in OIO contracts).
    inherited: Option<Arc<HashMap<String, String>>>,
}

/// A loaded document of one WSDL set.
struct Doc {
    file: PathBuf,
    kind: DocKind,
    root: Element,
    text: String,
    /// For an included schema without a target namespace: its includer's.
    chameleon: Option<String>,
    /// Prefixes in scope at the reference to this document.
    inherited: Option<Arc<HashMap<String, String>>>,
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
pub(super) fn load_wsdl(
    file: &Path,
    index: usize,
    config: &CatalogConfig,
    patterns: &mut PatternCache,
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
    let mut sources: Vec<SchemaSource<'_>> = Vec::new();
    for doc in &docs {
        match doc.kind {
            DocKind::Wsdl => {
                for types in doc.root.children_named(WSDL_NS, "types") {
                    for schema in types.children_named(XSD_NS, "schema") {
                        sources.push(SchemaSource {
                            root: schema,
                            target: schema.attribute("targetNamespace").unwrap_or(""),
                            chameleon: false,
                            inherited: None,
                            file: &doc.file,
                        });
                    }
                }
            }
            DocKind::Xsd => {
                let own = doc.root.attribute("targetNamespace");
                sources.push(SchemaSource {
                    root: &doc.root,
                    target: own.or(doc.chameleon.as_deref()).unwrap_or(""),
                    chameleon: own.is_none() && doc.chameleon.is_some(),
                    inherited: doc.inherited.as_deref(),
                    file: &doc.file,
                });
            }
            DocKind::Policy => {}
        }
    }
    let (mut schema, schema_problems, mut notes) = Compiler::new(sources, patterns).compile_all();
    problems.extend(schema_problems);
    let documents: Vec<(&Path, &Element, bool)> = docs
        .iter()
        .map(|d| (d.file.as_path(), &d.root, d.kind == DocKind::Policy))
        .collect();
    let (policies, policy_notes) = policy::collect(&documents);
    notes.extend(policies.iter().map(policy::Policy::note));
    notes.extend(policy_notes);

    let definitions = Definitions::collect(&docs, &mut problems);
    let endpoints = definitions.endpoints(&mut schema, index, config, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    let parts = docs
        .into_iter()
        .map(|doc| {
            let namespaces = match doc.kind {
                DocKind::Wsdl => doc
                    .root
                    .children_named(WSDL_NS, "types")
                    .flat_map(|t| t.children_named(XSD_NS, "schema"))
                    .map(|s| s.attribute("targetNamespace").unwrap_or("").to_owned())
                    .collect(),
                DocKind::Xsd => doc
                    .root
                    .attribute("targetNamespace")
                    .map(str::to_owned)
                    .into_iter()
                    .collect(),
                DocKind::Policy => Vec::new(),
            };
            let own = doc.root.namespaces();
            let mut inherited: Vec<(String, String)> = doc
                .inherited
                .iter()
                .flat_map(|scope| scope.iter())
                .filter(|(prefix, _)| !own.contains_key(*prefix))
                .map(|(prefix, namespace)| (prefix.clone(), namespace.clone()))
                .collect();
            inherited.sort();
            Part {
                key: doc.key,
                file: doc.file,
                text: doc.text,
                locations: doc.locations,
                namespaces,
                inherited,
            }
        })
        .collect();
    Ok((
        Wsdl {
            file: file.to_owned(),
            schema,
            parts,
            policies,
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
    let mut queue: Vec<Pending> = vec![Pending {
        path: file.to_owned(),
        kind: DocKind::Wsdl,
        chameleon: None,
        inherited: None,
    }];
    let mut next = 0;
    while let Some(pending) = queue.get(next).cloned() {
        next += 1;
        let Pending {
            path,
            kind: expected,
            chameleon,
            inherited,
        } = pending;
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) => {
                problems.push(problem(&path, None, format!("cannot read: {error}")));
                continue;
            }
        };
        let text = match crate::encoding::decode_xml(&bytes) {
            Ok(text) => text.into_owned(),
            Err(error) => {
                problems.push(problem(&path, Some(error.line), error.to_string()));
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
        let kind = if root.is(XSD_NS, "schema") {
            DocKind::Xsd
        } else if policy::is_policy(&root) {
            DocKind::Policy
        } else {
            DocKind::Wsdl
        };
        if kind != expected && (expected == DocKind::Xsd || docs.is_empty()) {
            let wanted = match expected {
                DocKind::Xsd => "an xs:schema document",
                _ => "a WSDL 1.1 wsdl:definitions document",
            };
            problems.push(problem(
                &path,
                Some(root.line),
                format!("expected {wanted}, found {}", root.name),
            ));
            continue;
        }
        if kind == DocKind::Wsdl && !root.is(WSDL_NS, "definitions") && !docs.is_empty() {
            problems.push(problem(
                &path,
                Some(root.line),
                format!(
                    "wsdl:import names a {} document; expected a WSDL, an XSD or a WS-Policy document",
                    root.name
                ),
            ));
            continue;
        }
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
                        imports.push((import, location.to_owned(), DocKind::Wsdl, None));
                    }
                }
                for types in root.children_named(WSDL_NS, "types") {
                    schemas.extend(types.children_named(XSD_NS, "schema"));
                }
            }
            DocKind::Xsd => schemas.push(&root),
            DocKind::Policy => {}
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
                    queue.push(Pending {
                        path: target,
                        kind,
                        chameleon,
                        inherited: (kind == DocKind::Xsd).then(|| at.namespaces()),
                    });
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
            inherited,
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
                .find(|e| super::path_key(&e.path) == super::path_key(&path))
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
            // Without `parts=`, the body is every part the headers do not take (a header
            // may reuse the body's message, as OIO contracts do).
            let header_parts: Vec<&str> = bound
                .headers
                .iter()
                .filter(|(message, _)| message == input_message)
                .map(|(_, part)| part.as_str())
                .collect();
            let input_parts = bound.input_parts.clone().or_else(|| {
                let parts = self.messages.get(input_message)?;
                (!header_parts.is_empty()).then(|| {
                    parts
                        .iter()
                        .filter(|p| !header_parts.contains(&p.name.as_str()))
                        .map(|p| p.name.clone())
                        .collect()
                })
            });
            let Some(input) = self.body_element(
                schema,
                input_message,
                input_parts.as_deref(),
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

/// The path of a soap:address location, percent-decoded (`https://host/a/b.svc` → `/a/b.svc`).
pub(super) fn path_of(location: &str) -> String {
    let rest = match location.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => location,
    };
    let path = rest.split(['?', '#']).next().unwrap_or("/");
    let path = crate::encoding::percent_decode(path).unwrap_or(std::borrow::Cow::Borrowed(path));
    if path.starts_with('/') {
        path.into_owned()
    } else {
        format!("/{path}")
    }
}

//! The catalog over HTTP GET: `<path>?wsdl` (and `?singleWsdl`, any case) returns the WSDL with
//! every `soap:address`/`soap12:address` pointing at the address the caller used, `?part=<name>`
//! returns an imported WSDL or XSD with its own import locations rewritten the same way,
//! `?example=<Operation>` returns a request envelope that validates (headers included, filled in
//! for the certificate the caller presented), and
//! `/` lists the services, their operations and WSDL links. Query values are percent-decoded.
//! `&tools` asks for the tool-friendly [`Form`]: each schema also declares the prefixes it uses
//! and imports the namespaces it refers to. [`files`] gives the same documents for a folder (a
//! welcome pack), imports pointing at the files beside them. Rewriting is one streaming pass over
//! the stored text that changes only those attribute values (and, tool-friendly, adds to each
//! `xs:schema` start tag and its first children).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use quick_xml::events::{BytesDecl, BytesStart, BytesText, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::{NsReader, Writer};

use super::sample::Overrides;
use super::xsd::XSD_NS;
use super::{Catalog, Endpoint, Part, SOAP11_BINDING_NS, SOAP12_BINDING_NS, WSDL_NS};
use crate::encoding::{decode_query_value, percent_encode};

/// What a GET asks of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// Text, with its media type.
    Found {
        content_type: &'static str,
        body: String,
    },
    /// 404 with the list of served endpoints.
    NotFound(String),
}

/// Answers a GET for `path` and `query` (without `?`); `base` is the scheme and authority the
/// caller used, e.g. `https://localhost:8443`.
pub fn get(catalog: &Catalog, path: &str, query: Option<&str>, base: &str) -> Page {
    get_as(catalog, path, query, base, &Overrides::default())
}

/// [`get`] for a caller: `?example=` fills in `caller`'s values (the STAR headers of the
/// certificate the caller presented, [`Overrides::for_identity`]), so the example passes the
/// identity checks when sent with that certificate.
pub fn get_as(
    catalog: &Catalog,
    path: &str,
    query: Option<&str>,
    base: &str,
    caller: &Overrides,
) -> Page {
    if path == "/" || path.is_empty() {
        return Page::Found {
            content_type: "text/plain; charset=utf-8",
            body: listing(catalog, base),
        };
    }
    let Some(endpoint) = catalog.endpoint(path) else {
        return Page::NotFound(not_found(catalog, path, base));
    };
    let wsdl = &catalog.wsdls[endpoint.wsdl];
    let mut wants_wsdl = false;
    let mut form = Form::Published;
    let mut part = None;
    let mut example = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = match (decode_query_value(name), decode_query_value(value)) {
            (Ok(name), Ok(value)) => (name, value),
            (Err(problem), _) | (_, Err(problem)) => {
                return Page::NotFound(format!("{problem}; percent-encode the query as UTF-8\n"))
            }
        };
        if name.eq_ignore_ascii_case("wsdl") || name.eq_ignore_ascii_case("singlewsdl") {
            wants_wsdl = true;
        } else if name.eq_ignore_ascii_case("part") || name.eq_ignore_ascii_case("xsd") {
            part = Some(value);
        } else if name.eq_ignore_ascii_case("example") {
            example = Some(value);
        } else if name.eq_ignore_ascii_case("tools") {
            form = Form::Tools;
        }
    }
    if let Some(operation) = example {
        let route = endpoint.ports.iter().find_map(|port| {
            let found = port.operations.iter().find(|o| o.name == *operation)?;
            catalog
                .route(
                    &endpoint.path,
                    port.version,
                    found.action.as_deref(),
                    &found.input_name,
                )
                .ok()
        });
        return match route {
            Some(route) => Page::Found {
                content_type: route.port.version.content_type(),
                body: route.example_request_with(time::OffsetDateTime::now_utc(), caller),
            },
            None => Page::NotFound(format!(
                "{} has no operation '{operation}'\n",
                endpoint.service
            )),
        };
    }
    if let Some(key) = part {
        return match wsdl
            .parts
            .iter()
            .find(|p| !p.key.is_empty() && p.key == *key)
        {
            Some(part) => Page::Found {
                content_type: "text/xml; charset=utf-8",
                body: rewrite(part, endpoint, catalog, base, form),
            },
            None => Page::NotFound(format!("{path} has no part '{key}'\n")),
        };
    }
    if wants_wsdl {
        return Page::Found {
            content_type: "text/xml; charset=utf-8",
            body: rewrite(&wsdl.parts[0], endpoint, catalog, base, form),
        };
    }
    Page::Found {
        content_type: "text/plain; charset=utf-8",
        body: describe(endpoint, catalog, base),
    }
}

/// The catalog as text: services, SOAP versions, operations with read/write, WSDL links.
pub fn listing(catalog: &Catalog, base: &str) -> String {
    let mut out = String::from(
        "dfdg-mock: an offline imitation of STAR's DFDG/Jobnet SOAP webservices.\n\nServices:\n",
    );
    for endpoint in &catalog.endpoints {
        out.push('\n');
        out.push_str(&describe(endpoint, catalog, base));
    }
    out
}

fn describe(endpoint: &Endpoint, catalog: &Catalog, base: &str) -> String {
    let mut out = String::new();
    let versions: Vec<String> = endpoint
        .ports
        .iter()
        .map(|p| p.version.to_string())
        .collect();
    let path = percent_encode(&endpoint.path);
    let _ = writeln!(
        out,
        "{} ({}, validation {})\n  address: {base}{path}\n  WSDL:    {base}{path}?wsdl\n  source:  {}",
        endpoint.service,
        versions.join(", "),
        endpoint.validation.as_str(),
        catalog.wsdls[endpoint.wsdl].file.display()
    );
    for port in &endpoint.ports {
        for operation in &port.operations {
            let _ = writeln!(
                out,
                "  - {} [{}] action {}\n    example request: {base}{path}?example={}",
                operation.name,
                operation.access.label(),
                operation.action.as_deref().unwrap_or("(none)"),
                percent_encode(&operation.name)
            );
        }
    }
    out
}

fn not_found(catalog: &Catalog, path: &str, base: &str) -> String {
    let path = crate::encoding::percent_decode(path).unwrap_or(std::borrow::Cow::Borrowed(path));
    let mut out = format!("No service at {path}. Served endpoints:\n");
    for endpoint in &catalog.endpoints {
        let _ = writeln!(
            out,
            "  {base}{}  ({})",
            percent_encode(&endpoint.path),
            endpoint.service
        );
    }
    out
}

/// Which form of a document is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// As the contract's author wrote it (addresses and import locations pointed at us).
    Published,
    /// For strict tools (`?wsdl&tools`): besides what `Published` changes, every schema
    /// declares the namespace prefixes it uses (also those it borrowed from the
    /// `wsdl:definitions` element or from the file that includes it) and `xs:import`s every
    /// namespace it refers to. JAX-WS `wsimport`, `svcutil` and suds need that; the contract
    /// is the same.
    Tools,
}

impl Form {
    /// The query that asks for this form, after `?wsdl` or `?part=…`.
    pub fn query(self) -> &'static str {
        match self {
            Form::Published => "",
            Form::Tools => "&tools",
        }
    }
}

/// Where a rewritten import location points.
#[derive(Clone, Copy)]
enum Links {
    /// `<base><path>?part=<key>`: served by the mock.
    Served,
    /// The relative path of the part's file, when every part is written at its key beside the
    /// WSDL (a welcome pack).
    Files,
}

/// The WSDL of `endpoint` and every part it imports as files for one folder: (relative path,
/// text). The WSDL keeps its file name, each part is written at its key (e.g.
/// `common/RequestUserMetadata.xsd`); import locations are rewritten to those relative paths, so
/// they resolve inside the folder, and every address points at `base`
/// (e.g. `https://localhost:8443`).
pub fn files(
    catalog: &Catalog,
    endpoint: &Endpoint,
    base: &str,
    form: Form,
) -> Vec<(String, String)> {
    let wsdl = &catalog.wsdls[endpoint.wsdl];
    let name = wsdl.file.file_name().map_or_else(
        || format!("{}.wsdl", endpoint.service),
        |name| name.to_string_lossy().into_owned(),
    );
    wsdl.parts
        .iter()
        .map(|part| {
            let path = if part.key.is_empty() {
                name.clone()
            } else {
                part.key.clone()
            };
            let rewrite = Rewrite {
                part,
                endpoint,
                catalog,
                base,
                links: Links::Files,
                form,
            };
            (path, rewrite.text())
        })
        .collect()
}

/// The path of `target` relative to the folder of `from` (both `/`-separated keys).
fn relative(from: &str, target: &str) -> String {
    let from: Vec<&str> = from.split('/').collect();
    let from_dir = &from[..from.len().saturating_sub(1)];
    let target: Vec<&str> = target.split('/').collect();
    let common = from_dir
        .iter()
        .zip(&target)
        .take_while(|(a, b)| a == b)
        .count();
    let mut out: Vec<&str> = vec![".."; from_dir.len() - common];
    out.extend(&target[common.min(target.len())..]);
    out.join("/")
}

/// The part's text with addresses and import locations rewritten for `base`.
fn rewrite(part: &Part, endpoint: &Endpoint, catalog: &Catalog, base: &str, form: Form) -> String {
    Rewrite {
        part,
        endpoint,
        catalog,
        base,
        links: Links::Served,
        form,
    }
    .text()
}

/// One served document: which, for whom, in which form.
struct Rewrite<'a> {
    part: &'a Part,
    endpoint: &'a Endpoint,
    catalog: &'a Catalog,
    base: &'a str,
    links: Links,
    form: Form,
}

/// An `xs:schema` element being read in the tool-friendly form: held back until its end, so
/// the declarations and imports it lacks can be added to its start.
struct PendingSchema<'t> {
    start: BytesStart<'t>,
    /// Its content as read (locations already rewritten), up to its end tag.
    events: Vec<Event<'t>>,
    /// Open elements below and including the schema: the prefixes each declares.
    declared: Vec<Vec<String>>,
    /// Prefixes used without a declaration inside the schema → their namespace.
    needed: BTreeMap<String, String>,
    /// Namespaces its QName values refer to.
    referenced: BTreeSet<String>,
    /// Namespaces it already imports.
    imported: BTreeSet<String>,
}

/// Attributes of XSD elements whose values are QNames (or, `memberTypes`, lists of them).
const QNAME_ATTRIBUTES: [&str; 7] = [
    "type",
    "base",
    "ref",
    "itemType",
    "substitutionGroup",
    "refer",
    "memberTypes",
];

impl Rewrite<'_> {
    fn text(&self) -> String {
        match self.try_text() {
            Some(text) => text,
            // The text parsed at start-up; should a rewrite fail anyway, serve it unchanged.
            None => self.part.text.clone(),
        }
    }

    fn try_text(&self) -> Option<String> {
        let text = self.part.text.as_str();
        let mut reader = NsReader::from_str(text);
        let mut writer = Writer::new(Vec::with_capacity(text.len() + 256));
        // (namespace, local name) of the open elements.
        let mut open: Vec<(String, String)> = Vec::new();
        let mut schema: Option<PendingSchema<'_>> = None;
        loop {
            let (namespace, event) = reader.read_resolved_event().ok()?;
            let namespace = match namespace {
                ResolveResult::Bound(ns) => ns.as_ref().to_owned(),
                _ => String::new(),
            };
            let is_empty = matches!(event, Event::Empty(_));
            let event = match event {
                Event::Eof => break,
                Event::Start(start) | Event::Empty(start)
                    if self.form == Form::Tools
                        && schema.is_none()
                        && namespace == XSD_NS
                        && start.local_name().as_ref() == "schema"
                        && open
                            .last()
                            .is_none_or(|(ns, local)| ns == WSDL_NS && local == "types") =>
                {
                    let mut pending = PendingSchema {
                        start: start.clone(),
                        events: Vec::new(),
                        declared: vec![declarations(&start)],
                        needed: BTreeMap::new(),
                        referenced: BTreeSet::new(),
                        imported: BTreeSet::new(),
                    };
                    self.observe(&reader, &start, &namespace, &mut pending);
                    if is_empty {
                        // `<xs:schema/>`: nothing to hold back.
                        self.write_schema(&mut writer, pending, None)?;
                    } else {
                        schema = Some(pending);
                        open.push((namespace, start.local_name().as_ref().to_owned()));
                    }
                    continue;
                }
                Event::Start(start) => {
                    let rewritten = self.rewrite_start(&start, &namespace)?;
                    if let Some(pending) = schema.as_mut() {
                        pending.declared.push(declarations(&start));
                        self.observe(&reader, &start, &namespace, pending);
                        if pending.declared.len() == 2
                            && namespace == XSD_NS
                            && start.local_name().as_ref() == "import"
                        {
                            pending.imported.insert(attribute(&start, "namespace"));
                        }
                    }
                    open.push((namespace, start.local_name().as_ref().to_owned()));
                    Event::Start(rewritten)
                }
                Event::Empty(start) => {
                    let rewritten = self.rewrite_start(&start, &namespace)?;
                    if let Some(pending) = schema.as_mut() {
                        pending.declared.push(declarations(&start));
                        self.observe(&reader, &start, &namespace, pending);
                        pending.declared.pop();
                        if pending.declared.len() == 1
                            && namespace == XSD_NS
                            && start.local_name().as_ref() == "import"
                        {
                            pending.imported.insert(attribute(&start, "namespace"));
                        }
                    }
                    Event::Empty(rewritten)
                }
                Event::End(end) => {
                    open.pop();
                    if let Some(pending) = schema.as_mut() {
                        pending.declared.pop();
                        if pending.declared.is_empty() {
                            let pending = schema.take()?;
                            self.write_schema(&mut writer, pending, Some(Event::End(end)))?;
                            continue;
                        }
                    }
                    Event::End(end)
                }
                // The text is UTF-8 whatever the file was saved in; say so.
                Event::Decl(declaration) if declaration.encoding().is_some() => {
                    let version = declaration.version().ok()?.into_owned();
                    let standalone = match declaration.standalone() {
                        Some(value) => Some(value.ok()?.into_owned()),
                        None => None,
                    };
                    Event::Decl(BytesDecl::new(
                        &version,
                        Some("utf-8"),
                        standalone.as_deref(),
                    ))
                }
                other => other,
            };
            match schema.as_mut() {
                Some(pending) => pending.events.push(event),
                None => writer.write_event(event).ok()?,
            }
        }
        if schema.is_some() {
            return None; // The document ends inside a schema: it did not parse at start-up.
        }
        String::from_utf8(writer.into_inner()).ok()
    }

    /// Notes the prefixes `start` uses that no element of the schema declares, and the
    /// namespaces its QName values name.
    fn observe(
        &self,
        reader: &NsReader<&[u8]>,
        start: &BytesStart<'_>,
        namespace: &str,
        pending: &mut PendingSchema<'_>,
    ) {
        let declared = |pending: &PendingSchema<'_>, prefix: &str| {
            pending
                .declared
                .iter()
                .any(|level| level.iter().any(|p| p == prefix))
        };
        let mut uses: Vec<(String, Option<String>)> = Vec::new();
        let tag = start.name();
        uses.push((
            tag.prefix()
                .map_or(String::new(), |p| p.as_ref().to_owned()),
            Some(namespace.to_owned()),
        ));
        for attribute in start.attributes().flatten() {
            let key = attribute.key;
            if key.as_ref() == "xmlns" || key.as_ref().starts_with("xmlns:") {
                continue;
            }
            if let Some(prefix) = key.prefix() {
                let (resolved, _) = reader.resolver().resolve_attribute(key);
                uses.push((prefix.as_ref().to_owned(), bound(&resolved)));
            }
            if namespace != XSD_NS || !QNAME_ATTRIBUTES.contains(&key.as_ref()) {
                continue;
            }
            let Ok(value) = attribute.normalized_value(quick_xml::XmlVersion::Implicit1_0) else {
                continue;
            };
            for name in value.split_whitespace() {
                let qname = QName(name);
                let prefix = qname
                    .prefix()
                    .map_or(String::new(), |p| p.as_ref().to_owned());
                let (resolved, _) = reader.resolver().resolve_element(qname);
                let target = match &resolved {
                    ResolveResult::Bound(ns) => Some(ns.as_ref().to_owned()),
                    ResolveResult::Unbound => None,
                    // A prefix the including file declares (see `Part::inherited`).
                    ResolveResult::Unknown(_) => self
                        .part
                        .inherited
                        .iter()
                        .find(|(p, _)| *p == prefix)
                        .map(|(_, ns)| ns.clone()),
                };
                if let Some(target) = &target {
                    pending.referenced.insert(target.clone());
                }
                uses.push((prefix, target));
            }
        }
        for (prefix, target) in uses {
            let Some(target) = target.filter(|t| !t.is_empty()) else {
                continue;
            };
            if prefix == "xml" || declared(pending, &prefix) {
                continue;
            }
            pending.needed.entry(prefix).or_insert(target);
        }
    }

    /// Writes a held-back schema: its start tag with the declarations it lacks, the imports it
    /// lacks, then its content.
    fn write_schema(
        &self,
        writer: &mut Writer<Vec<u8>>,
        pending: PendingSchema<'_>,
        end: Option<Event<'_>>,
    ) -> Option<()> {
        let mut start = self.rewrite_start(&pending.start, XSD_NS)?;
        for (prefix, namespace) in &pending.needed {
            let key = if prefix.is_empty() {
                "xmlns".to_owned()
            } else {
                format!("xmlns:{prefix}")
            };
            start.push_attribute((key.as_str(), namespace.as_str()));
        }
        let target = attribute(&pending.start, "targetNamespace");
        let missing: Vec<&String> = pending
            .referenced
            .iter()
            .filter(|ns| {
                !ns.is_empty()
                    && **ns != target
                    && ns.as_str() != XSD_NS
                    && ns.as_str() != super::xml_namespace()
                    && !pending.imported.contains(*ns)
            })
            .collect();
        let has_content = !missing.is_empty() || !pending.events.is_empty();
        if has_content {
            writer.write_event(Event::Start(start.borrow())).ok()?;
        } else {
            writer.write_event(Event::Empty(start.borrow())).ok()?;
            return Some(());
        }
        let tag = pending.start.name();
        let import_tag = match tag.prefix() {
            Some(prefix) => format!("{}:import", prefix.as_ref()),
            None => "import".to_owned(),
        };
        // Indented as the schema's first child is.
        let indent = match pending.events.first() {
            Some(Event::Text(text)) => {
                let text: &str = text.as_ref();
                text.rfind('\n')
                    .map(|i| text[i..].to_owned())
                    .filter(|t| t.trim().is_empty())
            }
            _ => None,
        };
        for namespace in missing {
            if let Some(indent) = &indent {
                writer
                    .write_event(Event::Text(BytesText::from_escaped(indent.as_str())))
                    .ok()?;
            }
            let mut import = BytesStart::new(import_tag.as_str());
            import.push_attribute(("namespace", namespace.as_str()));
            if let Some(location) = self.location_of(namespace) {
                import.push_attribute(("schemaLocation", location.as_str()));
            }
            writer.write_event(Event::Empty(import)).ok()?;
        }
        for event in pending.events {
            writer.write_event(event).ok()?;
        }
        match end {
            Some(end) => writer.write_event(end).ok()?,
            // It was `<xs:schema/>`; now it holds imports.
            None => {
                let name = tag.as_ref().to_owned();
                writer
                    .write_event(Event::End(quick_xml::events::BytesEnd::new(name)))
                    .ok()?;
            }
        }
        Some(())
    }

    /// Where an added import of `namespace` points: the imported XSD part that defines it, or
    /// nothing when a schema of this document defines it (tools find inline schemas by
    /// namespace) or none does.
    fn location_of(&self, namespace: &str) -> Option<String> {
        if self.part.namespaces.iter().any(|n| n == namespace) {
            return None;
        }
        let wsdl = &self.catalog.wsdls[self.endpoint.wsdl];
        let part = wsdl
            .parts
            .iter()
            .find(|p| !p.key.is_empty() && p.namespaces.iter().any(|n| n == namespace))?;
        Some(self.link(&part.key))
    }

    /// The location of the part `key` as this document's links are written.
    fn link(&self, key: &str) -> String {
        match self.links {
            Links::Served => format!(
                "{}{}?part={key}{}",
                self.base,
                percent_encode(&self.endpoint.path),
                self.form.query()
            ),
            // The WSDL itself (key "") sits at the folder's top.
            Links::Files => relative(&self.part.key, key),
        }
    }

    fn rewrite_start<'t>(&self, start: &BytesStart<'t>, namespace: &str) -> Option<BytesStart<'t>> {
        let local = start.local_name();
        let local = local.as_ref();
        let target = match (namespace, local) {
            (SOAP11_BINDING_NS | SOAP12_BINDING_NS, "address") => Some("location"),
            (WSDL_NS, "import") => Some("location"),
            (XSD_NS, "import" | "include" | "redefine") => Some("schemaLocation"),
            _ => None,
        };
        let Some(target) = target else {
            return Some(start.clone());
        };
        let mut rewritten = BytesStart::new(start.name().as_ref().to_owned());
        for attribute in start.attributes() {
            let attribute = attribute.ok()?;
            let key = attribute.key.as_ref().to_owned();
            let value = attribute
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()?
                .into_owned();
            let value = if key == target {
                if local == "address" {
                    format!(
                        "{}{}",
                        self.base,
                        percent_encode(address_path(self.endpoint, self.catalog, &value))
                    )
                } else {
                    match self.part.locations.get(&value) {
                        Some(key) => self.link(key),
                        None => value,
                    }
                }
            } else {
                value
            };
            rewritten.push_attribute((key.as_str(), value.as_str()));
        }
        Some(rewritten)
    }
}

/// The prefixes `start` declares ("" for a default namespace).
fn declarations(start: &BytesStart<'_>) -> Vec<String> {
    start
        .attributes()
        .flatten()
        .filter_map(|a| {
            let key = a.key.as_ref();
            if key == "xmlns" {
                Some(String::new())
            } else {
                key.strip_prefix("xmlns:").map(str::to_owned)
            }
        })
        .collect()
}

/// The value of the unprefixed attribute `name`, or "".
fn attribute(start: &BytesStart<'_>, name: &str) -> String {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok())
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

fn bound(resolved: &ResolveResult<'_>) -> Option<String> {
    match resolved {
        ResolveResult::Bound(ns) => Some(ns.as_ref().to_owned()),
        _ => None,
    }
}

/// The served path for a soap:address: the endpoint whose WSDL declares it, when served.
fn address_path<'c>(endpoint: &'c Endpoint, catalog: &'c Catalog, location: &str) -> &'c str {
    let declared = super::load::path_of(location);
    catalog
        .endpoints
        .iter()
        .filter(|e| e.wsdl == endpoint.wsdl)
        .find(|e| super::path_key(&e.path) == super::path_key(&declared))
        .map_or(endpoint.path.as_str(), |e| e.path.as_str())
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn relative_paths_between_part_keys() {
        assert_eq!(relative("", "common/A.xsd"), "common/A.xsd");
        assert_eq!(relative("common/B.xsd", "common/A.xsd"), "A.xsd");
        assert_eq!(relative("common/B.xsd", "x/A.xsd"), "../x/A.xsd");
        assert_eq!(relative("a/b/C.xsd", "D.xsd"), "../../D.xsd");
    }
}

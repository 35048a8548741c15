//! The catalog over HTTP GET: `<path>?wsdl` (and `?singleWsdl`, any case) returns the WSDL with
//! every `soap:address`/`soap12:address` pointing at the address the caller used, `?part=<name>`
//! returns an imported WSDL or XSD with its own import locations rewritten the same way,
//! `?example=<Operation>` returns a request envelope that validates (headers included), and
//! `/` lists the services, their operations and WSDL links. [`files`] gives the same documents
//! for a folder (a welcome pack), imports pointing at the files beside them. Rewriting is one streaming pass
//! over the stored text that changes only those attribute values.

use std::fmt::Write as _;

use quick_xml::events::{BytesDecl, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, Writer};

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
                body: route.example_request(time::OffsetDateTime::now_utc()),
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
                body: rewrite(part, endpoint, catalog, base),
            },
            None => Page::NotFound(format!("{path} has no part '{key}'\n")),
        };
    }
    if wants_wsdl {
        return Page::Found {
            content_type: "text/xml; charset=utf-8",
            body: rewrite(&wsdl.parts[0], endpoint, catalog, base),
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
pub fn files(catalog: &Catalog, endpoint: &Endpoint, base: &str) -> Vec<(String, String)> {
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
            (
                path,
                rewrite_as(part, endpoint, catalog, base, Links::Files),
            )
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
fn rewrite(part: &Part, endpoint: &Endpoint, catalog: &Catalog, base: &str) -> String {
    rewrite_as(part, endpoint, catalog, base, Links::Served)
}

fn rewrite_as(
    part: &Part,
    endpoint: &Endpoint,
    catalog: &Catalog,
    base: &str,
    links: Links,
) -> String {
    match try_rewrite(part, endpoint, catalog, base, links) {
        Some(text) => text,
        // The text parsed at start-up; should a rewrite fail anyway, serve it unchanged.
        None => part.text.clone(),
    }
}

fn try_rewrite(
    part: &Part,
    endpoint: &Endpoint,
    catalog: &Catalog,
    base: &str,
    links: Links,
) -> Option<String> {
    let mut reader = NsReader::from_str(&part.text);
    let mut writer = Writer::new(Vec::with_capacity(part.text.len() + 256));
    loop {
        let (namespace, event) = reader.read_resolved_event().ok()?;
        let namespace = match namespace {
            ResolveResult::Bound(ns) => ns.as_ref().to_owned(),
            _ => String::new(),
        };
        match event {
            Event::Eof => break,
            Event::Start(start) => {
                let start =
                    rewrite_start(&start, &namespace, part, endpoint, catalog, base, links)?;
                writer.write_event(Event::Start(start)).ok()?;
            }
            Event::Empty(start) => {
                let start =
                    rewrite_start(&start, &namespace, part, endpoint, catalog, base, links)?;
                writer.write_event(Event::Empty(start)).ok()?;
            }
            // The text is UTF-8 whatever the file was saved in; say so.
            Event::Decl(declaration) if declaration.encoding().is_some() => {
                let version = declaration.version().ok()?.into_owned();
                let standalone = match declaration.standalone() {
                    Some(value) => Some(value.ok()?.into_owned()),
                    None => None,
                };
                let utf8 = BytesDecl::new(&version, Some("utf-8"), standalone.as_deref());
                writer.write_event(Event::Decl(utf8)).ok()?;
            }
            other => writer.write_event(other).ok()?,
        }
    }
    String::from_utf8(writer.into_inner()).ok()
}

fn rewrite_start<'a>(
    start: &BytesStart<'a>,
    namespace: &str,
    part: &Part,
    endpoint: &Endpoint,
    catalog: &Catalog,
    base: &str,
    links: Links,
) -> Option<BytesStart<'a>> {
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
                    "{base}{}",
                    percent_encode(address_path(endpoint, catalog, &value))
                )
            } else {
                match (part.locations.get(&value), links) {
                    (Some(key), Links::Served) => {
                        format!("{base}{}?part={key}", percent_encode(&endpoint.path))
                    }
                    (Some(key), Links::Files) => {
                        // The WSDL itself (key "") sits at the folder's top.
                        relative(&part.key, key)
                    }
                    (None, _) => value,
                }
            }
        } else {
            value
        };
        rewritten.push_attribute((key.as_str(), value.as_str()));
    }
    Some(rewritten)
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

//! A small namespace-aware element tree: every element and attribute name resolved to its
//! namespace URI, the element's own text, and its line. [`parse`] reads WSDL and XSD documents
//! (and responses checked against their schema) into it, keeping the in-scope prefixes so
//! QName-valued attributes (`type="tns:Foo"`) resolve the way the document meant; DTDs are
//! refused, as in [`crate::soap`]. A request's header blocks and operation element are built
//! into the same tree by [`crate::soap::parse_envelope`], in its one pass, and read from there by
//! the validator and the scenario rules; they carry no prefixes, as nothing in a request is
//! resolved as a QName value.

use std::collections::HashMap;
use std::sync::Arc;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::soap::QualifiedName;

/// Namespace of `xml:` attributes; bound implicitly.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";
/// Deepest nesting accepted (as for SOAP envelopes); deeper documents are refused rather than
/// risk the stack of the recursive validator.
const MAX_DEPTH: usize = 256;

/// One element.
#[derive(Debug, Clone)]
pub struct Element {
    pub name: QualifiedName,
    /// Attributes other than namespace declarations, names resolved (unprefixed: no namespace).
    pub attributes: Vec<(QualifiedName, String)>,
    pub children: Vec<Element>,
    /// The element's own character data (concatenated, unescaped). In an element built from a
    /// request, whitespace-only runs are kept only in leaves: the indentation between child
    /// elements is no one's value (the validator and the rules read trimmed text there).
    pub text: String,
    /// 1-based line of the start tag; 0 for an element built from a request (whose findings
    /// name element paths instead).
    pub line: usize,
    /// Prefixes in scope at this element ("" is the default namespace); `None` for an element
    /// built from a request.
    scope: Option<Arc<HashMap<String, String>>>,
}

/// A document could not be parsed; carries the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct XmlProblem {
    pub line: usize,
    pub message: String,
}

impl Element {
    /// An element of a request, without children or text yet: no line, and QName values
    /// resolve to no prefix.
    pub fn new(name: QualifiedName, attributes: Vec<(QualifiedName, String)>) -> Element {
        Element {
            name,
            attributes,
            children: Vec::new(),
            text: String::new(),
            line: 0,
            scope: None,
        }
    }

    /// The first element at `path` below this one, by local names (namespaces ignored), in
    /// document order: `["Person", "Cpr"]` finds the first `Cpr` in any `Person` child.
    pub fn find_local(&self, path: &[&str]) -> Option<&Element> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        self.children
            .iter()
            .filter(|child| child.name.local == *first)
            .find_map(|child| child.find_local(rest))
    }

    /// The value of the unqualified attribute `local`.
    pub fn attribute(&self, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(name, _)| name.namespace.is_empty() && name.local == local)
            .map(|(_, value)| value.as_str())
    }

    /// The value of attribute `{namespace}local`.
    pub fn attribute_ns(&self, namespace: &str, local: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(name, _)| name.namespace == namespace && name.local == local)
            .map(|(_, value)| value.as_str())
    }

    pub fn is(&self, namespace: &str, local: &str) -> bool {
        self.name.local == local && self.name.namespace == namespace
    }

    /// Child elements named `{namespace}local`.
    pub fn children_named<'a>(
        &'a self,
        namespace: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(namespace, local))
    }

    /// The first child named `{namespace}local`.
    pub fn child(&self, namespace: &str, local: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(namespace, local))
    }

    /// Child elements in `namespace`.
    pub fn children_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children
            .iter()
            .filter(move |c| c.name.namespace == namespace)
    }

    /// The namespace prefixes in scope at this element ("" is the default namespace); none for
    /// an element built from a request.
    pub fn namespaces(&self) -> Arc<HashMap<String, String>> {
        self.scope.clone().unwrap_or_default()
    }

    /// Resolves a QName value (`prefix:local` or `local`) with this element's in-scope prefixes.
    /// An unprefixed name takes the default namespace, as XSD's QName resolution does.
    pub fn resolve_qname(&self, value: &str) -> Result<QualifiedName, String> {
        let value = value.trim();
        let (prefix, local) = match value.split_once(':') {
            Some((prefix, local)) => (prefix, local),
            None => ("", value),
        };
        if local.is_empty() {
            return Err(format!("'{value}' is not a qualified name"));
        }
        match self.scope.as_ref().and_then(|scope| scope.get(prefix)) {
            Some(namespace) => Ok(QualifiedName {
                namespace: namespace.clone(),
                local: local.to_owned(),
            }),
            None if prefix.is_empty() => Ok(QualifiedName {
                namespace: String::new(),
                local: local.to_owned(),
            }),
            None if prefix == "xml" => Ok(QualifiedName {
                namespace: XML_NS.to_owned(),
                local: local.to_owned(),
            }),
            None => Err(format!(
                "the prefix '{prefix}' in '{value}' is not declared"
            )),
        }
    }
}

/// Parses `text` into its root element.
pub fn parse(text: &str) -> Result<Element, XmlProblem> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut lines = LineCounter::default();
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let line = lines.line_at(text, before);
        let problem = |message: String| XmlProblem { line, message };
        let event = reader.read_event().map_err(|error| {
            let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
            XmlProblem {
                line: LineCounter::default().line_at(text, at),
                message: error.to_string(),
            }
        })?;
        match event {
            Event::DocType(_) => {
                return Err(problem(
                    "document type declarations (DTDs) are not allowed".to_owned(),
                ))
            }
            Event::Start(_) | Event::Empty(_) if root.is_some() => {
                return Err(problem("content after the root element".to_owned()));
            }
            Event::Start(start) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(problem(format!("nested deeper than {MAX_DEPTH} levels")));
                }
                let parent = stack.last().and_then(|e| e.scope.as_ref());
                stack.push(open(&start, parent, line).map_err(problem)?);
            }
            Event::Empty(start) => {
                let parent = stack.last().and_then(|e| e.scope.as_ref());
                let element = open(&start, parent, line).map_err(problem)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(problem("unexpected end tag".to_owned()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(content) => {
                if let Some(element) = stack.last_mut() {
                    element.text.push_str(&content.xml10_content());
                } else if !content.xml10_content().trim().is_empty() {
                    return Err(problem("text outside the root element".to_owned()));
                }
            }
            Event::CData(content) => {
                if let Some(element) = stack.last_mut() {
                    element.text.push_str(&content.xml10_content());
                }
            }
            Event::GeneralRef(reference) => {
                let name = reference.xml10_content();
                let character = match reference.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => crate::soap::predefined_entity(&name),
                    Err(error) => return Err(problem(error.to_string())),
                };
                let Some(character) = character else {
                    return Err(problem(format!("undefined entity '&{name};'")));
                };
                if let Some(element) = stack.last_mut() {
                    element.text.push(character);
                }
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlProblem {
            line: lines.line_at(text, text.len()),
            message: "the document ends inside an element".to_owned(),
        });
    }
    root.ok_or(XmlProblem {
        line: 1,
        message: "the document has no root element".to_owned(),
    })
}

fn open(
    start: &BytesStart<'_>,
    parent: Option<&Arc<HashMap<String, String>>>,
    line: usize,
) -> Result<Element, String> {
    let mut raw = Vec::new();
    let mut declarations = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let key = attribute.key.as_ref().to_owned();
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?
            .into_owned();
        if key == "xmlns" {
            declarations.push((String::new(), value));
        } else if let Some(prefix) = key.strip_prefix("xmlns:") {
            declarations.push((prefix.to_owned(), value));
        } else {
            raw.push((key, value));
        }
    }
    let scope = match (parent, declarations.is_empty()) {
        (Some(parent), true) => Arc::clone(parent),
        (parent, _) => {
            let mut scope = parent.map(|p| (**p).clone()).unwrap_or_default();
            for (prefix, namespace) in declarations {
                scope.insert(prefix, namespace);
            }
            Arc::new(scope)
        }
    };
    let tag = start.name().as_ref().to_owned();
    let name = match tag.split_once(':') {
        Some((prefix, local)) => QualifiedName {
            namespace: lookup(&scope, prefix)
                .ok_or_else(|| format!("the prefix '{prefix}' of <{tag}> is not declared"))?,
            local: local.to_owned(),
        },
        None => QualifiedName {
            namespace: scope.get("").cloned().unwrap_or_default(),
            local: tag.clone(),
        },
    };
    let mut attributes = Vec::with_capacity(raw.len());
    for (key, value) in raw {
        let name = match key.split_once(':') {
            Some((prefix, local)) => QualifiedName {
                namespace: lookup(&scope, prefix).ok_or_else(|| {
                    format!("the prefix '{prefix}' of attribute {key} is not declared")
                })?,
                local: local.to_owned(),
            },
            None => QualifiedName {
                namespace: String::new(),
                local: key,
            },
        };
        attributes.push((name, value));
    }
    Ok(Element {
        name,
        attributes,
        children: Vec::new(),
        text: String::new(),
        line,
        scope: Some(scope),
    })
}

fn lookup(scope: &HashMap<String, String>, prefix: &str) -> Option<String> {
    if prefix == "xml" {
        return Some(XML_NS.to_owned());
    }
    scope.get(prefix).filter(|ns| !ns.is_empty()).cloned()
}

/// Counts lines incrementally, since offsets only grow while parsing.
#[derive(Debug, Default)]
struct LineCounter {
    offset: usize,
    line: usize,
}

impl LineCounter {
    fn line_at(&mut self, text: &str, offset: usize) -> usize {
        let offset = offset.min(text.len());
        if offset < self.offset {
            *self = LineCounter::default();
        }
        let bytes = text.as_bytes();
        self.line += bytes[self.offset..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.offset = offset;
        self.line + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_prefixes_and_lines() {
        let text = "<?xml version=\"1.0\"?>\n<a:root xmlns:a=\"urn:a\" xmlns=\"urn:d\">\n  <child t=\"a:T\" u=\"U\">x &amp; y</child>\n</a:root>";
        let root = parse(text).unwrap();
        assert!(root.is("urn:a", "root"));
        assert_eq!(root.line, 2);
        let child = &root.children[0];
        assert!(child.is("urn:d", "child"));
        assert_eq!(child.line, 3);
        assert_eq!(child.text, "x & y");
        let t = child.resolve_qname(child.attribute("t").unwrap()).unwrap();
        assert_eq!(t.namespace, "urn:a");
        let u = child.resolve_qname("U").unwrap();
        assert_eq!(u.namespace, "urn:d");
        assert!(child.resolve_qname("zz:U").is_err());
    }

    #[test]
    fn refuses_doctype_and_broken_xml_with_line() {
        assert!(parse("<!DOCTYPE x []><x/>").is_err());
        let problem = parse("<a>\n<b></c>\n</a>").unwrap_err();
        assert_eq!(problem.line, 2, "{problem}");
    }
}

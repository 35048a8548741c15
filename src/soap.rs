//! SOAP 1.1 and 1.2 on the wire: parsing a request envelope by *resolved namespace* (never by
//! prefix), extracting STAR's two caller headers, and rendering receipts and faults in the
//! caller's SOAP version.
//!
//! Parsing is one streaming pass with quick-xml. Document type declarations are refused (so no
//! entity is ever declared, let alone expanded), only the five predefined entities and character
//! references are accepted, and nesting depth is bounded. Every problem carries the line:column
//! where it was found.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use quick_xml::escape::{escape, partial_escape};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use serde::Serialize;

pub use crate::position::Position;
use crate::wsdl::xml::Element;

/// Namespace of a SOAP 1.1 envelope.
pub const SOAP11_ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// Namespace of a SOAP 1.2 envelope.
pub const SOAP12_ENVELOPE: &str = "http://www.w3.org/2003/05/soap-envelope";
/// Namespace of STAR's `ActiveOrganisationHeader`.
pub const ACTIVE_ORGANISATION_NS: &str = "http://rep.oio.dk/ams.dk/xml/schemas/2005/09/01/";
/// Namespace of STAR's `RequestUserMetadataHeader`.
pub const REQUEST_USER_METADATA_NS: &str = "http://service.bm.dk/RequestUserMetadata/2015/01/21/";
/// Namespace of DFDG's `FaultDetails` fault detail.
pub const FAULT_DETAILS_NS: &str = "http://service.bm.dk/xml/schemas/2011/01/12/";

/// Deepest element nesting accepted in a request; real SOAP messages stay far below it.
const MAX_DEPTH: usize = 256;

/// The two SOAP versions STAR's services speak: DFDG uses 1.1, Jobnet 1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum SoapVersion {
    #[serde(rename = "1.1")]
    V11,
    #[serde(rename = "1.2")]
    V12,
}

impl SoapVersion {
    pub fn envelope_namespace(self) -> &'static str {
        match self {
            SoapVersion::V11 => SOAP11_ENVELOPE,
            SoapVersion::V12 => SOAP12_ENVELOPE,
        }
    }

    fn from_namespace(namespace: &str) -> Option<Self> {
        match namespace {
            SOAP11_ENVELOPE => Some(SoapVersion::V11),
            SOAP12_ENVELOPE => Some(SoapVersion::V12),
            _ => None,
        }
    }

    /// The media type a message of this version travels as.
    pub fn media_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml",
            SoapVersion::V12 => "application/soap+xml",
        }
    }

    /// `Content-Type` header value of a response in this version.
    pub fn content_type(self) -> &'static str {
        match self {
            SoapVersion::V11 => "text/xml; charset=utf-8",
            SoapVersion::V12 => "application/soap+xml; charset=utf-8",
        }
    }

    /// The version a media type stands for, if it is one of the two.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        if media_type.eq_ignore_ascii_case("text/xml") {
            Some(SoapVersion::V11)
        } else if media_type.eq_ignore_ascii_case("application/soap+xml") {
            Some(SoapVersion::V12)
        } else {
            None
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SoapVersion::V11 => "1.1",
            SoapVersion::V12 => "1.2",
        }
    }
}

impl fmt::Display for SoapVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SOAP {}", self.label())
    }
}

/// An element name resolved to its namespace.
#[derive(Debug, Clone, Eq, Serialize)]
pub struct QualifiedName {
    pub namespace: String,
    pub local: String,
}

impl std::hash::Hash for QualifiedName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.namespace.hash(state);
        self.local.hash(state);
    }
}

impl PartialEq for QualifiedName {
    /// Local names first: they are short and tell names apart at once, where namespace URIs
    /// share long prefixes (the validator compares names at every element).
    fn eq(&self, other: &Self) -> bool {
        self.local == other.local && self.namespace == other.namespace
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.local)
        } else {
            write!(f, "{{{}}}{}", self.namespace, self.local)
        }
    }
}

/// STAR's `ActiveOrganisationHeader`: on whose behalf the call is made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActiveOrganisation {
    pub organisation_type: Option<String>,
    pub organisation_code: Option<String>,
}

/// STAR's `RequestUserMetadataHeader`: which user (or system) makes the call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RequestUserMetadata {
    pub user_full_name: Option<String>,
    pub user_type: Option<String>,
    pub user_identifier: Option<String>,
    pub user_email: Option<String>,
    pub organisation_type: Option<String>,
    pub organisation_code: Option<String>,
    pub registration_date_time: Option<String>,
}

/// The values of STAR's caller headers, where the request carried them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StarHeaders {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_organisation: Option<ActiveOrganisation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_user: Option<RequestUserMetadata>,
}

impl StarHeaders {
    pub fn is_empty(&self) -> bool {
        self.active_organisation.is_none() && self.request_user.is_none()
    }

    /// The headers as the journal keeps them: their serde form (a header the request did not
    /// carry is left out, a value it did not carry is `null`), built directly rather than
    /// through `serde_json::to_value`, as every call needs it.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value};
        fn object(fields: &[(&str, &Option<String>)]) -> Value {
            let mut map = Map::new();
            for (key, value) in fields {
                let value = value
                    .as_ref()
                    .map_or(Value::Null, |v| Value::String(v.clone()));
                map.insert((*key).to_owned(), value);
            }
            Value::Object(map)
        }
        let mut map = Map::new();
        if let Some(header) = &self.active_organisation {
            map.insert(
                "active_organisation".to_owned(),
                object(&[
                    ("organisation_type", &header.organisation_type),
                    ("organisation_code", &header.organisation_code),
                ]),
            );
        }
        if let Some(header) = &self.request_user {
            map.insert(
                "request_user".to_owned(),
                object(&[
                    ("user_full_name", &header.user_full_name),
                    ("user_type", &header.user_type),
                    ("user_identifier", &header.user_identifier),
                    ("user_email", &header.user_email),
                    ("organisation_type", &header.organisation_type),
                    ("organisation_code", &header.organisation_code),
                    ("registration_date_time", &header.registration_date_time),
                ]),
            );
        }
        Value::Object(map)
    }
}

/// A well-formed SOAP request envelope, parsed once: what the validator, the registry's
/// identity checks and the scenario rules all read.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub version: SoapVersion,
    /// The first child of `Body`: the operation's request element, with everything in it.
    /// Shared, so that a response template can read it after the request is gone.
    pub operation: Arc<Element>,
    /// The header blocks (the children of `Header`), in order.
    pub headers: Vec<Element>,
    /// STAR's two caller headers, where the request carried them.
    pub star_headers: StarHeaders,
    /// Byte range of the operation element within the parsed text.
    pub operation_span: Range<usize>,
}

impl Envelope {
    /// The operation element's name.
    pub fn operation_name(&self) -> &QualifiedName {
        &self.operation.name
    }

    /// The header block named `{namespace}local`.
    pub fn header(&self, namespace: &str, local: &str) -> Option<&Element> {
        self.headers.iter().find(|block| block.is(namespace, local))
    }
}

/// Why a request body is not a usable SOAP envelope. Each carries where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeProblem {
    #[error("the request body is empty; expected a SOAP envelope")]
    Empty,
    #[error("the request body is {0}")]
    Encoding(crate::encoding::EncodingProblem),
    #[error("malformed XML at {at}: {message}")]
    Malformed { at: Position, message: String },
    #[error("document type declarations (DTDs) are not allowed in SOAP messages, found one at {at}; entities are never expanded")]
    Doctype { at: Position },
    #[error("undefined entity '&{name};' at {at}: only the predefined XML entities and character references are allowed")]
    UndefinedEntity { at: Position, name: String },
    #[error("the root element at {at} is {found}, not a SOAP Envelope (expected {{{SOAP11_ENVELOPE}}}Envelope or {{{SOAP12_ENVELOPE}}}Envelope)")]
    NotAnEnvelope { at: Position, found: String },
    #[error("unexpected element {found} at {at} in the SOAP envelope; expected {expected}")]
    UnexpectedElement {
        at: Position,
        found: String,
        expected: &'static str,
    },
    #[error("the SOAP envelope has no Body element")]
    MissingBody,
    #[error("the SOAP Body at {at} is empty; it must contain the operation's request element")]
    EmptyBody { at: Position },
    #[error("the XML at {at} is nested deeper than {MAX_DEPTH} levels")]
    TooDeep { at: Position },
}

impl EnvelopeProblem {
    /// Where in the document the problem sits, when it sits somewhere.
    pub fn position(&self) -> Option<Position> {
        match self {
            EnvelopeProblem::Malformed { at, .. }
            | EnvelopeProblem::Doctype { at }
            | EnvelopeProblem::UndefinedEntity { at, .. }
            | EnvelopeProblem::NotAnEnvelope { at, .. }
            | EnvelopeProblem::UnexpectedElement { at, .. }
            | EnvelopeProblem::EmptyBody { at }
            | EnvelopeProblem::TooDeep { at } => Some(*at),
            EnvelopeProblem::Empty
            | EnvelopeProblem::Encoding(_)
            | EnvelopeProblem::MissingBody => None,
        }
    }
}

/// The SOAP version a body claims, read cheaply from its root element, for answering in the
/// right version even when the rest of the body is broken.
pub fn sniff_version(body: &[u8]) -> Option<SoapVersion> {
    let text = crate::encoding::decode_head(&body[..body.len().min(4096)]);
    if text.contains(SOAP12_ENVELOPE) {
        Some(SoapVersion::V12)
    } else if text.contains(SOAP11_ENVELOPE) {
        Some(SoapVersion::V11)
    } else {
        None
    }
}

/// Turns request bytes into text by the byte order mark, the Content-Type's `charset` and the
/// XML declaration (see [`crate::encoding`]); UTF-8 needs no copy.
pub fn body_text<'a>(
    body: &'a [u8],
    charset: Option<&str>,
) -> Result<Cow<'a, str>, EnvelopeProblem> {
    let text =
        crate::encoding::decode_xml_with(body, charset).map_err(EnvelopeProblem::Encoding)?;
    if text
        .chars()
        .all(|c| c.is_ascii_whitespace() || c == '\u{feff}')
    {
        return Err(EnvelopeProblem::Empty);
    }
    Ok(text)
}

/// Where the parser is within the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    BeforeEnvelope,
    /// Inside `Envelope`, expecting `Header` or `Body`.
    Envelope {
        seen_header: bool,
    },
    /// Inside `Header` (and inside a header block while elements are open).
    Header,
    /// Inside `Body`, before its first child.
    BodyStart,
    /// Inside the operation element.
    Operation,
    /// Inside `Body`, after the operation element (later children are skipped).
    BodyRest,
    AfterBody,
    AfterEnvelope,
}

/// Parses a SOAP envelope from `text` (see [`body_text`]) in one streaming pass: the envelope's
/// structure is checked by resolved namespace, and the header blocks and the operation element
/// are built into element trees as they stream by.
pub fn parse_envelope(text: &str) -> Result<Envelope, EnvelopeProblem> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_end_names = true;
    let at = |offset: u64| Position::of_offset(text, offset as usize);

    let mut place = Place::BeforeEnvelope;
    let mut version = None;
    let mut depth = 0usize;
    // The open elements of the header block or operation element being built.
    let mut open: Vec<Element> = Vec::new();
    let mut headers = Vec::new();
    let mut operation = None;
    let mut operation_start = 0usize;
    let mut operation_span = 0..0;
    let mut body_offset = 0u64;

    // Whitespace-only text seen last in the innermost open element, kept aside: it becomes the
    // element's text only if the element turns out to be a leaf (no child elements), so the
    // indentation between child elements costs no copy.
    let mut pending_space: Option<Range<usize>> = None;

    loop {
        let before = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) => {
                return Err(EnvelopeProblem::Malformed {
                    at: at(reader.error_position()),
                    message: error.to_string(),
                })
            }
        };
        if let Some(space) = pending_space.take() {
            let keep = match &event {
                // Still undecided.
                Event::Comment(_) | Event::PI(_) => {
                    pending_space = Some(space.clone());
                    false
                }
                // More character data follows: the whitespace is part of it.
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => true,
                // The element ends: it keeps its whitespace if it is a leaf.
                Event::End(_) => open.last().is_some_and(|e| e.children.is_empty()),
                // A child element starts (or the document ends).
                _ => false,
            };
            if let Some(element) = open.last_mut().filter(|_| keep) {
                push_text(&mut element.text, &text[space]);
            }
        }
        match event {
            Event::DocType(_) => return Err(EnvelopeProblem::Doctype { at: at(before) }),
            Event::GeneralRef(reference) => {
                let name = reference.xml10_content();
                let character = match reference.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => predefined_entity(&name),
                    Err(error) => {
                        return Err(EnvelopeProblem::Malformed {
                            at: at(before),
                            message: error.to_string(),
                        })
                    }
                };
                let Some(character) = character else {
                    return Err(EnvelopeProblem::UndefinedEntity {
                        at: at(before),
                        name: name.into_owned(),
                    });
                };
                match open.last_mut() {
                    Some(element) => element.text.push(character),
                    None if !in_element(place) => return Err(text_outside(at(before))),
                    None => {}
                }
            }
            Event::Text(content) => {
                let raw = &text[before as usize..reader.buffer_position() as usize];
                let blank = raw
                    .bytes()
                    .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
                match open.last_mut() {
                    // Indentation: decided by what comes next (see `pending_space`).
                    Some(_) if blank => {
                        pending_space = Some(before as usize..reader.buffer_position() as usize)
                    }
                    Some(element) => element.text.push_str(&content.xml10_content()),
                    None if !in_element(place) && !raw.trim().is_empty() => {
                        return Err(text_outside(at(before)))
                    }
                    None => {}
                }
            }
            Event::CData(content) => match open.last_mut() {
                Some(element) => element.text.push_str(&content.xml10_content()),
                None if !in_element(place) => return Err(text_outside(at(before))),
                None => {}
            },
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
            Event::Start(ref start) | Event::Empty(ref start) => {
                let is_empty = matches!(event, Event::Empty(_));
                // Resolved in the reader's scope; owned only for the elements that are kept.
                let (resolved, local) = reader.resolver().resolve_element(start.name());
                let name = Name {
                    namespace: namespace_of(&resolved),
                    local: local.into_inner(),
                };
                if !is_empty {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(EnvelopeProblem::TooDeep { at: at(before) });
                    }
                }
                match place {
                    Place::BeforeEnvelope => {
                        version = SoapVersion::from_namespace(name.namespace)
                            .filter(|_| name.local == "Envelope");
                        if version.is_none() {
                            return Err(EnvelopeProblem::NotAnEnvelope {
                                at: at(before),
                                found: name.to_string(),
                            });
                        }
                        place = if is_empty {
                            Place::AfterEnvelope
                        } else {
                            Place::Envelope { seen_header: false }
                        };
                    }
                    Place::Envelope { seen_header } => {
                        let envelope_ns = version.map_or("", SoapVersion::envelope_namespace);
                        let is_soap = name.namespace == envelope_ns;
                        if is_soap && name.local == "Header" && !seen_header {
                            place = if is_empty {
                                Place::Envelope { seen_header: true }
                            } else {
                                Place::Header
                            };
                        } else if is_soap && name.local == "Body" {
                            body_offset = before;
                            if is_empty {
                                return Err(EnvelopeProblem::EmptyBody {
                                    at: at(body_offset),
                                });
                            }
                            place = Place::BodyStart;
                        } else {
                            return Err(EnvelopeProblem::UnexpectedElement {
                                at: at(before),
                                found: name.to_string(),
                                expected: if seen_header {
                                    "Body"
                                } else {
                                    "Header or Body"
                                },
                            });
                        }
                    }
                    Place::Header | Place::BodyStart | Place::Operation => {
                        if place == Place::BodyStart {
                            operation_start = before as usize;
                            place = Place::Operation;
                        }
                        let element = open_element(&reader, start, name).map_err(|message| {
                            EnvelopeProblem::Malformed {
                                at: at(before),
                                message,
                            }
                        })?;
                        if is_empty {
                            close_element(element, &mut open, place, &mut headers, &mut operation);
                        } else {
                            open.push(element);
                        }
                        if place == Place::Operation && operation.is_some() {
                            operation_span = operation_start..reader.buffer_position() as usize;
                            place = Place::BodyRest;
                        }
                    }
                    Place::BodyRest => {}
                    Place::AfterBody => {
                        return Err(EnvelopeProblem::UnexpectedElement {
                            at: at(before),
                            found: name.to_string(),
                            expected: "the end of the Envelope after Body",
                        })
                    }
                    Place::AfterEnvelope => {
                        return Err(EnvelopeProblem::Malformed {
                            at: at(before),
                            message: "content after the end of the Envelope".into(),
                        })
                    }
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if let Some(element) = open.pop() {
                    close_element(element, &mut open, place, &mut headers, &mut operation);
                    if place == Place::Operation && operation.is_some() {
                        operation_span = operation_start..reader.buffer_position() as usize;
                        place = Place::BodyRest;
                    }
                    continue;
                }
                match place {
                    Place::Header => place = Place::Envelope { seen_header: true },
                    Place::BodyStart => {
                        return Err(EnvelopeProblem::EmptyBody {
                            at: at(body_offset),
                        });
                    }
                    Place::BodyRest if depth == 1 => place = Place::AfterBody,
                    Place::AfterBody | Place::Envelope { .. } if depth == 0 => {
                        if place != Place::AfterBody {
                            return Err(EnvelopeProblem::MissingBody);
                        }
                        place = Place::AfterEnvelope;
                    }
                    _ => {}
                }
            }
        }
    }

    let (Some(version), Some(operation)) = (version, operation) else {
        return Err(match place {
            Place::BeforeEnvelope => EnvelopeProblem::Malformed {
                at: at(text.len() as u64),
                message: "no root element".into(),
            },
            Place::AfterEnvelope | Place::Envelope { .. } => EnvelopeProblem::MissingBody,
            _ => unclosed(at(text.len() as u64)),
        });
    };
    if place != Place::AfterEnvelope {
        return Err(unclosed(at(text.len() as u64)));
    }
    let star_headers = StarHeaders::of(&headers);
    Ok(Envelope {
        version,
        operation: Arc::new(operation),
        headers,
        star_headers,
        operation_span,
    })
}

/// A new element of a header block or the operation, its attributes resolved (namespace
/// declarations left out).
fn open_element(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    name: Name<'_>,
) -> Result<Element, String> {
    let name = QualifiedName {
        namespace: name.namespace.to_owned(),
        local: name.local.to_owned(),
    };
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|error| error.to_string())?;
        if attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let (resolved, local) = reader.resolver().resolve_attribute(attribute.key);
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|error| error.to_string())?;
        attributes.push((
            QualifiedName {
                namespace: namespace_of(&resolved).to_owned(),
                local: local.as_ref().to_owned(),
            },
            value.into_owned(),
        ));
    }
    Ok(Element::new(name, attributes))
}

/// Files a finished element: into its parent, or as a header block, or as the operation.
fn close_element(
    element: Element,
    open: &mut [Element],
    place: Place,
    headers: &mut Vec<Element>,
    operation: &mut Option<Element>,
) {
    match open.last_mut() {
        Some(parent) => parent.children.push(element),
        None if place == Place::Header => headers.push(element),
        None => *operation = Some(element),
    }
}

fn namespace_of<'a>(resolved: &ResolveResult<'a>) -> &'a str {
    match resolved {
        ResolveResult::Bound(namespace) => namespace.0,
        _ => "",
    }
}

/// An element name as the reader resolved it, borrowed until the element is kept.
#[derive(Debug, Clone, Copy)]
struct Name<'a> {
    namespace: &'a str,
    local: &'a str,
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(self.local)
        } else {
            write!(f, "{{{}}}{}", self.namespace, self.local)
        }
    }
}

/// Appends raw character data (no markup, no references) to `text`, with XML's end-of-line
/// handling (`\r\n` and a lone `\r` read as `\n`).
fn push_text(text: &mut String, raw: &str) {
    if !raw.contains('\r') {
        text.push_str(raw);
        return;
    }
    let mut rest = raw;
    while let Some(at) = rest.find('\r') {
        text.push_str(&rest[..at]);
        text.push('\n');
        rest = &rest[at + 1..];
        rest = rest.strip_prefix('\n').unwrap_or(rest);
    }
    text.push_str(rest);
}

fn in_element(place: Place) -> bool {
    !matches!(place, Place::BeforeEnvelope | Place::AfterEnvelope)
}

fn text_outside(at: Position) -> EnvelopeProblem {
    EnvelopeProblem::Malformed {
        at,
        message: "text outside the root element".into(),
    }
}

fn unclosed(at: Position) -> EnvelopeProblem {
    EnvelopeProblem::Malformed {
        at,
        message: "the document ends before the Envelope is closed".into(),
    }
}

/// The character of one of XML's five predefined entities (`lt`, `gt`, `amp`, `apos`, `quot`).
pub(crate) fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

impl StarHeaders {
    /// The values of STAR's two caller headers among `blocks`, by resolved namespace; a value
    /// is the trimmed text of the element at its path of local names below the block.
    pub fn of(blocks: &[Element]) -> StarHeaders {
        let value = |block: &Element, path: &[&str]| {
            block
                .find_local(path)
                .map(|element| element.text.trim().to_owned())
        };
        let find = |namespace: &str, local: &str| blocks.iter().find(|b| b.is(namespace, local));
        StarHeaders {
            active_organisation: find(ACTIVE_ORGANISATION_NS, "ActiveOrganisationHeader").map(
                |block| ActiveOrganisation {
                    organisation_type: value(block, &["OrganisationTypeIdentifier"]),
                    organisation_code: value(block, &["OrganisationCode"]),
                },
            ),
            request_user: find(REQUEST_USER_METADATA_NS, "RequestUserMetadataHeader").map(
                |block| RequestUserMetadata {
                    user_full_name: value(block, &["RequestUserStructure", "UserFullName"]),
                    user_type: value(
                        block,
                        &[
                            "RequestUserStructure",
                            "RequestUserTypeIdentifier",
                            "CodeListItemIdentifier",
                        ],
                    ),
                    user_identifier: value(block, &["RequestUserStructure", "UserIdentifier"]),
                    user_email: value(block, &["RequestUserStructure", "UserEmail"]),
                    organisation_type: value(
                        block,
                        &[
                            "RequestOrganisationStructure",
                            "OrganisationTypeIdentifier",
                            "CodeListItemIdentifier",
                        ],
                    ),
                    organisation_code: value(
                        block,
                        &["RequestOrganisationStructure", "OrganisationCode"],
                    ),
                    registration_date_time: value(block, &["RegistrationDateTime"]),
                },
            ),
        }
    }
}

/// Who is to blame for a fault: SOAP 1.1 `Client`/`Server`, SOAP 1.2 `Sender`/`Receiver`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultParty {
    Caller,
    Service,
}

impl FaultParty {
    /// The fault code's local name in `version`.
    pub fn code(self, version: SoapVersion) -> &'static str {
        match (self, version) {
            (FaultParty::Caller, SoapVersion::V11) => "Client",
            (FaultParty::Service, SoapVersion::V11) => "Server",
            (FaultParty::Caller, SoapVersion::V12) => "Sender",
            (FaultParty::Service, SoapVersion::V12) => "Receiver",
        }
    }
}

/// A SOAP fault, optionally carrying DFDG's `FaultDetails`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub party: FaultParty,
    pub reason: String,
    /// DFDG's error code and message, rendered as `FaultDetails`.
    pub dfdg: Option<DfdgError>,
}

/// The `ErrorCode` and `Message` of DFDG's `FaultDetails`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfdgError {
    pub code: i64,
    pub message: String,
}

impl Fault {
    /// A fault blamed on the caller, without DFDG details.
    pub fn caller(reason: impl Into<String>) -> Fault {
        Fault {
            party: FaultParty::Caller,
            reason: reason.into(),
            dfdg: None,
        }
    }

    /// A fault with DFDG's error code; the reason repeats the message.
    pub fn dfdg(party: FaultParty, code: i64, message: impl Into<String>) -> Fault {
        let message = message.into();
        Fault {
            party,
            reason: message.clone(),
            dfdg: Some(DfdgError { code, message }),
        }
    }

    /// The fault as a complete envelope in `version`.
    pub fn render(&self, version: SoapVersion) -> String {
        let mut out = String::with_capacity(768);
        out.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
        out.push_str(r#"<s:Envelope xmlns:s=""#);
        out.push_str(version.envelope_namespace());
        out.push_str(r#""><s:Body><s:Fault>"#);
        let code = self.party.code(version);
        let reason = partial_escape(&self.reason);
        match version {
            SoapVersion::V11 => {
                out.push_str("<faultcode>s:");
                out.push_str(code);
                out.push_str("</faultcode><faultstring xml:lang=\"en\">");
                out.push_str(&reason);
                out.push_str("</faultstring>");
                if let Some(dfdg) = &self.dfdg {
                    out.push_str("<detail>");
                    push_fault_details(&mut out, dfdg);
                    out.push_str("</detail>");
                }
            }
            SoapVersion::V12 => {
                out.push_str("<s:Code><s:Value>s:");
                out.push_str(code);
                out.push_str("</s:Value></s:Code><s:Reason><s:Text xml:lang=\"en\">");
                out.push_str(&reason);
                out.push_str("</s:Text></s:Reason>");
                if let Some(dfdg) = &self.dfdg {
                    out.push_str("<s:Detail>");
                    push_fault_details(&mut out, dfdg);
                    out.push_str("</s:Detail>");
                }
            }
        }
        out.push_str("</s:Fault></s:Body></s:Envelope>");
        out
    }

    /// The HTTP status a fault travels with: 500 in SOAP 1.1; in SOAP 1.2, 400 for the
    /// caller's faults and 500 for the service's (SOAP 1.2 part 2, section 7.5.1).
    pub fn http_status(&self, version: SoapVersion) -> u16 {
        match (version, self.party) {
            (SoapVersion::V12, FaultParty::Caller) => 400,
            _ => 500,
        }
    }
}

fn push_fault_details(out: &mut String, dfdg: &DfdgError) {
    out.push_str(r#"<FaultDetails xmlns=""#);
    out.push_str(FAULT_DETAILS_NS);
    out.push_str(r#""><ErrorCode>"#);
    out.push_str(&dfdg.code.to_string());
    out.push_str("</ErrorCode><Message>");
    out.push_str(&partial_escape(&dfdg.message));
    out.push_str(
        "</Message><InnerException/><StackTrace/><Source>dfdg-mock</Source></FaultDetails>",
    );
}

/// The receipt DFDG returns for a registration: a log reference for the call and a
/// `ServiceReceipt` with the transaction's GUID and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub log_reference: uuid::Uuid,
    pub message_identifier: uuid::Uuid,
    pub event_date: time::OffsetDateTime,
}

impl Receipt {
    /// A receipt with fresh GUIDs, dated `now`.
    pub fn fresh(now: time::OffsetDateTime) -> Receipt {
        Receipt {
            log_reference: uuid::Uuid::new_v4(),
            message_identifier: uuid::Uuid::new_v4(),
            event_date: now,
        }
    }

    /// `<operation>Response` in the operation's namespace, carrying this receipt.
    pub fn render(&self, version: SoapVersion, operation: &QualifiedName) -> String {
        let event_date = xml_date_time(self.event_date);
        let mut out = String::with_capacity(640);
        out.push_str(r#"<?xml version="1.0" encoding="utf-8"?>"#);
        out.push_str(r#"<s:Envelope xmlns:s=""#);
        out.push_str(version.envelope_namespace());
        out.push_str(r#""><s:Body><"#);
        let local = escape(&operation.local);
        out.push_str(&local);
        out.push_str("Response");
        if !operation.namespace.is_empty() {
            out.push_str(r#" xmlns=""#);
            out.push_str(&escape(&operation.namespace));
            out.push('"');
        }
        out.push_str("><ServiceRequestLogReferenceIdentifier>");
        out.push_str(&self.log_reference.to_string());
        out.push_str("</ServiceRequestLogReferenceIdentifier><ServiceReceipt><MessageIdentifier>");
        out.push_str(&self.message_identifier.to_string());
        out.push_str("</MessageIdentifier><EventDate>");
        out.push_str(&event_date);
        out.push_str("</EventDate></ServiceReceipt></");
        out.push_str(&local);
        out.push_str("Response></s:Body></s:Envelope>");
        out
    }
}

/// An `xs:dateTime` in UTC with millisecond precision: .NET's `XmlConvert` reads at most seven
/// fractional digits, so nanoseconds would break WCF clients.
pub fn xml_date_time(time: time::OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    let millis = time.nanosecond() / 1_000_000 * 1_000_000;
    time.replace_nanosecond(millis)
        .unwrap_or(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAR_REQUEST: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
  <soapenv:Header>
    <ns3:ActiveOrganisationHeader xmlns:ns3="http://rep.oio.dk/ams.dk/xml/schemas/2005/09/01/">
      <ns3:OrganisationTypeIdentifier>8</ns3:OrganisationTypeIdentifier>
      <ns3:OrganisationCode>101</ns3:OrganisationCode>
    </ns3:ActiveOrganisationHeader>
    <RequestUserMetadataHeader xmlns="http://service.bm.dk/RequestUserMetadata/2015/01/21/"
        xmlns:rus="http://service.bm.dk/pjaktass/2015/01/21/RequestUserStructure/"
        xmlns:ru="http://service.bm.dk/pjaktass/2015/01/21/RequestUserTypeIdentifierCodeList/"
        xmlns:clb="http://service.bm.dk/pjaktass/2013/06/07/CodeListBase/"
        xmlns:ros="http://service.bm.dk/pjaktass/2015/01/21/RequestOrganisationStructure/">
      <rus:RequestUserStructure>
        <rus:UserFullName>Fagsystem &amp; Co</rus:UserFullName>
        <ru:RequestUserTypeIdentifier><clb:CodeListItemIdentifier>3</clb:CodeListItemIdentifier></ru:RequestUserTypeIdentifier>
        <rus:UserIdentifier>CVR:91234567-UUID:3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13</rus:UserIdentifier>
      </rus:RequestUserStructure>
      <ros:RequestOrganisationStructure>
        <ros:OrganisationTypeIdentifier><clb:CodeListItemIdentifier>8</clb:CodeListItemIdentifier></ros:OrganisationTypeIdentifier>
        <ros:OrganisationCode>101</ros:OrganisationCode>
      </ros:RequestOrganisationStructure>
      <RegistrationDateTime>2026-11-27T10:00:00Z</RegistrationDateTime>
    </RequestUserMetadataHeader>
  </soapenv:Header>
  <soapenv:Body>
    <ns2:GetVariablePersonStatus xmlns:ns2="urn:example:person"><ns2:Cpr>0101011234</ns2:Cpr></ns2:GetVariablePersonStatus>
  </soapenv:Body>
</soapenv:Envelope>"#;

    fn problem(text: &str) -> EnvelopeProblem {
        parse_envelope(text).expect_err("should be refused")
    }

    #[test]
    fn parses_operation_and_star_headers_by_namespace() {
        let envelope = parse_envelope(STAR_REQUEST).unwrap();
        assert_eq!(envelope.version, SoapVersion::V11);
        assert_eq!(envelope.operation.name.local, "GetVariablePersonStatus");
        assert_eq!(envelope.operation.name.namespace, "urn:example:person");
        let span = &STAR_REQUEST[envelope.operation_span.clone()];
        assert!(span.starts_with("<ns2:GetVariablePersonStatus"), "{span}");
        assert!(span.ends_with("</ns2:GetVariablePersonStatus>"), "{span}");
        let organisation = envelope.star_headers.active_organisation.unwrap();
        assert_eq!(organisation.organisation_type.as_deref(), Some("8"));
        assert_eq!(organisation.organisation_code.as_deref(), Some("101"));
        let user = envelope.star_headers.request_user.unwrap();
        assert_eq!(user.user_full_name.as_deref(), Some("Fagsystem & Co"));
        assert_eq!(user.user_type.as_deref(), Some("3"));
        assert_eq!(
            user.user_identifier.as_deref(),
            Some("CVR:91234567-UUID:3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13")
        );
        assert_eq!(user.organisation_type.as_deref(), Some("8"));
        assert_eq!(user.organisation_code.as_deref(), Some("101"));
        assert_eq!(
            user.registration_date_time.as_deref(),
            Some("2026-11-27T10:00:00Z")
        );
        assert_eq!(envelope.headers.len(), 2);
        // The operation element is built as a tree, values and all.
        let cpr = envelope.operation.find_local(&["Cpr"]).unwrap();
        assert_eq!(cpr.text, "0101011234");
        assert_eq!(cpr.name.namespace, "urn:example:person");
    }

    #[test]
    fn star_headers_json_is_their_serde_form() {
        let envelope = parse_envelope(STAR_REQUEST).unwrap();
        let headers = envelope.star_headers;
        assert_eq!(headers.to_json(), serde_json::to_value(&headers).unwrap());
        let mut partial = headers.clone();
        partial.active_organisation = None;
        if let Some(user) = partial.request_user.as_mut() {
            user.user_email = None;
        }
        assert_eq!(partial.to_json(), serde_json::to_value(&partial).unwrap());
        assert_eq!(
            StarHeaders::default().to_json(),
            serde_json::to_value(StarHeaders::default()).unwrap()
        );
    }

    #[test]
    fn indentation_between_elements_is_not_text_but_a_leaf_keeps_its_spaces() {
        let text = format!(
            "<s:Envelope xmlns:s=\"{SOAP11_ENVELOPE}\">\r\n <s:Body>\r\n  <op xmlns=\"urn:x\">\r\n   <a> </a>\r\n   <b>\r\n x\r\n </b><c>  <!-- c -->  </c>\r\n   <d>&amp; </d>\r\n  </op>\r\n </s:Body>\r\n</s:Envelope>"
        );
        let envelope = parse_envelope(&text).unwrap();
        let op = &envelope.operation;
        assert_eq!(op.text, "", "no indentation in an element with children");
        assert_eq!(op.children.len(), 4);
        assert_eq!(op.children[0].text, " ");
        assert_eq!(op.children[1].text, "\n x\n ");
        assert_eq!(op.children[2].text, "    ");
        assert_eq!(op.children[3].text, "& ");
    }

    #[test]
    fn headers_in_a_foreign_namespace_are_not_star_headers() {
        let text = STAR_REQUEST.replace(
            "http://rep.oio.dk/ams.dk/xml/schemas/2005/09/01/",
            "urn:someone-else",
        );
        let envelope = parse_envelope(&text).unwrap();
        assert!(envelope.star_headers.active_organisation.is_none());
        assert!(envelope.star_headers.request_user.is_some());
    }

    #[test]
    fn soap12_with_default_namespace_and_no_header() {
        let text = r#"<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body><GetBorgerstatus xmlns="urn:jobnet"/></Body></Envelope>"#;
        let envelope = parse_envelope(text).unwrap();
        assert_eq!(envelope.version, SoapVersion::V12);
        assert_eq!(envelope.operation.name.namespace, "urn:jobnet");
        assert_eq!(
            &text[envelope.operation_span],
            r#"<GetBorgerstatus xmlns="urn:jobnet"/>"#
        );
    }

    #[test]
    fn byte_order_mark_is_accepted() {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(STAR_REQUEST.as_bytes());
        let text = body_text(&bytes, None).unwrap();
        assert!(parse_envelope(&text).is_ok());
    }

    #[test]
    fn refuses_doctype_with_its_position() {
        let text = "<?xml version=\"1.0\"?>\n<!DOCTYPE x [<!ENTITY a \"aaaa\">]>\n<x>&a;</x>";
        assert_eq!(
            problem(text),
            EnvelopeProblem::Doctype {
                at: Position { line: 2, column: 1 }
            }
        );
    }

    #[test]
    fn refuses_undefined_entities() {
        let text = format!(
            "<s:Envelope xmlns:s=\"{SOAP11_ENVELOPE}\"><s:Body><op>&boom;</op></s:Body></s:Envelope>"
        );
        assert!(matches!(
            problem(&text),
            EnvelopeProblem::UndefinedEntity { name, .. } if name == "boom"
        ));
    }

    #[test]
    fn malformed_xml_names_line_and_column() {
        let text = format!(
            "<s:Envelope xmlns:s=\"{SOAP11_ENVELOPE}\">\n  <s:Body>\n    <op></po>\n  </s:Body>\n</s:Envelope>"
        );
        let problem = problem(&text);
        let at = problem.position().unwrap();
        assert_eq!(at.line, 3, "{problem}");
        assert!(problem.to_string().contains("line 3"), "{problem}");
    }

    #[test]
    fn refuses_what_is_not_an_envelope() {
        assert!(matches!(
            problem("<html><body/></html>"),
            EnvelopeProblem::NotAnEnvelope { .. }
        ));
        assert!(matches!(
            problem(r#"<Envelope xmlns="urn:wrong"><Body/></Envelope>"#),
            EnvelopeProblem::NotAnEnvelope { .. }
        ));
        assert_eq!(
            body_text(b"  \n", None).unwrap_err(),
            EnvelopeProblem::Empty
        );
        assert!(matches!(
            body_text(b"<a>\xff</a>", None).unwrap_err(),
            EnvelopeProblem::Encoding(crate::encoding::EncodingProblem { offset: 3, .. })
        ));
    }

    #[test]
    fn refuses_empty_or_missing_body() {
        let empty =
            format!("<s:Envelope xmlns:s=\"{SOAP11_ENVELOPE}\"><s:Body>  </s:Body></s:Envelope>");
        assert!(matches!(problem(&empty), EnvelopeProblem::EmptyBody { .. }));
        let self_closed =
            format!("<s:Envelope xmlns:s=\"{SOAP11_ENVELOPE}\"><s:Body/></s:Envelope>");
        assert!(matches!(
            problem(&self_closed),
            EnvelopeProblem::EmptyBody { .. }
        ));
        let missing = format!("<s:Envelope xmlns:s=\"{SOAP11_ENVELOPE}\"><s:Header/></s:Envelope>");
        assert_eq!(problem(&missing), EnvelopeProblem::MissingBody);
        let truncated = format!("<s:Envelope xmlns:s=\"{SOAP11_ENVELOPE}\"><s:Body><op>");
        assert!(matches!(
            problem(&truncated),
            EnvelopeProblem::Malformed { .. }
        ));
    }

    #[test]
    fn refuses_excessive_nesting() {
        let mut text = format!("<s:Envelope xmlns:s=\"{SOAP11_ENVELOPE}\"><s:Body>");
        text.push_str(&"<a>".repeat(MAX_DEPTH + 1));
        assert!(matches!(problem(&text), EnvelopeProblem::TooDeep { .. }));
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let text = "æøå\nxyz";
        assert_eq!(
            Position::of_offset(text, 6),
            Position { line: 1, column: 4 }
        );
        assert_eq!(
            Position::of_offset(text, 8),
            Position { line: 2, column: 2 }
        );
    }

    #[test]
    fn faults_render_in_each_version() {
        let fault = Fault::dfdg(FaultParty::Caller, 1014, "message <not> valid");
        let v11 = fault.render(SoapVersion::V11);
        assert!(v11.contains("<faultcode>s:Client</faultcode>"));
        assert!(v11.contains("<ErrorCode>1014</ErrorCode>"));
        assert!(v11.contains("message &lt;not&gt; valid"));
        let v12 = fault.render(SoapVersion::V12);
        assert!(v12.contains("<s:Value>s:Sender</s:Value>"));
        assert!(v12.contains(SOAP12_ENVELOPE));
        assert_eq!(fault.http_status(SoapVersion::V11), 500);
        assert_eq!(fault.http_status(SoapVersion::V12), 400);
        // Both renderings are themselves well-formed envelopes.
        for text in [v11, v12] {
            let mut reader = NsReader::from_str(&text);
            while !matches!(reader.read_event().unwrap(), Event::Eof) {}
        }
    }

    #[test]
    fn receipt_is_a_parseable_response_in_the_operation_namespace() {
        let operation = QualifiedName {
            namespace: "urn:example".into(),
            local: "SaveAvailabilityAssessment".into(),
        };
        let receipt = Receipt::fresh(time::OffsetDateTime::now_utc());
        let text = receipt.render(SoapVersion::V12, &operation);
        let envelope = parse_envelope(&text).unwrap();
        assert_eq!(envelope.version, SoapVersion::V12);
        assert_eq!(
            envelope.operation.name.local,
            "SaveAvailabilityAssessmentResponse"
        );
        assert_eq!(envelope.operation.name.namespace, "urn:example");
        assert!(text.contains(&receipt.message_identifier.to_string()));
    }

    #[test]
    fn dates_have_at_most_millisecond_precision() {
        let time = time::macros::datetime!(2026-11-27 10:00:00.123456789 +01:00);
        assert_eq!(xml_date_time(time), "2026-11-27T09:00:00.123Z");
    }

    #[test]
    fn sniffs_version_from_broken_bodies() {
        let text = format!("<s:Envelope xmlns:s=\"{SOAP12_ENVELOPE}\"><s:Body><op></x>");
        assert_eq!(sniff_version(text.as_bytes()), Some(SoapVersion::V12));
        assert_eq!(sniff_version(b"garbage"), None);
    }
}

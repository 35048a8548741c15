//! Instance validation against the compiled XSD model ([`super::xsd::Schema`]): content models
//! (sequence/choice/all with occurrences, element refs, wildcards), simple values and facets,
//! attributes, `xsi:nil`. Each finding names the element path, what was expected and what was
//! found. Matching is greedy without backtracking, which is exact for the deterministic content
//! models XSD's Unique Particle Attribution rule demands.
//!
//! A request is validated from its parsed envelope ([`request`]: the element trees the SOAP
//! parser built in its one pass, never the text again), and its SOAPAction against the binding
//! ([`soap_action`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::xml::Element;
use super::xsd::{Content, ElementId, Particle, Schema, Term, TypeRef, XSI_NS};
use super::Route;
use crate::soap::{Envelope, SoapVersion};

/// The most findings collected for one message; the first ones are the useful ones.
pub const MAX_FINDINGS: usize = 20;

/// One way a message departs from its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Element path from the message's root element, e.g. `/GetEventsRequest/CalendarResource[2]/RID`.
    pub path: String,
    pub expected: String,
    pub found: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: expected {}, found {}",
            self.path, self.expected, self.found
        )
    }
}

/// Validates a request routed to `route`: the header blocks its operation declares, then the
/// Body's operation element.
pub fn request(route: &Route<'_>, envelope: &Envelope) -> Vec<Finding> {
    let mut findings = Vec::new();
    for declared in &route.operation.headers {
        let path = Place::Top("/Header", &declared.name.local);
        match envelope.header(&declared.name.namespace, &declared.name.local) {
            Some(block) => element_at(route.schema, declared.element, block, &path, &mut findings),
            None => push(
                &mut findings,
                &path,
                format!("SOAP header {}", declared.name),
                "nothing".to_owned(),
            ),
        }
    }
    let body = &envelope.operation;
    let path = Place::Top("", &body.name.local);
    element_at(
        route.schema,
        route.operation.input,
        body,
        &path,
        &mut findings,
    );
    findings
}

/// The finding for a SOAPAction (SOAP 1.1's header, SOAP 1.2's `action` parameter) that does not
/// name the operation the request was routed to: one no operation of the port declares, or
/// another operation's. No action, or an empty one, is no finding.
pub fn soap_action(route: &Route<'_>, action: Option<&str>) -> Option<Finding> {
    let action = action.filter(|action| !action.is_empty())?;
    let operation = route.operation;
    if operation.action.as_deref() == Some(action) {
        return None;
    }
    let expected = match &operation.action {
        Some(declared) => format!("'{declared}', the action of {}", operation.name),
        None => format!("no action ({} declares none)", operation.name),
    };
    let other = route
        .port
        .operations
        .iter()
        .find(|other| other.action.as_deref() == Some(action));
    let found = match other {
        Some(other) => format!(
            "'{action}', the action of {}, but the Body carries {}'s request element",
            other.name, operation.name
        ),
        None => format!(
            "'{action}', which no operation of {} declares",
            route.endpoint.service
        ),
    };
    Some(Finding {
        path: match route.port.version {
            SoapVersion::V11 => "SOAPAction".to_owned(),
            SoapVersion::V12 => "Content-Type action".to_owned(),
        },
        expected,
        found,
    })
}

/// Validates `node` as an instance of the element declaration `id`; appends findings.
pub fn element(
    schema: &Schema,
    id: ElementId,
    node: &Element,
    path: &str,
    findings: &mut Vec<Finding>,
) {
    element_at(schema, id, node, &Place::Root(path), findings);
}

fn element_at(
    schema: &Schema,
    id: ElementId,
    node: &Element,
    path: &Place<'_>,
    findings: &mut Vec<Finding>,
) {
    let decl = schema.element(id);
    if node.name != decl.name {
        push(
            findings,
            path,
            format!("element {}", decl.name),
            format!("element {}", node.name),
        );
        return;
    }
    Validator { schema, findings }.instance(id, node, path);
}

fn push(findings: &mut Vec<Finding>, path: &dyn fmt::Display, expected: String, found: String) {
    if findings.len() < MAX_FINDINGS {
        findings.push(Finding {
            path: path.to_string(),
            expected,
            found,
        });
    }
}

/// Where an element sits, spelled out (`/Op/Child[2]/Leaf`) only when a finding names it.
#[derive(Clone, Copy)]
enum Place<'p> {
    Root(&'p str),
    /// `prefix/local`, e.g. `/Header/ActiveOrganisationHeader`.
    Top(&'static str, &'p str),
    /// `siblings[index]` below `parent`.
    Child {
        parent: &'p Place<'p>,
        siblings: &'p [Element],
        index: usize,
    },
}

impl Place<'_> {
    /// The last step's local name.
    fn short(&self) -> String {
        match self {
            Place::Root(path) => path.rsplit('/').next().unwrap_or(path).to_owned(),
            Place::Top(_, local) => (*local).to_owned(),
            Place::Child {
                siblings, index, ..
            } => siblings[*index].name.local.clone(),
        }
    }
}

impl fmt::Display for Place<'_> {
    /// `parent/Local`, with `[n]` when siblings share the name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Root(path) => f.write_str(path),
            Place::Top(prefix, local) => write!(f, "{prefix}/{local}"),
            Place::Child {
                parent,
                siblings,
                index,
            } => {
                let child = &siblings[*index];
                let same = |other: &Element| other.name == child.name;
                write!(f, "{parent}/{}", child.name.local)?;
                if siblings.iter().filter(|other| same(other)).count() > 1 {
                    let position = siblings[..*index]
                        .iter()
                        .filter(|other| same(other))
                        .count();
                    write!(f, "[{}]", position + 1)?;
                }
                Ok(())
            }
        }
    }
}

/// `place/@local`.
struct AttributePlace<'p>(&'p Place<'p>, &'p str);

impl fmt::Display for AttributePlace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/@{}", self.0, self.1)
    }
}

struct Validator<'s, 'f> {
    schema: &'s Schema,
    findings: &'f mut Vec<Finding>,
}

/// Why a content model did not match at some child; what was expected is spelled out only if
/// the mismatch becomes a finding.
struct Mismatch<'s> {
    at: usize,
    expected: Expected<'s>,
}

enum Expected<'s> {
    Element(ElementId),
    Any,
    Particle(&'s Particle),
    Choice(&'s [Particle]),
}

impl Expected<'_> {
    fn names(&self, schema: &Schema) -> Vec<String> {
        match self {
            Expected::Element(id) => vec![schema.element(*id).name.to_string()],
            Expected::Any => vec!["any element".to_owned()],
            Expected::Particle(particle) => first_names(schema, particle),
            Expected::Choice(items) => items.iter().flat_map(|i| first_names(schema, i)).collect(),
        }
    }
}

impl<'s> Validator<'s, '_> {
    fn push(&mut self, path: &dyn fmt::Display, expected: String, found: String) {
        push(self.findings, path, expected, found);
    }

    fn instance(&mut self, id: ElementId, node: &Element, path: &Place<'_>) {
        if self.findings.len() >= MAX_FINDINGS {
            return;
        }
        let decl = self.schema.element(id);
        let nil = node
            .attribute_ns(XSI_NS, "nil")
            .is_some_and(|v| matches!(v.trim(), "true" | "1"));
        if nil {
            if !decl.nillable {
                self.push(
                    path,
                    "a value (the element is not nillable)".to_owned(),
                    "xsi:nil=\"true\"".to_owned(),
                );
            } else if !node.children.is_empty() || !node.text.trim().is_empty() {
                self.push(
                    path,
                    "no content with xsi:nil=\"true\"".to_owned(),
                    "content".to_owned(),
                );
            }
            return;
        }
        if let Some(fixed) = &decl.fixed {
            if node.text.trim() != fixed.trim() {
                self.push(
                    path,
                    format!("the fixed value '{fixed}'"),
                    format!("'{}'", node.text.trim()),
                );
            }
        }
        self.typed(decl.ty, node, path);
    }

    fn typed(&mut self, ty: TypeRef, node: &Element, path: &Place<'_>) {
        if matches!(ty, TypeRef::Builtin(super::xsd::Builtin::AnyType)) {
            return;
        }
        let Some(complex) = self.schema.complex(ty) else {
            // A simple type: text only, no attributes but xsi's.
            self.attributes_of_simple(node, path);
            self.text(ty, node, path);
            return;
        };
        for (name, value) in &node.attributes {
            if name.namespace == XSI_NS || name.namespace == super::xml_namespace() {
                continue;
            }
            match complex.attributes.iter().find(|a| &a.name == name) {
                Some(attribute) => {
                    if let Err(problem) = self.schema.check_value(attribute.ty, value) {
                        self.push(
                            &AttributePlace(path, &name.local),
                            self.schema.type_label(attribute.ty),
                            problem,
                        );
                    }
                }
                None if complex.any_attribute => {}
                None => self.push(
                    &AttributePlace(path, &name.local),
                    "no such attribute".to_owned(),
                    format!("attribute {name}"),
                ),
            }
        }
        for attribute in complex.attributes.iter().filter(|a| a.required) {
            if !node
                .attributes
                .iter()
                .any(|(name, _)| name == &attribute.name)
            {
                self.push(
                    &AttributePlace(path, &attribute.name.local),
                    format!("required attribute {}", attribute.name),
                    "nothing".to_owned(),
                );
            }
        }
        match &complex.content {
            Content::Empty => {
                if let Some(child) = node.children.first() {
                    self.push(
                        path,
                        "no child elements".to_owned(),
                        format!("element {}", child.name),
                    );
                } else if !complex.mixed && !node.text.trim().is_empty() {
                    self.push(
                        path,
                        "no text".to_owned(),
                        format!("'{}'", node.text.trim()),
                    );
                }
            }
            Content::Simple(inner) => self.text(*inner, node, path),
            Content::Elements(particle) => {
                if !complex.mixed && !node.text.trim().is_empty() {
                    self.push(
                        path,
                        "child elements only".to_owned(),
                        format!("text '{}'", short(node.text.trim())),
                    );
                }
                let children = &node.children[..];
                let at = |index| Place::Child {
                    parent: path,
                    siblings: children,
                    index,
                };
                match self.repeated(particle, children, 0, path) {
                    Ok(end) if end == children.len() => {}
                    Ok(end) => {
                        self.push(
                            &at(end),
                            format!(
                                "no more elements (the content of {} ends here)",
                                path.short()
                            ),
                            format!("element {}", children[end].name),
                        );
                    }
                    Err(mismatch) => {
                        let found = children
                            .get(mismatch.at)
                            .map_or("the end of the element".to_owned(), |c| {
                                format!("element {}", c.name)
                            });
                        let expected = expected_list(&mismatch.expected.names(self.schema));
                        if mismatch.at < children.len() {
                            self.push(&at(mismatch.at), expected, found);
                        } else {
                            self.push(path, expected, found);
                        }
                    }
                }
            }
        }
    }

    fn attributes_of_simple(&mut self, node: &Element, path: &Place<'_>) {
        for (name, _) in &node.attributes {
            if name.namespace != XSI_NS && name.namespace != super::xml_namespace() {
                self.push(
                    &AttributePlace(path, &name.local),
                    "no attributes".to_owned(),
                    format!("attribute {name}"),
                );
            }
        }
    }

    fn text(&mut self, ty: TypeRef, node: &Element, path: &Place<'_>) {
        if let Some(child) = node.children.first() {
            self.push(
                path,
                format!("a value of type {}", self.schema.type_label(ty)),
                format!("element {}", child.name),
            );
            return;
        }
        if let Err(problem) = self.schema.check_value(ty, &node.text) {
            self.push(
                path,
                format!("a value of type {}", self.schema.type_label(ty)),
                problem,
            );
        }
    }

    /// Matches `particle` with its occurrences from `start`; returns where it stopped.
    fn repeated(
        &mut self,
        particle: &'s Particle,
        children: &[Element],
        start: usize,
        path: &Place<'_>,
    ) -> Result<usize, Mismatch<'s>> {
        let mut position = start;
        let mut count = 0u32;
        loop {
            if particle.occurs.max.is_some_and(|max| count >= max) {
                break;
            }
            let saved = self.findings.len();
            match self.term(&particle.term, children, position, path) {
                Ok(end) if end > position => {
                    position = end;
                    count += 1;
                }
                Ok(_) => {
                    // Matched empty: any remaining minimum is satisfied by empty matches.
                    count = count.max(particle.occurs.min);
                    break;
                }
                Err(mismatch) => {
                    self.findings.truncate(saved);
                    if count < particle.occurs.min {
                        return Err(mismatch);
                    }
                    break;
                }
            }
        }
        if count < particle.occurs.min {
            return Err(Mismatch {
                at: position,
                expected: Expected::Particle(particle),
            });
        }
        Ok(position)
    }

    fn term(
        &mut self,
        term: &'s Term,
        children: &[Element],
        start: usize,
        path: &Place<'_>,
    ) -> Result<usize, Mismatch<'s>> {
        let at = |index| Place::Child {
            parent: path,
            siblings: children,
            index,
        };
        match term {
            Term::Element(id) => {
                let decl = self.schema.element(*id);
                match children.get(start) {
                    Some(child) if child.name == decl.name => {
                        self.instance(*id, child, &at(start));
                        Ok(start + 1)
                    }
                    _ => Err(Mismatch {
                        at: start,
                        expected: Expected::Element(*id),
                    }),
                }
            }
            Term::Any(wildcard) => match children.get(start) {
                Some(child) if wildcard.admits(&child.name.namespace) => {
                    if let Some(id) = self.schema.global_element(&child.name) {
                        self.instance(id, child, &at(start));
                    }
                    Ok(start + 1)
                }
                _ => Err(Mismatch {
                    at: start,
                    expected: Expected::Any,
                }),
            },
            Term::Sequence(items) => {
                let mut position = start;
                for item in items {
                    position = self.repeated(item, children, position, path)?;
                }
                Ok(position)
            }
            Term::Choice(items) => {
                let mut empty_ok = false;
                for item in items {
                    let saved = self.findings.len();
                    match self.repeated(item, children, start, path) {
                        Ok(end) if end > start => return Ok(end),
                        Ok(_) => {
                            empty_ok = true;
                        }
                        Err(_) => self.findings.truncate(saved),
                    }
                }
                if empty_ok {
                    Ok(start)
                } else {
                    Err(Mismatch {
                        at: start,
                        expected: Expected::Choice(items),
                    })
                }
            }
            Term::All(items) => {
                let mut used = vec![false; items.len()];
                let mut position = start;
                'children: while let Some(child) = children.get(position) {
                    for (index, item) in items.iter().enumerate() {
                        if used[index] {
                            continue;
                        }
                        if let Term::Element(id) = item.term {
                            if self.schema.element(id).name == child.name {
                                self.instance(id, child, &at(position));
                                used[index] = true;
                                position += 1;
                                continue 'children;
                            }
                        }
                    }
                    break;
                }
                for (index, item) in items.iter().enumerate() {
                    if !used[index] && item.occurs.min > 0 {
                        return Err(Mismatch {
                            at: position,
                            expected: Expected::Particle(item),
                        });
                    }
                }
                Ok(position)
            }
        }
    }
}

/// The element names a particle can start with.
fn first_names(schema: &Schema, particle: &Particle) -> Vec<String> {
    let mut names = Vec::new();
    collect_first(schema, &particle.term, &mut names);
    names
}

fn collect_first(schema: &Schema, term: &Term, names: &mut Vec<String>) {
    match term {
        Term::Element(id) => names.push(schema.element(*id).name.to_string()),
        Term::Any(_) => names.push("any element".to_owned()),
        Term::Sequence(items) => {
            for item in items {
                collect_first(schema, &item.term, names);
                if item.occurs.min > 0 {
                    break;
                }
            }
        }
        Term::Choice(items) | Term::All(items) => {
            for item in items {
                collect_first(schema, &item.term, names);
            }
        }
    }
}

fn expected_list(names: &[String]) -> String {
    match names {
        [] => "nothing".to_owned(),
        [one] => format!("element {one}"),
        many => format!("one of the elements {}", many.join(", ")),
    }
}

fn short(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text.to_owned()
    }
}

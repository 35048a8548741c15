//! Schema-valid sample messages: the default answer for an operation nobody scripted. Every
//! required element and attribute is present, optional ones appear once while the tree is shallow
//! and not recursive, and values are plausible for their name and type (a CPR number for
//! `CivilRegistrationIdentifier`, fresh GUIDs for identifiers, the current time for dateTime),
//! then checked against the type's facets; a value that does not fit is derived from the
//! enumeration or the pattern instead.

use std::fmt::Write as _;

use quick_xml::escape::escape;
use regex_syntax::hir::{Class, Hir, HirKind};
use time::OffsetDateTime;

use super::xsd::{Builtin, Content, ElementId, Particle, Schema, Term, TypeDef, TypeRef, Variety};

/// How deep optional content is still filled in.
const OPTIONAL_DEPTH: usize = 6;

/// A generated message element and the receipt GUIDs it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub xml: String,
    /// `MessageIdentifier` values (the receipt), else `ServiceRequestLogReferenceIdentifier`.
    pub receipts: Vec<String>,
}

/// Values to put in place of generated ones, each for the elements whose path (local names from
/// the generated root, `/`-separated) ends with a given suffix; e.g. the STAR headers filled in
/// for one supplier's certificate. A value that does not fit the element's type is not used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// (path suffix, value), the first match wins.
    values: Vec<(String, String)>,
}

impl Overrides {
    /// Uses `value` for every element whose path ends with `path_suffix`, e.g.
    /// `RequestUserStructure/UserIdentifier`.
    pub fn with(mut self, path_suffix: &str, value: impl Into<String>) -> Overrides {
        self.values.push((path_suffix.to_owned(), value.into()));
        self
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn find(&self, path: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(suffix, _)| {
                path == suffix
                    || path
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|rest| rest.ends_with('/'))
            })
            .map(|(_, value)| value.as_str())
    }
}

/// Generates an instance of element `id`.
pub fn element(schema: &Schema, id: ElementId, now: OffsetDateTime) -> Sample {
    element_with(schema, id, now, &Overrides::default())
}

/// Generates an instance of element `id`, with `overrides` in place of generated values.
pub fn element_with(
    schema: &Schema,
    id: ElementId,
    now: OffsetDateTime,
    overrides: &Overrides,
) -> Sample {
    let mut generator = Generator {
        schema,
        now,
        overrides,
        out: String::with_capacity(1024),
        stack: Vec::new(),
        names: Vec::new(),
        message_identifiers: Vec::new(),
        log_references: Vec::new(),
    };
    generator.element(id, "", 0);
    let receipts = if generator.message_identifiers.is_empty() {
        generator.log_references
    } else {
        generator.message_identifiers
    };
    Sample {
        xml: generator.out,
        receipts,
    }
}

struct Generator<'s> {
    schema: &'s Schema,
    now: OffsetDateTime,
    /// Values given by the caller, used where they fit.
    overrides: &'s Overrides,
    out: String,
    /// Types being generated, to keep recursive types from recursing.
    stack: Vec<TypeRef>,
    /// Local names of the elements being generated, for guessing values by context.
    names: Vec<String>,
    message_identifiers: Vec<String>,
    log_references: Vec<String>,
}

impl Generator<'_> {
    fn element(&mut self, id: ElementId, parent_namespace: &str, depth: usize) {
        let decl = self.schema.element(id);
        let local = escape(&decl.name.local).into_owned();
        self.out.push('<');
        self.out.push_str(&local);
        if decl.name.namespace != parent_namespace {
            let _ = write!(self.out, " xmlns=\"{}\"", escape(&decl.name.namespace));
        }
        let namespace = decl.name.namespace.clone();
        if let Some(fixed) = &decl.fixed {
            let _ = write!(self.out, ">{}</{local}>", escape(fixed));
            return;
        }
        self.stack.push(decl.ty);
        self.names.push(decl.name.local.clone());
        match self.schema.complex(decl.ty) {
            Some(complex) => {
                for attribute in complex.attributes.iter().filter(|a| a.required) {
                    let value = match &attribute.fixed {
                        Some(fixed) => fixed.clone(),
                        None => self.value(attribute.ty, &attribute.name.local),
                    };
                    if attribute.name.namespace.is_empty() {
                        let _ =
                            write!(self.out, " {}=\"{}\"", attribute.name.local, escape(&value));
                    } else {
                        let _ = write!(
                            self.out,
                            " xmlns:a=\"{}\" a:{}=\"{}\"",
                            escape(&attribute.name.namespace),
                            attribute.name.local,
                            escape(&value)
                        );
                    }
                }
                match &complex.content {
                    Content::Empty => self.out.push_str("/>"),
                    Content::Simple(inner) => {
                        let value = self.value(*inner, &decl.name.local);
                        let _ = write!(self.out, ">{}</{local}>", escape(&value));
                    }
                    Content::Elements(particle) => {
                        self.out.push('>');
                        self.particle(particle, &namespace, depth + 1);
                        let _ = write!(self.out, "</{local}>");
                    }
                }
            }
            None if matches!(decl.ty, TypeRef::Builtin(Builtin::AnyType)) => {
                self.out.push_str("/>");
            }
            None => {
                let value = self.value(decl.ty, &decl.name.local);
                match decl.name.local.as_str() {
                    "MessageIdentifier" => self.message_identifiers.push(value.clone()),
                    "ServiceRequestLogReferenceIdentifier" => {
                        self.log_references.push(value.clone())
                    }
                    _ => {}
                }
                let _ = write!(self.out, ">{}</{local}>", escape(&value));
            }
        }
        self.stack.pop();
        self.names.pop();
    }

    fn particle(&mut self, particle: &Particle, namespace: &str, depth: usize) {
        let count = if particle.occurs.min > 0 {
            particle.occurs.min
        } else if self.worth_including(&particle.term, depth) {
            1
        } else {
            0
        };
        for _ in 0..count.min(particle.occurs.max.unwrap_or(u32::MAX)) {
            match &particle.term {
                Term::Element(id) => self.element(*id, namespace, depth),
                Term::Sequence(items) | Term::All(items) => {
                    for item in items {
                        self.particle(item, namespace, depth);
                    }
                }
                Term::Choice(items) => {
                    let chosen = items
                        .iter()
                        .find(|item| self.worth_including(&item.term, depth))
                        .or(items.first());
                    if let Some(item) = chosen {
                        let forced = Particle {
                            term: item.term.clone(),
                            occurs: super::xsd::Occurs {
                                min: item.occurs.min.max(1),
                                max: item.occurs.max,
                            },
                        };
                        self.particle(&forced, namespace, depth);
                    }
                }
                Term::Any(_) => {}
            }
        }
    }

    /// Whether optional content is filled in: shallow, and not a type already being generated.
    fn worth_including(&self, term: &Term, depth: usize) -> bool {
        if depth > OPTIONAL_DEPTH {
            return false;
        }
        match term {
            Term::Element(id) => {
                let ty = self.schema.element(*id).ty;
                let recursive = matches!(ty, TypeRef::Defined(_)) && self.stack.contains(&ty);
                let opaque = matches!(ty, TypeRef::Builtin(Builtin::AnyType));
                !recursive && !opaque
            }
            Term::Sequence(items) | Term::All(items) | Term::Choice(items) => {
                items.iter().all(|i| self.worth_including(&i.term, depth))
            }
            Term::Any(_) => false,
        }
    }

    /// A plausible value of simple type `ty` for an element or attribute named `name`.
    fn value(&mut self, ty: TypeRef, name: &str) -> String {
        if !self.overrides.is_empty() {
            let mut path = self.names.join("/");
            if self.names.last().is_none_or(|last| last != name) {
                path.push('/');
                path.push_str(name);
            }
            if let Some(value) = self.overrides.find(&path) {
                if self.schema.check_value(ty, value).is_ok() {
                    return value.to_owned();
                }
            }
        }
        let (builtin, enumeration, first_pattern) = self.simple_facts(ty);
        if let Some(first) = enumeration {
            return first;
        }
        // The parent's name says what a generic leaf (CodeListItemIdentifier) stands for.
        let parent = match self.names.len() {
            n if n >= 2 && self.names[n - 1] == name => self.names[n - 2].as_str(),
            n if n >= 1 && self.names[n - 1] != name => self.names[n - 1].as_str(),
            _ => "",
        };
        let context = format!("{parent}/{name}");
        for candidate in candidates(&context, builtin, self.now) {
            if self.schema.check_value(ty, &candidate).is_ok() {
                return candidate;
            }
        }
        if let Some(pattern) = first_pattern {
            if let Some(candidate) = from_pattern(&pattern) {
                if self.schema.check_value(ty, &candidate).is_ok() {
                    return candidate;
                }
            }
        }
        let fallback = type_default(builtin, self.now);
        self.fit_length(ty, fallback)
    }

    /// The primitive, the first enumeration value, and the first pattern of a simple type.
    fn simple_facts(&self, ty: TypeRef) -> (Builtin, Option<String>, Option<String>) {
        match ty {
            TypeRef::Builtin(builtin) => (builtin, None, None),
            TypeRef::Defined(id) => match &self.schema.types[id] {
                TypeDef::Simple(simple) => match &simple.variety {
                    Variety::Atomic(builtin) => (
                        *builtin,
                        simple.facets.enumeration.first().cloned(),
                        simple
                            .facets
                            .patterns
                            .last()
                            .and_then(|step| step.first())
                            .map(|p| p.source.clone()),
                    ),
                    Variety::List(item) => self.simple_facts(*item),
                    Variety::Union(members) => members
                        .first()
                        .map_or((Builtin::String, None, None), |m| self.simple_facts(*m)),
                },
                TypeDef::Complex(complex) => match complex.content {
                    Content::Simple(inner) => self.simple_facts(inner),
                    _ => (Builtin::String, None, None),
                },
            },
        }
    }

    /// Pads or cuts a fallback string to the type's length facets.
    fn fit_length(&self, ty: TypeRef, mut value: String) -> String {
        if let TypeRef::Defined(id) = ty {
            if let TypeDef::Simple(simple) = &self.schema.types[id] {
                let facets = &simple.facets;
                let min = facets.length.or(facets.min_length).unwrap_or(0);
                let max = facets.length.or(facets.max_length).unwrap_or(usize::MAX);
                while value.chars().count() < min {
                    value.push('x');
                }
                if value.chars().count() > max {
                    value = value.chars().take(max).collect();
                }
            }
        }
        value
    }
}

/// Name-based guesses first, then the type's own default. `context` is `parent/name`.
fn candidates(context: &str, builtin: Builtin, now: OffsetDateTime) -> Vec<String> {
    let lower = context.to_ascii_lowercase();
    let mut list: Vec<String> = Vec::new();
    let has = |part: &str| lower.contains(part);
    let name = lower.rsplit('/').next().unwrap_or(&lower).to_owned();
    if has("errorcode") {
        list.push("0".into());
    }
    if has("organisationtype") {
        list.push("8".into()); // Jobcenter
    }
    if has("usertype") {
        list.push("3".into()); // System
    }
    if name == "useridentifier" {
        list.push(format!("CVR:91234567-UUID:{}", uuid::Uuid::new_v4()));
    }
    if builtin == Builtin::DateTime && (name.contains("end") || name.ends_with("todatetime")) {
        let later = now.replace_nanosecond(0).unwrap_or(now) + time::Duration::hours(1);
        if let Ok(text) = later.format(&time::format_description::well_known::Rfc3339) {
            list.push(text);
        }
    }
    if has("civilregistration") || has("cpr") {
        list.push("0101701234".into());
    }
    if has("email") {
        list.push("jobcenter@example.dk".into());
    }
    if has("phone") || has("mobile") {
        list.push("+4512345678".into());
    }
    if has("cvr") {
        list.push("91234567".into());
    }
    if has("municipality") || has("organisationcode") {
        list.push("101".into());
    }
    if has("fullname") || name == "name" || has("personname") || has("resourcename") {
        list.push("Test Testesen".into());
    }
    if has("message") || has("description") || has("comment") || has("text") {
        list.push("Behandlet af dfdg-mock".into());
    }
    if has("source") || has("originsystem") {
        list.push("dfdg-mock".into());
    }
    if name.contains("identifier")
        || name.contains("reference")
        || name.contains("guid")
        || name.ends_with("id")
    {
        list.push(uuid::Uuid::new_v4().to_string());
    }
    if name.contains("name") {
        list.push("Eksempel".into());
    }
    if name.contains("code") || name.contains("type") {
        list.push("1".into());
    }
    list.push(type_default(builtin, now));
    list
}

fn type_default(builtin: Builtin, now: OffsetDateTime) -> String {
    use Builtin::*;
    let now = now.replace_nanosecond(0).unwrap_or(now);
    match builtin {
        Boolean => "false".into(),
        Decimal | Integer | NonNegativeInteger | PositiveInteger | Long | Int | Short | Byte
        | UnsignedLong | UnsignedInt | UnsignedShort | UnsignedByte => "1".into(),
        NonPositiveInteger => "0".into(),
        NegativeInteger => "-1".into(),
        Float | Double => "1.0".into(),
        DateTime => now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "2026-01-01T00:00:00Z".into()),
        Date => format!(
            "{:04}-{:02}-{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        ),
        Time => format!("{:02}:{:02}:{:02}", now.hour(), now.minute(), now.second()),
        Duration => "P1D".into(),
        GYear => format!("{:04}", now.year()),
        GYearMonth => format!("{:04}-{:02}", now.year(), u8::from(now.month())),
        GMonth => format!("--{:02}", u8::from(now.month())),
        GMonthDay => format!("--{:02}-{:02}", u8::from(now.month()), now.day()),
        GDay => format!("---{:02}", now.day()),
        Base64Binary => "ZGZkZy1tb2Nr".into(),
        HexBinary => "00".into(),
        AnyUri => "https://example.dk/".into(),
        QName | NcName | Name | Id | IdRef | NmToken => "eksempel".into(),
        Language => "da".into(),
        AnyType | AnySimpleType | String | NormalizedString | Token => "Eksempel".into(),
    }
}

/// A string matching an XSD pattern, built by walking the regex's syntax tree.
pub fn from_pattern(xsd: &str) -> Option<String> {
    let hir = regex_syntax::Parser::new()
        .parse(&super::xsd::translate_pattern(xsd))
        .ok()?;
    let mut out = String::new();
    walk(&hir, &mut out);
    Some(out)
}

fn walk(hir: &Hir, out: &mut String) {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => {}
        HirKind::Literal(literal) => out.push_str(&String::from_utf8_lossy(&literal.0)),
        HirKind::Class(Class::Unicode(class)) => {
            let preferred = ['a', '1', 'A', '0', 'x'];
            let pick = preferred
                .into_iter()
                .find(|c| {
                    class
                        .ranges()
                        .iter()
                        .any(|r| r.start() <= *c && *c <= r.end())
                })
                .or_else(|| {
                    class
                        .ranges()
                        .iter()
                        .flat_map(|r| [r.start(), r.end()])
                        .find(|c| c.is_alphanumeric() || c.is_ascii_punctuation())
                });
            if let Some(c) = pick {
                out.push(c);
            }
        }
        HirKind::Class(Class::Bytes(class)) => {
            if let Some(range) = class.ranges().first() {
                out.push(char::from(range.start()));
            }
        }
        HirKind::Repetition(repetition) => {
            let times = repetition
                .min
                .max(1)
                .min(repetition.max.unwrap_or(u32::MAX));
            for _ in 0..times {
                walk(&repetition.sub, out);
            }
        }
        HirKind::Capture(capture) => walk(&capture.sub, out),
        HirKind::Concat(items) => {
            for item in items {
                walk(item, out);
            }
        }
        HirKind::Alternation(items) => {
            if let Some(first) = items.first() {
                walk(first, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_match_whole_trailing_path_steps() {
        let overrides = Overrides::default()
            .with("RequestUserStructure/UserIdentifier", "CVR:1-UUID:x")
            .with("OrganisationCode", "91234567");
        assert_eq!(
            overrides.find("RequestUserMetadataHeader/RequestUserStructure/UserIdentifier"),
            Some("CVR:1-UUID:x")
        );
        assert_eq!(
            overrides.find("RequestUserStructure/UserIdentifier"),
            Some("CVR:1-UUID:x")
        );
        assert_eq!(overrides.find("Other/UserIdentifier"), None);
        assert_eq!(overrides.find("X/ActiveOrganisationCode"), None);
        assert_eq!(overrides.find("X/OrganisationCode"), Some("91234567"));
    }

    #[test]
    fn pattern_samples_match_their_patterns() {
        for pattern in [
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
            "[-][1]|[0-9]{1,8}",
            r"(\+)?[0-9]{3,20}",
            r"([^>\(\)\[\]\\,;:@\s]{0,191}@[^>\(\)\[\]\\,;:@\s]{1,64})",
            "[0-9]{10}",
        ] {
            let value = from_pattern(pattern).unwrap();
            let regex = regex::Regex::new(&super::super::xsd::translate_pattern(pattern)).unwrap();
            assert!(regex.is_match(&value), "{pattern} -> {value}");
        }
    }
}

//! Schema-valid sample messages: the default answer for an operation nobody scripted, and the
//! example requests. Every required element and attribute is present, optional ones appear once
//! while the tree is shallow and not recursive, and values are plausible for their name and type
//! (a CPR number for `CivilRegistrationIdentifier`, fresh GUIDs for identifiers, the current time
//! for dateTime). Each candidate value is checked against the whole type (every facet of every
//! derivation step); when none fits, one is built from the facets: an enumeration value, a number
//! inside the bounds and digits, a pattern's string stretched to the length facets, as many list
//! items as the list needs, a union member's value.

use std::fmt::Write as _;

use quick_xml::escape::escape;
use regex_syntax::hir::{Class, Hir, HirKind};
use time::OffsetDateTime;

use super::xsd::{Builtin, Content, ElementId, Particle, Schema, Term, TypeDef, TypeRef, Variety};

/// How deep optional content is still filled in.
const OPTIONAL_DEPTH: usize = 6;

/// STAR's organisation type 24, Virksomhed (a company): a supplier's own organisation.
const ORGANISATION_TYPE_COMPANY: &str = "24";
/// STAR's user type 3, System.
const USER_TYPE_SYSTEM: &str = "3";

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

    /// STAR's headers of a system call made with a certificate of `caller_id`: `UserIdentifier`
    /// is the caller id, `UserFullName` the system's name, user type 3 (System), and the
    /// organisation the supplier's own CVR (type 24, Virksomhed), as the identity checks expect.
    pub fn system_caller(caller_id: &str, system_name: &str, cvr: Option<&str>) -> Overrides {
        let overrides = Overrides::default()
            .with("RequestUserStructure/UserIdentifier", caller_id)
            .with("RequestUserStructure/UserFullName", system_name)
            .with(
                "RequestUserTypeIdentifier/CodeListItemIdentifier",
                USER_TYPE_SYSTEM,
            );
        match cvr {
            Some(cvr) => overrides
                .with(
                    "RequestOrganisationStructure/OrganisationTypeIdentifier/CodeListItemIdentifier",
                    ORGANISATION_TYPE_COMPANY,
                )
                .with("RequestOrganisationStructure/OrganisationCode", cvr),
            None => overrides,
        }
    }

    /// [`Overrides::system_caller`] for the certificate a caller presented.
    pub fn for_identity(identity: &crate::identity::CallerIdentity) -> Overrides {
        let name = identity
            .common_name
            .as_deref()
            .or(identity.organisation.as_deref())
            .unwrap_or(&identity.caller_id);
        Overrides::system_caller(&identity.caller_id, name, identity.cvr.as_deref())
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
        ids: 0,
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
    /// `xs:ID` values handed out so far.
    ids: usize,
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

    /// A plausible value of simple type `ty` for an element or attribute named `name`: the
    /// caller's override, an enumeration value, a guess by name, a value built from the
    /// facets (bounds, digits, pattern, length), each checked against the whole type.
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
        // The parent's name says what a generic leaf (CodeListItemIdentifier) stands for.
        let parent = match self.names.len() {
            n if n >= 2 && self.names[n - 1] == name => self.names[n - 2].as_str(),
            n if n >= 1 && self.names[n - 1] != name => self.names[n - 1].as_str(),
            _ => "",
        };
        let context = format!("{parent}/{name}");
        let mut candidates = Vec::new();
        self.candidates(ty, &context, &mut candidates, 0);
        let id = self.ids;
        let unique = |value: &str| {
            if value == ID_PLACEHOLDER {
                format!("id-{id}")
            } else {
                value.to_owned()
            }
        };
        let found = candidates
            .iter()
            .map(|c| unique(c))
            .find(|c| self.schema.check_value(ty, c).is_ok());
        match found {
            Some(value) => {
                if value.starts_with("id-") && self.schema.primitive(ty) == Builtin::Id {
                    self.ids += 1;
                }
                value
            }
            // Nothing fits (a schema whose facets contradict each other): the type's default.
            None => type_default(self.schema.primitive(ty), self.now),
        }
    }

    /// Candidate values for `ty`, best first; each is checked by the caller.
    fn candidates(&self, ty: TypeRef, context: &str, out: &mut Vec<String>, depth: usize) {
        if depth > 8 {
            return;
        }
        let simple = match ty {
            TypeRef::Builtin(builtin) => {
                out.extend(by_name(context, builtin, self.now));
                return;
            }
            TypeRef::Defined(id) => match &self.schema.types[id] {
                TypeDef::Simple(simple) => simple,
                TypeDef::Complex(complex) => {
                    if let Content::Simple(inner) = complex.content {
                        self.candidates(inner, context, out, depth + 1);
                    }
                    return;
                }
            },
        };
        let facets = &simple.facets;
        out.extend(facets.enumeration.iter().cloned());
        match &simple.variety {
            Variety::Atomic(builtin) => {
                let builtin = *builtin;
                out.extend(by_name(context, builtin, self.now));
                if builtin.is_decimal() || matches!(builtin, Builtin::Float | Builtin::Double) {
                    out.extend(numbers(builtin, facets));
                }
                if let Some(bound) = facets
                    .min_inclusive
                    .iter()
                    .chain(&facets.max_inclusive)
                    .next()
                {
                    out.push(bound.clone());
                }
                for step in facets.patterns.iter().rev() {
                    for pattern in step {
                        out.extend(from_pattern_sized(
                            &pattern.source,
                            facets.length.or(facets.min_length).unwrap_or(0),
                            facets.length.or(facets.max_length),
                        ));
                    }
                }
                out.push(fit_length(builtin, facets, type_default(builtin, self.now)));
            }
            Variety::List(item) => {
                let mut items = Vec::new();
                self.candidates(*item, context, &mut items, depth + 1);
                let count = facets.length.or(facets.min_length).unwrap_or(1).max(1);
                for candidate in items {
                    if self.schema.check_value(*item, &candidate).is_ok() {
                        out.push(vec![candidate.as_str(); count].join(" "));
                    }
                }
            }
            Variety::Union(members) => {
                for member in members {
                    self.candidates(*member, context, out, depth + 1);
                }
                // The union's own patterns, when no member's value fits them.
                for step in facets.patterns.iter().rev() {
                    for pattern in step {
                        out.extend(from_pattern_sized(&pattern.source, 0, None));
                    }
                }
            }
        }
    }
}

/// Stands for a fresh `xs:ID` value (IDs must be unique within a document).
const ID_PLACEHOLDER: &str = "\u{0}id";

/// Numbers that satisfy the bounds and digit facets of a decimal, integer, float or double.
fn numbers(builtin: Builtin, facets: &super::xsd::Facets) -> Vec<String> {
    let integral = builtin.integer_bounds().is_some() || facets.fraction_digits == Some(0);
    let parse =
        |bound: &Option<String>| bound.as_deref().and_then(|b| b.trim().parse::<f64>().ok());
    let (builtin_low, builtin_high) = builtin
        .integer_bounds()
        .map_or((f64::MIN, f64::MAX), |(low, high)| {
            (low as f64, high as f64)
        });
    let mut low = builtin_low;
    let mut high = builtin_high;
    if let Some(bound) = parse(&facets.min_inclusive) {
        low = low.max(bound);
    }
    if let Some(bound) = parse(&facets.min_exclusive) {
        low = low.max(
            bound
                + if integral {
                    1.0
                } else {
                    0.5f64.powi(8).max(bound.abs() * 1e-9)
                },
        );
    }
    if let Some(bound) = parse(&facets.max_inclusive) {
        high = high.min(bound);
    }
    if let Some(bound) = parse(&facets.max_exclusive) {
        high = high.min(
            bound
                - if integral {
                    1.0
                } else {
                    0.5f64.powi(8).max(bound.abs() * 1e-9)
                },
        );
    }
    if let Some(total) = facets.total_digits {
        let fraction = facets.fraction_digits.unwrap_or(0).min(total);
        let widest = 10f64.powi(i32::try_from(total - fraction).unwrap_or(18)) - 1.0;
        high = high.min(widest);
        low = low.max(-widest);
    }
    let format = |value: f64| {
        if integral {
            format!("{}", value.round() as i128)
        } else {
            let digits = facets.fraction_digits.unwrap_or(2).min(6);
            let text = format!("{value:.digits$}");
            if matches!(builtin, Builtin::Float | Builtin::Double) && !text.contains('.') {
                format!("{text}.0")
            } else {
                text
            }
        }
    };
    let mut out = Vec::new();
    // Exclusive integer bounds one step inside, exactly (f64 cannot hold every integer).
    if integral {
        let step = |bound: &Option<String>, by: i128| {
            bound
                .as_deref()
                .and_then(|b| b.trim().parse::<i128>().ok())
                .and_then(|b| b.checked_add(by))
                .map(|b| b.to_string())
        };
        out.extend(step(&facets.min_exclusive, 1));
        out.extend(step(&facets.max_exclusive, -1));
    }
    for value in [
        1.0,
        low,
        low.ceil(),
        low.ceil() + 1.0,
        (low + high) / 2.0,
        high.floor(),
        high,
    ] {
        if value.is_finite() && value >= low && value <= high && value.abs() < 1e30 {
            out.push(format(value));
        }
    }
    out
}

/// Pads or cuts a default value to the length facets.
fn fit_length(builtin: Builtin, facets: &super::xsd::Facets, mut value: String) -> String {
    let min = facets.length.or(facets.min_length).unwrap_or(0);
    let max = facets.length.or(facets.max_length).unwrap_or(usize::MAX);
    match builtin {
        Builtin::HexBinary => "00".repeat(min.max(1).min(max)),
        Builtin::Base64Binary => {
            // Three octets per four symbols.
            let octets = min.max(1).min(max);
            let bytes = vec![b'x'; octets];
            base64(&bytes)
        }
        _ => {
            while value.chars().count() < min {
                value.push('x');
            }
            if value.chars().count() > max {
                value = value.chars().take(max).collect();
            }
            value
        }
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Name-based guesses first, then the type's own default. `context` is `parent/name`.
fn by_name(context: &str, builtin: Builtin, now: OffsetDateTime) -> Vec<String> {
    let lower = context.to_lowercase();
    let mut list: Vec<String> = Vec::new();
    if builtin == Builtin::Id {
        list.push(ID_PLACEHOLDER.to_owned());
    }
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
    from_pattern_sized(xsd, 0, None).into_iter().next()
}

/// Strings matching an XSD pattern, those with `min..=max` characters first: repetitions at
/// their least, stretched towards `min`, and each of the first alternatives.
pub fn from_pattern_sized(xsd: &str, min: usize, max: Option<usize>) -> Vec<String> {
    let Ok(hir) = regex_syntax::Parser::new().parse(&super::xsd::translate_pattern(xsd)) else {
        return Vec::new();
    };
    let mut variants: Vec<String> = Vec::new();
    for alternative in 0..3 {
        for (least, stretch) in [(false, 0), (true, 0), (false, min), (false, min.max(1) * 2)] {
            let mut walk = Walk {
                budget: 0,
                least,
                alternative,
            };
            let mut out = String::new();
            walk.walk(&hir, &mut out);
            if stretch > out.chars().count() {
                walk.budget = stretch - out.chars().count();
                out.clear();
                walk.walk(&hir, &mut out);
            }
            if !variants.contains(&out) {
                variants.push(out);
            }
        }
    }
    let fits = |v: &String| {
        let n = v.chars().count();
        n >= min && max.is_none_or(|max| n <= max)
    };
    variants.sort_by_key(|v| !fits(v));
    variants
}

/// One way of walking a pattern's syntax tree into a matching string.
struct Walk {
    /// Characters still to add by repeating more than the least.
    budget: usize,
    /// Repeat exactly the least (else at least once).
    least: bool,
    /// Which branch of an alternation to take (the last when there are fewer).
    alternative: usize,
}

impl Walk {
    fn walk(&mut self, hir: &Hir, out: &mut String) {
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
                let max = repetition.max.unwrap_or(u32::MAX);
                let least = if self.least {
                    repetition.min
                } else {
                    repetition.min.max(1).min(max)
                };
                let mut times = 0;
                while times < least {
                    self.walk(&repetition.sub, out);
                    times += 1;
                }
                while self.budget > 0 && times < max {
                    let before = out.chars().count();
                    self.walk(&repetition.sub, out);
                    let added = out.chars().count() - before;
                    if added == 0 {
                        break;
                    }
                    self.budget = self.budget.saturating_sub(added);
                    times += 1;
                }
            }
            HirKind::Capture(capture) => self.walk(&capture.sub, out),
            HirKind::Concat(items) => {
                for item in items {
                    self.walk(item, out);
                }
            }
            HirKind::Alternation(items) => {
                if let Some(item) = items.get(self.alternative.min(items.len() - 1)) {
                    self.walk(item, out);
                }
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

    #[test]
    fn patterns_stretch_to_their_length_facets() {
        let values = from_pattern_sized("[A-ZÆØÅ][a-zæøå]+( [A-ZÆØÅ][a-zæøå]+)*", 12, Some(40));
        let first = &values[0];
        assert!((12..=40).contains(&first.chars().count()), "{values:?}");
        let regex = regex::Regex::new(&super::super::xsd::translate_pattern(
            "[A-ZÆØÅ][a-zæøå]+( [A-ZÆØÅ][a-zæøå]+)*",
        ))
        .unwrap();
        assert!(regex.is_match(first), "{first}");
        // The second alternative when the first is too long.
        let values = from_pattern_sized("[0-9]{9}|[0-9]{2}", 0, Some(2));
        assert_eq!(values[0], "11");
    }

    #[test]
    fn numbers_honour_bounds_and_digits() {
        let facets = |min: Option<&str>, min_x: Option<&str>, max_x: Option<&str>, fraction| {
            super::super::xsd::Facets {
                min_inclusive: min.map(str::to_owned),
                min_exclusive: min_x.map(str::to_owned),
                max_exclusive: max_x.map(str::to_owned),
                fraction_digits: fraction,
                ..Default::default()
            }
        };
        let cvr = numbers(Builtin::Int, &facets(Some("10000000"), None, None, None));
        assert!(cvr.contains(&"10000000".to_owned()), "{cvr:?}");
        let rate = numbers(
            Builtin::Decimal,
            &facets(Some("0.0001"), None, Some("1"), Some(4)),
        );
        assert!(rate.contains(&"0.0001".to_owned()), "{rate:?}");
        let cold = numbers(Builtin::Short, &facets(Some("-40"), None, Some("-5"), None));
        assert!(cold.contains(&"-6".to_owned()), "{cold:?}");
        let huge = numbers(
            Builtin::Integer,
            &facets(None, Some("123456789012345678901234567890"), None, None),
        );
        assert_eq!(huge[0], "123456789012345678901234567891");
    }
}

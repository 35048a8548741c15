//! The compiled XSD 1.0 model: the schemas of one WSDL (inline, imported, included) turned once,
//! at start-up (by `compile`), into arenas of element declarations and types that
//! validation and response generation walk without looking anything up by name again; and the
//! built-in types with their lexical checks and facets.
//!
//! Covered: global and local elements, `ref`, `form`/`elementFormDefault`, `nillable`, `fixed`;
//! `sequence`/`choice`/`all`/named `group` with `minOccurs`/`maxOccurs`; `any` and `anyAttribute`;
//! `complexContent` and `simpleContent` extension and restriction; simple types by restriction
//! (enumeration, pattern, length/minLength/maxLength, min/max inclusive/exclusive,
//! totalDigits/fractionDigits, whiteSpace), `list` and `union` (with facets of their own);
//! attributes, `attributeGroup`, `use="required"`. Bounds compare in the primitive's value space:
//! exactly for decimals and integers of any size ([`Decimal`]), as instants for dates and times;
//! the XSD built-in types. Names resolve across every schema of the WSDL whether or not they
//! `xs:import` each other, as .NET does (STAR's own WSDLs rely on that).
//! Not covered (ignored): identity constraints, substitution groups, `redefine`, `abstract`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::soap::QualifiedName;

pub const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

pub type ElementId = usize;
pub type TypeId = usize;

/// How often a particle may occur.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurs {
    pub min: u32,
    /// `None`: unbounded.
    pub max: Option<u32>,
}

impl Occurs {
    pub const ONCE: Occurs = Occurs {
        min: 1,
        max: Some(1),
    };
}

/// An element declaration.
#[derive(Debug, Clone)]
pub struct ElementDecl {
    pub name: QualifiedName,
    pub ty: TypeRef,
    pub nillable: bool,
    pub fixed: Option<String>,
}

/// A type: built in, or defined in the schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeRef {
    Builtin(Builtin),
    Defined(TypeId),
}

#[derive(Debug, Clone)]
pub enum TypeDef {
    Simple(SimpleType),
    Complex(ComplexType),
}

#[derive(Debug, Clone)]
pub struct SimpleType {
    pub name: Option<QualifiedName>,
    pub variety: Variety,
    pub facets: Facets,
}

#[derive(Debug, Clone)]
pub enum Variety {
    Atomic(Builtin),
    List(TypeRef),
    Union(Vec<TypeRef>),
}

/// One `pattern` facet: the XSD text and its compiled form (None when the regex dialect is
/// beyond what we translate; such a pattern is not checked and `check` says so).
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: Option<Regex>,
}

/// Facets accumulated along a derivation chain: each restriction step overrides what it
/// restates (a valid schema only narrows), patterns accumulate per step.
#[derive(Debug, Clone, Default)]
pub struct Facets {
    pub enumeration: Vec<String>,
    /// One entry per derivation step; a value must match one pattern of every step.
    pub patterns: Vec<Vec<Pattern>>,
    pub length: Option<usize>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    /// Bounds in their lexical form, compared in the value space of the primitive type
    /// (exactly for decimals and integers, as instants for dates and times).
    pub min_inclusive: Option<String>,
    pub max_inclusive: Option<String>,
    pub min_exclusive: Option<String>,
    pub max_exclusive: Option<String>,
    pub total_digits: Option<usize>,
    pub fraction_digits: Option<usize>,
    /// `whiteSpace`, when a step sets it (else the built-in type's own).
    pub white_space: Option<WhiteSpace>,
}

/// How a type treats whitespace before checking a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteSpace {
    Preserve,
    /// Tabs, newlines and carriage returns become spaces.
    Replace,
    /// As `Replace`, then runs of spaces become one and the ends are trimmed.
    Collapse,
}

impl WhiteSpace {
    pub fn from_facet(value: &str) -> Option<WhiteSpace> {
        match value.trim() {
            "preserve" => Some(WhiteSpace::Preserve),
            "replace" => Some(WhiteSpace::Replace),
            "collapse" => Some(WhiteSpace::Collapse),
            _ => None,
        }
    }

    /// `raw` as this rule normalises it.
    pub fn apply(self, raw: &str) -> Cow<'_, str> {
        let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
        match self {
            WhiteSpace::Preserve => Cow::Borrowed(raw),
            WhiteSpace::Replace if !raw.contains(['\t', '\n', '\r']) => Cow::Borrowed(raw),
            WhiteSpace::Replace => Cow::Owned(raw.replace(['\t', '\n', '\r'], " ")),
            WhiteSpace::Collapse => {
                let trimmed = raw.trim_matches(is_space);
                let mut previous_space = false;
                let clean = trimmed.chars().all(|c| {
                    let ok = c == ' ' && !previous_space || !is_space(c);
                    previous_space = c == ' ';
                    ok
                });
                if clean {
                    return Cow::Borrowed(trimmed);
                }
                let mut out = String::with_capacity(trimmed.len());
                for word in trimmed.split(is_space).filter(|w| !w.is_empty()) {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(word);
                }
                Cow::Owned(out)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ComplexType {
    pub name: Option<QualifiedName>,
    pub content: Content,
    pub attributes: Vec<AttributeUse>,
    pub any_attribute: bool,
    pub mixed: bool,
}

#[derive(Debug, Clone)]
pub enum Content {
    Empty,
    /// Character data of a simple type (simpleContent).
    Simple(TypeRef),
    Elements(Particle),
}

#[derive(Debug, Clone)]
pub struct Particle {
    pub term: Term,
    pub occurs: Occurs,
}

#[derive(Debug, Clone)]
pub enum Term {
    Element(ElementId),
    Sequence(Vec<Particle>),
    Choice(Vec<Particle>),
    All(Vec<Particle>),
    Any(Wildcard),
}

/// Which namespaces an `any` admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wildcard {
    Any,
    /// Any namespace but this one (and not unqualified).
    Other(String),
    List(Vec<String>),
}

impl Wildcard {
    pub fn admits(&self, namespace: &str) -> bool {
        match self {
            Wildcard::Any => true,
            Wildcard::Other(target) => namespace != target && !namespace.is_empty(),
            Wildcard::List(list) => list.iter().any(|n| n == namespace),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AttributeUse {
    pub name: QualifiedName,
    pub ty: TypeRef,
    pub required: bool,
    pub fixed: Option<String>,
}

/// The XSD built-in types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    AnyType,
    AnySimpleType,
    String,
    NormalizedString,
    Token,
    Language,
    Name,
    NcName,
    Id,
    IdRef,
    NmToken,
    AnyUri,
    QName,
    Boolean,
    Decimal,
    Integer,
    NonPositiveInteger,
    NegativeInteger,
    Long,
    Int,
    Short,
    Byte,
    NonNegativeInteger,
    PositiveInteger,
    UnsignedLong,
    UnsignedInt,
    UnsignedShort,
    UnsignedByte,
    Float,
    Double,
    Duration,
    DateTime,
    Date,
    Time,
    GYear,
    GYearMonth,
    GMonth,
    GMonthDay,
    GDay,
    Base64Binary,
    HexBinary,
}

impl Builtin {
    pub fn from_local(local: &str) -> Option<Builtin> {
        use Builtin::*;
        Some(match local {
            "anyType" => AnyType,
            "anySimpleType" => AnySimpleType,
            "string" => String,
            "normalizedString" => NormalizedString,
            "token" => Token,
            "language" => Language,
            "Name" => Name,
            "NCName" => NcName,
            "ID" => Id,
            "IDREF" | "IDREFS" | "ENTITY" | "ENTITIES" | "NOTATION" => IdRef,
            "NMTOKEN" | "NMTOKENS" => NmToken,
            "anyURI" => AnyUri,
            "QName" => QName,
            "boolean" => Boolean,
            "decimal" => Decimal,
            "integer" => Integer,
            "nonPositiveInteger" => NonPositiveInteger,
            "negativeInteger" => NegativeInteger,
            "long" => Long,
            "int" => Int,
            "short" => Short,
            "byte" => Byte,
            "nonNegativeInteger" => NonNegativeInteger,
            "positiveInteger" => PositiveInteger,
            "unsignedLong" => UnsignedLong,
            "unsignedInt" => UnsignedInt,
            "unsignedShort" => UnsignedShort,
            "unsignedByte" => UnsignedByte,
            "float" => Float,
            "double" => Double,
            "duration" => Duration,
            "dateTime" => DateTime,
            "date" => Date,
            "time" => Time,
            "gYear" => GYear,
            "gYearMonth" => GYearMonth,
            "gMonth" => GMonth,
            "gMonthDay" => GMonthDay,
            "gDay" => GDay,
            "base64Binary" => Base64Binary,
            "hexBinary" => HexBinary,
            _ => return None,
        })
    }

    /// The name as written in a schema (`xs:` + this).
    pub fn label(self) -> &'static str {
        use Builtin::*;
        match self {
            AnyType => "anyType",
            AnySimpleType => "anySimpleType",
            String => "string",
            NormalizedString => "normalizedString",
            Token => "token",
            Language => "language",
            Name => "Name",
            NcName => "NCName",
            Id => "ID",
            IdRef => "IDREF",
            NmToken => "NMTOKEN",
            AnyUri => "anyURI",
            QName => "QName",
            Boolean => "boolean",
            Decimal => "decimal",
            Integer => "integer",
            NonPositiveInteger => "nonPositiveInteger",
            NegativeInteger => "negativeInteger",
            Long => "long",
            Int => "int",
            Short => "short",
            Byte => "byte",
            NonNegativeInteger => "nonNegativeInteger",
            PositiveInteger => "positiveInteger",
            UnsignedLong => "unsignedLong",
            UnsignedInt => "unsignedInt",
            UnsignedShort => "unsignedShort",
            UnsignedByte => "unsignedByte",
            Float => "float",
            Double => "double",
            Duration => "duration",
            DateTime => "dateTime",
            Date => "date",
            Time => "time",
            GYear => "gYear",
            GYearMonth => "gYearMonth",
            GMonth => "gMonth",
            GMonthDay => "gMonthDay",
            GDay => "gDay",
            Base64Binary => "base64Binary",
            HexBinary => "hexBinary",
        }
    }

    /// Integer types: their inclusive bounds.
    pub fn integer_bounds(self) -> Option<(i128, i128)> {
        use Builtin::*;
        Some(match self {
            Integer => (i128::MIN, i128::MAX),
            NonPositiveInteger => (i128::MIN, 0),
            NegativeInteger => (i128::MIN, -1),
            Long => (i64::MIN.into(), i64::MAX.into()),
            Int => (i32::MIN.into(), i32::MAX.into()),
            Short => (i16::MIN.into(), i16::MAX.into()),
            Byte => (i8::MIN.into(), i8::MAX.into()),
            NonNegativeInteger => (0, i128::MAX),
            PositiveInteger => (1, i128::MAX),
            UnsignedLong => (0, u64::MAX.into()),
            UnsignedInt => (0, u32::MAX.into()),
            UnsignedShort => (0, u16::MAX.into()),
            UnsignedByte => (0, u8::MAX.into()),
            _ => return None,
        })
    }

    pub fn is_numeric(self) -> bool {
        self.integer_bounds().is_some()
            || matches!(self, Builtin::Decimal | Builtin::Float | Builtin::Double)
    }

    /// The whitespace rule of the type (XSD Part 2, 4.3.6).
    pub fn white_space(self) -> WhiteSpace {
        match self {
            Builtin::String | Builtin::AnyType | Builtin::AnySimpleType => WhiteSpace::Preserve,
            Builtin::NormalizedString => WhiteSpace::Replace,
            _ => WhiteSpace::Collapse,
        }
    }

    /// Whether values are ordered by their decimal value (the decimal and integer types).
    pub fn is_decimal(self) -> bool {
        self == Builtin::Decimal || self.integer_bounds().is_some()
    }

    /// Checks the lexical form of `value` (already whitespace-collapsed where the type says so).
    pub fn check(self, value: &str) -> Result<(), String> {
        use Builtin::*;
        let ok = match self {
            AnyType | AnySimpleType | String | NormalizedString | Token | AnyUri | Language
            | Name | NcName | Id | IdRef | NmToken | QName => true,
            Boolean => matches!(value, "true" | "false" | "1" | "0"),
            Decimal => lexical(&DECIMAL, r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$", value),
            Float | Double => {
                matches!(value, "INF" | "-INF" | "NaN")
                    || (lexical(
                        &FLOAT,
                        r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$",
                        value,
                    ))
            }
            Duration => {
                lexical(
                    &DURATION,
                    r"^-?P([0-9]+Y)?([0-9]+M)?([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+(\.[0-9]+)?S)?)?$",
                    value,
                ) && value.len() > 1
                    && !value.ends_with('P')
                    && !value.ends_with('T')
            }
            DateTime => lexical(
                &DATE_TIME,
                r"^-?[0-9]{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-4]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$",
                value,
            ),
            Date => lexical(
                &DATE,
                r"^-?[0-9]{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(Z|[+-][0-9]{2}:[0-9]{2})?$",
                value,
            ),
            Time => lexical(
                &TIME,
                r"^([01][0-9]|2[0-4]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$",
                value,
            ),
            GYear => lexical(&G_YEAR, r"^-?[0-9]{4,}(Z|[+-][0-9]{2}:[0-9]{2})?$", value),
            GYearMonth => lexical(
                &G_YEAR_MONTH,
                r"^-?[0-9]{4,}-(0[1-9]|1[0-2])(Z|[+-][0-9]{2}:[0-9]{2})?$",
                value,
            ),
            GMonth => lexical(
                &G_MONTH,
                r"^--(0[1-9]|1[0-2])(Z|[+-][0-9]{2}:[0-9]{2})?$",
                value,
            ),
            GMonthDay => lexical(
                &G_MONTH_DAY,
                r"^--(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(Z|[+-][0-9]{2}:[0-9]{2})?$",
                value,
            ),
            GDay => lexical(
                &G_DAY,
                r"^---(0[1-9]|[12][0-9]|3[01])(Z|[+-][0-9]{2}:[0-9]{2})?$",
                value,
            ),
            Base64Binary => value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/= \n\r\t".contains(&b)),
            HexBinary => value.len() % 2 == 0 && value.bytes().all(|b| b.is_ascii_hexdigit()),
            _ => {
                let Some((low, high)) = self.integer_bounds() else {
                    return Ok(());
                };
                return match value.strip_prefix('+').unwrap_or(value).parse::<i128>() {
                    Ok(number) if number >= low && number <= high => Ok(()),
                    Ok(_) => Err(format!("'{value}' is out of range for xs:{}", self.label())),
                    Err(_) => Err(format!("'{value}' is not a valid xs:{}", self.label())),
                };
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("'{value}' is not a valid xs:{}", self.label()))
        }
    }
}

static DECIMAL: OnceLock<Regex> = OnceLock::new();
static FLOAT: OnceLock<Regex> = OnceLock::new();
static DURATION: OnceLock<Regex> = OnceLock::new();
static DATE_TIME: OnceLock<Regex> = OnceLock::new();
static DATE: OnceLock<Regex> = OnceLock::new();
static TIME: OnceLock<Regex> = OnceLock::new();
static G_YEAR: OnceLock<Regex> = OnceLock::new();
static G_YEAR_MONTH: OnceLock<Regex> = OnceLock::new();
static G_MONTH: OnceLock<Regex> = OnceLock::new();
static G_MONTH_DAY: OnceLock<Regex> = OnceLock::new();
static G_DAY: OnceLock<Regex> = OnceLock::new();

/// Compiles the lexical patterns of the built-in types now, so no request pays for it.
pub fn warm_up() {
    for builtin in [
        Builtin::Decimal,
        Builtin::Float,
        Builtin::Duration,
        Builtin::DateTime,
        Builtin::Date,
        Builtin::Time,
        Builtin::GYear,
        Builtin::GYearMonth,
        Builtin::GMonth,
        Builtin::GMonthDay,
        Builtin::GDay,
    ] {
        let _ = builtin.check("1");
    }
}

fn lexical(cell: &OnceLock<Regex>, pattern: &str, value: &str) -> bool {
    cell.get_or_init(|| Regex::new(pattern).expect("built-in lexical patterns compile"))
        .is_match(value)
}

/// Translates an XSD pattern (implicitly anchored) into a Rust regex.
pub fn translate_pattern(xsd: &str) -> String {
    let mut out = String::with_capacity(xsd.len() + 8);
    out.push_str("^(?:");
    let mut chars = xsd.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('i') => out.push_str(if in_class { "_:A-Za-z" } else { "[_:A-Za-z]" }),
                Some('I') => out.push_str("[^_:A-Za-z]"),
                Some('c') => out.push_str(if in_class {
                    "\\-._:A-Za-z0-9"
                } else {
                    "[\\-._:A-Za-z0-9]"
                }),
                Some('C') => out.push_str("[^\\-._:A-Za-z0-9]"),
                // XSD's \s is exactly these four; Unicode's is larger (and slower to compile).
                Some('s') => out.push_str(if in_class {
                    " \\t\\n\\r"
                } else {
                    "[ \\t\\n\\r]"
                }),
                Some('S') if !in_class => out.push_str("[^ \\t\\n\\r]"),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push_str("\\\\"),
            },
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            // Literal in XSD, anchors in Rust.
            '^' if !in_class => out.push_str("\\^"),
            '$' => out.push_str("\\$"),
            _ => out.push(c),
        }
    }
    out.push_str(")$");
    out
}

impl Facets {
    /// Checks `value` (whitespace-normalised for its type) against every facet; `base` is the
    /// primitive of an atomic type, `None` for a list or union (whose length is checked by the
    /// caller, in items).
    pub fn check(&self, value: &str, base: Option<Builtin>) -> Result<(), String> {
        if !self.enumeration.is_empty()
            && !self.enumeration.iter().any(|e| match base {
                Some(base)
                    if base.is_decimal() || matches!(base, Builtin::Float | Builtin::Double) =>
                {
                    compare(base, value, e.trim()) == Some(Ordering::Equal)
                }
                Some(base) => base.white_space().apply(e) == value,
                None => WhiteSpace::Collapse.apply(e) == value,
            })
        {
            return Err(format!(
                "'{value}' is not one of the allowed values [{}]",
                self.enumeration.join(", ")
            ));
        }
        for step in &self.patterns {
            // No list of the step's regexes: this runs for every value of every request.
            let mut checked = step.iter().filter_map(|p| p.regex.as_ref()).peekable();
            if checked.peek().is_some() && !checked.any(|r| r.is_match(value)) {
                let sources: Vec<&str> = step.iter().map(|p| p.source.as_str()).collect();
                return Err(format!(
                    "'{value}' does not match the pattern {}",
                    sources.join(" | ")
                ));
            }
        }
        let Some(base) = base else {
            return Ok(());
        };
        if let Some(length) = value_length(base, value) {
            let unit = match base {
                Builtin::HexBinary | Builtin::Base64Binary => "octets",
                _ => "characters",
            };
            if let Some(expected) = self.length.filter(|expected| length != *expected) {
                return Err(format!(
                    "'{value}' has {length} {unit}, expected exactly {expected}"
                ));
            }
            if let Some(min) = self.min_length.filter(|min| length < *min) {
                return Err(format!(
                    "'{value}' has {length} {unit}, expected at least {min}"
                ));
            }
            if let Some(max) = self.max_length.filter(|max| length > *max) {
                return Err(format!(
                    "'{value}' has {length} {unit}, expected at most {max}"
                ));
            }
        }
        let bounds = [
            (
                &self.min_inclusive,
                ">=",
                [Ordering::Greater, Ordering::Equal],
            ),
            (&self.max_inclusive, "<=", [Ordering::Less, Ordering::Equal]),
            (
                &self.min_exclusive,
                ">",
                [Ordering::Greater, Ordering::Greater],
            ),
            (&self.max_exclusive, "<", [Ordering::Less, Ordering::Less]),
        ];
        for (bound, relation, allowed) in bounds {
            let Some(bound) = bound else {
                continue;
            };
            if let Some(order) = compare(base, value, bound) {
                if !allowed.contains(&order) {
                    return Err(format!(
                        "'{value}' is out of range: expected {relation} {bound}"
                    ));
                }
            }
        }
        if base.is_decimal() {
            if let Some(decimal) = Decimal::parse(value) {
                if let Some(total) = self.total_digits {
                    if decimal.total_digits() > total {
                        return Err(format!("'{value}' has more than {total} digits"));
                    }
                }
                if let Some(max) = self.fraction_digits {
                    if decimal.fraction.len() > max {
                        return Err(format!("'{value}' has more than {max} fraction digits"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The length of a value as the length facets count it: octets for binary types, nothing for
/// QNames (XSD ignores length facets there), characters otherwise.
fn value_length(base: Builtin, value: &str) -> Option<usize> {
    match base {
        Builtin::HexBinary => Some(value.len() / 2),
        Builtin::Base64Binary => {
            let symbols = value.bytes().filter(|b| !b.is_ascii_whitespace()).count();
            let padding = value.bytes().rev().filter(|b| *b == b'=').take(2).count();
            Some((symbols / 4) * 3 - padding.min((symbols / 4) * 3))
        }
        Builtin::QName => None,
        _ => Some(value.chars().count()),
    }
}

/// A decimal number in its parts: sign, integer digits without leading zeros, fraction digits
/// without trailing zeros. Compares exactly, whatever its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal<'a> {
    pub negative: bool,
    pub integer: &'a str,
    pub fraction: &'a str,
}

impl<'a> Decimal<'a> {
    pub fn parse(value: &'a str) -> Option<Decimal<'a>> {
        let value = value.trim();
        let (negative, digits) = match value.as_bytes().first()? {
            b'-' => (true, &value[1..]),
            b'+' => (false, &value[1..]),
            _ => (false, value),
        };
        let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if integer.is_empty() && fraction.is_empty()
            || !integer
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let integer = integer.trim_start_matches('0');
        let fraction = fraction.trim_end_matches('0');
        Some(Decimal {
            negative: negative && !(integer.is_empty() && fraction.is_empty()),
            integer,
            fraction,
        })
    }

    /// Significant digits, as `totalDigits` counts them (zero has one).
    pub fn total_digits(&self) -> usize {
        (self.integer.len() + self.fraction.len()).max(1)
    }
}

impl Ord for Decimal<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let magnitude = self
            .integer
            .len()
            .cmp(&other.integer.len())
            .then_with(|| self.integer.cmp(other.integer))
            .then_with(|| self.fraction.cmp(other.fraction));
        match (self.negative, other.negative) {
            (false, false) => magnitude,
            (true, true) => magnitude.reverse(),
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
        }
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Orders two values of an ordered primitive type; `None` when they are not comparable (a
/// date with a timezone against one without) or the type has no order we check.
pub fn compare(base: Builtin, a: &str, b: &str) -> Option<Ordering> {
    if base.is_decimal() {
        return Some(Decimal::parse(a)?.cmp(&Decimal::parse(b)?));
    }
    match base {
        Builtin::Float | Builtin::Double => {
            let number = |s: &str| match s.trim() {
                "INF" => Some(f64::INFINITY),
                "-INF" => Some(f64::NEG_INFINITY),
                other => other.parse::<f64>().ok(),
            };
            number(a)?.partial_cmp(&number(b)?)
        }
        Builtin::DateTime
        | Builtin::Date
        | Builtin::Time
        | Builtin::GYear
        | Builtin::GYearMonth
        | Builtin::GMonth
        | Builtin::GMonthDay
        | Builtin::GDay => {
            let (a, a_zoned) = temporal(base, a)?;
            let (b, b_zoned) = temporal(base, b)?;
            (a_zoned == b_zoned).then(|| a.cmp(&b))
        }
        _ => None,
    }
}

/// A date/time value as nanoseconds on one time line (UTC when it has a timezone), and
/// whether it has one.
fn temporal(base: Builtin, value: &str) -> Option<(i128, bool)> {
    let value = value.trim();
    // Split off the timezone: Z, or ±hh:mm at the end.
    let (body, offset_minutes, zoned) = if let Some(body) = value.strip_suffix('Z') {
        (body, 0i128, true)
    } else if value.len() > 6
        && value.is_char_boundary(value.len() - 6)
        && matches!(value.as_bytes()[value.len() - 6], b'+' | b'-')
        && value.as_bytes()[value.len() - 3] == b':'
    {
        let (body, zone) = value.split_at(value.len() - 6);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let hours: i128 = zone[1..3].parse().ok()?;
        let minutes: i128 = zone[4..6].parse().ok()?;
        (body, sign * (hours * 60 + minutes), true)
    } else {
        (value, 0, false)
    };
    let number = |s: &str| s.parse::<i128>().ok();
    let day_nanos: i128 = 86_400 * 1_000_000_000;
    let time_of_day = |s: &str| -> Option<i128> {
        let (hms, fraction) = s.split_once('.').unwrap_or((s, ""));
        let mut parts = hms.split(':');
        let (h, m, sec) = (
            number(parts.next()?)?,
            number(parts.next()?)?,
            number(parts.next()?)?,
        );
        let mut nanos = fraction.to_owned();
        nanos.truncate(9);
        while nanos.len() < 9 {
            nanos.push('0');
        }
        Some(((h * 60 + m) * 60 + sec) * 1_000_000_000 + number(&nanos)?)
    };
    let days = |year: i128, month: i128, day: i128| -> Option<i128> {
        let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
        let year = i32::try_from(year).ok()?;
        let date = time::Date::from_calendar_date(year, month, u8::try_from(day).ok()?).ok()?;
        Some(i128::from(date.to_julian_day()))
    };
    let (negative_year, body) = match body.strip_prefix('-') {
        Some(rest) if !matches!(base, Builtin::GMonth | Builtin::GMonthDay | Builtin::GDay) => {
            (true, rest)
        }
        _ => (false, body),
    };
    let signed = |year: i128| if negative_year { -year } else { year };
    let local = match base {
        Builtin::DateTime => {
            let (date, time) = body.split_once('T')?;
            let mut parts = date.split('-');
            let (y, mo, d) = (
                number(parts.next()?)?,
                number(parts.next()?)?,
                number(parts.next()?)?,
            );
            days(signed(y), mo, d)? * day_nanos + time_of_day(time)?
        }
        Builtin::Date => {
            let mut parts = body.split('-');
            let (y, mo, d) = (
                number(parts.next()?)?,
                number(parts.next()?)?,
                number(parts.next()?)?,
            );
            days(signed(y), mo, d)? * day_nanos
        }
        Builtin::Time => time_of_day(body)?,
        Builtin::GYear => signed(number(body)?) * 366 * day_nanos,
        Builtin::GYearMonth => {
            let (y, mo) = body.split_once('-')?;
            (signed(number(y)?) * 12 + number(mo)?) * 31 * day_nanos
        }
        Builtin::GMonth => number(body.trim_start_matches('-'))? * 31 * day_nanos,
        Builtin::GMonthDay => {
            let (mo, d) = body.trim_start_matches('-').split_once('-')?;
            (number(mo)? * 31 + number(d)?) * day_nanos
        }
        Builtin::GDay => number(body.trim_start_matches('-'))? * day_nanos,
        _ => return None,
    };
    Some((local - offset_minutes * 60 * 1_000_000_000, zoned))
}

/// The compiled schemas of one WSDL.
#[derive(Debug, Default)]
pub struct Schema {
    pub elements: Vec<ElementDecl>,
    pub types: Vec<TypeDef>,
    pub global_elements: HashMap<QualifiedName, ElementId>,
    pub global_types: HashMap<QualifiedName, TypeId>,
}

impl Schema {
    pub fn element(&self, id: ElementId) -> &ElementDecl {
        &self.elements[id]
    }

    pub fn global_element(&self, name: &QualifiedName) -> Option<ElementId> {
        self.global_elements.get(name).copied()
    }

    /// The complex type behind `ty`, if it is one.
    pub fn complex(&self, ty: TypeRef) -> Option<&ComplexType> {
        match ty {
            TypeRef::Defined(id) => match &self.types[id] {
                TypeDef::Complex(complex) => Some(complex),
                TypeDef::Simple(_) => None,
            },
            TypeRef::Builtin(_) => None,
        }
    }

    /// The built-in type at the root of a simple type.
    pub fn primitive(&self, ty: TypeRef) -> Builtin {
        match ty {
            TypeRef::Builtin(builtin) => builtin,
            TypeRef::Defined(id) => match &self.types[id] {
                TypeDef::Simple(SimpleType {
                    variety: Variety::Atomic(builtin),
                    ..
                }) => *builtin,
                TypeDef::Simple(_) => Builtin::String,
                TypeDef::Complex(complex) => match complex.content {
                    Content::Simple(inner) => self.primitive(inner),
                    _ => Builtin::AnyType,
                },
            },
        }
    }

    /// Checks a text value against a simple type (or the simple content of a complex type).
    pub fn check_value(&self, ty: TypeRef, raw: &str) -> Result<(), String> {
        match ty {
            TypeRef::Builtin(builtin) => builtin.check(&builtin.white_space().apply(raw)),
            TypeRef::Defined(id) => match &self.types[id] {
                TypeDef::Simple(simple) => {
                    let facets = &simple.facets;
                    match &simple.variety {
                        Variety::Atomic(builtin) => {
                            let rule = facets.white_space.unwrap_or(builtin.white_space());
                            let value = rule.apply(raw);
                            builtin.check(&value)?;
                            facets.check(&value, Some(*builtin))
                        }
                        Variety::List(item) => {
                            let value = WhiteSpace::Collapse.apply(raw);
                            let items: Vec<&str> =
                                value.split(' ').filter(|i| !i.is_empty()).collect();
                            for item_value in &items {
                                self.check_value(*item, item_value)?;
                            }
                            let count = items.len();
                            if facets.min_length.is_some_and(|min| count < min)
                                || facets.max_length.is_some_and(|max| count > max)
                                || facets.length.is_some_and(|length| count != length)
                            {
                                return Err(format!(
                                    "the list '{value}' has {count} items, outside the allowed length"
                                ));
                            }
                            facets.check(&value, None)
                        }
                        Variety::Union(members) => {
                            if !members.iter().any(|m| self.check_value(*m, raw).is_ok()) {
                                return Err(format!(
                                    "'{raw}' matches none of the union's member types"
                                ));
                            }
                            facets.check(&WhiteSpace::Collapse.apply(raw), None)
                        }
                    }
                }
                TypeDef::Complex(complex) => match complex.content {
                    Content::Simple(inner) => self.check_value(inner, raw),
                    _ => Ok(()),
                },
            },
        }
    }

    /// A readable name of a type for messages.
    pub fn type_label(&self, ty: TypeRef) -> String {
        match ty {
            TypeRef::Builtin(builtin) => format!("xs:{}", builtin.label()),
            TypeRef::Defined(id) => {
                let name = match &self.types[id] {
                    TypeDef::Simple(simple) => simple.name.as_ref(),
                    TypeDef::Complex(complex) => complex.name.as_ref(),
                };
                name.map_or_else(|| "an anonymous type".to_owned(), |n| n.local.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_check_their_lexical_space() {
        assert!(Builtin::Int.check("42").is_ok());
        assert!(Builtin::Int.check("4x").is_err());
        assert!(Builtin::UnsignedByte.check("256").is_err());
        assert!(Builtin::DateTime.check("2026-11-27T10:00:00Z").is_ok());
        assert!(Builtin::DateTime
            .check("2026-11-27T10:00:00.123+01:00")
            .is_ok());
        assert!(Builtin::DateTime.check("2026-11-27").is_err());
        assert!(Builtin::Date.check("2026-11-27").is_ok());
        assert!(Builtin::Boolean.check("yes").is_err());
        assert!(Builtin::Decimal.check("-1.50").is_ok());
        assert!(Builtin::Duration.check("P1DT2H").is_ok());
        assert!(Builtin::Duration.check("P").is_err());
    }

    #[test]
    fn patterns_are_anchored_and_xsd_escapes_translate() {
        let guid = Regex::new(&translate_pattern(
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        ))
        .unwrap();
        assert!(guid.is_match("3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13"));
        assert!(!guid.is_match("x3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13"));
        let code = Regex::new(&translate_pattern("[-][1]|[0-9]{1,8}")).unwrap();
        assert!(code.is_match("-1"));
        assert!(code.is_match("101"));
        assert!(!code.is_match("-2"));
        assert!(Regex::new(&translate_pattern(r"\i\c*"))
            .unwrap()
            .is_match("ab1"));
    }

    #[test]
    fn decimal_bounds_compare_exactly_at_any_size() {
        let big = "123456789012345678901234567890";
        assert_eq!(
            compare(Builtin::Integer, "123456789012345678901234567891", big),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(Builtin::Decimal, "-0.0", "0"),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare(Builtin::Decimal, "-1.5", "-1.25"),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(Builtin::Decimal, "010.10", "10.1"),
            Some(Ordering::Equal)
        );
        let facets = Facets {
            min_exclusive: Some(big.to_owned()),
            ..Facets::default()
        };
        assert!(facets.check(big, Some(Builtin::Integer)).is_err());
        assert!(facets
            .check("123456789012345678901234567891", Some(Builtin::Integer))
            .is_ok());
        let amount = Facets {
            total_digits: Some(5),
            fraction_digits: Some(2),
            ..Facets::default()
        };
        assert!(amount.check("123.45", Some(Builtin::Decimal)).is_ok());
        assert!(amount.check("0123.450", Some(Builtin::Decimal)).is_ok());
        assert!(amount.check("1234.5", Some(Builtin::Decimal)).is_ok());
        assert!(amount.check("1234.56", Some(Builtin::Decimal)).is_err());
        assert!(amount.check("1.234", Some(Builtin::Decimal)).is_err());
    }

    #[test]
    fn dates_and_times_compare_as_instants() {
        assert_eq!(
            compare(Builtin::Date, "2009-12-31", "2010-01-01"),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(
                Builtin::DateTime,
                "2026-01-01T01:00:00+01:00",
                "2026-01-01T00:00:00Z"
            ),
            Some(Ordering::Equal)
        );
        // With and without a timezone: not comparable, so not checked.
        assert_eq!(
            compare(
                Builtin::DateTime,
                "2026-01-01T00:00:00",
                "2026-01-01T00:00:00Z"
            ),
            None
        );
        assert_eq!(
            compare(Builtin::GYear, "1999", "2000"),
            Some(Ordering::Less)
        );
        let old = Facets {
            max_exclusive: Some("2010-01-01".to_owned()),
            ..Facets::default()
        };
        assert!(old.check("2026-11-27", Some(Builtin::Date)).is_err());
        assert!(old.check("2000-01-01", Some(Builtin::Date)).is_ok());
    }

    #[test]
    fn whitespace_rules_and_octet_lengths() {
        assert_eq!(WhiteSpace::Collapse.apply("  a \t\n b  "), "a b");
        assert_eq!(WhiteSpace::Replace.apply("a\tb"), "a b");
        assert!(matches!(
            WhiteSpace::Collapse.apply("a b"),
            Cow::Borrowed(_)
        ));
        let four = Facets {
            length: Some(4),
            ..Facets::default()
        };
        assert!(four.check("00112233", Some(Builtin::HexBinary)).is_ok());
        assert!(four.check("0011", Some(Builtin::HexBinary)).is_err());
        assert!(four.check("AAAAAA==", Some(Builtin::Base64Binary)).is_ok());
    }

    #[test]
    fn list_and_union_facets_apply_to_the_whole_value() {
        let mut schema = Schema::default();
        let month = Facets {
            max_inclusive: Some("12".to_owned()),
            ..Facets::default()
        };
        schema.types.push(TypeDef::Simple(SimpleType {
            name: None,
            variety: Variety::Atomic(Builtin::PositiveInteger),
            facets: month,
        }));
        schema.types.push(TypeDef::Simple(SimpleType {
            name: None,
            variety: Variety::List(TypeRef::Defined(0)),
            facets: Facets {
                length: Some(3),
                ..Facets::default()
            },
        }));
        let list = TypeRef::Defined(1);
        assert!(schema.check_value(list, " 1  2\n3 ").is_ok());
        assert!(schema.check_value(list, "1 2").is_err());
        assert!(schema.check_value(list, "1 2 13").is_err());
        let pattern = |p: &str| Pattern {
            source: p.to_owned(),
            regex: Regex::new(&translate_pattern(p)).ok(),
        };
        schema.types.push(TypeDef::Simple(SimpleType {
            name: None,
            variety: Variety::Union(vec![
                TypeRef::Builtin(Builtin::GYearMonth),
                TypeRef::Builtin(Builtin::Int),
            ]),
            facets: Facets {
                patterns: vec![vec![pattern("20[0-9]{2}-[0-9]{2}|[0-9]+")]],
                ..Facets::default()
            },
        }));
        let union = TypeRef::Defined(2);
        assert!(schema.check_value(union, "2026-11").is_ok());
        assert!(schema.check_value(union, "42").is_ok());
        assert!(
            schema.check_value(union, "1999-11").is_err(),
            "the union's pattern"
        );
        assert!(schema.check_value(union, "x").is_err());
    }
}

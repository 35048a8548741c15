//! The compiled XSD 1.0 model: the schemas of one WSDL (inline, imported, included) turned once,
//! at start-up (by `compile`), into arenas of element declarations and types that
//! validation and response generation walk without looking anything up by name again; and the
//! built-in types with their lexical checks and facets.
//!
//! Covered: global and local elements, `ref`, `form`/`elementFormDefault`, `nillable`, `fixed`;
//! `sequence`/`choice`/`all`/named `group` with `minOccurs`/`maxOccurs`; `any` and `anyAttribute`;
//! `complexContent` and `simpleContent` extension and restriction; simple types by restriction
//! (enumeration, pattern, length/minLength/maxLength, min/max inclusive/exclusive,
//! totalDigits/fractionDigits), `list` and `union`; attributes, `attributeGroup`, `use="required"`;
//! the XSD built-in types. Names resolve across every schema of the WSDL whether or not they
//! `xs:import` each other, as .NET does (STAR's own WSDLs rely on that).
//! Not covered (ignored): identity constraints, substitution groups, `redefine`, `abstract`.

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

/// Facets accumulated along a derivation chain.
#[derive(Debug, Clone, Default)]
pub struct Facets {
    pub enumeration: Vec<String>,
    /// One entry per derivation step; a value must match one pattern of every step.
    pub patterns: Vec<Vec<Pattern>>,
    pub length: Option<usize>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub min_inclusive: Option<f64>,
    pub max_inclusive: Option<f64>,
    pub min_exclusive: Option<f64>,
    pub max_exclusive: Option<f64>,
    pub total_digits: Option<usize>,
    pub fraction_digits: Option<usize>,
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

    /// Whether whitespace is preserved (string) rather than collapsed.
    fn preserves_whitespace(self) -> bool {
        matches!(
            self,
            Builtin::String | Builtin::AnyType | Builtin::AnySimpleType
        )
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
    /// Checks `value` (whitespace-normalised for its type) against every facet.
    pub fn check(&self, value: &str, base: Builtin) -> Result<(), String> {
        if !self.enumeration.is_empty() && !self.enumeration.iter().any(|e| e == value) {
            return Err(format!(
                "'{value}' is not one of the allowed values [{}]",
                self.enumeration.join(", ")
            ));
        }
        for step in &self.patterns {
            let checked: Vec<&Regex> = step.iter().filter_map(|p| p.regex.as_ref()).collect();
            if !checked.is_empty() && !checked.iter().any(|r| r.is_match(value)) {
                let sources: Vec<&str> = step.iter().map(|p| p.source.as_str()).collect();
                return Err(format!(
                    "'{value}' does not match the pattern {}",
                    sources.join(" | ")
                ));
            }
        }
        let length = value.chars().count();
        if let Some(expected) = self.length {
            if length != expected {
                return Err(format!(
                    "'{value}' has length {length}, expected exactly {expected}"
                ));
            }
        }
        if let Some(min) = self.min_length {
            if length < min {
                return Err(format!(
                    "'{value}' has length {length}, expected at least {min}"
                ));
            }
        }
        if let Some(max) = self.max_length {
            if length > max {
                return Err(format!(
                    "'{value}' has length {length}, expected at most {max}"
                ));
            }
        }
        if base.is_numeric() {
            if let Ok(number) = value.parse::<f64>() {
                let bounds = [
                    (
                        self.min_inclusive,
                        number >= self.min_inclusive.unwrap_or(0.0),
                        ">=",
                    ),
                    (
                        self.max_inclusive,
                        number <= self.max_inclusive.unwrap_or(0.0),
                        "<=",
                    ),
                    (
                        self.min_exclusive,
                        number > self.min_exclusive.unwrap_or(0.0),
                        ">",
                    ),
                    (
                        self.max_exclusive,
                        number < self.max_exclusive.unwrap_or(0.0),
                        "<",
                    ),
                ];
                for (bound, holds, relation) in bounds {
                    if let (Some(bound), false) = (bound, holds) {
                        return Err(format!(
                            "'{value}' is out of range: expected {relation} {bound}"
                        ));
                    }
                }
            }
            let digits = value.trim_start_matches(['+', '-']);
            let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
            let fraction = fraction.trim_end_matches('0');
            if let Some(total) = self.total_digits {
                let count = integer.trim_start_matches('0').len() + fraction.len();
                if count > total {
                    return Err(format!("'{value}' has more than {total} digits"));
                }
            }
            if let Some(max) = self.fraction_digits {
                if fraction.len() > max {
                    return Err(format!("'{value}' has more than {max} fraction digits"));
                }
            }
        }
        Ok(())
    }
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
            TypeRef::Builtin(builtin) => builtin.check(normalise(raw, builtin)),
            TypeRef::Defined(id) => {
                match &self.types[id] {
                    TypeDef::Simple(simple) => match &simple.variety {
                        Variety::Atomic(builtin) => {
                            let value = normalise(raw, *builtin);
                            builtin.check(value)?;
                            simple.facets.check(value, *builtin)
                        }
                        Variety::List(item) => {
                            for value in raw.split_whitespace() {
                                self.check_value(*item, value)?;
                            }
                            let count = raw.split_whitespace().count();
                            let facets = &simple.facets;
                            if facets.min_length.is_some_and(|min| count < min)
                                || facets.max_length.is_some_and(|max| count > max)
                                || facets.length.is_some_and(|length| count != length)
                            {
                                return Err(format!("the list '{raw}' has {count} items, outside the allowed length"));
                            }
                            Ok(())
                        }
                        Variety::Union(members) => {
                            if members.iter().any(|m| self.check_value(*m, raw).is_ok()) {
                                Ok(())
                            } else {
                                Err(format!("'{raw}' matches none of the union's member types"))
                            }
                        }
                    },
                    TypeDef::Complex(complex) => match complex.content {
                        Content::Simple(inner) => self.check_value(inner, raw),
                        _ => Ok(()),
                    },
                }
            }
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

/// Whitespace handling per type: strings keep it, everything else is collapsed.
fn normalise(raw: &str, builtin: Builtin) -> &str {
    if builtin.preserves_whitespace() {
        raw
    } else {
        raw.trim()
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
}

//! The compiled XSD 1.0 model: the schemas of one WSDL (inline, imported, included) turned once,
//! at start-up, into arenas of element declarations and types that validation and response
//! generation walk without looking anything up by name again.
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
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

use super::xml::Element;
use super::Problem;
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

/// One schema document to compile: its root `xs:schema` element, the namespace its
/// declarations go to (an included schema without one takes its includer's), and its file.
#[derive(Debug, Clone, Copy)]
pub struct SchemaSource<'a> {
    pub root: &'a Element,
    pub target: &'a str,
    pub file: &'a Path,
}

/// What kind of top-level definition a name stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Element,
    Type,
    Group,
    AttributeGroup,
    Attribute,
}

/// Compiled `pattern` facets by their XSD text, shared by every WSDL of one load: the common
/// schemas that several WSDLs import compile their patterns once.
pub type PatternCache = HashMap<String, Option<Regex>>;

/// Compiles schema documents into a [`Schema`], collecting problems instead of stopping.
pub struct Compiler<'a> {
    patterns: &'a mut PatternCache,
    sources: Vec<SchemaSource<'a>>,
    raw: HashMap<(Kind, QualifiedName), (usize, &'a Element)>,
    schema: Schema,
    in_progress_groups: Vec<QualifiedName>,
    pub problems: Vec<Problem>,
    pub notes: Vec<Problem>,
}

impl<'a> Compiler<'a> {
    pub fn new(sources: Vec<SchemaSource<'a>>, patterns: &'a mut PatternCache) -> Compiler<'a> {
        let mut compiler = Compiler {
            patterns,
            sources,
            raw: HashMap::new(),
            schema: Schema::default(),
            in_progress_groups: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
        };
        for index in 0..compiler.sources.len() {
            let source = compiler.sources[index];
            for child in source.root.children_in(XSD_NS) {
                let kind = match child.name.local.as_str() {
                    "element" => Kind::Element,
                    "complexType" | "simpleType" => Kind::Type,
                    "group" => Kind::Group,
                    "attributeGroup" => Kind::AttributeGroup,
                    "attribute" => Kind::Attribute,
                    _ => continue,
                };
                let Some(name) = child.attribute("name") else {
                    compiler.problem(
                        index,
                        child,
                        format!("a top-level xs:{} has no name", child.name.local),
                    );
                    continue;
                };
                let key = (
                    kind,
                    QualifiedName {
                        namespace: source.target.to_owned(),
                        local: name.to_owned(),
                    },
                );
                compiler.raw.entry(key).or_insert((index, child));
            }
        }
        compiler
    }

    /// Compiles every top-level element and type; returns the schema.
    pub fn compile_all(mut self) -> (Schema, Vec<Problem>, Vec<Problem>) {
        let mut keys: Vec<(Kind, QualifiedName)> = self
            .raw
            .keys()
            .filter(|(kind, _)| matches!(kind, Kind::Element | Kind::Type))
            .cloned()
            .collect();
        keys.sort_by(|a, b| {
            (a.1.namespace.as_str(), a.1.local.as_str())
                .cmp(&(b.1.namespace.as_str(), b.1.local.as_str()))
        });
        for (kind, name) in keys {
            match kind {
                Kind::Element => {
                    self.global_element(&name, None);
                }
                _ => {
                    self.named_type(&name, None);
                }
            }
        }
        (self.schema, self.problems, self.notes)
    }

    /// Adds an element declaration made outside any schema (rpc-style wrappers).
    pub fn add_synthetic_element(
        schema: &mut Schema,
        name: QualifiedName,
        parts: Vec<(QualifiedName, TypeRef)>,
    ) -> ElementId {
        let particles = parts
            .into_iter()
            .map(|(name, ty)| {
                schema.elements.push(ElementDecl {
                    name,
                    ty,
                    nillable: false,
                    fixed: None,
                });
                Particle {
                    term: Term::Element(schema.elements.len() - 1),
                    occurs: Occurs::ONCE,
                }
            })
            .collect();
        schema.types.push(TypeDef::Complex(ComplexType {
            name: None,
            content: Content::Elements(Particle {
                term: Term::Sequence(particles),
                occurs: Occurs::ONCE,
            }),
            attributes: Vec::new(),
            any_attribute: false,
            mixed: false,
        }));
        let ty = TypeRef::Defined(schema.types.len() - 1);
        schema.elements.push(ElementDecl {
            name,
            ty,
            nillable: false,
            fixed: None,
        });
        schema.elements.len() - 1
    }

    fn file(&self, index: usize) -> PathBuf {
        self.sources[index].file.to_owned()
    }

    fn problem(&mut self, source: usize, at: &Element, message: String) {
        let file = self.file(source);
        self.problems.push(Problem {
            file,
            line: Some(at.line),
            message,
        });
    }

    fn resolve(&mut self, source: usize, at: &Element, value: &str) -> Option<QualifiedName> {
        match at.resolve_qname(value) {
            Ok(name) => Some(name),
            Err(message) => {
                self.problem(source, at, message);
                None
            }
        }
    }

    fn global_element(
        &mut self,
        name: &QualifiedName,
        from: Option<(usize, &Element)>,
    ) -> Option<ElementId> {
        if let Some(id) = self.schema.global_elements.get(name) {
            return Some(*id);
        }
        let Some(&(source, node)) = self.raw.get(&(Kind::Element, name.clone())) else {
            if let Some((source, at)) = from {
                self.problem(
                    source,
                    at,
                    format!("element {name} is not declared in any schema of this WSDL"),
                );
            }
            return None;
        };
        let id = self.schema.elements.len();
        self.schema.elements.push(ElementDecl {
            name: name.clone(),
            ty: TypeRef::Builtin(Builtin::AnyType),
            nillable: false,
            fixed: None,
        });
        self.schema.global_elements.insert(name.clone(), id);
        let ty = self.element_type(source, node);
        self.schema.elements[id].ty = ty;
        self.schema.elements[id].nillable = node.attribute("nillable") == Some("true");
        self.schema.elements[id].fixed = node.attribute("fixed").map(str::to_owned);
        Some(id)
    }

    fn named_type(&mut self, name: &QualifiedName, from: Option<(usize, &Element)>) -> TypeRef {
        if name.namespace == XSD_NS {
            if let Some(builtin) = Builtin::from_local(&name.local) {
                return TypeRef::Builtin(builtin);
            }
        }
        if let Some(id) = self.schema.global_types.get(name) {
            return TypeRef::Defined(*id);
        }
        let Some(&(source, node)) = self.raw.get(&(Kind::Type, name.clone())) else {
            if let Some((source, at)) = from {
                self.problem(
                    source,
                    at,
                    format!("type {name} is not defined in any schema of this WSDL"),
                );
            }
            return TypeRef::Builtin(Builtin::AnyType);
        };
        let id = self.schema.types.len();
        self.schema.types.push(TypeDef::Simple(SimpleType {
            name: Some(name.clone()),
            variety: Variety::Atomic(Builtin::String),
            facets: Facets::default(),
        }));
        self.schema.global_types.insert(name.clone(), id);
        let def = self.type_definition(source, node, Some(name.clone()));
        self.schema.types[id] = def;
        TypeRef::Defined(id)
    }

    fn type_definition(
        &mut self,
        source: usize,
        node: &'a Element,
        name: Option<QualifiedName>,
    ) -> TypeDef {
        if node.name.local == "simpleType" {
            TypeDef::Simple(self.simple_type(source, node, name))
        } else {
            TypeDef::Complex(self.complex_type(source, node, name))
        }
    }

    fn anonymous(&mut self, source: usize, node: &'a Element) -> TypeRef {
        let def = self.type_definition(source, node, None);
        self.schema.types.push(def);
        TypeRef::Defined(self.schema.types.len() - 1)
    }

    /// The type of an element declaration: `type=`, an inline type, or anyType.
    fn element_type(&mut self, source: usize, node: &'a Element) -> TypeRef {
        if let Some(value) = node.attribute("type") {
            return match self.resolve(source, node, value) {
                Some(name) => self.named_type(&name, Some((source, node))),
                None => TypeRef::Builtin(Builtin::AnyType),
            };
        }
        for child in node.children_in(XSD_NS) {
            if matches!(child.name.local.as_str(), "complexType" | "simpleType") {
                return self.anonymous(source, child);
            }
        }
        TypeRef::Builtin(Builtin::AnyType)
    }

    fn simple_type(
        &mut self,
        source: usize,
        node: &'a Element,
        name: Option<QualifiedName>,
    ) -> SimpleType {
        let mut simple = SimpleType {
            name,
            variety: Variety::Atomic(Builtin::String),
            facets: Facets::default(),
        };
        for child in node.children_in(XSD_NS) {
            match child.name.local.as_str() {
                "restriction" => {
                    let base = match child.attribute("base") {
                        Some(value) => match self.resolve(source, child, value) {
                            Some(name) => self.named_type(&name, Some((source, child))),
                            None => TypeRef::Builtin(Builtin::String),
                        },
                        None => child
                            .children_in(XSD_NS)
                            .find(|c| c.name.local == "simpleType")
                            .map_or(TypeRef::Builtin(Builtin::String), |inline| {
                                self.anonymous(source, inline)
                            }),
                    };
                    self.inherit(&mut simple, base);
                    self.facets(source, child, &mut simple.facets);
                }
                "list" => {
                    let item = match child.attribute("itemType") {
                        Some(value) => match self.resolve(source, child, value) {
                            Some(name) => self.named_type(&name, Some((source, child))),
                            None => TypeRef::Builtin(Builtin::String),
                        },
                        None => child
                            .children_in(XSD_NS)
                            .find(|c| c.name.local == "simpleType")
                            .map_or(TypeRef::Builtin(Builtin::String), |inline| {
                                self.anonymous(source, inline)
                            }),
                    };
                    simple.variety = Variety::List(item);
                }
                "union" => {
                    let mut members = Vec::new();
                    if let Some(list) = child.attribute("memberTypes") {
                        for value in list.split_whitespace() {
                            if let Some(name) = self.resolve(source, child, value) {
                                members.push(self.named_type(&name, Some((source, child))));
                            }
                        }
                    }
                    for inline in child
                        .children_in(XSD_NS)
                        .filter(|c| c.name.local == "simpleType")
                    {
                        members.push(self.anonymous(source, inline));
                    }
                    simple.variety = Variety::Union(members);
                }
                _ => {}
            }
        }
        simple
    }

    /// Copies the variety and facets of `base` into `simple` (restriction narrows them).
    fn inherit(&self, simple: &mut SimpleType, base: TypeRef) {
        match base {
            TypeRef::Builtin(builtin) => simple.variety = Variety::Atomic(builtin),
            TypeRef::Defined(id) => match &self.schema.types[id] {
                TypeDef::Simple(base) => {
                    simple.variety = base.variety.clone();
                    simple.facets = base.facets.clone();
                }
                TypeDef::Complex(complex) => {
                    if let Content::Simple(inner) = complex.content {
                        self.inherit(simple, inner);
                    }
                }
            },
        }
    }

    fn facets(&mut self, source: usize, node: &Element, facets: &mut Facets) {
        let mut enumeration = Vec::new();
        let mut patterns = Vec::new();
        for facet in node.children_in(XSD_NS) {
            let Some(value) = facet.attribute("value") else {
                continue;
            };
            let number = || value.trim().parse::<f64>().ok();
            let count = || value.trim().parse::<usize>().ok();
            match facet.name.local.as_str() {
                "enumeration" => enumeration.push(value.to_owned()),
                "pattern" => {
                    let regex = self
                        .patterns
                        .entry(value.to_owned())
                        .or_insert_with(|| Regex::new(&translate_pattern(value)).ok())
                        .clone();
                    if regex.is_none() {
                        let file = self.file(source);
                        self.notes.push(Problem {
                            file,
                            line: Some(facet.line),
                            message: format!("pattern '{value}' uses regex features not supported here; values are not checked against it"),
                        });
                    }
                    patterns.push(Pattern {
                        source: value.to_owned(),
                        regex,
                    });
                }
                "length" => facets.length = count(),
                "minLength" => facets.min_length = count(),
                "maxLength" => facets.max_length = count(),
                "minInclusive" => facets.min_inclusive = number(),
                "maxInclusive" => facets.max_inclusive = number(),
                "minExclusive" => facets.min_exclusive = number(),
                "maxExclusive" => facets.max_exclusive = number(),
                "totalDigits" => facets.total_digits = count(),
                "fractionDigits" => facets.fraction_digits = count(),
                _ => {}
            }
        }
        if !enumeration.is_empty() {
            facets.enumeration = enumeration;
        }
        if !patterns.is_empty() {
            facets.patterns.push(patterns);
        }
    }

    fn complex_type(
        &mut self,
        source: usize,
        node: &'a Element,
        name: Option<QualifiedName>,
    ) -> ComplexType {
        let mut complex = ComplexType {
            name,
            content: Content::Empty,
            attributes: Vec::new(),
            any_attribute: false,
            mixed: node.attribute("mixed") == Some("true"),
        };
        for child in node.children_in(XSD_NS) {
            match child.name.local.as_str() {
                "simpleContent" => self.simple_content(source, child, &mut complex),
                "complexContent" => self.complex_content(source, child, &mut complex),
                "sequence" | "choice" | "all" | "group" => {
                    if let Some(particle) = self.particle(source, child) {
                        complex.content = Content::Elements(particle);
                    }
                }
                _ => {}
            }
        }
        self.attributes(source, node, &mut complex);
        complex
    }

    fn base_of(&mut self, source: usize, node: &'a Element) -> TypeRef {
        match node.attribute("base") {
            Some(value) => match self.resolve(source, node, value) {
                Some(name) => self.named_type(&name, Some((source, node))),
                None => TypeRef::Builtin(Builtin::AnyType),
            },
            None => {
                self.problem(source, node, format!("xs:{} has no base", node.name.local));
                TypeRef::Builtin(Builtin::AnyType)
            }
        }
    }

    fn simple_content(&mut self, source: usize, node: &'a Element, complex: &mut ComplexType) {
        let Some(derivation) = node
            .children_in(XSD_NS)
            .find(|c| matches!(c.name.local.as_str(), "extension" | "restriction"))
        else {
            return;
        };
        let base = self.base_of(source, derivation);
        let (base_content, base_attributes) = match self.schema.complex(base) {
            Some(base_complex) => (
                base_complex.content.clone(),
                base_complex.attributes.clone(),
            ),
            None => (Content::Simple(base), Vec::new()),
        };
        complex.attributes = base_attributes;
        let inner = match base_content {
            Content::Simple(inner) => inner,
            _ => TypeRef::Builtin(Builtin::String),
        };
        if derivation.name.local == "restriction" {
            let mut simple = SimpleType {
                name: None,
                variety: Variety::Atomic(Builtin::String),
                facets: Facets::default(),
            };
            self.inherit(&mut simple, inner);
            self.facets(source, derivation, &mut simple.facets);
            self.schema.types.push(TypeDef::Simple(simple));
            complex.content = Content::Simple(TypeRef::Defined(self.schema.types.len() - 1));
        } else {
            complex.content = Content::Simple(inner);
        }
        self.attributes(source, derivation, complex);
    }

    fn complex_content(&mut self, source: usize, node: &'a Element, complex: &mut ComplexType) {
        if node.attribute("mixed") == Some("true") {
            complex.mixed = true;
        }
        let Some(derivation) = node
            .children_in(XSD_NS)
            .find(|c| matches!(c.name.local.as_str(), "extension" | "restriction"))
        else {
            return;
        };
        let base = self.base_of(source, derivation);
        let own = derivation
            .children_in(XSD_NS)
            .find(|c| {
                matches!(
                    c.name.local.as_str(),
                    "sequence" | "choice" | "all" | "group"
                )
            })
            .and_then(|group| self.particle(source, group));
        let base_complex = self.schema.complex(base).cloned();
        if let Some(base_complex) = &base_complex {
            complex.attributes = base_complex.attributes.clone();
            complex.any_attribute = base_complex.any_attribute;
            complex.mixed |= base_complex.mixed;
        }
        if derivation.name.local == "extension" {
            let base_particle = match base_complex.map(|b| b.content) {
                Some(Content::Elements(particle)) => Some(particle),
                _ => None,
            };
            complex.content = match (base_particle, own) {
                (Some(base), Some(own)) if !is_empty_group(&own) => Content::Elements(Particle {
                    term: Term::Sequence(vec![base, own]),
                    occurs: Occurs::ONCE,
                }),
                (Some(base), _) => Content::Elements(base),
                (None, Some(own)) => Content::Elements(own),
                (None, None) => Content::Empty,
            };
        } else {
            complex.content = own.map_or(Content::Empty, Content::Elements);
        }
        self.attributes(source, derivation, complex);
    }

    fn occurs(&mut self, source: usize, node: &Element) -> Occurs {
        let mut occurs = Occurs::ONCE;
        if let Some(min) = node.attribute("minOccurs") {
            match min.trim().parse() {
                Ok(min) => occurs.min = min,
                Err(_) => self.problem(source, node, format!("minOccurs '{min}' is not a number")),
            }
        }
        if let Some(max) = node.attribute("maxOccurs") {
            if max.trim() == "unbounded" {
                occurs.max = None;
            } else {
                match max.trim().parse() {
                    Ok(max) => occurs.max = Some(max),
                    Err(_) => self.problem(
                        source,
                        node,
                        format!("maxOccurs '{max}' is not a number or 'unbounded'"),
                    ),
                }
            }
        }
        occurs
    }

    fn particle(&mut self, source: usize, node: &'a Element) -> Option<Particle> {
        let occurs = self.occurs(source, node);
        let term = match node.name.local.as_str() {
            "element" => Term::Element(self.local_element(source, node)?),
            "sequence" | "choice" | "all" => {
                let items = node
                    .children_in(XSD_NS)
                    .filter(|c| {
                        matches!(
                            c.name.local.as_str(),
                            "element" | "sequence" | "choice" | "group" | "any"
                        )
                    })
                    .filter_map(|c| self.particle(source, c))
                    .collect();
                match node.name.local.as_str() {
                    "sequence" => Term::Sequence(items),
                    "choice" => Term::Choice(items),
                    _ => Term::All(items),
                }
            }
            "group" => {
                let name = self.resolve(source, node, node.attribute("ref")?)?;
                if self.in_progress_groups.contains(&name) {
                    self.problem(source, node, format!("group {name} refers to itself"));
                    return None;
                }
                let Some(&(group_source, group)) = self.raw.get(&(Kind::Group, name.clone()))
                else {
                    self.problem(
                        source,
                        node,
                        format!("group {name} is not defined in any schema of this WSDL"),
                    );
                    return None;
                };
                self.in_progress_groups.push(name);
                let inner = group
                    .children_in(XSD_NS)
                    .find(|c| matches!(c.name.local.as_str(), "sequence" | "choice" | "all"))
                    .and_then(|model| self.particle(group_source, model));
                self.in_progress_groups.pop();
                let inner = inner?;
                return Some(Particle {
                    term: Term::Sequence(vec![inner]),
                    occurs,
                });
            }
            "any" => {
                let target = self.sources[source].target.to_owned();
                let namespaces = node.attribute("namespace").unwrap_or("##any").trim();
                let wildcard = match namespaces {
                    "##any" => Wildcard::Any,
                    "##other" => Wildcard::Other(target),
                    list => Wildcard::List(
                        list.split_whitespace()
                            .map(|n| match n {
                                "##targetNamespace" => target.clone(),
                                "##local" => String::new(),
                                other => other.to_owned(),
                            })
                            .collect(),
                    ),
                };
                Term::Any(wildcard)
            }
            _ => return None,
        };
        Some(Particle { term, occurs })
    }

    fn local_element(&mut self, source: usize, node: &'a Element) -> Option<ElementId> {
        if let Some(value) = node.attribute("ref") {
            let name = self.resolve(source, node, value)?;
            return self.global_element(&name, Some((source, node)));
        }
        let Some(local) = node.attribute("name") else {
            self.problem(
                source,
                node,
                "xs:element has neither name nor ref".to_owned(),
            );
            return None;
        };
        let qualified = match node.attribute("form") {
            Some(form) => form == "qualified",
            None => self.sources[source].root.attribute("elementFormDefault") == Some("qualified"),
        };
        let name = QualifiedName {
            namespace: if qualified {
                self.sources[source].target.to_owned()
            } else {
                String::new()
            },
            local: local.to_owned(),
        };
        let ty = self.element_type(source, node);
        self.schema.elements.push(ElementDecl {
            name,
            ty,
            nillable: node.attribute("nillable") == Some("true"),
            fixed: node.attribute("fixed").map(str::to_owned),
        });
        Some(self.schema.elements.len() - 1)
    }

    fn attributes(&mut self, source: usize, node: &'a Element, complex: &mut ComplexType) {
        for child in node.children_in(XSD_NS) {
            match child.name.local.as_str() {
                "attribute" => {
                    if child.attribute("use") == Some("prohibited") {
                        if let Some(name) = child.attribute("name") {
                            complex.attributes.retain(|a| a.name.local != name);
                        }
                        continue;
                    }
                    if let Some(attribute) = self.attribute(source, child) {
                        complex.attributes.retain(|a| a.name != attribute.name);
                        complex.attributes.push(attribute);
                    }
                }
                "attributeGroup" => {
                    let Some(name) = child
                        .attribute("ref")
                        .and_then(|r| self.resolve(source, child, r))
                    else {
                        continue;
                    };
                    match self.raw.get(&(Kind::AttributeGroup, name.clone())) {
                        Some(&(group_source, group)) => {
                            if self.in_progress_groups.contains(&name) {
                                continue;
                            }
                            self.in_progress_groups.push(name);
                            self.attributes(group_source, group, complex);
                            self.in_progress_groups.pop();
                        }
                        None => self.problem(
                            source,
                            child,
                            format!(
                                "attributeGroup {name} is not defined in any schema of this WSDL"
                            ),
                        ),
                    }
                }
                "anyAttribute" => complex.any_attribute = true,
                _ => {}
            }
        }
    }

    fn attribute(&mut self, source: usize, node: &'a Element) -> Option<AttributeUse> {
        let required = node.attribute("use") == Some("required");
        let (name, declaration, declaration_source) = if let Some(value) = node.attribute("ref") {
            let name = self.resolve(source, node, value)?;
            match self.raw.get(&(Kind::Attribute, name.clone())) {
                Some(&(global_source, global)) => (name, global, global_source),
                None if name.namespace == super::xml_namespace() => (name, node, source),
                None => {
                    self.problem(
                        source,
                        node,
                        format!("attribute {name} is not declared in any schema of this WSDL"),
                    );
                    return None;
                }
            }
        } else {
            let local = node.attribute("name")?;
            let qualified = match node.attribute("form") {
                Some(form) => form == "qualified",
                None => {
                    self.sources[source].root.attribute("attributeFormDefault") == Some("qualified")
                }
            };
            let name = QualifiedName {
                namespace: if qualified {
                    self.sources[source].target.to_owned()
                } else {
                    String::new()
                },
                local: local.to_owned(),
            };
            (name, node, source)
        };
        let ty = match declaration.attribute("type") {
            Some(value) => match self.resolve(declaration_source, declaration, value) {
                Some(type_name) => {
                    self.named_type(&type_name, Some((declaration_source, declaration)))
                }
                None => TypeRef::Builtin(Builtin::String),
            },
            None => declaration
                .children_in(XSD_NS)
                .find(|c| c.name.local == "simpleType")
                .map_or(TypeRef::Builtin(Builtin::AnySimpleType), |inline| {
                    self.anonymous(declaration_source, inline)
                }),
        };
        Some(AttributeUse {
            name,
            ty,
            required,
            fixed: node
                .attribute("fixed")
                .or_else(|| declaration.attribute("fixed"))
                .map(str::to_owned),
        })
    }
}

fn is_empty_group(particle: &Particle) -> bool {
    matches!(&particle.term, Term::Sequence(items) | Term::Choice(items) | Term::All(items) if items.is_empty())
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

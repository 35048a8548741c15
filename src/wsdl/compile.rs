//! Compiling XSD documents into the model of [`super::xsd`]: every top-level declaration of
//! every schema of one WSDL is indexed by qualified name first, then compiled on demand (named
//! types and global elements once, recursion through a reserved slot), collecting problems with
//! file and line instead of stopping at the first.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use regex::Regex;

use super::xml::Element;
use super::xsd::{
    translate_pattern, AttributeUse, Builtin, ComplexType, Content, ElementDecl, ElementId, Facets,
    Occurs, Particle, Pattern, Schema, SimpleType, Term, TypeDef, TypeRef, Variety, WhiteSpace,
    Wildcard, XSD_NS,
};
use super::Problem;
use crate::soap::QualifiedName;

/// One schema document to compile: its root `xs:schema` element, the namespace its
/// declarations go to (an included schema without one takes its includer's), and its file.
#[derive(Debug, Clone, Copy)]
pub struct SchemaSource<'a> {
    pub root: &'a Element,
    pub target: &'a str,
    /// Included without a target namespace of its own: its unqualified references mean the
    /// includer's namespace (XSD's "chameleon" include).
    pub chameleon: bool,
    /// Prefixes in scope where the document was included or imported: OIO contracts use
    /// prefixes in included files that only the including file declares.
    pub inherited: Option<&'a HashMap<String, String>>,
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
    /// (source, prefix) already noted as borrowed from the including file.
    borrowed_prefixes: HashSet<(usize, String)>,
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
            borrowed_prefixes: HashSet::new(),
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
        let SchemaSource {
            chameleon,
            inherited,
            target,
            ..
        } = self.sources[source];
        match at.resolve_qname(value) {
            Ok(name) if chameleon && name.namespace.is_empty() => Some(QualifiedName {
                namespace: target.to_owned(),
                local: name.local,
            }),
            Ok(name) => Some(name),
            Err(message) => {
                let prefix = value.trim().split_once(':').map(|(prefix, _)| prefix);
                match prefix.and_then(|p| Some((p, inherited?.get(p)?))) {
                    Some((prefix, namespace)) => {
                        if self.borrowed_prefixes.insert((source, prefix.to_owned())) {
                            let file = self.file(source);
                            self.notes.push(Problem {
                                file,
                                line: Some(at.line),
                                message: format!("the prefix '{prefix}' is not declared in this file; it is taken from the file that includes it ({namespace}); ?wsdl&tools serves the file with the declaration added"),
                            });
                        }
                        Some(QualifiedName {
                            namespace: namespace.clone(),
                            local: value.trim()[prefix.len() + 1..].to_owned(),
                        })
                    }
                    None => {
                        self.problem(source, at, message);
                        None
                    }
                }
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
            let bound = || Some(value.trim().to_owned());
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
                "minInclusive" => facets.min_inclusive = bound(),
                "maxInclusive" => facets.max_inclusive = bound(),
                "minExclusive" => facets.min_exclusive = bound(),
                "maxExclusive" => facets.max_exclusive = bound(),
                "whiteSpace" => facets.white_space = WhiteSpace::from_facet(value),
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

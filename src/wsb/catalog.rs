//! The WSB message catalog: message types, which supplier categories and organisation types may
//! receive each, and the template each is rendered with. Read once into an immutable
//! [`Catalog`]; the shipped one is `wsb/messages.toml`, embedded in the binary.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use toml::Spanned;

use super::template::Template;
use crate::position::Position;
use crate::supplier::Category;

/// The shipped catalog's text (`wsb/messages.toml`).
pub const SHIPPED: &str = include_str!("../../wsb/messages.toml");

/// One message type.
#[derive(Debug, Clone)]
pub struct MessageType {
    /// `EntitetId`, e.g. 30000.
    pub id: u32,
    /// `EntitetNavn`, e.g. `Cv`.
    pub name: String,
    /// Supplier categories whose systems may subscribe to it.
    pub categories: Vec<Category>,
    /// Organisation types (codes) that may receive it: STAR's sending strategies.
    pub recipients: Vec<u32>,
    /// Whether a message of this type may carry a body.
    pub body: bool,
    /// The REST call a consumer makes to fetch the data, for the documentation.
    pub fetch: Option<String>,
    /// How it is rendered as JSON.
    pub template: Arc<Template>,
    /// The template's name in the catalog.
    pub template_name: String,
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.name)
    }
}

/// All message types and organisation types WSB knows. Immutable once parsed.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// By `EntitetId`.
    types: BTreeMap<u32, MessageType>,
    /// Organisation type names by code, for messages and errors.
    org_types: BTreeMap<u32, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    organisation_types: BTreeMap<String, u32>,
    #[serde(rename = "type")]
    types: Vec<Spanned<TypeEntry>>,
    #[serde(default)]
    template: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypeEntry {
    id: u32,
    name: String,
    categories: Vec<Category>,
    recipients: Vec<Spanned<String>>,
    #[serde(default)]
    body: bool,
    fetch: Option<String>,
    template: Spanned<String>,
}

impl Catalog {
    /// The shipped catalog (`wsb/messages.toml`).
    pub fn shipped() -> anyhow::Result<Catalog> {
        Catalog::parse(Path::new("wsb/messages.toml (built in)"), SHIPPED)
    }

    /// Reads a catalog file.
    pub fn load(path: &Path) -> anyhow::Result<Catalog> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the WSB message catalog {}", path.display()))?;
        Catalog::parse(path, &text)
    }

    /// Parses a catalog; errors say `path:line:column: what`.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Catalog> {
        let file: CatalogFile = crate::config::parse_toml(path, text)?;
        let at = |offset: usize| {
            let p = Position::of_offset(text, offset);
            format!("{}:{}:{}", path.display(), p.line, p.column)
        };
        let mut org_types = BTreeMap::new();
        for (name, code) in &file.organisation_types {
            if let Some(other) = org_types.insert(*code, name.clone()) {
                anyhow::bail!(
                    "{}: organisation types {other} and {name} have the same code {code}",
                    path.display()
                );
            }
        }
        let mut templates = BTreeMap::new();
        for (name, value) in &file.template {
            let template = Template::compile(&format!("template.{name}"), value.get_ref())
                .map_err(|e| anyhow::anyhow!("{}: {e}", at(value.span().start)))?;
            templates.insert(name.clone(), Arc::new(template));
        }
        let mut types = BTreeMap::new();
        for entry in file.types {
            let start = entry.span().start;
            let entry = entry.into_inner();
            let mut recipients = Vec::new();
            for recipient in &entry.recipients {
                let code = file
                    .organisation_types
                    .get(recipient.get_ref())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{}: type {} {}: unknown organisation type {:?}; [organisation_types] has: {}",
                            at(recipient.span().start),
                            entry.id,
                            entry.name,
                            recipient.get_ref(),
                            file.organisation_types.keys().cloned().collect::<Vec<_>>().join(", ")
                        )
                    })?;
                recipients.push(*code);
            }
            let template = templates.get(entry.template.get_ref()).ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: type {} {}: no [template.{}] in the catalog (it has: {})",
                    at(entry.template.span().start),
                    entry.id,
                    entry.name,
                    entry.template.get_ref(),
                    templates.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            if entry.name.trim().is_empty() {
                anyhow::bail!("{}: type {} has an empty name", at(start), entry.id);
            }
            let kind = MessageType {
                id: entry.id,
                name: entry.name,
                categories: entry.categories,
                recipients,
                body: entry.body,
                fetch: entry.fetch,
                template: template.clone(),
                template_name: entry.template.into_inner(),
            };
            if let Some(previous) = types.insert(kind.id, kind) {
                anyhow::bail!(
                    "{}: message type {} is listed twice",
                    at(start),
                    previous.id
                );
            }
        }
        if types.is_empty() {
            anyhow::bail!("{}: the catalog lists no [[type]]", path.display());
        }
        Ok(Catalog { types, org_types })
    }

    /// The type with `EntitetId` `id`.
    pub fn message_type(&self, id: u32) -> Option<&MessageType> {
        self.types.get(&id)
    }

    /// The type named by its `EntitetId` (`90001`) or its `EntitetNavn` (`Frist`, any case).
    pub fn resolve(&self, name_or_id: &str) -> Result<&MessageType, String> {
        let text = name_or_id.trim();
        let found = match text.parse::<u32>() {
            Ok(id) => self.types.get(&id),
            Err(_) => self
                .types
                .values()
                .find(|t| t.name.eq_ignore_ascii_case(text)),
        };
        found.ok_or_else(|| {
            format!(
                "unknown message type {text:?}; the catalog has: {}",
                self.types
                    .values()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }

    /// All types, by id.
    pub fn types(&self) -> impl Iterator<Item = &MessageType> {
        self.types.values()
    }

    /// The name of an organisation type code.
    pub fn org_type_name(&self, code: u32) -> Option<&str> {
        self.org_types.get(&code).map(String::as_str)
    }

    /// `jobcenter (8)`, or just the number when the catalog does not name it.
    pub fn describe_org_type(&self, code: u32) -> String {
        match self.org_type_name(code) {
            Some(name) => format!("{name} ({code})"),
            None => code.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalog_has_the_types_of_wsb_md() {
        let catalog = Catalog::shipped().expect("shipped catalog parses");
        let ids: Vec<u32> = catalog.types().map(|t| t.id).collect();
        assert_eq!(
            ids,
            [30000, 30001, 50003, 60007, 60010, 90000, 90001, 100008, 120001]
        );
        let membership = catalog.message_type(60010).expect("Akassemedlemskab");
        assert_eq!(membership.name, "Akassemedlemskab");
        assert!(membership.body);
        assert!(!catalog.message_type(30000).expect("Cv").body);
        assert_eq!(catalog.describe_org_type(8), "jobcenter (8)");
        assert!(catalog
            .types()
            .all(|t| !t.categories.contains(&Category::Small)));
    }

    #[test]
    fn catalog_errors_point_at_the_line() {
        let text = SHIPPED.replacen(
            "recipients = [\"jobcenter\", \"akasse\"]",
            "recipients = [\"jobcentre\"]",
            1,
        );
        let error = Catalog::parse(Path::new("m.toml"), &text).expect_err("typo");
        let message = error.to_string();
        let line = text
            .lines()
            .position(|l| l.contains("jobcentre"))
            .expect("line")
            + 1;
        assert!(message.starts_with(&format!("m.toml:{line}:")), "{message}");
        assert!(
            message.contains("unknown organisation type \"jobcentre\""),
            "{message}"
        );

        let text = SHIPPED.replacen("template = \"notification\"", "template = \"nope\"", 1);
        let error = Catalog::parse(Path::new("m.toml"), &text).expect_err("template");
        assert!(error.to_string().contains("no [template.nope]"), "{error}");

        let text = SHIPPED.replacen("{{message_id}}", "{{mesage_id}}", 1);
        let error = Catalog::parse(Path::new("m.toml"), &text).expect_err("placeholder");
        assert!(
            error
                .to_string()
                .contains("unknown placeholder {{mesage_id}}"),
            "{error}"
        );
    }
}

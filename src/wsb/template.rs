//! Templates of the pushed JSON: a document (written as TOML in the catalog) whose strings may
//! hold placeholders. A string that is exactly `{{name}}` becomes the typed value (number,
//! boolean, object, null); placeholders inside a longer string are inserted as text. Compiled
//! once, so an unknown placeholder is a catalog error, never a surprise at send time; rendering
//! keeps the template's key order and always yields valid JSON.

use serde::ser::{SerializeMap as _, SerializeSeq as _};
use serde::{Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::catalog::MessageType;
use super::message::Message;

/// A compiled template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    /// A constant.
    Literal(serde_json::Value),
    /// A string that is exactly one placeholder: the typed value.
    Field(Field),
    /// A string with placeholders inside: text.
    Text(Vec<Piece>),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Field(Field),
}

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    MessageId,
    TypeId,
    TypeName,
    EntityId,
    Version,
    IdentificationType,
    Subject,
    ChangeType,
    HasBody,
    Body,
    RecipientOrgType,
    RecipientOrgCode,
    RegisteredByOrgType,
    RegisteredByOrgCode,
    RegisteredByUser,
    RegisteredAt,
    SubscriptionId,
}

/// Every placeholder name, in the order the catalog's comment lists them.
const FIELDS: [(&str, Field); 17] = [
    ("message_id", Field::MessageId),
    ("type_id", Field::TypeId),
    ("type_name", Field::TypeName),
    ("entity_id", Field::EntityId),
    ("version", Field::Version),
    ("identification_type", Field::IdentificationType),
    ("subject", Field::Subject),
    ("change_type", Field::ChangeType),
    ("has_body", Field::HasBody),
    ("body", Field::Body),
    ("recipient.org_type", Field::RecipientOrgType),
    ("recipient.org_code", Field::RecipientOrgCode),
    ("registered_by.org_type", Field::RegisteredByOrgType),
    ("registered_by.org_code", Field::RegisteredByOrgCode),
    ("registered_by.user", Field::RegisteredByUser),
    ("registered_at", Field::RegisteredAt),
    ("subscription_id", Field::SubscriptionId),
];

/// The user named as registrar when a message does not name one.
pub const DEFAULT_USER: &str = "dfdg-mock";

/// Everything a template can show about one delivery of a message.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The message's id (`beskedId`).
    pub message_id: uuid::Uuid,
    /// Its type.
    pub kind: &'a MessageType,
    /// The message.
    pub message: &'a Message,
    /// When it was registered (the message's own time, or when it was sent).
    pub registered_at: OffsetDateTime,
    /// The subscription it is delivered for.
    pub subscription_id: uuid::Uuid,
}

impl Facts<'_> {
    fn value(&self, field: Field) -> serde_json::Value {
        use serde_json::Value;
        let m = self.message;
        let registrar = m.registered_by.as_ref();
        match field {
            Field::MessageId => Value::from(self.message_id.hyphenated().to_string()),
            Field::TypeId => Value::from(self.kind.id),
            Field::TypeName => Value::from(self.kind.name.as_str()),
            Field::EntityId => Value::from(
                m.entity_id
                    .unwrap_or_else(uuid::Uuid::nil)
                    .hyphenated()
                    .to_string(),
            ),
            Field::Version => Value::from(m.version),
            Field::IdentificationType => Value::from(m.subject.identification_type()),
            Field::Subject => Value::from(m.subject.value()),
            Field::ChangeType => Value::from(m.change.code()),
            Field::HasBody => Value::from(m.body.is_some()),
            Field::Body => m.body.clone().unwrap_or(Value::Null),
            Field::RecipientOrgType => Value::from(m.recipient.org_type),
            Field::RecipientOrgCode => Value::from(m.recipient.org_code),
            Field::RegisteredByOrgType => {
                Value::from(registrar.map_or(m.recipient, |r| r.authority).org_type)
            }
            Field::RegisteredByOrgCode => {
                Value::from(registrar.map_or(m.recipient, |r| r.authority).org_code)
            }
            Field::RegisteredByUser => Value::from(registrar.map_or(DEFAULT_USER, |r| &r.user)),
            Field::RegisteredAt => Value::from(
                self.registered_at
                    .format(&Rfc3339)
                    .unwrap_or_else(|_| self.registered_at.to_string()),
            ),
            Field::SubscriptionId => Value::from(self.subscription_id.hyphenated().to_string()),
        }
    }
}

impl Template {
    /// Compiles a template from its TOML value; `path` (e.g. `template.notification`) prefixes
    /// errors.
    pub fn compile(path: &str, value: &toml::Value) -> Result<Template, String> {
        Ok(Template {
            root: compile(path, value)?,
        })
    }

    /// The JSON document for one delivery.
    pub fn render(&self, facts: &Facts<'_>) -> String {
        // Serializing our own tree of strings, numbers and `serde_json::Value`s cannot fail.
        serde_json::to_string(&Rendering {
            node: &self.root,
            facts,
        })
        .unwrap_or_default()
    }

    /// The placeholder names a template may use.
    pub fn placeholders() -> impl Iterator<Item = &'static str> {
        FIELDS.iter().map(|(name, _)| *name)
    }
}

fn compile(path: &str, value: &toml::Value) -> Result<Node, String> {
    Ok(match value {
        toml::Value::String(text) => compile_text(path, text)?,
        toml::Value::Integer(n) => Node::Literal((*n).into()),
        toml::Value::Float(f) => Node::Literal(
            serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .ok_or_else(|| format!("{path}: {f} cannot be written as JSON"))?,
        ),
        toml::Value::Boolean(b) => Node::Literal((*b).into()),
        toml::Value::Datetime(_) => {
            return Err(format!(
                "{path}: a TOML date has no JSON form; write it as a string"
            ))
        }
        toml::Value::Array(items) => Node::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| compile(&format!("{path}[{i}]"), item))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(table) => Node::Object(
            table
                .iter()
                .map(|(key, item)| Ok((key.clone(), compile(&format!("{path}.{key}"), item)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

fn compile_text(path: &str, text: &str) -> Result<Node, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("{path}: {{{{ without a closing }}}} in {text:?}"))?;
        if open > 0 {
            pieces.push(Piece::Literal(rest[..open].to_owned()));
        }
        let name = after[..close].trim();
        let field = FIELDS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, field)| *field)
            .ok_or_else(|| {
                format!(
                    "{path}: unknown placeholder {{{{{name}}}}}; known: {}",
                    Template::placeholders().collect::<Vec<_>>().join(", ")
                )
            })?;
        pieces.push(Piece::Field(field));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest.to_owned()));
    }
    Ok(match pieces.as_slice() {
        [] => Node::Literal(serde_json::Value::from("")),
        [Piece::Field(field)] => Node::Field(*field),
        [Piece::Literal(text)] => Node::Literal(serde_json::Value::from(text.as_str())),
        _ => Node::Text(pieces),
    })
}

struct Rendering<'a> {
    node: &'a Node,
    facts: &'a Facts<'a>,
}

impl Serialize for Rendering<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let facts = self.facts;
        match self.node {
            Node::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, node) in entries {
                    map.serialize_entry(key, &Rendering { node, facts })?;
                }
                map.end()
            }
            Node::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for node in items {
                    seq.serialize_element(&Rendering { node, facts })?;
                }
                seq.end()
            }
            Node::Literal(value) => value.serialize(serializer),
            Node::Field(field) => facts.value(*field).serialize(serializer),
            Node::Text(pieces) => {
                let mut text = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Literal(literal) => text.push_str(literal),
                        Piece::Field(field) => match facts.value(*field) {
                            serde_json::Value::String(s) => text.push_str(&s),
                            other => text.push_str(&other.to_string()),
                        },
                    }
                }
                serializer.serialize_str(&text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsb::catalog::Catalog;
    use crate::wsb::message::{Authority, ChangeType, Cpr, Registrar, Subject};

    fn facts_for<'a>(kind: &'a MessageType, message: &'a Message) -> Facts<'a> {
        Facts {
            message_id: "6f0c2a57-3d1e-4f7a-9b2c-1e5d8a9f0b34"
                .parse()
                .expect("uuid"),
            kind,
            message,
            registered_at: time::macros::datetime!(2025-03-01 10:15:00 UTC),
            subscription_id: uuid::Uuid::nil(),
        }
    }

    #[test]
    fn the_shipped_notification_has_the_fields_of_wsb_md() {
        let catalog = Catalog::shipped().expect("catalog");
        let kind = catalog.message_type(60010).expect("Akassemedlemskab");
        let mut message = Message::new(
            60010,
            Authority {
                org_type: 1,
                org_code: 42,
            },
            Subject::Cpr(Cpr::try_from("0101901234".to_owned()).expect("cpr")),
            ChangeType::Update,
        );
        message.entity_id = Some(
            "11111111-2222-3333-4444-555555555555"
                .parse()
                .expect("uuid"),
        );
        message.body = Some(serde_json::json!({"nyAkasse": 7}));
        message.registered_by = Some(Registrar {
            authority: Authority {
                org_type: 8,
                org_code: 101,
            },
            user: "CVR:91234567-UUID:x".into(),
        });
        let json = kind.template.render(&facts_for(kind, &message));
        assert!(json.starts_with("{\"metadata\":{\"beskedId\":"), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(
            value,
            serde_json::json!({
                "metadata": {
                    "beskedId": "6f0c2a57-3d1e-4f7a-9b2c-1e5d8a9f0b34",
                    "EntitetId": 60010,
                    "EntitetNavn": "Akassemedlemskab",
                    "EksternIdentifier": "11111111-2222-3333-4444-555555555555",
                    "VersionIdentifier": 1,
                    "IdentifikationstypeId": 1,
                    "Identifikation": "0101901234",
                    "Aendringstype": 2,
                    "HarBody": true,
                    "Registreringstidspunkt": "2025-03-01T10:15:00Z",
                    "modtager": {"orgType": 1, "orgCode": 42},
                    "registreretAf": {"orgType": 8, "orgCode": 101, "brugerId": "CVR:91234567-UUID:x"}
                },
                "body": {"nyAkasse": 7}
            })
        );
    }

    #[test]
    fn placeholders_in_text_and_defaults_render() {
        let catalog = Catalog::shipped().expect("catalog");
        let kind = catalog.message_type(120001).expect("Jobordre");
        let message = Message::new(
            120001,
            Authority {
                org_type: 8,
                org_code: 101,
            },
            Subject::Identifier("JO-\"7\"".into()),
            ChangeType::Delete,
        );
        let toml: toml::Value = toml::from_str(
            r#"url = "/v1/{{ type_name }}/{{entity_id}}?v={{version}}"
               who = "{{subject}}"
               user = "{{registered_by.user}}"
               list = [1, "{{has_body}}", "{{body}}"]
               plain = "no placeholders""#,
        )
        .expect("toml");
        let template = Template::compile("t", &toml).expect("compiles");
        let value: serde_json::Value =
            serde_json::from_str(&template.render(&facts_for(kind, &message))).expect("json");
        assert_eq!(
            value,
            serde_json::json!({
                "url": "/v1/Jobordre/00000000-0000-0000-0000-000000000000?v=1",
                "who": "JO-\"7\"",
                "user": DEFAULT_USER,
                "list": [1, false, null],
                "plain": "no placeholders"
            })
        );
    }

    #[test]
    fn template_errors_name_the_key() {
        let toml: toml::Value = toml::from_str("[a]\nb = \"x {{nope}}\"").expect("toml");
        let error = Template::compile("template.t", &toml).expect_err("unknown");
        assert!(
            error.starts_with("template.t.a.b: unknown placeholder {{nope}}"),
            "{error}"
        );
        let toml: toml::Value = toml::from_str("b = \"{{message_id\"").expect("toml");
        assert!(Template::compile("t", &toml)
            .expect_err("unclosed")
            .contains("without a closing"));
        let toml: toml::Value = toml::from_str("b = 1979-05-27").expect("toml");
        assert!(Template::compile("t", &toml)
            .expect_err("date")
            .contains("no JSON form"));
    }
}

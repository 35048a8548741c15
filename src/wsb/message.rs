//! What STAR pushes: a [`Message`] about one citizen or entity, addressed to one receiving
//! authority, checked against the message catalog before anything is queued.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::catalog::{Catalog, MessageType};

/// The largest body a message may carry, serialized as JSON.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An authority (myndighed): organisation type and code, as a subscription's `orgType` and
/// `orgCode` and the SOAP `ActiveOrganisationHeader` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Authority {
    /// `orgType`: 8 Jobcenter, 7 Kommune, … (the catalog names them).
    pub org_type: u32,
    /// `orgCode`: e.g. the municipality number.
    pub org_code: u32,
}

impl fmt::Display for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.org_type, self.org_code)
    }
}

/// `orgType/orgCode`, e.g. `8/101` (jobcenter 101), as [`fmt::Display`] writes it.
impl std::str::FromStr for Authority {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let number = |part: &str| part.trim().parse::<u32>().ok();
        match text.split_once('/') {
            Some((org_type, org_code)) => match (number(org_type), number(org_code)) {
                (Some(org_type), Some(org_code)) => Ok(Authority { org_type, org_code }),
                _ => Err(format!(
                    "{text:?} is not an authority: write orgType/orgCode as numbers, e.g. \"8/101\" (jobcenter 101)"
                )),
            },
            None => Err(format!(
                "{text:?} is not an authority: write orgType/orgCode, e.g. \"8/101\" (jobcenter 101) or \"1/42\" (a-kasse 42)"
            )),
        }
    }
}

/// A CPR number: 10 digits (a hyphen after the sixth is accepted and dropped).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cpr(String);

impl Cpr {
    /// The 10 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Cpr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let compact: String = match text.trim().split_once('-') {
            Some((date, serial)) if date.len() == 6 => format!("{date}{serial}"),
            _ => text.trim().to_owned(),
        };
        if compact.len() == 10 && compact.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Cpr(compact))
        } else {
            Err(format!(
                "{text:?} is not a CPR number: write 10 digits, e.g. 0101901234 or 010190-1234"
            ))
        }
    }
}

impl From<Cpr> for String {
    fn from(cpr: Cpr) -> String {
        cpr.0
    }
}

// A CPR number is personal data: logs and `Debug` show the birth date part only.
impl fmt::Debug for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cpr({}-xxxx)", &self.0[..6])
    }
}

/// Who or what a message is about: STAR's `IdentifikationstypeId` with its value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// 1: a citizen, by CPR number.
    Cpr(Cpr),
    /// 2: an identifier (e.g. of a company or job order).
    Identifier(String),
}

impl Subject {
    /// STAR's `IdentifikationstypeId`: 1 CPR, 2 identifier.
    pub fn identification_type(&self) -> u8 {
        match self {
            Subject::Cpr(_) => 1,
            Subject::Identifier(_) => 2,
        }
    }

    /// The CPR number or identifier.
    pub fn value(&self) -> &str {
        match self {
            Subject::Cpr(cpr) => cpr.as_str(),
            Subject::Identifier(id) => id,
        }
    }
}

/// STAR's `Aendringstype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeType {
    /// 1
    Create,
    /// 2
    Update,
    /// 3
    Delete,
}

impl ChangeType {
    /// The number STAR sends.
    pub fn code(self) -> u8 {
        match self {
            ChangeType::Create => 1,
            ChangeType::Update => 2,
            ChangeType::Delete => 3,
        }
    }
}

/// The authority and user that registered the change, as the SOAP headers carry them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registrar {
    /// `ActiveOrganisationHeader`.
    pub authority: Authority,
    /// `RequestUserMetadataHeader`'s UserIdentifier.
    pub user: String,
}

/// One message to push: the change of one entity, for one receiving authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `EntitetId`: the message type, e.g. 30000 (Cv).
    pub type_id: u32,
    /// The authority that receives it; every subscription of this authority to this type gets it.
    pub recipient: Authority,
    /// The citizen (CPR) or entity the message is about.
    pub subject: Subject,
    /// Create, update or delete.
    pub change: ChangeType,
    /// `EksternIdentifier`: the changed entity; all zeros when there is none.
    #[serde(default)]
    pub entity_id: Option<uuid::Uuid>,
    /// `VersionIdentifier`.
    #[serde(default = "first_version")]
    pub version: u32,
    /// Who registered the change; default: the recipient authority and user `dfdg-mock`.
    #[serde(default)]
    pub registered_by: Option<Registrar>,
    /// Time of registration; default: when it is sent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub registered_at: Option<OffsetDateTime>,
    /// The body, for the types that carry one.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// What fired it, for the views: `cli`, `dashboard`, `schedule <name>`, `scenario
    /// <file>#<rule> (call 42)`; not pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Deliver only to this system's subscriptions (a test message for one supplier); none:
    /// to every matching subscription, as STAR does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_system: Option<uuid::Uuid>,
}

/// The longest [`Message::origin`] kept.
pub const MAX_ORIGIN: usize = 200;

fn first_version() -> u32 {
    1
}

impl Message {
    /// A message without body, entity id or registrar: the fields a CLI asks for.
    pub fn new(type_id: u32, recipient: Authority, subject: Subject, change: ChangeType) -> Self {
        Message {
            type_id,
            recipient,
            subject,
            change,
            entity_id: None,
            version: first_version(),
            registered_by: None,
            registered_at: None,
            body: None,
            origin: None,
            only_system: None,
        }
    }

    /// Checks the message against the catalog; the type it is of.
    pub fn check<'c>(&self, catalog: &'c Catalog) -> Result<&'c MessageType, MessageError> {
        let kind = catalog
            .message_type(self.type_id)
            .ok_or_else(|| MessageError::UnknownType {
                type_id: self.type_id,
                known: catalog.types().map(|t| t.to_string()).collect(),
            })?;
        if !kind.recipients.contains(&self.recipient.org_type) {
            return Err(MessageError::NotARecipient {
                kind: kind.to_string(),
                org_type: self.recipient.org_type,
                allowed: kind
                    .recipients
                    .iter()
                    .map(|code| catalog.describe_org_type(*code))
                    .collect(),
            });
        }
        if let Some(body) = &self.body {
            if !kind.body {
                return Err(MessageError::NoBodyAllowed(kind.to_string()));
            }
            let size = serde_json::to_vec(body).map_or(usize::MAX, |b| b.len());
            if size > MAX_BODY_BYTES {
                return Err(MessageError::BodyTooLarge(size));
            }
        }
        if let Some(registrar) = &self.registered_by {
            if registrar.user.trim().is_empty() || registrar.user.len() > 256 {
                return Err(MessageError::BadUser);
            }
        }
        if self.origin.as_ref().is_some_and(|o| o.len() > MAX_ORIGIN) {
            return Err(MessageError::BadOrigin);
        }
        if let Subject::Identifier(id) = &self.subject {
            if id.trim().is_empty() || id.len() > 256 {
                return Err(MessageError::BadIdentifier);
            }
        }
        Ok(kind)
    }
}

/// A message as people and tools write it (the admin API's `POST /api/wsb/messages`,
/// `dfdg-mock wsb send`, the dashboard, scenario rules): the type by id or name, the recipient
/// as `"8/101"`, the subject as `cpr` or `identifier`. [`SendRequest::message`] makes the
/// [`Message`], checked against the catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// `EntitetId` (`90001`) or `EntitetNavn` (`"Frist"`).
    #[serde(rename = "type")]
    pub message_type: Option<NameOrNumber>,
    /// `"8/101"` or `{"org_type": 8, "org_code": 101}`.
    pub recipient: Option<AuthorityText>,
    /// The citizen's CPR number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpr: Option<String>,
    /// Or the entity's identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// `create`, `update` (the default) or `delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<uuid::Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_by: Option<Registrar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Only to this system's subscriptions (a test message); none: every matching one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<uuid::Uuid>,
}

/// A number or a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NameOrNumber {
    Number(u32),
    Name(String),
}

impl fmt::Display for NameOrNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameOrNumber::Number(n) => n.fmt(f),
            NameOrNumber::Name(name) => f.write_str(name),
        }
    }
}

/// An authority as `"8/101"` or as an object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AuthorityText {
    Text(String),
    Object(Authority),
}

impl SendRequest {
    /// The message it describes, checked against `catalog`; the error says what to fix.
    pub fn message(&self, catalog: &Catalog) -> Result<Message, String> {
        let kind = match &self.message_type {
            Some(name) => catalog.resolve(&name.to_string())?,
            None => return Err("type: name the message type, e.g. 90001 or \"Frist\"".into()),
        };
        let recipient = match &self.recipient {
            Some(AuthorityText::Text(text)) => text.parse::<Authority>()?,
            Some(AuthorityText::Object(authority)) => *authority,
            None => {
                return Err(
                    "recipient: name the receiving authority as orgType/orgCode, e.g. \"8/101\" (jobcenter 101)"
                        .into(),
                )
            }
        };
        let subject = match (&self.cpr, &self.identifier) {
            (Some(cpr), None) => Subject::Cpr(Cpr::try_from(cpr.clone())?),
            (None, Some(identifier)) => Subject::Identifier(identifier.clone()),
            _ => {
                return Err(
                    "give exactly one of cpr (the citizen's CPR number) and identifier (an entity's id)"
                        .into(),
                )
            }
        };
        let message = Message {
            entity_id: self.entity_id,
            version: self.version.unwrap_or_else(first_version),
            registered_by: self.registered_by.clone(),
            body: self.body.clone(),
            origin: self.origin.clone(),
            only_system: self.system,
            ..Message::new(
                kind.id,
                recipient,
                subject,
                self.change.unwrap_or(ChangeType::Update),
            )
        };
        message.check(catalog).map_err(|e| e.to_string())?;
        Ok(message)
    }
}

/// Why a message cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("unknown message type {type_id}; the catalog has: {}", known.join(", "))]
    UnknownType { type_id: u32, known: Vec<String> },
    #[error("message type {kind} is not sent to organisation type {org_type}; it goes to: {}", allowed.join(", "))]
    NotARecipient {
        kind: String,
        org_type: u32,
        allowed: Vec<String>,
    },
    #[error("message type {0} carries no body; leave the body out")]
    NoBodyAllowed(String),
    #[error("the body is {0} bytes of JSON; the most a message carries is {MAX_BODY_BYTES}")]
    BodyTooLarge(usize),
    #[error("the registering user must be 1-256 characters")]
    BadUser,
    #[error("the identifier must be 1-256 characters")]
    BadIdentifier,
    #[error("the origin must be at most {MAX_ORIGIN} bytes")]
    BadOrigin,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpr_numbers_are_ten_digits_and_debug_hides_the_serial() {
        let cpr = Cpr::try_from("010190-1234".to_owned()).expect("with hyphen");
        assert_eq!(cpr.as_str(), "0101901234");
        assert_eq!(format!("{cpr:?}"), "Cpr(010190-xxxx)");
        for bad in ["01019012345", "0101901a34", "", "0101-901234"] {
            assert!(Cpr::try_from(bad.to_owned()).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_are_checked_against_the_catalog() {
        let catalog = Catalog::shipped().expect("shipped catalog");
        let jobcenter = Authority {
            org_type: 8,
            org_code: 101,
        };
        let cpr = Subject::Cpr(Cpr::try_from("0101901234".to_owned()).expect("cpr"));
        let cv = Message::new(30000, jobcenter, cpr.clone(), ChangeType::Update);
        assert_eq!(cv.check(&catalog).expect("valid").name, "Cv");

        let unknown = Message::new(4242, jobcenter, cpr.clone(), ChangeType::Update);
        let error = unknown.check(&catalog).expect_err("unknown type");
        assert!(error.to_string().contains("30000 Cv"), "{error}");

        let mut with_body = cv.clone();
        with_body.body = Some(serde_json::json!({"x": 1}));
        assert!(matches!(
            with_body.check(&catalog),
            Err(MessageError::NoBodyAllowed(_))
        ));

        let mut membership = Message::new(60010, jobcenter, cpr, ChangeType::Update);
        membership.body = Some(serde_json::json!({"gammelAkasse": 1, "nyAkasse": 2}));
        membership
            .check(&catalog)
            .expect("Akassemedlemskab carries a body");
        membership.recipient.org_type = 24;
        let error = membership.check(&catalog).expect_err("wrong recipient");
        assert!(error.to_string().contains("akasse (1)"), "{error}");
    }

    #[test]
    fn send_requests_name_types_and_recipients_as_people_write_them() {
        let catalog = Catalog::shipped().expect("shipped catalog");
        let request: SendRequest = serde_json::from_value(serde_json::json!({
            "type": "frist", "recipient": "8/101", "cpr": "010190-1234", "origin": "cli"
        }))
        .expect("parses");
        let message = request.message(&catalog).expect("valid");
        assert_eq!(
            (
                message.type_id,
                message.recipient.to_string(),
                message.change
            ),
            (90001, "8/101".to_owned(), ChangeType::Update)
        );
        assert_eq!(message.origin.as_deref(), Some("cli"));
        let by_number: SendRequest = serde_json::from_value(serde_json::json!({
            "type": 30000, "recipient": {"org_type": 1, "org_code": 42}, "identifier": "x", "change": "delete"
        }))
        .expect("parses");
        assert_eq!(by_number.message(&catalog).expect("valid").type_id, 30000);
        for (json, needle) in [
            (
                serde_json::json!({"type": "Fristen", "recipient": "8/101", "cpr": "0101901234"}),
                "unknown message type",
            ),
            (
                serde_json::json!({"type": 90001, "recipient": "jobcenter", "cpr": "0101901234"}),
                "orgType/orgCode",
            ),
            (
                serde_json::json!({"type": 90001, "recipient": "8/101"}),
                "exactly one of cpr",
            ),
            (
                serde_json::json!({"type": 90001, "recipient": "24/1", "cpr": "0101901234"}),
                "not sent to organisation type 24",
            ),
        ] {
            let request: SendRequest = serde_json::from_value(json).expect("parses");
            let error = request.message(&catalog).expect_err("refused");
            assert!(error.contains(needle), "{error}");
        }
    }

    #[test]
    fn a_message_reads_from_json_with_defaults() {
        let message: Message = serde_json::from_value(serde_json::json!({
            "type_id": 90001,
            "recipient": {"org_type": 8, "org_code": 101},
            "subject": {"cpr": "0101901234"},
            "change": "create"
        }))
        .expect("parses");
        assert_eq!(message.version, 1);
        assert_eq!(message.subject.identification_type(), 1);
        assert!(serde_json::from_value::<Message>(serde_json::json!({
            "type_id": 90001,
            "recipient": {"org_type": 8, "org_code": 101},
            "subject": {"cpr": "12"},
            "change": "create"
        }))
        .is_err());
    }
}

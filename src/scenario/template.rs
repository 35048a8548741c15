//! Response templates: minijinja with XML auto-escaping (`&`, `<`, `>`, `"`, `'` become
//! entities in every inserted value), so a value taken from the request can never break the
//! response's markup; `{{ value|safe }}` inserts markup on purpose. Absent values print as "".
//!
//! What a template sees:
//! - `request("Op/Child/Leaf")`: a request value by local-name path ("" when absent);
//! - `caller.id`, `caller.cvr`, `caller.kind`, `caller.common_name`, `caller.organisation`,
//!   `caller.subject`, `caller.issuer`, `caller.serial`, `caller.fingerprint`;
//! - `star.organisation_code`, `star.user_identifier`, … (the STAR header fields);
//! - `operation`, `namespace` (the request operation's), `soap_version` ("1.1"/"1.2"),
//!   `envelope_namespace` (of that SOAP version), `path`, `call_number` (this caller's count
//!   for the rule, 1 for the first call);
//! - `guid()`: a fresh GUID; `receipt()`: a fresh GUID journaled as the call's receipt;
//! - `now()`, `now(offset="-1d")`, `now(format="[year]-[month]-[day]")`: the arrival time,
//!   by default RFC 3339 in UTC to the millisecond (as `xs:dateTime` for .NET); offsets in s, m,
//!   h, d, signed;
//! - `state("bucket", key)`: what `set_state` stored for this caller ("" when nothing).

use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::{Enumerator, Kwargs, Object, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};
use time::OffsetDateTime;

use super::matching::{CallerField, StarField, ValuePath};
use super::{RequestFacts, Runtime};
use crate::identity::CallerIdentity;
use crate::soap::{SoapVersion, StarHeaders};
use crate::wsdl::xml::Element;

/// The compiled templates of one spec.
#[derive(Debug)]
pub struct Templates {
    environment: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    pub fn new() -> Templates {
        let mut environment = Environment::new();
        environment.set_auto_escape_callback(|_| AutoEscape::Custom(XML.into()));
        environment.set_formatter(xml_formatter);
        environment.add_function("request", request);
        environment.add_function("guid", guid);
        environment.add_function("receipt", receipt);
        environment.add_function("now", now);
        environment.add_function("state", state);
        Templates { environment }
    }

    /// Compiles `source` under `name`; an error names `file` and the line in it (`first_line`
    /// is the file line of the template's first line).
    pub fn add(
        &mut self,
        name: &str,
        source: String,
        file: &str,
        first_line: usize,
    ) -> Result<(), String> {
        self.environment
            .add_template_owned(name.to_owned(), source)
            .map_err(|error| {
                let line = error.line().map_or(String::new(), |line| {
                    format!(
                        " (template line {line}, file line {})",
                        first_line + line - 1
                    )
                });
                format!(
                    "template syntax error{line} in {file}: {}",
                    error.detail().unwrap_or("invalid template")
                )
            })
    }

    pub fn render(&self, name: &str, context: &CallContext) -> Result<String, String> {
        let template = self
            .environment
            .get_template(name)
            .map_err(|error| error.to_string())?;
        template.render(context.value()).map_err(|error| {
            let line = error
                .line()
                .map_or(String::new(), |line| format!(" at template line {line}"));
            format!(
                "template {name} failed{line}: {}",
                error.detail().unwrap_or(&error.to_string())
            )
        })
    }
}

/// The name of our auto-escape mode.
const XML: &str = "xml";

/// Writes a value into XML: escaped (minijinja's HTML escaping would also turn `/` into
/// `&#x2f;`, which some XML tooling does not expect in namespace attributes).
fn xml_formatter(
    out: &mut Output<'_>,
    state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), Error> {
    if !matches!(state.auto_escape(), AutoEscape::Custom(mode) if mode == XML) {
        return minijinja::escape_formatter(out, state, value);
    }
    let written = if value.is_undefined() || value.is_none() {
        Ok(())
    } else if value.is_safe() {
        write!(out, "{value}")
    } else {
        std::fmt::Write::write_str(out, &quick_xml::escape::escape(value.to_string().as_str()))
    };
    written.map_err(|_| Error::new(ErrorKind::WriteFailure, "cannot write the template output"))
}

/// One call, as a template sees it: the render context itself, whose variables are looked up
/// when a template reads them (nothing is copied for the variables it does not read).
#[derive(Debug)]
struct Call {
    operation: Arc<Element>,
    identity: Option<Arc<CallerIdentity>>,
    star: StarHeaders,
    version: SoapVersion,
    path: String,
    call_number: u64,
    now: OffsetDateTime,
    receipts: Mutex<Vec<String>>,
    runtime: Arc<Runtime>,
    caller: String,
}

/// The variables of [`Call`] (see the module's documentation).
const VARIABLES: &[&str] = &[
    "caller",
    "star",
    "operation",
    "namespace",
    "soap_version",
    "envelope_namespace",
    "path",
    "call_number",
];

impl Object for Call {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "caller" => Value::from_object(Fields::Caller(self.clone())),
            "star" => Value::from_object(Fields::Star(self.clone())),
            "operation" => Value::from(self.operation.name.local.as_str()),
            "namespace" => Value::from(self.operation.name.namespace.as_str()),
            "soap_version" => Value::from(self.version.label()),
            "envelope_namespace" => Value::from(self.version.envelope_namespace()),
            "path" => Value::from(self.path.as_str()),
            "call_number" => Value::from(self.call_number),
            CALL => Value::from_dyn_object(self.clone()),
            _ => return None,
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(VARIABLES)
    }
}

/// `caller.*` and `star.*` of a call: absent values print as "".
#[derive(Debug)]
enum Fields {
    Caller(Arc<Call>),
    Star(Arc<Call>),
}

impl Object for Fields {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        match &**self {
            Fields::Caller(call) => {
                let field = CallerField::parse(key)?;
                let value = call
                    .identity
                    .as_deref()
                    .and_then(|identity| field.value(identity));
                Some(value.map_or(Value::UNDEFINED, Value::from))
            }
            Fields::Star(call) => {
                let value = StarField::parse(key)?.value(&call.star);
                Some(value.map_or(Value::UNDEFINED, Value::from))
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match &**self {
            Fields::Caller(_) => Enumerator::Str(CallerField::NAMES),
            Fields::Star(_) => Enumerator::Str(StarField::NAMES),
        }
    }
}

/// The render context of one call.
#[derive(Debug)]
pub struct CallContext {
    call: Arc<Call>,
}

/// The hidden variable through which the template functions reach the [`Call`].
const CALL: &str = "__call";

impl CallContext {
    /// The context of the call `facts` describes: `caller`'s `count`-th call of the rule.
    pub fn new(
        facts: &RequestFacts<'_>,
        runtime: Arc<Runtime>,
        caller: &str,
        count: u64,
    ) -> CallContext {
        CallContext {
            call: Arc::new(Call {
                operation: facts.operation.clone(),
                identity: facts.identity.cloned(),
                star: facts.star.clone(),
                version: facts.version,
                path: facts.path.to_owned(),
                call_number: count,
                now: facts.now,
                receipts: Mutex::new(Vec::new()),
                runtime,
                caller: caller.to_owned(),
            }),
        }
    }

    fn value(&self) -> Value {
        Value::from_dyn_object(self.call.clone())
    }

    /// The receipt GUIDs issued by `receipt()` so far.
    pub fn receipts(&self) -> Vec<String> {
        self.call
            .receipts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn call(state: &State<'_, '_>) -> Result<Arc<Call>, Error> {
    state
        .lookup(CALL)
        .and_then(|value| value.downcast_object::<Call>())
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "no call in this context"))
}

/// `request("Op/Child/Leaf")`: looked up in the parsed operation element.
fn request(state: &State<'_, '_>, path: String) -> Result<Value, Error> {
    let call = call(state)?;
    Ok(ValuePath::parse(&path)
        .find(&call.operation)
        .map_or(Value::UNDEFINED, Value::from))
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn receipt(state: &State<'_, '_>) -> Result<String, Error> {
    let call = call(state)?;
    let guid = uuid::Uuid::now_v7().to_string();
    call.receipts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(guid.clone());
    Ok(guid)
}

fn now(state: &State<'_, '_>, kwargs: Kwargs) -> Result<String, Error> {
    let call = call(state)?;
    let offset: Option<String> = kwargs.get("offset")?;
    let format: Option<String> = kwargs.get("format")?;
    kwargs.assert_all_used()?;
    let mut time = call.now;
    if let Some(offset) = offset {
        time += parse_offset(&offset).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("now(offset={offset:?}): expected e.g. \"-1d\", \"+2h\", \"30m\", \"10s\""),
            )
        })?;
    }
    let invalid = |error: String| Error::new(ErrorKind::InvalidOperation, error);
    match format.as_deref() {
        // What DFDG sends, and what .NET reads (at most seven fractional digits).
        None | Some("rfc3339") => Ok(crate::soap::xml_date_time(time)),
        Some(description) => {
            let items = time::format_description::parse_borrowed::<2>(description)
                .map_err(|e| invalid(format!("now(format={description:?}): {e}")))?;
            time.format(&items).map_err(|e| invalid(e.to_string()))
        }
    }
}

/// "-1d", "+2h", "30m", "10s".
fn parse_offset(text: &str) -> Option<time::Duration> {
    let text = text.trim();
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let split = rest.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = rest.split_at(split);
    let number: i64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(time::Duration::seconds(sign * number.checked_mul(seconds)?))
}

fn state(state: &State<'_, '_>, bucket: String, key: String) -> Result<Value, Error> {
    let call = call(state)?;
    Ok(call
        .runtime
        .state(&call.caller, &bucket, &key)
        .map_or(Value::UNDEFINED, Value::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("-1d"), Some(time::Duration::days(-1)));
        assert_eq!(parse_offset("+2h"), Some(time::Duration::hours(2)));
        assert_eq!(parse_offset("30m"), Some(time::Duration::minutes(30)));
        assert_eq!(parse_offset("soon"), None);
    }
}

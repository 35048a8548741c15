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
//!   RFC 3339 by default; offsets in s, m, h, d, signed;
//! - `state("bucket", key)`: what `set_state` stored for this caller ("" when nothing).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::{Kwargs, Object, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};
use time::OffsetDateTime;

use super::{RequestFacts, Runtime};
use crate::scenario::matching::RequestValues;

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
        template.render(context.value.clone()).map_err(|error| {
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

/// One call, as the template functions see it.
#[derive(Debug)]
struct Call {
    values: RequestValues,
    paths: Arc<[Box<str>]>,
    operation_xml: String,
    now: OffsetDateTime,
    receipts: Mutex<Vec<String>>,
    runtime: Arc<Runtime>,
    caller: String,
}

impl Object for Call {}

/// The render context of one call: the variables and the hidden `Call` object.
#[derive(Debug)]
pub struct CallContext {
    value: Value,
    call: Arc<Call>,
}

const CALL: &str = "__call";

impl CallContext {
    pub fn new(
        facts: &RequestFacts<'_>,
        values: RequestValues,
        paths: Arc<[Box<str>]>,
        runtime: Arc<Runtime>,
        caller: &str,
        count: u64,
    ) -> CallContext {
        let call_value = Value::from_object(Call {
            values,
            paths,
            operation_xml: facts.operation_xml.to_owned(),
            now: facts.now,
            receipts: Mutex::new(Vec::new()),
            runtime,
            caller: caller.to_owned(),
        });
        let call = call_value
            .downcast_object::<Call>()
            .expect("a Call value holds a Call");
        let mut variables: BTreeMap<String, Value> = BTreeMap::new();
        let mut identity: BTreeMap<String, Value> = BTreeMap::new();
        if let Some(id) = facts.identity {
            identity.insert("id".into(), Value::from(id.caller_id.as_str()));
            identity.insert("cvr".into(), Value::from(id.cvr.clone()));
            identity.insert(
                "kind".into(),
                Value::from(crate::scenario::matching::kind_name(id.kind)),
            );
            identity.insert("common_name".into(), Value::from(id.common_name.clone()));
            identity.insert("organisation".into(), Value::from(id.organisation.clone()));
            identity.insert("subject".into(), Value::from(id.subject.as_str()));
            identity.insert("issuer".into(), Value::from(id.issuer.as_str()));
            identity.insert("serial".into(), Value::from(id.serial.as_str()));
            identity.insert("fingerprint".into(), Value::from(id.fingerprint.as_str()));
        }
        variables.insert("caller".into(), Value::from_object(identity));
        let mut star: BTreeMap<String, Value> = BTreeMap::new();
        if let Some(organisation) = &facts.star.active_organisation {
            star.insert(
                "organisation_type".into(),
                Value::from(organisation.organisation_type.clone()),
            );
            star.insert(
                "organisation_code".into(),
                Value::from(organisation.organisation_code.clone()),
            );
        }
        if let Some(user) = &facts.star.request_user {
            for (name, value) in [
                ("user_full_name", &user.user_full_name),
                ("user_type", &user.user_type),
                ("user_identifier", &user.user_identifier),
                ("user_email", &user.user_email),
                ("user_organisation_type", &user.organisation_type),
                ("user_organisation_code", &user.organisation_code),
                ("registration_date_time", &user.registration_date_time),
            ] {
                star.insert(name.into(), Value::from(value.clone()));
            }
        }
        variables.insert("star".into(), Value::from_object(star));
        variables.insert(
            "operation".into(),
            Value::from(facts.operation.local.as_str()),
        );
        variables.insert(
            "namespace".into(),
            Value::from(facts.operation.namespace.as_str()),
        );
        variables.insert("soap_version".into(), Value::from(facts.version.label()));
        variables.insert(
            "envelope_namespace".into(),
            Value::from(facts.version.envelope_namespace()),
        );
        variables.insert("path".into(), Value::from(facts.path));
        variables.insert("call_number".into(), Value::from(count));
        variables.insert(CALL.into(), call_value);
        CallContext {
            value: Value::from_object(variables),
            call,
        }
    }

    /// The receipt GUIDs issued by `receipt()` so far.
    pub fn receipts(&self) -> Vec<String> {
        self.call
            .receipts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A request value the rules extracted, by path index.
    pub fn value(&self, index: usize) -> Option<&str> {
        self.call.values.get(index)
    }
}

fn call(state: &State<'_, '_>) -> Result<Arc<Call>, Error> {
    state
        .lookup(CALL)
        .and_then(|value| value.downcast_object::<Call>())
        .ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "no call in this context"))
}

fn request(state: &State<'_, '_>, path: String) -> Result<Value, Error> {
    let call = call(state)?;
    let path = path.trim().trim_start_matches('/');
    if let Some(index) = call.paths.iter().position(|known| &**known == path) {
        return Ok(call.values.get(index).map_or(Value::UNDEFINED, Value::from));
    }
    // A path no rule matches on: one more pass, for this path only.
    let (operation, rest) = crate::scenario::matching::split_path(path);
    let mut single = crate::scenario::matching::PathIndex::new();
    single.insert(Box::from(rest), vec![(operation.map(Box::from), 0)]);
    let values = RequestValues::extract(&call.operation_xml, &single, 1);
    Ok(values.get(0).map_or(Value::UNDEFINED, Value::from))
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn receipt(state: &State<'_, '_>) -> Result<String, Error> {
    let call = call(state)?;
    let guid = uuid::Uuid::new_v4().to_string();
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
        None | Some("rfc3339") => time
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(|e| invalid(e.to_string())),
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

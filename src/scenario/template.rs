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
//!
//! Most templates only substitute values (`{{ namespace }}`, `{{ receipt() }}`, …): those are
//! also compiled into literal segments and values ([`Plain`]) and rendered without minijinja,
//! with the same escaping and output; a template with anything more (blocks, filters,
//! expressions, whitespace control) is rendered by minijinja.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

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
    /// The templates that only substitute values, by name, in their plain form.
    plain: HashMap<String, Plain>,
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
        Templates {
            environment,
            plain: HashMap::new(),
        }
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
        let plain = Plain::compile(&source);
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
            })?;
        match plain {
            Some(plain) => self.plain.insert(name.to_owned(), plain),
            None => self.plain.remove(name),
        };
        Ok(())
    }

    pub fn render(&self, name: &str, context: &CallContext<'_>) -> Result<String, String> {
        if let Some(plain) = self.plain.get(name) {
            return Ok(plain.render(context));
        }
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
    receipts: Arc<Mutex<Vec<String>>>,
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

/// The render context of one call: what the plain templates read directly, and the
/// minijinja context, made the first time a minijinja template needs it.
#[derive(Debug)]
pub struct CallContext<'a> {
    facts: &'a RequestFacts<'a>,
    runtime: &'a Arc<Runtime>,
    caller: &'a str,
    count: u64,
    /// The receipt GUIDs issued so far, by either kind of template.
    receipts: Arc<Mutex<Vec<String>>>,
    call: OnceLock<Arc<Call>>,
}

/// The hidden variable through which the template functions reach the [`Call`].
const CALL: &str = "__call";

impl<'a> CallContext<'a> {
    /// The context of the call `facts` describes: `caller`'s `count`-th call of the rule.
    pub fn new(
        facts: &'a RequestFacts<'a>,
        runtime: &'a Arc<Runtime>,
        caller: &'a str,
        count: u64,
    ) -> CallContext<'a> {
        CallContext {
            facts,
            runtime,
            caller,
            count,
            receipts: Arc::default(),
            call: OnceLock::new(),
        }
    }

    fn value(&self) -> Value {
        let call = self.call.get_or_init(|| {
            let facts = self.facts;
            Arc::new(Call {
                operation: facts.operation.clone(),
                identity: facts.identity.cloned(),
                star: facts.star.clone(),
                version: facts.version,
                path: facts.path.to_owned(),
                call_number: self.count,
                now: facts.now,
                receipts: self.receipts.clone(),
                runtime: self.runtime.clone(),
                caller: self.caller.to_owned(),
            })
        });
        Value::from_dyn_object(call.clone())
    }

    /// The receipt GUIDs issued by `receipt()` so far.
    pub fn receipts(&self) -> Vec<String> {
        self.receipts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn issue_receipt(&self) -> String {
        let guid = receipt_guid();
        self.receipts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(guid.clone());
        guid
    }
}

/// A template that only substitutes values: its text cut into literal segments and the values
/// between them, rendered without minijinja exactly as minijinja renders it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plain {
    segments: Vec<Segment>,
    /// The length of the literal text, to size the output.
    literal_len: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(Box<str>),
    Value(PlainValue),
}

/// The values a plain template can substitute (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
enum PlainValue {
    Operation,
    Namespace,
    SoapVersion,
    EnvelopeNamespace,
    Path,
    CallNumber,
    Guid,
    Receipt,
    Now,
    Request(ValuePath),
    Caller(CallerField),
    Star(StarField),
}

impl Plain {
    /// The plain form of `source`, if it has one: only `{{ name }}`, `{{ caller.field }}`,
    /// `{{ star.field }}`, `{{ guid() }}`, `{{ receipt() }}`, `{{ now() }}` and
    /// `{{ request('path') }}` between literal text (no blocks, comments, filters or
    /// whitespace control). Call it on sources minijinja compiled.
    pub(crate) fn compile(source: &str) -> Option<Plain> {
        // minijinja drops one trailing newline (`keep_trailing_newline` is off).
        let source = source.strip_suffix('\n').unwrap_or(source);
        let source = source.strip_suffix('\r').unwrap_or(source);
        if source.contains("{%") || source.contains("{#") {
            return None;
        }
        let mut segments = Vec::new();
        let mut literal_len = 0;
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                literal_len += start;
                segments.push(Segment::Literal(Box::from(&rest[..start])));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}")?;
            let expression = &after[..end];
            if expression.starts_with(['-', '+']) || expression.ends_with(['-', '+']) {
                return None;
            }
            segments.push(Segment::Value(PlainValue::parse(expression.trim())?));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            literal_len += rest.len();
            segments.push(Segment::Literal(Box::from(rest)));
        }
        Some(Plain {
            segments,
            literal_len,
        })
    }

    fn render(&self, context: &CallContext<'_>) -> String {
        let facts = context.facts;
        let mut out = String::with_capacity(self.literal_len + 64 * self.segments.len());
        for segment in &self.segments {
            let value: Cow<'_, str> = match segment {
                Segment::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                Segment::Value(value) => match value {
                    PlainValue::Operation => Cow::Borrowed(&facts.operation.name.local),
                    PlainValue::Namespace => Cow::Borrowed(&facts.operation.name.namespace),
                    PlainValue::SoapVersion => Cow::Borrowed(facts.version.label()),
                    PlainValue::EnvelopeNamespace => {
                        Cow::Borrowed(facts.version.envelope_namespace())
                    }
                    PlainValue::Path => Cow::Borrowed(facts.path),
                    PlainValue::CallNumber => Cow::Owned(context.count.to_string()),
                    PlainValue::Guid => Cow::Owned(guid()),
                    PlainValue::Receipt => Cow::Owned(context.issue_receipt()),
                    PlainValue::Now => Cow::Owned(crate::soap::xml_date_time(facts.now)),
                    PlainValue::Request(path) => {
                        Cow::Borrowed(path.find(facts.operation).unwrap_or_default())
                    }
                    PlainValue::Caller(field) => Cow::Borrowed(
                        facts
                            .identity
                            .and_then(|identity| field.value(identity))
                            .unwrap_or_default(),
                    ),
                    PlainValue::Star(field) => {
                        Cow::Borrowed(field.value(facts.star).unwrap_or_default())
                    }
                },
            };
            out.push_str(&quick_xml::escape::escape(&*value));
        }
        out
    }
}

impl PlainValue {
    fn parse(expression: &str) -> Option<PlainValue> {
        Some(match expression {
            "operation" => PlainValue::Operation,
            "namespace" => PlainValue::Namespace,
            "soap_version" => PlainValue::SoapVersion,
            "envelope_namespace" => PlainValue::EnvelopeNamespace,
            "path" => PlainValue::Path,
            "call_number" => PlainValue::CallNumber,
            "guid()" => PlainValue::Guid,
            "receipt()" => PlainValue::Receipt,
            "now()" => PlainValue::Now,
            _ => {
                if let Some(field) = expression.strip_prefix("caller.") {
                    return CallerField::parse(field).map(PlainValue::Caller);
                }
                if let Some(field) = expression.strip_prefix("star.") {
                    return StarField::parse(field).map(PlainValue::Star);
                }
                let argument = expression
                    .strip_prefix("request(")?
                    .strip_suffix(')')?
                    .trim();
                let quote = argument
                    .chars()
                    .next()
                    .filter(|c| matches!(c, '\'' | '"'))?;
                let path = argument.strip_prefix(quote)?.strip_suffix(quote)?;
                // Escapes and quotes inside are minijinja's to read.
                if path.contains(['\\', '\'', '"']) {
                    return None;
                }
                PlainValue::Request(ValuePath::parse(path))
            }
        })
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
    let guid = receipt_guid();
    call.receipts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(guid.clone());
    Ok(guid)
}

/// A fresh receipt GUID, for either kind of template: a version-7 UUID (time first), which the
/// journal keys by its time so that a batch's receipts append to one index page.
fn receipt_guid() -> String {
    uuid::Uuid::now_v7().to_string()
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

    /// `text` with every GUID replaced by `GUID`, to compare renderings of fresh GUIDs.
    fn without_guids(text: &str) -> String {
        let guid =
            regex::Regex::new("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
                .unwrap();
        guid.replace_all(text, "GUID").into_owned()
    }

    #[test]
    fn plain_templates_render_as_minijinja_does() {
        let envelope = format!(
            "<s:Envelope xmlns:s=\"{}\"><s:Body><p:Op xmlns:p=\"urn:x&amp;y\"><p:Cpr> 0101701234 </p:Cpr><p:Name>A &amp; &lt;B&gt; \"q\" 'a'</p:Name></p:Op></s:Body></s:Envelope>",
            crate::soap::SOAP12_ENVELOPE
        );
        let envelope = crate::soap::parse_envelope(&envelope).unwrap();
        let star = StarHeaders {
            active_organisation: Some(crate::soap::ActiveOrganisation {
                organisation_type: Some("8".into()),
                organisation_code: Some("1<0>1".into()),
            }),
            request_user: None,
        };
        let headers = http::HeaderMap::new();
        let facts = RequestFacts {
            service: Some("Svc"),
            supplier: None,
            category: None,
            operation: &envelope.operation,
            version: envelope.version,
            path: "/a/b&c",
            headers: &headers,
            identity: None,
            star: &star,
            now: time::macros::datetime!(2026-11-27 10:00:00.123456 UTC),
        };
        let runtime = Arc::new(Runtime::default());
        let sources = [
            "<a xmlns=\"{{ namespace }}\">{{ operation }} {{soap_version}} {{ envelope_namespace }}</a>\n",
            "{{ path }}|{{ call_number }}|{{ now() }}|{{ guid() }}|{{ receipt() }}|{{ receipt() }}\r\n",
            "{{ request('Op/Cpr') }}/{{ request(\"*/Name\") }}/{{ request('Other/Cpr') }}/{{ request('Op/None') }}",
            "{{ star.organisation_code }}{{ star.organisation_type }}{{ star.user_email }}{{ caller.cvr }}{{ caller.id }}",
            "no values at all\n\n",
            "",
            include_str!("../../scenarios/save-availability-assessment.xml"),
            include_str!("../../scenarios/person-status.xml"),
            include_str!("../../scenarios/citizen-status.xml"),
            include_str!("../../scenarios/code-list.xml"),
        ];
        for (index, source) in sources.iter().enumerate() {
            let plain = Plain::compile(source);
            if index < 6 {
                assert!(plain.is_some(), "{source:?} should be plain");
            }
            let Some(plain) = plain else { continue };
            let mut minijinja = Templates::new();
            minijinja.add("t", (*source).to_owned(), "t", 1).unwrap();
            minijinja.plain.clear();
            let context = CallContext::new(&facts, &runtime, "caller", 3);
            let expected = minijinja.render("t", &context).unwrap();
            assert_eq!(
                context.receipts().len(),
                source.matches("receipt()").count()
            );
            let context = CallContext::new(&facts, &runtime, "caller", 3);
            let rendered = plain.render(&context);
            assert_eq!(
                without_guids(&rendered),
                without_guids(&expected),
                "{source:?}"
            );
            assert_eq!(
                context.receipts().len(),
                source.matches("receipt()").count()
            );
            for receipt in context.receipts() {
                assert!(rendered.contains(&receipt), "{rendered}");
            }
        }
    }

    #[test]
    fn templates_that_need_minijinja_are_not_plain() {
        for source in [
            "{% if call_number > 1 %}again{% endif %}",
            "{# a comment #}x",
            "{{ operation|upper }}",
            "{{- operation }}",
            "{{ operation -}}",
            "{{ call_number + 1 }}",
            "{{ now(offset='-1d') }}",
            "{{ state('bucket', request('Op/Cpr')) }}",
            "{{ request('Op/C\\'pr') }}",
            "{{ caller.unknown }}",
            "{{ nothing }}",
        ] {
            assert_eq!(Plain::compile(source), None, "{source:?}");
        }
        // The shipped registration receipt is plain.
        assert!(Plain::compile(include_str!(
            "../../scenarios/save-availability-assessment.xml"
        ))
        .is_some());
    }

    #[test]
    fn offsets_parse() {
        assert_eq!(parse_offset("-1d"), Some(time::Duration::days(-1)));
        assert_eq!(parse_offset("+2h"), Some(time::Duration::hours(2)));
        assert_eq!(parse_offset("30m"), Some(time::Duration::minutes(30)));
        assert_eq!(parse_offset("soon"), None);
    }
}

//! Rule files → compiled rules. The TOML shape ([`RawRule`] and friends) is read with spans, so
//! every problem is reported as `file:line:col: what was expected`; compiling turns it into
//! [`Rule`]s whose regexes, paths, header names and templates are ready to use, indexed by the
//! services and operations they name. A [`Spec`] that exists is valid.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use toml::Spanned;

use super::matching::{
    CallCount, CallerField, Conditions, PathPatterns, RuleIndex, StarField, StateCondition,
    TextMatcher, ValueMatcher, ValuePath,
};
use super::names::{dfdg_message, unknown_name};
use super::template::Templates;
use super::ConnectionFault;
use crate::position::Position;
use crate::soap::{FaultParty, SoapVersion};

/// One problem in a rule file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file, as given (folder joined with the file name).
    pub file: String,
    pub at: Option<Position>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(
                f,
                "{}:{}:{}: {}",
                self.file, at.line, at.column, self.message
            ),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why a scenario folder cannot be used; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The files read (relative to the folder).
    pub files: Vec<String>,
    pub problems: Vec<Problem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.problems.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// The compiled rules of a folder, ordered by priority (highest first), then file and rule order.
#[derive(Debug)]
pub struct Spec {
    pub(crate) rules: Vec<Rule>,
    files: Vec<String>,
    pub(crate) templates: Templates,
    /// Every request path some rule matches on or keys its state by.
    pub(crate) value_paths: Vec<ValuePath>,
    /// The regexes the rules apply to each of `value_paths`, as one set per path.
    pub(crate) patterns: Vec<Option<PathPatterns>>,
    /// Which rules a request of a service and operation can meet.
    pub(crate) index: RuleIndex,
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub file: Arc<str>,
    pub name: Arc<str>,
    /// `file#name`: the key of this rule's per-caller counters.
    pub key: Arc<str>,
    pub priority: i64,
    /// Where the rule starts, for messages.
    pub at: Position,
    pub(crate) when: Conditions,
    pub(crate) respond: Respond,
}

/// A compiled `[rule.respond]`.
#[derive(Debug)]
pub(crate) struct Respond {
    pub status: Option<u16>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Body,
    pub delay: Option<Delay>,
    pub connection: Option<ConnectionFault>,
    pub set_state: Vec<SetState>,
}

#[derive(Debug)]
pub(crate) enum Body {
    Default,
    /// A template registered under this name.
    Template(String),
    Fault {
        party: FaultParty,
        code: i64,
        message: String,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Delay {
    Fixed(Duration),
    Between(Duration, Duration),
}

/// `set_state`: store a rendered value under a key taken from the request.
#[derive(Debug)]
pub(crate) struct SetState {
    pub bucket: String,
    /// Index into `Spec::value_paths`.
    pub key: usize,
    /// A template name.
    pub value: String,
}

// ---- The TOML shape --------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default, rename = "rule")]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    #[serde(default)]
    priority: i64,
    #[serde(default)]
    when: RawWhen,
    #[serde(default)]
    respond: RawRespond,
}

type RawText = Spanned<toml::Value>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    service: Option<RawText>,
    /// The registered supplier of the certificate (onboarding registry).
    supplier: Option<RawText>,
    /// Its category: small, medium, large.
    category: Option<RawText>,
    operation: Option<RawText>,
    soap_version: Option<Spanned<String>>,
    path: Option<RawText>,
    #[serde(default)]
    headers: BTreeMap<String, RawText>,
    #[serde(default)]
    caller: BTreeMap<String, RawText>,
    #[serde(default)]
    star: BTreeMap<String, RawText>,
    #[serde(default)]
    values: BTreeMap<String, RawText>,
    call: Option<Spanned<RawCall>>,
    state: Option<Spanned<RawStateCondition>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    nth: Option<u64>,
    every: Option<u64>,
    first: Option<u64>,
    after: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStateCondition {
    bucket: String,
    key: Spanned<String>,
    #[serde(default = "yes")]
    exists: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRespond {
    status: Option<Spanned<u16>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    body: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    fault: Option<Spanned<RawFault>>,
    delay: Option<Spanned<toml::Value>>,
    connection: Option<Spanned<String>>,
    #[serde(default)]
    set_state: Vec<Spanned<RawSetState>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    code: i64,
    message: Option<String>,
    party: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetState {
    bucket: String,
    key: Spanned<String>,
    value: Spanned<String>,
}

// ---- Loading and compiling ---------------------------------------------------------------------

/// One file being compiled: its name and text, and the problems found so far.
struct Source<'a> {
    label: &'a str,
    text: &'a str,
    problems: &'a mut Vec<Problem>,
}

impl Source<'_> {
    fn problem(&mut self, span: Option<std::ops::Range<usize>>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.label.to_owned(),
            at: span.map(|span| Position::of_offset(self.text, span.start)),
            message: message.into(),
        });
    }
}

impl Spec {
    /// No rules.
    pub fn empty() -> Spec {
        Spec {
            rules: Vec::new(),
            files: Vec::new(),
            templates: Templates::new(),
            value_paths: Vec::new(),
            patterns: Vec::new(),
            index: RuleIndex::default(),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule files read, relative to their folder, in load order.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Reads every `*.toml` in `dir` (in file-name order) and compiles it.
    pub fn load_dir(dir: &Path) -> Result<Spec, LoadError> {
        let mut names = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|error| LoadError {
            files: Vec::new(),
            problems: vec![Problem {
                file: dir.display().to_string(),
                at: None,
                message: format!("cannot read the scenario folder: {error}"),
            }],
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for name in &names {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((name.clone(), text)),
                Err(error) => problems.push(Problem {
                    file: path.display().to_string(),
                    at: None,
                    message: format!("cannot read: {error}"),
                }),
            }
        }
        let borrowed: Vec<(&str, &str)> = sources
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        let result = Spec::compile(dir, &borrowed);
        match result {
            Ok(spec) if problems.is_empty() => Ok(spec),
            Ok(_) => Err(LoadError {
                files: names,
                problems,
            }),
            Err(mut error) => {
                problems.append(&mut error.problems);
                Err(LoadError {
                    files: names,
                    problems,
                })
            }
        }
    }

    /// Compiles rule files given as `(file name, text)`; templates named by `template = "…"`
    /// are read from `dir`.
    pub fn compile(dir: &Path, files: &[(&str, &str)]) -> Result<Spec, LoadError> {
        let mut problems = Vec::new();
        let mut spec = Spec::empty();
        for (name, text) in files {
            spec.files.push((*name).to_owned());
            let label = dir.join(name).display().to_string();
            let mut source = Source {
                label: &label,
                text,
                problems: &mut problems,
            };
            let raw: RawFile = match toml::from_str(text) {
                Ok(raw) => raw,
                Err(error) => {
                    source.problem(error.span(), error.message().trim());
                    continue;
                }
            };
            let file: Arc<str> = Arc::from(*name);
            let mut seen = HashMap::new();
            for raw_rule in raw.rules {
                let span = raw_rule.span();
                let raw_rule = raw_rule.into_inner();
                let rule_name = raw_rule.name.get_ref().trim().to_owned();
                if rule_name.is_empty() || rule_name == "default" {
                    source.problem(
                        Some(raw_rule.name.span()),
                        "a rule needs a name other than \"\" and \"default\"",
                    );
                    continue;
                }
                if seen.insert(rule_name.clone(), ()).is_some() {
                    source.problem(
                        Some(raw_rule.name.span()),
                        format!("a second rule named \"{rule_name}\" in this file: rule names must be unique per file"),
                    );
                    continue;
                }
                let key: Arc<str> = Arc::from(format!("{name}#{rule_name}"));
                let when = spec.compile_when(&mut source, raw_rule.when);
                let respond = spec.compile_respond(&mut source, dir, &key, raw_rule.respond);
                if let (Some(when), Some(respond)) = (when, respond) {
                    spec.rules.push(Rule {
                        file: file.clone(),
                        name: Arc::from(rule_name),
                        key,
                        priority: raw_rule.priority,
                        at: Position::of_offset(text, span.start),
                        when,
                        respond,
                    });
                }
            }
        }
        if !problems.is_empty() {
            return Err(LoadError {
                files: spec.files,
                problems,
            });
        }
        // Stable: equal priorities keep file order.
        spec.rules
            .sort_by_key(|rule| std::cmp::Reverse(rule.priority));
        spec.patterns = match PathPatterns::gather(&mut spec.rules, spec.value_paths.len()) {
            Ok(patterns) => patterns,
            Err(unbuilt) => {
                let problems = unbuilt
                    .into_iter()
                    .map(|(position, message)| {
                        let rule = &spec.rules[position];
                        Problem {
                            file: dir.join(&*rule.file).display().to_string(),
                            at: Some(rule.at),
                            message: format!("rule \"{}\": {message}", rule.name),
                        }
                    })
                    .collect();
                return Err(LoadError {
                    files: spec.files,
                    problems,
                });
            }
        };
        spec.index = RuleIndex::new(&spec.rules);
        Ok(spec)
    }

    /// The index of a request path, registering it if new. Paths are local names from the
    /// operation element down, separated by `/`.
    fn value_path(&mut self, source: &mut Source<'_>, path: &Spanned<String>) -> Option<usize> {
        let text = path.get_ref().trim().trim_start_matches('/');
        if text.is_empty() || text.split('/').any(|segment| segment.trim().is_empty()) {
            source.problem(
                Some(path.span()),
                format!("\"{}\" is not a request path: write local element names from the operation down, e.g. GetVariablePersonStatus/CivilRegistrationIdentifier, or */CivilRegistrationIdentifier for any operation", path.get_ref()),
            );
            return None;
        }
        if let Some(index) = self
            .value_paths
            .iter()
            .position(|known| &*known.text == text)
        {
            return Some(index);
        }
        self.value_paths.push(ValuePath::parse(text));
        Some(self.value_paths.len() - 1)
    }

    fn compile_when(&mut self, source: &mut Source<'_>, raw: RawWhen) -> Option<Conditions> {
        let before = source.problems.len();
        let mut when = Conditions {
            service: raw.service.as_ref().and_then(|t| text_matcher(source, t)),
            supplier: raw.supplier.as_ref().and_then(|t| text_matcher(source, t)),
            category: raw.category.as_ref().and_then(|t| text_matcher(source, t)),
            operation: raw.operation.as_ref().and_then(|t| text_matcher(source, t)),
            path: raw.path.as_ref().and_then(|t| text_matcher(source, t)),
            ..Conditions::default()
        };
        if let Some(version) = &raw.soap_version {
            match version.get_ref().trim() {
                "1.1" => when.version = Some(SoapVersion::V11),
                "1.2" => when.version = Some(SoapVersion::V12),
                other => source.problem(
                    Some(version.span()),
                    format!("soap_version \"{other}\": expected \"1.1\" or \"1.2\""),
                ),
            }
        }
        for (name, matcher) in &raw.headers {
            match HeaderName::from_bytes(name.trim().as_bytes()) {
                Ok(header) => {
                    if let Some(matcher) = text_matcher(source, matcher) {
                        when.headers.push((header, matcher));
                    }
                }
                Err(_) => source.problem(
                    Some(matcher.span()),
                    format!("\"{name}\" is not an HTTP header name"),
                ),
            }
        }
        for (name, matcher) in &raw.caller {
            match CallerField::parse(name) {
                Some(field) => {
                    if let Some(matcher) = text_matcher(source, matcher) {
                        when.caller.push((field, matcher));
                    }
                }
                None => source.problem(
                    Some(matcher.span()),
                    unknown_name("caller field", name, CallerField::NAMES),
                ),
            }
        }
        for (name, matcher) in &raw.star {
            match StarField::parse(name) {
                Some(field) => {
                    if let Some(matcher) = text_matcher(source, matcher) {
                        when.star.push((field, matcher));
                    }
                }
                None => source.problem(
                    Some(matcher.span()),
                    unknown_name("STAR header field", name, StarField::NAMES),
                ),
            }
        }
        for (path, matcher) in &raw.values {
            let spanned = Spanned::new(matcher.span(), path.clone());
            let index = self.value_path(source, &spanned);
            if let (Some(index), Some(matcher)) = (index, value_matcher(source, matcher)) {
                when.values.push((index, matcher));
            }
        }
        if let Some(call) = &raw.call {
            let RawCall {
                nth,
                every,
                first,
                after,
            } = call.get_ref();
            let given: Vec<CallCount> = [
                nth.map(CallCount::Nth),
                every.map(CallCount::Every),
                first.map(CallCount::First),
                after.map(CallCount::After),
            ]
            .into_iter()
            .flatten()
            .collect();
            match given.as_slice() {
                [CallCount::Nth(0) | CallCount::Every(0)] => source.problem(
                    Some(call.span()),
                    "call counts start at 1: nth and every must be at least 1",
                ),
                [count] => when.call = Some(*count),
                _ => source.problem(
                    Some(call.span()),
                    "call: give exactly one of nth, every, first or after",
                ),
            }
        }
        if let Some(state) = &raw.state {
            let state_ref = state.get_ref();
            if let Some(key) = self.value_path(source, &state_ref.key) {
                when.state = Some(StateCondition {
                    bucket: state_ref.bucket.clone(),
                    key,
                    exists: state_ref.exists,
                });
            }
        }
        (source.problems.len() == before).then_some(when)
    }

    fn compile_respond(
        &mut self,
        source: &mut Source<'_>,
        dir: &Path,
        key: &str,
        raw: RawRespond,
    ) -> Option<Respond> {
        let before = source.problems.len();
        let mut respond = Respond {
            status: None,
            headers: Vec::new(),
            body: Body::Default,
            delay: None,
            connection: None,
            set_state: Vec::new(),
        };
        if let Some(status) = &raw.status {
            if (100..=599).contains(status.get_ref()) {
                respond.status = Some(*status.get_ref());
            } else {
                source.problem(
                    Some(status.span()),
                    "status: expected an HTTP status from 100 to 599",
                );
            }
        }
        for (name, value) in &raw.headers {
            match (
                HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_str(value.get_ref()),
            ) {
                (Ok(name), Ok(value)) => respond.headers.push((name, value)),
                _ => source.problem(
                    Some(value.span()),
                    format!("header \"{name}\": expected a valid HTTP header name and a visible-ASCII value"),
                ),
            }
        }
        let given = [
            raw.body.is_some(),
            raw.template.is_some(),
            raw.fault.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            source.problem(
                raw.body
                    .as_ref()
                    .map(Spanned::span)
                    .or(raw.template.as_ref().map(Spanned::span))
                    .or(raw.fault.as_ref().map(Spanned::span)),
                "respond: give at most one of body, template and fault",
            );
        } else if let Some(body) = &raw.body {
            let name = format!("{key}.body.xml");
            let first_line = content_line(source.text, body.span());
            match self
                .templates
                .add(&name, body.get_ref().clone(), source.label, first_line)
            {
                Ok(()) => respond.body = Body::Template(name),
                Err(message) => source.problem(Some(body.span()), message),
            }
        } else if let Some(template) = &raw.template {
            let relative = template.get_ref();
            let path = dir.join(relative);
            if relative.contains("..") || Path::new(relative).is_absolute() {
                source.problem(
                    Some(template.span()),
                    "template: expected a file name in the scenario folder (no .. or absolute paths)",
                );
            } else {
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        let label = path.display().to_string();
                        match self.templates.add(relative, text, &label, 1) {
                            Ok(()) => respond.body = Body::Template(relative.clone()),
                            Err(message) => source.problem(Some(template.span()), message),
                        }
                    }
                    Err(error) => source.problem(
                        Some(template.span()),
                        format!("cannot read template {}: {error}", path.display()),
                    ),
                }
            }
        } else if let Some(fault) = &raw.fault {
            let RawFault {
                code,
                message,
                party,
            } = fault.get_ref();
            let party = match party.as_deref() {
                None => default_party(*code),
                Some("caller" | "client" | "sender") => FaultParty::Caller,
                Some("service" | "server" | "receiver") => FaultParty::Service,
                Some(other) => {
                    source.problem(
                        Some(fault.span()),
                        format!("fault party \"{other}\": expected \"caller\" or \"service\""),
                    );
                    FaultParty::Caller
                }
            };
            let message = match message {
                Some(message) => message.clone(),
                None => match dfdg_message(*code) {
                    Some(message) => message.to_owned(),
                    None => {
                        source.problem(
                            Some(fault.span()),
                            format!("fault code {code} is not a DFDG code this mock knows: give a message"),
                        );
                        String::new()
                    }
                },
            };
            respond.body = Body::Fault {
                party,
                code: *code,
                message,
            };
        }
        if let Some(delay) = &raw.delay {
            respond.delay = parse_delay(delay.get_ref())
                .map_err(|message| source.problem(Some(delay.span()), message))
                .ok();
        }
        if let Some(connection) = &raw.connection {
            let text = connection.get_ref().trim();
            match ConnectionFault::ALL.iter().find(|f| f.as_str() == text) {
                Some(fault) => respond.connection = Some(*fault),
                None => source.problem(
                    Some(connection.span()),
                    unknown_name(
                        "connection fault",
                        text,
                        &ConnectionFault::ALL.map(ConnectionFault::as_str),
                    ),
                ),
            }
        }
        for (index, set) in raw.set_state.iter().enumerate() {
            let set = set.get_ref();
            let Some(key_index) = self.value_path(source, &set.key) else {
                continue;
            };
            let name = format!("{key}.set_state.{index}");
            let first_line = content_line(source.text, set.value.span());
            match self
                .templates
                .add(&name, set.value.get_ref().clone(), source.label, first_line)
            {
                Ok(()) => respond.set_state.push(SetState {
                    bucket: set.bucket.clone(),
                    key: key_index,
                    value: name,
                }),
                Err(message) => source.problem(Some(set.value.span()), message),
            }
        }
        (source.problems.len() == before).then_some(respond)
    }

    /// Problems with the services and operations the rules name, given the catalog's
    /// `(service, operation)` pairs. Only literal names (equals, one-of) are checked.
    pub fn check_against(&self, known: &[(String, String)]) -> Vec<String> {
        let mut problems = Vec::new();
        let services: Vec<&str> = known.iter().map(|(s, _)| s.as_str()).collect();
        for rule in &self.rules {
            let named_services = rule
                .when
                .service
                .as_ref()
                .map(TextMatcher::literals)
                .unwrap_or_default();
            for service in &named_services {
                if !services.contains(service) {
                    problems.push(format!(
                        "{}:{}:{}: rule \"{}\": {}",
                        rule.file,
                        rule.at.line,
                        rule.at.column,
                        rule.name,
                        unknown_name("service", service, &services)
                    ));
                }
            }
            let operations: Vec<&str> = known
                .iter()
                .filter(|(s, _)| named_services.is_empty() || named_services.contains(&s.as_str()))
                .map(|(_, o)| o.as_str())
                .collect();
            if let Some(operation) = &rule.when.operation {
                for name in operation.literals() {
                    if !operations.contains(&name) {
                        problems.push(format!(
                            "{}:{}:{}: rule \"{}\": {}",
                            rule.file,
                            rule.at.line,
                            rule.at.column,
                            rule.name,
                            unknown_name("operation", name, &operations)
                        ));
                    }
                }
            }
        }
        problems
    }
}

/// The line of a string value's first content line: the line after `"""` when the value
/// starts with a line break.
fn content_line(text: &str, span: std::ops::Range<usize>) -> usize {
    let line = Position::of_offset(text, span.start).line;
    let raw = text.get(span).unwrap_or_default();
    let opens_multiline = ["\"\"\"\n", "'''\n", "\"\"\"\r\n", "'''\r\n"]
        .iter()
        .any(|opening| raw.starts_with(opening));
    if opens_multiline {
        line + 1
    } else {
        line
    }
}

/// Who a DFDG fault code blames when the rule does not say.
fn default_party(code: i64) -> FaultParty {
    match code {
        1011 | 1100 => FaultParty::Service,
        _ => FaultParty::Caller,
    }
}

fn parse_delay(value: &toml::Value) -> Result<Delay, String> {
    let duration = |value: &toml::Value| -> Result<Duration, String> {
        match value {
            toml::Value::String(text) => text
                .parse::<crate::config::Seconds>()
                .map(|s| s.0)
                .map_err(|e| format!("delay: {e}")),
            toml::Value::Integer(ms) if *ms >= 0 => Ok(Duration::from_millis(ms.unsigned_abs())),
            _ => Err("delay: expected a duration such as \"250ms\" or \"2s\"".to_owned()),
        }
    };
    match value {
        toml::Value::Table(table) => {
            let (Some(min), Some(max), 2) = (table.get("min"), table.get("max"), table.len())
            else {
                return Err(
                    "delay: expected a duration (\"250ms\") or { min = \"100ms\", max = \"1s\" }"
                        .to_owned(),
                );
            };
            let (min, max) = (duration(min)?, duration(max)?);
            if min > max {
                return Err("delay: min is larger than max".to_owned());
            }
            Ok(Delay::Between(min, max))
        }
        other => duration(other).map(Delay::Fixed),
    }
}

/// A condition on a request value: as [`text_matcher`], but a regex is only checked here and
/// built with the other regexes on its path ([`PathPatterns::gather`]).
fn value_matcher(source: &mut Source<'_>, raw: &RawText) -> Option<ValueMatcher> {
    let regex = raw
        .get_ref()
        .as_table()
        .filter(|table| table.len() == 1)
        .and_then(|table| table.get("regex"))
        .and_then(toml::Value::as_str);
    let Some(pattern) = regex else {
        return text_matcher(source, raw).map(ValueMatcher::Text);
    };
    match regex_syntax::Parser::new().parse(pattern) {
        Ok(_) => Some(ValueMatcher::Unbuilt(Box::from(pattern))),
        Err(error) => {
            source.problem(Some(raw.span()), invalid_regex(pattern, &error.to_string()));
            None
        }
    }
}

/// "invalid regex \"(\": error: unclosed group": the last line of the regex crate's message.
fn invalid_regex(pattern: &str, error: &str) -> String {
    let reason = error.lines().last().unwrap_or_default().trim();
    format!("invalid regex {pattern:?}: {reason}")
}

/// A string (equals), a list (one of), or a table `{ equals | one_of | regex | exists }`.
fn text_matcher(source: &mut Source<'_>, raw: &RawText) -> Option<TextMatcher> {
    const EXPECTED: &str = "expected a string (equals), a list of strings (one of), or a table with one of equals, one_of, regex, exists";
    let strings = |value: &toml::Value| -> Option<Vec<Box<str>>> {
        value
            .as_array()?
            .iter()
            .map(|item| item.as_str().map(Box::from))
            .collect()
    };
    let matcher = match raw.get_ref() {
        toml::Value::String(text) => Some(TextMatcher::Equals(Box::from(text.as_str()))),
        toml::Value::Integer(number) => Some(TextMatcher::Equals(Box::from(number.to_string()))),
        value @ toml::Value::Array(_) => {
            strings(value).map(|options| TextMatcher::OneOf(options.into_boxed_slice()))
        }
        toml::Value::Table(table) if table.len() == 1 => {
            let (kind, value) = table.iter().next()?;
            match (kind.as_str(), value) {
                ("equals", toml::Value::String(text)) => {
                    Some(TextMatcher::Equals(Box::from(text.as_str())))
                }
                ("one_of", value) => {
                    strings(value).map(|options| TextMatcher::OneOf(options.into_boxed_slice()))
                }
                ("exists", toml::Value::Boolean(exists)) => Some(TextMatcher::Exists(*exists)),
                ("regex", toml::Value::String(pattern)) => match regex::Regex::new(pattern) {
                    Ok(regex) => Some(TextMatcher::Regex(regex)),
                    Err(error) => {
                        source
                            .problem(Some(raw.span()), invalid_regex(pattern, &error.to_string()));
                        return None;
                    }
                },
                (other, _) => {
                    let message = if ["equals", "one_of", "exists", "regex"].contains(&other) {
                        format!("\"{other}\" has the wrong type: {EXPECTED}")
                    } else {
                        unknown_name("matcher", other, &["equals", "one_of", "regex", "exists"])
                    };
                    source.problem(Some(raw.span()), message);
                    return None;
                }
            }
        }
        _ => None,
    };
    if matcher.is_none() {
        source.problem(Some(raw.span()), EXPECTED);
    }
    matcher
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> Result<Spec, LoadError> {
        Spec::compile(Path::new("scenarios"), &[("a.toml", text)])
    }

    fn error(text: &str) -> String {
        compile(text).expect_err("should be refused").to_string()
    }

    #[test]
    fn rules_are_ordered_by_priority_then_file_order() {
        let spec = compile(
            r#"
[[rule]]
name = "first"
[[rule]]
name = "urgent"
priority = 5
[[rule]]
name = "second"
"#,
        )
        .unwrap();
        let names: Vec<&str> = spec.rules().iter().map(|r| &*r.name).collect();
        assert_eq!(names, ["urgent", "first", "second"]);
        assert_eq!(spec.rules()[0].at.line, 4);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let message = error(
            "[[rule]]\nname = \"x\"\n[rule.when]\nvalues = { \"Op/Cpr\" = { regex = \"(\" } }\n",
        );
        assert!(
            message
                .starts_with("scenarios/a.toml:4:23: invalid regex \"(\": error: unclosed group"),
            "{message}"
        );
        let message = error("[[rule]]\nname = \"x\"\nwhen = { opration = \"Op\" }\n");
        assert!(message.starts_with("scenarios/a.toml:3:"), "{message}");
        assert!(message.contains("opration"), "{message}");
        let message = error("[[rule]]\nname = \"x\"\n[rule.when.caller]\ncommon_nme = \"A\"\n");
        assert!(
            message.contains("did you mean \"common_name\""),
            "{message}"
        );
        assert!(message.starts_with("scenarios/a.toml:4:14:"), "{message}");
        let message = error("[[rule]]\nname = \"x\"\n[rule.respond]\nconnection = \"rest\"\n");
        assert!(message.contains("did you mean \"reset\""), "{message}");
        let message = error(
            "[[rule]]\nname = \"x\"\n[rule.respond]\nbody = \"\"\"\n<a>\n{{ oops( }}\n</a>\"\"\"\n",
        );
        assert!(message.contains("template syntax error"), "{message}");
        assert!(message.contains("file line 6"), "{message}");
        let message = error("[[rule]]\nname = \"x\"\n[rule.respond]\nfault = { code = 77 }\n");
        assert!(message.contains("give a message"), "{message}");
        let message = error("[[rule]]\nname = \"x\"\n[[rule]]\nname = \"x\"\n");
        assert!(message.contains("second rule named"), "{message}");
    }

    #[test]
    fn every_problem_is_reported() {
        let message = error("[[rule]]\nname = \"x\"\n[rule.when]\nsoap_version = \"1.3\"\npath = { regex = \"[\" }\n");
        assert_eq!(message.lines().count(), 2, "{message}");
    }

    #[test]
    fn check_against_the_catalog_suggests_names() {
        let spec = compile(
            "[[rule]]\nname = \"x\"\nwhen = { service = \"PersonStatusService\", operation = \"GetVariablePersonStatu\" }\n",
        )
        .unwrap();
        let known = vec![
            (
                "PersonStatusService".to_owned(),
                "GetVariablePersonStatus".to_owned(),
            ),
            (
                "JobcenterMessageService".to_owned(),
                "SaveAvailabilityAssessment".to_owned(),
            ),
        ];
        let problems = spec.check_against(&known);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("did you mean \"GetVariablePersonStatus\""),
            "{problems:?}"
        );
        assert!(problems[0].starts_with("a.toml:1:1"), "{problems:?}");
    }
}

//! Matching a request against the compiled rules: pure and synchronous. A request is tested only
//! against the rules its service and operation can meet ([`RuleIndex`], built when the rules
//! are compiled); the values those rules name are looked up once each in the request's parsed
//! operation element ([`RequestValues`]). Matching reads the per-caller counters and state and
//! changes neither: what the call advances comes back as [`Effect`]s, applied once the call is
//! journaled.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::spec::{Body, Delay, PushSubject, Rule, Spec};
use super::template::CallContext;
use super::{Choice, Decision, Effect, RequestFacts, RuleRef, Runtime, ScriptedAnswer};
use crate::soap::{Fault, SoapVersion};
use crate::wsdl::xml::Element;

/// A condition on one text value.
#[derive(Debug)]
pub enum TextMatcher {
    Equals(Box<str>),
    OneOf(Box<[Box<str>]>),
    Regex(regex::Regex),
    /// `true`: the value is present (any text); `false`: it is absent.
    Exists(bool),
}

impl TextMatcher {
    pub fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (TextMatcher::Exists(exists), value) => *exists == value.is_some(),
            (_, None) => false,
            (TextMatcher::Equals(expected), Some(value)) => **expected == *value,
            (TextMatcher::OneOf(options), Some(value)) => {
                options.iter().any(|option| **option == *value)
            }
            (TextMatcher::Regex(regex), Some(value)) => regex.is_match(value),
        }
    }

    /// The literal names this matcher accepts (equals, one-of), for checking against a catalog.
    pub fn literals(&self) -> Vec<&str> {
        match self {
            TextMatcher::Equals(text) => vec![text],
            TextMatcher::OneOf(options) => options.iter().map(|o| &**o).collect(),
            TextMatcher::Regex(_) | TextMatcher::Exists(_) => Vec::new(),
        }
    }
}

/// A condition on a request value: a text matcher, or a regex that is evaluated together with
/// the other rules' regexes on the same path, in one pass ([`PathPatterns`]).
#[derive(Debug)]
pub enum ValueMatcher {
    Text(TextMatcher),
    /// The `n`-th pattern of the path's set.
    Pattern(usize),
    /// A regex whose syntax was checked, while the rules are compiled: [`PathPatterns::gather`]
    /// turns each into a `Pattern` or a compiled `Text` regex.
    Unbuilt(Box<str>),
}

impl ValueMatcher {
    /// Whether the request's value at path `index` meets this condition.
    pub fn matches(&self, index: usize, values: &RequestValues<'_, '_>) -> bool {
        match self {
            ValueMatcher::Text(matcher) => matcher.matches(values.get(index)),
            ValueMatcher::Pattern(member) => values.matches_pattern(index, *member),
            // Built before the spec is in use.
            ValueMatcher::Unbuilt(_) => false,
        }
    }
}

/// Every regex the rules apply to one request path, as one `RegexSet`.
#[derive(Debug)]
pub struct PathPatterns {
    set: regex::RegexSet,
}

impl PathPatterns {
    /// Builds the regexes of the value conditions of `rules`: one set per path with several,
    /// a single regex where there is one (or the set exceeds the size limits). The regexes that
    /// cannot be built are returned by rule position, with why.
    pub fn gather(
        rules: &mut [Rule],
        paths: usize,
    ) -> Result<Vec<Option<PathPatterns>>, Vec<(usize, String)>> {
        let mut patterns: Vec<Vec<&str>> = vec![Vec::new(); paths];
        for rule in rules.iter() {
            for (path, matcher) in &rule.when.values {
                if let ValueMatcher::Unbuilt(pattern) = matcher {
                    patterns[*path].push(pattern);
                }
            }
        }
        let sets: Vec<Option<PathPatterns>> = patterns
            .iter()
            .map(|patterns| {
                let set = (patterns.len() > 1).then(|| regex::RegexSet::new(patterns).ok())??;
                Some(PathPatterns { set })
            })
            .collect();
        let mut next = vec![0usize; paths];
        let mut problems = Vec::new();
        for (position, rule) in rules.iter_mut().enumerate() {
            for (path, matcher) in &mut rule.when.values {
                let ValueMatcher::Unbuilt(pattern) = matcher else {
                    continue;
                };
                if sets[*path].is_some() {
                    *matcher = ValueMatcher::Pattern(next[*path]);
                    next[*path] += 1;
                    continue;
                }
                match regex::Regex::new(pattern) {
                    Ok(regex) => *matcher = ValueMatcher::Text(TextMatcher::Regex(regex)),
                    Err(error) => problems.push((position, format!("regex {pattern:?}: {error}"))),
                }
            }
        }
        if problems.is_empty() {
            Ok(sets)
        } else {
            Err(problems)
        }
    }
}

/// Fields of the caller's certificate identity a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerField {
    Id,
    Cvr,
    Kind,
    CommonName,
    Organisation,
    Subject,
    Issuer,
    Serial,
    Fingerprint,
}

impl CallerField {
    pub const NAMES: &'static [&'static str] = &[
        "id",
        "cvr",
        "kind",
        "common_name",
        "organisation",
        "subject",
        "issuer",
        "serial",
        "fingerprint",
    ];

    pub fn parse(name: &str) -> Option<CallerField> {
        Some(match name {
            "id" => CallerField::Id,
            "cvr" => CallerField::Cvr,
            "kind" => CallerField::Kind,
            "common_name" => CallerField::CommonName,
            "organisation" => CallerField::Organisation,
            "subject" => CallerField::Subject,
            "issuer" => CallerField::Issuer,
            "serial" => CallerField::Serial,
            "fingerprint" => CallerField::Fingerprint,
            _ => return None,
        })
    }

    pub(crate) fn value(self, identity: &crate::identity::CallerIdentity) -> Option<&str> {
        match self {
            CallerField::Id => Some(&identity.caller_id),
            CallerField::Cvr => identity.cvr.as_deref(),
            CallerField::Kind => Some(kind_name(identity.kind)),
            CallerField::CommonName => identity.common_name.as_deref(),
            CallerField::Organisation => identity.organisation.as_deref(),
            CallerField::Subject => Some(&identity.subject),
            CallerField::Issuer => Some(&identity.issuer),
            CallerField::Serial => Some(&identity.serial),
            CallerField::Fingerprint => Some(&identity.fingerprint),
        }
    }
}

/// The snake_case name of a certificate shape, as in the journal's JSON: `oces3_organisation`,
/// `oces3_person`, `oces2_function`, `oces2_company`, `oces2_employee`, `other`.
pub fn kind_name(kind: crate::identity::IdentityKind) -> &'static str {
    use crate::identity::IdentityKind;
    match kind {
        IdentityKind::Oces3Organisation => "oces3_organisation",
        IdentityKind::Oces3Person => "oces3_person",
        IdentityKind::Oces2Function => "oces2_function",
        IdentityKind::Oces2Company => "oces2_company",
        IdentityKind::Oces2Employee => "oces2_employee",
        IdentityKind::Other => "other",
    }
}

/// Values of STAR's two caller headers a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StarField {
    OrganisationType,
    OrganisationCode,
    UserFullName,
    UserType,
    UserIdentifier,
    UserEmail,
    UserOrganisationType,
    UserOrganisationCode,
    RegistrationDateTime,
}

impl StarField {
    pub const NAMES: &'static [&'static str] = &[
        "organisation_type",
        "organisation_code",
        "user_full_name",
        "user_type",
        "user_identifier",
        "user_email",
        "user_organisation_type",
        "user_organisation_code",
        "registration_date_time",
    ];

    pub fn parse(name: &str) -> Option<StarField> {
        let index = StarField::NAMES.iter().position(|known| *known == name)?;
        Some(
            [
                StarField::OrganisationType,
                StarField::OrganisationCode,
                StarField::UserFullName,
                StarField::UserType,
                StarField::UserIdentifier,
                StarField::UserEmail,
                StarField::UserOrganisationType,
                StarField::UserOrganisationCode,
                StarField::RegistrationDateTime,
            ][index],
        )
    }

    pub(crate) fn value(self, star: &crate::soap::StarHeaders) -> Option<&str> {
        let organisation = star.active_organisation.as_ref();
        let user = star.request_user.as_ref();
        match self {
            StarField::OrganisationType => organisation?.organisation_type.as_deref(),
            StarField::OrganisationCode => organisation?.organisation_code.as_deref(),
            StarField::UserFullName => user?.user_full_name.as_deref(),
            StarField::UserType => user?.user_type.as_deref(),
            StarField::UserIdentifier => user?.user_identifier.as_deref(),
            StarField::UserEmail => user?.user_email.as_deref(),
            StarField::UserOrganisationType => user?.organisation_type.as_deref(),
            StarField::UserOrganisationCode => user?.organisation_code.as_deref(),
            StarField::RegistrationDateTime => user?.registration_date_time.as_deref(),
        }
    }
}

/// Which of a caller's calls (counted per rule) a rule answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallCount {
    /// Only the n-th.
    Nth(u64),
    /// The n-th, 2n-th, 3n-th, …
    Every(u64),
    /// The first n.
    First(u64),
    /// All after the first n.
    After(u64),
}

impl CallCount {
    fn accepts(self, count: u64) -> bool {
        match self {
            CallCount::Nth(n) => count == n,
            CallCount::Every(n) => n > 0 && count % n == 0,
            CallCount::First(n) => count <= n,
            CallCount::After(n) => count > n,
        }
    }
}

/// `when.state`: whether this caller has a value in `bucket` under the request's key.
#[derive(Debug)]
pub struct StateCondition {
    pub bucket: String,
    /// Index into `Spec::value_paths`.
    pub key: usize,
    pub exists: bool,
}

/// All conditions of a rule; absent ones match anything.
#[derive(Debug, Default)]
pub struct Conditions {
    pub service: Option<TextMatcher>,
    /// The registered supplier of the caller's certificate.
    pub supplier: Option<TextMatcher>,
    /// The supplier's category (`small`, `medium`, `large`).
    pub category: Option<TextMatcher>,
    pub operation: Option<TextMatcher>,
    pub version: Option<SoapVersion>,
    pub path: Option<TextMatcher>,
    pub headers: Vec<(http::HeaderName, TextMatcher)>,
    pub caller: Vec<(CallerField, TextMatcher)>,
    pub star: Vec<(StarField, TextMatcher)>,
    /// Index into `Spec::value_paths`, and the condition on that value.
    pub values: Vec<(usize, ValueMatcher)>,
    pub call: Option<CallCount>,
    pub state: Option<StateCondition>,
}

impl Conditions {
    /// Everything but the call count (which depends on the counters).
    fn matches(
        &self,
        facts: &RequestFacts<'_>,
        values: &RequestValues<'_, '_>,
        runtime: &Runtime,
        caller: &str,
    ) -> bool {
        let text_ok = |matcher: &Option<TextMatcher>, value: Option<&str>| {
            matcher.as_ref().is_none_or(|m| m.matches(value))
        };
        text_ok(&self.operation, Some(&facts.operation.name.local))
            && self.version.is_none_or(|v| v == facts.version)
            && text_ok(&self.path, Some(facts.path))
            && text_ok(&self.service, facts.service)
            && text_ok(&self.supplier, facts.supplier)
            && text_ok(&self.category, facts.category)
            && self.headers.iter().all(|(name, matcher)| {
                matcher.matches(facts.headers.get(name).and_then(|v| v.to_str().ok()))
            })
            && self.caller.iter().all(|(field, matcher)| {
                matcher.matches(facts.identity.and_then(|identity| field.value(identity)))
            })
            && self
                .star
                .iter()
                .all(|(field, matcher)| matcher.matches(field.value(facts.star)))
            && self
                .values
                .iter()
                .all(|(index, matcher)| matcher.matches(*index, values))
            && self.state.as_ref().is_none_or(|state| {
                let present = values
                    .get(state.key)
                    .is_some_and(|key| runtime.state(caller, &state.bucket, key).is_some());
                present == state.exists
            })
    }
}

/// A request path a rule names: local names from the operation element down, the operation's
/// own name first (`None` for `*`, any operation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePath {
    /// As written, trimmed: "GetVariablePersonStatus/CivilRegistrationIdentifier".
    pub text: Box<str>,
    operation: Option<Box<str>>,
    below: Box<[Box<str>]>,
}

impl ValuePath {
    /// "Op/A/B" or "*/A/B"; segments are not empty (the spec checks that).
    pub fn parse(text: &str) -> ValuePath {
        let text = text.trim().trim_start_matches('/');
        let (operation, rest) = text.split_once('/').unwrap_or((text, ""));
        ValuePath {
            text: Box::from(text),
            operation: (operation != "*").then(|| Box::from(operation)),
            below: rest
                .split('/')
                .filter(|segment| !segment.is_empty())
                .map(Box::from)
                .collect(),
        }
    }

    /// The trimmed text of the first element at this path below `operation` (an empty
    /// element's value is ""), or `None` when there is none or the operation is another.
    pub fn find<'e>(&self, operation: &'e Element) -> Option<&'e str> {
        if self
            .operation
            .as_deref()
            .is_some_and(|name| name != operation.name.local)
        {
            return None;
        }
        let below: Vec<&str> = self.below.iter().map(|segment| &**segment).collect();
        operation
            .find_local(&below)
            .map(|element| element.text.trim())
    }
}

/// The request's values at the paths the rules name, each looked up in the parsed operation
/// element the first time a rule asks for it, then kept for the other rules.
#[derive(Debug)]
pub struct RequestValues<'s, 'e> {
    paths: &'s [ValuePath],
    patterns: &'s [Option<PathPatterns>],
    operation: &'e Element,
    found: Vec<OnceCell<Option<&'e str>>>,
    /// Which of the path's patterns its value matches, once a rule asked.
    matched: Vec<OnceCell<regex::SetMatches>>,
}

impl<'s, 'e> RequestValues<'s, 'e> {
    /// The values at `paths` (and their `patterns`) of the operation element `operation`.
    pub fn new(
        paths: &'s [ValuePath],
        patterns: &'s [Option<PathPatterns>],
        operation: &'e Element,
    ) -> RequestValues<'s, 'e> {
        RequestValues {
            paths,
            patterns,
            operation,
            found: (0..paths.len()).map(|_| OnceCell::new()).collect(),
            matched: (0..paths.len()).map(|_| OnceCell::new()).collect(),
        }
    }

    /// Whether the value at path `index` matches the path's pattern `member` (absent values
    /// match nothing).
    pub fn matches_pattern(&self, index: usize, member: usize) -> bool {
        let (Some(value), Some(Some(patterns))) = (self.get(index), self.patterns.get(index))
        else {
            return false;
        };
        self.matched[index]
            .get_or_init(|| patterns.set.matches(value))
            .matched(member)
    }

    /// The value at path `index` (into `Spec::value_paths`).
    pub fn get(&self, index: usize) -> Option<&'e str> {
        let cell = self.found.get(index)?;
        *cell.get_or_init(|| self.paths[index].find(self.operation))
    }
}

/// The rules that can apply to a request, by the literal service and operation names their
/// conditions name (`equals` or `one_of`); rules that name none (or match them by regex or
/// `exists`) are filed under "any". Positions are into the spec's rules, ascending (priority
/// order), so the candidates of a request keep that order.
#[derive(Debug, Default)]
pub struct RuleIndex {
    by_service: HashMap<Box<str>, OperationIndex>,
    any_service: OperationIndex,
}

#[derive(Debug, Default)]
struct OperationIndex {
    by_operation: HashMap<Box<str>, Vec<usize>>,
    any_operation: Vec<usize>,
}

impl OperationIndex {
    fn add(&mut self, operations: &[&str], position: usize) {
        if operations.is_empty() {
            self.any_operation.push(position);
        }
        for operation in operations {
            self.by_operation
                .entry(Box::from(*operation))
                .or_default()
                .push(position);
        }
    }

    fn lists<'a>(&'a self, operation: &str, lists: &mut Vec<&'a [usize]>) {
        if let Some(list) = self.by_operation.get(operation) {
            lists.push(list);
        }
        lists.push(&self.any_operation);
    }
}

impl RuleIndex {
    /// Indexes `rules` (in their final order).
    pub fn new(rules: &[Rule]) -> RuleIndex {
        let mut index = RuleIndex::default();
        for (position, rule) in rules.iter().enumerate() {
            fn literals(matcher: Option<&TextMatcher>) -> Vec<&str> {
                matcher.map(TextMatcher::literals).unwrap_or_default()
            }
            let services = literals(rule.when.service.as_ref());
            let operations = literals(rule.when.operation.as_ref());
            if services.is_empty() {
                index.any_service.add(&operations, position);
            }
            for service in services {
                index
                    .by_service
                    .entry(Box::from(service))
                    .or_default()
                    .add(&operations, position);
            }
        }
        index
    }

    /// The positions of the rules that can match a call of `operation` on `service`, in
    /// priority order, each once.
    pub fn candidates(&self, service: Option<&str>, operation: &str) -> Vec<usize> {
        let mut lists: Vec<&[usize]> = Vec::with_capacity(4);
        if let Some(by_service) = service.and_then(|service| self.by_service.get(service)) {
            by_service.lists(operation, &mut lists);
        }
        self.any_service.lists(operation, &mut lists);
        lists.retain(|list| !list.is_empty());
        match lists.as_slice() {
            [] => Vec::new(),
            [only] => only.to_vec(),
            _ => {
                let mut merged: Vec<usize> = lists.concat();
                merged.sort_unstable();
                // A rule with several literals sits in several lists.
                merged.dedup();
                merged
            }
        }
    }
}

impl Spec {
    /// The first rule (by priority, then file order) that matches, rendered (none: the
    /// default answer), and what the call advances once it is journaled. Reads the runtime
    /// state, changes nothing.
    pub fn decide(&self, facts: &RequestFacts<'_>, runtime: &Arc<Runtime>) -> Choice {
        let mut effects = Vec::new();
        if self.rules.is_empty() {
            return Choice {
                decision: None,
                effects,
            };
        }
        let values = RequestValues::new(&self.value_paths, &self.patterns, facts.operation);
        let caller = facts
            .identity
            .map_or("", |identity| identity.caller_id.as_str());
        let candidates = self
            .index
            .candidates(facts.service, &facts.operation.name.local);
        for position in candidates {
            let rule = &self.rules[position];
            if !rule.when.matches(facts, &values, runtime, caller) {
                continue;
            }
            // This call is the rule's next one for the caller, whether or not the call count
            // then lets the rule answer it.
            let count = runtime.count(caller, &rule.key) + 1;
            effects.push(Effect::Count {
                caller: caller.to_owned(),
                rule: rule.key.clone(),
            });
            if rule.when.call.is_some_and(|call| !call.accepts(count)) {
                continue;
            }
            let decision = self.answer(rule, facts, &values, runtime, caller, count, &mut effects);
            return Choice {
                decision: Some(decision),
                effects,
            };
        }
        Choice {
            decision: None,
            effects,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn answer(
        &self,
        rule: &Rule,
        facts: &RequestFacts<'_>,
        values: &RequestValues<'_, '_>,
        runtime: &Arc<Runtime>,
        caller: &str,
        count: u64,
        effects: &mut Vec<Effect>,
    ) -> Decision {
        let respond = &rule.respond;
        let needs_context = matches!(respond.body, Body::Template(_))
            || !respond.set_state.is_empty()
            || !respond.push.is_empty();
        let context = needs_context.then(|| CallContext::new(facts, runtime, caller, count));
        let mut answer = match (&respond.body, &context) {
            (Body::Default, _) => ScriptedAnswer::Default,
            (
                Body::Fault {
                    party,
                    code,
                    message,
                },
                _,
            ) => ScriptedAnswer::Fault(Fault::dfdg(*party, *code, message.clone())),
            (Body::Template(name), Some(context)) => match self.templates.render(name, context) {
                Ok(text) => ScriptedAnswer::Xml {
                    text,
                    receipts: context.receipts(),
                },
                Err(message) => ScriptedAnswer::Broken(message),
            },
            (Body::Template(_), None) => ScriptedAnswer::Broken("no render context".to_owned()),
        };
        if let Some(context) = &context {
            for set in &respond.set_state {
                let Some(key) = values.get(set.key) else {
                    continue;
                };
                match self.templates.render(&set.value, context) {
                    Ok(value) => effects.push(Effect::SetState {
                        caller: caller.to_owned(),
                        bucket: set.bucket.clone(),
                        key: key.to_owned(),
                        value,
                    }),
                    Err(message) => answer = ScriptedAnswer::Broken(message),
                }
            }
        }
        let mut pushes = Vec::new();
        if let Some(context) = &context {
            for push in &respond.push {
                let render = |name: &str| self.templates.render(name, context);
                let rendered = render(&push.to).and_then(|to| {
                    let (cpr, identifier) = match &push.subject {
                        PushSubject::Cpr(name) => (Some(render(name)?), None),
                        PushSubject::Identifier(name) => (None, Some(render(name)?)),
                    };
                    Ok(crate::wsb::SendRequest {
                        message_type: Some(match push.message_type.parse::<u32>() {
                            Ok(id) => crate::wsb::NameOrNumber::Number(id),
                            Err(_) => crate::wsb::NameOrNumber::Name(push.message_type.clone()),
                        }),
                        recipient: Some(crate::wsb::AuthorityText::Text(to.trim().to_owned())),
                        cpr: cpr.map(|c| c.trim().to_owned()),
                        identifier: identifier.map(|i| i.trim().to_owned()),
                        change: Some(push.change),
                        origin: Some(format!("scenario {}", rule.key)),
                        ..crate::wsb::SendRequest::default()
                    })
                });
                match rendered {
                    Ok(request) => pushes.push(request),
                    Err(message) => answer = ScriptedAnswer::Broken(message),
                }
            }
        }
        Decision {
            rule: RuleRef {
                file: rule.file.clone(),
                name: rule.name.clone(),
            },
            answer,
            status: respond.status,
            headers: respond.headers.clone(),
            delay: respond.delay.map(|delay| match delay {
                Delay::Fixed(duration) => duration,
                Delay::Between(min, max) => {
                    let span = (max - min).as_micros().max(1);
                    let random = uuid::Uuid::new_v4().as_u128() % span;
                    min + std::time::Duration::from_micros(u64::try_from(random).unwrap_or(0))
                }
            }),
            connection: respond.connection,
            pushes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(xml: &str) -> Arc<Element> {
        let envelope = format!(
            "<s:Envelope xmlns:s=\"{}\"><s:Body>{xml}</s:Body></s:Envelope>",
            crate::soap::SOAP11_ENVELOPE
        );
        crate::soap::parse_envelope(&envelope).unwrap().operation
    }

    #[test]
    fn finds_values_by_local_name_path_in_the_parsed_operation() {
        let element = operation(
            r#"<p:GetVariablePersonStatus xmlns:p="urn:x" xmlns:q="urn:y"><q:Person><q:Cpr> 0101701234 </q:Cpr><q:Cpr>second</q:Cpr><q:Name>A &amp; B &#65;</q:Name><q:Empty/></q:Person><Top>t</Top></p:GetVariablePersonStatus>"#,
        );
        let paths: Vec<ValuePath> = [
            "GetVariablePersonStatus/Person/Cpr",
            "*/Person/Name",
            "GetVariablePersonStatus/Person/Empty",
            "OtherOperation/Top",
            "*/Top",
            "GetVariablePersonStatus/Missing",
            "/GetVariablePersonStatus",
        ]
        .iter()
        .map(|path| ValuePath::parse(path))
        .collect();
        let values = RequestValues::new(&paths, &[], &element);
        assert_eq!(values.get(0), Some("0101701234"));
        assert_eq!(values.get(1), Some("A & B A"));
        assert_eq!(values.get(2), Some(""));
        assert_eq!(values.get(3), None);
        assert_eq!(values.get(4), Some("t"));
        assert_eq!(values.get(5), None);
        assert_eq!(values.get(6), Some(""));
        assert_eq!(values.get(7), None);
    }

    #[test]
    fn the_regexes_on_one_path_are_matched_as_one_set() {
        let spec = Spec::compile(
            std::path::Path::new("scenarios"),
            &[(
                "a.toml",
                r#"
[[rule]]
name = "unknown"
when.values."*/Cpr" = { regex = '^\d{6}0000$' }
[[rule]]
name = "dead"
when.values."*/Cpr" = { regex = '^\d{6}4405$' }
[[rule]]
name = "exact"
when.values."*/Cpr" = "0101701234"
[[rule]]
name = "alone"
when.values."*/Name" = { regex = '^A' }
"#,
            )],
        )
        .unwrap();
        // Two regexes on */Cpr became one set; the lone regex on */Name stays a regex.
        assert!(spec.patterns[0].is_some() && spec.patterns[1].is_none());
        let element = operation(r#"<Op xmlns="urn:x"><Cpr>0101704405</Cpr><Name>Anna</Name></Op>"#);
        let values = RequestValues::new(&spec.value_paths, &spec.patterns, &element);
        let verdicts: Vec<bool> = spec
            .rules()
            .iter()
            .map(|rule| {
                rule.when
                    .values
                    .iter()
                    .all(|(index, matcher)| matcher.matches(*index, &values))
            })
            .collect();
        assert_eq!(verdicts, [false, true, false, true]);
    }

    #[test]
    fn text_matchers() {
        let equals = TextMatcher::Equals("a".into());
        assert!(equals.matches(Some("a")) && !equals.matches(Some("b")) && !equals.matches(None));
        let one_of = TextMatcher::OneOf(vec!["a".into(), "b".into()].into_boxed_slice());
        assert!(one_of.matches(Some("b")) && !one_of.matches(Some("c")));
        let regex = TextMatcher::Regex(regex::Regex::new("0000$").unwrap());
        assert!(regex.matches(Some("0101700000")) && !regex.matches(Some("0101701234")));
        assert!(TextMatcher::Exists(false).matches(None));
        assert!(TextMatcher::Exists(true).matches(Some("")));
        assert!(!TextMatcher::Exists(true).matches(None));
    }

    #[test]
    fn call_counts() {
        assert!(CallCount::Nth(2).accepts(2) && !CallCount::Nth(2).accepts(3));
        assert!(CallCount::Every(3).accepts(6) && !CallCount::Every(3).accepts(4));
        assert!(CallCount::First(2).accepts(2) && !CallCount::First(2).accepts(3));
        assert!(CallCount::After(2).accepts(3) && !CallCount::After(2).accepts(2));
    }

    #[test]
    fn the_index_offers_only_the_rules_that_can_apply_in_priority_order() {
        let spec = Spec::compile(
            std::path::Path::new("scenarios"),
            &[(
                "a.toml",
                r#"
[[rule]]
name = "any"
[[rule]]
name = "save"
when.operation = "Save"
[[rule]]
name = "lookup-on-person"
when = { service = "Person", operation = ["Get", "Find"] }
[[rule]]
name = "person"
when.service = "Person"
[[rule]]
name = "by-regex"
priority = 1
when.operation = { regex = "^G" }
"#,
            )],
        )
        .unwrap();
        let names = |service: Option<&str>, operation: &str| -> Vec<&str> {
            spec.index
                .candidates(service, operation)
                .into_iter()
                .map(|position| &*spec.rules()[position].name)
                .collect()
        };
        assert_eq!(names(None, "Save"), ["by-regex", "any", "save"]);
        assert_eq!(
            names(Some("Person"), "Get"),
            ["by-regex", "any", "lookup-on-person", "person"]
        );
        assert_eq!(
            names(Some("Person"), "Save"),
            ["by-regex", "any", "save", "person"]
        );
        assert_eq!(names(Some("Other"), "Find"), ["by-regex", "any"]);
    }
}

//! Matching a request against the compiled rules: pure and synchronous, apart from the
//! per-caller call counters it advances. Request values are extracted once per request, in one
//! pass over the operation element, for exactly the paths the rules name.

use std::collections::HashMap;
use std::sync::Arc;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::spec::{Body, Delay, Spec};
use super::template::CallContext;
use super::{Decision, RequestFacts, RuleRef, Runtime, ScriptedAnswer};
use crate::soap::{Fault, SoapVersion};

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

    fn value(self, identity: &crate::identity::CallerIdentity) -> Option<&str> {
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

    fn value(self, star: &crate::soap::StarHeaders) -> Option<&str> {
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
    pub values: Vec<(usize, TextMatcher)>,
    pub call: Option<CallCount>,
    pub state: Option<StateCondition>,
}

impl Conditions {
    /// Everything but the call count (which depends on, and advances, the counters).
    fn matches(
        &self,
        facts: &RequestFacts<'_>,
        values: &RequestValues,
        runtime: &Runtime,
        caller: &str,
    ) -> bool {
        let text_ok = |matcher: &Option<TextMatcher>, value: Option<&str>| {
            matcher.as_ref().is_none_or(|m| m.matches(value))
        };
        text_ok(&self.operation, Some(&facts.operation.local))
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
                .all(|(index, matcher)| matcher.matches(values.get(*index)))
            && self.state.as_ref().is_none_or(|state| {
                let present = values
                    .get(state.key)
                    .is_some_and(|key| runtime.state(caller, &state.bucket, key).is_some());
                present == state.exists
            })
    }
}

/// The request's values at the paths the rules name, by path index.
#[derive(Debug, Default)]
pub struct RequestValues {
    values: Vec<Option<String>>,
}

/// Most elements scanned per request: bounds the work a huge request can cause.
const MAX_ELEMENTS: usize = 100_000;

impl RequestValues {
    pub fn get(&self, index: usize) -> Option<&str> {
        self.values.get(index)?.as_deref()
    }

    /// One pass over the operation element's XML: the text of the first element at each wanted
    /// path (local names, namespaces ignored). An empty element has the value "".
    pub fn extract(xml: &str, paths: &PathIndex, count: usize) -> RequestValues {
        let mut values = vec![None; count];
        if count == 0 {
            return RequestValues { values };
        }
        let mut reader = Reader::from_str(xml);
        // The local name of the operation element, and the path below it ("A/B").
        let mut operation = String::new();
        let mut path = String::new();
        // Lengths of `path` before each open element below the operation, to pop.
        let mut stack: Vec<usize> = Vec::new();
        let mut depth = 0usize;
        // The wanted path indexes whose text is being collected.
        let mut collecting: Vec<usize> = Vec::new();
        let mut elements = 0usize;
        // A read error ends the scan: the envelope parser already accepted this XML.
        while let Ok(event) = reader.read_event() {
            match event {
                Event::Start(ref start) | Event::Empty(ref start) => {
                    elements += 1;
                    if elements > MAX_ELEMENTS {
                        break;
                    }
                    let local = start.local_name().into_inner();
                    if depth == 0 {
                        operation.clear();
                        operation.push_str(local);
                    } else {
                        stack.push(path.len());
                        if depth > 1 {
                            path.push('/');
                        }
                        path.push_str(local);
                    }
                    depth += 1;
                    collecting.clear();
                    if let Some(wanted) = paths.get(path.as_str()) {
                        for (filter, index) in wanted {
                            let applies = filter.as_deref().is_none_or(|op| op == operation);
                            if applies && values[*index].is_none() {
                                values[*index] = Some(String::new());
                                collecting.push(*index);
                            }
                        }
                    }
                    if matches!(event, Event::Empty(_)) {
                        depth -= 1;
                        if let Some(length) = stack.pop() {
                            path.truncate(length);
                        }
                        collecting.clear();
                    }
                }
                Event::End(_) => {
                    depth = depth.saturating_sub(1);
                    if let Some(length) = stack.pop() {
                        path.truncate(length);
                    }
                    collecting.clear();
                }
                Event::Text(text) => {
                    for index in &collecting {
                        if let Some(value) = values[*index].as_mut() {
                            value.push_str(&text.xml10_content());
                        }
                    }
                }
                Event::CData(text) => {
                    for index in &collecting {
                        if let Some(value) = values[*index].as_mut() {
                            value.push_str(&text.xml10_content());
                        }
                    }
                }
                Event::GeneralRef(reference) => {
                    let character = match reference.resolve_char_ref() {
                        Ok(Some(c)) => Some(c),
                        _ => match reference.xml10_content().as_ref() {
                            "lt" => Some('<'),
                            "gt" => Some('>'),
                            "amp" => Some('&'),
                            "apos" => Some('\''),
                            "quot" => Some('"'),
                            _ => None,
                        },
                    };
                    for index in &collecting {
                        if let Some(value) = values[*index].as_mut() {
                            value.extend(character);
                        }
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        for value in values.iter_mut().flatten() {
            let trimmed = value.trim();
            if trimmed.len() != value.len() {
                *value = trimmed.to_owned();
            }
        }
        RequestValues { values }
    }
}

/// Wanted request paths by their part below the operation element ("A/B"): for each, the
/// operation it requires (`None` for `*/A/B`) and its index.
pub type PathIndex = HashMap<Box<str>, Vec<(Option<Box<str>>, usize)>>;

/// Splits "Op/A/B" into (Some("Op"), "A/B") and "*/A/B" into (None, "A/B").
pub fn split_path(path: &str) -> (Option<&str>, &str) {
    let (operation, rest) = path.split_once('/').unwrap_or((path, ""));
    ((operation != "*").then_some(operation), rest)
}

impl Spec {
    /// Finds the first matching rule and renders its answer.
    pub(crate) fn decide(
        &self,
        facts: &RequestFacts<'_>,
        runtime: &Arc<Runtime>,
    ) -> Option<Decision> {
        if self.rules.is_empty() {
            return None;
        }
        let values = RequestValues::extract(
            facts.operation_xml,
            &self.value_index,
            self.value_paths.len(),
        );
        let caller = facts
            .identity
            .map_or("", |identity| identity.caller_id.as_str());
        for rule in &self.rules {
            if !rule.when.matches(facts, &values, runtime, caller) {
                continue;
            }
            let count = runtime.bump(caller, &rule.key);
            if rule.when.call.is_some_and(|call| !call.accepts(count)) {
                continue;
            }
            return Some(self.answer(rule, facts, values, runtime, caller, count));
        }
        None
    }

    fn answer(
        &self,
        rule: &super::spec::Rule,
        facts: &RequestFacts<'_>,
        values: RequestValues,
        runtime: &Arc<Runtime>,
        caller: &str,
        count: u64,
    ) -> Decision {
        let respond = &rule.respond;
        let needs_context =
            matches!(respond.body, Body::Template(_)) || !respond.set_state.is_empty();
        let context = needs_context.then(|| {
            CallContext::new(
                facts,
                values,
                self.shared_paths.clone(),
                runtime.clone(),
                caller,
                count,
            )
        });
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
                let Some(key) = context.value(set.key) else {
                    continue;
                };
                match self.templates.render(&set.value, context) {
                    Ok(value) => runtime.set_state(caller, &set.bucket, key.to_owned(), value),
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(paths: &[&str]) -> PathIndex {
        let mut index = PathIndex::new();
        for (i, path) in paths.iter().enumerate() {
            let (operation, rest) = split_path(path);
            index
                .entry(Box::from(rest))
                .or_default()
                .push((operation.map(Box::from), i));
        }
        index
    }

    #[test]
    fn extracts_values_by_local_name_path_in_one_pass() {
        let xml = r#"<p:GetVariablePersonStatus xmlns:p="urn:x" xmlns:q="urn:y"><q:Person><q:Cpr> 0101701234 </q:Cpr><q:Cpr>second</q:Cpr><q:Name>A &amp; B &#65;</q:Name><q:Empty/></q:Person><Top>t</Top></p:GetVariablePersonStatus>"#;
        let paths = [
            "GetVariablePersonStatus/Person/Cpr",
            "*/Person/Name",
            "GetVariablePersonStatus/Person/Empty",
            "OtherOperation/Top",
            "*/Top",
            "GetVariablePersonStatus/Missing",
        ];
        let values = RequestValues::extract(xml, &index(&paths), paths.len());
        assert_eq!(values.get(0), Some("0101701234"));
        assert_eq!(values.get(1), Some("A & B A"));
        assert_eq!(values.get(2), Some(""));
        assert_eq!(values.get(3), None);
        assert_eq!(values.get(4), Some("t"));
        assert_eq!(values.get(5), None);
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
}

//! Verification for CI, in the spirit of WireMock's `verify`: expectations ("at least / exactly /
//! at most N calls matching these criteria") checked against the journal, giving pass or fail
//! with, for each failure, the offending calls (too many matched: the matching ones) or the near
//! misses (too few: calls matching all criteria but one), as text, JSON or a JUnit XML report. Counting and near misses are journal queries ([`CallQuery`] and its
//! `negate`), answered by the journal's indexes; only the few near misses are compared here.
//!
//! The expectations file is TOML (or the same shape in JSON for `POST /api/verify`):
//!
//! ```toml
//! [[expect]]
//! name = "the supplier's registration arrived"
//! at_least = 1                       # and/or at_most = N, or exactly = N (default: at_least = 1)
//! caller_id = "CVR:91234567-UUID:3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13"
//! operation = "SaveAvailabilityAssessment"
//! outcome = "receipt"                # receipt | fault | http | "fault 1014" | "fault Client"
//! identity_check = true              # UserIdentifier equals the certificate's caller id
//! ```
//!
//! Mistakes are reported as `file:line:column: what`.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::journal::{CallQuery, Criterion, JournalError, JournalReader, Outcome, StoredCall};
use crate::onboarding;
use crate::position::Position;

/// Near misses kept per failed expectation.
pub const MAX_NEAR_MISSES: usize = 5;

/// A file of expectations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    pub expect: Vec<Expectation>,
}

/// How many calls should match, and the criteria a call must meet (all of them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Shown in reports; default: a description of the criteria.
    pub name: Option<String>,
    pub at_least: Option<u64>,
    pub exactly: Option<u64>,
    pub at_most: Option<u64>,
    /// STAR caller id from the certificate.
    pub caller_id: Option<String>,
    /// CVR from the certificate.
    pub cvr: Option<String>,
    /// First path segment, e.g. JobcenterMessageService.
    pub service: Option<String>,
    /// Operation (local name of the Body's first child).
    pub operation: Option<String>,
    /// `receipt`, `fault`, `http`, or a label like `fault 1014` / `fault Client`.
    pub outcome: Option<String>,
    /// STAR's numeric fault code.
    pub fault_code: Option<i64>,
    pub soap_action: Option<String>,
    /// Path without the query.
    pub path: Option<String>,
    /// RFC 3339 time or an age such as `10m` (at or after).
    pub since: Option<String>,
    /// RFC 3339 time or an age (strictly before).
    pub until: Option<String>,
    /// Whether the RequestUserMetadataHeader UserIdentifier equals the certificate's caller id.
    pub identity_check: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    expect: Vec<toml::Spanned<Expectation>>,
}

impl Expectations {
    /// Parses and checks a TOML expectations file; errors say `path:line:column: what`.
    pub fn from_toml(path: &Path, text: &str) -> anyhow::Result<Expectations> {
        let at = |offset: usize| {
            let position = Position::of_offset(text, offset);
            format!("{}:{}:{}", path.display(), position.line, position.column)
        };
        let file: TomlFile = crate::config::parse_toml(path, text)?;
        let mut expect = Vec::with_capacity(file.expect.len());
        for spanned in file.expect {
            let start = spanned.span().start;
            let expectation = spanned.into_inner();
            expectation
                .check()
                .map_err(|problem| anyhow::anyhow!("{}: {problem}", at(start)))?;
            expect.push(expectation);
        }
        if expect.is_empty() {
            anyhow::bail!("{}: no [[expect]] tables", path.display());
        }
        Ok(Expectations { expect })
    }

    /// Parses and checks the JSON form (`{"expect": [ … ]}`).
    pub fn from_json(bytes: &[u8]) -> anyhow::Result<Expectations> {
        let expectations: Expectations = serde_json::from_slice(bytes)
            .map_err(|error| anyhow::anyhow!("expectations JSON: {error}"))?;
        for (index, expectation) in expectations.expect.iter().enumerate() {
            expectation
                .check()
                .map_err(|problem| anyhow::anyhow!("expect[{index}]: {problem}"))?;
        }
        Ok(expectations)
    }
}

/// A criterion a call did not meet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub criterion: String,
    pub expected: String,
    pub actual: String,
}

/// A call that matched every criterion but one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearMiss {
    pub call_id: i64,
    pub time: String,
    pub caller_id: Option<String>,
    pub operation: Option<String>,
    pub outcome: String,
    pub mismatch: Mismatch,
}

/// A call that matched an expectation which allows fewer matches ("exactly 0", "at most 2").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offending {
    pub call_id: i64,
    pub time: String,
    pub caller_id: Option<String>,
    pub operation: Option<String>,
    pub outcome: String,
    /// Why it was answered so (a fault's reason), if journaled.
    pub detail: Option<String>,
}

/// The verdict on one expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub name: String,
    /// "at least 1", "exactly 2", "between 1 and 3".
    pub expected: String,
    pub matched: u64,
    pub passed: bool,
    /// Only when too few matched: calls matching all criteria but one, newest first.
    pub near_misses: Vec<NearMiss>,
    /// Only when too many matched: the matching calls (the newest [`MAX_NEAR_MISSES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offending: Vec<Offending>,
}

/// The verdicts on all expectations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub passed: bool,
    pub calls_examined: u64,
    pub verdicts: Vec<Verdict>,
}

impl Expectation {
    fn check(&self) -> Result<(), String> {
        if self.exactly.is_some() && (self.at_least.is_some() || self.at_most.is_some()) {
            return Err("`exactly` cannot be combined with `at_least` or `at_most`".to_owned());
        }
        if let (Some(low), Some(high)) = (self.at_least, self.at_most) {
            if low > high {
                return Err(format!("at_least = {low} is more than at_most = {high}"));
            }
        }
        for (name, value) in [("since", &self.since), ("until", &self.until)] {
            if let Some(value) = value {
                crate::cli::parse_since(value).map_err(|error| format!("{name}: {error}"))?;
            }
        }
        if let Some(outcome) = &self.outcome {
            let kind = outcome.trim();
            let valid = matches!(kind, "receipt" | "fault" | "http")
                || kind
                    .strip_prefix("fault ")
                    .is_some_and(|code| !code.trim().is_empty());
            if !valid {
                return Err(format!(
                    "outcome {outcome:?}: expected receipt, fault, http, \"fault <number>\" or \"fault <SOAP fault code>\""
                ));
            }
        }
        Ok(())
    }

    /// The bounds: (at least, at most).
    fn bounds(&self) -> (u64, Option<u64>) {
        match (self.exactly, self.at_least, self.at_most) {
            (Some(n), _, _) => (n, Some(n)),
            (None, None, None) => (1, None),
            (None, low, high) => (low.unwrap_or(0), high),
        }
    }

    fn expected_text(&self) -> String {
        match self.bounds() {
            (low, Some(high)) if low == high => format!("exactly {low}"),
            (0, Some(high)) => format!("at most {high}"),
            (low, Some(high)) => format!("between {low} and {high}"),
            (low, None) => format!("at least {low}"),
        }
    }

    fn description(&self) -> String {
        let criteria: Vec<String> = self
            .criteria()
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if criteria.is_empty() {
            format!("{} calls", self.expected_text())
        } else {
            format!(
                "{} calls with {}",
                self.expected_text(),
                criteria.join(", ")
            )
        }
    }

    /// The criteria that are set, as (name, expected value).
    fn criteria(&self) -> Vec<(&'static str, String)> {
        let mut criteria = Vec::new();
        let mut text = |name, value: &Option<String>| {
            if let Some(value) = value {
                criteria.push((name, value.clone()));
            }
        };
        text("caller_id", &self.caller_id);
        text("cvr", &self.cvr);
        text("service", &self.service);
        text("operation", &self.operation);
        text("outcome", &self.outcome);
        text("soap_action", &self.soap_action);
        text("path", &self.path);
        text("since", &self.since);
        text("until", &self.until);
        if let Some(code) = self.fault_code {
            criteria.push(("fault_code", code.to_string()));
        }
        if let Some(check) = self.identity_check {
            criteria.push(("identity_check", check.to_string()));
        }
        criteria
    }

    /// The criteria `call` does not meet.
    fn mismatches(&self, call: &StoredCall, times: &Times) -> Vec<Mismatch> {
        let record = &call.record;
        let mut found = Vec::new();
        let mut compare = |criterion: &str, expected: Option<String>, actual: Option<String>| {
            if let Some(expected) = expected {
                if actual.as_deref() != Some(expected.as_str()) {
                    found.push(Mismatch {
                        criterion: criterion.to_owned(),
                        expected,
                        actual: actual.unwrap_or_else(|| "(none)".to_owned()),
                    });
                }
            }
        };
        let identity = record.identity.as_ref();
        compare(
            "caller_id",
            self.caller_id.clone(),
            identity.map(|i| i.caller_id.clone()),
        );
        compare(
            "cvr",
            self.cvr.clone(),
            identity.and_then(|i| i.cvr.clone()),
        );
        compare(
            "service",
            self.service.clone(),
            Some(crate::wsdl::service_of(&record.path).to_owned()),
        );
        compare(
            "operation",
            self.operation.clone(),
            record.operation.clone(),
        );
        compare(
            "soap_action",
            self.soap_action.clone(),
            record.soap_action.clone(),
        );
        compare(
            "path",
            self.path.clone(),
            Some(record.path.split('?').next().unwrap_or_default().to_owned()),
        );
        let code = match &record.outcome {
            Outcome::Fault { code, .. } => *code,
            _ => None,
        };
        compare(
            "fault_code",
            self.fault_code.map(|c| c.to_string()),
            code.map(|c| c.to_string()),
        );
        compare(
            "identity_check",
            self.identity_check.map(|c| c.to_string()),
            Some(
                onboarding::identity_comparison(record)
                    .is_some_and(|c| c.matches)
                    .to_string(),
            ),
        );
        if let Some(outcome) = &self.outcome {
            if !outcome_matches(outcome, &record.outcome) {
                found.push(Mismatch {
                    criterion: "outcome".to_owned(),
                    expected: outcome.clone(),
                    actual: record.outcome.label(),
                });
            }
        }
        if let (Some(since), Some(text)) = (times.since, &self.since) {
            if record.time < since {
                found.push(Mismatch {
                    criterion: "since".to_owned(),
                    expected: text.clone(),
                    actual: rfc3339(record.time),
                });
            }
        }
        if let (Some(until), Some(text)) = (times.until, &self.until) {
            if record.time >= until {
                found.push(Mismatch {
                    criterion: "until".to_owned(),
                    expected: text.clone(),
                    actual: rfc3339(record.time),
                });
            }
        }
        found
    }
}

/// `since`/`until` resolved once per run (an age is relative to the start of the run).
struct Times {
    since: Option<OffsetDateTime>,
    until: Option<OffsetDateTime>,
}

fn outcome_matches(expected: &str, actual: &Outcome) -> bool {
    let expected = expected.trim();
    match expected {
        "receipt" => *actual == Outcome::Receipt,
        "http" => *actual == Outcome::Http,
        "fault" => matches!(actual, Outcome::Fault { .. }),
        label => match actual {
            Outcome::Fault { code, fault_code } => {
                let wanted = label.strip_prefix("fault ").map(str::trim);
                wanted == code.map(|c| c.to_string()).as_deref()
                    || wanted == Some(fault_code.as_str())
            }
            _ => false,
        },
    }
}

fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// RFC 3339 to the second: what a person compares with `calls` (ids tell calls apart).
fn to_the_second(time: OffsetDateTime) -> String {
    rfc3339(time.replace_nanosecond(0).unwrap_or(time))
}

impl Expectation {
    /// The journal query of the calls that meet every criterion.
    fn query(&self, times: &Times) -> CallQuery {
        CallQuery {
            caller_id: self.caller_id.clone(),
            cvr: self.cvr.clone(),
            service: self.service.clone(),
            operation: self.operation.clone(),
            outcome: self.outcome.clone(),
            fault_code: self.fault_code,
            soap_action: self.soap_action.clone(),
            path: self.path.clone(),
            since: times.since,
            until: times.until,
            identity_check: self.identity_check,
            ..CallQuery::default()
        }
    }

    /// The criteria that are set, as the journal names them.
    fn set_criteria(&self, times: &Times) -> Vec<Criterion> {
        let mut set = Vec::new();
        let mut add = |present: bool, criterion| {
            if present {
                set.push(criterion);
            }
        };
        add(self.caller_id.is_some(), Criterion::CallerId);
        add(self.cvr.is_some(), Criterion::Cvr);
        add(self.service.is_some(), Criterion::Service);
        add(self.operation.is_some(), Criterion::Operation);
        add(self.outcome.is_some(), Criterion::Outcome);
        add(self.fault_code.is_some(), Criterion::FaultCode);
        add(self.soap_action.is_some(), Criterion::SoapAction);
        add(self.path.is_some(), Criterion::Path);
        add(times.since.is_some(), Criterion::Since);
        add(times.until.is_some(), Criterion::Until);
        add(self.identity_check.is_some(), Criterion::IdentityCheck);
        set
    }
}

/// Checks every expectation against the journal: all counted in one pass over the calls, and for
/// a failed one a query per criterion for the newest calls that miss only that criterion.
pub fn verify(
    reader: &impl JournalReader,
    expectations: &Expectations,
) -> Result<Report, JournalError> {
    let times: Vec<Times> = expectations
        .expect
        .iter()
        .map(|expectation| Times {
            since: expectation
                .since
                .as_deref()
                .and_then(|t| crate::cli::parse_since(t).ok()),
            until: expectation
                .until
                .as_deref()
                .and_then(|t| crate::cli::parse_since(t).ok()),
        })
        .collect();
    // Every expectation and the total, counted in one pass.
    let mut queries: Vec<CallQuery> = expectations
        .expect
        .iter()
        .zip(&times)
        .map(|(expectation, times)| expectation.query(times))
        .collect();
    queries.push(CallQuery::default());
    let counts = reader.count_each(&queries)?;
    let examined = counts.last().copied().unwrap_or(0);
    let mut verdicts = Vec::with_capacity(expectations.expect.len());
    for (((expectation, times), query), matched) in expectations
        .expect
        .iter()
        .zip(&times)
        .zip(&queries)
        .zip(counts)
    {
        let (low, high) = expectation.bounds();
        let too_few = matched < low;
        let too_many = high.is_some_and(|high| matched > high);
        let passed = !too_few && !too_many;
        let near_misses = if too_few {
            near_misses(reader, expectation, query, times)?
        } else {
            Vec::new()
        };
        let offending = if too_many {
            offending(reader, query)?
        } else {
            Vec::new()
        };
        verdicts.push(Verdict {
            name: expectation
                .name
                .clone()
                .unwrap_or_else(|| expectation.description()),
            expected: expectation.expected_text(),
            matched,
            passed,
            near_misses,
            offending,
        });
    }
    Ok(Report {
        passed: verdicts.iter().all(|v| v.passed),
        calls_examined: examined,
        verdicts,
    })
}

/// The newest calls (at most [`MAX_NEAR_MISSES`]) that meet every criterion of `query`.
fn offending(
    reader: &impl JournalReader,
    query: &CallQuery,
) -> Result<Vec<Offending>, JournalError> {
    Ok(reader
        .calls(&CallQuery {
            limit: MAX_NEAR_MISSES,
            ..query.clone()
        })?
        .into_iter()
        .map(|call| Offending {
            call_id: call.id,
            time: to_the_second(call.record.time),
            caller_id: call.record.caller_id().map(str::to_owned),
            operation: call.record.operation.clone(),
            outcome: call.record.outcome.label(),
            detail: call.record.detail.clone(),
        })
        .collect())
}

/// The newest calls (at most [`MAX_NEAR_MISSES`]) that meet every criterion of `query` but one.
fn near_misses(
    reader: &impl JournalReader,
    expectation: &Expectation,
    query: &CallQuery,
    times: &Times,
) -> Result<Vec<NearMiss>, JournalError> {
    let mut found: Vec<StoredCall> = Vec::new();
    for criterion in expectation.set_criteria(times) {
        found.extend(reader.calls(&CallQuery {
            negate: Some(criterion),
            limit: MAX_NEAR_MISSES,
            ..query.clone()
        })?);
    }
    found.sort_by_key(|call| std::cmp::Reverse(call.id));
    found.dedup_by_key(|call| call.id);
    Ok(found
        .into_iter()
        .filter_map(|call| {
            let mut mismatches = expectation.mismatches(&call, times);
            (mismatches.len() == 1).then(|| NearMiss {
                call_id: call.id,
                time: to_the_second(call.record.time),
                caller_id: call.record.caller_id().map(str::to_owned),
                operation: call.record.operation.clone(),
                outcome: call.record.outcome.label(),
                mismatch: mismatches.remove(0),
            })
        })
        .take(MAX_NEAR_MISSES)
        .collect())
}

impl Verdict {
    /// One line of verdict and, on failure, one line per near miss.
    fn failure_text(&self) -> String {
        let mut text = format!(
            "expected {} matching calls, found {}",
            self.expected, self.matched
        );
        if !self.offending.is_empty() {
            text.push_str(if self.offending.len() as u64 == self.matched {
                "; the matching calls:"
            } else {
                "; the newest matching calls:"
            });
            for call in &self.offending {
                let _ = write!(
                    text,
                    "\n  call {} at {} ({}, {}): {}{}",
                    call.call_id,
                    call.time,
                    call.caller_id.as_deref().unwrap_or("no certificate"),
                    call.operation.as_deref().unwrap_or("-"),
                    call.outcome,
                    call.detail
                        .as_deref()
                        .map_or(String::new(), |detail| format!(": {detail}"))
                );
            }
            let more = self.matched.saturating_sub(self.offending.len() as u64);
            if more > 0 {
                let _ = write!(text, "\n  … and {more} more (`dfdg-mock calls` lists them)");
            }
            return text;
        }
        if self.near_misses.is_empty() {
            text.push_str("; no near misses (no call matched all criteria but one)");
        } else {
            text.push_str("; near misses (all criteria but one):");
            for miss in &self.near_misses {
                let _ = write!(
                    text,
                    "\n  call {} at {} ({}, {}, {}): {} is {:?}, expected {:?}",
                    miss.call_id,
                    miss.time,
                    miss.caller_id.as_deref().unwrap_or("no certificate"),
                    miss.operation.as_deref().unwrap_or("-"),
                    miss.outcome,
                    miss.mismatch.criterion,
                    miss.mismatch.actual,
                    miss.mismatch.expected
                );
            }
        }
        text
    }
}

impl Report {
    /// For a terminal.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for verdict in &self.verdicts {
            if verdict.passed {
                let _ = writeln!(
                    text,
                    "PASS  {} ({} matched, expected {})",
                    verdict.name, verdict.matched, verdict.expected
                );
            } else {
                let _ = writeln!(
                    text,
                    "FAIL  {}\n      {}",
                    verdict.name,
                    verdict.failure_text().replace('\n', "\n      ")
                );
            }
        }
        let failed = self.verdicts.iter().filter(|v| !v.passed).count();
        let _ = writeln!(
            text,
            "{} of {} expectations passed ({} calls examined)",
            self.verdicts.len() - failed,
            self.verdicts.len(),
            self.calls_examined
        );
        text
    }

    /// A JUnit XML report: one test case per expectation.
    pub fn junit(&self) -> String {
        let failures = self.verdicts.iter().filter(|v| !v.passed).count();
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            xml,
            "<testsuites name=\"dfdg-mock verify\" tests=\"{}\" failures=\"{failures}\">",
            self.verdicts.len()
        );
        let _ = writeln!(
            xml,
            "  <testsuite name=\"dfdg-mock verify\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">",
            self.verdicts.len()
        );
        for verdict in &self.verdicts {
            let _ = write!(
                xml,
                "    <testcase classname=\"dfdg-mock.verify\" name=\"{}\"",
                escape(&verdict.name)
            );
            if verdict.passed {
                xml.push_str("/>\n");
            } else {
                let text = verdict.failure_text();
                let message = text.lines().next().unwrap_or_default();
                let _ = writeln!(
                    xml,
                    ">\n      <failure message=\"{}\" type=\"expectation\">{}</failure>\n    </testcase>",
                    escape(message),
                    escape(&text)
                );
            }
        }
        xml.push_str("  </testsuite>\n</testsuites>\n");
        xml
    }
}

/// XML text and attribute escaping.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_line_and_column() {
        let path = Path::new("expect.toml");
        let error = Expectations::from_toml(path, "[[expect]]\noperaton = \"X\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("expect.toml:2:1: "), "{error}");
        assert!(error.contains("operaton"), "{error}");
        let error = Expectations::from_toml(
            path,
            "[[expect]]\nat_least = 1\n\n[[expect]]\nexactly = 1\nat_most = 2\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("expect.toml:4:"), "{error}");
        assert!(error.contains("`exactly` cannot be combined"), "{error}");
        let error = Expectations::from_toml(path, "[[expect]]\noutcome = \"sucess\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("outcome \"sucess\""), "{error}");
    }

    #[test]
    fn bounds_and_outcomes() {
        let expectation = Expectation::default();
        assert_eq!(expectation.expected_text(), "at least 1");
        let exactly = Expectation {
            exactly: Some(2),
            ..Expectation::default()
        };
        assert_eq!(exactly.bounds(), (2, Some(2)));
        let fault = Outcome::Fault {
            code: Some(1014),
            fault_code: "Client".to_owned(),
        };
        assert!(outcome_matches("fault", &fault));
        assert!(outcome_matches("fault 1014", &fault));
        assert!(outcome_matches("fault Client", &fault));
        assert!(!outcome_matches("fault 1012", &fault));
        assert!(!outcome_matches("receipt", &fault));
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}

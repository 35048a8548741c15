//! The WHERE clauses of call and refused-handshake queries, shared by both stores: each
//! criterion of a [`CallQuery`] (or [`RejectionQuery`]) becomes one condition on the hot columns of `calls` (see the schemas), written once in SQL
//! that SQLite and PostgreSQL both accept, with `?` placeholders and typed [`Param`]s. The one
//! difference (case-insensitive names) is a [`Dialect`].

use super::records::{CallQuery, Criterion, RejectionQuery};
use super::schema::to_micros;
use super::{JournalError, RejectionReason, DEFAULT_LIMIT, MAX_LIMIT};

/// The database a clause is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    Int(i64),
    Text(String),
    Bool(bool),
}

/// 0 means the default; never more than [`MAX_LIMIT`].
pub fn effective_limit(limit: usize) -> i64 {
    let limit = if limit == 0 { DEFAULT_LIMIT } else { limit };
    // MAX_LIMIT fits an i64.
    limit.min(MAX_LIMIT) as i64
}

/// A WHERE clause under construction, with its parameters.
#[derive(Debug, Default)]
pub struct Filter {
    pub conditions: Vec<String>,
    pub values: Vec<Param>,
}

impl Filter {
    /// Adds a condition whose `?` placeholders take `values`, in order; turned around (a row
    /// for which it is false or unknown) when `negate`.
    pub fn add(&mut self, negate: bool, condition: &str, values: impl IntoIterator<Item = Param>) {
        if negate {
            self.conditions
                .push(format!("NOT COALESCE(({condition}), FALSE)"));
        } else {
            self.conditions.push(condition.to_owned());
        }
        self.values.extend(values);
    }

    pub fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// All conditions as one boolean expression (`TRUE` without any).
    pub fn expression(&self) -> String {
        if self.conditions.is_empty() {
            "TRUE".to_owned()
        } else {
            self.conditions.join(" AND ")
        }
    }
}

/// SQL written with `?` placeholders, numbered `$1, $2, …` as PostgreSQL wants them.
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

const OUTCOME_EXPECTED: &str =
    "receipt, fault, http, `fault <number>` or `fault <SOAP fault code>`";

/// The id of a name, for a condition; -1 (no row) when the name was never journaled.
const NAME: &str = "COALESCE((SELECT id FROM names WHERE text = ?), -1)";

/// The condition of an outcome filter: a kind, or a label as
/// [`super::Outcome::label`] writes it.
fn outcome_condition(text: &str) -> Result<(String, Vec<Param>), JournalError> {
    let invalid = || JournalError::InvalidFilter {
        filter: "outcome",
        value: text.to_owned(),
        expected: OUTCOME_EXPECTED,
    };
    let trimmed = text.trim();
    Ok(match trimmed {
        "receipt" => ("c.outcome = 0".to_owned(), Vec::new()),
        "fault" => ("c.outcome = 1".to_owned(), Vec::new()),
        "http" => ("c.outcome = 2".to_owned(), Vec::new()),
        _ => {
            let code = trimmed
                .strip_prefix("fault ")
                .map(str::trim)
                .filter(|code| !code.is_empty())
                .ok_or_else(invalid)?;
            match code.parse::<i64>() {
                Ok(number) => (
                    "c.outcome = 1 AND c.fault_code = ?".to_owned(),
                    vec![Param::Int(number)],
                ),
                Err(_) => (
                    format!("c.outcome = 1 AND c.fault_name = {NAME}"),
                    vec![Param::Text(code.to_owned())],
                ),
            }
        }
    })
}

/// The WHERE clause of a query for refused handshakes; a reason that is not one is an error
/// naming the ones there are.
pub fn rejection_filter(query: &RejectionQuery) -> Result<Filter, JournalError> {
    let mut filter = Filter::default();
    if let Some(since) = query.since {
        filter.add(false, "time_us >= ?", [Param::Int(to_micros(since))]);
    }
    if let Some(reason) = &query.reason {
        let reason =
            RejectionReason::parse(reason.trim()).ok_or_else(|| JournalError::InvalidFilter {
                filter: "reason",
                value: reason.clone(),
                expected: "a reason such as no_certificate, unknown_ca, expired",
            })?;
        filter.add(
            false,
            "reason = ?",
            [Param::Text(reason.as_str().to_owned())],
        );
    }
    if let Some(before) = query.before_id {
        filter.add(false, "id < ?", [Param::Int(before)]);
    }
    Ok(filter)
}

/// The WHERE clause of a call query (its criteria, one of them turned around if asked).
pub fn call_filter(query: &CallQuery, dialect: Dialect) -> Result<Filter, JournalError> {
    let mut filter = Filter::default();
    let negate = |criterion| query.negate == Some(criterion);
    let text = |value: &String| Param::Text(value.clone());
    if let Some(caller) = &query.caller {
        filter.add(
            negate(Criterion::Caller),
            "c.certificate IN (SELECT id FROM certificates WHERE caller_id = ? OR cvr = ?)",
            [text(caller), text(caller)],
        );
    }
    if let Some(caller_id) = &query.caller_id {
        filter.add(
            negate(Criterion::CallerId),
            "c.certificate IN (SELECT id FROM certificates WHERE caller_id = ?)",
            [text(caller_id)],
        );
    }
    if let Some(cvr) = &query.cvr {
        filter.add(
            negate(Criterion::Cvr),
            "c.certificate IN (SELECT id FROM certificates WHERE cvr = ?)",
            [text(cvr)],
        );
    }
    if let Some(supplier) = &query.supplier {
        filter.add(
            negate(Criterion::Supplier),
            match dialect {
                Dialect::Sqlite => {
                    "c.supplier IN (SELECT id FROM names WHERE text = ? COLLATE NOCASE)"
                }
                Dialect::Postgres => {
                    "c.supplier IN (SELECT id FROM names WHERE lower(text) = lower(CAST(? AS TEXT)))"
                }
            },
            [text(supplier)],
        );
    }
    if let Some(service) = &query.service {
        // Whole leading segments of the path: `JobcenterMessageService`, or `service/Påmindelse`
        // for /service/Påmindelse/1/X.svc; the first segment's index narrows it.
        let service = service.trim_matches('/');
        let first = service.split('/').next().unwrap_or_default();
        filter.add(
            negate(Criterion::Service),
            &format!(
                "c.service = {NAME} AND c.endpoint IN (SELECT id FROM names
                    WHERE text = ? OR substr(text, 1, length(CAST(? AS TEXT))) = ?)"
            ),
            [
                Param::Text(first.to_owned()),
                Param::Text(format!("/{service}")),
                Param::Text(format!("/{service}/")),
                Param::Text(format!("/{service}/")),
            ],
        );
    }
    if let Some(operation) = &query.operation {
        filter.add(
            negate(Criterion::Operation),
            &format!("c.operation = {NAME}"),
            [text(operation)],
        );
    }
    if let Some(action) = &query.soap_action {
        filter.add(
            negate(Criterion::SoapAction),
            &format!("c.soap_action = {NAME}"),
            [text(action)],
        );
    }
    if let Some(path) = &query.path {
        filter.add(
            negate(Criterion::Path),
            &format!("c.endpoint = {NAME}"),
            [text(path)],
        );
    }
    if let Some(since) = query.since {
        filter.add(
            negate(Criterion::Since),
            "c.time_us >= ?",
            [Param::Int(to_micros(since))],
        );
    }
    if let Some(until) = query.until {
        filter.add(
            negate(Criterion::Until),
            "c.time_us < ?",
            [Param::Int(to_micros(until))],
        );
    }
    if let Some(outcome) = &query.outcome {
        let (condition, values) = outcome_condition(outcome)?;
        filter.add(negate(Criterion::Outcome), &condition, values);
    }
    if let Some(code) = query.fault_code {
        filter.add(
            negate(Criterion::FaultCode),
            "c.outcome = 1 AND c.fault_code = ?",
            [Param::Int(code)],
        );
    }
    if let Some(check) = query.identity_check {
        filter.add(
            negate(Criterion::IdentityCheck),
            "c.user_matches = ?",
            [Param::Bool(check)],
        );
    }
    if let Some(before) = query.before_id {
        filter.add(false, "c.id < ?", [Param::Int(before)]);
    }
    if let Some(after) = query.after_id {
        filter.add(false, "c.id > ?", [Param::Int(after)]);
    }
    Ok(filter)
}

/// Whether a count of `query` is best answered on its own from an index (a caller, a
/// supplier, faults, or no criterion at all) rather than in one pass with other broad counts.
pub fn is_narrow(query: &CallQuery) -> bool {
    let faults = query
        .outcome
        .as_deref()
        .is_some_and(|o| o.trim() != "receipt");
    query.negate.is_none()
        && (query.caller.is_some()
            || query.caller_id.is_some()
            || query.cvr.is_some()
            || query.supplier.is_some()
            || query.fault_code.is_some()
            || faults
            || call_filter(query, Dialect::Sqlite).is_ok_and(|filter| filter.conditions.is_empty()))
}

/// Counts each of `queries`: the narrow ones with `count` one by one, the broad rest with
/// `together` in one pass over the calls.
pub fn count_each(
    queries: &[CallQuery],
    mut count: impl FnMut(&CallQuery) -> Result<u64, JournalError>,
    together: impl FnOnce(&[CallQuery]) -> Result<Vec<u64>, JournalError>,
) -> Result<Vec<u64>, JournalError> {
    let mut counts = vec![0; queries.len()];
    let mut broad = Vec::new();
    for (index, query) in queries.iter().enumerate() {
        if is_narrow(query) {
            counts[index] = count(query)?;
        } else {
            broad.push(index);
        }
    }
    if broad.len() == 1 {
        counts[broad[0]] = count(&queries[broad[0]])?;
    } else if broad.len() > 1 {
        let queries: Vec<CallQuery> = broad.iter().map(|i| queries[*i].clone()).collect();
        for (index, count) in broad.iter().zip(together(&queries)?) {
            counts[*index] = count;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered("a = ? AND b IN (?, ?) LIMIT ?"),
            "a = $1 AND b IN ($2, $3) LIMIT $4"
        );
    }

    #[test]
    fn the_supplier_filter_is_case_insensitive_in_either_dialect() {
        let query = CallQuery {
            supplier: Some("Leverandør A".to_owned()),
            ..CallQuery::default()
        };
        let sqlite = call_filter(&query, Dialect::Sqlite).unwrap();
        assert!(sqlite.conditions[0].contains("COLLATE NOCASE"));
        let postgres = call_filter(&query, Dialect::Postgres).unwrap();
        assert!(postgres.conditions[0].contains("lower(text)"));
        assert_eq!(sqlite.values, postgres.values);
    }
}

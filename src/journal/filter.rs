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
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub conditions: Vec<String>,
    pub values: Vec<Param>,
    /// No call can match: a criterion names something the journal never held (an operation
    /// nobody called, an unknown caller). The store answers at once, without reading calls.
    pub never: bool,
    /// A condition reads a column that only each call has (its certificate, supplier or id,
    /// or its time turned around), so the count cannot come from totals of calls by the
    /// other columns (SQLite's `call_counts`).
    pub per_call: bool,
    /// The conditions (indexes into `conditions`) of the time window, `since` and `until`
    /// as asked: one placeholder each.
    pub window: Vec<usize>,
    /// The window's bounds, microseconds: at or after `since`, before `until`.
    pub since: Option<i64>,
    pub until: Option<i64>,
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

    /// A criterion whose ids were looked up first (see [`Lookup`]): the column is one of
    /// `ids`. None at all: no call meets it (`never`), or, turned around, every call does.
    fn one_of(&mut self, negate: bool, column: &str, ids: Vec<i64>) {
        match ids.len() {
            0 if negate => {}
            0 => {
                self.never = true;
                self.conditions.push("FALSE".to_owned());
            }
            1 => self.add(
                negate,
                &format!("{column} = ?"),
                ids.into_iter().map(Param::Int),
            ),
            n => self.add(
                negate,
                &format!("{column} IN ({})", vec!["?"; n].join(", ")),
                ids.into_iter().map(Param::Int),
            ),
        }
    }

    /// This filter without the conditions at `skip` (and their values).
    pub fn without(&self, skip: &[usize]) -> Filter {
        let mut kept = Filter {
            never: self.never,
            per_call: self.per_call,
            ..Filter::default()
        };
        let mut values = self.values.iter();
        for (at, condition) in self.conditions.iter().enumerate() {
            let taken: Vec<Param> = values
                .by_ref()
                .take(condition.matches('?').count())
                .cloned()
                .collect();
            if !skip.contains(&at) {
                kept.conditions.push(condition.clone());
                kept.values.extend(taken);
            }
        }
        kept
    }

    /// This filter with the indexed columns of its conditions behind a unary + (see
    /// [`call_filter`]), so that another condition's index drives a query of it.
    pub fn unindexed(&self) -> Filter {
        let mut filter = self.clone();
        for condition in &mut filter.conditions {
            *condition = unindexed(condition);
        }
        filter
    }

    pub fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }

    /// The aggregate counting the calls that meet this filter in a pass over all calls (a
    /// FILTER clause, which both databases take, skips the others at the least cost).
    pub fn counted(&self) -> String {
        if self.conditions.is_empty() {
            "COUNT(*)".to_owned()
        } else {
            format!("COUNT(*) FILTER (WHERE {})", self.expression())
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

/// Runs a query of ids (`?` placeholders) for [`call_filter`]: the names and certificates a
/// query names are looked up before it, so that the query compares plain integers (which
/// the planner can weigh against its statistics), and a criterion naming something the
/// journal never held is answered at once instead of by a search for it.
pub type Lookup<'a> = dyn FnMut(&str, &[Param]) -> Result<Vec<i64>, JournalError> + 'a;

/// Certificates a supplier may have for its calls to be found by theirs on SQLite (beyond, by
/// a scan of the calls: a list of them this long would cost more than it saves).
const MAX_DRIVING_CERTIFICATES: usize = 512;

/// The id of a name.
const NAME: &str = "SELECT id FROM names WHERE text = ?";

/// The condition of an outcome filter: a kind, or a label as
/// [`super::Outcome::label`] writes it (a SOAP fault code's name is looked up first).
fn outcome_condition(
    text: &str,
    lookup: &mut Lookup<'_>,
) -> Result<Option<(String, Vec<Param>)>, JournalError> {
    let invalid = || JournalError::InvalidFilter {
        filter: "outcome",
        value: text.to_owned(),
        expected: OUTCOME_EXPECTED,
    };
    let trimmed = text.trim();
    Ok(Some(match trimmed {
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
                Err(_) => match lookup(NAME, &[Param::Text(code.to_owned())])?.first() {
                    Some(id) => (
                        "c.outcome = 1 AND c.fault_name = ?".to_owned(),
                        vec![Param::Int(*id)],
                    ),
                    None => return Ok(None),
                },
            }
        }
    }))
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

/// The WHERE clause of a call query (its criteria, one of them turned around if asked), the
/// ids of the names and certificates it names looked up first with `lookup`.
pub fn call_filter(
    query: &CallQuery,
    dialect: Dialect,
    lookup: &mut Lookup<'_>,
) -> Result<Filter, JournalError> {
    let mut filter = Filter::default();
    let negate = |criterion| query.negate == Some(criterion);
    let text = |value: &str| Param::Text(value.to_owned());
    // The conditions on a caller's certificates or a supplier (at most that one's calls).
    let mut drivers = Vec::new();
    filter.per_call = query.caller.is_some()
        || query.caller_id.is_some()
        || query.cvr.is_some()
        || query.supplier.is_some()
        || query.before_id.is_some()
        || query.after_id.is_some()
        || matches!(query.negate, Some(Criterion::Since | Criterion::Until));
    if let Some(caller) = &query.caller {
        let ids = lookup(
            "SELECT id FROM certificates WHERE caller_id = ? OR cvr = ?",
            &[text(caller), text(caller)],
        )?;
        let at = filter.conditions.len();
        filter.one_of(negate(Criterion::Caller), "c.certificate", ids);
        if !negate(Criterion::Caller) {
            drivers.extend(at..filter.conditions.len());
        }
    }
    if let Some(caller_id) = &query.caller_id {
        let ids = lookup(
            "SELECT id FROM certificates WHERE caller_id = ?",
            &[text(caller_id)],
        )?;
        let at = filter.conditions.len();
        filter.one_of(negate(Criterion::CallerId), "c.certificate", ids);
        if !negate(Criterion::CallerId) {
            drivers.extend(at..filter.conditions.len());
        }
    }
    if let Some(cvr) = &query.cvr {
        let ids = lookup("SELECT id FROM certificates WHERE cvr = ?", &[text(cvr)])?;
        let at = filter.conditions.len();
        filter.one_of(negate(Criterion::Cvr), "c.certificate", ids);
        if !negate(Criterion::Cvr) {
            drivers.extend(at..filter.conditions.len());
        }
    }
    if let Some(supplier) = &query.supplier {
        let ids = lookup(
            match dialect {
                Dialect::Sqlite => "SELECT id FROM names WHERE text = ? COLLATE NOCASE",
                Dialect::Postgres => {
                    "SELECT id FROM names WHERE lower(text) = lower(CAST(? AS TEXT))"
                }
            },
            &[text(supplier)],
        )?;
        if dialect == Dialect::Sqlite && !negate(Criterion::Supplier) && !ids.is_empty() {
            // SQLite's calls have no supplier index (schema 8): the certificates that called
            // as the supplier narrow it by theirs, unless one of its calls had none (0).
            let values: Vec<Param> = ids.iter().copied().map(Param::Int).collect();
            let certificates = lookup(
                &format!(
                    "SELECT DISTINCT certificate FROM certificate_suppliers WHERE supplier IN ({})",
                    vec!["?"; values.len()].join(", ")
                ),
                &values,
            )?;
            if !certificates.contains(&0) && certificates.len() <= MAX_DRIVING_CERTIFICATES {
                drivers.push(filter.conditions.len());
                filter.one_of(false, "c.certificate", certificates);
            }
        }
        filter.one_of(negate(Criterion::Supplier), "c.supplier", ids);
    }
    if let Some(service) = &query.service {
        // Whole leading segments of the path: `JobcenterMessageService`, or `service/Påmindelse`
        // for /service/Påmindelse/1/X.svc; the first segment's index narrows it.
        let service = service.trim_matches('/');
        let first = service.split('/').next().unwrap_or_default();
        let first = lookup(NAME, &[text(first)])?;
        let endpoints = if first.is_empty() {
            Vec::new()
        } else {
            lookup(
                "SELECT id FROM names WHERE text = ? OR substr(text, 1, length(CAST(? AS TEXT))) = ?",
                &[
                    Param::Text(format!("/{service}")),
                    Param::Text(format!("/{service}/")),
                    Param::Text(format!("/{service}/")),
                ],
            )?
        };
        if first.is_empty() || endpoints.is_empty() {
            filter.one_of(negate(Criterion::Service), "c.service", Vec::new());
        } else {
            let mut both = Filter::default();
            both.one_of(false, "c.service", first);
            both.one_of(false, "c.endpoint", endpoints);
            filter.add(negate(Criterion::Service), &both.expression(), both.values);
        }
    }
    if let Some(operation) = &query.operation {
        let ids = lookup(NAME, &[text(operation)])?;
        filter.one_of(negate(Criterion::Operation), "c.operation", ids);
    }
    if let Some(action) = &query.soap_action {
        let ids = lookup(NAME, &[text(action)])?;
        filter.one_of(negate(Criterion::SoapAction), "c.soap_action", ids);
    }
    if let Some(path) = &query.path {
        let ids = lookup(NAME, &[text(path)])?;
        filter.one_of(negate(Criterion::Path), "c.endpoint", ids);
    }
    if let Some(since) = query.since {
        if !negate(Criterion::Since) {
            filter.window.push(filter.conditions.len());
            filter.since = Some(to_micros(since));
        }
        filter.add(
            negate(Criterion::Since),
            "c.time_us >= ?",
            [Param::Int(to_micros(since))],
        );
    }
    if let Some(until) = query.until {
        if !negate(Criterion::Until) {
            filter.window.push(filter.conditions.len());
            filter.until = Some(to_micros(until));
        }
        filter.add(
            negate(Criterion::Until),
            "c.time_us < ?",
            [Param::Int(to_micros(until))],
        );
    }
    if let Some(outcome) = &query.outcome {
        match outcome_condition(outcome, lookup)? {
            Some((condition, values)) => filter.add(negate(Criterion::Outcome), &condition, values),
            None => filter.one_of(negate(Criterion::Outcome), "c.fault_name", Vec::new()),
        }
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
    if dialect == Dialect::Sqlite && !drivers.is_empty() {
        // SQLite has no statistics of the calls (the store never runs ANALYZE): given
        // `certificate = ? AND operation = ?` it may walk the operation's index over every
        // call instead of the caller's few. A unary + keeps the other columns from being
        // picked (SQLite's documented way), so the caller's or supplier's index drives.
        for (at, condition) in filter.conditions.iter_mut().enumerate() {
            if !drivers.contains(&at) {
                *condition = unindexed(condition);
            }
        }
    }
    Ok(filter)
}

/// `condition` with its indexed columns (but the id) behind a unary +, so that SQLite does
/// not pick their indexes for it.
fn unindexed(condition: &str) -> String {
    let mut condition = condition.to_owned();
    for column in [
        "c.certificate",
        "c.supplier",
        "c.service",
        "c.operation",
        "c.time_us",
        "c.outcome",
    ] {
        condition = condition.replace(column, &format!("+{column}"));
    }
    condition
}

/// Whether a count of `query` is best answered on its own from an index (a caller, a
/// supplier, faults) rather than in one pass with other broad counts.
fn is_narrow(query: &CallQuery) -> bool {
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
            || faults)
}

/// Counts each of `queries` (their filters made with [`call_filter`]): one that no call can
/// meet is 0 at once; the narrow ones with `count` one by one from their indexes; the broad
/// rest with `together` in one pass over the calls, which counts every call as well when
/// one of the queries has no criterion (all calls: nearly free in that pass).
pub fn count_each(
    queries: &[CallQuery],
    filters: Vec<Filter>,
    mut count: impl FnMut(&Filter) -> Result<u64, JournalError>,
    together: impl FnOnce(&[Filter]) -> Result<Vec<u64>, JournalError>,
) -> Result<Vec<u64>, JournalError> {
    let mut counts = vec![0; queries.len()];
    let (mut broad, mut all) = (Vec::new(), Vec::new());
    for (index, (query, filter)) in queries.iter().zip(&filters).enumerate() {
        if filter.never {
            continue;
        }
        if filter.conditions.is_empty() {
            all.push(index);
        } else if is_narrow(query) {
            counts[index] = count(filter)?;
        } else {
            broad.push(index);
        }
    }
    if broad.len() == 1 && all.is_empty() {
        counts[broad[0]] = count(&filters[broad[0]])?;
    } else if !broad.is_empty() {
        broad.extend(all.first());
        let together_filters: Vec<Filter> = broad.iter().map(|i| filters[*i].clone()).collect();
        for (index, count) in broad.iter().zip(together(&together_filters)?) {
            counts[*index] = count;
        }
        if let Some(first) = all.first() {
            let total = counts[*first];
            for index in &all {
                counts[*index] = total;
            }
        }
    } else if let Some(first) = all.first() {
        let total = count(&filters[*first])?;
        for index in &all {
            counts[*index] = total;
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
        let mut asked = Vec::new();
        let mut lookup = |sql: &str, values: &[Param]| {
            asked.push((sql.to_owned(), values.to_vec()));
            Ok(vec![7, 9])
        };
        let sqlite = call_filter(&query, Dialect::Sqlite, &mut lookup).unwrap();
        let postgres = call_filter(&query, Dialect::Postgres, &mut lookup).unwrap();
        assert!(asked[0].0.contains("COLLATE NOCASE"), "{asked:?}");
        // On SQLite the supplier's certificates are looked up next, and their index drives.
        assert!(asked[1].0.contains("certificate_suppliers"), "{asked:?}");
        assert_eq!(asked[1].1, [Param::Int(7), Param::Int(9)]);
        assert!(asked[2].0.contains("lower(text)"), "{asked:?}");
        assert_eq!(asked[0].1, asked[2].1);
        assert_eq!(
            sqlite.conditions,
            ["c.certificate IN (?, ?)", "+c.supplier IN (?, ?)"]
        );
        assert_eq!(postgres.conditions, ["c.supplier IN (?, ?)"]);
        assert_eq!(postgres.values, [Param::Int(7), Param::Int(9)]);
        assert_eq!(sqlite.values[2..], postgres.values);
    }

    #[test]
    fn a_name_never_journaled_matches_nothing_and_turned_around_drops_out() {
        let query = CallQuery {
            operation: Some("NobodyCalledThis".to_owned()),
            caller_id: Some("CVR:1".to_owned()),
            ..CallQuery::default()
        };
        let mut lookup = |sql: &str, _: &[Param]| {
            Ok(if sql.contains("certificates") {
                vec![4]
            } else {
                Vec::new()
            })
        };
        let filter = call_filter(&query, Dialect::Sqlite, &mut lookup).unwrap();
        assert!(filter.never);
        let near = CallQuery {
            negate: Some(Criterion::Operation),
            ..query.clone()
        };
        let filter = call_filter(&near, Dialect::Postgres, &mut lookup).unwrap();
        assert!(!filter.never);
        assert_eq!(filter.conditions, ["c.certificate = ?"]);
        assert_eq!(filter.values, [Param::Int(4)]);
        assert_eq!(
            filter.counted(),
            "COUNT(*) FILTER (WHERE c.certificate = ?)"
        );
    }

    #[test]
    fn a_time_window_is_kept_apart_from_the_conditions_totals_can_answer() {
        let since = time::macros::datetime!(2026-05-01 10:00 UTC);
        let query = CallQuery {
            operation: Some("SaveAvailabilityAssessment".to_owned()),
            since: Some(since),
            outcome: Some("fault 1014".to_owned()),
            ..CallQuery::default()
        };
        let mut lookup = |_: &str, _: &[Param]| Ok(vec![3]);
        let filter = call_filter(&query, Dialect::Sqlite, &mut lookup).unwrap();
        assert!(!filter.per_call);
        assert_eq!(filter.window, [1]);
        assert_eq!(filter.since, Some(to_micros(since)));
        let rest = filter.without(&filter.window);
        assert_eq!(
            rest.conditions,
            ["c.operation = ?", "c.outcome = 1 AND c.fault_code = ?"]
        );
        assert_eq!(rest.values, [Param::Int(3), Param::Int(1014)]);
        // A caller, or the window turned around, needs each call.
        for query in [
            CallQuery {
                cvr: Some("12345678".to_owned()),
                ..query.clone()
            },
            CallQuery {
                negate: Some(Criterion::Since),
                ..query.clone()
            },
        ] {
            let filter = call_filter(&query, Dialect::Sqlite, &mut lookup).unwrap();
            assert!(filter.per_call, "{query:?}");
        }
    }

    #[test]
    fn on_sqlite_a_callers_certificate_index_drives_its_query() {
        let query = CallQuery {
            cvr: Some("12345678".to_owned()),
            operation: Some("SaveAvailabilityAssessment".to_owned()),
            outcome: Some("fault 1014".to_owned()),
            ..CallQuery::default()
        };
        let mut lookup = |_: &str, _: &[Param]| Ok(vec![3]);
        let sqlite = call_filter(&query, Dialect::Sqlite, &mut lookup).unwrap();
        assert_eq!(
            sqlite.conditions,
            [
                "c.certificate = ?",
                "+c.operation = ?",
                "+c.outcome = 1 AND c.fault_code = ?"
            ]
        );
        let postgres = call_filter(&query, Dialect::Postgres, &mut lookup).unwrap();
        assert_eq!(postgres.conditions[1], "c.operation = ?");
        let near = CallQuery {
            negate: Some(Criterion::Cvr),
            ..query
        };
        let sqlite = call_filter(&near, Dialect::Sqlite, &mut lookup).unwrap();
        assert_eq!(sqlite.conditions[1], "c.operation = ?");
    }
}

//! The terminal tables of the command line: journaled calls (`calls`, and `calls --follow`, which
//! prints the same columns as rows arrive), refused handshakes (`calls --rejected`), registered
//! suppliers (`supplier list`), WSB's deliveries and checks ([`wsb`]). Every column is as wide as
//! its widest cell ([`Columns`]), so the table stays aligned whatever the length of caller ids,
//! operations or rule names. Every table names a call's operation the same way ([`operation`]) as
//! the admin API, the dashboard and `verify` do.

use std::io::{self, Write};

use time::OffsetDateTime;

use crate::journal::{CallRecord, StoredCall, StoredRejection};

pub mod wsb;
use crate::supplier::Supplier;

/// A time as `2026-11-27 10:00:00` (UTC).
pub fn short_time(time: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// Column widths: each column as wide as its widest cell (in characters), two spaces between
/// columns, the last one not padded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Columns {
    widths: Vec<usize>,
}

impl Columns {
    /// Widths that fit `header` and every row.
    pub fn fit<S: AsRef<str>>(header: &[&str], rows: &[Vec<S>]) -> Columns {
        let mut columns = Columns {
            widths: header.iter().map(|h| h.chars().count()).collect(),
        };
        for row in rows {
            columns.widen(row);
        }
        columns
    }

    /// Makes the columns wide enough for `cells`; whether any grew that aligns what follows it
    /// (the last column is never padded, so its growing moves nothing).
    pub fn widen<S: AsRef<str>>(&mut self, cells: &[S]) -> bool {
        let mut grew = false;
        let aligned = self.widths.len().saturating_sub(1);
        for (width, cell) in self.widths.iter_mut().zip(cells).take(aligned) {
            let length = cell.as_ref().chars().count();
            if length > *width {
                *width = length;
                grew = true;
            }
        }
        grew
    }

    /// Writes one line of `cells`.
    pub fn line<S: AsRef<str>>(&self, out: &mut impl Write, cells: &[S]) -> io::Result<()> {
        let mut line = String::new();
        for (index, cell) in cells.iter().enumerate() {
            let cell = cell.as_ref();
            if index + 1 == cells.len() {
                line.push_str(cell);
            } else {
                let width = self.widths.get(index).copied().unwrap_or(0);
                line.push_str(cell);
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", line.trim_end())
    }
}

/// The operation a call is known by everywhere: its Body element's local name, which the
/// catalog routes by (and `--operation`, `verify` and the API's `operation` filter match).
pub fn operation(record: &CallRecord) -> &str {
    record.operation.as_deref().unwrap_or("-")
}

/// The call's findings in one cell: how many, and the first one's place ("1: SOAPAction").
pub fn findings(record: &CallRecord) -> String {
    match record.findings.first() {
        None => "-".to_owned(),
        Some(first) => format!("{}: {}", record.findings.len(), first.path),
    }
}

fn caller(record: &CallRecord) -> &str {
    record
        .identity
        .as_ref()
        .map_or("(no certificate)", |identity| identity.caller_id.as_str())
}

fn rule(record: &CallRecord) -> String {
    match (&record.scenario_file, &record.scenario_rule) {
        (Some(file), Some(rule)) => format!("{file}#{rule}"),
        (None, Some(rule)) => rule.clone(),
        _ => "-".to_owned(),
    }
}

/// The columns of `calls` and `calls --follow`.
pub const CALL_HEADER: [&str; 8] = [
    "ID",
    "TIME (UTC)",
    "CALLER",
    "OPERATION",
    "OUTCOME",
    "RECEIPT",
    "RULE",
    "FINDINGS",
];

/// One call as the cells of [`CALL_HEADER`].
pub fn call_cells(call: &StoredCall) -> Vec<String> {
    let record = &call.record;
    vec![
        call.id.to_string(),
        short_time(record.time),
        caller(record).to_owned(),
        operation(record).to_owned(),
        record.outcome.label(),
        record
            .receipts
            .first()
            .map_or("-", String::as_str)
            .to_owned(),
        rule(record),
        findings(record),
    ]
}

/// `calls`: newest first, with the receipt, the scenario rule and the findings.
pub fn calls(out: &mut impl Write, calls: &[StoredCall]) -> io::Result<()> {
    let rows: Vec<Vec<String>> = calls.iter().map(call_cells).collect();
    rows_of_calls(out, &rows)
}

/// [`calls`] from rows already made with [`call_cells`].
pub fn rows_of_calls(out: &mut impl Write, rows: &[Vec<String>]) -> io::Result<()> {
    let columns = Columns::fit(&CALL_HEADER, rows);
    columns.line(out, &CALL_HEADER)?;
    for row in rows {
        columns.line(out, row)?;
    }
    if rows.is_empty() {
        writeln!(out, "(no calls)")?;
    }
    Ok(())
}

/// `calls --follow`: the columns of [`calls`], wide enough for the usual ids from the start; a
/// row wider than that widens its columns and repeats the header, so what follows stays aligned.
#[derive(Debug)]
pub struct Follow {
    columns: Columns,
}

impl Follow {
    /// Widths for the rows printed first, and at least those of an OCES3 caller id, a GUID, an
    /// operation and a rule of ordinary length.
    pub fn new(first: &[Vec<String>]) -> Follow {
        let usual = vec![
            "123456".to_owned(),
            "2026-11-27 10:00:00".to_owned(),
            "CVR:91234567-UUID:3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13".to_owned(),
            "SaveAvailabilityAssessment".to_owned(),
            "fault 1014".to_owned(),
            "00000000-0000-0000-0000-000000000000".to_owned(),
            "onboarding.toml#person-status".to_owned(),
            String::new(),
        ];
        let mut columns = Columns::fit(&CALL_HEADER, first);
        columns.widen(&usual);
        Follow { columns }
    }

    pub fn header(&self, out: &mut impl Write) -> io::Result<()> {
        self.columns.line(out, &CALL_HEADER)
    }

    pub fn columns(&self) -> &Columns {
        &self.columns
    }

    pub fn row(&mut self, out: &mut impl Write, cells: &[String]) -> io::Result<()> {
        if self.columns.widen(cells) {
            self.header(out)?;
        }
        self.columns.line(out, cells)
    }
}

/// `calls --rejected`: refused TLS handshakes, newest first.
pub fn rejections(out: &mut impl Write, rejections: &[StoredRejection]) -> io::Result<()> {
    let header = ["ID", "TIME (UTC)", "PEER", "REASON", "PRESENTED", "DETAIL"];
    let rows: Vec<Vec<String>> = rejections
        .iter()
        .map(|rejection| {
            let record = &rejection.record;
            vec![
                rejection.id.to_string(),
                short_time(record.time),
                record.peer.clone(),
                record.reason.as_str().to_owned(),
                record
                    .identity
                    .as_ref()
                    .map_or("-", |i| i.caller_id.as_str())
                    .to_owned(),
                record.detail.clone(),
            ]
        })
        .collect();
    let columns = Columns::fit(&header, &rows);
    columns.line(out, &header)?;
    for row in &rows {
        columns.line(out, row)?;
    }
    if rejections.is_empty() {
        writeln!(out, "(no refused handshakes)")?;
    }
    Ok(())
}

/// `supplier list`.
pub fn suppliers(out: &mut impl Write, suppliers: &[Supplier]) -> io::Result<()> {
    let header = ["NAME", "CVR", "CATEGORY", "SERVICES", "IDENTITIES"];
    let rows: Vec<Vec<String>> = suppliers
        .iter()
        .map(|supplier| {
            let mut identities = supplier.identities.join(", ");
            if !supplier.revoked.is_empty() {
                identities.push_str(&format!(" (revoked: {})", supplier.revoked.join(", ")));
            }
            vec![
                supplier.name.clone(),
                supplier.cvr.clone(),
                supplier.category.as_str().to_owned(),
                supplier.services.join(","),
                identities,
            ]
        })
        .collect();
    let columns = Columns::fit(&header, &rows);
    columns.line(out, &header)?;
    for row in &rows {
        columns.line(out, row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn columns_fit_their_widest_cell_and_stay_aligned() {
        let rows = vec![
            vec!["1".to_owned(), "CVR:1-UUID:a".to_owned(), "x".to_owned()],
            vec![
                "22".to_owned(),
                "CVR:91234567-UUID:3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13-long".to_owned(),
                "y".to_owned(),
            ],
        ];
        let columns = Columns::fit(&["ID", "CALLER", "LAST"], &rows);
        let table = text(|out| {
            columns.line(out, &["ID", "CALLER", "LAST"])?;
            rows.iter().try_for_each(|row| columns.line(out, row))
        });
        let starts: Vec<usize> = table.lines().map(|line| line.rfind(' ').unwrap()).collect();
        assert!(starts.windows(2).all(|w| w[0] == w[1]), "{table}");
        assert!(table.lines().all(|line| !line.ends_with(' ')), "{table}");
    }

    #[test]
    fn a_follow_row_wider_than_its_columns_repeats_the_header() {
        let mut follow = Follow::new(&[]);
        let mut row: Vec<String> = Follow::new(&[])
            .columns
            .widths
            .iter()
            .map(|_| "x".to_owned())
            .collect();
        let printed = text(|out| {
            follow.header(out)?;
            follow.row(out, &row)?;
            // A long last column (the findings) moves nothing: no new header.
            *row.last_mut().unwrap() = "1: SOAPAction; 2: /GetCodeListNames/x".to_owned();
            follow.row(out, &row)?;
            row[2] = "C".repeat(80);
            follow.row(out, &row)
        });
        assert_eq!(
            printed.lines().filter(|l| l.starts_with("ID")).count(),
            2,
            "{printed}"
        );
    }
}

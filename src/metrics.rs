//! In-memory counters since start, for `/metrics` on the admin listener, rendered in the
//! Prometheus text format: calls by service/operation/outcome, refused handshakes by reason, a
//! latency histogram, and (read at render time) the journal writer's counters: queue depth,
//! commits, failed commits, whether it can commit, and what retention pruning removed.
//!
//! [`crate::app::App`] updates them when a call or refusal is journaled; they are never reset
//! (Prometheus counters only grow; a journal reset does not touch them).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::journal::{JournalStats, RejectionReason};

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 10] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// How many distinct (service, operation, outcome) series are kept; further ones are counted
/// under `other`, so a client inventing operation names cannot grow memory without bound.
pub const MAX_SERIES: usize = 1000;

/// A series' names, owned (the map's keys) or borrowed (a look-up), compared as the tuple of
/// owned names is: so the map is searched without building an owned key.
trait SeriesKey {
    fn names(&self) -> (&str, &str, &str);
}

impl SeriesKey for (String, String, String) {
    fn names(&self) -> (&str, &str, &str) {
        (&self.0, &self.1, &self.2)
    }
}

impl SeriesKey for (&str, &str, &str) {
    fn names(&self) -> (&str, &str, &str) {
        *self
    }
}

impl<'a> std::borrow::Borrow<dyn SeriesKey + 'a> for (String, String, String) {
    fn borrow(&self) -> &(dyn SeriesKey + 'a) {
        self
    }
}

impl PartialEq for dyn SeriesKey + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.names() == other.names()
    }
}

impl Eq for dyn SeriesKey + '_ {}

impl PartialOrd for dyn SeriesKey + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn SeriesKey + '_ {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.names().cmp(&other.names())
    }
}

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Calls journaled, by (service, operation, outcome kind).
    calls: Mutex<BTreeMap<(String, String, String), u64>>,
    /// Refused handshakes, indexed like [`RejectionReason::ALL`].
    refusals: [AtomicU64; RejectionReason::ALL.len()],
    /// Latency histogram: one counter per bucket of [`LATENCY_BUCKETS`] (not cumulative) and
    /// one for +Inf.
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
    latency_count: AtomicU64,
}

impl Metrics {
    /// Counts one journaled call. An existing series is found by the borrowed names; only a new
    /// one allocates.
    pub fn record_call(&self, service: &str, operation: &str, outcome: &str, latency_micros: u64) {
        if let Ok(mut calls) = self.calls.lock() {
            let key: &dyn SeriesKey = &(service, operation, outcome);
            if let Some(count) = calls.get_mut(key) {
                *count += 1;
            } else if calls.len() < MAX_SERIES {
                calls.insert(
                    (service.to_owned(), operation.to_owned(), outcome.to_owned()),
                    1,
                );
            } else {
                let other = ("other".to_owned(), "other".to_owned(), outcome.to_owned());
                *calls.entry(other).or_default() += 1;
            }
        }
        let seconds = latency_micros as f64 / 1e6;
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(latency_micros, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one refused handshake.
    pub fn record_refusal(&self, reason: RejectionReason) {
        if let Some(index) = RejectionReason::ALL.iter().position(|r| *r == reason) {
            self.refusals[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition (format 0.0.4); every sample labelled `replica="…"`
    /// when a replica name is given.
    pub fn render(&self, journal: &JournalStats, replica: Option<&str>) -> String {
        let text = self.render_samples(journal);
        match replica {
            Some(replica) => with_label(&text, "replica", replica),
            None => text,
        }
    }

    fn render_samples(&self, journal: &JournalStats) -> String {
        let mut out = String::new();
        out.push_str("# HELP dfdg_mock_calls_total SOAP calls journaled since start.\n");
        out.push_str("# TYPE dfdg_mock_calls_total counter\n");
        if let Ok(calls) = self.calls.lock() {
            for ((service, operation, outcome), count) in calls.iter() {
                let _ = writeln!(
                    out,
                    "dfdg_mock_calls_total{{service=\"{}\",operation=\"{}\",outcome=\"{}\"}} {count}",
                    label(service),
                    label(operation),
                    label(outcome)
                );
            }
        }
        out.push_str(
            "# HELP dfdg_mock_refused_handshakes_total TLS handshakes refused since start.\n",
        );
        out.push_str("# TYPE dfdg_mock_refused_handshakes_total counter\n");
        for (reason, count) in RejectionReason::ALL.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "dfdg_mock_refused_handshakes_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP dfdg_mock_call_duration_seconds Time from request to journaled answer.\n",
        );
        out.push_str("# TYPE dfdg_mock_call_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "dfdg_mock_call_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.latency_buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "dfdg_mock_call_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "dfdg_mock_call_duration_seconds_sum {}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "dfdg_mock_call_duration_seconds_count {}",
            self.latency_count.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP dfdg_mock_journal_queue_depth Entries waiting for the journal writer.\n",
        );
        out.push_str("# TYPE dfdg_mock_journal_queue_depth gauge\n");
        let _ = writeln!(out, "dfdg_mock_journal_queue_depth {}", journal.queue_depth);
        let counters = [
            (
                "dfdg_mock_journal_commits_total",
                "Transactions the journal writer committed (group commit: many calls each).",
                journal.batches,
            ),
            (
                "dfdg_mock_journal_failed_commits_total",
                "Journal transactions that failed (disk full, not writable, ...).",
                journal.failed_batches,
            ),
            (
                "dfdg_mock_journal_pruned_rejections_total",
                "Refused handshakes removed by retention pruning.",
                journal.pruned_rejections,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out.push_str("# HELP dfdg_mock_journal_available Whether the journal can commit (0: calls get fault 1011).\n");
        out.push_str("# TYPE dfdg_mock_journal_available gauge\n");
        let _ = writeln!(
            out,
            "dfdg_mock_journal_available {}",
            u8::from(journal.available)
        );
        out.push_str("# HELP dfdg_mock_journal_prune_steps_total Retention pruning steps, by the limit that was exceeded.\n");
        out.push_str("# TYPE dfdg_mock_journal_prune_steps_total counter\n");
        for (reason, steps, _) in &journal.pruned {
            let _ = writeln!(
                out,
                "dfdg_mock_journal_prune_steps_total{{reason=\"{}\"}} {steps}",
                reason.as_str()
            );
        }
        out.push_str("# HELP dfdg_mock_journal_pruned_calls_total Calls removed by retention pruning, by the limit that was exceeded.\n");
        out.push_str("# TYPE dfdg_mock_journal_pruned_calls_total counter\n");
        for (reason, _, calls) in &journal.pruned {
            let _ = writeln!(
                out,
                "dfdg_mock_journal_pruned_calls_total{{reason=\"{}\"}} {calls}",
                reason.as_str()
            );
        }
        out
    }
}

/// `text` with `name="value"` added to every sample's labels.
fn with_label(text: &str, name: &str, value: &str) -> String {
    let label = format!("{name}=\"{}\"", label(value));
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else if let Some((metric, rest)) = line.split_once('{') {
            let _ = write!(out, "{metric}{{{label},{rest}");
        } else if let Some((metric, value)) = line.split_once(' ') {
            let _ = write!(out, "{metric}{{{label}}} {value}");
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A label value escaped as the text format requires.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauge() {
        let metrics = Metrics::default();
        metrics.record_call("JobcenterMessageService", "Save\"A", "receipt", 2_000);
        metrics.record_call("JobcenterMessageService", "Save\"A", "receipt", 2_000_000);
        metrics.record_refusal(RejectionReason::UnknownCa);
        let stats = JournalStats {
            queue_depth: 3,
            available: true,
            pruned: vec![(crate::journal::PruneReason::MaxCalls, 2, 512)],
            ..JournalStats::default()
        };
        let text = metrics.render(&stats, None);
        assert!(text.contains(
            "dfdg_mock_calls_total{service=\"JobcenterMessageService\",operation=\"Save\\\"A\",outcome=\"receipt\"} 2"
        ), "{text}");
        assert!(text.contains("dfdg_mock_refused_handshakes_total{reason=\"unknown_ca\"} 1"));
        assert!(text.contains("dfdg_mock_call_duration_seconds_bucket{le=\"0.0025\"} 1"));
        assert!(text.contains("dfdg_mock_call_duration_seconds_bucket{le=\"1\"} 1"));
        assert!(text.contains("dfdg_mock_call_duration_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("dfdg_mock_call_duration_seconds_count 2"));
        assert!(text.contains("dfdg_mock_journal_queue_depth 3"));
        assert!(text.contains("dfdg_mock_journal_available 1"));
        assert!(text.contains("dfdg_mock_journal_pruned_calls_total{reason=\"max_calls\"} 512"));
        assert!(text.contains("dfdg_mock_journal_prune_steps_total{reason=\"max_calls\"} 2"));
        let labelled = metrics.render(&stats, Some("replica-a"));
        assert!(labelled.contains("dfdg_mock_journal_queue_depth{replica=\"replica-a\"} 3"));
        assert!(labelled.contains(
            "dfdg_mock_refused_handshakes_total{replica=\"replica-a\",reason=\"unknown_ca\"} 1"
        ));
        assert_eq!(
            labelled.lines().filter(|l| !l.starts_with('#')).count(),
            labelled
                .lines()
                .filter(|l| l.contains("replica=\"replica-a\""))
                .count()
        );
    }

    #[test]
    fn series_are_found_by_their_names_and_bounded() {
        let metrics = Metrics::default();
        // Names whose tuple order differs from their concatenation's: "a"+"bc" vs "ab"+"c".
        metrics.record_call("a", "bc", "receipt", 1);
        metrics.record_call("ab", "c", "receipt", 1);
        metrics.record_call("a", "bc", "receipt", 1);
        for n in 0..MAX_SERIES + 5 {
            metrics.record_call("S", &format!("Op{n:04}"), "http", 1);
        }
        metrics.record_call("a", "bc", "receipt", 1);
        let calls = metrics.calls.lock().unwrap();
        let count = |s: &str, o: &str, k: &str| {
            calls
                .get(&(s.to_owned(), o.to_owned(), k.to_owned()))
                .copied()
        };
        assert_eq!(count("a", "bc", "receipt"), Some(3));
        assert_eq!(count("ab", "c", "receipt"), Some(1));
        assert_eq!(calls.len(), MAX_SERIES + 1, "the series kept and `other`");
        assert_eq!(count("other", "other", "http"), Some(7));
    }
}

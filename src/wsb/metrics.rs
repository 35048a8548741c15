//! WSB's counters since start, rendered for `/metrics` (Prometheus text format) beside the SOAP
//! side's: messages sent, deliveries queued, attempts by how they ended, subscription syncs by
//! answer, pushes that could not be queued; the queue's gauges are read at render time.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::store::Outcome;
use super::QueueStats;

/// The counters; never reset.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages stored (whether or not a subscription matched).
    messages: AtomicU64,
    /// Deliveries queued, replays included.
    deliveries: AtomicU64,
    /// Attempts, indexed like [`Outcome::ALL`].
    attempts: [AtomicU64; Outcome::ALL.len()],
    /// Sync requests answered 200, 400, 500.
    syncs: [AtomicU64; 3],
    /// Messages refused before any delivery was queued (queue full, stopped, invalid).
    refused: AtomicU64,
}

impl Counters {
    pub(super) fn message(&self, deliveries: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.deliveries
            .fetch_add(deliveries as u64, Ordering::Relaxed);
    }

    pub(super) fn replay(&self) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn attempt(&self, outcome: Outcome) {
        if let Some(index) = Outcome::ALL.iter().position(|o| *o == outcome) {
            self.attempts[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn sync(&self, status: u16) {
        let index = match status {
            200 => 0,
            400 => 1,
            _ => 2,
        };
        self.syncs[index].fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text of the counters and of `queue`.
    pub fn render(&self, queue: QueueStats) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "dfdg_mock_wsb_messages_total",
            "WSB messages sent as STAR since start.",
            self.messages.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "dfdg_mock_wsb_deliveries_total",
            "WSB deliveries queued (one per message and matching subscription; replays too).",
            self.deliveries.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "dfdg_mock_wsb_refused_messages_total",
            "WSB messages refused before queueing (queue full, invalid, worker stopped).",
            self.refused.load(Ordering::Relaxed),
        );
        out.push_str(
            "# HELP dfdg_mock_wsb_attempts_total WSB delivery attempts, by how they ended.\n",
        );
        out.push_str("# TYPE dfdg_mock_wsb_attempts_total counter\n");
        for (outcome, count) in Outcome::ALL.iter().zip(&self.attempts) {
            let _ = writeln!(
                out,
                "dfdg_mock_wsb_attempts_total{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                count.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP dfdg_mock_wsb_subscription_syncs_total SyncWebhookAbonnementer requests, by HTTP status.\n",
        );
        out.push_str("# TYPE dfdg_mock_wsb_subscription_syncs_total counter\n");
        for (status, count) in ["200", "400", "500"].iter().zip(&self.syncs) {
            let _ = writeln!(
                out,
                "dfdg_mock_wsb_subscription_syncs_total{{status=\"{status}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            (
                "dfdg_mock_wsb_queue_undelivered",
                "WSB deliveries not yet delivered, failed or dropped.",
                queue.undelivered,
            ),
            (
                "dfdg_mock_wsb_queue_capacity",
                "The most undelivered WSB deliveries at once.",
                queue.capacity,
            ),
            (
                "dfdg_mock_wsb_in_flight",
                "WSB delivery attempts running now.",
                queue.in_flight,
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_by_outcome_and_the_queue() {
        let counters = Counters::default();
        counters.message(2);
        counters.attempt(Outcome::ServerError);
        counters.attempt(Outcome::ServerError);
        counters.attempt(Outcome::Delivered);
        counters.sync(400);
        let text = counters.render(QueueStats {
            undelivered: 1,
            capacity: 10,
            in_flight: 0,
        });
        for line in [
            "dfdg_mock_wsb_messages_total 1",
            "dfdg_mock_wsb_deliveries_total 2",
            "dfdg_mock_wsb_attempts_total{outcome=\"server_error\"} 2",
            "dfdg_mock_wsb_attempts_total{outcome=\"delivered\"} 1",
            "dfdg_mock_wsb_subscription_syncs_total{status=\"400\"} 1",
            "dfdg_mock_wsb_queue_undelivered 1",
            "dfdg_mock_wsb_queue_capacity 10",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}

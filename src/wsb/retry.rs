//! When a failed delivery is tried again: the retry policy (STAR's intended rule or STAR's
//! practice) and the backoff `min(cap, 2^n − 1)` seconds after the n-th failure, with a time
//! unit that tests compress. Pure.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// STAR's cap on the wait between attempts: 3 hours.
pub const DEFAULT_CAP_SECONDS: u64 = 10_800;

/// Which failures are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryPolicy {
    /// STAR's intended rule: only a 5xx answer puts the message on the resend queue; a 3xx or
    /// 4xx answer or a connection or TLS failure gives it up.
    ServerErrors,
    /// STAR's practice, as its own analysis found it: everything but a 2xx is tried again
    /// (4xx answers, certificate problems, connection errors). The default.
    #[default]
    AllFailures,
}

impl RetryPolicy {
    /// Is a delivery that ended this way tried again?
    pub fn retries(self, outcome: OutcomeClass) -> bool {
        match (self, outcome) {
            (_, OutcomeClass::Delivered) => false,
            (_, OutcomeClass::ServerError) => true,
            (RetryPolicy::AllFailures, _) => true,
            (RetryPolicy::ServerErrors, _) => false,
        }
    }

    /// `server-errors` or `all-failures`.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryPolicy::ServerErrors => "server-errors",
            RetryPolicy::AllFailures => "all-failures",
        }
    }
}

impl FromStr for RetryPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "server-errors" | "5xx" => Ok(RetryPolicy::ServerErrors),
            "all-failures" | "all" => Ok(RetryPolicy::AllFailures),
            other => Err(format!(
                "unknown retry policy {other:?}: use server-errors (STAR's intended rule: 5xx only) \
                 or all-failures (STAR's practice: 4xx and connection errors too)"
            )),
        }
    }
}

/// What kind of end an attempt had, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeClass {
    /// A 2xx answer.
    Delivered,
    /// A 5xx answer.
    ServerError,
    /// Anything else: 1xx/3xx/4xx, TLS, connection, timeout, not HTTP.
    OtherFailure,
}

/// The wait before the next attempt: `min(cap, 2^n − 1)` seconds after the n-th failure, each
/// "second" lasting `unit` (1 s in earnest; tests compress it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The longest wait, in backoff seconds (STAR: 10 800, 3 hours).
    pub cap_seconds: u64,
    /// How long one backoff second lasts.
    pub unit: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            cap_seconds: DEFAULT_CAP_SECONDS,
            unit: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// The wait after the `failures`-th failure (1-based), in backoff seconds.
    pub fn seconds(&self, failures: u32) -> u64 {
        let uncapped = match failures {
            0 => 0,
            1..=63 => (1u64 << failures) - 1,
            _ => u64::MAX,
        };
        uncapped.min(self.cap_seconds)
    }

    /// The wait after the `failures`-th failure, in real time.
    pub fn delay(&self, failures: u32) -> Duration {
        let seconds = u32::try_from(self.seconds(failures)).unwrap_or(u32::MAX);
        self.unit.saturating_mul(seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_minus_one_up_to_three_hours() {
        let backoff = Backoff::default();
        let waits: Vec<u64> = (1..=6).map(|n| backoff.seconds(n)).collect();
        assert_eq!(waits, [1, 3, 7, 15, 31, 63]);
        assert_eq!(backoff.seconds(13), 8191);
        assert_eq!(backoff.seconds(14), 10_800, "2^14 - 1 = 16383 is capped");
        assert_eq!(backoff.seconds(500), 10_800);
        assert_eq!(backoff.delay(2), Duration::from_secs(3));
        let compressed = Backoff {
            unit: Duration::from_millis(10),
            ..Backoff::default()
        };
        assert_eq!(compressed.delay(3), Duration::from_millis(70));
        assert_eq!(compressed.delay(99), Duration::from_millis(108_000));
    }

    #[test]
    fn policies_differ_on_everything_but_2xx_and_5xx() {
        use OutcomeClass::*;
        for policy in [RetryPolicy::ServerErrors, RetryPolicy::AllFailures] {
            assert!(!policy.retries(Delivered));
            assert!(policy.retries(ServerError));
        }
        assert!(!RetryPolicy::ServerErrors.retries(OtherFailure));
        assert!(RetryPolicy::AllFailures.retries(OtherFailure));
        assert_eq!(RetryPolicy::default(), RetryPolicy::AllFailures);
        assert_eq!("5xx".parse(), Ok(RetryPolicy::ServerErrors));
        assert!("sometimes"
            .parse::<RetryPolicy>()
            .unwrap_err()
            .contains("server-errors"));
    }
}

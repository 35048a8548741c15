//! The check "receives STAR's messages", per supplier, read from its deliveries: the other
//! half of onboarding ("can STAR call you"). Three things show a webhook receiver ready:
//!
//! 1. **delivered**: a message was answered with a 2xx;
//! 2. **duplicate handled**: the same message (`beskedId`) was delivered twice and answered 2xx
//!    both times — STAR delivers at least once, so a receiver must take a repeat calmly;
//! 3. **retried in order**: a message that failed at first was delivered on a retry, and the
//!    later messages for the same citizen and authority, held back meanwhile, were delivered
//!    after it.
//!
//! Pure: it looks at deliveries as stored and says which passed, with the evidence and, for
//! those that did not, what to do.

use serde::Serialize;

use super::store::{Delivery, DeliveryId, DeliveryState};

/// One of the three checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub passed: bool,
    /// The deliveries that show it (for a pass) or come closest.
    pub evidence: Vec<DeliveryId>,
    /// What it shows, or what to do to pass it.
    pub note: String,
}

/// The three checks of one supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receives {
    pub delivered: Check,
    pub duplicate: Check,
    pub retried_in_order: Check,
    /// All three passed.
    pub passed: bool,
}

/// The checks over `deliveries` (any order) of one supplier's systems.
pub fn receives(deliveries: &[Delivery]) -> Receives {
    let mut sorted: Vec<&Delivery> = deliveries.iter().collect();
    sorted.sort_by_key(|d| d.id);
    let delivered: Vec<&Delivery> = sorted
        .iter()
        .copied()
        .filter(|d| d.state == DeliveryState::Delivered)
        .collect();

    let delivered_check = match delivered.last() {
        Some(d) => Check {
            passed: true,
            evidence: vec![d.id],
            note: format!("delivery {} of message {} was answered 2xx", d.id, d.message_id),
        },
        None => Check {
            passed: false,
            evidence: Vec::new(),
            note: match sorted.last() {
                Some(last) => format!(
                    "no delivery answered 2xx yet; the latest, {}, is {}{}",
                    last.id,
                    last.state.as_str(),
                    last.last_detail
                        .as_deref()
                        .map_or(String::new(), |d| format!(": {d}"))
                ),
                None => "nothing sent yet: sync a subscription, then send a message (dfdg-mock wsb send, or the dashboard)".to_owned(),
            },
        },
    };

    let duplicate = delivered.iter().rev().find_map(|later| {
        delivered
            .iter()
            .find(|earlier| earlier.id < later.id && earlier.message_id == later.message_id)
            .map(|earlier| (*earlier, *later))
    });
    let duplicate_check = match duplicate {
        Some((first, second)) => Check {
            passed: true,
            evidence: vec![first.id, second.id],
            note: format!(
                "message {} was delivered twice (deliveries {} and {}) and answered 2xx both times",
                first.message_id, first.id, second.id
            ),
        },
        None => Check {
            passed: false,
            evidence: delivered.last().map(|d| vec![d.id]).unwrap_or_default(),
            note: match delivered.last() {
                Some(d) => format!(
                    "replay delivery {} (dfdg-mock wsb replay {}, or Replay on the dashboard): the same beskedId again must be answered 2xx",
                    d.id, d.id
                ),
                None => "a delivered message is needed first, then its replay".to_owned(),
            },
        },
    };

    let retried = delivered.iter().rev().find_map(|head| {
        if head.attempts < 2 {
            return None;
        }
        // The ones that waited behind it: same lane, sent before it was delivered.
        let followers: Vec<&Delivery> = sorted
            .iter()
            .copied()
            .filter(|d| {
                d.order_key == head.order_key && d.id > head.id && d.created_at <= head.updated_at
            })
            .collect();
        let in_order = !followers.is_empty()
            && followers
                .iter()
                .all(|d| d.state == DeliveryState::Delivered && d.updated_at >= head.updated_at);
        Some((*head, followers, in_order))
    });
    let retried_check = match retried {
        Some((head, followers, true)) => Check {
            passed: true,
            evidence: std::iter::once(head.id)
                .chain(followers.iter().map(|d| d.id))
                .collect(),
            note: format!(
                "delivery {} was delivered on attempt {}; {} later message(s) for the same citizen waited and were delivered after it",
                head.id,
                head.attempts,
                followers.len()
            ),
        },
        Some((head, followers, false)) => Check {
            passed: false,
            evidence: std::iter::once(head.id)
                .chain(followers.iter().map(|d| d.id))
                .collect(),
            note: if followers.is_empty() {
                format!(
                    "delivery {} was delivered on attempt {}, but no later message for the same citizen waited behind it: send two messages for one citizen while the webhook fails, then let it answer 2xx",
                    head.id, head.attempts
                )
            } else {
                format!(
                    "delivery {} was delivered on attempt {}, but not every message behind it is delivered yet",
                    head.id, head.attempts
                )
            },
        },
        None => Check {
            passed: false,
            evidence: Vec::new(),
            note: "no message was delivered on a retry yet: let the webhook answer 5xx, send two messages for one citizen, then let it answer 2xx; STAR retries after 1, 3, 7 … backoff seconds".to_owned(),
        },
    };
    let passed = delivered_check.passed && duplicate_check.passed && retried_check.passed;
    Receives {
        delivered: delivered_check,
        duplicate: duplicate_check,
        retried_in_order: retried_check,
        passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use time::OffsetDateTime;

    fn delivery(
        id: i64,
        message: u128,
        lane: &str,
        state: DeliveryState,
        attempts: u32,
        created: OffsetDateTime,
        updated: OffsetDateTime,
    ) -> Delivery {
        Delivery {
            id: DeliveryId(id),
            message_id: uuid::Uuid::from_u128(message),
            type_id: 30000,
            subscription: uuid::Uuid::nil(),
            system: uuid::Uuid::nil(),
            url: "https://w.test/webhook".into(),
            order_key: lane.into(),
            payload: "{}".into(),
            state,
            attempts,
            next_retry: None,
            last_outcome: None,
            last_detail: None,
            held_behind: None,
            replay_of: None,
            origin: None,
            created_at: created,
            updated_at: updated,
        }
    }

    #[test]
    fn nothing_passes_without_deliveries_and_each_check_says_what_to_do() {
        let checks = receives(&[]);
        assert!(!checks.passed);
        assert!(checks.delivered.note.contains("nothing sent yet"));
        assert!(checks.retried_in_order.note.contains("answer 5xx"));
    }

    #[test]
    fn a_delivery_a_replay_and_a_retried_head_with_its_follower_pass() {
        use DeliveryState::*;
        let t = |s: u8| datetime!(2026-01-01 10:00 UTC) + time::Duration::seconds(i64::from(s));
        let retried = [
            delivery(3, 3, "lane-b", Delivered, 3, t(10), t(20)),
            delivery(4, 4, "lane-b", Delivered, 1, t(11), t(21)),
        ];
        let mut all = vec![
            delivery(1, 1, "lane-a", Delivered, 1, t(0), t(1)),
            delivery(2, 1, "lane-a", Delivered, 1, t(2), t(3)),
        ];
        let partial = receives(&all);
        assert!(partial.delivered.passed && partial.duplicate.passed);
        assert_eq!(partial.duplicate.evidence, [DeliveryId(1), DeliveryId(2)]);
        assert!(!partial.retried_in_order.passed);

        // Retried, but the follower is still waiting: not yet.
        let mut waiting = retried.clone();
        waiting[1].state = Queued;
        let mut with_waiting = all.clone();
        with_waiting.extend(waiting);
        let not_yet = receives(&with_waiting);
        assert!(!not_yet.retried_in_order.passed);
        assert!(not_yet.retried_in_order.note.contains("not every message"));

        all.extend(retried);
        let checks = receives(&all);
        assert!(checks.passed, "{checks:#?}");
        assert_eq!(
            checks.retried_in_order.evidence,
            [DeliveryId(3), DeliveryId(4)]
        );
    }
}

//! Per-citizen order: deliveries with the same [`OrderKey`] (system, receiving authority,
//! citizen or entity) form a lane; only a lane's head is sent, so while it fails the later
//! ones are held back, and they go in order once it is delivered (or given up, or dropped).
//! Different lanes never wait for each other. Pure.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use super::message::{Authority, Subject};
use super::store::DeliveryId;

/// What orders deliveries: the same system, authority and citizen (or entity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderKey {
    /// The receiving system.
    pub system: uuid::Uuid,
    /// The receiving authority.
    pub recipient: Authority,
    /// `1:<cpr>` or `2:<identifier>`.
    pub subject: String,
}

impl OrderKey {
    /// The key of a message about `subject` for `recipient`, delivered to `system`.
    pub fn new(system: uuid::Uuid, recipient: Authority, subject: &Subject) -> Self {
        OrderKey {
            system,
            recipient,
            subject: format!("{}:{}", subject.identification_type(), subject.value()),
        }
    }
}

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.system, self.recipient, self.subject)
    }
}

/// Whether a delivery entering its lane may go now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It is the head: send it.
    Ready,
    /// It waits behind this delivery (the lane's head).
    Behind(DeliveryId),
}

/// The lanes of all undelivered deliveries, by the text of their [`OrderKey`] (as stored).
#[derive(Debug, Default)]
pub struct Lanes {
    lanes: HashMap<String, VecDeque<DeliveryId>>,
}

impl Lanes {
    /// Appends `id` to its lane.
    pub fn push(&mut self, key: &str, id: DeliveryId) -> Admission {
        let lane = self.lanes.entry(key.to_owned()).or_default();
        let admission = match lane.front() {
            None => Admission::Ready,
            Some(head) => Admission::Behind(*head),
        };
        lane.push_back(id);
        admission
    }

    /// Takes `id` out of its lane (delivered, given up or dropped). If it was the head, the
    /// next delivery of the lane, now ready, is returned.
    pub fn remove(&mut self, key: &str, id: DeliveryId) -> Option<DeliveryId> {
        let lane = self.lanes.get_mut(key)?;
        let position = lane.iter().position(|d| *d == id)?;
        lane.remove(position);
        let next = if position == 0 {
            lane.front().copied()
        } else {
            None
        };
        if lane.is_empty() {
            self.lanes.remove(key);
        }
        next
    }

    /// The head of a lane.
    pub fn head(&self, key: &str) -> Option<DeliveryId> {
        self.lanes.get(key).and_then(|lane| lane.front().copied())
    }

    /// How many lanes have deliveries.
    pub fn len(&self) -> usize {
        self.lanes.len()
    }

    /// True when no delivery waits.
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsb::message::Cpr;

    fn key(cpr: &str) -> String {
        OrderKey::new(
            uuid::Uuid::nil(),
            Authority {
                org_type: 8,
                org_code: 101,
            },
            &Subject::Cpr(Cpr::try_from(cpr.to_owned()).expect("cpr")),
        )
        .to_string()
    }

    #[test]
    fn later_deliveries_for_a_citizen_wait_behind_the_head() {
        let (a, b) = (key("0101901234"), key("0202902345"));
        let mut lanes = Lanes::default();
        assert_eq!(lanes.push(&a, DeliveryId(1)), Admission::Ready);
        assert_eq!(
            lanes.push(&a, DeliveryId(2)),
            Admission::Behind(DeliveryId(1))
        );
        assert_eq!(
            lanes.push(&b, DeliveryId(3)),
            Admission::Ready,
            "other citizen"
        );
        assert_eq!(
            lanes.push(&a, DeliveryId(4)),
            Admission::Behind(DeliveryId(1))
        );

        // The other citizen's delivery finishing frees nobody in lane a.
        assert_eq!(lanes.remove(&b, DeliveryId(3)), None);
        // The head of a is delivered: 2 goes next, then 4.
        assert_eq!(lanes.remove(&a, DeliveryId(1)), Some(DeliveryId(2)));
        assert_eq!(lanes.head(&a), Some(DeliveryId(2)));
        assert_eq!(lanes.remove(&a, DeliveryId(2)), Some(DeliveryId(4)));
        assert_eq!(lanes.remove(&a, DeliveryId(4)), None);
        assert!(lanes.is_empty());
    }

    #[test]
    fn removing_a_waiting_delivery_keeps_the_head() {
        let a = key("0101901234");
        let mut lanes = Lanes::default();
        lanes.push(&a, DeliveryId(1));
        lanes.push(&a, DeliveryId(2));
        lanes.push(&a, DeliveryId(3));
        assert_eq!(
            lanes.remove(&a, DeliveryId(2)),
            None,
            "a dropped follower frees nobody"
        );
        assert_eq!(lanes.remove(&a, DeliveryId(9)), None, "unknown id");
        assert_eq!(lanes.remove(&a, DeliveryId(1)), Some(DeliveryId(3)));
        assert_eq!(lanes.len(), 1);
    }

    #[test]
    fn keys_separate_authority_and_identification_type() {
        let cpr = Subject::Cpr(Cpr::try_from("0101901234".to_owned()).expect("cpr"));
        let id = Subject::Identifier("0101901234".into());
        let jobcenter = Authority {
            org_type: 8,
            org_code: 101,
        };
        let other = Authority {
            org_type: 8,
            org_code: 147,
        };
        let system = uuid::Uuid::nil();
        assert_ne!(
            OrderKey::new(system, jobcenter, &cpr),
            OrderKey::new(system, jobcenter, &id)
        );
        assert_ne!(
            OrderKey::new(system, jobcenter, &cpr),
            OrderKey::new(system, other, &cpr)
        );
        assert_eq!(
            OrderKey::new(system, jobcenter, &cpr).to_string(),
            "00000000-0000-0000-0000-000000000000/8/101/1:0101901234"
        );
    }
}

//! The delivery worker: one task that owns every undelivered delivery, sends the heads of the
//! lanes (at most `max_in_flight` at once, each POST its own task), applies the retry policy and
//! backoff, journals every attempt before announcing it, and drops a deleted subscription's
//! deliveries. Nobody waits for it: senders hand it committed deliveries through a channel.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{Posted, WebhookClient};
use super::lanes::{Admission, Lanes};
use super::retry::{Backoff, RetryPolicy};
use super::store::{Attempt, Delivery, DeliveryId, DeliveryState, TlsOutcome, WsbStore};
use super::WsbEvent;

/// A delivery handed to the worker (committed as queued, or resumed after a restart).
#[derive(Debug, Clone)]
pub(super) struct Queued {
    pub id: DeliveryId,
    pub message_id: uuid::Uuid,
    pub subscription: uuid::Uuid,
    pub url: String,
    pub order_key: String,
    pub payload: Bytes,
    /// Attempts already made.
    pub attempts: u32,
    /// A retry due at this time (a restart resuming a retrying delivery).
    pub due: Option<OffsetDateTime>,
    /// The delivery this one replays.
    pub replay_of: Option<DeliveryId>,
}

impl From<Delivery> for Queued {
    fn from(d: Delivery) -> Self {
        Queued {
            id: d.id,
            message_id: d.message_id,
            subscription: d.subscription,
            url: d.url,
            order_key: d.order_key,
            payload: Bytes::from(d.payload),
            attempts: d.attempts,
            due: (d.state == DeliveryState::Retrying)
                .then_some(d.next_retry)
                .flatten(),
            replay_of: d.replay_of,
        }
    }
}

pub(super) enum Command {
    /// New deliveries; their queue slots are already reserved.
    Enqueue(Vec<Queued>),
    /// Try a retrying delivery now; false if it is not waiting for a retry.
    RetryNow(DeliveryId, oneshot::Sender<bool>),
    /// Forget the deliveries of deleted subscriptions (the store has marked them dropped).
    Drop(Vec<uuid::Uuid>),
}

/// How many deliveries may be undelivered at once: the bound of the queue.
#[derive(Debug)]
pub(super) struct Slots {
    used: AtomicUsize,
    capacity: usize,
    /// Attempts running now.
    pub in_flight: AtomicUsize,
}

impl Slots {
    pub fn new(capacity: usize) -> Self {
        Slots {
            used: AtomicUsize::new(0),
            capacity,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Reserves `n` slots, or none if that would exceed the capacity.
    pub fn try_reserve(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.capacity)
            })
            .is_ok()
    }

    /// Reserves `n` slots whatever the capacity (deliveries resumed after a restart).
    pub fn force_reserve(&self, n: usize) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    pub fn release(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Behind the head of its lane.
    Waiting,
    /// Head of its lane, waiting for a free attempt.
    Ready,
    /// Being posted.
    InFlight,
    /// Failed; the next attempt is due then.
    RetryAt(Instant),
}

struct Pending {
    queued: Queued,
    phase: Phase,
    /// Its subscription was deleted while it was in flight: the result is journaled, then it
    /// is forgotten.
    dropped: bool,
}

pub(super) struct Worker {
    pub store: Arc<dyn WsbStore>,
    pub client: WebhookClient,
    pub policy: RetryPolicy,
    pub backoff: Backoff,
    pub max_in_flight: usize,
    pub events: broadcast::Sender<WsbEvent>,
    pub slots: Arc<Slots>,
    pub commands: mpsc::Receiver<Command>,
    pub shutdown: watch::Receiver<bool>,
    pub counters: Arc<super::metrics::Counters>,
}

struct State {
    pending: HashMap<DeliveryId, Pending>,
    lanes: Lanes,
    ready: VecDeque<DeliveryId>,
    timers: BinaryHeap<Reverse<(Instant, DeliveryId)>>,
    in_flight: JoinSet<(DeliveryId, Posted)>,
    /// Which task posts which delivery, to account for a task that panicked.
    tasks: HashMap<tokio::task::Id, DeliveryId>,
}

impl Worker {
    /// Runs until shutdown or until every handle is gone; in-flight attempts are then
    /// abandoned (their deliveries stay queued in the store and resume on the next start).
    pub async fn run(mut self, resumed: Vec<Queued>) {
        let mut state = State {
            pending: HashMap::new(),
            lanes: Lanes::default(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            in_flight: JoinSet::new(),
            tasks: HashMap::new(),
        };
        self.enqueue(&mut state, resumed, false);
        loop {
            self.start_ready(&mut state);
            let next_due = state.timers.peek().map(|Reverse((at, _))| *at);
            let far = Instant::now() + std::time::Duration::from_secs(86_400 * 365);
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => break,
                    Some(command) => self.command(&mut state, command),
                },
                Some(done) = state.in_flight.join_next_with_id(), if !state.in_flight.is_empty() => {
                    let (id, posted) = match done {
                        Ok((task, (id, posted))) => {
                            state.tasks.remove(&task);
                            (id, posted)
                        }
                        Err(error) => {
                            let Some(id) = state.tasks.remove(&error.id()) else { continue };
                            (id, internal_failure(&error))
                        }
                    };
                    self.slots.in_flight.store(state.in_flight.len(), Ordering::Release);
                    self.finished(&mut state, id, posted).await;
                }
                () = tokio::time::sleep_until(next_due.unwrap_or(far)), if next_due.is_some() => {
                    self.due(&mut state);
                }
                _ = self.shutdown.changed() => break,
            }
        }
        state.in_flight.abort_all();
        self.slots.in_flight.store(0, Ordering::Release);
    }

    fn command(&self, state: &mut State, command: Command) {
        match command {
            Command::Enqueue(deliveries) => self.enqueue(state, deliveries, true),
            Command::RetryNow(id, reply) => {
                let waiting = match state.pending.get_mut(&id) {
                    Some(pending) if matches!(pending.phase, Phase::RetryAt(_)) => {
                        pending.phase = Phase::Ready;
                        state.ready.push_back(id);
                        true
                    }
                    _ => false,
                };
                let _ = reply.send(waiting);
            }
            Command::Drop(subscriptions) => self.drop_subscriptions(state, &subscriptions),
        }
    }

    fn enqueue(&self, state: &mut State, deliveries: Vec<Queued>, announce: bool) {
        let now = OffsetDateTime::now_utc();
        for queued in deliveries {
            let id = queued.id;
            if announce {
                self.emit(WsbEvent::Queued {
                    delivery: id,
                    message_id: queued.message_id,
                    subscription: queued.subscription,
                    url: queued.url.clone(),
                    replay_of: queued.replay_of,
                });
            }
            let phase = match state.lanes.push(&queued.order_key, id) {
                Admission::Behind(head) => {
                    self.emit(WsbEvent::HeldBack {
                        delivery: id,
                        behind: head,
                    });
                    Phase::Waiting
                }
                Admission::Ready => match queued.due {
                    Some(due) if due > now => {
                        let wait = (due - now).try_into().unwrap_or_default();
                        let at = Instant::now() + wait;
                        state.timers.push(Reverse((at, id)));
                        Phase::RetryAt(at)
                    }
                    _ => {
                        state.ready.push_back(id);
                        Phase::Ready
                    }
                },
            };
            state.pending.insert(
                id,
                Pending {
                    queued,
                    phase,
                    dropped: false,
                },
            );
        }
    }

    fn start_ready(&self, state: &mut State) {
        while state.in_flight.len() < self.max_in_flight {
            let Some(id) = state.ready.pop_front() else {
                break;
            };
            let Some(pending) = state.pending.get_mut(&id) else {
                continue;
            };
            if pending.phase != Phase::Ready {
                continue;
            }
            pending.phase = Phase::InFlight;
            let client = self.client.clone();
            let url = pending.queued.url.clone();
            let payload = pending.queued.payload.clone();
            let handle = state
                .in_flight
                .spawn(async move { (id, client.post(&url, payload).await) });
            state.tasks.insert(handle.id(), id);
        }
        self.slots
            .in_flight
            .store(state.in_flight.len(), Ordering::Release);
    }

    fn due(&self, state: &mut State) {
        let now = Instant::now();
        while let Some(Reverse((at, id))) = state.timers.peek().copied() {
            if at > now {
                break;
            }
            state.timers.pop();
            if let Some(pending) = state.pending.get_mut(&id) {
                // A stale timer (the delivery was retried early) is ignored.
                if pending.phase == Phase::RetryAt(at) {
                    pending.phase = Phase::Ready;
                    state.ready.push_back(id);
                }
            }
        }
    }

    async fn finished(&self, state: &mut State, id: DeliveryId, posted: Posted) {
        let Some(pending) = state.pending.get_mut(&id) else {
            return;
        };
        let number = pending.queued.attempts.saturating_add(1);
        pending.queued.attempts = number;
        let outcome_class = posted.outcome.class();
        let delivered = outcome_class == super::retry::OutcomeClass::Delivered;
        let retry = !delivered && !pending.dropped && self.policy.retries(outcome_class);
        let delay = retry.then(|| self.backoff.delay(number));
        let state_after = if pending.dropped {
            DeliveryState::Dropped
        } else if delivered {
            DeliveryState::Delivered
        } else if retry {
            DeliveryState::Retrying
        } else {
            DeliveryState::Failed
        };
        let attempt = Attempt {
            delivery: id,
            message_id: pending.queued.message_id,
            subscription: pending.queued.subscription,
            url: pending.queued.url.clone(),
            number,
            started_at: to_micros(posted.started_at),
            latency: std::time::Duration::from_micros(
                u64::try_from(posted.latency.as_micros()).unwrap_or(u64::MAX),
            ),
            tls: posted.tls,
            status: posted.status,
            outcome: posted.outcome,
            detail: posted.detail,
            response_excerpt: posted.response_excerpt,
            next_retry: delay.map(|d| to_micros(OffsetDateTime::now_utc() + d)),
            state: state_after,
        };
        let store = self.store.clone();
        let record = attempt.clone();
        match tokio::task::spawn_blocking(move || store.record_attempt(&record)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(delivery = %id, error = %error, "a WSB delivery attempt could not be journaled")
            }
            Err(error) => {
                tracing::warn!(delivery = %id, error = %error, "journaling a WSB delivery attempt failed")
            }
        }
        tracing::debug!(
            delivery = %id,
            attempt = number,
            outcome = attempt.outcome.as_str(),
            state = state_after.as_str(),
            "WSB delivery attempt"
        );
        self.counters.attempt(attempt.outcome);
        self.emit(WsbEvent::Attempt(Box::new(attempt)));

        match delay {
            Some(delay) => {
                let at = Instant::now() + delay;
                if let Some(pending) = state.pending.get_mut(&id) {
                    pending.phase = Phase::RetryAt(at);
                }
                state.timers.push(Reverse((at, id)));
            }
            None => {
                let Some(pending) = state.pending.remove(&id) else {
                    return;
                };
                if !pending.dropped {
                    // A dropped delivery's slot and lane were freed when it was dropped.
                    self.slots.release(1);
                    self.promote(state, &pending.queued.order_key, id);
                }
            }
        }
    }

    /// Takes `id` out of its lane and readies the lane's next delivery.
    fn promote(&self, state: &mut State, order_key: &str, id: DeliveryId) {
        if let Some(next) = state.lanes.remove(order_key, id) {
            if let Some(pending) = state.pending.get_mut(&next) {
                if pending.phase == Phase::Waiting {
                    pending.phase = Phase::Ready;
                    state.ready.push_back(next);
                }
            }
        }
    }

    fn drop_subscriptions(&self, state: &mut State, subscriptions: &[uuid::Uuid]) {
        let subscriptions: HashSet<&uuid::Uuid> = subscriptions.iter().collect();
        let mut ids: Vec<DeliveryId> = state
            .pending
            .iter()
            .filter(|(_, p)| !p.dropped && subscriptions.contains(&p.queued.subscription))
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        for id in &ids {
            if let Some(pending) = state.pending.get_mut(id) {
                pending.dropped = true;
            }
        }
        for id in &ids {
            let Some(pending) = state.pending.get(id) else {
                continue;
            };
            let order_key = pending.queued.order_key.clone();
            if pending.phase != Phase::InFlight {
                state.pending.remove(id);
            }
            self.slots.release(1);
            // The next of the lane may be dropped too: promote only live ones.
            if let Some(next) = state.lanes.remove(&order_key, *id) {
                if let Some(p) = state.pending.get_mut(&next) {
                    if !p.dropped && p.phase == Phase::Waiting {
                        p.phase = Phase::Ready;
                        state.ready.push_back(next);
                    }
                }
            }
        }
        if !ids.is_empty() {
            self.emit(WsbEvent::Dropped { deliveries: ids });
        }
    }

    fn emit(&self, event: WsbEvent) {
        // No listener is fine: the views subscribe when they are open.
        let _ = self.events.send(event);
    }
}

/// Times as the store keeps them (microseconds), so an event equals what a query returns.
fn to_micros(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_nanosecond(time.microsecond() * 1000)
        .unwrap_or(time)
}

fn internal_failure(error: &tokio::task::JoinError) -> Posted {
    Posted {
        started_at: OffsetDateTime::now_utc(),
        latency: std::time::Duration::ZERO,
        tls: TlsOutcome::default(),
        status: None,
        outcome: super::store::Outcome::Internal,
        detail: format!("internal error in the delivery task: {error}"),
        response_excerpt: None,
    }
}

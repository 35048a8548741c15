//! WSB (Webservicebeskeder): STAR pushing JSON messages to suppliers' webhooks over mutual TLS,
//! as DFDG does since release 2023-4. This module owns
//! - the message catalog: types, who may receive them, the JSON templates ([`Catalog`], shipped
//!   as `wsb/messages.toml`, embedded);
//! - subscriptions and the rules of `SyncWebhookAbonnementer` ([`subscription`]);
//! - the delivery worker (`wsb/worker.rs`): per-citizen lanes ([`lanes`]), the retry policy and
//!   backoff ([`retry`]), the HTTPS client presenting STAR's certificate ([`client`]);
//! - the storage interface ([`WsbStore`]) and its SQLite implementation ([`SqliteWsbStore`]).
//!
//! [`Wsb`] is the handle the rest of the program uses: [`Wsb::sync`] for the subscription
//! endpoint, [`Wsb::send`] to push a message, [`Wsb::replay`], [`Wsb::deliveries`] and
//! [`Wsb::attempts`] for the views, [`Wsb::events`] for live ones. Sending never waits for a
//! webhook: `send` returns once the message and its deliveries are committed, and the worker,
//! its own task, does the rest.

use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub mod catalog;
pub mod checks;
pub mod client;
pub mod lanes;
pub mod message;
pub mod metrics;
pub mod retry;
pub mod schedule;
pub mod sqlite;
pub mod store;
pub mod subscription;
pub mod template;
mod worker;

pub use catalog::{Catalog, MessageType};
pub use client::{Timeouts, WebhookClient, WebhookTls};
pub use lanes::OrderKey;
pub use message::{
    Authority, AuthorityText, ChangeType, Cpr, Message, MessageError, NameOrNumber, Registrar,
    SendRequest, Subject,
};
pub use retry::{Backoff, RetryPolicy};
pub use sqlite::SqliteWsbStore;
pub use store::{
    Attempt, AttemptQuery, CertificateSummary, Delivery, DeliveryId, DeliveryQuery, DeliveryState,
    Outcome, StoreError, TlsOutcome, WsbStore,
};
pub use subscription::{BaseUrl, Subscription, SyncPlan, SyncProblem, System};

use store::{MessageRecord, NewDelivery};
use template::Facts;
use worker::{Command, Queued, Slots, Worker};

/// How many events a slow listener may fall behind before it misses some.
const EVENT_BUFFER: usize = 1024;

/// How many messages fired with [`Wsb::send_later`] may wait to be stored.
pub const LATER_CAPACITY: usize = 1024;

/// How the worker delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsbSettings {
    /// Which failures are retried (default: STAR's practice, all of them).
    pub retry: RetryPolicy,
    /// The wait between attempts (default: STAR's, capped at 3 hours).
    pub backoff: Backoff,
    /// Connect and response timeouts of each attempt.
    pub timeouts: Timeouts,
    /// The most undelivered deliveries at once; `send` refuses beyond it.
    pub max_queue: usize,
    /// The most attempts running at once.
    pub max_in_flight: usize,
}

impl Default for WsbSettings {
    fn default() -> Self {
        WsbSettings {
            retry: RetryPolicy::default(),
            backoff: Backoff::default(),
            timeouts: Timeouts::default(),
            max_queue: 10_000,
            max_in_flight: 16,
        }
    }
}

/// What happened, for live views (dashboard, event stream) and tests. Sent after the store
/// has committed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WsbEvent {
    /// A delivery entered the queue.
    Queued {
        delivery: DeliveryId,
        message_id: uuid::Uuid,
        subscription: uuid::Uuid,
        url: String,
        replay_of: Option<DeliveryId>,
    },
    /// A delivery waits behind an earlier one of the same citizen and authority.
    HeldBack {
        delivery: DeliveryId,
        behind: DeliveryId,
    },
    /// An attempt ended (journaled).
    Attempt(Box<Attempt>),
    /// Deliveries dropped because their subscription was deleted.
    Dropped { deliveries: Vec<DeliveryId> },
    /// A system's subscriptions changed.
    Subscriptions {
        system: uuid::Uuid,
        created: usize,
        updated: usize,
        deleted: usize,
    },
}

/// What [`Wsb::send`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sent {
    /// The message's id (`beskedId`).
    pub message_id: uuid::Uuid,
    /// One delivery per matching subscription.
    pub deliveries: Vec<SentDelivery>,
    /// Matching subscriptions that got nothing, and why.
    pub skipped: Vec<Skipped>,
}

/// One delivery of a sent message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentDelivery {
    pub delivery: DeliveryId,
    pub subscription: uuid::Uuid,
    pub url: String,
}

/// A subscription that matched but was not delivered to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub subscription: uuid::Uuid,
    pub reason: String,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// It does not fit the catalog.
    #[error(transparent)]
    Invalid(#[from] MessageError),
    /// The queue is full.
    #[error("the WSB queue is full ({capacity} undelivered deliveries); wait for deliveries to finish or delete failing subscriptions")]
    QueueFull { capacity: usize },
    /// The store failed; nothing was sent.
    #[error("the message could not be stored; nothing was sent")]
    Storage(#[source] StoreError),
    /// The worker has stopped.
    #[error("the WSB worker has stopped")]
    Stopped,
}

/// Why a sync request changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum SyncRejection {
    /// The request breaks the rules: every problem found (answer 400).
    #[error("{} problem(s) in the subscription list: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<SyncProblem>),
    /// The store failed and rolled back (answer 500).
    #[error("the subscriptions could not be stored; nothing changed")]
    Storage(#[source] StoreError),
}

impl SyncRejection {
    /// The HTTP status STAR answers with: 400 or 500.
    pub fn status(&self) -> u16 {
        match self {
            SyncRejection::Invalid(_) => 400,
            SyncRejection::Storage(_) => 500,
        }
    }

    /// The answer's JSON body: `{"errors": [{"path", "code"?, "message"}, …]}`.
    pub fn body(&self) -> serde_json::Value {
        match self {
            SyncRejection::Invalid(problems) => serde_json::json!({ "errors": problems }),
            SyncRejection::Storage(_) => serde_json::json!({ "errors": [{
                "path": "$",
                "message": "internal error: the subscriptions could not be stored; nothing changed",
            }]}),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The plan that was applied.
    pub plan: SyncPlan,
    /// Undelivered deliveries dropped with deleted subscriptions.
    pub dropped: usize,
}

impl SyncReport {
    /// The 200 answer's JSON body: the system's whole list and what changed.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "systemIdentifier": self.plan.system,
            "abonnementer": self.plan.subscriptions.iter().map(Subscription::to_json).collect::<Vec<_>>(),
            "oprettet": self.plan.created.len(),
            "opdateret": self.plan.updated.len(),
            "uaendret": self.plan.unchanged.len(),
            "slettet": self.plan.deleted.len(),
            "droppedDeliveries": self.dropped,
        })
    }
}

/// How a replay went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "replay", rename_all = "snake_case")]
pub enum Replayed {
    /// A new delivery of the same message (same `beskedId`) was queued.
    Queued { delivery: DeliveryId },
    /// The delivery was waiting for a retry: it is tried now.
    RetryingNow { delivery: DeliveryId },
}

/// Why a replay was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("there is no delivery {0}")]
    NotFound(DeliveryId),
    #[error("delivery {0} is still queued; it will be sent")]
    StillQueued(DeliveryId),
    #[error("delivery {0} belongs to a deleted subscription")]
    SubscriptionDeleted(DeliveryId),
    #[error("the WSB queue is full ({capacity} undelivered deliveries)")]
    QueueFull { capacity: usize },
    #[error("the replay could not be stored")]
    Storage(#[source] StoreError),
    #[error("the WSB worker has stopped")]
    Stopped,
}

/// Queue figures, for `/metrics` and the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Undelivered deliveries (queued, held back, retrying, in flight).
    pub undelivered: usize,
    /// The bound.
    pub capacity: usize,
    /// Attempts running now.
    pub in_flight: usize,
}

/// The WSB side of the mock: cheap to clone; the worker stops on [`Wsb::shutdown`] or when the
/// last handle is dropped.
#[derive(Clone)]
pub struct Wsb {
    shared: Arc<Shared>,
}

struct Shared {
    catalog: Arc<Catalog>,
    store: Arc<dyn WsbStore>,
    /// The registered systems; swapped whole when the supplier registry changes.
    systems: RwLock<Arc<Vec<System>>>,
    /// Every subscription, as last committed.
    subscriptions: RwLock<Arc<Vec<Subscription>>>,
    /// One sync at a time, so each plans on the list the previous one committed; a send
    /// holds it shared, so it never queues a delivery for a subscription a sync is deleting.
    sync_lock: tokio::sync::RwLock<()>,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<WsbEvent>,
    slots: Arc<Slots>,
    star: Arc<crate::identity::CallerIdentity>,
    star_thumbprints: crate::pki::Thumbprints,
    shutdown: watch::Sender<bool>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Messages fired without waiting ([`Wsb::send_later`]), sent one by one by their own task.
    later: mpsc::Sender<Message>,
    /// For `/metrics`.
    counters: Arc<metrics::Counters>,
    /// The settings it runs with, for the views.
    settings: WsbSettings,
}

impl std::fmt::Debug for Wsb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wsb")
            .field("star", &self.shared.star.caller_id)
            .field("queue", &self.queue())
            .finish_non_exhaustive()
    }
}

/// Sends what [`Wsb::send_later`] queued, one at a time, until the last handle is gone.
async fn send_each(shared: std::sync::Weak<Shared>, mut later: mpsc::Receiver<Message>) {
    while let Some(message) = later.recv().await {
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let origin = message.origin.clone().unwrap_or_default();
        match (Wsb { shared }).send(message).await {
            Ok(sent) => tracing::info!(
                message = %sent.message_id,
                deliveries = sent.deliveries.len(),
                %origin,
                "WSB message sent"
            ),
            Err(error) => tracing::warn!(%origin, "WSB message not sent: {error}"),
        }
    }
}

/// Runs a store call on the blocking pool.
async fn blocking<T: Send + 'static>(
    store: &Arc<dyn WsbStore>,
    work: impl FnOnce(&dyn WsbStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || work(store.as_ref()))
        .await
        .map_err(|e| StoreError::new("the storage task failed", e))?
}

fn read<T: Clone>(lock: &RwLock<Arc<T>>) -> Arc<T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

fn write<T>(lock: &RwLock<Arc<T>>, value: T) {
    *lock
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(value);
}

impl Wsb {
    /// Loads subscriptions and undelivered deliveries from `store` and starts the worker
    /// (which resumes them). Must be called inside a Tokio runtime.
    pub async fn start(
        settings: WsbSettings,
        catalog: Arc<Catalog>,
        tls: WebhookTls,
        systems: Vec<System>,
        store: Arc<dyn WsbStore>,
    ) -> Result<Wsb, StoreError> {
        if settings.max_queue == 0 || settings.max_in_flight == 0 {
            return Err(StoreError::message(
                "max_queue and max_in_flight must be at least 1",
            ));
        }
        let subscriptions = blocking(&store, |s| s.subscriptions()).await?;
        let pending = blocking(&store, |s| s.pending()).await?;
        let slots = Arc::new(Slots::new(settings.max_queue));
        slots.force_reserve(pending.len());
        // Room for one command per queue slot, plus replays and drops.
        let (commands, receiver) = mpsc::channel(settings.max_queue.saturating_add(256));
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (shutdown, shutdown_receiver) = watch::channel(false);
        let star = Arc::new(tls.star().clone());
        let star_thumbprints = tls.thumbprints().clone();
        let counters = Arc::new(metrics::Counters::default());
        let worker = Worker {
            store: store.clone(),
            client: WebhookClient::new(tls, settings.timeouts),
            policy: settings.retry,
            backoff: settings.backoff,
            max_in_flight: settings.max_in_flight,
            events: events.clone(),
            slots: slots.clone(),
            commands: receiver,
            shutdown: shutdown_receiver,
            counters: counters.clone(),
        };
        let resumed: Vec<Queued> = pending.into_iter().map(Queued::from).collect();
        if !resumed.is_empty() {
            tracing::info!(
                deliveries = resumed.len(),
                "WSB resumes undelivered deliveries"
            );
        }
        let handle = tokio::spawn(worker.run(resumed));
        let (later, later_receiver) = mpsc::channel(LATER_CAPACITY);
        let shared = Arc::new(Shared {
            catalog,
            store,
            systems: RwLock::new(Arc::new(systems)),
            subscriptions: RwLock::new(Arc::new(subscriptions)),
            sync_lock: tokio::sync::RwLock::new(()),
            commands,
            events,
            slots,
            star,
            star_thumbprints,
            shutdown,
            worker: Mutex::new(Some(handle)),
            later,
            counters,
            settings,
        });
        tokio::spawn(send_each(Arc::downgrade(&shared), later_receiver));
        Ok(Wsb { shared })
    }

    /// Queues `message` to be sent (as [`Wsb::send`]) without waiting: for a SOAP call whose
    /// answer must not wait for WSB. Refused at once when [`LATER_CAPACITY`] messages wait.
    pub fn send_later(&self, message: Message) -> Result<(), SendError> {
        self.shared.later.try_send(message).map_err(|error| {
            self.shared.counters.refused();
            match error {
                mpsc::error::TrySendError::Full(_) => SendError::QueueFull {
                    capacity: LATER_CAPACITY,
                },
                mpsc::error::TrySendError::Closed(_) => SendError::Stopped,
            }
        })
    }

    /// The settings the worker runs with.
    pub fn settings(&self) -> &WsbSettings {
        &self.shared.settings
    }

    /// `/metrics` text: the counters and the queue's gauges.
    pub fn metrics(&self) -> String {
        self.shared.counters.render(self.queue())
    }

    /// Stops when the handle's owner says so ([`Wsb::shutdown`]).
    fn stopping(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.subscribe()
    }

    /// The message catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.shared.catalog
    }

    /// Who STAR's certificate says it is (what webhooks see).
    pub fn star(&self) -> &crate::identity::CallerIdentity {
        &self.shared.star
    }

    /// Replaces the registered systems (the supplier registry changed).
    pub fn set_systems(&self, systems: Vec<System>) {
        write(&self.shared.systems, systems);
    }

    /// The thumbprints of STAR's certificate.
    pub fn star_thumbprints(&self) -> &crate::pki::Thumbprints {
        &self.shared.star_thumbprints
    }

    /// The registered systems.
    pub fn systems(&self) -> Arc<Vec<System>> {
        read(&self.shared.systems)
    }

    /// Live events; subscribe before acting to see everything that follows.
    pub fn events(&self) -> broadcast::Receiver<WsbEvent> {
        self.shared.events.subscribe()
    }

    /// Queue figures.
    pub fn queue(&self) -> QueueStats {
        QueueStats {
            undelivered: self.shared.slots.used(),
            capacity: self.shared.slots.capacity(),
            in_flight: self
                .shared
                .slots
                .in_flight
                .load(std::sync::atomic::Ordering::Acquire),
        }
    }

    /// The subscriptions of one system, or of all.
    pub fn subscriptions(&self, system: Option<uuid::Uuid>) -> Vec<Subscription> {
        read(&self.shared.subscriptions)
            .iter()
            .filter(|s| system.is_none_or(|id| s.system == id))
            .cloned()
            .collect()
    }

    /// `SyncWebhookAbonnementer`: makes the request's list the whole list of its system, in one
    /// transaction; `allowed` are the systems the calling certificate may act for. A repeated
    /// request changes nothing; deleted subscriptions' undelivered messages are dropped.
    pub async fn sync(
        &self,
        allowed: &[uuid::Uuid],
        body: &[u8],
    ) -> Result<SyncReport, SyncRejection> {
        let synced = self.sync_checked(allowed, body).await;
        self.shared
            .counters
            .sync(synced.as_ref().map_or_else(SyncRejection::status, |_| 200));
        synced
    }

    async fn sync_checked(
        &self,
        allowed: &[uuid::Uuid],
        body: &[u8],
    ) -> Result<SyncReport, SyncRejection> {
        let _one_at_a_time = self.shared.sync_lock.write().await;
        let systems = self.systems();
        let existing = read(&self.shared.subscriptions);
        let now = OffsetDateTime::now_utc();
        let plan = subscription::plan_sync(
            subscription::SyncContext {
                catalog: &self.shared.catalog,
                systems: &systems,
                allowed,
                existing: &existing,
                now,
            },
            body,
        )
        .map_err(SyncRejection::Invalid)?;
        if plan.is_noop() {
            return Ok(SyncReport { plan, dropped: 0 });
        }
        let (system, list, deleted) = (
            plan.system,
            plan.subscriptions.clone(),
            plan.deleted.clone(),
        );
        let dropped = blocking(&self.shared.store, move |s| {
            s.replace_subscriptions(system, &list, &deleted, now)
        })
        .await
        .map_err(SyncRejection::Storage)?;
        let mut all: Vec<Subscription> = existing
            .iter()
            .filter(|s| s.system != plan.system)
            .cloned()
            .collect();
        all.extend(plan.subscriptions.iter().cloned());
        write(&self.shared.subscriptions, all);
        if !plan.deleted.is_empty() {
            // The store has dropped them already; if the worker is gone they are not sent anyway.
            let _ = self
                .shared
                .commands
                .send(Command::Drop(plan.deleted.clone()))
                .await;
        }
        let _ = self.shared.events.send(WsbEvent::Subscriptions {
            system: plan.system,
            created: plan.created.len(),
            updated: plan.updated.len(),
            deleted: plan.deleted.len(),
        });
        Ok(SyncReport { plan, dropped })
    }

    /// Pushes a message to every active subscription of its type and recipient authority.
    /// Returns once the message and its deliveries are committed; the webhooks are called by
    /// the worker. A SOAP handler that fires a message should spawn this, not await it.
    pub async fn send(&self, message: Message) -> Result<Sent, SendError> {
        let sent = self.send_checked(message).await;
        match &sent {
            Ok(sent) => self.shared.counters.message(sent.deliveries.len()),
            Err(_) => self.shared.counters.refused(),
        }
        sent
    }

    async fn send_checked(&self, message: Message) -> Result<Sent, SendError> {
        let kind = message.check(&self.shared.catalog)?.clone();
        let _no_sync_meanwhile = self.shared.sync_lock.read().await;
        let now = OffsetDateTime::now_utc();
        let registered_at = message.registered_at.unwrap_or(now);
        let message_id = uuid::Uuid::new_v4();
        let systems = self.systems();
        let subscriptions = read(&self.shared.subscriptions);

        let mut deliveries = Vec::new();
        let mut skipped = Vec::new();
        for s in subscriptions.iter().filter(|s| {
            s.type_id == message.type_id
                && s.recipient == message.recipient
                && s.active_at(now)
                && message.only_system.is_none_or(|only| s.system == only)
        }) {
            let Some(system) = systems.iter().find(|y| y.id == s.system) else {
                skipped.push(Skipped {
                    subscription: s.id,
                    reason: format!("system {} is no longer registered", s.system),
                });
                continue;
            };
            if !kind.categories.contains(&system.category) {
                skipped.push(Skipped {
                    subscription: s.id,
                    reason: format!(
                        "{} suppliers may no longer receive {kind}",
                        system.category.as_str()
                    ),
                });
                continue;
            }
            let payload = kind.template.render(&Facts {
                message_id,
                kind: &kind,
                message: &message,
                registered_at,
                subscription_id: s.id,
            });
            deliveries.push(NewDelivery {
                subscription: s.id,
                system: system.id,
                url: system.base_url.join(&s.webhook_path),
                order_key: OrderKey::new(system.id, message.recipient, &message.subject)
                    .to_string(),
                payload,
            });
        }
        let capacity = self.shared.slots.capacity();
        if !self.shared.slots.try_reserve(deliveries.len()) {
            return Err(SendError::QueueFull { capacity });
        }
        let record = MessageRecord {
            id: message_id,
            created_at: now,
            message,
        };
        let stored = deliveries.clone();
        let ids = match blocking(&self.shared.store, move |s| {
            s.insert_message(&record, &stored)
        })
        .await
        {
            Ok(ids) => ids,
            Err(error) => {
                self.shared.slots.release(deliveries.len());
                return Err(SendError::Storage(error));
            }
        };
        let sent = Sent {
            message_id,
            deliveries: ids
                .iter()
                .zip(&deliveries)
                .map(|(id, d)| SentDelivery {
                    delivery: *id,
                    subscription: d.subscription,
                    url: d.url.clone(),
                })
                .collect(),
            skipped,
        };
        if !ids.is_empty() {
            let queued = ids
                .into_iter()
                .zip(deliveries)
                .map(|(id, d)| Queued {
                    id,
                    message_id,
                    subscription: d.subscription,
                    url: d.url,
                    order_key: d.order_key,
                    payload: bytes::Bytes::from(d.payload),
                    attempts: 0,
                    due: None,
                    replay_of: None,
                })
                .collect::<Vec<_>>();
            let count = queued.len();
            if self
                .shared
                .commands
                .try_send(Command::Enqueue(queued))
                .is_err()
            {
                // Committed as queued: a restart sends them.
                self.shared.slots.release(count);
                return Err(SendError::Stopped);
            }
        }
        Ok(sent)
    }

    /// Sends a delivered or failed delivery again as a new delivery of the same message (a
    /// duplicate, as STAR's at-least-once delivery makes them), or tries a retrying one now.
    pub async fn replay(&self, delivery: DeliveryId) -> Result<Replayed, ReplayError> {
        let original = blocking(&self.shared.store, move |s| s.delivery(delivery))
            .await
            .map_err(ReplayError::Storage)?
            .ok_or(ReplayError::NotFound(delivery))?;
        match original.state {
            DeliveryState::Queued => return Err(ReplayError::StillQueued(delivery)),
            DeliveryState::Dropped => return Err(ReplayError::SubscriptionDeleted(delivery)),
            DeliveryState::Retrying => {
                let (reply, answer) = oneshot::channel();
                self.shared
                    .commands
                    .send(Command::RetryNow(delivery, reply))
                    .await
                    .map_err(|_| ReplayError::Stopped)?;
                return match answer.await {
                    Ok(true) => Ok(Replayed::RetryingNow { delivery }),
                    // It finished meanwhile: replay it as if it had been final.
                    Ok(false) => Box::pin(self.replay_final(original)).await,
                    Err(_) => Err(ReplayError::Stopped),
                };
            }
            DeliveryState::Delivered | DeliveryState::Failed => {}
        }
        self.replay_final(original).await
    }

    async fn replay_final(&self, original: Delivery) -> Result<Replayed, ReplayError> {
        let id = original.id;
        let _no_sync_meanwhile = self.shared.sync_lock.read().await;
        if !read(&self.shared.subscriptions)
            .iter()
            .any(|s| s.id == original.subscription)
        {
            return Err(ReplayError::SubscriptionDeleted(id));
        }
        let capacity = self.shared.slots.capacity();
        if !self.shared.slots.try_reserve(1) {
            return Err(ReplayError::QueueFull { capacity });
        }
        let now = OffsetDateTime::now_utc();
        let replay = match blocking(&self.shared.store, move |s| s.insert_replay(id, now)).await {
            Ok(Some(replay)) => replay,
            Ok(None) => {
                self.shared.slots.release(1);
                return Err(ReplayError::NotFound(id));
            }
            Err(error) => {
                self.shared.slots.release(1);
                return Err(ReplayError::Storage(error));
            }
        };
        let new_id = replay.id;
        if self
            .shared
            .commands
            .try_send(Command::Enqueue(vec![Queued::from(replay)]))
            .is_err()
        {
            self.shared.slots.release(1);
            return Err(ReplayError::Stopped);
        }
        self.shared.counters.replay();
        Ok(Replayed::Queued { delivery: new_id })
    }

    /// One delivery.
    pub async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        blocking(&self.shared.store, move |s| s.delivery(id)).await
    }

    /// Deliveries, newest first.
    pub async fn deliveries(&self, query: DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        blocking(&self.shared.store, move |s| s.deliveries(&query)).await
    }

    /// Delivery attempts, newest first.
    pub async fn attempts(&self, query: AttemptQuery) -> Result<Vec<Attempt>, StoreError> {
        blocking(&self.shared.store, move |s| s.attempts(&query)).await
    }

    /// Stops the worker and waits for it; in-flight attempts are abandoned (their deliveries
    /// stay queued in the store and resume on the next start).
    pub async fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        let handle = self
            .shared
            .worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }
}

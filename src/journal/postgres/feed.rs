//! What the other replicas committed, as live events: one connection per replica that
//! `LISTEN`s on the journal's channel and turns each notification of another journal into
//! [`LiveEvent`]s for this replica's dashboard and event streams. It reconnects by itself
//! (after 1 s, doubling to 30 s) when the database goes away; what other replicas announce
//! meanwhile is not replayed (their calls are in the journal; a view shows them when it next
//! reads it).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::store::{events_of, CHANNEL};
use super::{Database, Driver};
use crate::journal::LiveEvent;

/// The first wait before reconnecting, doubled after each failure up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Listens for the other replicas' commits once [`Feed::forward`] is called.
#[derive(Debug, Clone)]
pub struct Feed {
    database: Arc<Database>,
    driver: Arc<Driver>,
    /// Notifications carrying this origin are this replica's own.
    origin: Arc<str>,
}

impl Feed {
    pub(crate) fn new(database: Arc<Database>, driver: Arc<Driver>, origin: Arc<str>) -> Feed {
        Feed {
            database,
            driver,
            origin,
        }
    }

    /// Sends every other replica's commits into `events` until the journal's driver stops.
    /// The receiver tells whether the feed is listening right now (what another replica
    /// commits while it is not is not forwarded).
    pub fn forward(&self, events: broadcast::Sender<LiveEvent>) -> watch::Receiver<bool> {
        let (database, origin) = (Arc::clone(&self.database), Arc::clone(&self.origin));
        let (listening, state) = watch::channel(false);
        self.driver.spawn(async move {
            let mut backoff = BACKOFF;
            let mut connected_before = false;
            loop {
                let result =
                    listen(&database, &origin, &events, &listening, connected_before).await;
                listening.send_replace(false);
                match result {
                    Ok(()) => backoff = BACKOFF,
                    Err(error) => {
                        tracing::warn!(
                            database = %database,
                            error = %error,
                            retry_in = ?backoff,
                            "cannot listen for the other replicas' calls"
                        );
                    }
                }
                connected_before = true;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
        state
    }
}

/// One connection's life: LISTEN, then forward notifications until it breaks.
async fn listen(
    database: &Database,
    origin: &str,
    events: &broadcast::Sender<LiveEvent>,
    listening: &watch::Sender<bool>,
    reconnected: bool,
) -> Result<(), String> {
    let (client, mut connection) = database
        .config()
        .connect(database.tls.clone())
        .await
        .map_err(|error| error.to_string())?;
    let (notices, mut received) = tokio::sync::mpsc::unbounded_channel();
    let driving = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(notice))) => {
                    if notices.send(notice.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.to_string()),
                None => return Err("the database closed the connection".to_owned()),
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|error| error.to_string())?;
    listening.send_replace(true);
    if reconnected {
        tracing::info!(database = %database, "listening for the other replicas' calls again");
    }
    while let Some(payload) = received.recv().await {
        for event in events_of(&payload, origin).unwrap_or_default() {
            // No subscriber is not an error.
            let _ = events.send(event);
        }
    }
    drop(client);
    driving
        .await
        .map_err(|error| error.to_string())
        .and_then(|ended| ended)
}

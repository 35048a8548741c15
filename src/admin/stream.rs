//! Streamed response bodies of the admin listener: a bounded channel body, the server-sent
//! events feed of [`LiveEvent`]s (with keep-alive comments, a lifetime cap and a stop signal),
//! and the JSON Lines export that pages through the journal without holding it in memory.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit};

use crate::app::LiveEvent;
use crate::journal::{CallQuery, JournalReader, Readers};

/// How often an idle event stream gets a comment line, so proxies and browsers keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// After this long an event stream ends; `EventSource` reconnects by itself.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Rows read per journal query while exporting.
const EXPORT_PAGE: usize = 200;

/// A client that reads nothing for this long loses its stream or export.
pub const STALLED_CLIENT: Duration = Duration::from_secs(60);

/// A response body fed through a small bounded channel: the producer waits when the client
/// reads slowly, and stops when the client goes away (the receiver is dropped).
#[derive(Debug)]
pub struct ChannelBody {
    receiver: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it; the body ends when every sender is dropped.
    pub fn new(capacity: usize) -> (mpsc::Sender<Bytes>, ChannelBody) {
        let (sender, receiver) = mpsc::channel(capacity);
        (sender, ChannelBody { receiver })
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.receiver
            .poll_recv(context)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// One server-sent event: `event: <name>` and a one-line JSON `data`.
fn sse(name: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn event_frame(event: &LiveEvent) -> Bytes {
    match event {
        LiveEvent::Call(id) => sse("call", &serde_json::json!({ "id": id })),
        LiveEvent::Rejection(id) => sse("rejection", &serde_json::json!({ "id": id })),
        LiveEvent::Confirmation { guid, call_id } => sse(
            "confirmation",
            &serde_json::json!({ "guid": guid, "call_id": call_id }),
        ),
        LiveEvent::Reset => sse("reset", &serde_json::json!({})),
    }
}

/// Streams live events into `sender` until the client leaves, the server stops, or the stream
/// has lived [`STREAM_LIFETIME`]. Holds `permit` (the cap on open streams) while it runs.
pub async fn events(
    sender: mpsc::Sender<Bytes>,
    mut events: broadcast::Receiver<LiveEvent>,
    mut stop: watch::Receiver<bool>,
    keep_alive: Duration,
    permit: OwnedSemaphorePermit,
) {
    let _permit = permit;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + keep_alive, keep_alive);
    let end = tokio::time::sleep(STREAM_LIFETIME);
    tokio::pin!(end);
    if !send(&sender, Bytes::from_static(b"retry: 2000\n: connected\n\n")).await {
        return;
    }
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => break,
            () = &mut end => break,
            _ = tick.tick() => Bytes::from_static(b": keep-alive\n\n"),
            received = events.recv() => match received {
                Ok(event) => event_frame(&event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    sse("lagged", &serde_json::json!({ "missed": missed }))
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        if !send(&sender, frame).await {
            break;
        }
    }
}

/// Sends a chunk; false when the client left or read nothing for [`STALLED_CLIENT`].
pub(super) async fn send(sender: &mpsc::Sender<Bytes>, chunk: Bytes) -> bool {
    matches!(
        tokio::time::timeout(STALLED_CLIENT, sender.send(chunk)).await,
        Ok(Ok(()))
    )
}

/// Writes every call matching `query` (newest first) as JSON Lines into `sender`, paging
/// through the journal. Runs on a blocking thread of `runtime`; ends early when the client
/// leaves or stalls.
pub fn export(
    runtime: &tokio::runtime::Handle,
    sender: &mpsc::Sender<Bytes>,
    readers: &Readers,
    query: &CallQuery,
) {
    let store = match readers.open_one() {
        Ok(store) => store,
        Err(error) => {
            tracing::warn!(%error, "export: cannot open the journal");
            return;
        }
    };
    let mut query = CallQuery {
        limit: EXPORT_PAGE,
        after_id: None,
        ..query.clone()
    };
    loop {
        let page = match store.calls(&query) {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "export: journal query failed");
                return;
            }
        };
        let Some(last) = page.last().map(|call| call.id) else {
            return;
        };
        let mut chunk = Vec::new();
        for call in &page {
            if serde_json::to_writer(&mut chunk, call).is_err() {
                return;
            }
            chunk.push(b'\n');
        }
        if !runtime.block_on(send(sender, Bytes::from(chunk))) {
            return;
        }
        if page.len() < EXPORT_PAGE {
            return;
        }
        query.before_id = Some(last);
    }
}

//! Streamed response bodies of the admin listener: a large answer in pieces, a bounded channel
//! body, the server-sent events feed of [`LiveEvent`]s (with keep-alive comments, a lifetime cap and a stop signal),
//! and the JSON Lines export that pages through the journal without holding it in memory.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit};

use crate::app::LiveEvent;
use crate::journal::{CallQuery, JournalReader, Readers};
use crate::memory;

/// How often an idle event stream gets a comment line, so proxies and browsers keep it open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// After this long an event stream ends; `EventSource` reconnects by itself.
pub const STREAM_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// Rows read per journal query while exporting.
const EXPORT_PAGE: usize = 200;

/// A client that reads nothing for this long loses its stream or export.
pub const STALLED_CLIENT: Duration = Duration::from_secs(60);

/// An answer encoded in pieces, as `serde_json::to_writer` writes it: up to
/// [`memory::PIECE`] bytes in an ordinary buffer; a larger one (`/api/suppliers` is about a
/// megabyte of JSON for 1,000 callers) in [`memory::Piece`]s, never one block nor copied while it
/// grows, each piece given back to the system as soon as it has been written.
#[derive(Debug, Default)]
pub struct Pieces {
    small: Vec<u8>,
    done: VecDeque<Bytes>,
    current: Option<memory::Piece>,
    len: u64,
}

impl io::Write for Pieces {
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<usize> {
        let written = bytes.len();
        self.len += written as u64;
        if self.done.is_empty() && self.current.is_none() {
            if self.small.len() + bytes.len() <= memory::PIECE {
                self.small.extend_from_slice(bytes);
                return Ok(written);
            }
            // Outgrown: what was written moves into the first piece.
            let small = std::mem::take(&mut self.small);
            let mut first = memory::Piece::new();
            first.fill(&small);
            self.current = Some(first);
        }
        while !bytes.is_empty() {
            let piece = self.current.get_or_insert_with(memory::Piece::new);
            bytes = &bytes[piece.fill(bytes)..];
            if piece.is_full() {
                if let Some(full) = self.current.take() {
                    self.done.push_back(Bytes::from_owner(full));
                }
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Pieces {
    /// The body that sends the pieces, with their length (so HTTP/1.1 gets a
    /// `content-length`).
    pub fn into_body(mut self) -> PiecesBody {
        if let Some(last) = self.current.take() {
            self.done.push_back(Bytes::from_owner(last));
        }
        if self.done.is_empty() && !self.small.is_empty() {
            self.done.push_back(Bytes::from(self.small));
        }
        PiecesBody {
            pieces: self.done,
            remaining: self.len,
        }
    }
}

/// A JSON object ending in a list, written into [`Pieces`] item by item as the items are made,
/// so that a long list is never held whole: the object's start up to the list's `[`, the items,
/// then the end.
#[derive(Debug)]
pub struct JsonList {
    pieces: Pieces,
    items: usize,
    error: Option<serde_json::Error>,
}

impl JsonList {
    /// `start` is the JSON up to and including the list's `[`, e.g. `{"open":true,"suppliers":[`.
    pub fn new(start: &str) -> JsonList {
        let mut pieces = Pieces::default();
        let _ = io::Write::write_all(&mut pieces, start.as_bytes());
        JsonList {
            pieces,
            items: 0,
            error: None,
        }
    }

    pub fn push(&mut self, item: &impl serde::Serialize) {
        if self.error.is_some() {
            return;
        }
        if self.items > 0 {
            let _ = io::Write::write_all(&mut self.pieces, b",");
        }
        self.items += 1;
        if let Err(error) = serde_json::to_writer(&mut self.pieces, item) {
            self.error = Some(error);
        }
    }

    /// Closes the list with `end` (e.g. `]}`); the first item that could not be encoded is the
    /// error.
    pub fn finish(mut self, end: &str) -> serde_json::Result<Pieces> {
        match self.error {
            Some(error) => Err(error),
            None => {
                let _ = io::Write::write_all(&mut self.pieces, end.as_bytes());
                Ok(self.pieces)
            }
        }
    }
}

/// See [`Pieces::into_body`].
#[derive(Debug)]
pub struct PiecesBody {
    pieces: VecDeque<Bytes>,
    remaining: u64,
}

impl hyper::body::Body for PiecesBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let piece = self.pieces.pop_front();
        if let Some(piece) = &piece {
            self.remaining -= piece.len() as u64;
        }
        Poll::Ready(piece.map(|piece| Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn sent(pieces: Pieces) -> (Option<u64>, usize, Vec<u8>) {
        let mut body = pieces.into_body();
        let length = hyper::body::Body::size_hint(&body).exact();
        let mut frames = 0;
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            frames += 1;
            bytes.extend_from_slice(&frame.expect("infallible").into_data().expect("data"));
        }
        (length, frames, bytes)
    }

    #[tokio::test]
    async fn a_list_larger_than_a_piece_is_sent_in_pieces_as_the_same_json() {
        let items: Vec<serde_json::Value> = (0..20_000)
            .map(|n| serde_json::json!({ "n": n, "text": "x".repeat(n % 50) }))
            .collect();
        let mut list = JsonList::new(r#"{"open":true,"items":["#);
        for item in &items {
            list.push(item);
        }
        let (length, frames, bytes) = sent(list.finish("]}").expect("encoded")).await;
        #[derive(serde::Serialize)]
        struct Whole<'a> {
            open: bool,
            items: &'a [serde_json::Value],
        }
        let expected = serde_json::to_vec(&Whole {
            open: true,
            items: &items,
        })
        .expect("encoded");
        assert!(expected.len() > 3 * memory::PIECE, "the list spans pieces");
        assert!(bytes == expected, "the pieces make the same JSON");
        assert_eq!(length, Some(expected.len() as u64));
        assert_eq!(frames, expected.len().div_ceil(memory::PIECE));
    }

    #[tokio::test]
    async fn a_small_answer_is_one_frame_and_an_empty_list_is_valid() {
        let list = JsonList::new(r#"{"callers":["#);
        let (length, frames, bytes) = sent(list.finish("]}").expect("encoded")).await;
        assert_eq!(bytes, br#"{"callers":[]}"#);
        assert_eq!((length, frames), (Some(14), 1));
    }
}

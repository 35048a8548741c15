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
use tokio::sync::{broadcast, mpsc, oneshot, watch, OwnedSemaphorePermit};

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
    /// Where the pieces go once the answer outgrows [`SPILL_AFTER`] pieces, if it may be sent
    /// as it is written (see [`Pieces::spilling`]).
    spill: Option<Spill>,
}

/// Full pieces an answer that may spill holds before it starts being sent: an answer this
/// size or smaller is sent whole, with its length, as any other.
const SPILL_AFTER: usize = 2;

/// The channel a spilling answer is sent through, opened when it outgrows [`SPILL_AFTER`]
/// pieces.
#[derive(Debug)]
struct Spill {
    runtime: tokio::runtime::Handle,
    /// Takes the body to the handler, which then answers with it; `None` once sent.
    start: Option<oneshot::Sender<ChannelBody>>,
    sender: Option<mpsc::Sender<Bytes>>,
}

impl Spill {
    /// Sends the full pieces, opening the channel first if it is not yet; an error when the
    /// client left or stalled (the answer is then abandoned).
    fn send(&mut self, pieces: &mut VecDeque<Bytes>) -> io::Result<()> {
        if self.sender.is_none() {
            let (sender, body) = ChannelBody::new(1);
            let handler = self.start.take().ok_or(io::ErrorKind::BrokenPipe)?;
            handler.send(body).map_err(|_| io::ErrorKind::BrokenPipe)?;
            self.sender = Some(sender);
        }
        let sender = self.sender.as_ref().ok_or(io::ErrorKind::BrokenPipe)?;
        while let Some(piece) = pieces.pop_front() {
            if !self.runtime.block_on(send(sender, piece)) {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the client left or stopped reading",
                ));
            }
        }
        Ok(())
    }
}

impl io::Write for Pieces {
    fn write(&mut self, mut bytes: &[u8]) -> io::Result<usize> {
        let written = bytes.len();
        self.len += written as u64;
        if self.done.is_empty() && self.current.is_none() && !self.is_streaming() {
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
                if let Some(spill) = self.spill.as_mut() {
                    if self.done.len() >= SPILL_AFTER || spill.sender.is_some() {
                        spill.send(&mut self.done)?;
                    }
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
    /// Whether the pieces are being sent as they are written (see [`Pieces::spilling`]).
    fn is_streaming(&self) -> bool {
        self.spill
            .as_ref()
            .is_some_and(|spill| spill.sender.is_some())
    }

    /// Pieces written on a reading thread (not a runtime thread: sending blocks it) that start
    /// being sent once they outgrow [`SPILL_AFTER`] pieces, so that a large answer is never held
    /// whole: the body is then given to `start`, and the rest follows as it is written.
    /// [`Pieces::end`] says which way the answer went.
    pub fn spilling(
        runtime: tokio::runtime::Handle,
        start: oneshot::Sender<ChannelBody>,
    ) -> Pieces {
        Pieces {
            spill: Some(Spill {
                runtime,
                start: Some(start),
                sender: None,
            }),
            ..Pieces::default()
        }
    }

    /// Ends a [`Pieces::spilling`] answer: the pieces to send whole if it never spilled, else
    /// `None` once its last pieces are sent (the channel then closes, ending the body).
    pub fn end(mut self) -> io::Result<Option<Pieces>> {
        let Some(mut spill) = self.spill.take() else {
            return Ok(Some(self));
        };
        if spill.sender.is_none() {
            // Dropping `spill` tells the handler there is no stream to wait for.
            return Ok(Some(self));
        }
        if let Some(last) = self.current.take() {
            self.done.push_back(Bytes::from_owner(last));
        }
        if !self.small.is_empty() {
            self.done
                .push_back(Bytes::from(std::mem::take(&mut self.small)));
        }
        spill.send(&mut self.done)?;
        Ok(None)
    }

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
    /// A list written into `pieces` (e.g. [`Pieces::spilling`]); `start` is the JSON up to
    /// and including the list's `[`, e.g. `{"open":true,"suppliers":[`.
    pub fn into(mut pieces: Pieces, start: &str) -> JsonList {
        let _ = io::Write::write_all(&mut pieces, start.as_bytes());
        JsonList {
            pieces,
            items: 0,
            error: None,
        }
    }

    /// Whether the list is being sent as it is written (see [`Pieces::spilling`]).
    pub fn is_streaming(&self) -> bool {
        self.pieces.is_streaming()
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
        let items = items(20_000);
        let mut list = JsonList::into(Pieces::default(), r#"{"open":true,"items":["#);
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
        let list = JsonList::into(Pieces::default(), r#"{"callers":["#);
        let (length, frames, bytes) = sent(list.finish("]}").expect("encoded")).await;
        assert_eq!(bytes, br#"{"callers":[]}"#);
        assert_eq!((length, frames), (Some(14), 1));
    }

    fn items(count: usize) -> Vec<serde_json::Value> {
        (0..count)
            .map(|n| serde_json::json!({ "n": n, "text": "x".repeat(n % 50) }))
            .collect()
    }

    /// Writes `items` into a spilling list on a blocking thread, as a read does; what
    /// [`Pieces::end`] returned, once the list is written.
    fn spill(
        items: Vec<serde_json::Value>,
    ) -> (
        oneshot::Receiver<ChannelBody>,
        tokio::task::JoinHandle<io::Result<Option<Pieces>>>,
    ) {
        let (start, started) = oneshot::channel();
        let runtime = tokio::runtime::Handle::current();
        let writing = tokio::task::spawn_blocking(move || {
            let mut list = JsonList::into(Pieces::spilling(runtime, start), r#"{"items":["#);
            for item in &items {
                list.push(item);
            }
            list.finish("]}")
                .map_err(io::Error::from)
                .and_then(Pieces::end)
        });
        (started, writing)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_spilling_list_is_sent_while_it_is_written_as_the_same_json() {
        let items = items(20_000);
        let expected = serde_json::to_vec(&serde_json::json!({ "items": items })).unwrap();
        assert!(expected.len() > 4 * memory::PIECE, "the list spans pieces");
        let (started, writing) = spill(items);
        let mut body = started
            .await
            .expect("the answer outgrew its pieces: a stream");
        let (mut bytes, mut frames) = (Vec::new(), 0);
        while let Some(frame) = body.frame().await {
            frames += 1;
            bytes.extend_from_slice(&frame.expect("infallible").into_data().expect("data"));
        }
        assert!(bytes == expected, "the stream makes the same JSON");
        assert!(frames > SPILL_AFTER, "{frames} frames");
        let ended = writing.await.expect("written").expect("sent");
        assert!(ended.is_none(), "nothing left to send whole");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_spilling_list_is_sent_whole_with_its_length() {
        let items = items(100);
        let expected = serde_json::to_vec(&serde_json::json!({ "items": items })).unwrap();
        let (started, writing) = spill(items);
        assert!(started.await.is_err(), "no stream for a small answer");
        let pieces = writing
            .await
            .expect("written")
            .expect("kept")
            .expect("whole");
        let (length, _, bytes) = sent(pieces).await;
        assert!(bytes == expected);
        assert_eq!(length, Some(expected.len() as u64));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spilling_list_stops_when_the_client_leaves() {
        let (started, writing) = spill(items(200_000));
        let mut body = started.await.expect("a stream");
        let first = body.frame().await.expect("a frame").expect("infallible");
        assert!(first.is_data());
        drop(body);
        let ended = writing.await.expect("the writing thread ends");
        assert_eq!(
            ended.err().map(|error| error.kind()),
            Some(io::ErrorKind::BrokenPipe)
        );
    }
}

//! Transport only: on the shared accept loop ([`crate::listener`]: connection cap, back-off,
//! graceful drain), one task per connection: the TLS handshake, then HTTP/1.1 or h2 by ALPN
//! with their limits. What a request means is [`crate::app`]'s business.
//!
//! The caller binds the listener and the library serves it, so tests can use port 0.
//!
//! [`ScriptedIo`] wraps each TLS stream so that a scenario can break the connection on purpose:
//! the app sets the connection's [`ConnectionControl`] and the wrapper then writes garbage
//! instead of the response, closes cleanly without one, or resets the TCP connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;

use crate::app::{App, Connection, ConnectionControl, WriteMode};
use crate::config::Limits;
use crate::listener::{self, Bounds};
use crate::tls::TlsServer;

/// Serves SOAP over mutual TLS on `listener` until `shutdown` completes, then stops accepting,
/// lets open connections finish for up to `limits.shutdown_drain`, and returns.
pub async fn run(
    listener: TcpListener,
    tls: TlsServer,
    app: Arc<App>,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    http.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Duration::from_secs(30));
    let http = Arc::new(http);
    let bounds = Bounds {
        name: "soap",
        max_connections: limits.max_connections,
        drain: limits.shutdown_drain,
    };
    listener::serve(listener, bounds, shutdown, |stream, peer, watcher| {
        let tls = tls.clone();
        let app = app.clone();
        let http = http.clone();
        async move { serve_connection(stream, peer, &tls, app, &http, watcher).await }
    })
    .await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: &TlsServer,
    app: Arc<App>,
    http: &auto::Builder<TokioExecutor>,
    watcher: listener::Watcher,
) {
    let accepted = match tls.accept(stream).await {
        Ok(accepted) => accepted,
        Err(refusal) => {
            app.refused_handshake(peer, refusal, tls.mode()).await;
            return;
        }
    };
    let control = ConnectionControl::default();
    let connection = Arc::new(Connection::new(peer, accepted.session, control.clone()));
    let service = service_fn(move |request| {
        let app = app.clone();
        let connection = connection.clone();
        async move { app.handle(request, &connection).await }
    });
    let io = ScriptedIo {
        stream: accepted.stream,
        control,
        garbage_sent: 0,
    };
    let served = watcher.watch(
        http.serve_connection(TokioIo::new(io), service)
            .into_owned(),
    );
    if let Err(error) = served.await {
        tracing::debug!(%peer, error = %error, "connection ended with an error");
    }
}

/// Bytes that are not HTTP, written instead of a response by the `garbage` scenario fault.
const GARBAGE: &[u8] =
    b"\x00\xff\x13garbage from dfdg-mock: this is not an HTTP response\r\n\r\n\x00";

/// The TLS stream, plus the per-connection instruction a scenario can give
/// ([`ConnectionControl`]): on the next write, send [`GARBAGE`] and fail (so hyper closes the
/// connection), close cleanly (TLS close_notify, FIN) without writing, or set linger 0 and fail
/// (so the close is a TCP reset; also armed on drop, as a failed service writes nothing).
struct ScriptedIo {
    stream: TlsStream<TcpStream>,
    control: ConnectionControl,
    /// How much of [`GARBAGE`] has been written.
    garbage_sent: usize,
}

impl AsyncRead for ScriptedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(context, buffer)
    }
}

impl AsyncWrite for ScriptedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.control.mode() {
            WriteMode::Normal => Pin::new(&mut this.stream).poll_write(context, buffer),
            WriteMode::Reset => Poll::Ready(Err(reset(&this.stream))),
            WriteMode::Close => match Pin::new(&mut this.stream).poll_shutdown(context) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(_) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "scenario connection fault: closed without a response",
                ))),
            },
            WriteMode::Garbage => {
                while this.garbage_sent < GARBAGE.len() {
                    let rest = &GARBAGE[this.garbage_sent..];
                    match Pin::new(&mut this.stream).poll_write(context, rest) {
                        Poll::Ready(Ok(0)) => break,
                        Poll::Ready(Ok(written)) => this.garbage_sent += written,
                        Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                match Pin::new(&mut this.stream).poll_flush(context) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(_) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "scenario connection fault: garbage sent",
                    ))),
                }
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.control.mode() == WriteMode::Reset {
            return Poll::Ready(Err(reset(&this.stream)));
        }
        Pin::new(&mut this.stream).poll_shutdown(context)
    }
}

impl Drop for ScriptedIo {
    fn drop(&mut self) {
        // A `reset` answer fails the service, so hyper drops the connection without writing.
        if self.control.mode() == WriteMode::Reset {
            let _ = reset(&self.stream);
        }
    }
}

/// Arms a TCP reset: with linger 0, closing the socket sends RST instead of FIN.
fn reset(stream: &TlsStream<TcpStream>) -> io::Error {
    if let Err(error) = stream.get_ref().0.set_zero_linger() {
        tracing::debug!(%error, "cannot set linger 0 for a scenario reset");
    }
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "scenario connection fault: reset",
    )
}

//! One accept loop for every listener of the server, the SOAP listener and the admin listener:
//! a cap on open connections (semaphore permits, so further callers wait in the listen backlog),
//! a back-off when `accept` fails (out of file descriptors and the like), one task per
//! connection, and on shutdown a graceful drain under a time limit. What a connection carries
//! (TLS and SOAP, or plain HTTP) is the caller's business: it gets the TCP stream, the peer and
//! a [`Watcher`] to wrap its HTTP connection in, so that a drain lets requests in flight finish.
//!
//! The caller binds, the library serves: [`serve`] takes a bound listener, so tests use port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
pub use hyper_util::server::graceful::Watcher;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How long to wait before accepting again after `accept` failed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What bounds one listener.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// For log lines: "soap", "admin".
    pub name: &'static str,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long shutdown waits for open connections before closing them.
    pub drain: Duration,
}

/// Accepts connections on `listener` until `shutdown` completes, running `connection` for each
/// in its own task while holding one of `bounds.max_connections` permits; then stops accepting,
/// lets open connections finish for up to `bounds.drain`, and returns once every connection
/// task is done (or was cut off at the drain limit).
pub async fn serve<C, F>(
    listener: TcpListener,
    bounds: Bounds,
    shutdown: impl Future<Output = ()>,
    mut connection: C,
) where
    C: FnMut(TcpStream, SocketAddr, Watcher) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(bounds.max_connections.max(1)));
    // Every connection task, from its first byte to its last response, so that shutdown waits
    // for all of them (and what they journal), not only for the HTTP connections.
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_closed) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(listener = bounds.name, %error, "accept failed; backing off");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Small request/response exchanges: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let task = connection(stream, peer, graceful.watcher());
        tasks.spawn(async move {
            let _permit = permit;
            task.await;
        });
        while tasks.try_join_next().is_some() {}
    }
    drop(listener);
    tracing::debug!(
        listener = bounds.name,
        connections = tasks.len(),
        "stopped accepting; draining open connections"
    );
    let drain = async {
        graceful.shutdown().await;
        while tasks.join_next().await.is_some() {}
    };
    if tokio::time::timeout(bounds.drain, drain).await.is_err() {
        tracing::warn!(
            listener = bounds.name,
            drain = ?bounds.drain,
            "connections still open after the drain limit; closing them"
        );
    }
}

//! Transport only: the accept loop, one task per connection (TLS handshake, then HTTP/1.1 or
//! h2 by ALPN), the connection cap, and graceful shutdown with a drain limit. What a request
//! means is [`crate::app`]'s business.
//!
//! The caller binds the listener and the library serves it, so tests can use port 0.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::app::{App, Connection};
use crate::config::Limits;
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
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection task, from handshake to last response, so that shutdown can wait for
    // all of them (and their journal entries), not only for the HTTP connections.
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
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        let http = http.clone();
        let watcher = graceful.watcher();
        tasks.spawn(async move {
            let _permit = permit;
            serve_connection(stream, peer, &tls, app, &http, watcher).await;
        });
        while tasks.try_join_next().is_some() {}
    }

    drop(listener);
    tracing::info!(
        connections = tasks.len(),
        "shutting down: draining open connections"
    );
    let drain = async {
        graceful.shutdown().await;
        while tasks.join_next().await.is_some() {}
    };
    if tokio::time::timeout(limits.shutdown_drain, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            drain = ?limits.shutdown_drain,
            "connections still open after the drain limit; closing them"
        );
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: &TlsServer,
    app: Arc<App>,
    http: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let accepted = match tls.accept(stream).await {
        Ok(accepted) => accepted,
        Err(refusal) => {
            app.refused_handshake(peer, refusal, tls.mode()).await;
            return;
        }
    };
    let connection = Arc::new(Connection {
        peer,
        session: accepted.session,
    });
    let service = service_fn(move |request| {
        let app = app.clone();
        let connection = connection.clone();
        async move { Ok::<_, std::convert::Infallible>(app.handle(request, &connection).await) }
    });
    let served = watcher.watch(
        http.serve_connection(TokioIo::new(accepted.stream), service)
            .into_owned(),
    );
    if let Err(error) = served.await {
        tracing::debug!(%peer, error = %error, "connection ended with an error");
    }
}

//! The local server's connection loop: HTTP/1.1 with a header-read timeout (which also closes
//! idle keep-alive connections: the timer runs while a connection waits for its next request
//! head), graceful shutdown, and the peer address for rate limits. `axum::serve` sets no
//! timer, so a connection trickling its headers, or idle, stayed open for ever.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use eshtarek_core::service::HttpApp;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a connection may take to send a complete request head, idle time before it
/// included: `ESHTAREK_HEADER_TIMEOUT_SECS` (default 10).
pub fn header_timeout() -> Duration {
    std::env::var("ESHTAREK_HEADER_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(10), Duration::from_secs)
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting and lets the
/// requests in flight finish (at most `drain` more).
pub async fn serve(
    listener: TcpListener,
    app: HttpApp,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the drain period; stopping anyway");
    }
    Ok(())
}

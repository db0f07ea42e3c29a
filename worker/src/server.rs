//! The HTTP server of both binaries (`invite-api`'s API, `invite-worker`'s `/metrics`): accepts at
//! most `HTTP_MAX_CONNECTIONS` connections at once, serves each with hyper's HTTP/1.1 under
//! `HTTP_HEADER_TIMEOUT`, and shuts down gracefully.
//!
//! Beyond the connection limit the server stops accepting until a connection closes: new clients
//! wait in the operating system's listen backlog rather than being turned away, so a burst is
//! served late instead of failing, and memory stays bounded by the limit.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use invite_shared::config::Settings;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::Service as _;

/// Largest request head (request line and headers) a client may send, which is also the most a
/// connection buffers of what it reads; a longer head gets 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long to wait before accepting again after the process ran out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets the requests in flight
/// finish for up to `http_request_timeout` before returning.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &Settings,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(settings.http_max_connections));
    let graceful = GracefulShutdown::new();
    let http = connection_builder(settings);
    while let Some((slot, stream, peer)) = next_connection(&listener, &slots, &shutdown).await {
        let connection = http.serve_connection(TokioIo::new(stream), service(app.clone(), peer));
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                // Timeouts and clients that go away: nothing the operator can act on.
                tracing::debug!(error = %e, "connection closed");
            }
            drop(slot);
        });
    }
    drop(listener);
    let grace = settings.http_request_timeout;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still busy after HTTP_REQUEST_TIMEOUT are closed");
    }
}

/// HTTP/1.1 with a timer, so the header timeout fires; it also bounds how long a kept-alive
/// connection waits idle, as hyper reads the next request's head while idle.
fn connection_builder(settings: &Settings) -> http1::Builder {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.http_header_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        // The buffer alone is a soft bound: one read may fill it past its size.
        .max_buf_size(MAX_HEAD_BYTES);
    http
}

/// The router with the client's address in each request, where the abuse limits read it.
fn service(
    app: Router,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().call(request)
    })
}

/// Waits for a free connection slot, then for a client; `None` once shutdown is asked for.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
    let slot = tokio::select! {
        () = shutdown.cancelled() => return None,
        slot = slots.clone().acquire_owned() => slot.ok()?,
    };
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => return Some((slot, stream, peer)),
            Err(e) => accept_failed(e).await,
        }
    }
}

/// A client that gave up before it was accepted is skipped; anything else (no file descriptor
/// left) is logged and waited out, as accepting again at once would spin.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::error!(error = %e, "accepting a connection failed; trying again in 1 s");
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

//! The HTTP server of both binaries (`invite-api`'s API, `invite-worker`'s `/metrics`): accepts at
//! most `HTTP_MAX_CONNECTIONS` connections at once, serves each with hyper's HTTP/1.1 under
//! `HTTP_HEADER_TIMEOUT`, and shuts down gracefully.
//!
//! Beyond the connection limit the server stops accepting until a connection closes: new clients
//! wait in the operating system's listen backlog rather than being turned away, so a burst is
//! served late instead of failing, and memory stays bounded by the limit.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use invite_shared::config::Settings;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
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
    let slots = Arc::new(Semaphore::new(connection_limit(
        settings.http_max_connections,
    )));
    let graceful = GracefulShutdown::new();
    let http = connection_builder(settings);
    let stall = settings.http_body_idle_timeout;
    while let Some((slot, stream, peer)) = next_connection(&listener, &slots, &shutdown).await {
        let io = TokioIo::new(WriteDeadline::new(stream, stall));
        let connection = http.serve_connection(io, service(app.clone(), peer));
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

/// File descriptors kept for what a process opens besides its connections: database and SMTP
/// pools, the queue, conversion children's pipes, spooled uploads, logs.
const RESERVED_FILES: u64 = 256;

/// `wanted` connections, or fewer if the process may not open that many files: the soft limit
/// on open files is raised to the hard one first (1,024 is a common soft default), and what
/// remains after [`RESERVED_FILES`] caps the connections, so that connections alone can never
/// leave the process without a descriptor for its database.
fn connection_limit(wanted: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut files = getrlimit(Resource::Nofile);
    if files.current != files.maximum {
        files.current = files.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, files) {
            tracing::warn!(error = %e, "could not raise the open-files limit");
        }
    }
    let open_files = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let room = usize::try_from(open_files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
    if wanted > room {
        tracing::warn!(
            wanted,
            serving = room.max(1),
            open_files,
            "HTTP_MAX_CONNECTIONS is more than the open-files limit leaves room for; serving fewer"
        );
    }
    wanted.min(room).max(1)
}

/// A connection whose writes fail once they make no progress for `limit`: a client that stops
/// reading its response cannot hold the connection (hyper reads no next request, and so runs no
/// header timer, while a response is being written).
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a write that could not proceed: pending until `limit` has passed since the first
    /// such write, then an error that closes the connection.
    fn waited<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading its response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.waited(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.waited(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.waited(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.waited(cx, result)
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

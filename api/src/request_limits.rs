//! The limits of one request: the pace of its body (a longest pause and a slowest average rate),
//! the size of its body (`JSON_BODY_LIMIT`, or `MAX_UPLOAD_BYTES` for the upload) and its total
//! time (`HTTP_REQUEST_TIMEOUT`, or `HTTP_UPLOAD_TIMEOUT` for the upload).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use http_body::{Frame, SizeHint};
use invite_shared::config::Settings;
use tokio::time::{Instant, Sleep};
use tower::{Layer as _, ServiceExt as _};

use crate::error::ApiError;

/// The route template of the upload: the one route with a large body and no total time limit.
pub const UPLOAD_ROUTE: &str = "/api/v1/workspaces/{ws}/imports";

/// How fast a request body must arrive.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Longest pause between two pieces of the body.
    pub idle: Duration,
    /// Slowest average rate since the body's start, in bytes per second (0: no minimum).
    pub min_rate: u64,
    /// How long after its start a body may be slower than `min_rate`.
    pub grace: Duration,
}

/// What [`enforce`] holds each request to.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// The pace of every request body.
    pub pace: Pace,
    /// Total time of every request but the upload.
    pub timeout: Duration,
    /// Total time of the upload.
    pub upload_timeout: Duration,
    /// Largest body of every route but the upload.
    pub body_limit: usize,
    /// Largest body of the upload.
    pub upload_body_limit: usize,
}

impl RequestLimits {
    /// The limits the settings ask for.
    pub fn new(settings: &Settings) -> RequestLimits {
        // Multipart adds a little framing around the file itself.
        let upload_body_limit = usize::try_from(settings.max_upload_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(64 * 1024);
        RequestLimits {
            pace: Pace {
                idle: settings.http_body_idle_timeout,
                min_rate: settings.http_body_min_rate,
                grace: settings.http_body_min_rate_grace,
            },
            timeout: settings.http_request_timeout,
            upload_timeout: settings.http_upload_timeout,
            body_limit: settings.json_body_limit,
            upload_body_limit,
        }
    }
}

/// Holds a request to the limits of its route. A body that came too slowly is answered 408 (and
/// the connection closed), whatever the handler made of the failed read.
pub async fn enforce(
    State(limits): State<Arc<RequestLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let upload = request.method() == Method::POST
        && request
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|route| route.as_str() == UPLOAD_ROUTE);
    let slow = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| Body::new(PacedBody::new(body, limits.pace, slow.clone())));
    let (timeout, answer) = if upload {
        // Overrides the small limit set around every route (the innermost limit wins).
        let limited = DefaultBodyLimit::max(limits.upload_body_limit).layer(next);
        let answer = async move {
            match limited.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        };
        (limits.upload_timeout, answer.boxed())
    } else {
        (limits.timeout, next.run(request).boxed())
    };
    let response = tokio::time::timeout(timeout, answer)
        .await
        .unwrap_or_else(|_| ApiError::TimedOut(timeout).into_response());
    if !slow.load(Ordering::Relaxed) {
        return response;
    }
    let mut response = ApiError::SlowBody.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Why [`PacedBody`] failed.
#[derive(Debug, thiserror::Error)]
#[error("the request body paused too long or arrived too slowly")]
pub struct TooSlow;

/// A request body that fails with [`TooSlow`] once it pauses longer than its pace allows or its
/// average rate falls below the minimum, and raises `slow` when it does. The clock starts when the
/// handler first reads: time the server spends before reading is not the client's.
pub struct PacedBody {
    inner: Body,
    pace: Pace,
    slow: Arc<AtomicBool>,
    /// The current deadline; none until the handler first reads.
    timer: Option<Pin<Box<Sleep>>>,
    started: Instant,
    last: Instant,
    received: u64,
}

impl PacedBody {
    /// Wraps `inner`; `slow` is raised when it fails.
    pub fn new(inner: Body, pace: Pace, slow: Arc<AtomicBool>) -> PacedBody {
        let now = Instant::now();
        PacedBody {
            inner,
            pace,
            slow,
            timer: None,
            started: now,
            last: now,
            received: 0,
        }
    }

    /// When the body is too slow if nothing more arrives: after the longest pause, or once the
    /// average since the start falls below the minimum rate (not before the grace period ends).
    fn deadline(&self) -> Instant {
        let idle = self.last + self.pace.idle;
        if self.pace.min_rate == 0 {
            return idle;
        }
        let earned = Duration::from_secs_f64(self.received as f64 / self.pace.min_rate as f64);
        idle.min(self.started + self.pace.grace.max(earned))
    }

    /// Counts what arrived and moves the deadline accordingly.
    fn arrived(&mut self, bytes: usize) {
        self.received += bytes as u64;
        self.last = Instant::now();
        let deadline = self.deadline();
        if let Some(timer) = self.timer.as_mut() {
            timer.as_mut().reset(deadline);
        }
    }
}

impl http_body::Body for PacedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if this.timer.is_none() {
            this.started = Instant::now();
            this.last = this.started;
            this.timer = Some(Box::pin(tokio::time::sleep_until(this.deadline())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                    this.arrived(data.len());
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let expired = this
                    .timer
                    .as_mut()
                    .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                this.slow.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(axum::Error::new(TooSlow))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_exempt_from_the_request_timeout_is_the_documented_upload() {
        let document = serde_json::to_value(crate::openapi::document()).unwrap();

        let upload = &document["paths"][UPLOAD_ROUTE]["post"]["operationId"];

        assert_eq!(*upload, "create_import");
    }
}

//! The HTTP API: uploads, progress, results, members, groups and invitation links.

pub mod auth;
pub mod commands;
pub mod error;
pub mod extract;
pub mod limits;
pub mod openapi;
pub mod request_limits;
pub mod routes;
pub mod security;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::Method;
use axum::middleware;
use axum::{Extension, Router};
use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::metrics as m;
use invite_shared::queue::JobQueue;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;

use crate::request_limits::RequestLimits;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The ledger.
    pub db: Db,
    /// Where new imports are enqueued.
    pub queue: JobQueue,
    /// Settings in force.
    pub settings: Arc<Settings>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// This process's abuse-limit windows.
    pub limiter: Arc<limits::Limiter>,
    /// Converts uploaded workbooks in child processes, a bounded number at once.
    pub converter: Arc<invite_shared::intake::workbook::child::Converter>,
}

/// Paths that carry a secret after this prefix: an invitation's token, a hand-over's token.
const SECRET_PATHS: [&str; 2] = ["/invitations/", "/api/v1/acceptances/"];

/// The span of a request; the tokens in invitation and hand-over paths are never logged.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let path = logged_path(request.uri().path());
    tracing::info_span!("request", method = %request.method(), path = %path)
}

/// `path` as logged: a path of [`SECRET_PATHS`] ends in `…` after its prefix.
fn logged_path(path: &str) -> std::borrow::Cow<'_, str> {
    match SECRET_PATHS.iter().find(|prefix| path.starts_with(*prefix)) {
        Some(prefix) => format!("{prefix}…").into(),
        None => path.into(),
    }
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    let limits = Arc::new(RequestLimits::new(&state.settings));
    let (routes, document) = routes::router(openapi::base());
    let served = routes::health::DocumentJson(openapi::json(&document).into());
    // `layer` wraps each route and the fallback, after routing: each layer sees the route matched.
    routes
        .layer(Extension(served))
        .layer(middleware::from_fn_with_state(
            limits.clone(),
            request_limits::enforce,
        ))
        // Outside `enforce`, which raises it for the upload alone.
        .layer(DefaultBodyLimit::max(limits.body_limit))
        .layer(middleware::from_fn(record_request))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        // Outermost, so every answer gets them, fallbacks and rejections included.
        .layer(middleware::from_fn(security::headers))
        .with_state(state)
}

/// The `route` label of requests that matched no route, so made-up paths add no series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Methods that get their own `method` label; any other counts as `other`, so made-up methods
/// add no series.
static LABELLED_METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
    Method::PATCH,
    Method::TRACE,
    Method::CONNECT,
];

/// The `method` label of a request: its method if standard, else `other`.
fn method_label(method: &Method) -> &'static str {
    LABELLED_METHODS
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}

/// Counts and times each request by its route template (`/api/v1/workspaces/{ws}/imports/{id}`,
/// never the slug, id or token in the path; `unmatched` for no route), method and status class.
async fn record_request(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::histogram!(m::HTTP_REQUEST_DURATION, "route" => route.clone(), "method" => method)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(m::HTTP_REQUESTS_TOTAL, "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_keep_their_label_and_made_up_ones_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"M1").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }

    #[test]
    fn invitation_and_hand_over_tokens_are_not_logged() {
        assert_eq!(
            super::logged_path("/invitations/abc123/accept"),
            "/invitations/…"
        );
        assert_eq!(
            super::logged_path("/api/v1/acceptances/secret-token"),
            "/api/v1/acceptances/…"
        );
        assert_eq!(
            super::logged_path("/api/v1/workspaces/acme/members"),
            "/api/v1/workspaces/acme/members"
        );
    }
}

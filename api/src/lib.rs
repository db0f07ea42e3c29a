//! The HTTP API: uploads, progress, results, members, groups and invitation links.

pub mod auth;
pub mod commands;
pub mod error;
pub mod extract;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::queue::JobQueue;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;

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
}

/// The span of a request; invitation tokens in paths are never logged.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let path = request.uri().path();
    let path = if path.starts_with("/invitations/") {
        "/invitations/…"
    } else {
        path
    };
    tracing::info_span!("request", method = %request.method(), path)
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    // Multipart adds a little framing around the file itself.
    let body_limit = usize::try_from(state.settings.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    routes::router()
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

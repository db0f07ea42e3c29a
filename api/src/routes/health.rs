//! Liveness, readiness and the Prometheus endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use invite_shared::health::{Readiness, ReadinessReport};

use crate::AppState;

/// Liveness
///
/// The process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "liveness",
    tag = "operations",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")),
)]
pub async fn live() -> &'static str {
    "ok"
}

/// Readiness
///
/// The database and the queue answer (503 naming the one that does not).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readiness",
    tag = "operations",
    responses(
        (status = 200, description = "Both answer.", body = ReadinessReport),
        (
            status = 503,
            description = "One or both do not; never with connection details.",
            body = ReadinessReport,
        ),
    ),
)]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadinessReport>) {
    let readiness = Readiness::check(&state.db, &state.queue).await;
    let status = if readiness.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness.report()))
}

/// Prometheus metrics
///
/// The text exposition format; the workers serve theirs on their own `METRICS_ADDR`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "The metrics in Prometheus's text format.",
            body = String,
            content_type = "text/plain",
        ),
    ),
)]
pub async fn metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

//! Liveness, readiness and the Prometheus endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use invite_shared::health::Readiness;
use serde_json::Value;

use crate::AppState;

/// Liveness: the process answers.
pub async fn live() -> &'static str {
    "ok"
}

/// Readiness: the database and the queue answer (503 naming the one that does not).
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let readiness = Readiness::check(&state.db, &state.queue).await;
    let status = if readiness.ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness.to_json()))
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

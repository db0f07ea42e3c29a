//! Liveness, readiness and the Prometheus endpoint.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;

/// Liveness: the process answers.
pub async fn live() -> &'static str {
    "ok"
}

/// Readiness: the database and the queue answer.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (db, queue) = tokio::join!(state.db.ping(), state.queue.ping());
    let describe = |r: &anyhow::Result<()>| match r {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("{e:#}"),
    };
    let status = if db.is_ok() && queue.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "database": describe(&db), "queue": describe(&queue) })),
    )
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

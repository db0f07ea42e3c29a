//! Liveness, readiness, the Prometheus endpoint and the OpenAPI document.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use bytes::Bytes;
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

/// The OpenAPI document's text, as [`crate::openapi::json`] renders it; [`crate::router`] hands it
/// to [`document`] as a request extension, rendered once per router, because the document is only
/// whole once every route, this one included, is registered.
#[derive(Debug, Clone)]
pub struct DocumentJson(pub Bytes);

/// This document
///
/// The OpenAPI 3.1 document of every API route.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "The OpenAPI 3.1 document.",
            body = Object,
            content_type = "application/json",
        ),
    ),
)]
pub async fn document(Extension(json): Extension<DocumentJson>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], json.0)
}

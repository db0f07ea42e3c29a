//! `…/webhooks`: the workspace's webhook endpoints — create (the signing secret shown once),
//! list (never a secret), delete, the delivery log, a test event, a replay, and enabling an
//! endpoint disabled for failing (`docs/product.md`, "Webhooks").

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use invite_shared::ids::{WebhookAttemptId, WebhookDeliveryId, WebhookEndpointId};
use invite_shared::service::webhooks::{
    self as service, CreateOutcome, EndpointRequest, MAX_DESCRIPTION_CHARS,
};
use invite_shared::store::webhooks::{Attempt, Endpoint, MAX_ENDPOINTS};
use invite_shared::webhooks::Subscription;
use serde::Serialize;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{
    AdminErrors, ApiError, BadRequest, ErrorBody, PayloadTooLarge, UnsupportedMediaType,
};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::audit::Page;
use crate::routes::imports::Timestamp;

/// Most attempts in one page of the log.
const MAX_PAGE: i64 = 500;

/// Body of `POST …/webhooks`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed: `https`, a host that resolves to public addresses only.
    #[schema(example = "https://hooks.example.com/bulk-invite")]
    pub url: String,
    /// The event types to receive, e.g. `import.completed`, `email.sent`; at least one.
    #[schema(example = json!(["import.completed", "member.accepted"]))]
    pub events: Vec<String>,
    /// What it is for, up to 200 characters.
    #[serde(default)]
    pub description: String,
}

/// A webhook endpoint as listed: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookJson {
    /// Its id.
    pub id: i64,
    /// Where events are POSTed.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was disabled for failing `WEBHOOK_RETRY_WINDOW` long; `null` while enabled.
    pub disabled_at: Option<Timestamp>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Its first failed attempt since its last delivered one; `null` when the last one worked.
    pub failing_since: Option<Timestamp>,
}

/// A new endpoint with its signing secret: shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedWebhook {
    /// The endpoint as lists show it.
    #[serde(flatten)]
    pub endpoint: WebhookJson,
    /// The signing secret, `whsec_…`, for any Standard Webhooks library's verifier.
    pub secret: String,
}

/// The workspace's webhook endpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub webhooks: Vec<WebhookJson>,
}

/// One attempt of the delivery log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookAttempt {
    /// Its id.
    pub id: i64,
    /// The delivery it tried: replay it by this id.
    pub delivery_id: i64,
    /// The `webhook-id` sent, the same on every attempt and replay.
    pub webhook_id: String,
    /// The event's type.
    pub event: String,
    /// When it was made.
    pub at: Timestamp,
    /// The HTTP status answered; `null` when none came back.
    pub status: Option<i32>,
    /// Why no status came back (refused, timed out, could not connect).
    pub error: Option<String>,
    /// How long it took, in milliseconds.
    pub latency_ms: i64,
    /// The answer's first 256 bytes, as text.
    pub response: Option<String>,
    /// The delivery's state now: `pending`, `sending`, `delivered` or `failed`.
    pub state: String,
}

/// A page of an endpoint's delivery log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookLog {
    /// The attempts.
    pub attempts: Vec<WebhookAttempt>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<i64>,
}

/// List the workspace's webhook endpoints
///
/// Oldest first, never a secret; a disabled endpoint shows when and why.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/webhooks",
    operation_id = "list_webhooks",
    tag = "webhooks",
    security(("bearer" = [])),
    params(WorkspacePath),
    responses(
        (status = 200, description = "The workspace's endpoints.", body = WebhookList),
        AdminErrors,
    ),
)]
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<WebhookList>, ApiError> {
    let endpoints = service::list(&state.db, admin.workspace_id).await?;
    let webhooks = endpoints.iter().map(webhook_json).collect();
    Ok(Json(WebhookList { webhooks }))
}

/// Create a webhook endpoint
///
/// 201 with the endpoint and its signing secret (`whsec_…`), which is never shown again
/// (`Cache-Control: no-store`). The URL must be `https` and its host must resolve to public
/// addresses only (unless `WEBHOOK_ALLOW_PRIVATE`).
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/webhooks",
    operation_id = "create_webhook",
    tag = "webhooks",
    security(("bearer" = [])),
    params(WorkspacePath),
    request_body = CreateWebhook,
    responses(
        (
            status = 201,
            description = "The endpoint and its secret.",
            body = CreatedWebhook,
            headers(("Cache-Control" = String, description = "`no-store`: the secret is never kept by a cache.")),
        ),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 422,
            description = "A body of another shape (`invalid_request`), a URL that may not be \
                called, in words (`invalid_url`), an unknown or no event type \
                (`invalid_events`), a description over 200 characters or with line breaks \
                (`invalid_description`), or a workspace with 20 endpoints already \
                (`too_many_webhooks`).",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Json(body)): Valid<Json<CreateWebhook>>,
) -> Result<Response, ApiError> {
    let request = EndpointRequest {
        url: body.url,
        events: body.events,
        description: body.description,
    };
    let outcome = service::create(&state.db, &state.settings, admin.audit(), request).await?;
    let (endpoint, secret) = match outcome {
        CreateOutcome::Created { endpoint, secret } => (endpoint, secret),
        CreateOutcome::RefusedUrl(message) => return Err(unprocessable("invalid_url", message)),
        CreateOutcome::InvalidEvents(message) => {
            return Err(unprocessable("invalid_events", message));
        }
        CreateOutcome::InvalidDescription => {
            let message = format!(
                "description must be at most {MAX_DESCRIPTION_CHARS} characters, without line breaks"
            );
            return Err(unprocessable("invalid_description", message));
        }
        CreateOutcome::TooMany => {
            let message =
                format!("this workspace has {MAX_ENDPOINTS} webhook endpoints; delete one first");
            return Err(unprocessable("too_many_webhooks", message));
        }
    };
    let body = CreatedWebhook {
        endpoint: webhook_json(&endpoint),
        secret,
    };
    let headers = [(axum::http::header::CACHE_CONTROL, "no-store")];
    Ok((StatusCode::CREATED, headers, Json(body)).into_response())
}

/// Delete a webhook endpoint
///
/// 204; its pending deliveries and its delivery log go with it.
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{ws}/webhooks/{id}",
    operation_id = "delete_webhook",
    tag = "webhooks",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The endpoint's id, as listed.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn delete(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<StatusCode, ApiError> {
    let id = WebhookEndpointId(id);
    match service::delete(&state.db, admin.audit(), id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound("webhook")),
    }
}

/// Read a webhook endpoint's delivery log
///
/// Every attempt, newest first, a page at a time: the HTTP status or the error in words, the
/// latency, and the answer's first 256 bytes.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/webhooks/{id}/deliveries",
    operation_id = "list_webhook_deliveries",
    tag = "webhooks",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The endpoint's id, as listed."), Page),
    responses(
        (status = 200, description = "The attempts, newest first.", body = WebhookLog),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
pub async fn log(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
    Valid(Query(page)): Valid<Query<Page>>,
) -> Result<Json<WebhookLog>, ApiError> {
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let cursor = page.cursor.map(WebhookAttemptId);
    let found = service::log(
        &state.db,
        admin.workspace_id,
        WebhookEndpointId(id),
        (cursor, limit),
    )
    .await?
    .ok_or(ApiError::NotFound("webhook"))?;
    Ok(Json(WebhookLog {
        attempts: found.attempts.iter().map(attempt_json).collect(),
        next_cursor: found.next_cursor.map(|c| c.0),
    }))
}

/// Send a test event to a webhook endpoint
///
/// 202: a `webhook.test` event is queued to this endpoint alone and sent like every event (to a
/// disabled endpoint, once it is enabled); the delivery log shows how it went.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/webhooks/{id}/test",
    operation_id = "test_webhook",
    tag = "webhooks",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The endpoint's id, as listed.")),
    responses(
        (status = 202, description = "Queued."),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn test(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<StatusCode, ApiError> {
    match service::test(&state.db, admin.audit(), WebhookEndpointId(id)).await? {
        true => Ok(StatusCode::ACCEPTED),
        false => Err(ApiError::NotFound("webhook")),
    }
}

/// Replay a webhook delivery
///
/// 202: the delivery is queued again, due now, with a new retry window; it carries the same
/// `webhook-id`, so a receiver that saw it already can tell. 404 for a delivery of another
/// endpoint, or one being sent this moment (its attempt is about to be logged).
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/webhooks/{id}/deliveries/{delivery_id}/replay",
    operation_id = "replay_webhook_delivery",
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        WorkspacePath,
        ("id" = i64, Path, description = "The endpoint's id, as listed."),
        ("delivery_id" = i64, Path, description = "The delivery's id, as the log shows it."),
    ),
    responses(
        (status = 202, description = "Queued again."),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn replay(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id, delivery))): Valid<Path<(String, i64, i64)>>,
) -> Result<StatusCode, ApiError> {
    let ids = (WebhookEndpointId(id), WebhookDeliveryId(delivery));
    match service::replay(&state.db, admin.audit(), ids).await? {
        true => Ok(StatusCode::ACCEPTED),
        false => Err(ApiError::NotFound("webhook delivery")),
    }
}

/// Enable a disabled webhook endpoint
///
/// 200 with the endpoint; its failure streak is forgotten and its deliveries left pending go out
/// again.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/webhooks/{id}/enable",
    operation_id = "enable_webhook",
    tag = "webhooks",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The endpoint's id, as listed.")),
    responses(
        (status = 200, description = "The endpoint, enabled.", body = WebhookJson),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn enable(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<WebhookJson>, ApiError> {
    let endpoint = service::enable(&state.db, admin.audit(), WebhookEndpointId(id))
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(Json(webhook_json(&endpoint)))
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::Unprocessable { code, message }
}

/// An endpoint as listed: never its secret.
pub fn webhook_json(e: &Endpoint) -> WebhookJson {
    let events = Subscription::from_stored(&e.events).names();
    WebhookJson {
        id: e.id.0,
        url: e.url.clone(),
        description: e.description.clone(),
        events: events.into_iter().map(str::to_owned).collect(),
        created_at: Timestamp(e.created_at),
        disabled_at: e.disabled_at.map(Timestamp),
        disabled_reason: e.disabled_reason.clone(),
        failing_since: e.failing_since.map(Timestamp),
    }
}

fn attempt_json(a: &Attempt) -> WebhookAttempt {
    WebhookAttempt {
        id: a.id.0,
        delivery_id: a.delivery_id.0,
        webhook_id: a.msg_id.clone(),
        event: a.event_type.clone(),
        at: Timestamp(a.at),
        status: a.http_status,
        error: a.error.clone(),
        latency_ms: a.latency_ms,
        response: a.response.clone(),
        state: a.state.as_str().to_owned(),
    }
}

//! `POST …/imports/{id}/retry`: send every failed email of the import again.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use invite_shared::ids::ImportId;
use invite_shared::service::support::{self, RetryOutcome};
use serde::Serialize;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest};
use crate::extract::Valid;
use crate::routes::WorkspacePath;

/// How many failed sends went back in line.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Requeued {
    /// Failed sends that are pending again, due now.
    pub requeued: usize,
}

/// Send an import's failed emails again
///
/// Every `failed` send of the import whose member is still `invited` or `requested` goes back to
/// `pending`, due now, with a fresh retry window: **202** `{"requeued": n}`. 404 for another
/// workspace's import.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/imports/{id}/retry",
    operation_id = "retry_import_emails",
    tag = "imports",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The import's id.")),
    responses(
        (status = 202, description = "The failed sends are queued again.", body = Requeued),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<(StatusCode, Json<Requeued>), ApiError> {
    match support::retry_failed(&state.db, &state.queue, admin.audit(), ImportId(id)).await? {
        RetryOutcome::Requeued(n) => Ok((StatusCode::ACCEPTED, Json(Requeued { requeued: n }))),
        RetryOutcome::ImportNotFound => Err(ApiError::NotFound("import")),
    }
}

//! `POST …/imports/{id}/retry`: send every failed email of the import again.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use invite_shared::ids::ImportId;
use invite_shared::support::{self, RetryOutcome};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;

/// Puts the import's failed sends back in line: **202** `{"requeued": n}`; 404 for another
/// workspace's import.
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    match support::retry_failed(&state.db, &state.queue, admin.audit(), ImportId(id)).await? {
        RetryOutcome::Requeued(n) => Ok((StatusCode::ACCEPTED, Json(json!({ "requeued": n })))),
        RetryOutcome::ImportNotFound => Err(ApiError::NotFound("import")),
    }
}

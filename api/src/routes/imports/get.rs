//! `GET …/imports/{id}`: progress of one import.

use axum::Json;
use axum::extract::{Path, State};
use invite_shared::ids::ImportId;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::imports::ImportJson;

/// Get an import's progress
///
/// Its status and counters; 404 for another workspace's import.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/imports/{id}",
    operation_id = "get_import",
    tag = "imports",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The import's id.")),
    responses(
        (status = 200, description = "The import.", body = ImportJson),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<ImportJson>, ApiError> {
    let view = super::load(&state.db, admin.workspace_id, ImportId(id)).await?;
    Ok(Json(view))
}

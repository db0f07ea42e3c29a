//! `POST …/imports/{id}/cancel`: stop an import and its unsent emails.

use axum::Json;
use axum::extract::{Path, State};
use invite_shared::ids::ImportId;
use invite_shared::service::imports::cancel;
use invite_shared::store::imports::CancelOutcome;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::imports::ImportJson;

/// Cancel an import
///
/// The import becomes `cancelled`: no row is applied after the chunk being applied now, every
/// email of it not yet sent (`pending`, or `failed` awaiting a retry) becomes `cancelled`, and
/// emails being handed to the mail server finish. Rows already applied keep their members and
/// invitations. Cancelling again changes nothing and answers the same. 404 for another
/// workspace's import.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/imports/{id}/cancel",
    operation_id = "cancel_import",
    tag = "imports",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The import's id.")),
    responses(
        (status = 200, description = "The import, cancelled.", body = ImportJson),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<ImportJson>, ApiError> {
    let id = ImportId(id);
    if cancel(&state.db, &state.queue, admin.audit(), id).await? == CancelOutcome::NotFound {
        return Err(ApiError::NotFound("import"));
    }
    let view = super::load(&state.db, admin.workspace_id, id).await?;
    Ok(Json(view))
}

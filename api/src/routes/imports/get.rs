//! `GET …/imports/{id}`: progress of one import.

use axum::Json;
use axum::extract::{Path, State};
use invite_shared::ids::ImportId;
use invite_shared::store::imports;
use serde_json::Value;

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;

/// The import's status and counters; 404 for another workspace's import.
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<Value>, ApiError> {
    let view = state
        .db
        .run(move |c| {
            imports::get(c, admin.workspace_id, ImportId(id))?
                .map(|import| super::view(c, &import))
                .transpose()
        })
        .await?
        .ok_or(ApiError::NotFound("import"))?;
    Ok(Json(view))
}

//! Custom groups that CSV rows refer to.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use invite_shared::store::groups::{self, CreateGroup, Group};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;

/// Body of `POST …/groups`.
#[derive(Debug, Deserialize)]
pub struct NewGroup {
    /// The group's name, as rows will spell it.
    pub name: String,
}

/// Creates a group (201), or returns the existing one of that name (200).
pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Json(body)): Valid<Json<NewGroup>>,
) -> Result<(StatusCode, Json<Group>), ApiError> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 || name.contains('|') {
        return Err(ApiError::Unprocessable {
            code: "invalid_group_name",
            message: "a group name has 1 to 100 characters and no `|`".into(),
        });
    }
    let outcome = state
        .db
        .run(move |c| Ok(groups::create(c, admin.workspace_id, &name)?))
        .await?;
    Ok(match outcome {
        CreateGroup::Created(g) => (StatusCode::CREATED, Json(g)),
        CreateGroup::AlreadyExists(g) => (StatusCode::OK, Json(g)),
    })
}

/// The workspace's groups.
pub async fn list(admin: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let groups = state
        .db
        .run(move |c| Ok(groups::list(c, admin.workspace_id)?))
        .await?;
    Ok(Json(json!({ "groups": groups })))
}

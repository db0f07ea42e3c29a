//! Custom groups that CSV rows refer to.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use invite_shared::store::groups::{self, CreateGroup, Group};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{
    AdminErrors, ApiError, BadRequest, ErrorBody, PayloadTooLarge, UnsupportedMediaType,
};
use crate::extract::Valid;
use crate::routes::WorkspacePath;

/// Body of `POST …/groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewGroup {
    /// The group's name, as rows will spell it: 1 to 100 characters, no `|`; surrounding
    /// whitespace is trimmed.
    #[schema(
        example = "Engineering",
        pattern = r"^\s*[^\s|]([^|]{0,98}[^\s|])?\s*$"
    )]
    pub name: String,
}

/// The workspace's groups.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupList {
    /// By name.
    pub groups: Vec<Group>,
}

/// Create a group
///
/// 201 with the new group, or 200 with the existing group of that name.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/groups",
    operation_id = "create_group",
    tag = "groups",
    security(("bearer" = [])),
    params(WorkspacePath),
    request_body = NewGroup,
    responses(
        (status = 200, description = "A group of that name exists already.", body = Group),
        (status = 201, description = "The group was created.", body = Group),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 422,
            description = "A body without a string `name` (`invalid_request`), or an empty name, \
                one over 100 characters or with a `|` (`invalid_group_name`).",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
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

/// List the workspace's groups
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/groups",
    operation_id = "list_groups",
    tag = "groups",
    security(("bearer" = [])),
    params(WorkspacePath),
    responses(
        (status = 200, description = "The workspace's groups.", body = GroupList),
        AdminErrors,
    ),
)]
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<GroupList>, ApiError> {
    let groups = state
        .db
        .run(move |c| Ok(groups::list(c, admin.workspace_id)?))
        .await?;
    Ok(Json(GroupList { groups }))
}

//! `POST …/members/{id}/unsuppress`: resends and reminders reach the member's address again.

use axum::Json;
use axum::extract::{Path, State};
use invite_shared::ids::MemberId;
use invite_shared::service::support::{self, UnsuppressOutcome};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::members::MemberJson;

/// Unsuppress a member's address
///
/// For an address support has checked after a bounce or a complaint: resends and reminders
/// reach it again (nothing is sent now). 200 with the member, `suppressed` now `null`, also when
/// it was not suppressed (nothing changes then). Audited as `unsuppress`.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/members/{id}/unsuppress",
    operation_id = "unsuppress_member",
    tag = "members",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The member's id.")),
    responses(
        (status = 200, description = "The member, no longer suppressed.", body = MemberJson),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<MemberJson>, ApiError> {
    match support::unsuppress(&state.db, admin.audit(), MemberId(id)).await? {
        UnsuppressOutcome::Cleared(member) | UnsuppressOutcome::NotSuppressed(member) => {
            Ok(Json(super::member_json(*member)))
        }
        UnsuppressOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

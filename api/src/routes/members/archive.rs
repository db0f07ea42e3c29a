//! `POST …/members/{id}/archive` and `…/unarchive`.

use axum::Json;
use axum::extract::{Path, State};
use invite_shared::ids::MemberId;
use invite_shared::service::support::{self, ArchiveOutcome, UnarchiveOutcome};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest, ErrorBody};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::members::MemberJson;

/// Archive a member
///
/// Their links stop working (410, even after an unarchive) and their pending email is cancelled:
/// 200 with the member, also when they were archived already. 409 `last_admin` for the
/// workspace's last active admin, whom no one could replace once archived.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/members/{id}/archive",
    operation_id = "archive_member",
    tag = "members",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The member's id.")),
    responses(
        (status = 200, description = "The member, now archived.", body = MemberJson),
        (status = 400, response = BadRequest),
        (
            status = 409,
            description = "The member is the workspace's last active admin: `last_admin`.",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn archive(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<MemberJson>, ApiError> {
    match support::archive(&state.db, admin.audit(), MemberId(id)).await? {
        ArchiveOutcome::Archived(member) | ArchiveOutcome::AlreadyArchived(member) => {
            Ok(Json(super::member_json(*member)))
        }
        ArchiveOutcome::LastAdmin => Err(ApiError::Conflict {
            code: "last_admin",
            message: "this member is the last active admin of this workspace; make another member \
                      an admin first"
                .into(),
        }),
        ArchiveOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

/// Unarchive a member
///
/// Invites them again with a new link by email: they become `invited` (`requested` on cloud for
/// a person who never activated an account). 200 with the member; 409 when the member is not
/// archived, and `suppressed` when their address bounced or complained (unsuppress it first); 429 with `Retry-After` within `MEMBER_ACTION_COOLDOWN` of the member's last support
/// action, or once the workspace has queued `SUPPORT_EMAILS_PER_DAY` support emails in the UTC day.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/members/{id}/unarchive",
    operation_id = "unarchive_member",
    tag = "members",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The member's id.")),
    responses(
        (status = 200, description = "The member, invited again.", body = MemberJson),
        (status = 400, response = BadRequest),
        (
            status = 409,
            description = "The member is not archived (`member_not_archived`), or their address \
                bounced or complained (`suppressed`): the new link would go to it.",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn unarchive(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<MemberJson>, ApiError> {
    let outcome = support::unarchive(
        &state.db,
        &state.queue,
        &state.settings,
        admin.audit(),
        MemberId(id),
    )
    .await?;
    match outcome {
        UnarchiveOutcome::Queued(member) => Ok(Json(super::member_json(*member))),
        UnarchiveOutcome::Limited(limited) => Err(super::limited(limited)),
        UnarchiveOutcome::Suppressed(reason) => Err(super::suppressed(
            reason,
            "unsuppress it first (POST …/members/{id}/unsuppress) if it is right, then unarchive; \
             once they are invited again their address can be corrected",
        )),
        UnarchiveOutcome::NotArchived => Err(ApiError::Conflict {
            code: "member_not_archived",
            message: "this member is not archived".into(),
        }),
        UnarchiveOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

//! `POST …/members/{id}/invitation-link`: a fresh link for a self-hosted admin to copy.

use axum::Json;
use axum::extract::{Path, State};
use invite_shared::ids::MemberId;
use invite_shared::service::support::{self, LinkOutcome};
use serde::Serialize;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest, ErrorBody};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::imports::Timestamp;

/// A fresh invitation link to copy.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationLink {
    /// `{PUBLIC_URL}/invitations/{token}`.
    pub url: String,
    /// When it stops working (`INVITE_TTL` from now).
    pub expires_at: Timestamp,
}

/// Copy a fresh invitation link
///
/// `{"url","expires_at"}` of a new link to the member's open invitation; nothing is emailed.
/// Self-hosted only: 403 `self_hosted_only` on cloud. 409 for an active or archived member; 429
/// with `Retry-After` within `MEMBER_ACTION_COOLDOWN` of the member's last support action.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/members/{id}/invitation-link",
    operation_id = "create_invitation_link",
    tag = "members",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The member's id.")),
    responses(
        (status = 200, description = "A new link; nothing is emailed.", body = InvitationLink),
        (status = 400, response = BadRequest),
        // Before this route's own 403, which replaces the generic one.
        AdminErrors,
        (
            status = 403,
            description = "Not an admin of this workspace (`forbidden`), or a cloud edition, \
                where a link reaches the invitee by email alone (`self_hosted_only`).",
            body = ErrorBody,
        ),
        (
            status = 409,
            description = "The member has accepted already (`member_active`) or is archived \
                (`member_archived`).",
            body = ErrorBody,
        ),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<InvitationLink>, ApiError> {
    let outcome =
        support::invitation_link(&state.db, &state.settings, admin.audit(), MemberId(id)).await?;
    match outcome {
        LinkOutcome::Link(link) => Ok(Json(InvitationLink {
            url: link.url,
            expires_at: Timestamp(link.expires_at),
        })),
        LinkOutcome::SelfHostedOnly => Err(ApiError::NotOffered {
            code: "self_hosted_only",
            message: "invitation links can be copied on self-hosted installations only: on cloud \
                      a link reaches the invitee by email alone, which proves they own the \
                      address; resend the invitation instead"
                .into(),
        }),
        LinkOutcome::AlreadyActive => Err(super::already_active()),
        LinkOutcome::Archived => Err(super::archived()),
        LinkOutcome::Limited(limited) => Err(super::limited(limited)),
        LinkOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

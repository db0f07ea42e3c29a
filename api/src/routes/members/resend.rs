//! `POST …/members/{id}/resend`: a new invitation, a new link, a new email.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use invite_shared::ids::MemberId;
use invite_shared::service::support::{self, ResendOutcome};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest, ErrorBody};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::members::MemberJson;

/// Resend a member's invitation
///
/// Queues a new invitation with a new link by email for a member who has not accepted yet:
/// **202** with the member. Their earlier unsent (`pending` or `failed`) email is `cancelled`;
/// links already sent keep working. 409 for an active or archived member, and `suppressed` for
/// a member whose address bounced or complained (correct it, or unsuppress it); 429 with `Retry-After`
/// within `MEMBER_ACTION_COOLDOWN` of the member's last support action, or once the workspace has
/// queued `SUPPORT_EMAILS_PER_DAY` support emails in the UTC day.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/members/{id}/resend",
    operation_id = "resend_invitation",
    tag = "members",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The member's id.")),
    responses(
        (status = 202, description = "A new invitation email is queued.", body = MemberJson),
        (status = 400, response = BadRequest),
        (
            status = 409,
            description = "The member has accepted already (`member_active`), is archived \
                (`member_archived`), or their address bounced or complained (`suppressed`: \
                correct the address or unsuppress it).",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<(StatusCode, Json<MemberJson>), ApiError> {
    let outcome = support::resend(
        &state.db,
        &state.queue,
        &state.settings,
        admin.audit(),
        MemberId(id),
    )
    .await?;
    match outcome {
        ResendOutcome::Queued(member) => {
            Ok((StatusCode::ACCEPTED, Json(super::member_json(*member))))
        }
        ResendOutcome::AlreadyActive => Err(super::already_active()),
        ResendOutcome::Archived => Err(super::archived()),
        ResendOutcome::Suppressed(reason) => Err(super::suppressed(
            reason,
            "correct the address (POST …/members/{id}/email), or unsuppress it \
             (POST …/members/{id}/unsuppress) if it is right",
        )),
        ResendOutcome::Limited(limited) => Err(super::limited(limited)),
        ResendOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

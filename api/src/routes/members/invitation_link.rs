//! `POST …/members/{id}/invitation-link`: a fresh link for a self-hosted admin to copy.

use axum::Json;
use axum::extract::{Path, State};
use invite_shared::ids::MemberId;
use invite_shared::support::{self, LinkOutcome};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;
use crate::routes::imports::rfc3339;

/// `{"url","expires_at"}` of a new link to the member's open invitation (nothing is emailed);
/// 403 `self_hosted_only` on cloud, 409 for an active or archived member.
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<Value>, ApiError> {
    let outcome =
        support::invitation_link(&state.db, &state.settings, admin.audit(), MemberId(id)).await?;
    match outcome {
        LinkOutcome::Link(link) => Ok(Json(json!({
            "url": link.url,
            "expires_at": rfc3339(link.expires_at),
        }))),
        LinkOutcome::SelfHostedOnly => Err(ApiError::NotOffered {
            code: "self_hosted_only",
            message: "invitation links can be copied on self-hosted installations only: on cloud \
                      a link reaches the invitee by email alone, which proves they own the \
                      address; resend the invitation instead"
                .into(),
        }),
        LinkOutcome::AlreadyActive => Err(super::already_active()),
        LinkOutcome::Archived => Err(super::archived()),
        LinkOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

//! `POST …/members/{id}/resend`: a new invitation, a new link, a new email.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use invite_shared::ids::MemberId;
use invite_shared::support::{self, ResendOutcome};
use serde_json::Value;

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;

/// Queues a new invitation email for a member who has not accepted yet: **202** with the member;
/// 409 for an active or archived member.
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        ResendOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

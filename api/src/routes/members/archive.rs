//! `POST …/members/{id}/archive` and `…/unarchive`.

use axum::Json;
use axum::extract::{Path, State};
use invite_shared::ids::MemberId;
use invite_shared::support::{self, ArchiveOutcome, UnarchiveOutcome};
use serde_json::Value;

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;

/// Archives a member (their links stop working, their pending email is cancelled): 200 with the
/// member, also when they were archived already.
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn archive(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<Value>, ApiError> {
    match support::archive(&state.db, admin.audit(), MemberId(id)).await? {
        ArchiveOutcome::Archived(member) | ArchiveOutcome::AlreadyArchived(member) => {
            Ok(Json(super::member_json(*member)))
        }
        ArchiveOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

/// Invites an archived member again with a new link by email: 200 with the member; 409 when the
/// member is not archived.
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn unarchive(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Json<Value>, ApiError> {
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
        UnarchiveOutcome::NotArchived => Err(ApiError::Conflict {
            code: "member_not_archived",
            message: "this member is not archived".into(),
        }),
        UnarchiveOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

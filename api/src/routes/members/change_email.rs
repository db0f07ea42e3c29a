//! `POST …/members/{id}/email`: correct the address of a member who has not accepted, and email
//! a new link to it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use invite_shared::domain::email::InviteeEmail;
use invite_shared::ids::MemberId;
use invite_shared::service::support::{self, ChangeEmailOutcome};
use invite_shared::store::members;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{
    AdminErrors, ApiError, BadRequest, ErrorBody, PayloadTooLarge, UnsupportedMediaType,
};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::members::MemberJson;

/// Body of `POST …/members/{id}/email`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmail {
    /// The corrected address, checked as an import checks an email cell.
    // Optional to serde, so that a member of another workspace is 404 whatever the body says;
    // required in the document, and refused as `invalid_email` when it is missing.
    #[serde(default)]
    #[schema(required = true, value_type = String, example = "ada@example.com", max_length = 1024)]
    pub email: Option<String>,
}

/// Correct a member's address
///
/// For a member who has not accepted (`invited` or `requested`), typically after a bounce: the
/// address is checked as an import checks an email cell (422 `invalid_email` with the same
/// words), and must not be another member's of this workspace (409 `email_taken`). The
/// membership moves to the person of the new address (another workspace's membership of the old
/// one is untouched), the suppression is cleared, the links sent to the old address stop working
/// (410), the unsent email is `cancelled`, and a new invitation is emailed to the new address:
/// **202** with the member. 409 `member_active` or `member_archived` for the others,
/// `email_unchanged` when it is their address already; 429 with `Retry-After` as a resend.
/// Audited as `address_change` (naming the member, never an address).
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/members/{id}/email",
    operation_id = "change_member_email",
    tag = "members",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The member's id.")),
    request_body = NewEmail,
    responses(
        (status = 202, description = "A new invitation to the new address is queued.", body = MemberJson),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 409,
            description = "The member has accepted already (`member_active`) or is archived \
                (`member_archived`); the address is the member's already (`email_unchanged`) or \
                another member's of this workspace (`email_taken`).",
            body = ErrorBody,
        ),
        (
            status = 422,
            description = "Not an email address, in the words of an import's results \
                (`invalid_email`); a body that is not `{\"email\": \"…\"}` (`invalid_request`).",
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
    Valid(Json(body)): Valid<Json<NewEmail>>,
) -> Result<(StatusCode, Json<MemberJson>), ApiError> {
    let member = MemberId(id);
    let email = match body.email.as_deref().map(InviteeEmail::parse) {
        Some(Ok(email)) => email,
        Some(Err(words)) => return Err(refused(&state, &admin, member, words).await),
        None => {
            let words = "`email` is required: the corrected address".to_owned();
            return Err(refused(&state, &admin, member, words).await);
        }
    };
    let outcome = support::change_email(
        &state.db,
        &state.queue,
        &state.settings,
        admin.audit(),
        (member, email),
    )
    .await?;
    match outcome {
        ChangeEmailOutcome::Queued(member) => {
            Ok((StatusCode::ACCEPTED, Json(super::member_json(*member))))
        }
        ChangeEmailOutcome::AlreadyActive => Err(ApiError::Conflict {
            code: "member_active",
            message: "this member has accepted their invitation: their address is their \
                      account's, which only they can change"
                .into(),
        }),
        ChangeEmailOutcome::Archived => Err(super::archived()),
        ChangeEmailOutcome::Unchanged => Err(ApiError::Conflict {
            code: "email_unchanged",
            message: "that is this member's address already; unsuppress it if it is right".into(),
        }),
        ChangeEmailOutcome::Taken => Err(ApiError::Conflict {
            code: "email_taken",
            message: "another member of this workspace has that address".into(),
        }),
        ChangeEmailOutcome::Limited(limited) => Err(super::limited(limited)),
        ChangeEmailOutcome::NotFound => Err(ApiError::NotFound("member")),
    }
}

/// The answer to a body without a valid address: 404 for a member not in the workspace (as the
/// action itself would answer), else 422 `invalid_email` in `words`.
async fn refused(state: &AppState, admin: &Admin, member: MemberId, words: String) -> ApiError {
    let workspace = admin.workspace_id;
    let found = state
        .db
        .run(move |c| Ok(members::view(c, workspace, member)?))
        .await;
    match found {
        Ok(Some(_)) => ApiError::Unprocessable {
            code: "invalid_email",
            message: words,
        },
        Ok(None) => ApiError::NotFound("member"),
        Err(e) => e.into(),
    }
}

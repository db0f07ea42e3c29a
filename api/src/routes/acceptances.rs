//! `GET /api/v1/acceptances/{token}`: the workspace's application verifies the hand-over token an
//! accepted invitation brought it, and learns who the new member is. Public: the token is the
//! capability (256 random bits, stored hashed, `ACCEPT_HANDOVER_TTL` long, verified once), so the
//! application needs no API token of its own.

use axum::Json;
use axum::extract::{Path, State};
use invite_shared::domain::email;
use invite_shared::service::handover;
use invite_shared::store::handovers::{Acceptance, Redeem};
use serde::Serialize;

use crate::AppState;
use crate::error::{ApiError, ErrorBody, InternalError, RequestTimeout, Unavailable};
use crate::extract::Valid;
use crate::routes::imports::Timestamp;

/// The new member, as the hand-over token vouches for them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AcceptanceJson {
    /// The workspace's slug.
    pub workspace: String,
    /// The member's id (as in `GET /api/v1/workspaces/{ws}/members/{id}`).
    pub member_id: i64,
    /// Their address, as people read it.
    pub email: String,
    /// As the workspace's file gave it.
    pub first_name: Option<String>,
    /// As the workspace's file gave it.
    pub last_name: Option<String>,
    /// `Admin`, `Builder` or `End User`.
    #[schema(example = "End User")]
    pub role: String,
    /// Their groups, by name.
    pub groups: Vec<String>,
    /// When they accepted.
    pub accepted_at: Timestamp,
}

/// Verify a hand-over token
///
/// The member whose acceptance brought the token (the `token` query parameter of the redirect to
/// the workspace's `accept_redirect_url`). Public: the token itself is the capability. Each token
/// verifies once, within `ACCEPT_HANDOVER_TTL` of the acceptance; then 410.
#[utoipa::path(
    get,
    path = "/api/v1/acceptances/{token}",
    operation_id = "verify_acceptance",
    tag = "acceptances",
    params((
        "token" = String,
        Path,
        pattern = "^[A-Za-z0-9_-]{43}$",
        description = "The hand-over token, from the redirect's `token` query parameter."
    )),
    responses(
        (status = 200, description = "The new member; the token is used from now on.", body = AcceptanceJson),
        (status = 404, description = "No hand-over has this token: `not_found`.", body = ErrorBody),
        (
            status = 410,
            description = "Verified before (`handover_used`), past `ACCEPT_HANDOVER_TTL` \
                (`handover_expired`), or the member was archived since (`handover_revoked`).",
            body = ErrorBody,
        ),
        (status = 408, response = RequestTimeout),
        (status = 500, response = InternalError),
        (status = 503, response = Unavailable),
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn verify(
    State(state): State<AppState>,
    Valid(Path(token)): Valid<Path<String>>,
) -> Result<Json<AcceptanceJson>, ApiError> {
    if !well_formed(&token) {
        return Err(ApiError::NotFound("acceptance"));
    }
    match handover::redeem(&state.db, &token).await? {
        Redeem::Valid(acceptance) => Ok(Json(acceptance_json(*acceptance))),
        Redeem::NotFound => Err(ApiError::NotFound("acceptance")),
        Redeem::Used => Err(gone(
            "handover_used",
            "this hand-over token has been verified already; each verifies once",
        )),
        Redeem::Expired => Err(gone(
            "handover_expired",
            "this hand-over token has expired (ACCEPT_HANDOVER_TTL)",
        )),
        Redeem::Revoked => Err(gone(
            "handover_revoked",
            "the member of this hand-over is no longer active",
        )),
    }
}

/// What a minted token looks like: 32 bytes in URL-safe base64, 43 characters. Anything else is
/// no token, answered without a database query.
fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn gone(code: &'static str, message: &str) -> ApiError {
    ApiError::Gone {
        code,
        message: message.to_owned(),
    }
}

fn acceptance_json(a: Acceptance) -> AcceptanceJson {
    AcceptanceJson {
        email: email::display(&a.email),
        workspace: a.workspace,
        member_id: a.member_id.0,
        first_name: a.first_name,
        last_name: a.last_name,
        role: a.role.label().to_owned(),
        groups: a.groups,
        accepted_at: Timestamp(a.accepted_at),
    }
}

//! `…/tokens`: the workspace's API tokens — list (never a secret), create (the secret shown once,
//! bounded by the token that made it), revoke (with every token made from it).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use invite_shared::ids::TokenId;
use invite_shared::service::tokens::{self as service, IssueOutcome, RevokeOutcome};
use invite_shared::store::auth::{self, MAX_GENERATIONS, MAX_LIVE_TOKENS, NewToken, TokenInfo};
use serde::Serialize;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{
    AdminErrors, ApiError, BadRequest, ErrorBody, PayloadTooLarge, UnsupportedMediaType,
};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::imports::Timestamp;

/// Longest token name.
const MAX_NAME_CHARS: usize = 100;

/// Body of `POST …/tokens`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, shown in lists: 1 to 100 characters, no line breaks.
    #[schema(example = "nightly sync")]
    pub name: String,
    /// How long it works, 1 minute to 3650 days in humantime (`12h`, `30days`); absent for as long
    /// as the token making it. A token never outlives the token that made it: an absent or longer
    /// lifetime is cut to that token's expiry (the answer's `expires_at` says when), and revoking
    /// that token revokes this one.
    #[serde(default, with = "humantime_serde::option")]
    #[schema(value_type = Option<String>, example = "30days")]
    pub expires_in: Option<Duration>,
}

/// An API token as listed: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Token)]
pub struct TokenJson {
    /// Its id.
    pub id: i64,
    /// What it is for.
    pub name: String,
    /// Its first 11 characters, e.g. `bi_Q2x9LmZa` (empty for tokens made before prefixes).
    pub prefix: String,
    /// The email of the admin it acts as.
    pub created_by: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working; `null`: never.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// Roughly when it was last used (to the minute).
    pub last_used_at: Option<Timestamp>,
}

/// A new token, with its secret: shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The token as lists show it.
    #[serde(flatten)]
    pub info: TokenJson,
    /// The secret, for `Authorization: Bearer`; starts with `bi_`.
    pub token: String,
}

/// The workspace's tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    /// Newest first.
    pub tokens: Vec<TokenJson>,
}

/// List the workspace's API tokens
///
/// Newest first, never a secret: the tokens made for this workspace (tokens made before tokens
/// belonged to one workspace are listed by operators only, `invite-api token list --legacy`).
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/tokens",
    operation_id = "list_tokens",
    tag = "tokens",
    security(("bearer" = [])),
    params(WorkspacePath),
    responses(
        (status = 200, description = "The tokens made for this workspace.", body = TokenList),
        AdminErrors,
    ),
)]
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = service::list(&state.db, admin.workspace_id).await?;
    let tokens = tokens.iter().map(token_json).collect();
    Ok(Json(TokenList { tokens }))
}

/// Create an API token
///
/// It acts as the caller, in this workspace only, and is bound to the token that made it: it
/// expires no later, and it is revoked with it. 201 with the token and its secret, which is never
/// shown again (`Cache-Control: no-store`).
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/tokens",
    operation_id = "create_token",
    tag = "tokens",
    security(("bearer" = [])),
    params(WorkspacePath),
    request_body = CreateToken,
    responses(
        (
            status = 201,
            description = "The token and its secret.",
            body = CreatedToken,
            headers(("Cache-Control" = String, description = "`no-store`: the secret is never kept by a cache.")),
        ),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 422,
            description = "A body without a string `name` or with unknown fields \
                (`invalid_request`), an empty or over-long name (`invalid_name`), an expiry \
                out of range (`invalid_expiry`), a caller that is a token eight generations \
                below an operator's, made by tokens made by others (`token_too_deep`), or a \
                workspace with 1,000 working tokens already (`too_many_tokens`).",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn create(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Json(body)): Valid<Json<CreateToken>>,
) -> Result<Response, ApiError> {
    let name = body.name.trim().to_owned();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::Unprocessable {
            code: "invalid_name",
            message: format!("name must be 1 to {MAX_NAME_CHARS} characters, without line breaks"),
        });
    }
    let expires_at = body.expires_in.map(expiry).transpose()?;
    let new = NewToken {
        account: admin.account_id,
        workspace: Some(admin.workspace_id),
        name,
        expires_at,
        parent: Some(admin.token_id),
    };
    let issued = match service::issue(&state.db, admin.audit(), new).await? {
        IssueOutcome::Issued(issued) => issued,
        IssueOutcome::TooMany => {
            return Err(ApiError::Unprocessable {
                code: "too_many_tokens",
                message: format!(
                    "this workspace has {MAX_LIVE_TOKENS} working tokens; revoke some first"
                ),
            });
        }
        IssueOutcome::TooDeep => {
            return Err(ApiError::Unprocessable {
                code: "token_too_deep",
                message: format!(
                    "this token was made by a token made by another, {MAX_GENERATIONS} \
                     generations down from an operator's; make the new one with a token \
                     nearer the operator's"
                ),
            });
        }
    };
    let body = CreatedToken {
        info: token_json(&issued.info),
        token: issued.secret,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revoke an API token
///
/// 204; it, and every token made from it (and from those, and so on), answers 401 from then on.
/// Each is recorded in the audit log.
#[utoipa::path(
    delete,
    path = "/api/v1/workspaces/{ws}/tokens/{id}",
    operation_id = "revoke_token",
    tag = "tokens",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The token's id, as listed.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn revoke(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<StatusCode, ApiError> {
    match service::revoke(&state.db, admin.audit(), TokenId(id)).await? {
        RevokeOutcome::Revoked { .. } => Ok(StatusCode::NO_CONTENT),
        RevokeOutcome::NotFound => Err(ApiError::NotFound("token")),
    }
}

/// When a token given `lifetime` from now expires; 422 outside the accepted range.
fn expiry(lifetime: Duration) -> Result<chrono::NaiveDateTime, ApiError> {
    auth::expiry_after(lifetime).ok_or_else(|| ApiError::Unprocessable {
        code: "invalid_expiry",
        message: auth::EXPIRY_RANGE.into(),
    })
}

/// A token as listed: never its secret.
pub fn token_json(t: &TokenInfo) -> TokenJson {
    TokenJson {
        id: t.id.0,
        name: t.name.clone(),
        prefix: t.prefix.clone(),
        created_by: t.created_by.clone(),
        created_at: Timestamp(t.created_at),
        expires_at: t.expires_at.map(Timestamp),
        revoked_at: t.revoked_at.map(Timestamp),
        last_used_at: t.last_used_at.map(Timestamp),
    }
}

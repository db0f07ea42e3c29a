//! `…/tokens`: the workspace's API tokens — list (never a secret), create (the secret shown once),
//! revoke.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use invite_shared::store::audit::{Action, Target};
use invite_shared::store::auth::{self, NewToken, TokenInfo};
use invite_shared::support;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;
use crate::routes::imports::rfc3339;

/// Longest token name.
const MAX_NAME_CHARS: usize = 100;

/// Body of `POST …/tokens`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for, shown in lists.
    pub name: String,
    /// How long it works, e.g. `30days` or `12h`; absent for no expiry.
    #[serde(default, with = "humantime_serde::option")]
    pub expires_in: Option<Duration>,
}

/// `GET …/tokens`: newest first.
pub async fn list(admin: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let workspace = admin.workspace_id;
    let tokens = state
        .db
        .run(move |c| Ok(auth::list_tokens(c, workspace)?))
        .await?;
    let tokens: Vec<Value> = tokens.iter().map(token_json).collect();
    Ok(Json(json!({ "tokens": tokens })))
}

/// `POST …/tokens`: 201 with the token and its secret, which is never shown again.
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
    };
    let issued = state
        .db
        .run(move |c| Ok(auth::issue_token(c, &new)?))
        .await?;
    let target = Target::Token(issued.id);
    support::record(&state.db, admin.audit(), Action::TokenCreate, target).await;
    let mut body = token_json(&issued.info);
    body["token"] = Value::String(issued.secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE …/tokens/{id}`: 204; it answers 401 from then on.
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn revoke(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<StatusCode, ApiError> {
    let workspace = admin.workspace_id;
    let revoked = state
        .db
        .run(move |c| Ok(auth::revoke_token(c, workspace, id)?))
        .await?;
    if revoked {
        let target = Target::Token(id);
        support::record(&state.db, admin.audit(), Action::TokenRevoke, target).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("token"))
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
pub fn token_json(t: &TokenInfo) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "created_by": t.created_by,
        "created_at": rfc3339(t.created_at),
        "expires_at": t.expires_at.map(rfc3339),
        "revoked_at": t.revoked_at.map(rfc3339),
        "last_used_at": t.last_used_at.map(rfc3339),
    })
}

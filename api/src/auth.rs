//! Admin authentication: a bearer token whose holder is an active admin of the path's workspace.
//! A valid token is always served; only an invalid one counts against its client's limit of
//! failed authentications, and once the client is over it, the answer is 429 instead of 401.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use invite_shared::ids::{AccountId, TokenId, WorkspaceId};
use invite_shared::store::audit::Actor;
use invite_shared::store::auth::{self, AuthOutcome, Grant};

use crate::AppState;
use crate::error::ApiError;
use crate::limits;

/// The authenticated admin of the workspace named by the `{ws}` path segment.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin's account (the inviter of their uploads).
    pub account_id: AccountId,
    /// The workspace the request addresses.
    pub workspace_id: WorkspaceId,
    /// Its slug, for building URLs.
    pub slug: String,
    /// The token presented: the parent of the tokens this admin makes.
    pub token_id: TokenId,
}

impl Admin {
    /// The workspace and the actor its actions are recorded under in the audit log.
    pub fn audit(&self) -> (WorkspaceId, Actor) {
        (self.workspace_id, Actor::Admin(self.account_id))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let result = authenticate(parts, state).await;
        if !matches!(result, Err(ApiError::Unauthorized)) {
            return result;
        }
        let settings = &state.settings;
        let proxies = (&settings.trusted_proxies, settings.forwarded_header);
        let client = limits::client_key(parts, proxies);
        let limit = state.settings.auth_failures_per_minute;
        match state.limiter.failed_auth.hit_over(&client, limit) {
            Some(wait) => Err(limits::too_many(
                "auth_failures",
                wait,
                format!(
                    "too many failed authentications from this client; wait {} s",
                    wait.as_secs().max(1)
                ),
            )),
            None => result,
        }
    }
}

/// Checks the bearer token against the path's workspace.
async fn authenticate(parts: &mut Parts, state: &AppState) -> Result<Admin, ApiError> {
    let token = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::NotFound("workspace"))?;
    let slug = params
        .iter()
        .find(|(name, _)| *name == "ws")
        .map(|(_, value)| value.to_owned())
        .ok_or(ApiError::NotFound("workspace"))?;
    let lookup = slug.clone();
    let outcome = state
        .db
        .run(move |c| Ok(auth::authorize_admin(c, &token, &lookup)?))
        .await?;
    match outcome {
        AuthOutcome::Granted(Grant {
            account_id,
            workspace_id,
            token_id,
        }) => Ok(Admin {
            account_id,
            workspace_id,
            slug,
            token_id,
        }),
        AuthOutcome::UnknownToken => Err(ApiError::Unauthorized),
        AuthOutcome::NotAdmin => Err(ApiError::Forbidden),
        AuthOutcome::NoWorkspace => Err(ApiError::NotFound("workspace")),
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme name is case-insensitive
/// (RFC 9110, section 11.1), and any run of spaces may separate it from the token.
fn bearer_token(value: &str) -> Option<String> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_matched_case_insensitively() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "  BeArEr   abc  "] {
            assert_eq!(bearer_token(value).as_deref(), Some("abc"), "{value:?}");
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_refused() {
        for value in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", "abc", ""] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}

//! Admin API tokens: issue (the secret exists only in the answer), list (never a secret), revoke
//! (with every token descended from it); each change recorded in the audit log.

use chrono::NaiveDateTime;

use crate::db::Db;
use crate::ids::{TokenId, WorkspaceId};
use crate::service::audit::record;
use crate::service::{Result, Step as _};
use crate::store::audit::{Action, Actor, Target};
use crate::store::auth::{self, Issued, NewToken, RevokeScope, TokenInfo};

/// What `revoke` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The token and every token descended from it answer 401 from now on (it may have been
    /// revoked before).
    Revoked {
        /// How many of its descendants this call revoked.
        descendants: usize,
    },
    /// No such token acts in the workspace.
    NotFound,
}

/// What `issue` did.
#[derive(Debug)]
pub enum IssueOutcome {
    /// The new token, its secret shown this once.
    Issued(Issued),
    /// The parent is [`auth::MAX_GENERATIONS`] generations below an operator's token already.
    TooDeep,
    /// The workspace has [`auth::MAX_LIVE_TOKENS`] working tokens already.
    TooMany,
}

/// Issues a token for an admin of `workspace` (the API's caller issuing one for themselves).
#[tracing::instrument(skip_all, fields(%workspace))]
pub async fn issue(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    new: NewToken,
) -> Result<IssueOutcome> {
    let issued = db
        .run(move |c| {
            if let Some(parent) = new.parent
                && auth::generations(c, parent)? >= auth::MAX_GENERATIONS
            {
                return Ok(Err(IssueOutcome::TooDeep));
            }
            if auth::live_tokens(c, workspace)? >= auth::MAX_LIVE_TOKENS {
                return Ok(Err(IssueOutcome::TooMany));
            }
            Ok(Ok(auth::issue_token(c, &new)?))
        })
        .await
        .step("issuing the token")?;
    let issued = match issued {
        Ok(issued) => issued,
        Err(refused) => return Ok(refused),
    };
    record(
        db,
        (workspace, actor),
        Action::TokenCreate,
        Target::Token(issued.id),
    )
    .await;
    Ok(IssueOutcome::Issued(issued))
}

/// Issues a token valid in workspace `slug` for `email`, first making them an active admin of it
/// and creating both if missing: the operators' `token create`, recorded as theirs.
pub async fn issue_for_admin(
    db: &Db,
    slug: &str,
    email: &str,
    name: &str,
    expires_at: Option<NaiveDateTime>,
) -> Result<Issued> {
    let (slug, email, name) = (slug.to_owned(), email.to_owned(), name.to_owned());
    let (issued, workspace) = db
        .run(move |c| {
            let issued = auth::issue_admin_token(c, &slug, &email, &name, expires_at)?;
            let workspace =
                auth::find_workspace(c, &slug)?.ok_or(diesel::result::Error::NotFound)?;
            Ok((issued, workspace.id))
        })
        .await
        .step("issuing the token")?;
    let target = Target::Token(issued.id);
    record(
        db,
        (workspace, Actor::Operator),
        Action::TokenCreate,
        target,
    )
    .await;
    Ok(issued)
}

/// The tokens made for the workspace, newest first.
pub async fn list(db: &Db, workspace: WorkspaceId) -> Result<Vec<TokenInfo>> {
    db.run(move |c| Ok(auth::list_tokens(c, workspace)?))
        .await
        .step("listing the tokens")
}

/// The tokens made before tokens belonged to one workspace, newest first: each acts in every
/// workspace its holder administers (the operators' `token list --legacy`).
pub async fn list_legacy(db: &Db) -> Result<Vec<TokenInfo>> {
    db.run(move |c| Ok(auth::list_legacy_tokens(c)?))
        .await
        .step("listing the legacy tokens")
}

/// Revokes one of the tokens [`list`] shows for the workspace, and every token descended from it.
#[tracing::instrument(skip_all, fields(%workspace, token_id = id.0))]
pub async fn revoke(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    id: TokenId,
) -> Result<RevokeOutcome> {
    revoke_in(db, RevokeScope::Workspace(workspace), actor, id).await
}

/// Revokes any token, a legacy one included, and every token descended from it: the operators'
/// `token revoke` without a workspace.
#[tracing::instrument(skip_all, fields(token_id = id.0))]
pub async fn revoke_any(db: &Db, id: TokenId) -> Result<RevokeOutcome> {
    revoke_in(db, RevokeScope::Any, Actor::Operator, id).await
}

async fn revoke_in(
    db: &Db,
    scope: RevokeScope,
    actor: Actor,
    id: TokenId,
) -> Result<RevokeOutcome> {
    let revoked = db
        .run(move |c| Ok(auth::revoke_token(c, scope, id, actor)?))
        .await
        .step("revoking the token")?;
    Ok(match revoked {
        None => RevokeOutcome::NotFound,
        Some(revoked) => RevokeOutcome::Revoked {
            descendants: revoked.iter().filter(|t| t.id != id).count(),
        },
    })
}

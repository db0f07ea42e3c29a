//! Admin API tokens: issue (the secret exists only in the answer), list (never a secret), revoke;
//! each change recorded in the audit log.

use chrono::NaiveDateTime;

use crate::db::Db;
use crate::ids::{TokenId, WorkspaceId};
use crate::service::audit::record;
use crate::service::{Result, Step as _};
use crate::store::audit::{Action, Actor, Target};
use crate::store::auth::{self, Issued, NewToken, TokenInfo};

/// What `revoke` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The token answers 401 from now on (it may have been revoked before).
    Revoked,
    /// No such token acts in the workspace.
    NotFound,
}

/// Issues a token for an admin of `workspace` (the API's caller issuing one for themselves).
#[tracing::instrument(skip_all, fields(%workspace))]
pub async fn issue(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    new: NewToken,
) -> Result<Issued> {
    let issued = db
        .run(move |c| Ok(auth::issue_token(c, &new)?))
        .await
        .step("issuing the token")?;
    record(
        db,
        (workspace, actor),
        Action::TokenCreate,
        Target::Token(issued.id),
    )
    .await;
    Ok(issued)
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

/// The tokens that act in the workspace, newest first.
pub async fn list(db: &Db, workspace: WorkspaceId) -> Result<Vec<TokenInfo>> {
    db.run(move |c| Ok(auth::list_tokens(c, workspace)?))
        .await
        .step("listing the tokens")
}

/// Revokes one of the tokens [`list`] shows for the workspace.
#[tracing::instrument(skip_all, fields(%workspace, token_id = id.0))]
pub async fn revoke(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    id: TokenId,
) -> Result<RevokeOutcome> {
    let revoked = db
        .run(move |c| Ok(auth::revoke_token(c, workspace, id)?))
        .await
        .step("revoking the token")?;
    if !revoked {
        return Ok(RevokeOutcome::NotFound);
    }
    record(
        db,
        (workspace, actor),
        Action::TokenRevoke,
        Target::Token(id),
    )
    .await;
    Ok(RevokeOutcome::Revoked)
}

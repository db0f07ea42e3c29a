//! Workspaces, their admins and API tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{accounts, api_tokens, members, workspaces};
use crate::domain::role::Role;
use crate::ids::{AccountId, TokenId, WorkspaceId};
use crate::on_conn;
use crate::status::MemberStatus;
use crate::store::now;
use crate::tokens;

/// A workspace row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = workspaces, check_for_backend(diesel::sqlite::Sqlite))]
pub struct Workspace {
    /// Primary key.
    pub id: WorkspaceId,
    /// The URL name used in API paths.
    pub slug: String,
    /// The display name used in emails.
    pub name: String,
}

/// The caller of an admin route, once authenticated and authorised.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin's account.
    pub account_id: AccountId,
    /// The workspace the route addresses.
    pub workspace_id: WorkspaceId,
}

/// Why a bearer token does not grant access to a workspace.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// An active admin of the workspace.
    Granted(AccountId, WorkspaceId),
    /// The token is unknown.
    UnknownToken,
    /// The token's holder is a member there, but not an active admin.
    NotAdmin,
    /// There is no such workspace, or the token's holder is not a member of it.
    NoWorkspace,
}

/// Finds or creates the workspace `slug`.
pub fn ensure_workspace(conn: &mut DbConn, slug: &str) -> QueryResult<Workspace> {
    on_conn!(conn, |c| {
        diesel::insert_into(workspaces::table)
            .values((
                workspaces::slug.eq(slug),
                workspaces::name.eq(slug),
                workspaces::created_at.eq(now()),
            ))
            .on_conflict(workspaces::slug)
            .do_nothing()
            .execute(c)?;
        workspaces::table
            .filter(workspaces::slug.eq(slug))
            .select(Workspace::as_select())
            .first(c)
    })
}

/// The workspace `slug`, if it exists (the command-line twins of the admin routes).
pub fn find_workspace(conn: &mut DbConn, slug: &str) -> QueryResult<Option<Workspace>> {
    on_conn!(conn, |c| {
        workspaces::table
            .filter(workspaces::slug.eq(slug))
            .select(Workspace::as_select())
            .first(c)
            .optional()
    })
}

/// Finds or creates an account, returning its id.
pub fn ensure_account(conn: &mut DbConn, email: &str) -> QueryResult<AccountId> {
    on_conn!(conn, |c| {
        diesel::insert_into(accounts::table)
            .values((
                accounts::email.eq(email),
                accounts::activated_at.eq(Some(now())),
                accounts::created_at.eq(now()),
            ))
            .on_conflict(accounts::email)
            .do_nothing()
            .execute(c)?;
        accounts::table
            .filter(accounts::email.eq(email))
            .select(accounts::id)
            .first(c)
    })
}

/// Makes `email` an active admin of workspace `slug` (creating both if missing) and returns a new
/// API token for them, valid in that workspace. The token is shown once; only its hash is stored.
pub fn create_admin_token(conn: &mut DbConn, slug: &str, email: &str) -> QueryResult<String> {
    issue_admin_token(conn, slug, email, "", None).map(|issued| issued.secret)
}

/// [`create_admin_token`] with a name and an expiry: the operators' `token create`.
pub fn issue_admin_token(
    conn: &mut DbConn,
    slug: &str,
    email: &str,
    name: &str,
    expires_at: Option<NaiveDateTime>,
) -> QueryResult<Issued> {
    conn.transaction(|conn| {
        let workspace = ensure_workspace(conn, slug)?.id;
        let account = ensure_account(conn, email)?;
        upsert_active_member(conn, workspace, account, Role::Admin)?;
        let new = NewToken {
            account,
            workspace: Some(workspace),
            name: name.to_owned(),
            expires_at,
        };
        issue_token(conn, &new)
    })
}

/// Makes an account an active member with `role`, whatever it was before.
pub fn upsert_active_member(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    account: AccountId,
    role: Role,
) -> QueryResult<()> {
    on_conn!(conn, |c| {
        diesel::insert_into(members::table)
            .values((
                members::workspace_id.eq(workspace),
                members::account_id.eq(account),
                members::role.eq(role),
                members::status.eq(MemberStatus::Active),
                members::created_at.eq(now()),
                members::updated_at.eq(now()),
            ))
            .on_conflict((members::workspace_id, members::account_id))
            .do_update()
            .set((
                members::role.eq(role),
                members::status.eq(MemberStatus::Active),
                members::updated_at.eq(now()),
            ))
            .execute(c)
            .map(drop)
    })
}

/// Issues a new API token for an account, valid in every workspace it administers (operators'
/// `token create`).
pub fn create_token(conn: &mut DbConn, account: AccountId) -> QueryResult<String> {
    let new = NewToken {
        account,
        workspace: None,
        name: String::new(),
        expires_at: None,
    };
    issue_token(conn, &new).map(|issued| issued.secret)
}

/// What a new API token is for.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Whose token it is (it acts as this admin).
    pub account: AccountId,
    /// The one workspace it is valid in; `None` for every workspace the account administers.
    pub workspace: Option<WorkspaceId>,
    /// A name for people ("CI import job").
    pub name: String,
    /// When it stops working; `None` for never.
    pub expires_at: Option<NaiveDateTime>,
}

/// A token just issued: the only time its secret exists outside its holder.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Its id, to list and revoke it.
    pub id: TokenId,
    /// The secret, shown once.
    pub secret: String,
    /// Its listed form.
    pub info: TokenInfo,
}

/// An API token as listed: everything but the secret.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::sqlite::Sqlite))]
pub struct TokenInfo {
    /// Its id.
    pub id: TokenId,
    /// Its name.
    pub name: String,
    /// Its first characters, e.g. `bi_Q2x9LmZa` (empty for tokens made before prefixes).
    pub prefix: String,
    /// The email of the admin it acts as.
    #[diesel(select_expression = accounts::email)]
    pub created_by: String,
    /// When it was made.
    pub created_at: NaiveDateTime,
    /// When it stops working.
    pub expires_at: Option<NaiveDateTime>,
    /// When it was revoked.
    pub revoked_at: Option<NaiveDateTime>,
    /// Roughly when it was last used (to the minute).
    pub last_used_at: Option<NaiveDateTime>,
}

/// Issues a new API token.
pub fn issue_token(conn: &mut DbConn, new: &NewToken) -> QueryResult<Issued> {
    let token = tokens::mint_api();
    let prefix = tokens::shown_prefix(&token.plain);
    let id = on_conn!(conn, |c| {
        diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::account_id.eq(new.account),
                api_tokens::token_hash.eq(&token.hash),
                api_tokens::created_at.eq(now()),
                api_tokens::workspace_id.eq(new.workspace),
                api_tokens::name.eq(&new.name),
                api_tokens::prefix.eq(&prefix),
                api_tokens::expires_at.eq(new.expires_at),
            ))
            .returning(api_tokens::id)
            .get_result::<TokenId>(c)
    })?;
    let info = token_infos(conn, TokenScope::Id(id))?
        .pop()
        .ok_or(diesel::result::Error::NotFound)?;
    Ok(Issued {
        id,
        secret: token.plain,
        info,
    })
}

/// Which tokens [`token_infos`] lists.
enum TokenScope {
    Id(TokenId),
    Workspace(WorkspaceId),
}

/// The tokens that act in a workspace: made for it, or of one of its admins and valid in every
/// workspace; newest first.
pub fn list_tokens(conn: &mut DbConn, workspace: WorkspaceId) -> QueryResult<Vec<TokenInfo>> {
    token_infos(conn, TokenScope::Workspace(workspace))
}

fn token_infos(conn: &mut DbConn, scope: TokenScope) -> QueryResult<Vec<TokenInfo>> {
    on_conn!(conn, |c| {
        let mut query = api_tokens::table
            .inner_join(accounts::table)
            .select(TokenInfo::as_select())
            .order(api_tokens::id.desc())
            .into_boxed();
        query = match scope {
            TokenScope::Id(id) => query.filter(api_tokens::id.eq(id)),
            TokenScope::Workspace(workspace) => {
                let admins = members::table
                    .filter(members::workspace_id.eq(workspace))
                    .filter(members::role.eq(Role::Admin))
                    .select(members::account_id);
                query.filter(
                    api_tokens::workspace_id
                        .eq(workspace)
                        .or(api_tokens::workspace_id
                            .is_null()
                            .and(api_tokens::account_id.eq_any(admins))),
                )
            }
        };
        query.load(c)
    })
}

/// Revokes one of the tokens [`list_tokens`] shows for the workspace; `false` when there is no
/// such token there. Revoking twice keeps the first time.
pub fn revoke_token(conn: &mut DbConn, workspace: WorkspaceId, id: TokenId) -> QueryResult<bool> {
    let listed = token_infos(conn, TokenScope::Workspace(workspace))?
        .iter()
        .any(|t| t.id == id);
    if !listed {
        return Ok(false);
    }
    on_conn!(conn, |c| {
        diesel::update(api_tokens::table.find(id))
            .filter(api_tokens::revoked_at.is_null())
            .set(api_tokens::revoked_at.eq(Some(now())))
            .execute(c)
    })?;
    Ok(true)
}

/// The lifetimes a token may be given, in words for the admin.
pub const EXPIRY_RANGE: &str =
    "expires_in must be between 1 minute and 3650 days (e.g. \"30days\")";

/// When a token given `lifetime` from now expires; `None` outside [`EXPIRY_RANGE`].
pub fn expiry_after(lifetime: std::time::Duration) -> Option<NaiveDateTime> {
    let range = std::time::Duration::from_secs(60)..=std::time::Duration::from_secs(3650 * 86_400);
    if !range.contains(&lifetime) {
        return None;
    }
    Some(now() + chrono::TimeDelta::from_std(lifetime).ok()?)
}

/// How stale `last_used_at` may get before a request writes it again: one write a minute per token
/// at most, not one per request.
const LAST_USED_GRANULARITY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);

/// A live API token, as [`authorize_admin`] reads it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::sqlite::Sqlite))]
struct Presented {
    id: TokenId,
    /// The admin it acts as.
    account_id: AccountId,
    /// The one workspace it is valid in, if it was made for one.
    workspace_id: Option<WorkspaceId>,
    last_used_at: Option<NaiveDateTime>,
}

/// Decides whether the holder of `token` administers workspace `slug`.
pub fn authorize_admin(conn: &mut DbConn, token: &str, slug: &str) -> QueryResult<AuthOutcome> {
    let hash = tokens::hash(token);
    let now = now();
    on_conn!(conn, |c| {
        // Revoked and expired tokens are unknown tokens: 401 at once.
        let found: Option<Presented> = api_tokens::table
            .filter(api_tokens::token_hash.eq(&hash))
            .filter(api_tokens::revoked_at.is_null())
            .filter(
                api_tokens::expires_at
                    .is_null()
                    .or(api_tokens::expires_at.gt(now)),
            )
            .select(Presented::as_select())
            .first(c)
            .optional()?;
        let Some(token) = found else {
            return Ok(AuthOutcome::UnknownToken);
        };
        if token
            .last_used_at
            .is_none_or(|t| now - t >= LAST_USED_GRANULARITY)
        {
            diesel::update(api_tokens::table.find(token.id))
                .set(api_tokens::last_used_at.eq(Some(now)))
                .execute(c)?;
        }
        let Some(workspace) = workspaces::table
            .filter(workspaces::slug.eq(slug))
            .select(workspaces::id)
            .first::<WorkspaceId>(c)
            .optional()?
        else {
            return Ok(AuthOutcome::NoWorkspace);
        };
        if token.workspace_id.is_some_and(|scope| scope != workspace) {
            // A token made for another workspace: as for outsiders, nothing about this one.
            return Ok(AuthOutcome::NoWorkspace);
        }
        let membership: Option<(Role, MemberStatus)> = members::table
            .filter(members::workspace_id.eq(workspace))
            .filter(members::account_id.eq(token.account_id))
            .select((members::role, members::status))
            .first(c)
            .optional()?;
        // Outsiders learn nothing about another workspace, not even that it exists.
        Ok(match membership {
            None => AuthOutcome::NoWorkspace,
            Some((Role::Admin, MemberStatus::Active)) => {
                AuthOutcome::Granted(token.account_id, workspace)
            }
            Some(_) => AuthOutcome::NotAdmin,
        })
    })
}

/// Whether any workspace exists yet (first start creates one).
pub fn has_workspaces(conn: &mut DbConn) -> QueryResult<bool> {
    on_conn!(conn, |c| {
        workspaces::table
            .count()
            .get_result::<i64>(c)
            .map(|n| n > 0)
    })
}

/// The workspace's first active admin, the inviter of imports run from the command line.
pub fn first_admin(conn: &mut DbConn, workspace: WorkspaceId) -> QueryResult<Option<AccountId>> {
    on_conn!(conn, |c| {
        members::table
            .filter(members::workspace_id.eq(workspace))
            .filter(members::role.eq(Role::Admin))
            .filter(members::status.eq(MemberStatus::Active))
            .order(members::id)
            .select(members::account_id)
            .first(c)
            .optional()
    })
}

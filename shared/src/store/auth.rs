//! Workspaces, their admins and API tokens.

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::{accounts, api_tokens, members, workspaces};
use crate::domain::role::Role;
use crate::ids::{AccountId, WorkspaceId};
use crate::on_conn;
use crate::status::MemberStatus;
use crate::store::now;
use crate::tokens;

/// A workspace row.
#[derive(Debug, Clone, Queryable)]
pub struct Workspace {
    /// Primary key.
    pub id: i64,
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
            .select((workspaces::id, workspaces::slug, workspaces::name))
            .first(c)
    })
}

/// The workspace `slug`, if it exists (the command-line twins of the admin routes).
pub fn find_workspace(conn: &mut DbConn, slug: &str) -> QueryResult<Option<Workspace>> {
    on_conn!(conn, |c| {
        workspaces::table
            .filter(workspaces::slug.eq(slug))
            .select((workspaces::id, workspaces::slug, workspaces::name))
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
            .map(AccountId)
    })
}

/// Makes `email` an active admin of workspace `slug` (creating both if missing) and returns a new
/// API token for them. The token is shown once; only its hash is stored.
pub fn create_admin_token(conn: &mut DbConn, slug: &str, email: &str) -> QueryResult<String> {
    conn.transaction(|conn| {
        let workspace = ensure_workspace(conn, slug)?;
        let account = ensure_account(conn, email)?;
        upsert_active_member(conn, WorkspaceId(workspace.id), account, Role::Admin)?;
        create_token(conn, account)
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
                members::workspace_id.eq(workspace.0),
                members::account_id.eq(account.0),
                members::role.eq(role.as_str()),
                members::status.eq(MemberStatus::Active.as_str()),
                members::created_at.eq(now()),
                members::updated_at.eq(now()),
            ))
            .on_conflict((members::workspace_id, members::account_id))
            .do_update()
            .set((
                members::role.eq(role.as_str()),
                members::status.eq(MemberStatus::Active.as_str()),
                members::updated_at.eq(now()),
            ))
            .execute(c)
            .map(drop)
    })
}

/// Issues a new API token for an account.
pub fn create_token(conn: &mut DbConn, account: AccountId) -> QueryResult<String> {
    let token = tokens::mint();
    on_conn!(conn, |c| {
        diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::account_id.eq(account.0),
                api_tokens::token_hash.eq(&token.hash),
                api_tokens::created_at.eq(now()),
            ))
            .execute(c)
    })?;
    Ok(token.plain)
}

/// Decides whether the holder of `token` administers workspace `slug`.
pub fn authorize_admin(conn: &mut DbConn, token: &str, slug: &str) -> QueryResult<AuthOutcome> {
    let hash = tokens::hash(token);
    on_conn!(conn, |c| {
        let Some(account) = api_tokens::table
            .filter(api_tokens::token_hash.eq(&hash))
            .select(api_tokens::account_id)
            .first::<i64>(c)
            .optional()?
        else {
            return Ok(AuthOutcome::UnknownToken);
        };
        let Some(workspace) = workspaces::table
            .filter(workspaces::slug.eq(slug))
            .select(workspaces::id)
            .first::<i64>(c)
            .optional()?
        else {
            return Ok(AuthOutcome::NoWorkspace);
        };
        let membership: Option<(String, String)> = members::table
            .filter(members::workspace_id.eq(workspace))
            .filter(members::account_id.eq(account))
            .select((members::role, members::status))
            .first(c)
            .optional()?;
        // Outsiders learn nothing about another workspace, not even that it exists.
        Ok(match membership {
            None => AuthOutcome::NoWorkspace,
            Some((role, status))
                if role == Role::Admin.as_str() && status == MemberStatus::Active.as_str() =>
            {
                AuthOutcome::Granted(AccountId(account), WorkspaceId(workspace))
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
            .filter(members::workspace_id.eq(workspace.0))
            .filter(members::role.eq(Role::Admin.as_str()))
            .filter(members::status.eq(MemberStatus::Active.as_str()))
            .order(members::id)
            .select(members::account_id)
            .first::<i64>(c)
            .optional()
            .map(|id| id.map(AccountId))
    })
}

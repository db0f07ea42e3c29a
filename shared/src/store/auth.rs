//! Workspaces, their admins and API tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Timestamp};

use crate::db::DbConn;
use crate::db::schema::{accounts, api_tokens, audit_events, members, workspaces};
use crate::db::statement::{param, statement};
use crate::domain::role::Role;
use crate::domain::search::member_text;
use crate::ids::{AccountId, TokenId, WorkspaceId};
use crate::status::MemberStatus;
use crate::store::audit::{Action, Actor, Target};
use crate::store::now;
use crate::tokens;
use crate::{on_conn, write_transaction};

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

/// What a token that grants access to a workspace acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The admin it acts as.
    pub account_id: AccountId,
    /// The workspace addressed.
    pub workspace_id: WorkspaceId,
    /// The token presented: the parent of the tokens it makes.
    pub token_id: TokenId,
}

/// Why a bearer token does not grant access to a workspace.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// An active admin of the workspace.
    Granted(Grant),
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
            parent: None,
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
        let email: String = accounts::table
            .find(account)
            .select(accounts::email)
            .get_result(c)?;
        // A new membership has no names: its address is what finds it. An existing one keeps its
        // names, and so its text.
        let search_text = member_text(&email, None, None);
        diesel::insert_into(members::table)
            .values((
                members::workspace_id.eq(workspace),
                members::account_id.eq(account),
                members::role.eq(role),
                members::status.eq(MemberStatus::Active),
                members::created_at.eq(now()),
                members::updated_at.eq(now()),
                members::search_text.eq(search_text),
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
        parent: None,
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
    /// When it stops working; `None` for never. A token with a parent never outlives it: a later
    /// expiry, or none, becomes the parent's.
    pub expires_at: Option<NaiveDateTime>,
    /// The token that made it through the API; `None` for an operator's token.
    pub parent: Option<TokenId>,
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

/// Rows one statement writes at most (five parameters each, well within every backend's limit).
const STATEMENT_ROWS: usize = 1000;

/// How many generations a lineage may hold: an operator's token, the tokens it makes, and so on.
/// Every request walks its token's lineage, so its length is bounded.
pub const MAX_GENERATIONS: usize = 8;

/// Tokens a workspace may have working at once (neither revoked nor expired), so that no admin can
/// make its token list, or a revocation, as large as they like.
pub const MAX_LIVE_TOKENS: i64 = 1000;

/// How many tokens made for `workspace` are working (neither revoked nor expired).
pub fn live_tokens(conn: &mut DbConn, workspace: WorkspaceId) -> QueryResult<i64> {
    let now = now();
    on_conn!(conn, |c| {
        api_tokens::table
            .filter(api_tokens::workspace_id.eq(workspace))
            .filter(api_tokens::revoked_at.is_null())
            .filter(
                api_tokens::expires_at
                    .is_null()
                    .or(api_tokens::expires_at.gt(now)),
            )
            .count()
            .get_result(c)
    })
}

/// How many generations token `id` and its ancestors make (1 for an operator's token).
pub fn generations(conn: &mut DbConn, id: TokenId) -> QueryResult<usize> {
    lineage(conn, id).map(|lineage| lineage.0.len())
}

/// Issues a new API token, its expiry capped at its ancestors' (see [`NewToken::expires_at`]).
pub fn issue_token(conn: &mut DbConn, new: &NewToken) -> QueryResult<Issued> {
    let token = tokens::mint_api();
    let prefix = tokens::shown_prefix(&token.plain);
    let expires_at = match new.parent {
        Some(parent) => capped(new.expires_at, lineage(conn, parent)?.expiry()),
        None => new.expires_at,
    };
    let id = on_conn!(conn, |c| {
        diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::account_id.eq(new.account),
                api_tokens::token_hash.eq(&token.hash),
                api_tokens::created_at.eq(now()),
                api_tokens::workspace_id.eq(new.workspace),
                api_tokens::name.eq(&new.name),
                api_tokens::prefix.eq(&prefix),
                api_tokens::expires_at.eq(expires_at),
                api_tokens::parent_id.eq(new.parent),
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

/// The earlier of a requested expiry and a limit, `None` meaning never.
fn capped(requested: Option<NaiveDateTime>, limit: Option<NaiveDateTime>) -> Option<NaiveDateTime> {
    match (requested, limit) {
        (Some(requested), Some(limit)) => Some(requested.min(limit)),
        (requested, limit) => requested.or(limit),
    }
}

/// A token and its ancestors, from itself up to the token an operator made.
const LINEAGE_SQL: &str = "\
    WITH RECURSIVE chain (id, parent_id, revoked_at, expires_at) AS ( \
        SELECT id, parent_id, revoked_at, expires_at FROM api_tokens WHERE id = $1 \
        UNION ALL \
        SELECT t.id, t.parent_id, t.revoked_at, t.expires_at \
        FROM api_tokens t JOIN chain ON t.id = chain.parent_id \
        WHERE t.id < chain.id \
    ) \
    SELECT revoked_at, expires_at FROM chain";

/// One token of a [`Lineage`].
#[derive(QueryableByName)]
struct Link {
    #[diesel(sql_type = Nullable<Timestamp>)]
    revoked_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    expires_at: Option<NaiveDateTime>,
}

/// A token and its ancestors (a parent is always older than its child, which the walk relies on
/// to end).
struct Lineage(Vec<Link>);

impl Lineage {
    /// When the first of them expires; `None` if none does.
    fn expiry(&self) -> Option<NaiveDateTime> {
        self.0.iter().filter_map(|link| link.expires_at).min()
    }

    /// Whether every one of them is unrevoked and unexpired at `now`.
    fn alive(&self, now: NaiveDateTime) -> bool {
        !self.0.is_empty()
            && self
                .0
                .iter()
                .all(|link| link.revoked_at.is_none() && link.expires_at.is_none_or(|at| at > now))
    }
}

/// Token `id` and its ancestors.
fn lineage(conn: &mut DbConn, id: TokenId) -> QueryResult<Lineage> {
    on_conn!(conn, |c| {
        statement(LINEAGE_SQL, (param::<BigInt, _>(id),))
            .load::<Link>(c)
            .map(Lineage)
    })
}

/// Which tokens [`token_infos`] lists.
enum TokenScope {
    Id(TokenId),
    Workspace(WorkspaceId),
    Legacy,
}

/// The tokens made for a workspace, newest first. Tokens made before tokens belonged to one
/// workspace ([`list_legacy_tokens`]) are not among them, though they act there.
pub fn list_tokens(conn: &mut DbConn, workspace: WorkspaceId) -> QueryResult<Vec<TokenInfo>> {
    token_infos(conn, TokenScope::Workspace(workspace))
}

/// The tokens made before tokens belonged to one workspace: each acts in every workspace its
/// holder administers. Operators list and revoke them from the command line only.
pub fn list_legacy_tokens(conn: &mut DbConn) -> QueryResult<Vec<TokenInfo>> {
    token_infos(conn, TokenScope::Legacy)
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
                query.filter(api_tokens::workspace_id.eq(workspace))
            }
            TokenScope::Legacy => query.filter(api_tokens::workspace_id.is_null()),
        };
        query.load(c)
    })
}

/// Which tokens a revocation may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeScope {
    /// Only a token made for this workspace (an admin, over the API).
    Workspace(WorkspaceId),
    /// Any token, those made before tokens belonged to one workspace included (an operator).
    Any,
}

/// A token that [`revoke_token`] revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Revoked {
    /// Its id.
    #[diesel(sql_type = BigInt)]
    pub id: TokenId,
    /// The admin it acted as.
    #[diesel(sql_type = BigInt)]
    pub account_id: AccountId,
    /// The workspace it was made for; `None` for a token of every workspace its holder administers.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub workspace_id: Option<WorkspaceId>,
}

/// A token and its descendants (a child is always younger than its parent) not yet revoked.
const DESCENDANTS_SQL: &str = "\
    WITH RECURSIVE tree (id) AS ( \
        SELECT id FROM api_tokens WHERE id = $1 \
        UNION ALL \
        SELECT t.id FROM api_tokens t JOIN tree ON t.parent_id = tree.id WHERE t.id > tree.id \
    ) \
    SELECT t.id, t.account_id, t.workspace_id FROM api_tokens t JOIN tree ON t.id = tree.id \
    WHERE t.revoked_at IS NULL";

/// Revokes token `id` and every token descended from it in one transaction, recording each in the
/// audit log as `actor`'s: in the workspace it was made for, or, for a token of every workspace,
/// in each workspace its holder administers. `None` when `scope` has no such token; otherwise the
/// tokens this call revoked (none when all were revoked before: revoking twice keeps the first
/// time).
pub fn revoke_token(
    conn: &mut DbConn,
    scope: RevokeScope,
    id: TokenId,
    actor: Actor,
) -> QueryResult<Option<Vec<Revoked>>> {
    let stamp = now();
    let actor = match actor {
        Actor::Admin(account) => Some(account),
        Actor::Operator => None,
    };
    write_transaction!(conn, |c| {
        let mut found = api_tokens::table
            .find(id)
            .select(api_tokens::id)
            .into_boxed();
        if let RevokeScope::Workspace(workspace) = scope {
            found = found.filter(api_tokens::workspace_id.eq(workspace));
        }
        if found.first::<TokenId>(c).optional()?.is_none() {
            return Ok(None);
        }
        let revoked: Vec<Revoked> =
            statement(DESCENDANTS_SQL, (param::<BigInt, _>(id),)).load(c)?;
        let ids: Vec<TokenId> = revoked.iter().map(|t| t.id).collect();
        // In parts, as any long list is: a lineage may hold more tokens than one statement may
        // bind parameters.
        for part in ids.chunks(STATEMENT_ROWS) {
            diesel::update(api_tokens::table.filter(api_tokens::id.eq_any(part)))
                .filter(api_tokens::revoked_at.is_null())
                .set(api_tokens::revoked_at.eq(Some(stamp)))
                .execute(c)?;
        }
        let mut entries = Vec::new();
        for token in &revoked {
            let workspaces: Vec<WorkspaceId> = match token.workspace_id {
                Some(workspace) => vec![workspace],
                None => members::table
                    .filter(members::account_id.eq(token.account_id))
                    .filter(members::role.eq(Role::Admin))
                    .select(members::workspace_id)
                    .load(c)?,
            };
            entries.extend(workspaces.into_iter().map(|workspace| {
                (
                    audit_events::workspace_id.eq(workspace),
                    audit_events::actor_account_id.eq(actor),
                    audit_events::action.eq(Action::TokenRevoke.as_str()),
                    audit_events::target.eq(Target::Token(token.id).text()),
                    audit_events::created_at.eq(stamp),
                )
            }));
        }
        for part in entries.chunks(STATEMENT_ROWS) {
            diesel::insert_into(audit_events::table)
                .values(part)
                .execute(c)?;
        }
        Ok(Some(revoked))
    })
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
    /// The token that made it, whose revocation or expiry ends it too.
    parent_id: Option<TokenId>,
}

/// The live token whose secret is `token`: not revoked, not expired, and none of its ancestors
/// either (revoking a token revokes its descendants, but one made while it was being revoked
/// escapes that, and so would rows written by hand).
fn live_token(
    conn: &mut DbConn,
    token: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<Presented>> {
    let hash = tokens::hash(token);
    let found: Option<Presented> = on_conn!(conn, |c| {
        api_tokens::table
            .filter(api_tokens::token_hash.eq(&hash))
            .filter(api_tokens::revoked_at.is_null())
            .filter(
                api_tokens::expires_at
                    .is_null()
                    .or(api_tokens::expires_at.gt(now)),
            )
            .select(Presented::as_select())
            .first(c)
            .optional()
    })?;
    match found {
        Some(Presented {
            parent_id: Some(parent),
            ..
        }) if !lineage(conn, parent)?.alive(now) => Ok(None),
        found => Ok(found),
    }
}

/// Decides whether the holder of `token` administers workspace `slug`.
pub fn authorize_admin(conn: &mut DbConn, token: &str, slug: &str) -> QueryResult<AuthOutcome> {
    let now = now();
    // Revoked and expired tokens are unknown tokens: 401 at once.
    let Some(token) = live_token(conn, token, now)? else {
        return Ok(AuthOutcome::UnknownToken);
    };
    on_conn!(conn, |c| {
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
            Some((Role::Admin, MemberStatus::Active)) => AuthOutcome::Granted(Grant {
                account_id: token.account_id,
                workspace_id: workspace,
                token_id: token.id,
            }),
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

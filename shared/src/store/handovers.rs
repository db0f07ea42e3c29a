//! Hand-over to the workspace's application: its `accept_redirect_url`, and the short-lived tokens
//! an acceptance hands over with the redirect, which the application redeems once for the new
//! member's data. Only a token's SHA-256 is stored, as for invitation links.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::backend::BackendConnection;
use crate::db::schema::{acceptance_handovers, accounts, members, workspaces};
use crate::domain::role::Role;
use crate::ids::{MemberId, WorkspaceId};
use crate::status::MemberStatus;
use crate::store::members::group_names;
use crate::store::now;
use crate::write_transaction;

/// The workspace's redirect template; `None` when it has none (or there is no such workspace).
pub fn redirect_of(conn: &mut DbConn, workspace: WorkspaceId) -> QueryResult<Option<String>> {
    workspaces::table
        .find(workspace)
        .select(workspaces::accept_redirect_url)
        .first::<Option<String>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Sets (or with `None` clears) the workspace's redirect template, checked by the caller.
pub fn set_redirect(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    template: Option<&str>,
) -> QueryResult<()> {
    diesel::update(workspaces::table.find(workspace))
        .set(workspaces::accept_redirect_url.eq(template))
        .execute(conn)?;
    Ok(())
}

/// A token to hand over with an acceptance, minted before the acceptance's transaction.
#[derive(Debug, Clone)]
pub struct NewHandover {
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
    /// When it stops verifying.
    pub expires_at: NaiveDateTime,
}

/// Where an acceptance hands over: the workspace's template and the values that fill it.
#[derive(Debug, Clone)]
pub struct HandOver {
    /// The workspace's `accept_redirect_url`.
    pub template: String,
    /// The new member.
    pub member_id: MemberId,
    /// Their stored address.
    pub email: String,
    /// The workspace's slug.
    pub workspace: String,
}

/// Within an acceptance's transaction: when the member's workspace has a redirect template,
/// stores `handover` for the member, accepted `now`, and says where to send the browser.
pub(crate) fn hand_over<C: BackendConnection>(
    c: &mut C,
    member_id: MemberId,
    handover: &NewHandover,
    now: NaiveDateTime,
) -> QueryResult<Option<HandOver>> {
    let (template, workspace, email): (Option<String>, String, String) = c.first(
        members::table
            .inner_join(workspaces::table)
            .inner_join(accounts::table)
            .filter(members::id.eq(member_id))
            .select((
                workspaces::accept_redirect_url,
                workspaces::slug,
                accounts::email,
            )),
    )?;
    let Some(template) = template else {
        return Ok(None);
    };
    c.execute(diesel::insert_into(acceptance_handovers::table).values((
        acceptance_handovers::token_hash.eq(&handover.hash),
        acceptance_handovers::member_id.eq(member_id),
        acceptance_handovers::accepted_at.eq(now),
        acceptance_handovers::expires_at.eq(handover.expires_at),
    )))?;
    Ok(Some(HandOver {
        template,
        member_id,
        email,
        workspace,
    }))
}

/// The new member's data, as the application receives it.
#[derive(Debug, Clone)]
pub struct Acceptance {
    /// The workspace's slug.
    pub workspace: String,
    /// The member.
    pub member_id: MemberId,
    /// Their stored address.
    pub email: String,
    /// As the workspace's file gave it.
    pub first_name: Option<String>,
    /// As the workspace's file gave it.
    pub last_name: Option<String>,
    /// Their role.
    pub role: Role,
    /// Their groups, by name.
    pub groups: Vec<String>,
    /// When they accepted.
    pub accepted_at: NaiveDateTime,
}

/// What redeeming a token found.
#[derive(Debug)]
pub enum Redeem {
    /// Valid until now; it is used from now on.
    Valid(Box<Acceptance>),
    /// No token hashes to that.
    NotFound,
    /// Past its lifetime.
    Expired,
    /// Redeemed before.
    Used,
    /// The member is no longer active (archived since).
    Revoked,
}

/// A stored hand-over.
#[derive(Queryable)]
struct HandoverRow {
    member_id: MemberId,
    accepted_at: NaiveDateTime,
    expires_at: NaiveDateTime,
    used_at: Option<NaiveDateTime>,
}

/// Redeems the token that hashes to `hash`: the first redemption of a live token gets the
/// member's data and marks it used (conditionally, so two at once give one `Valid`).
pub fn redeem(conn: &mut DbConn, hash: &[u8]) -> QueryResult<Redeem> {
    let now = now();
    write_transaction!(conn, |c| {
        let row: Option<HandoverRow> = acceptance_handovers::table
            .find(hash)
            .select((
                acceptance_handovers::member_id,
                acceptance_handovers::accepted_at,
                acceptance_handovers::expires_at,
                acceptance_handovers::used_at,
            ))
            .first(c)
            .optional()?;
        let Some(row) = row else {
            return Ok(Redeem::NotFound);
        };
        if row.used_at.is_some() {
            return Ok(Redeem::Used);
        }
        if row.expires_at <= now {
            return Ok(Redeem::Expired);
        }
        let used = diesel::update(acceptance_handovers::table.find(hash))
            .filter(acceptance_handovers::used_at.is_null())
            .set(acceptance_handovers::used_at.eq(Some(now)))
            .execute(c)?;
        if used == 0 {
            return Ok(Redeem::Used);
        }
        acceptance(c, row.member_id, row.accepted_at)
    })
}

/// The member's data, or `Revoked` when they are no longer active.
fn acceptance<C: BackendConnection>(
    c: &mut C,
    member_id: MemberId,
    accepted_at: NaiveDateTime,
) -> QueryResult<Redeem> {
    type Row = (
        String,
        String,
        Option<String>,
        Option<String>,
        Role,
        MemberStatus,
    );
    let (workspace, email, first_name, last_name, role, status): Row = c.first(
        members::table
            .inner_join(workspaces::table)
            .inner_join(accounts::table)
            .filter(members::id.eq(member_id))
            .select((
                workspaces::slug,
                accounts::email,
                members::first_name,
                members::last_name,
                members::role,
                members::status,
            )),
    )?;
    if status != MemberStatus::Active {
        return Ok(Redeem::Revoked);
    }
    let groups = group_names(c, &[member_id])?
        .remove(&member_id)
        .unwrap_or_default();
    Ok(Redeem::Valid(Box::new(Acceptance {
        workspace,
        member_id,
        email,
        first_name,
        last_name,
        role,
        groups,
        accepted_at,
    })))
}

/// Deletes up to `limit` hand-over tokens that expired before `before`; how many.
pub fn prune(conn: &mut DbConn, before: NaiveDateTime, limit: i64) -> QueryResult<usize> {
    let expired = acceptance_handovers::table
        .filter(acceptance_handovers::expires_at.lt(before))
        .order(acceptance_handovers::expires_at)
        .limit(limit)
        .select(acceptance_handovers::token_hash);
    let hashes: Vec<Vec<u8>> = expired.load(conn)?;
    if hashes.is_empty() {
        return Ok(0);
    }
    diesel::delete(
        acceptance_handovers::table.filter(acceptance_handovers::token_hash.eq_any(hashes)),
    )
    .execute(conn)
}

//! What support does after a bounce or a complaint (`docs/product.md`, "Bounces and
//! complaints"): clear a member's suppression, or correct their address.
//!
//! Both are member actions as in [`crate::store::support`]: one write transaction that locks the
//! member's row first, scoped to a workspace, saying what it did with an outcome enum and
//! returning the member read after the commit.
//!
//! Accounts are shared across workspaces, so an account's address is never edited: correcting an
//! address points the membership at the account of the new address (found, or created as an
//! import creates one), and every other workspace's membership of the old account stays as it
//! was.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use crate::config::Edition;
use crate::db::DbConn;
use crate::db::backend::BackendConnection;
use crate::db::schema::{accounts, invitations, members};
use crate::domain::email::InviteeEmail;
use crate::domain::search::member_text;
use crate::ids::{AccountId, MemberId, WorkspaceId};
use crate::status::{InvitationCause, MemberStatus, SuppressionReason};
use crate::store::members::{self as member_store, MemberView, invitee_status};
use crate::store::now;
use crate::store::support::{
    Limited, SupportLimits, UNSENT, admit, cancel_deliveries, invite_again, lock_member, set_status,
};
use crate::write_transaction;

/// What `unsuppress` did.
#[derive(Debug, Clone)]
pub enum UnsuppressOutcome {
    /// The suppression was cleared; the member as it is now.
    Cleared(Box<MemberView>),
    /// The member's address was not suppressed; nothing changed.
    NotSuppressed(Box<MemberView>),
    /// No such member in the workspace.
    NotFound,
}

/// What `change_email` did.
#[derive(Debug, Clone)]
pub enum ChangeEmailOutcome {
    /// The member has the new address and a new invitation's email to it is pending, due now.
    Queued(Box<MemberView>),
    /// The member accepted already: their address is their account's.
    AlreadyActive,
    /// The member is archived.
    Archived,
    /// The new address is the member's address already.
    Unchanged,
    /// Another member of the workspace has the new address.
    Taken,
    /// Refused by the support limits; nothing changed.
    Limited(Limited),
    /// No such member in the workspace.
    NotFound,
}

/// Clears the member's suppression, so resends and reminders reach their address again. A member
/// who is not suppressed is left as they are. Nothing is emailed.
pub fn unsuppress(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    member: MemberId,
) -> QueryResult<UnsuppressOutcome> {
    let cleared: QueryResult<Option<bool>> = write_transaction!(&mut *conn, |c| {
        let Some(state) = lock_member(c, workspace, member)? else {
            return Ok(None);
        };
        if state.suppressed_reason.is_none() {
            return Ok(Some(false));
        }
        clear_suppression(c, member, now())?;
        Ok(Some(true))
    });
    let Some(cleared) = cleared? else {
        return Ok(UnsuppressOutcome::NotFound);
    };
    Ok(match member_store::view(conn, workspace, member)? {
        Some(view) if cleared => UnsuppressOutcome::Cleared(Box::new(view)),
        Some(view) => UnsuppressOutcome::NotSuppressed(Box::new(view)),
        None => UnsuppressOutcome::NotFound,
    })
}

/// Forgets why the (locked) member's address was suppressed.
fn clear_suppression<C: BackendConnection>(
    c: &mut C,
    member: MemberId,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    c.execute(diesel::update(members::table.find(member)).set((
        members::suppressed_reason.eq(None::<SuppressionReason>),
        members::suppressed_at.eq(None::<NaiveDateTime>),
        members::updated_at.eq(now),
    )))
}

/// Gives an `invited`/`requested` member the address `email`, held to the [`SupportLimits`] of a
/// resend: the membership moves to the account of that address (found or created), the address
/// counts as changed now (a report about an email sent before suppresses nothing), the suppression
/// is cleared, the member's search text follows the address, the links sent to the old address
/// stop working (their invitations are revoked), the unsent emails are cancelled, and a new
/// invitation (cause `address_change`) with a pending delivery due now is made. Refused when
/// another member of the workspace has that address (canonical forms compared).
pub fn change_email(
    conn: &mut DbConn,
    (workspace, member): (WorkspaceId, MemberId),
    email: &InviteeEmail,
    (edition, limits): (Edition, SupportLimits),
) -> QueryResult<ChangeEmailOutcome> {
    let now = now();
    let refused: QueryResult<Option<ChangeEmailOutcome>> = write_transaction!(&mut *conn, |c| {
        readdress(c, (workspace, member), email, (edition, limits), now)
    });
    match refused {
        Ok(Some(refused)) => Ok(refused),
        Ok(None) => Ok(match member_store::view(conn, workspace, member)? {
            Some(view) => ChangeEmailOutcome::Queued(Box::new(view)),
            None => ChangeEmailOutcome::NotFound,
        }),
        // A concurrent import made the new address a member of the workspace after the check.
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            Ok(ChangeEmailOutcome::Taken)
        }
        Err(e) => Err(e),
    }
}

/// [`change_email`]'s transaction: `None` when the address was changed, or why it was not.
fn readdress<C: BackendConnection>(
    c: &mut C,
    (workspace, member): (WorkspaceId, MemberId),
    email: &InviteeEmail,
    (edition, limits): (Edition, SupportLimits),
    now: NaiveDateTime,
) -> QueryResult<Option<ChangeEmailOutcome>> {
    let Some(state) = lock_member(c, workspace, member)? else {
        return Ok(Some(ChangeEmailOutcome::NotFound));
    };
    match state.status {
        MemberStatus::Invited | MemberStatus::Requested => {}
        MemberStatus::Active => return Ok(Some(ChangeEmailOutcome::AlreadyActive)),
        MemberStatus::Archived => return Ok(Some(ChangeEmailOutcome::Archived)),
    }
    let found = find_account(c, email)?;
    if let Some((account, _)) = found {
        if account == state.account_id {
            return Ok(Some(ChangeEmailOutcome::Unchanged));
        }
        if is_member(c, workspace, account)? {
            return Ok(Some(ChangeEmailOutcome::Taken));
        }
    }
    if let Some(limited) = admit(c, (workspace, member), &state, (limits, true), now)? {
        return Ok(Some(ChangeEmailOutcome::Limited(limited)));
    }
    let (account, activated) = match found {
        Some(found) => found,
        None => create_account(c, email, now)?,
    };
    move_membership(c, member, (account, email), now)?;
    set_status(c, member, invitee_status(edition, activated), now)?;
    revoke_open_invitations(c, member, now)?;
    cancel_deliveries(c, &[member], &UNSENT)?;
    invite_again(
        c,
        (member, InvitationCause::AddressChange),
        state.import_id,
        now,
    )?;
    Ok(None)
}

/// The account with the (canonical) address, and whether it was ever activated.
fn find_account<C: BackendConnection>(
    c: &mut C,
    email: &InviteeEmail,
) -> QueryResult<Option<(AccountId, bool)>> {
    c.first(
        accounts::table
            .filter(accounts::email.eq(email.as_str()))
            .select((accounts::id, accounts::activated_at.is_not_null())),
    )
    .optional()
}

/// Whether the account has a membership of the workspace.
fn is_member<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    account: AccountId,
) -> QueryResult<bool> {
    let found: Vec<MemberId> = c.load(
        members::table
            .filter(members::workspace_id.eq(workspace))
            .filter(members::account_id.eq(account))
            .select(members::id)
            .limit(1),
    )?;
    Ok(!found.is_empty())
}

/// An account for the address, not activated (its owner has accepted nothing yet), as an import
/// creates one; an account a concurrent import created meanwhile is taken as it is.
fn create_account<C: BackendConnection>(
    c: &mut C,
    email: &InviteeEmail,
    now: NaiveDateTime,
) -> QueryResult<(AccountId, bool)> {
    c.execute(
        diesel::insert_into(accounts::table)
            .values((
                accounts::email.eq(email.as_str()),
                accounts::activated_at.eq(None::<NaiveDateTime>),
                accounts::created_at.eq(now),
            ))
            .on_conflict(accounts::email)
            .do_nothing(),
    )?;
    c.first(
        accounts::table
            .filter(accounts::email.eq(email.as_str()))
            .select((accounts::id, accounts::activated_at.is_not_null())),
    )
}

/// Points the (locked) membership at `account`, whose address is `email`: the address changed
/// now, the suppression cleared, and the search text made of the new address and the names.
fn move_membership<C: BackendConnection>(
    c: &mut C,
    member: MemberId,
    (account, email): (AccountId, &InviteeEmail),
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let (first, last): (Option<String>, Option<String>) = c.first(
        members::table
            .find(member)
            .select((members::first_name, members::last_name)),
    )?;
    c.execute(diesel::update(members::table.find(member)).set((
        members::account_id.eq(account),
        members::address_changed_at.eq(Some(now)),
        members::suppressed_reason.eq(None::<SuppressionReason>),
        members::suppressed_at.eq(None::<NaiveDateTime>),
        members::search_text.eq(member_text(
            email.as_str(),
            first.as_deref(),
            last.as_deref(),
        )),
        members::updated_at.eq(now),
    )))
}

/// Revokes the member's unaccepted invitations: their links went to the old address.
fn revoke_open_invitations<C: BackendConnection>(
    c: &mut C,
    member: MemberId,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    c.execute(
        diesel::update(
            invitations::table
                .filter(invitations::member_id.eq(member))
                .filter(invitations::accepted_at.is_null())
                .filter(invitations::revoked_at.is_null()),
        )
        .set(invitations::revoked_at.eq(Some(now))),
    )
}

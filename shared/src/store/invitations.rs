//! Invitation links: looking one up by its token and accepting it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::backend::{BackendConnection, columns};
use crate::db::schema::{accounts, invitation_links, invitations, members, workspaces};
use crate::domain::role::Role;
use crate::ids::{AccountId, InvitationId, MemberId, WorkspaceId};
use crate::status::MemberStatus;
use crate::store::handovers::{HandOver, NewHandover, hand_over};
use crate::store::members::{InvitedBy, inviter_names};
use crate::store::now;
use crate::store::webhooks;
use crate::tokens;
use crate::webhooks::EventType;
use crate::{on_conn, write_transaction};

/// The ids of the invitations of `members`, as a subquery: deliveries are indexed by invitation
/// and invitations by member, so this is how a member's deliveries are found.
#[diesel::dsl::auto_type]
pub(crate) fn invitations_of<'a>(members: &'a [MemberId]) -> _ {
    invitations::table
        .filter(invitations::member_id.eq_any(members))
        .select(invitations::id)
}

/// What the invitee sees before accepting.
#[derive(Debug, Clone)]
pub struct InvitationView {
    /// The workspace's display name.
    pub workspace: String,
    /// The invitee's address.
    pub email: String,
    /// The invitee's first name, as the workspace's own file gave it.
    pub first_name: Option<String>,
    /// The membership's status.
    pub status: MemberStatus,
    /// The role offered.
    pub role: Role,
    /// When the link expires.
    pub expires_at: NaiveDateTime,
    /// The invitation the link belongs to.
    pub invitation_id: InvitationId,
    /// Who invited them: the admin's name as their membership of the same workspace gives it, or
    /// their address when it gives none; `None` when no admin of the workspace is on record.
    pub inviter: Option<String>,
    /// The workspace's `accept_redirect_url`, where accepting hands over (its page's form may
    /// post there, through the redirect).
    pub accept_redirect_url: Option<String>,
}

/// Whether a link can be used.
#[derive(Debug)]
pub enum Lookup {
    /// A live link.
    Valid(InvitationView, MemberId),
    /// No link with that token.
    NotFound,
    /// Past its expiry.
    Expired {
        /// The workspace's display name, so the invitee knows whom to ask for a new link.
        workspace: String,
    },
    /// Already accepted (this link or another of the same membership).
    AlreadyUsed {
        /// The workspace's display name.
        workspace: String,
    },
    /// The invitation was revoked (its member archived, even if unarchived since), or the member
    /// is archived now: the link stops working for good.
    Revoked {
        /// The workspace's display name.
        workspace: String,
    },
}

/// A link with its invitation, membership, workspace and invitee: all a lookup decides on.
#[derive(Queryable, Selectable)]
#[diesel(table_name = invitation_links, check_for_backend(diesel::sqlite::Sqlite))]
struct LinkRow {
    expires_at: NaiveDateTime,
    #[diesel(select_expression = invitations::id)]
    invitation_id: InvitationId,
    #[diesel(select_expression = invitations::accepted_at)]
    accepted_at: Option<NaiveDateTime>,
    #[diesel(select_expression = invitations::revoked_at)]
    revoked_at: Option<NaiveDateTime>,
    #[diesel(select_expression = invitations::opened_at)]
    opened_at: Option<NaiveDateTime>,
    #[diesel(select_expression = members::id)]
    member_id: MemberId,
    #[diesel(select_expression = members::status)]
    status: MemberStatus,
    #[diesel(select_expression = members::role)]
    role: Role,
    #[diesel(select_expression = members::workspace_id)]
    workspace_id: WorkspaceId,
    #[diesel(select_expression = members::invited_by)]
    invited_by: Option<AccountId>,
    #[diesel(select_expression = workspaces::name)]
    workspace: String,
    #[diesel(select_expression = workspaces::accept_redirect_url)]
    accept_redirect_url: Option<String>,
    #[diesel(select_expression = accounts::email)]
    email: String,
    /// As the member's own workspace's file gave it.
    #[diesel(select_expression = members::first_name)]
    first_name: Option<String>,
}

/// The row of the link whose token hashes to `hash`, with its inviter's display name (`None`
/// when no admin of the member's workspace is on record).
fn link_row<C: BackendConnection>(
    c: &mut C,
    hash: &[u8],
) -> QueryResult<Option<(LinkRow, Option<String>)>> {
    let query = invitation_links::table
        .inner_join(
            invitations::table.inner_join(
                members::table
                    .inner_join(accounts::table)
                    .inner_join(workspaces::table),
            ),
        )
        .filter(invitation_links::token_hash.eq(hash))
        .select(columns::<LinkRow>());
    let row: Option<LinkRow> = c.first(query).optional()?;
    let Some(row) = row else {
        return Ok(None);
    };
    let invited_by = row.invited_by.map(|admin| InvitedBy {
        workspace: row.workspace_id,
        admin,
    });
    let inviter = match invited_by {
        Some(by) => inviter_names(c, &[by])?.remove(&by),
        None => None,
    };
    Ok(Some((row, inviter)))
}

/// Resolves a token to its invitation and says whether it can be used now.
pub fn lookup(conn: &mut DbConn, token: &str) -> QueryResult<Lookup> {
    let hash = tokens::hash(token);
    let row = on_conn!(conn, |c| link_row(c, &hash))?;
    Ok(decide(row))
}

/// Resolves a token as its page is opened: [`lookup`], and for a valid link whose invitation was
/// never opened, the first opening recorded (`opened_at`, shown on the member's timeline). Once
/// recorded, an opening writes nothing; the update is conditional, so two first openings at once
/// record one.
pub fn open(conn: &mut DbConn, token: &str) -> QueryResult<Lookup> {
    let hash = tokens::hash(token);
    on_conn!(conn, |c| {
        let row = link_row(c, &hash)?;
        let unopened = row.as_ref().is_some_and(|(r, _)| r.opened_at.is_none());
        let lookup = decide(row);
        if let (true, Lookup::Valid(view, _)) = (unopened, &lookup) {
            diesel::update(invitations::table.find(view.invitation_id))
                .filter(invitations::opened_at.is_null())
                .set(invitations::opened_at.eq(Some(now())))
                .execute(c)?;
        }
        Ok(lookup)
    })
}

fn decide(row: Option<(LinkRow, Option<String>)>) -> Lookup {
    let Some((
        LinkRow {
            expires_at,
            invitation_id,
            accepted_at,
            revoked_at,
            member_id,
            status,
            role,
            workspace,
            email,
            first_name,
            accept_redirect_url,
            ..
        },
        inviter,
    )) = row
    else {
        return Lookup::NotFound;
    };
    match status {
        // An unarchived member is `invited` again, but the links of before stay dead.
        _ if revoked_at.is_some() => Lookup::Revoked { workspace },
        MemberStatus::Archived => Lookup::Revoked { workspace },
        _ if accepted_at.is_some() || status == MemberStatus::Active => {
            Lookup::AlreadyUsed { workspace }
        }
        _ if expires_at <= now() => Lookup::Expired { workspace },
        _ => Lookup::Valid(
            InvitationView {
                workspace,
                email,
                first_name,
                status,
                role,
                expires_at,
                invitation_id,
                inviter,
                accept_redirect_url,
            },
            member_id,
        ),
    }
}

/// Accepts a link: the member becomes `active` and the person's account activated; when the
/// member's workspace has an `accept_redirect_url`, `handover` is stored in the same transaction
/// and where to hand over is returned too. Returns the lookup that decided it (`Valid` when
/// accepted now).
pub fn accept(
    conn: &mut DbConn,
    token: &str,
    handover: &NewHandover,
) -> QueryResult<(Lookup, Option<HandOver>)> {
    let hash = tokens::hash(token);
    let now = now();
    write_transaction!(conn, |c| {
        let lookup = decide(link_row(c, &hash)?);
        let Lookup::Valid(view, member) = &lookup else {
            return Ok((lookup, None));
        };
        // Guarded on the current state, so two concurrent accepts make exactly one change.
        let changed = diesel::update(members::table.find(member))
            .filter(members::status.eq_any([MemberStatus::Invited, MemberStatus::Requested]))
            .set((
                members::status.eq(MemberStatus::Active),
                members::updated_at.eq(now),
            ))
            .execute(c)?;
        if changed == 0 {
            let used = Lookup::AlreadyUsed {
                workspace: view.workspace.clone(),
            };
            return Ok((used, None));
        }
        diesel::update(invitations::table.find(view.invitation_id))
            .set(invitations::accepted_at.eq(Some(now)))
            .execute(c)?;
        let (account, workspace): (AccountId, WorkspaceId) = members::table
            .find(member)
            .select((members::account_id, members::workspace_id))
            .first(c)?;
        diesel::update(accounts::table.find(account))
            .filter(accounts::activated_at.is_null())
            .set(accounts::activated_at.eq(Some(now)))
            .execute(c)?;
        webhooks::enqueue_member(c, workspace, EventType::MemberAccepted, *member)?;
        let hand_over = hand_over(c, *member, handover, now)?;
        Ok((lookup, hand_over))
    })
}

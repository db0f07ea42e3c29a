//! Invitation links: looking one up by its token and accepting it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::backend::BackendConnection;
use crate::db::schema::{accounts, invitation_links, invitations, members, workspaces};
use crate::ids::MemberId;
use crate::status::MemberStatus;
use crate::store::now;
use crate::tokens;
use crate::{on_conn, write_transaction};

/// The ids of the invitations of `members`, as a subquery: deliveries are indexed by invitation
/// and invitations by member, so this is how a member's deliveries are found.
#[diesel::dsl::auto_type]
pub(crate) fn invitations_of<'a>(members: &'a [i64]) -> _ {
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
    /// The invitee's first name, as the CSV gave it.
    pub first_name: Option<String>,
    /// The membership's status.
    pub status: MemberStatus,
    /// The role offered.
    pub role: String,
    /// When the link expires.
    pub expires_at: NaiveDateTime,
    /// The invitation the link belongs to.
    pub invitation_id: i64,
    /// Who invited them: the admin's name, or address when unnamed; `None` when no admin is on
    /// record.
    pub inviter: Option<String>,
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

/// expires, invitation, accepted, revoked, member, status, role, workspace, email, first name,
/// inviter.
type LinkRow = (
    NaiveDateTime,
    i64,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<InviterRow>,
);

/// The inviting admin's address, first and last name.
type InviterRow = (String, Option<String>, Option<String>);

diesel::alias!(accounts as inviters: InvitersAlias);

/// The row of the link whose token hashes to `hash`.
fn link_row<C: BackendConnection>(c: &mut C, hash: &[u8]) -> QueryResult<Option<LinkRow>> {
    let query = invitation_links::table
        .inner_join(
            invitations::table.inner_join(
                members::table
                    .inner_join(accounts::table)
                    .inner_join(workspaces::table),
            ),
        )
        .left_join(inviters.on(members::invited_by.eq(inviters.field(accounts::id).nullable())))
        .filter(invitation_links::token_hash.eq(hash))
        .select((
            invitation_links::expires_at,
            invitations::id,
            invitations::accepted_at,
            invitations::revoked_at,
            members::id,
            members::status,
            members::role,
            workspaces::name,
            accounts::email,
            accounts::first_name,
            inviters
                .fields((accounts::email, accounts::first_name, accounts::last_name))
                .nullable(),
        ));
    c.first(query).optional()
}

/// Resolves a token to its invitation and says whether it can be used now.
pub fn lookup(conn: &mut DbConn, token: &str) -> QueryResult<Lookup> {
    let hash = tokens::hash(token);
    let row = on_conn!(conn, |c| link_row(c, &hash))?;
    Ok(decide(row))
}

fn decide(row: Option<LinkRow>) -> Lookup {
    let Some((
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
        inviter,
    )) = row
    else {
        return Lookup::NotFound;
    };
    let status = MemberStatus::parse(&status).unwrap_or(MemberStatus::Archived);
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
                inviter: inviter.map(display_name),
            },
            MemberId(member_id),
        ),
    }
}

/// "First Last", or the address when the account has no name.
fn display_name((email, first, last): InviterRow) -> String {
    let name = [first, last]
        .into_iter()
        .flatten()
        .map(|part| part.trim().to_owned())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() { email } else { name }
}

/// Accepts a link: the member becomes `active` and the person's account activated. Returns the
/// lookup that decided it (`Valid` when accepted now).
pub fn accept(conn: &mut DbConn, token: &str) -> QueryResult<Lookup> {
    let hash = tokens::hash(token);
    let now = now();
    write_transaction!(conn, |c| {
        let lookup = decide(link_row(c, &hash)?);
        let Lookup::Valid(view, member) = &lookup else {
            return Ok(lookup);
        };
        // Guarded on the current state, so two concurrent accepts make exactly one change.
        let changed = diesel::update(members::table.find(member.0))
            .filter(members::status.eq_any([
                MemberStatus::Invited.as_str(),
                MemberStatus::Requested.as_str(),
            ]))
            .set((
                members::status.eq(MemberStatus::Active.as_str()),
                members::updated_at.eq(now),
            ))
            .execute(c)?;
        if changed == 0 {
            return Ok(Lookup::AlreadyUsed {
                workspace: view.workspace.clone(),
            });
        }
        diesel::update(invitations::table.find(view.invitation_id))
            .set(invitations::accepted_at.eq(Some(now)))
            .execute(c)?;
        let account: i64 = members::table
            .find(member.0)
            .select(members::account_id)
            .first(c)?;
        diesel::update(accounts::table.find(account))
            .filter(accounts::activated_at.is_null())
            .set(accounts::activated_at.eq(Some(now)))
            .execute(c)?;
        Ok(lookup)
    })
}

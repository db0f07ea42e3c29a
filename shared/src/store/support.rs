//! Support actions on the ledger: send an import's failed emails again, resend one member's
//! invitation, mint a link to copy, archive and unarchive.
//!
//! Each action is one write transaction, scoped to a workspace (another workspace's member or
//! import is "not found"), and says what it did with an outcome enum; the member actions return
//! the member as the API shows it, read after the commit. [`crate::service::support`] wraps them
//! for the routes and the CLI and wakes the senders.
//!
//! A member action first locks the member's row (a no-op update; SQLite's `BEGIN IMMEDIATE` already
//! serialises writers), then reads the status it decides on: a concurrent accept, archive or resend
//! of the same member waits for the commit, so two actions never interleave.
//!
//! Resends, unarchives and copied links are held to [`SupportLimits`] inside the same transaction:
//! the member's cooldown is read from their locked row and the workspace's daily count of support
//! emails is raised by a conditional update, so the limits hold across every API process.
//!
//! Archiving takes the workspace's row lock first (SQLite's write lock serialises it anyway), so
//! two admins archiving each other at once cannot both succeed and leave the workspace without an
//! active admin.
//!
//! Cancelling only ever touches `pending` and `failed` deliveries: a `sending` one is in a worker's
//! hands (its email may be on the wire), so it is left to finish; its link then answers like any
//! other link of its invitation (410 once the invitation is revoked).

use std::fmt;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime};
use diesel::prelude::*;

use crate::config::Edition;
use crate::db::DbConn;
use crate::db::backend::{BackendConnection, columns};
use crate::db::schema::{
    accounts, deliveries, imports, invitation_links, invitations, members, workspace_daily_emails,
    workspaces,
};
use crate::domain::role::Role;
use crate::ids::{AccountId, ImportId, InvitationId, MemberId, WorkspaceId};
use crate::status::{DeliveryState, InvitationCause, MemberStatus, SuppressionReason};
use crate::store::invitations::invitations_of;
use crate::store::members::{self as member_store, MemberView, invitee_status};
use crate::store::now;
use crate::store::tallies::{self, Tally, add_tally};
use crate::store::webhooks;
use crate::tokens;
use crate::webhooks::EventType;
use crate::write_transaction;

/// Statuses of a member who has not accepted yet: the ones support may re-invite.
pub(crate) const OPEN: [MemberStatus; 2] = [MemberStatus::Invited, MemberStatus::Requested];

/// Delivery states of an email not on its way: what a resend or an unarchive replaces.
pub(crate) const UNSENT: [DeliveryState; 2] = [DeliveryState::Pending, DeliveryState::Failed];

/// The limits a support action on one member is held to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SupportLimits {
    /// Least time between two support actions (resend, unarchive, link, address correction) on
    /// one member; `None` for no cooldown.
    pub cooldown: Option<Duration>,
    /// Most support-initiated emails (resends, unarchive re-invitations, invitations to a corrected
    /// address) a workspace may queue per UTC day; `None` for no limit. They are counted either
    /// way.
    pub daily_emails: Option<u32>,
}

/// Why a support action was refused by its [`SupportLimits`], with how long until it may be tried
/// again (whole seconds, rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// The member had a support action less than the cooldown ago.
    CoolingDown(Duration),
    /// The workspace has queued its support emails of the UTC day; the wait ends at midnight.
    DailyQuota(Duration),
}

/// What `retry_failed` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// This many failed sends are pending again, due now.
    Requeued(usize),
    /// No such import in the workspace.
    ImportNotFound,
}

/// What `resend` did.
#[derive(Debug, Clone)]
pub enum ResendOutcome {
    /// A new invitation's email is pending, due now; the member as it is now.
    Queued(Box<MemberView>),
    /// The member accepted already: there is nothing to resend.
    AlreadyActive,
    /// The member is archived: unarchive them instead (that sends a new link).
    Archived,
    /// The member's address bounced or complained: correct it or unsuppress it first.
    Suppressed(SuppressionReason),
    /// Refused by the support limits; nothing changed.
    Limited(Limited),
    /// No such member in the workspace.
    NotFound,
}

/// A link minted for an admin to copy: the token is shown once and never stored.
#[derive(Clone)]
pub struct MintedLink {
    /// The plain token of `{PUBLIC_URL}/invitations/{token}`.
    pub token: String,
    /// When the link stops working.
    pub expires_at: NaiveDateTime,
}

impl fmt::Debug for MintedLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedLink")
            .field("token", &"…")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What `invitation_link` did.
#[derive(Debug, Clone)]
pub enum LinkOutcome {
    /// A fresh link to the member's open invitation.
    Minted(MintedLink),
    /// The member accepted already.
    AlreadyActive,
    /// The member is archived: their links do not work.
    Archived,
    /// Refused by the member's cooldown; nothing changed.
    Limited(Limited),
    /// No such member in the workspace.
    NotFound,
}

/// What `archive` did.
#[derive(Debug, Clone)]
pub enum ArchiveOutcome {
    /// Archived now: open invitations revoked, pending emails cancelled.
    Archived(Box<MemberView>),
    /// Archived already; nothing changed.
    AlreadyArchived(Box<MemberView>),
    /// The member is the workspace's last active admin: archiving them would lock everyone out.
    LastAdmin,
    /// No such member in the workspace.
    NotFound,
}

/// What `unarchive` did.
#[derive(Debug, Clone)]
pub enum UnarchiveOutcome {
    /// Invited again: a new invitation's email is pending, due now.
    Queued(Box<MemberView>),
    /// The member is not archived.
    NotArchived,
    /// The member's address bounced or complained: unsuppress it first.
    Suppressed(SuppressionReason),
    /// Refused by the support limits; nothing changed.
    Limited(Limited),
    /// No such member in the workspace.
    NotFound,
}

/// A member action's decision inside its transaction, before the member is read back.
enum Step {
    /// The action was applied.
    Done,
    /// The member's status forbids it.
    Refused(MemberStatus),
    /// The support limits refuse it.
    Limited(Limited),
    /// The member's address is suppressed: no email goes to it.
    Suppressed(SuppressionReason),
    /// The member is the workspace's last active admin.
    LastAdmin,
    /// No such member in the workspace.
    NotFound,
}

/// What a member action decides on.
#[derive(Queryable, Selectable)]
#[diesel(table_name = members, check_for_backend(diesel::sqlite::Sqlite))]
pub(crate) struct MemberState {
    pub(crate) status: MemberStatus,
    role: Role,
    /// When support last acted on the member (the cooldown's start).
    last_support_action_at: Option<NaiveDateTime>,
    /// Whether the person's account was ever activated.
    #[diesel(select_expression = accounts::activated_at.is_not_null())]
    activated: bool,
    /// The import that created the membership.
    pub(crate) import_id: Option<ImportId>,
    /// Why emails to the member's address are refused, if they are.
    pub(crate) suppressed_reason: Option<SuppressionReason>,
    /// The person's account, whose address the emails go to.
    pub(crate) account_id: AccountId,
}

/// Locks the member's row (a no-op update) and reads its [`MemberState`]; `None` when the member
/// is not in the workspace.
pub(crate) fn lock_member<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    member: MemberId,
) -> QueryResult<Option<MemberState>> {
    c.execute(
        diesel::update(
            members::table
                .filter(members::id.eq(member))
                .filter(members::workspace_id.eq(workspace)),
        )
        .set(members::updated_at.eq(members::updated_at)),
    )?;
    c.first(
        members::table
            .inner_join(accounts::table)
            .filter(members::id.eq(member))
            .filter(members::workspace_id.eq(workspace))
            .select(columns::<MemberState>()),
    )
    .optional()
}

/// Sets the (locked) member's status.
pub(crate) fn set_status<C: BackendConnection>(
    c: &mut C,
    member: MemberId,
    to: MemberStatus,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    c.execute(
        diesel::update(members::table.find(member))
            .set((members::status.eq(to), members::updated_at.eq(now))),
    )
}

/// Holds a support action on the (locked) member to `limits` and, when it may go ahead, counts it:
/// the member's cooldown starts now and, for an action that emails (`emails`), the workspace's
/// count of the day goes up by one. Refused, nothing is written.
pub(crate) fn admit<C: BackendConnection>(
    c: &mut C,
    (workspace, member): (WorkspaceId, MemberId),
    state: &MemberState,
    (limits, emails): (SupportLimits, bool),
    now: NaiveDateTime,
) -> QueryResult<Option<Limited>> {
    if let Some(wait) = cooldown_left(state.last_support_action_at, limits.cooldown, now) {
        return Ok(Some(Limited::CoolingDown(wait)));
    }
    if emails && !count_email(c, workspace, limits.daily_emails, now.date())? {
        return Ok(Some(Limited::DailyQuota(until_midnight(now))));
    }
    c.execute(
        diesel::update(members::table.find(member))
            .set(members::last_support_action_at.eq(Some(now))),
    )?;
    Ok(None)
}

/// What is left of the cooldown that started at `last`, in whole seconds rounded up; `None` when
/// it is over (or there is none). A request that read the clock before a concurrent one started
/// the cooldown counts from that start: the wait is never longer than the cooldown.
fn cooldown_left(
    last: Option<NaiveDateTime>,
    cooldown: Option<Duration>,
    now: NaiveDateTime,
) -> Option<Duration> {
    let last = last?;
    let ends = last + cooldown?;
    let now = now.max(last);
    (ends > now).then(|| whole_seconds(ends - now))
}

/// The time from `now` to the next UTC midnight, in whole seconds rounded up.
fn until_midnight(now: NaiveDateTime) -> Duration {
    let next = now.date().succ_opt().unwrap_or(NaiveDate::MAX);
    whole_seconds(next.and_time(chrono::NaiveTime::MIN) - now)
}

/// A positive time span as a `Duration` rounded up to whole seconds (at least one).
fn whole_seconds(span: chrono::TimeDelta) -> Duration {
    let exact = span.to_std().unwrap_or_default();
    let secs = exact.as_secs() + u64::from(exact.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

/// Forgets the support-email counts of days before `day`: only today's count limits anything.
pub fn forget_daily_counts_before(conn: &mut DbConn, day: NaiveDate) -> QueryResult<usize> {
    use workspace_daily_emails as w;
    crate::on_conn!(conn, |c| {
        diesel::delete(w::table.filter(w::day.lt(day))).execute(c)
    })
}

/// Counts one support email of `day` for the workspace, unless it has queued `quota` already:
/// `false` then, and nothing is counted. The conditional update is atomic on both backends.
fn count_email<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    quota: Option<u32>,
    day: NaiveDate,
) -> QueryResult<bool> {
    use workspace_daily_emails as w;
    c.execute(
        diesel::insert_into(w::table)
            .values((w::workspace_id.eq(workspace), w::day.eq(day), w::sent.eq(0)))
            .on_conflict_do_nothing(),
    )?;
    let today = w::table
        .filter(w::workspace_id.eq(workspace))
        .filter(w::day.eq(day));
    let counted = match quota {
        Some(quota) => c.execute(
            diesel::update(today.filter(w::sent.lt(i64::from(quota)))).set(w::sent.eq(w::sent + 1)),
        )?,
        None => c.execute(diesel::update(today).set(w::sent.eq(w::sent + 1)))?,
    };
    Ok(counted == 1)
}

/// Whether another member of the workspace than `member` is an active admin.
fn another_active_admin<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    member: MemberId,
) -> QueryResult<bool> {
    let others: Vec<MemberId> = c.load(
        members::table
            .filter(members::workspace_id.eq(workspace))
            .filter(members::id.ne(member))
            .filter(members::role.eq(Role::Admin))
            .filter(members::status.eq(MemberStatus::Active))
            .select(members::id)
            .limit(1),
    )?;
    Ok(!others.is_empty())
}

/// Locks the workspace's row (a no-op update) until the transaction ends: archives of one
/// workspace's admins take turns, so each sees the others' outcome.
fn lock_workspace<C: BackendConnection>(c: &mut C, workspace: WorkspaceId) -> QueryResult<usize> {
    c.execute(
        diesel::update(workspaces::table.find(workspace))
            .set(workspaces::slug.eq(workspaces::slug)),
    )
}

/// Cancels the members' deliveries in the given states, taking them off their imports' tallies.
///
/// The invitations are read first and the deliveries then found by their invitation ids: given
/// the subquery instead, PostgreSQL planned a scan of every delivery while its statistics lagged
/// behind a growing table (reminding 100,000 members slowed to 0.1–0.2 s a page of 500).
pub(crate) fn cancel_deliveries<C: BackendConnection>(
    c: &mut C,
    members: &[MemberId],
    states: &[DeliveryState],
) -> QueryResult<()> {
    let invitations: Vec<InvitationId> = c.load(invitations_of(members))?;
    for &state in states {
        let imports: Vec<Option<ImportId>> = c.load(
            diesel::update(
                deliveries::table
                    .filter(deliveries::invitation_id.eq_any(&invitations))
                    .filter(deliveries::state.eq(state)),
            )
            .set(deliveries::state.eq(DeliveryState::Cancelled))
            .returning(deliveries::import_id),
        )?;
        let cancelled = Tally::moved(state, DeliveryState::Cancelled, 1);
        let changes = imports.into_iter().map(|import| (import, cancelled));
        for (import, change) in tallies::by_import(changes) {
            add_tally(c, import, change)?;
        }
    }
    Ok(())
}

/// A new invitation for the member, made by `cause`, and its pending delivery, due now, under
/// `import`.
pub(crate) fn invite_again<C: BackendConnection>(
    c: &mut C,
    (member, cause): (MemberId, InvitationCause),
    import: Option<ImportId>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let invitation: InvitationId = c.get_result(
        diesel::insert_into(invitations::table)
            .values((
                invitations::member_id.eq(member),
                invitations::created_at.eq(now),
                invitations::cause.eq(cause),
            ))
            .returning(invitations::id),
    )?;
    c.execute(diesel::insert_into(deliveries::table).values((
        deliveries::invitation_id.eq(invitation),
        deliveries::member_id.eq(member),
        deliveries::import_id.eq(import),
        deliveries::state.eq(DeliveryState::Pending),
        deliveries::attempts.eq(0),
        deliveries::next_attempt_at.eq(now),
        deliveries::created_at.eq(now),
    )))?;
    if let Some(import) = import {
        add_tally(c, import, Tally::of(DeliveryState::Pending, 1))?;
    }
    Ok(())
}

/// Puts every `failed` send of the import whose member is still `invited`/`requested` with an
/// address not suppressed (and whose invitation is neither accepted nor revoked) back to
/// `pending`, due now, with a fresh retry window. A `bounced` or `complained` email is not
/// `failed`: it is never sent again. `last_error` stays until the next outcome replaces it.
pub fn retry_failed(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    import: ImportId,
) -> QueryResult<RetryOutcome> {
    let now = now();
    write_transaction!(conn, |c| {
        let found = imports::table
            .filter(imports::id.eq(import))
            .filter(imports::workspace_id.eq(workspace))
            .select(imports::id)
            .first::<ImportId>(c)
            .optional()?;
        if found.is_none() {
            return Ok(RetryOutcome::ImportNotFound);
        }
        let requeued = diesel::update(
            deliveries::table
                .filter(deliveries::import_id.eq(import))
                .filter(deliveries::state.eq(DeliveryState::Failed))
                .filter(diesel::dsl::exists(
                    members::table
                        .filter(members::id.eq(deliveries::member_id))
                        .filter(members::workspace_id.eq(workspace))
                        .filter(members::status.eq_any(OPEN))
                        .filter(members::suppressed_reason.is_null()),
                ))
                .filter(diesel::dsl::exists(
                    invitations::table
                        .filter(invitations::id.eq(deliveries::invitation_id))
                        .filter(invitations::accepted_at.is_null())
                        .filter(invitations::revoked_at.is_null()),
                )),
        )
        .set((
            deliveries::state.eq(DeliveryState::Pending),
            deliveries::attempts.eq(0),
            deliveries::first_attempt_at.eq(None::<NaiveDateTime>),
            deliveries::next_attempt_at.eq(now),
            deliveries::claim.eq(None::<i64>),
            deliveries::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(c)?;
        let moved = Tally::moved(
            DeliveryState::Failed,
            DeliveryState::Pending,
            requeued as i64,
        );
        add_tally(c, import, moved)?;
        Ok(RetryOutcome::Requeued(requeued))
    })
}

/// Sends an `invited`/`requested` member a new invitation: a new invitation row and a pending
/// delivery due now (under the member's import), and every earlier `pending` or `failed` delivery
/// of theirs cancelled, so they get exactly one new email. Links already sent keep working. The
/// status is decided again by [`invitee_status`] (the person may have activated an account since).
pub fn resend(
    conn: &mut DbConn,
    (workspace, member): (WorkspaceId, MemberId),
    edition: Edition,
    limits: SupportLimits,
) -> QueryResult<ResendOutcome> {
    Ok(
        match invite_anew(conn, (workspace, member), (edition, limits), Anew::resend())? {
            Anew::Queued(view) => ResendOutcome::Queued(view),
            Anew::Refused(MemberStatus::Active) => ResendOutcome::AlreadyActive,
            Anew::Refused(_) => ResendOutcome::Archived,
            Anew::Suppressed(reason) => ResendOutcome::Suppressed(reason),
            Anew::Limited(limited) => ResendOutcome::Limited(limited),
            Anew::NotFound => ResendOutcome::NotFound,
        },
    )
}

/// Mints a fresh link, valid for `ttl`, to the latest open (unaccepted, unrevoked) invitation of an
/// `invited`/`requested` member, storing only its hash; nothing is emailed. A member without an open
/// invitation gets one.
pub fn invitation_link(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    member: MemberId,
    (ttl, limits): (Duration, SupportLimits),
) -> QueryResult<LinkOutcome> {
    let now = now();
    let expires_at = now + ttl;
    write_transaction!(conn, |c| {
        let Some(state) = lock_member(c, workspace, member)? else {
            return Ok(LinkOutcome::NotFound);
        };
        match state.status {
            MemberStatus::Invited | MemberStatus::Requested => {}
            MemberStatus::Active => return Ok(LinkOutcome::AlreadyActive),
            MemberStatus::Archived => return Ok(LinkOutcome::Archived),
        }
        if let Some(limited) = admit(c, (workspace, member), &state, (limits, false), now)? {
            return Ok(LinkOutcome::Limited(limited));
        }
        let latest = invitations::table
            .filter(invitations::member_id.eq(member))
            .filter(invitations::accepted_at.is_null())
            .filter(invitations::revoked_at.is_null())
            .order(invitations::id.desc())
            .select(invitations::id)
            .first::<InvitationId>(c)
            .optional()?;
        let invitation = match latest {
            Some(id) => id,
            None => diesel::insert_into(invitations::table)
                .values((
                    invitations::member_id.eq(member),
                    invitations::created_at.eq(now),
                    invitations::cause.eq(InvitationCause::InvitationLink),
                ))
                .returning(invitations::id)
                .get_result::<InvitationId>(c)?,
        };
        let token = tokens::mint();
        diesel::insert_into(invitation_links::table)
            .values((
                invitation_links::token_hash.eq(&token.hash),
                invitation_links::invitation_id.eq(invitation),
                invitation_links::expires_at.eq(expires_at),
                invitation_links::created_at.eq(now),
            ))
            .execute(c)?;
        Ok(LinkOutcome::Minted(MintedLink {
            token: token.plain,
            expires_at,
        }))
    })
}

/// Archives a member who is not archived yet: every unaccepted invitation of theirs is revoked (its
/// links answer 410 for good, even after an unarchive) and every pending email cancelled. Archiving
/// an archived member changes nothing. An active admin is archived only while another active admin
/// of the workspace remains, decided under the workspace's lock.
pub fn archive(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    member: MemberId,
) -> QueryResult<ArchiveOutcome> {
    let now = now();
    let step: QueryResult<Step> = write_transaction!(&mut *conn, |c| {
        lock_workspace(c, workspace)?;
        let Some(MemberState { status, role, .. }) = lock_member(c, workspace, member)? else {
            return Ok(Step::NotFound);
        };
        if status == MemberStatus::Archived {
            return Ok(Step::Refused(status));
        }
        let active_admin = role == Role::Admin && status == MemberStatus::Active;
        if active_admin && !another_active_admin(c, workspace, member)? {
            return Ok(Step::LastAdmin);
        }
        set_status(c, member, MemberStatus::Archived, now)?;
        diesel::update(
            invitations::table
                .filter(invitations::member_id.eq(member))
                .filter(invitations::accepted_at.is_null())
                .filter(invitations::revoked_at.is_null()),
        )
        .set(invitations::revoked_at.eq(Some(now)))
        .execute(c)?;
        cancel_deliveries(c, &[member], &[DeliveryState::Pending])?;
        webhooks::enqueue_member(c, workspace, EventType::MemberArchived, member)?;
        Ok(Step::Done)
    });
    let step = step?;
    let view = match step {
        Step::Done | Step::Refused(_) => member_store::view(conn, workspace, member)?,
        _ => None,
    };
    Ok(match (step, view) {
        (Step::Done, Some(view)) => ArchiveOutcome::Archived(Box::new(view)),
        (Step::Refused(_), Some(view)) => ArchiveOutcome::AlreadyArchived(Box::new(view)),
        (Step::LastAdmin, _) => ArchiveOutcome::LastAdmin,
        _ => ArchiveOutcome::NotFound,
    })
}

/// Makes an archived member `invited` again (`requested` by [`invitee_status`]) with a new
/// invitation and a pending delivery due now, so a new link is emailed; the links of before stay
/// revoked. Failed emails of before are cancelled, so a retry of their import never sends them.
pub fn unarchive(
    conn: &mut DbConn,
    (workspace, member): (WorkspaceId, MemberId),
    edition: Edition,
    limits: SupportLimits,
) -> QueryResult<UnarchiveOutcome> {
    Ok(
        match invite_anew(
            conn,
            (workspace, member),
            (edition, limits),
            Anew::unarchive(),
        )? {
            Anew::Queued(view) => UnarchiveOutcome::Queued(view),
            Anew::Refused(_) => UnarchiveOutcome::NotArchived,
            Anew::Suppressed(reason) => UnarchiveOutcome::Suppressed(reason),
            Anew::Limited(limited) => UnarchiveOutcome::Limited(limited),
            Anew::NotFound => UnarchiveOutcome::NotFound,
        },
    )
}

/// What inviting a member anew did.
enum Anew {
    /// A new invitation's email is pending; the member as it is now.
    Queued(Box<MemberView>),
    /// The member's status does not allow it.
    Refused(MemberStatus),
    /// The member's address is suppressed: the email would go to an address that bounced or
    /// complained.
    Suppressed(SuppressionReason),
    /// The support limits refuse it.
    Limited(Limited),
    /// No such member in the workspace.
    NotFound,
}

/// Which statuses may be invited anew, and what the new invitation is then recorded as made by.
type Admits = (fn(MemberStatus) -> bool, InvitationCause);

impl Anew {
    /// A resend: for a member who has not accepted yet.
    fn resend() -> Admits {
        let open = |status| matches!(status, MemberStatus::Invited | MemberStatus::Requested);
        (open, InvitationCause::Resend)
    }

    /// An unarchive: for an archived member.
    fn unarchive() -> Admits {
        (
            |status| status == MemberStatus::Archived,
            InvitationCause::Unarchive,
        )
    }
}

/// When `allowed(status)`, the member's address is not suppressed and the [`SupportLimits`]
/// admit it: the member's status decided again by
/// [`invitee_status`], their unsent emails cancelled, and a new invitation made by `cause` with a
/// pending delivery due now (under their import).
fn invite_anew(
    conn: &mut DbConn,
    (workspace, member): (WorkspaceId, MemberId),
    (edition, limits): (Edition, SupportLimits),
    (allowed, cause): Admits,
) -> QueryResult<Anew> {
    let now = now();
    let step: QueryResult<Step> = write_transaction!(&mut *conn, |c| {
        let Some(state) = lock_member(c, workspace, member)? else {
            return Ok(Step::NotFound);
        };
        if !allowed(state.status) {
            return Ok(Step::Refused(state.status));
        }
        if let Some(reason) = state.suppressed_reason {
            return Ok(Step::Suppressed(reason));
        }
        if let Some(limited) = admit(c, (workspace, member), &state, (limits, true), now)? {
            return Ok(Step::Limited(limited));
        }
        set_status(c, member, invitee_status(edition, state.activated), now)?;
        cancel_deliveries(c, &[member], &UNSENT)?;
        invite_again(c, (member, cause), state.import_id, now)?;
        if cause == InvitationCause::Unarchive {
            webhooks::enqueue_member(c, workspace, EventType::MemberUnarchived, member)?;
        }
        Ok(Step::Done)
    });
    Ok(match step? {
        Step::Done => match member_store::view(conn, workspace, member)? {
            Some(view) => Anew::Queued(Box::new(view)),
            None => Anew::NotFound,
        },
        Step::Refused(status) => Anew::Refused(status),
        Step::Suppressed(reason) => Anew::Suppressed(reason),
        Step::Limited(limited) => Anew::Limited(limited),
        Step::LastAdmin | Step::NotFound => Anew::NotFound,
    })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn at(h: u32, m: u32, s: u32, milli: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 6)
            .unwrap()
            .and_hms_milli_opt(h, m, s, milli)
            .unwrap()
    }

    #[test]
    fn the_cooldown_left_is_rounded_up_to_whole_seconds_and_over_at_its_end() {
        let minute = Some(Duration::from_secs(60));
        let last = Some(at(10, 0, 0, 0));

        assert_eq!(
            cooldown_left(last, minute, at(10, 0, 20, 500)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(cooldown_left(last, minute, at(10, 1, 0, 0)), None);
        assert_eq!(cooldown_left(None, minute, at(10, 0, 1, 0)), None);
        assert_eq!(
            cooldown_left(last, minute, at(9, 59, 59, 0)),
            Some(Duration::from_secs(60)),
            "a clock read before the cooldown started"
        );
        assert_eq!(cooldown_left(last, None, at(10, 0, 1, 0)), None);
    }

    #[test]
    fn the_daily_quota_waits_until_the_next_utc_midnight() {
        assert_eq!(until_midnight(at(23, 59, 30, 0)), Duration::from_secs(30));
        assert_eq!(until_midnight(at(0, 0, 0, 0)), Duration::from_secs(86_400));
        assert_eq!(until_midnight(at(23, 59, 59, 900)), Duration::from_secs(1));
    }
}

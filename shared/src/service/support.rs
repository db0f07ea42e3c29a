//! Support tools: send failed emails again, resend, copy a link, archive and unarchive, and after
//! a bounce, unsuppress an address or correct it.
//!
//! Each function runs one store action ([`crate::store::support`]) on a blocking thread, records it
//! in the audit log and, when the action queued an email, wakes the senders with a `SendInvites`
//! job. A wake-up that cannot be enqueued is logged and ignored: every worker's housekeeping wakes
//! its sender anyway, within `SEND_POLL_INTERVAL`. Nothing here logs an address or a token.

use std::fmt;

use chrono::NaiveDateTime;

use crate::config::{Edition, Settings};
use crate::db::Db;
use crate::domain::email::InviteeEmail;
use crate::ids::{ImportId, MemberId, WorkspaceId};
use crate::jobs::SendInvites;
use crate::queue::JobQueue;
use crate::service::audit::record;
use crate::service::{Result, Step as _};
use crate::store::audit::{Action, Actor, Target};
use crate::store::support as store;
use crate::store::suppression;

pub use crate::store::support::{
    ArchiveOutcome, Limited, ResendOutcome, RetryOutcome, SupportLimits, UnarchiveOutcome,
};
pub use crate::store::suppression::{ChangeEmailOutcome, UnsuppressOutcome};

/// The [`SupportLimits`] `actor` is held to: an admin to `MEMBER_ACTION_COOLDOWN` and
/// `SUPPORT_EMAILS_PER_DAY`; an operator at the command line, who runs the deployment, to neither
/// (their emails still count towards the workspace's day).
pub fn limits_for(settings: &Settings, actor: Actor) -> SupportLimits {
    match actor {
        Actor::Operator => SupportLimits::default(),
        Actor::Admin(_) => SupportLimits {
            cooldown: Some(settings.member_action_cooldown).filter(|d| !d.is_zero()),
            daily_emails: Some(settings.support_emails_per_day).filter(|&n| n > 0),
        },
    }
}

/// A link an admin can copy and hand to the invitee.
#[derive(Clone)]
pub struct InvitationLink {
    /// `{PUBLIC_URL}/invitations/{token}`; it carries the secret, so it is never logged.
    pub url: String,
    /// When the link stops working (`INVITE_TTL` from now).
    pub expires_at: NaiveDateTime,
}

impl fmt::Debug for InvitationLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvitationLink")
            .field("url", &"…")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What `invitation_link` did.
#[derive(Debug, Clone)]
pub enum LinkOutcome {
    /// A fresh link to the member's open invitation; nothing was emailed.
    Link(InvitationLink),
    /// This edition does not hand out links: on cloud, a link reaches the invitee only by email,
    /// which is what proves they own the address.
    SelfHostedOnly,
    /// The member accepted already.
    AlreadyActive,
    /// The member is archived: unarchive them first.
    Archived,
    /// Refused by the member's cooldown; nothing was minted.
    Limited(Limited),
    /// No such member in the workspace.
    NotFound,
}

/// Puts every failed send of an import back in line (see [`store::retry_failed`]) and wakes the
/// senders when there is any.
#[tracing::instrument(skip_all, fields(%workspace, import_id = %import))]
pub async fn retry_failed(
    db: &Db,
    queue: &JobQueue,
    (workspace, actor): (WorkspaceId, Actor),
    import: ImportId,
) -> Result<RetryOutcome> {
    let outcome = db
        .run(move |c| Ok(store::retry_failed(c, workspace, import)?))
        .await
        .step("queueing the failed sends again")?;
    if let RetryOutcome::Requeued(n) = outcome {
        tracing::info!(requeued = n, "failed sends queued again");
        record(
            db,
            (workspace, actor),
            Action::Retry,
            Target::Import(import),
        )
        .await;
        if n > 0 {
            wake(queue, Some(import)).await;
        }
    }
    Ok(outcome)
}

/// Queues a new invitation email for a member who has not accepted yet (see [`store::resend`]).
#[tracing::instrument(skip_all, fields(%workspace, member_id = %member))]
pub async fn resend(
    db: &Db,
    queue: &JobQueue,
    settings: &Settings,
    (workspace, actor): (WorkspaceId, Actor),
    member: MemberId,
) -> Result<ResendOutcome> {
    let (edition, limits) = (settings.edition, limits_for(settings, actor));
    let outcome = db
        .run(move |c| Ok(store::resend(c, (workspace, member), edition, limits)?))
        .await
        .step("queueing a new invitation")?;
    if let ResendOutcome::Queued(view) = &outcome {
        tracing::info!("a new invitation email is queued");
        record(
            db,
            (workspace, actor),
            Action::Resend,
            Target::Member(member),
        )
        .await;
        wake(queue, view.import_id).await;
    }
    Ok(outcome)
}

/// Mints a link to copy, on self-hosted editions only (see [`store::invitation_link`]).
#[tracing::instrument(skip_all, fields(%workspace, member_id = %member))]
pub async fn invitation_link(
    db: &Db,
    settings: &Settings,
    (workspace, actor): (WorkspaceId, Actor),
    member: MemberId,
) -> Result<LinkOutcome> {
    if settings.edition != Edition::SelfHosted {
        return Ok(LinkOutcome::SelfHostedOnly);
    }
    let limited = (settings.invite_ttl, limits_for(settings, actor));
    let outcome = db
        .run(move |c| Ok(store::invitation_link(c, workspace, member, limited)?))
        .await
        .step("minting an invitation link")?;
    Ok(match outcome {
        store::LinkOutcome::Minted(link) => {
            tracing::info!("an invitation link was minted for an admin to copy");
            let target = Target::Member(member);
            record(db, (workspace, actor), Action::InvitationLink, target).await;
            LinkOutcome::Link(InvitationLink {
                url: settings.invitation_url(&link.token),
                expires_at: link.expires_at,
            })
        }
        store::LinkOutcome::AlreadyActive => LinkOutcome::AlreadyActive,
        store::LinkOutcome::Archived => LinkOutcome::Archived,
        store::LinkOutcome::Limited(limited) => LinkOutcome::Limited(limited),
        store::LinkOutcome::NotFound => LinkOutcome::NotFound,
    })
}

/// Archives a member: their links stop working and their pending email is cancelled (see
/// [`store::archive`]).
#[tracing::instrument(skip_all, fields(%workspace, member_id = %member))]
pub async fn archive(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    member: MemberId,
) -> Result<ArchiveOutcome> {
    let outcome = db
        .run(move |c| Ok(store::archive(c, workspace, member)?))
        .await
        .step("archiving the member")?;
    if let ArchiveOutcome::Archived(_) = &outcome {
        tracing::info!("member archived");
        record(
            db,
            (workspace, actor),
            Action::Archive,
            Target::Member(member),
        )
        .await;
    }
    Ok(outcome)
}

/// Invites an archived member again, with a new link by email (see [`store::unarchive`]).
#[tracing::instrument(skip_all, fields(%workspace, member_id = %member))]
pub async fn unarchive(
    db: &Db,
    queue: &JobQueue,
    settings: &Settings,
    (workspace, actor): (WorkspaceId, Actor),
    member: MemberId,
) -> Result<UnarchiveOutcome> {
    let (edition, limits) = (settings.edition, limits_for(settings, actor));
    let outcome = db
        .run(move |c| Ok(store::unarchive(c, (workspace, member), edition, limits)?))
        .await
        .step("unarchiving the member")?;
    if let UnarchiveOutcome::Queued(view) = &outcome {
        tracing::info!("member unarchived; a new invitation email is queued");
        record(
            db,
            (workspace, actor),
            Action::Unarchive,
            Target::Member(member),
        )
        .await;
        wake(queue, view.import_id).await;
    }
    Ok(outcome)
}

/// Clears a member's suppressed address, so resends and reminders reach it again (see
/// [`suppression::unsuppress`]); audited when it changed something.
#[tracing::instrument(skip_all, fields(%workspace, member_id = %member))]
pub async fn unsuppress(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    member: MemberId,
) -> Result<UnsuppressOutcome> {
    let outcome = db
        .run(move |c| Ok(suppression::unsuppress(c, workspace, member)?))
        .await
        .step("clearing the suppression")?;
    if let UnsuppressOutcome::Cleared(_) = &outcome {
        tracing::info!("the member's address is no longer suppressed");
        let target = Target::Member(member);
        record(db, (workspace, actor), Action::Unsuppress, target).await;
    }
    Ok(outcome)
}

/// Corrects the address of a member who has not accepted and emails a new link to it, held to
/// the limits of a resend (see [`suppression::change_email`]). The audit entry names the member,
/// never an address.
#[tracing::instrument(skip_all, fields(%workspace, member_id = %member))]
pub async fn change_email(
    db: &Db,
    queue: &JobQueue,
    settings: &Settings,
    (workspace, actor): (WorkspaceId, Actor),
    (member, email): (MemberId, InviteeEmail),
) -> Result<ChangeEmailOutcome> {
    let (edition, limits) = (settings.edition, limits_for(settings, actor));
    let outcome = db
        .run(move |c| {
            let target = (workspace, member);
            Ok(suppression::change_email(
                c,
                target,
                &email,
                (edition, limits),
            )?)
        })
        .await
        .step("correcting the member's address")?;
    if let ChangeEmailOutcome::Queued(view) = &outcome {
        tracing::info!("the member's address was corrected; a new invitation email is queued");
        let target = Target::Member(member);
        record(db, (workspace, actor), Action::AddressChange, target).await;
        wake(queue, view.import_id).await;
    }
    Ok(outcome)
}

/// Tells the senders there is work; a failure only delays the email until the next housekeeping.
pub(crate) async fn wake(queue: &JobQueue, import_id: Option<ImportId>) {
    if let Err(e) = queue.push_send(SendInvites { import_id }).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "could not wake the senders; the next housekeeping does"
        );
    }
}

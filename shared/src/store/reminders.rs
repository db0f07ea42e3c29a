//! Reminders on the ledger (`docs/product.md`, "Reminders"): the members a filter chooses are gone
//! through in id order, a page per write transaction, so a filter that matches a million members
//! holds one page in memory and one transaction open at a time.
//!
//! In each page, one conditional update picks the members who may be reminded (still `invited`
//! or `requested`, below [`ReminderRules::max`], and not reminded within
//! [`ReminderRules::cooldown`]) and stamps their reminder in the same statement. Two remind calls
//! at once therefore remind a member once: on PostgreSQL the second update waits for the first's
//! row lock and re-checks its conditions on the row the first wrote; SQLite's `BEGIN IMMEDIATE`
//! runs one page at a time. A reminded member's unsent email is cancelled, as a resend does, and
//! gets a new invitation of the reminder kind with a pending delivery, due now: the sender mints
//! its link (valid `INVITE_TTL` from then) when it sends it.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::backend::BackendConnection;
use crate::db::schema::{accounts, deliveries, invitations, members};
use crate::ids::{ImportId, InvitationId, MemberId, WorkspaceId};
use crate::status::{DeliveryState, InvitationCause};
use crate::store::members::{MemberFilter, filtered_members};
use crate::store::support::{OPEN, UNSENT, cancel_deliveries};
use crate::store::tallies::{self, Tally, add_tally};
use crate::write_transaction;

/// Members gone through per transaction.
pub const PAGE: i64 = 500;

/// Who may be reminded: the settings `REMIND_COOLDOWN` and `REMIND_MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReminderRules {
    /// Least time since the member's last reminder.
    pub cooldown: Duration,
    /// Most reminders a member gets.
    pub max: u32,
}

/// What one page did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Page {
    /// Members the filter chose in this page.
    pub matched: u64,
    /// Of those, the members reminded.
    pub reminded: u64,
    /// Of those, the members not reminded because their address is suppressed (it bounced or
    /// complained) while they are still `invited` or `requested`.
    pub suppressed: u64,
    /// The last member of the page, where the next one starts; `None` once none is left.
    pub last: Option<MemberId>,
}

impl Page {
    /// Members chosen but not eligible for another reason than a suppressed address.
    pub fn skipped(&self) -> u64 {
        self.matched - self.reminded - self.suppressed
    }
}

/// Reminds the eligible members of the next page of at most `limit` members of `workspace` that
/// `filter` chooses after `filter.after`, in one write transaction.
pub fn remind_page(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    filter: &MemberFilter,
    (rules, limit): (ReminderRules, i64),
) -> QueryResult<Page> {
    let now = crate::store::now();
    let full_text = crate::store::members::full_text(conn);
    write_transaction!(conn, |c| {
        let query = members::table
            .inner_join(accounts::table)
            .order(members::id)
            .limit(limit)
            .select(members::id)
            .into_boxed();
        let page: Vec<MemberId> = filtered_members!(query, workspace, filter, full_text).load(c)?;
        let reminded = stamp_eligible(c, (workspace, &page), rules, now)?;
        remind(c, &reminded, now)?;
        let suppressed = count_suppressed(c, (workspace, &page))?;
        Ok(Page {
            matched: page.len() as u64,
            reminded: reminded.len() as u64,
            suppressed,
            last: page.last().copied(),
        })
    })
}

/// Of the members `page`, those who may be reminded now, with their reminder stamped (its time,
/// and one more in their count) in the same conditional update: what it returns is who gets one.
fn stamp_eligible<C: BackendConnection>(
    c: &mut C,
    (workspace, page): (WorkspaceId, &[MemberId]),
    rules: ReminderRules,
    now: NaiveDateTime,
) -> QueryResult<Vec<(MemberId, Option<ImportId>)>> {
    if page.is_empty() || rules.max == 0 {
        return Ok(Vec::new());
    }
    let cooled = now - rules.cooldown;
    // A reminder follows an email that went out: a member whose email is still waiting or being
    // sent (an import's, claimed ahead under the rate cap, perhaps) would get both within
    // seconds. They are skipped; a later remind reaches them.
    let email_on_its_way = invitations::table
        .inner_join(deliveries::table.on(deliveries::invitation_id.eq(invitations::id)))
        .filter(invitations::member_id.eq(members::id))
        .filter(deliveries::state.eq_any([DeliveryState::Pending, DeliveryState::Sending]));
    let max = i32::try_from(rules.max).unwrap_or(i32::MAX);
    c.load(
        diesel::update(
            members::table
                .filter(members::id.eq_any(page))
                .filter(members::workspace_id.eq(workspace))
                .filter(members::status.eq_any(OPEN))
                .filter(members::suppressed_reason.is_null())
                .filter(members::reminder_count.lt(max))
                .filter(
                    members::last_reminded_at
                        .is_null()
                        .or(members::last_reminded_at.le(cooled)),
                )
                .filter(diesel::dsl::not(diesel::dsl::exists(email_on_its_way))),
        )
        .set((
            members::last_reminded_at.eq(Some(now)),
            members::reminder_count.eq(members::reminder_count + 1),
            members::updated_at.eq(now),
        ))
        .returning((members::id, members::import_id)),
    )
}

/// Of the members `page`, those still `invited` or `requested` whose address is suppressed: the
/// ones a reminder would have reached but for a bounce or a complaint.
fn count_suppressed<C: BackendConnection>(
    c: &mut C,
    (workspace, page): (WorkspaceId, &[MemberId]),
) -> QueryResult<u64> {
    if page.is_empty() {
        return Ok(0);
    }
    let counted: i64 = c.get_result(
        members::table
            .filter(members::id.eq_any(page))
            .filter(members::workspace_id.eq(workspace))
            .filter(members::status.eq_any(OPEN))
            .filter(members::suppressed_reason.is_not_null())
            .count(),
    )?;
    Ok(counted as u64)
}

/// For each of the stamped members: their unsent email cancelled, and a reminder invitation with
/// a pending delivery due now, under their import (whose email counts it).
fn remind<C: BackendConnection>(
    c: &mut C,
    reminded: &[(MemberId, Option<ImportId>)],
    now: NaiveDateTime,
) -> QueryResult<()> {
    if reminded.is_empty() {
        return Ok(());
    }
    let ids: Vec<MemberId> = reminded.iter().map(|(id, _)| *id).collect();
    cancel_deliveries(c, &ids, &UNSENT)?;
    let rows: Vec<_> = ids
        .iter()
        .map(|id| {
            (
                invitations::member_id.eq(*id),
                invitations::created_at.eq(now),
                invitations::cause.eq(InvitationCause::Reminder),
            )
        })
        .collect();
    let created: Vec<(InvitationId, MemberId)> = c.load(
        diesel::insert_into(invitations::table)
            .values(&rows)
            .returning((invitations::id, invitations::member_id)),
    )?;
    let import_of: std::collections::HashMap<MemberId, Option<ImportId>> =
        reminded.iter().copied().collect();
    let deliveries: Vec<_> = created
        .iter()
        .map(|(invitation, member)| {
            (
                deliveries::invitation_id.eq(*invitation),
                deliveries::member_id.eq(*member),
                deliveries::import_id.eq(import_of.get(member).copied().flatten()),
                deliveries::state.eq(DeliveryState::Pending),
                deliveries::attempts.eq(0),
                deliveries::next_attempt_at.eq(now),
                deliveries::created_at.eq(now),
            )
        })
        .collect();
    c.execute(diesel::insert_into(deliveries::table).values(&deliveries))?;
    let pending = Tally::of(DeliveryState::Pending, 1);
    let changes = reminded.iter().map(|(_, import)| (*import, pending));
    for (import, change) in tallies::by_import(changes) {
        add_tally(c, import, change)?;
    }
    Ok(())
}

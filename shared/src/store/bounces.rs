//! Reports read from the bounce mailbox, applied to the ledger once each (`docs/product.md`,
//! "Bounces and complaints"): a permanent failure makes the email `bounced`, a complaint
//! `complained`, a delay is only recorded; the first two suppress the member's address.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::backend::{BackendConnection, columns};
use crate::db::schema::{bounce_reports, deliveries, members};
use crate::ids::{DeliveryId, ImportId, MemberId};
use crate::status::{DeliveryState, ReportKind, SuppressionReason};
use crate::store::support::{UNSENT, cancel_deliveries};
use crate::store::tallies::{Tally, add_tally};
use crate::store::{now, webhooks};
use crate::webhooks::EventType;
use crate::write_transaction;

/// Which email a report is about, as the report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// By the delivery its return path carries (a checked tag).
    Delivery(DeliveryId),
    /// By the local part of the original email's `Message-ID` (32 hex characters).
    MessageId(String),
}

/// What a report says about the email, as it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// SHA-256 of the report's bytes, hex: the same report is recorded once.
    pub digest: String,
    /// Bounce, delay or complaint.
    pub kind: ReportKind,
    /// The enhanced status code, if the report gave one.
    pub status: Option<String>,
    /// The reporting server's diagnostic, if any.
    pub diagnostic: Option<String>,
}

/// What recording a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Recorded against the delivery; `changed` when the email's state moved (`sent` to
    /// `bounced` or `complained`, or `bounced` to `complained`).
    Recorded {
        /// The email the report is about.
        delivery: DeliveryId,
        /// Whether the email's state changed.
        changed: bool,
    },
    /// The same report was recorded before (by this worker or another).
    Duplicate,
    /// No email of ours has that delivery or `Message-ID`.
    Unmatched,
    /// The email has not been recorded as sent yet (a report raced the sender's own record):
    /// try again later.
    NotYetSent,
}

/// The email a report names, as recording it needs it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = deliveries, check_for_backend(diesel::sqlite::Sqlite))]
struct Target {
    id: DeliveryId,
    member_id: MemberId,
    import_id: Option<ImportId>,
    state: DeliveryState,
    created_at: NaiveDateTime,
}

/// Records `finding` against the email `named` in one transaction, once per digest: the report,
/// the email's new state with its import's tallies, and the member's suppression.
pub fn apply(conn: &mut DbConn, named: &Named, finding: &Finding) -> QueryResult<Applied> {
    let now = now();
    write_transaction!(conn, |c| {
        let Some(target) = find(c, named)? else {
            return Ok(Applied::Unmatched);
        };
        if matches!(
            target.state,
            DeliveryState::Pending | DeliveryState::Sending
        ) {
            return Ok(Applied::NotYetSent);
        }
        let inserted = c.execute(
            diesel::insert_into(bounce_reports::table)
                .values((
                    bounce_reports::digest.eq(&finding.digest),
                    bounce_reports::delivery_id.eq(target.id),
                    bounce_reports::kind.eq(finding.kind),
                    bounce_reports::status.eq(&finding.status),
                    bounce_reports::diagnostic.eq(&finding.diagnostic),
                    bounce_reports::received_at.eq(now),
                ))
                .on_conflict(bounce_reports::digest)
                .do_nothing(),
        )?;
        if inserted == 0 {
            return Ok(Applied::Duplicate);
        }
        let changed = move_state(c, &target, finding)?;
        if let Some(reason) = suppression(finding.kind) {
            suppress(c, &target, reason, now)?;
        }
        Ok(Applied::Recorded {
            delivery: target.id,
            changed,
        })
    })
}

/// The delivery `named` names, if it exists.
fn find<C: BackendConnection>(c: &mut C, named: &Named) -> QueryResult<Option<Target>> {
    let query = deliveries::table.select(columns::<Target>());
    let found = match named {
        Named::Delivery(id) => c.first(query.filter(deliveries::id.eq(*id))),
        Named::MessageId(id) => c.first(query.filter(deliveries::message_id.eq(id))),
    };
    found.optional()
}

/// The state a report moves an email to, from the states it may move it from.
fn new_state(kind: ReportKind) -> Option<(DeliveryState, &'static [DeliveryState])> {
    match kind {
        ReportKind::Bounced => Some((DeliveryState::Bounced, &[DeliveryState::Sent])),
        ReportKind::Complained => Some((
            DeliveryState::Complained,
            &[DeliveryState::Sent, DeliveryState::Bounced],
        )),
        ReportKind::Delayed => None,
    }
}

/// Moves the email to the state the report gives, keeping a bounce's status and diagnostic as its
/// `last_error`, and its import's tallies with it, and announces it to the workspace's webhooks
/// (`email.bounced`, `email.complained`); whether it moved.
fn move_state<C: BackendConnection>(
    c: &mut C,
    target: &Target,
    finding: &Finding,
) -> QueryResult<bool> {
    let Some((to, from)) = new_state(finding.kind) else {
        return Ok(false);
    };
    if !from.contains(&target.state) {
        return Ok(false);
    }
    let error = match finding.kind {
        ReportKind::Bounced => last_error(finding),
        _ => None,
    };
    let update = diesel::update(
        deliveries::table
            .filter(deliveries::id.eq(target.id))
            .filter(deliveries::state.eq(target.state)),
    );
    let moved = match error {
        Some(error) => {
            c.execute(update.set((deliveries::state.eq(to), deliveries::last_error.eq(error))))?
        }
        None => c.execute(update.set(deliveries::state.eq(to)))?,
    };
    if moved == 0 {
        return Ok(false);
    }
    if let Some(import) = target.import_id {
        add_tally(c, import, Tally::moved(target.state, to, 1))?;
    }
    let event = match to {
        DeliveryState::Complained => EventType::EmailComplained,
        _ => EventType::EmailBounced,
    };
    webhooks::enqueue_emails(c, &[(target.id, event)])?;
    Ok(true)
}

/// A bounce as the email's `last_error`: its status code, then the server's diagnostic when that
/// does not start with it already (`5.1.1 unknown user: …`, as a refused send reads `550 5.1.1 …`).
fn last_error(finding: &Finding) -> Option<String> {
    match (&finding.status, &finding.diagnostic) {
        (Some(status), Some(diagnostic)) if !diagnostic.contains(status.as_str()) => {
            Some(format!("{status} {diagnostic}"))
        }
        (_, Some(diagnostic)) => Some(diagnostic.clone()),
        (status, None) => status.clone(),
    }
}

/// Why a report of `kind` suppresses the address, if it does.
fn suppression(kind: ReportKind) -> Option<SuppressionReason> {
    match kind {
        ReportKind::Bounced => Some(SuppressionReason::Bounced),
        ReportKind::Complained => Some(SuppressionReason::Complained),
        ReportKind::Delayed => None,
    }
}

/// Suppresses the member's address, unless support corrected it after the email was sent (the
/// report is then about the old one) or it is suppressed already; a member it suppresses has their
/// unsent emails (a reminder queued meanwhile, a failed one) cancelled.
fn suppress<C: BackendConnection>(
    c: &mut C,
    target: &Target,
    reason: SuppressionReason,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let suppressed = c.execute(
        diesel::update(
            members::table
                .filter(members::id.eq(target.member_id))
                .filter(members::suppressed_reason.is_null())
                .filter(
                    members::address_changed_at
                        .is_null()
                        .or(members::address_changed_at.le(target.created_at)),
                ),
        )
        .set((
            members::suppressed_reason.eq(reason),
            members::suppressed_at.eq(now),
        )),
    )?;
    if suppressed == 1 {
        cancel_deliveries(c, &[target.member_id], &UNSENT)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounce(status: Option<&str>, diagnostic: Option<&str>) -> Finding {
        Finding {
            digest: String::new(),
            kind: ReportKind::Bounced,
            status: status.map(str::to_owned),
            diagnostic: diagnostic.map(str::to_owned),
        }
    }

    #[test]
    fn a_bounces_last_error_has_its_status_once_and_the_servers_words() {
        let postfix = bounce(Some("5.1.1"), Some("unknown user: \"ann@example.org\""));
        assert_eq!(
            last_error(&postfix).as_deref(),
            Some("5.1.1 unknown user: \"ann@example.org\"")
        );
        let smtp = bounce(
            Some("5.1.1"),
            Some("550 5.1.1 <ann@example.org>: no such user"),
        );
        assert_eq!(
            last_error(&smtp).as_deref(),
            Some("550 5.1.1 <ann@example.org>: no such user")
        );
        assert_eq!(
            last_error(&bounce(Some("5.0.0"), None)).as_deref(),
            Some("5.0.0")
        );
        assert_eq!(
            last_error(&bounce(None, Some("gone"))).as_deref(),
            Some("gone")
        );
        assert_eq!(last_error(&bounce(None, None)), None);
    }
}

//! A member's timeline (`docs/product.md`, "A member's timeline"): what happened to one membership,
//! newest first, read a page at a time from the tables that already hold it.
//!
//! Each source is one query per page, bounded by the page size: the membership and its import
//! row, the invitations, the emails, their unsuccessful attempts (`delivery_attempts`), their
//! accepted attempts (`sent_at`), the first opening of a link, the acceptances, the member's
//! support actions in the audit log and the reports the bounce mailbox gave about the member's
//! emails (`bounce_reports`). The rows are merged in memory by [`Position`] and the page
//! cut at its size, so a page holds at most the sources' count times its size whatever the
//! length of the story.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::backend::BackendConnection;
use crate::db::schema::{
    accounts, audit_events, bounce_reports, deliveries, delivery_attempts, import_rows, imports,
    invitations, members,
};
use crate::ids::{
    AuditEventId, BounceReportId, DeliveryId, ImportId, InvitationId, MemberId, WorkspaceId,
};
use crate::on_conn;
use crate::status::{DeliveryState, InvitationCause, ReportKind, RowOutcome};
use crate::store::audit::{Action, Target};
use crate::store::invitations::invitations_of;

/// Where an event comes from. Events of one instant are ordered by it, causes before their
/// effects: an import's membership, its invitation and its email are made in one transaction, at
/// one time, and read in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// The membership, made by an import row.
    Import,
    /// An invitation.
    Invitation,
    /// An email (a delivery), when it was queued.
    Email,
    /// An unsuccessful send attempt (`delivery_attempts`).
    FailedAttempt,
    /// The accepted send attempt (a delivery's `sent_at`).
    SentAttempt,
    /// The first opening of one of the member's links.
    Opened,
    /// An acceptance.
    Accepted,
    /// A support action in the audit log.
    Audit,
    /// A report from the bounce mailbox about one of the member's emails (`bounce_reports`).
    Report,
}

impl Source {
    const ALL: [Source; 9] = [
        Source::Import,
        Source::Invitation,
        Source::Email,
        Source::FailedAttempt,
        Source::SentAttempt,
        Source::Opened,
        Source::Accepted,
        Source::Audit,
        Source::Report,
    ];

    /// Its name in a cursor.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Import => "import",
            Source::Invitation => "invitation",
            Source::Email => "email",
            Source::FailedAttempt => "failed",
            Source::SentAttempt => "sent",
            Source::Opened => "opened",
            Source::Accepted => "accepted",
            Source::Audit => "audit",
            Source::Report => "report",
        }
    }

    fn parse(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// An event's place in the timeline: its time, then its [`Source`], then the id of its row in
/// that source (member, invitation, delivery, attempt, audit entry or report id). No two events share
/// one, so pages cut between any two events, and an event is on exactly one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// When it happened.
    pub at: NaiveDateTime,
    /// Where it comes from.
    pub source: Source,
    /// Its row in the source.
    pub id: i64,
}

impl Position {
    /// The cursor of the page after this event: `{at}.{source}.{id}`, `at` in nanoseconds since
    /// 1970 (UTC), e.g. `1796342400123456000.failed.17`.
    pub fn cursor(&self) -> String {
        let nanos = self.at.and_utc().timestamp_nanos_opt().unwrap_or(i64::MAX);
        format!("{nanos}.{}.{}", self.source.as_str(), self.id)
    }

    /// Reads a [`Position::cursor`] back; `None` for anything else.
    pub fn from_cursor(cursor: &str) -> Option<Position> {
        let mut parts = cursor.split('.');
        let (nanos, source, id) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some(Position {
            at: chrono::DateTime::from_timestamp_nanos(nanos.parse().ok()?).naive_utc(),
            source: Source::parse(source)?,
            id: id.parse().ok()?,
        })
    }

    /// The rows of `source` that come after this position, newest first, are those with a time
    /// before the bound's, or at its time with an id below the bound's: a source ordered before
    /// this one has all its rows of this instant after it, one ordered after it none.
    fn bound_for(&self, source: Source) -> (NaiveDateTime, i64) {
        let id = match source.cmp(&self.source) {
            std::cmp::Ordering::Less => i64::MAX,
            std::cmp::Ordering::Equal => self.id,
            std::cmp::Ordering::Greater => i64::MIN,
        };
        (self.at, id)
    }
}

/// How a send attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// The mail server took the email (or it was written to the outbox).
    Accepted,
    /// A temporary failure; the email is tried again.
    Retried,
    /// The failure that made the email `failed`.
    Failed,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// The membership was made by an import: the import, its file's name and the spreadsheet row.
    Imported {
        /// The import.
        import: ImportId,
        /// Its file's name.
        file_name: String,
        /// The row as a spreadsheet numbers it, when its result is kept.
        row: Option<i64>,
    },
    /// An invitation was made.
    Invited {
        /// The invitation.
        invitation: InvitationId,
        /// What made it; `None` for an invitation from before causes were recorded.
        cause: Option<InvitationCause>,
    },
    /// An email was queued; its state now.
    Email {
        /// The email (delivery).
        email: DeliveryId,
        /// The invitation it carries.
        invitation: InvitationId,
        /// Its state now.
        state: DeliveryState,
        /// Cancelled, and a later invitation of the member replaced it.
        superseded: bool,
        /// Its send attempts so far.
        attempts: i32,
    },
    /// A send attempt of an email, with the mail server's reply or the error in words.
    Attempt {
        /// The email.
        email: DeliveryId,
        /// How it ended.
        result: AttemptResult,
        /// The server's reply (the outbox file for the outbox), or the error.
        reply: Option<String>,
    },
    /// A link of the invitation was opened for the first time.
    Opened {
        /// The invitation.
        invitation: InvitationId,
    },
    /// The invitation was accepted.
    Accepted {
        /// The invitation.
        invitation: InvitationId,
    },
    /// A support action on the member.
    Support {
        /// What support did.
        action: SupportAction,
        /// The acting admin's stored address; `None` for an operator at the command line.
        actor: Option<String>,
    },
    /// A report from the bounce mailbox about an email: a bounce, a delay or a complaint.
    Report {
        /// The email it is about.
        email: DeliveryId,
        /// What it reported.
        kind: ReportKind,
        /// The enhanced status code it gave (`5.1.1`), if any.
        status: Option<String>,
        /// The reporting server's diagnostic, in its words, if any.
        diagnostic: Option<String>,
    },
}

/// One event of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its place, and its time.
    pub position: Position,
    /// What happened.
    pub what: What,
}

/// A support action on a member, as the audit log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SupportAction {
    /// A new invitation email.
    Resend,
    /// A link minted to copy.
    InvitationLink,
    /// Archived.
    Archive,
    /// Unarchived, with a new invitation email.
    Unarchive,
    /// The suppression of the address cleared.
    Unsuppress,
    /// The address corrected, with a new invitation email to it.
    AddressChange,
}

/// The audit log's actions the timeline shows, with what each is.
const SUPPORT_ACTIONS: [(Action, SupportAction); 6] = [
    (Action::Resend, SupportAction::Resend),
    (Action::InvitationLink, SupportAction::InvitationLink),
    (Action::Archive, SupportAction::Archive),
    (Action::Unarchive, SupportAction::Unarchive),
    (Action::Unsuppress, SupportAction::Unsuppress),
    (Action::AddressChange, SupportAction::AddressChange),
];

/// The member's events that come after `before` (from the newest when `None`), newest first, at
/// most `limit`; `None` when the workspace has no such member.
pub fn page(
    conn: &mut DbConn,
    (workspace, member): (WorkspaceId, MemberId),
    before: Option<Position>,
    limit: i64,
) -> QueryResult<Option<Vec<Event>>> {
    let before = before.unwrap_or_else(newest);
    let page = Page {
        workspace,
        member,
        before,
        limit,
    };
    let events = on_conn!(conn, |c| page.read(c))?;
    Ok(events.map(|events| merge(events, before, limit)))
}

/// A position past every stored time, ordered after every source (the last of them is
/// [`Source::Report`]): where the first page starts.
/// Its year has four digits, as SQLite's stored times compare as text.
fn newest() -> Position {
    let end = chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
        .expect("a valid date");
    Position {
        at: end,
        source: Source::Report,
        id: i64::MAX,
    }
}

/// The newest `limit` of `events` that come after `before`, newest first.
fn merge(mut events: Vec<Event>, before: Position, limit: i64) -> Vec<Event> {
    events.retain(|e| e.position < before);
    events.sort_unstable_by_key(|e| std::cmp::Reverse(e.position));
    events.truncate(usize::try_from(limit).unwrap_or(0));
    events
}

/// One page's reads.
struct Page {
    workspace: WorkspaceId,
    member: MemberId,
    before: Position,
    limit: i64,
}

/// Rows of a source after `$bound` (a `(time, id)` pair from [`Position::bound_for`]) in the
/// newest-first order of `$at` and `$id`.
///
/// A macro because the filter's type differs with each pair of columns, and Diesel gives no
/// name to write it under.
macro_rules! after {
    ($at:expr, $id:expr, $bound:expr) => {{
        let (at, id) = $bound;
        $at.lt(at).or($at.eq(at).and($id.lt(id)))
    }};
}

impl Page {
    fn bound(&self, source: Source) -> (NaiveDateTime, i64) {
        self.before.bound_for(source)
    }

    fn read<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Option<Vec<Event>>> {
        let Some(membership) = self.membership(c)? else {
            return Ok(None);
        };
        let mut events: Vec<Event> = membership.into_iter().collect();
        events.extend(self.invitations(c)?);
        events.extend(self.emails(c)?);
        events.extend(self.failed_attempts(c)?);
        events.extend(self.sent_attempts(c)?);
        events.extend(self.opened(c)?);
        events.extend(self.accepted(c)?);
        events.extend(self.support(c)?);
        events.extend(self.reports(c)?);
        Ok(Some(events))
    }

    /// The member's import event, `Some(None)` for a member no import made, `None` when the
    /// workspace has no such member.
    fn membership<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Option<Option<Event>>> {
        let found: Option<(NaiveDateTime, Option<ImportId>, String, Option<String>)> = c
            .first(
                members::table
                    .inner_join(accounts::table)
                    .left_join(imports::table.on(members::import_id.eq(imports::id.nullable())))
                    .filter(members::id.eq(self.member))
                    .filter(members::workspace_id.eq(self.workspace))
                    .select((
                        members::created_at,
                        members::import_id,
                        accounts::email,
                        imports::file_name.nullable(),
                    )),
            )
            .optional()?;
        let Some((at, import, email, file_name)) = found else {
            return Ok(None);
        };
        let (Some(import), Some(file_name)) = (import, file_name) else {
            return Ok(Some(None));
        };
        // Found by the import's index of addresses; the member id makes sure it is this row.
        let row: Option<i64> = c
            .first(
                import_rows::table
                    .filter(import_rows::import_id.eq(import))
                    .filter(import_rows::email.eq(email))
                    .filter(import_rows::member_id.eq(self.member))
                    .filter(import_rows::outcome.eq(RowOutcome::Invited))
                    .order(import_rows::row_number)
                    .select(import_rows::row_number),
            )
            .optional()?;
        let position = Position {
            at,
            source: Source::Import,
            id: self.member.0,
        };
        let what = What::Imported {
            import,
            file_name,
            row,
        };
        Ok(Some(Some(Event { position, what })))
    }

    fn invitations<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Vec<Event>> {
        let rows: Vec<(InvitationId, NaiveDateTime, Option<InvitationCause>)> = c.load(
            invitations::table
                .filter(invitations::member_id.eq(self.member))
                .filter(after!(
                    invitations::created_at,
                    invitations::id,
                    self.bound(Source::Invitation)
                ))
                .order((invitations::created_at.desc(), invitations::id.desc()))
                .limit(self.limit)
                .select((invitations::id, invitations::created_at, invitations::cause)),
        )?;
        Ok(rows
            .into_iter()
            .map(|(invitation, at, cause)| Event {
                position: Position {
                    at,
                    source: Source::Invitation,
                    id: invitation.0,
                },
                what: What::Invited { invitation, cause },
            })
            .collect())
    }

    fn emails<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Vec<Event>> {
        let later = diesel::alias!(invitations as later);
        let replaced = later
            .filter(later.field(invitations::member_id).eq(self.member))
            .filter(later.field(invitations::id).gt(deliveries::invitation_id));
        let rows: Vec<EmailRow> = c.load(
            deliveries::table
                .filter(deliveries::invitation_id.eq_any(invitations_of(&[self.member])))
                .filter(after!(
                    deliveries::created_at,
                    deliveries::id,
                    self.bound(Source::Email)
                ))
                .order((deliveries::created_at.desc(), deliveries::id.desc()))
                .limit(self.limit)
                .select((
                    deliveries::id,
                    deliveries::invitation_id,
                    deliveries::created_at,
                    deliveries::state,
                    deliveries::attempts,
                    diesel::dsl::exists(replaced),
                )),
        )?;
        Ok(rows.into_iter().map(email_event).collect())
    }

    fn failed_attempts<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Vec<Event>> {
        let member = [self.member];
        let of_member = deliveries::table
            .filter(deliveries::invitation_id.eq_any(invitations_of(&member)))
            .select(deliveries::id);
        let rows: Vec<(i64, DeliveryId, NaiveDateTime, String, bool)> = c.load(
            delivery_attempts::table
                .filter(delivery_attempts::delivery_id.eq_any(of_member))
                .filter(after!(
                    delivery_attempts::at,
                    delivery_attempts::id,
                    self.bound(Source::FailedAttempt)
                ))
                .order((delivery_attempts::at.desc(), delivery_attempts::id.desc()))
                .limit(self.limit)
                .select((
                    delivery_attempts::id,
                    delivery_attempts::delivery_id,
                    delivery_attempts::at,
                    delivery_attempts::reply,
                    delivery_attempts::temporary,
                )),
        )?;
        Ok(rows
            .into_iter()
            .map(|(id, email, at, reply, temporary)| Event {
                position: Position {
                    at,
                    source: Source::FailedAttempt,
                    id,
                },
                what: What::Attempt {
                    email,
                    result: if temporary {
                        AttemptResult::Retried
                    } else {
                        AttemptResult::Failed
                    },
                    reply: Some(reply),
                },
            })
            .collect())
    }

    fn sent_attempts<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Vec<Event>> {
        let rows: Vec<(DeliveryId, Option<NaiveDateTime>, Option<String>)> = c.load(
            deliveries::table
                .filter(deliveries::invitation_id.eq_any(invitations_of(&[self.member])))
                .filter(deliveries::sent_at.is_not_null())
                .filter(after!(
                    deliveries::sent_at,
                    deliveries::id,
                    self.bound(Source::SentAttempt)
                ))
                .order((deliveries::sent_at.desc(), deliveries::id.desc()))
                .limit(self.limit)
                .select((deliveries::id, deliveries::sent_at, deliveries::last_reply)),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(email, at, reply)| {
                Some(Event {
                    position: Position {
                        at: at?,
                        source: Source::SentAttempt,
                        id: email.0,
                    },
                    what: What::Attempt {
                        email,
                        result: AttemptResult::Accepted,
                        reply,
                    },
                })
            })
            .collect())
    }

    /// The first opening of any of the member's links: one event, whichever invitation it was.
    fn opened<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Option<Event>> {
        let first: Option<(InvitationId, Option<NaiveDateTime>)> = c
            .first(
                invitations::table
                    .filter(invitations::member_id.eq(self.member))
                    .filter(invitations::opened_at.is_not_null())
                    .order((invitations::opened_at, invitations::id))
                    .select((invitations::id, invitations::opened_at)),
            )
            .optional()?;
        Ok(first.and_then(|(invitation, at)| {
            Some(Event {
                position: Position {
                    at: at?,
                    source: Source::Opened,
                    id: invitation.0,
                },
                what: What::Opened { invitation },
            })
        }))
    }

    fn accepted<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Vec<Event>> {
        let rows: Vec<(InvitationId, Option<NaiveDateTime>)> = c.load(
            invitations::table
                .filter(invitations::member_id.eq(self.member))
                .filter(invitations::accepted_at.is_not_null())
                .filter(after!(
                    invitations::accepted_at,
                    invitations::id,
                    self.bound(Source::Accepted)
                ))
                .order((invitations::accepted_at.desc(), invitations::id.desc()))
                .limit(self.limit)
                .select((invitations::id, invitations::accepted_at)),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(invitation, at)| {
                Some(Event {
                    position: Position {
                        at: at?,
                        source: Source::Accepted,
                        id: invitation.0,
                    },
                    what: What::Accepted { invitation },
                })
            })
            .collect())
    }

    /// The member's support actions, found by the audit log's index of targets.
    fn support<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Vec<Event>> {
        let actions: Vec<&str> = SUPPORT_ACTIONS.iter().map(|(a, _)| a.as_str()).collect();
        let rows: Vec<(AuditEventId, NaiveDateTime, String, Option<String>)> = c.load(
            audit_events::table
                .left_join(accounts::table)
                .filter(audit_events::workspace_id.eq(self.workspace))
                .filter(audit_events::target.eq(Target::Member(self.member).text()))
                .filter(audit_events::action.eq_any(actions))
                .filter(after!(
                    audit_events::created_at,
                    audit_events::id,
                    self.bound(Source::Audit)
                ))
                .order((audit_events::created_at.desc(), audit_events::id.desc()))
                .limit(self.limit)
                .select((
                    audit_events::id,
                    audit_events::created_at,
                    audit_events::action,
                    accounts::email.nullable(),
                )),
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, at, action, actor)| {
                let (_, action) = SUPPORT_ACTIONS
                    .into_iter()
                    .find(|(a, _)| a.as_str() == action)?;
                Some(Event {
                    position: Position {
                        at,
                        source: Source::Audit,
                        id: id.0,
                    },
                    what: What::Support { action, actor },
                })
            })
            .collect())
    }

    /// The reports the bounce mailbox gave about the member's emails, when each was read.
    fn reports<C: BackendConnection>(&self, c: &mut C) -> QueryResult<Vec<Event>> {
        let member = [self.member];
        let of_member = deliveries::table
            .filter(deliveries::invitation_id.eq_any(invitations_of(&member)))
            .select(deliveries::id);
        let rows: Vec<ReportRow> = c.load(
            bounce_reports::table
                .filter(bounce_reports::delivery_id.eq_any(of_member))
                .filter(after!(
                    bounce_reports::received_at,
                    bounce_reports::id,
                    self.bound(Source::Report)
                ))
                .order((
                    bounce_reports::received_at.desc(),
                    bounce_reports::id.desc(),
                ))
                .limit(self.limit)
                .select((
                    bounce_reports::id,
                    bounce_reports::delivery_id,
                    bounce_reports::received_at,
                    bounce_reports::kind,
                    bounce_reports::status,
                    bounce_reports::diagnostic,
                )),
        )?;
        Ok(rows.into_iter().map(report_event).collect())
    }
}

/// A report as the timeline reads it: id, email, when it was read, kind, status, diagnostic.
type ReportRow = (
    BounceReportId,
    DeliveryId,
    NaiveDateTime,
    ReportKind,
    Option<String>,
    Option<String>,
);

fn report_event((id, email, at, kind, status, diagnostic): ReportRow) -> Event {
    Event {
        position: Position {
            at,
            source: Source::Report,
            id: id.0,
        },
        what: What::Report {
            email,
            kind,
            status,
            diagnostic,
        },
    }
}

/// An email as the timeline reads it: id, invitation, queued at, state, attempts, and whether a
/// later invitation of the member exists.
type EmailRow = (
    DeliveryId,
    InvitationId,
    NaiveDateTime,
    DeliveryState,
    i32,
    bool,
);

fn email_event((email, invitation, at, state, attempts, replaced): EmailRow) -> Event {
    Event {
        position: Position {
            at,
            source: Source::Email,
            id: email.0,
        },
        what: What::Email {
            email,
            invitation,
            state,
            superseded: state == DeliveryState::Cancelled && replaced,
            attempts,
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn at(s: u32, nanos: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 12, 7)
            .unwrap()
            .and_hms_nano_opt(10, 0, s, nanos)
            .unwrap()
    }

    fn event(at: NaiveDateTime, source: Source, id: i64) -> Event {
        Event {
            position: Position { at, source, id },
            what: What::Opened {
                invitation: InvitationId(id),
            },
        }
    }

    #[test]
    fn a_cursor_reads_back_as_its_position() {
        for source in Source::ALL {
            let position = Position {
                at: at(7, 123_456_789),
                source,
                id: 42,
            };
            assert_eq!(Position::from_cursor(&position.cursor()), Some(position));
        }
        let shown = Position {
            at: at(0, 0),
            source: Source::FailedAttempt,
            id: 17,
        };
        assert_eq!(shown.cursor(), "1796637600000000000.failed.17");
    }

    #[test]
    fn anything_but_a_cursor_is_refused() {
        for bad in [
            "",
            "12",
            "12.email",
            "12.email.x",
            "x.email.1",
            "12.mail.1",
            "12.email.1.2",
            "1.5.email.1",
        ] {
            assert_eq!(Position::from_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn events_of_one_instant_read_causes_before_effects() {
        let t = at(1, 0);
        let events = vec![
            event(t, Source::Invitation, 5),
            event(t, Source::Email, 9),
            event(t, Source::Import, 3),
            event(at(2, 0), Source::Audit, 1),
            event(at(0, 500), Source::SentAttempt, 8),
        ];
        let before = newest();

        let sources: Vec<Source> = merge(events, before, 10)
            .into_iter()
            .map(|e| e.position.source)
            .collect();

        assert_eq!(
            sources,
            [
                Source::Audit,
                Source::Email,
                Source::Invitation,
                Source::Import,
                Source::SentAttempt
            ]
        );
    }

    #[test]
    fn pages_cut_at_a_cursor_hold_every_event_once() {
        let t = at(1, 0);
        let all: Vec<Event> = (0..7)
            .flat_map(|id| {
                [Source::Invitation, Source::Email, Source::FailedAttempt].map(|source| {
                    event(
                        if id % 2 == 0 { t } else { at(id, 0) },
                        source,
                        i64::from(id),
                    )
                })
            })
            .collect();
        let mut before = newest();
        let mut seen = Vec::new();
        loop {
            let page = merge(all.clone(), before, 4);
            let Some(last) = page.last() else { break };
            before = Position::from_cursor(&last.position.cursor()).unwrap();
            seen.extend(page.into_iter().map(|e| e.position));
        }
        let mut expected: Vec<Position> = all.iter().map(|e| e.position).collect();
        expected.sort_unstable_by_key(|p| std::cmp::Reverse(*p));
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_bound_takes_a_sources_rows_of_the_cursors_instant_by_their_order() {
        let cursor = Position {
            at: at(1, 0),
            source: Source::Email,
            id: 9,
        };
        assert_eq!(cursor.bound_for(Source::Invitation), (at(1, 0), i64::MAX));
        assert_eq!(cursor.bound_for(Source::Email), (at(1, 0), 9));
        assert_eq!(cursor.bound_for(Source::Audit), (at(1, 0), i64::MIN));
        assert_eq!(cursor.bound_for(Source::Report), (at(1, 0), i64::MIN));
    }
}

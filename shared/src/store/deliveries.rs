//! Email deliveries: claimed under a lease and a claim value, sent, and recorded behind a fence.
//!
//! A claim moves due `pending` rows to `sending`, stamps them with a random claim value and a lease,
//! fixes their Message-ID on first claim, and mints a new link for each in the same transaction.
//! Claims take a share of every import with due sends, so a small import is not queued behind a
//! big one. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so any number of workers share the
//! work without sending twice; SQLite claims in a `BEGIN IMMEDIATE` transaction, which is already
//! exclusive.
//!
//! An outcome is written only while its delivery is still `sending` under the claim that sent it,
//! so a worker that stalled past its lease can never overwrite the outcome of a re-claim. A lapsed
//! lease means the worker died: the delivery goes back to `pending` and is sent again (with the
//! same Message-ID), because an invitee must never be left without their email.

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use serde::Serialize;

use crate::db::DbConn;
use crate::db::backend::{BackendConnection, columns};
use crate::db::schema::{
    accounts, deliveries, invitation_links, invitations, members, workers, workspaces,
};
use crate::db::statement::{param, statement};
use crate::ids::{AccountId, DeliveryId, ImportId, InvitationId, WorkerId, WorkspaceId};
use crate::status::{DeliveryState, InvitationCause, InvitationKind};
use crate::store::members::InvitedBy;
use crate::store::tallies::{self, Tally, add_tally};
use crate::store::{now, webhooks};
use crate::webhooks::EventType;
use crate::{on_conn, tokens, write_transaction};

/// What the last error of a delivery whose worker died mid-send says until it is sent again.
pub const INTERRUPTED: &str =
    "interrupted: the worker stopped while sending; the email is being sent again";

/// The value that marks the deliveries of one claim; outcomes and lease renewals name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClaimToken(pub i64);

impl ClaimToken {
    /// A fresh random claim value.
    pub fn new() -> ClaimToken {
        ClaimToken(rand::random())
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        ClaimToken::new()
    }
}

/// A claimed delivery with everything needed to write its email.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The delivery.
    pub id: DeliveryId,
    /// The claim that holds it.
    pub claim: ClaimToken,
    /// The import whose cancel stops it: the import that made its invitation. `None` for an email
    /// a later support action made (a resend, an unarchive, a reminder), though it is filed under
    /// the member's import: cancelling that import stops the import's own emails, never one
    /// queued later on purpose.
    pub import_id: Option<ImportId>,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// When it was first tried (start of its retry window).
    pub first_attempt_at: NaiveDateTime,
    /// The local part of its Message-ID, the same on every attempt.
    pub message_id: String,
    /// Which email it sends: the invitation, or a reminder.
    pub kind: InvitationKind,
    /// The invitee's address.
    pub to: String,
    /// The invitee's first name, as their membership of the workspace gives it, if it does.
    pub first_name: Option<String>,
    /// The workspace's display name.
    pub workspace: String,
    /// Who invited them (a name, or their address).
    pub inviter: String,
    /// The link token, minted for this send and never stored in plain.
    pub token: String,
    /// When the link expires.
    pub expires_at: NaiveDateTime,
}

/// How a send ended, as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted; the server's reply.
    Sent {
        /// The SMTP reply (or outbox path).
        reply: String,
    },
    /// A transient failure, to be tried again at `at`; the attempt counts.
    RetryAt {
        /// The next attempt's time.
        at: NaiveDateTime,
        /// The error or server reply.
        error: String,
    },
    /// A permanent failure, or out of retries.
    Failed {
        /// The error or server reply.
        error: String,
    },
    /// Never delivered to the server (shutdown before the hand-over, or the server was
    /// unavailable): back to `pending` at `at`, and the attempt does not count.
    Released {
        /// When it is due again.
        at: NaiveDateTime,
        /// Why, when the server said something.
        error: Option<String>,
    },
    /// Never delivered to the server, or not accepted by it, because its import was cancelled:
    /// `cancelled`, and the attempt does not count.
    Cancelled,
}

/// One outcome to record: which delivery, under which claim, and how its send ended.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The delivery.
    pub id: DeliveryId,
    /// The claim it was sent under (the fence).
    pub claim: ClaimToken,
    /// How the send ended.
    pub outcome: SendOutcome,
}

/// What a group commit wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Written {
    /// Outcomes written.
    pub written: usize,
    /// Outcomes refused by the fence: the delivery was no longer held by that claim.
    pub fenced_out: usize,
}

/// How much to claim and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest {
    /// At most this many deliveries.
    pub limit: i64,
    /// The lease each claimed delivery gets.
    pub lease: Duration,
    /// How long the links minted for them stay valid.
    pub ttl: Duration,
    /// The registered process claiming them, whose death hands them back at once; `None` leaves
    /// them to their lease alone.
    pub worker: Option<WorkerId>,
}

/// A claimed delivery's place in its import's claim order.
#[derive(QueryableByName)]
struct ClaimedAt {
    #[diesel(sql_type = BigInt)]
    id: DeliveryId,
    #[diesel(sql_type = Timestamp)]
    next_attempt_at: NaiveDateTime,
}

#[derive(QueryableByName)]
struct ImportRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    import_id: Option<ImportId>,
}

/// The imports with pending deliveries, in id order, found by hopping along the pending index
/// (one index probe per import) rather than reading every pending (or sent) row. `$index` pins
/// the partial index where the backend allows it.
///
/// A macro because it writes text at compile time: `concat!` joins only literals, and a `const fn`
/// cannot join strings, while a function building the text at run time would rebuild (or leak) it
/// for the `&'static str` a [`Statement`](crate::db::statement::Statement) keeps.
macro_rules! pending_imports {
    ($index:literal) => {
        concat!(
            "WITH RECURSIVE g(import_id) AS ( ",
            "SELECT min(import_id) FROM deliveries ",
            $index,
            " WHERE state = 'pending' ",
            "UNION ALL ",
            "SELECT (SELECT min(d.import_id) FROM deliveries d ",
            $index,
            " WHERE d.state = 'pending' AND d.import_id > g.import_id) ",
            "FROM g WHERE g.import_id IS NOT NULL) ",
            "SELECT import_id FROM g WHERE import_id IS NOT NULL LIMIT 1000"
        )
    };
}

/// The claim statements take the due deliveries of one group in order, after position `($6, $7)`
/// (next attempt, id) of that order, for the process `$8`.
#[cfg(feature = "postgres")]
const CLAIM_PG: &str = "UPDATE deliveries SET state = 'sending', claim = $4, worker_id = $8, lease_until = $1, \
     attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, $2), \
     message_id = COALESCE(message_id, replace(gen_random_uuid()::text, '-', '')) \
     WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $2 \
     AND import_id = $5 AND (next_attempt_at, id) > ($6, $7) \
     ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, next_attempt_at";
#[cfg(feature = "postgres")]
const CLAIM_PG_NO_IMPORT: &str = "UPDATE deliveries SET state = 'sending', claim = $4, \
     worker_id = $8, lease_until = $1, attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, $2), \
     message_id = COALESCE(message_id, replace(gen_random_uuid()::text, '-', '')) \
     WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $2 \
     AND import_id IS NULL AND $5::bigint IS NULL AND (next_attempt_at, id) > ($6, $7) \
     ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id, next_attempt_at";
const CLAIM_SQLITE: &str = "UPDATE deliveries SET state = 'sending', claim = $4, worker_id = $8, lease_until = $1, \
     attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, $2), \
     message_id = COALESCE(message_id, lower(hex(randomblob(16)))) \
     WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $2 \
     AND import_id IS $5 AND (next_attempt_at, id) > ($6, $7) \
     ORDER BY next_attempt_at, id LIMIT $3) RETURNING id, next_attempt_at";

/// Reads what the emails of the claimed `ids` need and mints one link each (one insert for all).
fn load_claimed<C: BackendConnection>(
    c: &mut C,
    ids: &[DeliveryId],
    claim: ClaimToken,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<Vec<Claimed>> {
    let rows: Vec<ClaimedRow> = c.load(
        deliveries::table
            .inner_join(invitations::table)
            .inner_join(
                members::table
                    .inner_join(accounts::table)
                    .inner_join(workspaces::table),
            )
            .filter(deliveries::id.eq_any(ids))
            .select(columns::<ClaimedRow>()),
    )?;
    let inviters = inviter_names(c, &rows)?;
    let mut links = Vec::with_capacity(rows.len());
    let claimed: Vec<Claimed> = rows
        .into_iter()
        .map(|row| {
            let token = tokens::mint();
            links.push((
                invitation_links::token_hash.eq(token.hash),
                invitation_links::invitation_id.eq(row.invitation_id),
                invitation_links::expires_at.eq(expires_at),
                invitation_links::created_at.eq(now),
            ));
            to_claimed(row, claim, token.plain, expires_at, &inviters)
        })
        .collect();
    c.execute(diesel::insert_into(invitation_links::table).values(&links))?;
    Ok(claimed)
}

/// The names of the admins who invited the claimed `rows`' members, each as their own membership
/// of that member's workspace names them.
fn inviter_names<C: BackendConnection>(
    c: &mut C,
    rows: &[ClaimedRow],
) -> QueryResult<HashMap<InvitedBy, String>> {
    let invites: Vec<InvitedBy> = rows.iter().filter_map(ClaimedRow::invited_by).collect();
    crate::store::members::inviter_names(c, &invites)
}

/// How long a claimer trusts what its claims remember, by default (see [`ClaimMemory`]).
const REMEMBER: Duration = Duration::from_secs(1);

/// What one claimer's claims remember between calls, so that a claim need not read past what
/// earlier claims took.
///
/// On PostgreSQL a claimed delivery leaves a dead entry in the index of pending sends until the
/// table is vacuumed, and every claim that starts at the front of an import's order reads past all
/// of them: with 40,000 sends claimed since the last vacuum, finding the first pending one took
/// 2.2 ms of each claim, and listing the imports with pending sends another 2.6 ms. So a claim
/// resumes each import's order after the last delivery the previous one took, and reuses the list.
/// What is due behind those places (a retry, a send given back, a new import) is not missed: a
/// claim that comes back short looks again from the start, and everything is forgotten after
/// [`REMEMBER`] (1 s) anyway.
#[derive(Debug)]
pub struct ClaimMemory {
    /// How long what is remembered is trusted.
    remember: Duration,
    /// The groups with pending sends when last listed: `None` (sends of no import), then imports.
    groups: Vec<Option<ImportId>>,
    /// When they were listed; `None` when nothing is remembered.
    listed_at: Option<std::time::Instant>,
    /// Per group, the place (next attempt, id) of the last delivery a claim took from it.
    after: HashMap<Option<ImportId>, (NaiveDateTime, DeliveryId)>,
}

impl Default for ClaimMemory {
    fn default() -> Self {
        ClaimMemory::remembering(REMEMBER)
    }
}

impl ClaimMemory {
    /// A memory trusted for `remember` (tests use a long one, to see claims resume whatever the
    /// machine's speed).
    pub fn remembering(remember: Duration) -> ClaimMemory {
        ClaimMemory {
            remember,
            groups: Vec::new(),
            listed_at: None,
            after: HashMap::new(),
        }
    }

    fn forget(&mut self) {
        self.listed_at = None;
        self.groups.clear();
        self.after.clear();
    }

    /// Where a claim from `group` starts: after its last claimed delivery, or at the front.
    fn start_of(&self, group: Option<ImportId>) -> (NaiveDateTime, DeliveryId) {
        // Every next attempt is a time this software set, so none lies before 1970.
        let front = (
            chrono::DateTime::UNIX_EPOCH.naive_utc(),
            DeliveryId(i64::MIN),
        );
        self.after.get(&group).copied().unwrap_or(front)
    }
}

/// What every claim statement of one claim binds: the claim value, the time it is made, and the
/// lease it gives.
#[derive(Debug, Clone, Copy)]
struct ClaimStamp {
    claim: ClaimToken,
    worker: Option<WorkerId>,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
}

impl ClaimMemory {
    /// Lists the groups with pending sends, unless they are listed already.
    fn list_groups<C: BackendConnection + ClaimSql>(&mut self, c: &mut C) -> QueryResult<()> {
        if self.listed_at.is_some() {
            return Ok(());
        }
        let imports: Vec<ImportRow> = c.load(statement(c.pending_imports_sql(), ()))?;
        // Sends that belong to no import (the import was deleted) form a group of their own.
        self.groups = vec![None];
        self.groups.extend(imports.into_iter().map(|r| r.import_id));
        self.listed_at = Some(std::time::Instant::now());
        Ok(())
    }
}

/// Claims up to `limit` due deliveries, a fair share of each group `memory` lists (listing them
/// first when it lists none), each group's from where `memory` says its last claim ended; the
/// claimed ids.
fn claim_groups<C: BackendConnection + ClaimSql>(
    c: &mut C,
    memory: &mut ClaimMemory,
    limit: i64,
    stamp: ClaimStamp,
) -> QueryResult<Vec<DeliveryId>> {
    memory.list_groups(c)?;
    let mut ids = Vec::new();
    let count = memory.groups.len();
    for i in 0..count {
        let group = memory.groups[i];
        let left = limit - ids.len() as i64;
        if left <= 0 {
            break;
        }
        // An equal share of what is left, so what a group lacks goes to the groups after it.
        let share = (left as u64).div_ceil((count - i) as u64) as i64;
        let (after_at, after_id) = memory.start_of(group);
        let claimed: Vec<ClaimedAt> = c.load(statement(
            c.claim_sql(group.is_none()),
            (
                param::<Timestamp, _>(stamp.lease_until),
                param::<Timestamp, _>(stamp.now),
                param::<BigInt, _>(share),
                param::<BigInt, _>(stamp.claim.0),
                param::<Nullable<BigInt>, _>(group),
                param::<Timestamp, _>(after_at),
                param::<BigInt, _>(after_id),
                param::<Nullable<BigInt>, _>(stamp.worker),
            ),
        ))?;
        if let Some(last) = claimed.iter().map(|r| (r.next_attempt_at, r.id)).max() {
            memory.after.insert(group, last);
        }
        ids.extend(claimed.into_iter().map(|r| r.id));
    }
    Ok(ids)
}

/// Claims up to `request.limit` due deliveries under a new claim, a fair share from each import
/// with due sends, minting a link for each; `memory` carries what the caller's earlier claims
/// learnt (see [`ClaimMemory`]).
pub fn claim_due(
    conn: &mut DbConn,
    request: ClaimRequest,
    memory: &mut ClaimMemory,
) -> QueryResult<Vec<Claimed>> {
    let now = now();
    let claim = ClaimToken::new();
    let lease_until = now + request.lease;
    if memory
        .listed_at
        .is_some_and(|at| at.elapsed() >= memory.remember)
    {
        memory.forget();
    }
    let stamp = ClaimStamp {
        claim,
        worker: request.worker,
        now,
        lease_until,
    };
    write_transaction!(conn, |c| {
        let resumed = memory.listed_at.is_some();
        let mut ids = claim_groups(c, memory, request.limit, stamp)?;
        let left = request.limit - ids.len() as i64;
        if left > 0 && resumed {
            // Something may be due behind where the remembered claims left off.
            memory.forget();
            ids.extend(claim_groups(c, memory, left, stamp)?);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        load_claimed(c, &ids, claim, now, now + request.ttl)
    })
}

/// The claim statement of a backend.
trait ClaimSql {
    /// The query listing the imports with pending sends.
    fn pending_imports_sql(&self) -> &'static str;
    /// The statement claiming from one import's sends, or from those of no import.
    fn claim_sql(&self, of_no_import: bool) -> &'static str;
}

#[cfg(feature = "postgres")]
impl ClaimSql for diesel::PgConnection {
    fn pending_imports_sql(&self) -> &'static str {
        // PostgreSQL picks the partial index by itself once the table has statistics.
        pending_imports!("")
    }

    fn claim_sql(&self, of_no_import: bool) -> &'static str {
        // `= NULL` matches nothing, and `IS NOT DISTINCT FROM` cannot use the index.
        if of_no_import {
            CLAIM_PG_NO_IMPORT
        } else {
            CLAIM_PG
        }
    }
}

impl ClaimSql for diesel::SqliteConnection {
    fn pending_imports_sql(&self) -> &'static str {
        // SQLite has no statistics unless ANALYZE runs, and might walk the (import_id, state)
        // index through every sent row instead.
        pending_imports!("INDEXED BY deliveries_pending_import")
    }

    fn claim_sql(&self, _: bool) -> &'static str {
        // SQLite's `IS` matches NULL and uses the index.
        CLAIM_SQLITE
    }
}

/// A claimed delivery with its invitee, workspace and inviter, as its email needs them.
#[derive(Queryable, Selectable)]
#[diesel(table_name = deliveries, check_for_backend(diesel::sqlite::Sqlite))]
struct ClaimedRow {
    id: DeliveryId,
    invitation_id: InvitationId,
    import_id: Option<ImportId>,
    attempts: i32,
    /// Set by the claim statement that made this attempt.
    #[diesel(select_expression = deliveries::first_attempt_at.assume_not_null())]
    first_attempt_at: NaiveDateTime,
    message_id: Option<String>,
    #[diesel(select_expression = invitations::cause)]
    cause: Option<InvitationCause>,
    #[diesel(select_expression = accounts::email)]
    to: String,
    /// As the member's own workspace's file gave it.
    #[diesel(select_expression = members::first_name)]
    first_name: Option<String>,
    #[diesel(select_expression = members::workspace_id)]
    workspace_id: WorkspaceId,
    #[diesel(select_expression = workspaces::name)]
    workspace: String,
    #[diesel(select_expression = members::invited_by)]
    invited_by: Option<AccountId>,
}

impl ClaimedRow {
    /// The admin who invited the member, in the member's workspace, if one is on record.
    fn invited_by(&self) -> Option<InvitedBy> {
        self.invited_by.map(|admin| InvitedBy {
            workspace: self.workspace_id,
            admin,
        })
    }
}

fn to_claimed(
    row: ClaimedRow,
    claim: ClaimToken,
    token: String,
    expires_at: NaiveDateTime,
    inviters: &HashMap<InvitedBy, String>,
) -> Claimed {
    let id = row.id;
    let inviter = row.invited_by().and_then(|by| inviters.get(&by).cloned());
    Claimed {
        id,
        claim,
        import_id: row.import_id.filter(|_| {
            row.cause
                .is_none_or(|cause| cause == InvitationCause::Import)
        }),
        attempts: row.attempts,
        first_attempt_at: row.first_attempt_at,
        // Set by the claim statement; a fallback keeps a row written by hand sendable.
        message_id: row.message_id.unwrap_or_else(|| format!("delivery-{id}")),
        kind: InvitationKind::of(row.cause),
        to: row.to,
        first_name: row.first_name,
        inviter: inviter.unwrap_or_else(|| row.workspace.clone()),
        workspace: row.workspace,
        token,
        expires_at,
    }
}

/// One outcome as the group-commit statement reads it (a JSON array of these).
#[derive(Serialize)]
struct OutcomeRow<'a> {
    id: DeliveryId,
    claim: i64,
    state: &'static str,
    /// 1 when the attempt is taken back (the email never reached the server).
    uncount: i32,
    next_at: Option<String>,
    reply: Option<&'a str>,
    error: Option<&'a str>,
}

impl<'a> OutcomeRow<'a> {
    fn new(r: &'a Recorded) -> OutcomeRow<'a> {
        let at = |t: &NaiveDateTime| Some(t.format(TIMESTAMP_TEXT).to_string());
        let (state, uncount, next_at, reply, error) = match &r.outcome {
            SendOutcome::Sent { reply } => (DeliveryState::Sent, 0, None, Some(reply), None),
            SendOutcome::RetryAt { at: t, error } => {
                (DeliveryState::Pending, 0, at(t), None, Some(error))
            }
            SendOutcome::Failed { error } => (DeliveryState::Failed, 0, None, None, Some(error)),
            SendOutcome::Released { at: t, error } => {
                (DeliveryState::Pending, 1, at(t), None, error.as_ref())
            }
            SendOutcome::Cancelled => (DeliveryState::Cancelled, 1, None, None, None),
        };
        OutcomeRow {
            id: r.id,
            claim: r.claim.0,
            state: state.as_str(),
            uncount,
            next_at,
            reply: reply.map(String::as_str),
            error: error.map(String::as_str),
        }
    }
}

/// How timestamps are written as text: the format Diesel stores in SQLite, which PostgreSQL reads.
const TIMESTAMP_TEXT: &str = "%F %T%.f";

/// The SET list of both backends' group commit: `$d` names the delivery, `$now` the bound time,
/// `v` is the outcome.
///
/// A macro for the reason `pending_imports!` is one: it writes the text of constants (one of them
/// public), which only `concat!` of literals can do at compile time.
macro_rules! record_set {
    ($d:literal, $now:literal) => {
        concat!(
            "state = v.state, ",
            "attempts = ",
            $d,
            ".attempts - v.uncount, ",
            "first_attempt_at = CASE WHEN ",
            $d,
            ".attempts - v.uncount = 0 THEN NULL ",
            "ELSE ",
            $d,
            ".first_attempt_at END, ",
            "next_attempt_at = COALESCE(v.next_at, ",
            $d,
            ".next_attempt_at), ",
            "sent_at = CASE WHEN v.state = 'sent' THEN ",
            $now,
            " ELSE ",
            $d,
            ".sent_at END, ",
            "last_reply = COALESCE(v.reply, ",
            $d,
            ".last_reply), ",
            "last_error = CASE WHEN v.state = 'sent' THEN NULL ELSE COALESCE(v.error, ",
            $d,
            ".last_error) END, ",
            "lease_until = NULL, claim = NULL "
        )
    };
}

/// The unsuccessful attempts of the outcomes `$from` lists (`$id`, `$error` and the new `$state`
/// of each), added to `delivery_attempts` at `$at`: those that left the email `pending` (tried
/// again) or `failed`, with an error to show, while the email has fewer than [`KEPT_ATTEMPTS`].
/// An accepted send adds nothing: the delivery's `sent_at` and `last_reply` are its attempt.
///
/// A macro for the reason `record_set!` is one.
macro_rules! keep_attempts {
    ($id:literal, $at:literal, $error:literal, $state:literal, $from:literal) => {
        concat!(
            "INSERT INTO delivery_attempts (delivery_id, at, reply, temporary) SELECT ",
            $id,
            ", ",
            $at,
            ", ",
            $error,
            ", ",
            $state,
            " = 'pending' FROM ",
            $from,
            " WHERE ",
            $state,
            " IN ('pending', 'failed') AND ",
            $error,
            " IS NOT NULL AND (SELECT count(*) FROM delivery_attempts x WHERE x.delivery_id = ",
            $id,
            ") < 50"
        )
    };
}

/// Most unsuccessful attempts kept per email (the 50 in [`keep_attempts!`]): retries within
/// `EMAIL_RETRY_WINDOW`, each support retry and every pause of an outage add attempts, so their
/// number has no bound of its own. The email's `attempts` still counts them all.
pub const KEPT_ATTEMPTS: i64 = 50;

/// [`keep_attempts!`] on SQLite, whose group commit is an update and this insert in one
/// transaction: `$1` is the JSON array of the written outcomes, `$2` the time.
const KEEP_ATTEMPTS_SQLITE: &str = keep_attempts!(
    "json_extract(value, '$.id')",
    "$2",
    "json_extract(value, '$.error')",
    "json_extract(value, '$.state')",
    "json_each($1)"
);

/// The group commit on PostgreSQL: one statement that writes the outcomes and adds what left
/// `unsent` to the imports' tallies (`$3` is the tally shard, `$4` the deliveries' ids).
///
/// It finds the deliveries by primary key whatever the statistics say. Written plainly, with
/// `state = 'sending'`, the planner may instead read a whole partial index of the sends in
/// progress (`deliveries_claim`, `deliveries_unsent_created`) whenever its statistics say few
/// deliveries are being sent, which is what an `ANALYZE` taken between sends says: that index
/// holds an entry for every send claimed since the last vacuum, and one such plan, cached at a
/// million rows, took 38 ms a commit (510 emails/s). So the ids come as a list the primary key
/// can take, and the state is compared with a value the planner cannot see while planning (an
/// uncorrelated subquery), so no partial index qualifies.
///
/// Public so that a test can check the plan.
#[cfg(feature = "postgres")]
pub const RECORD_PG: &str = concat!(
    "WITH u AS (UPDATE deliveries AS d SET ",
    record_set!("d", "$2::timestamp"),
    "FROM jsonb_to_recordset($1::jsonb) AS v(id bigint, claim bigint, state text, uncount int, \
     next_at timestamp, reply text, error text) \
     WHERE d.id = ANY($4::bigint[]) AND d.id = v.id AND d.claim = v.claim \
     AND d.state = (SELECT 'sending'::text) \
     RETURNING d.id, d.import_id, d.state, v.error), \
     t AS (INSERT INTO import_email_tallies AS t (import_id, shard, unsent, sent, failed) \
     SELECT import_id, $3, -count(*), count(*) FILTER (WHERE state = 'sent'), \
     count(*) FILTER (WHERE state = 'failed') \
     FROM u WHERE import_id IS NOT NULL AND state IN ('sent', 'failed', 'cancelled') \
     GROUP BY import_id \
     ON CONFLICT (import_id, shard) DO UPDATE SET unsent = t.unsent + excluded.unsent, \
     sent = t.sent + excluded.sent, failed = t.failed + excluded.failed), \
     a AS (",
    keep_attempts!("u.id", "$2::timestamp", "u.error", "u.state", "u"),
    ") SELECT id, import_id, state FROM u"
);
const RECORD_SQLITE: &str = concat!(
    "UPDATE deliveries SET ",
    record_set!("deliveries", "$2"),
    "FROM (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.claim') AS claim, \
     json_extract(value, '$.state') AS state, json_extract(value, '$.uncount') AS uncount, \
     json_extract(value, '$.next_at') AS next_at, json_extract(value, '$.reply') AS reply, \
     json_extract(value, '$.error') AS error FROM json_each($1)) AS v \
     WHERE deliveries.id = v.id AND deliveries.claim = v.claim AND deliveries.state = 'sending' \
     RETURNING deliveries.id, deliveries.import_id, deliveries.state"
);

/// A delivery whose outcome was written, and its new state.
#[derive(QueryableByName)]
struct WrittenRow {
    #[diesel(sql_type = BigInt)]
    id: DeliveryId,
    #[diesel(sql_type = Nullable<BigInt>)]
    import_id: Option<ImportId>,
    #[diesel(sql_type = Text)]
    state: DeliveryState,
}

/// Records many outcomes in one statement and transaction (a group commit). Each is written only
/// if its delivery is still `sending` under the claim it names; what leaves `sending` for `sent`,
/// `failed` or `cancelled` is added to its import's tallies, and an email sent or failed for good
/// is announced to its workspace's webhooks in the same transaction.
pub fn record(conn: &mut DbConn, outcomes: &[Recorded]) -> QueryResult<Written> {
    if outcomes.is_empty() {
        return Ok(Written::default());
    }
    let rows: Vec<OutcomeRow<'_>> = outcomes.iter().map(OutcomeRow::new).collect();
    let json = serde_json::to_string(&rows).expect("outcomes serialise");
    let now = now().format(TIMESTAMP_TEXT).to_string();
    let written = match conn {
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => {
            use diesel::sql_types::{Array, SmallInt};
            let ids: Vec<DeliveryId> = outcomes.iter().map(|r| r.id).collect();
            let params = (
                param::<Text, _>(json),
                param::<Text, _>(now),
                param::<SmallInt, _>(tallies::shard()),
                param::<Array<BigInt>, _>(ids),
            );
            // One statement, or with the webhooks' events a transaction (one endpoint made
            // meanwhile sees the emails of the next commit on).
            if webhooks::email_events_wanted(c)? {
                c.transaction(|c| {
                    let written = statement(RECORD_PG, params).load::<WrittenRow>(c)?;
                    announce(c, &written)?;
                    QueryResult::Ok(written.len())
                })?
            } else {
                statement(RECORD_PG, params).load::<WrittenRow>(c)?.len()
            }
        }
        DbConn::Sqlite(c) => c.immediate_transaction(|c| {
            let params = (param::<Text, _>(json), param::<Text, _>(now.clone()));
            let written = statement(RECORD_SQLITE, params).load::<WrittenRow>(c)?;
            keep_attempts_sqlite(c, &rows, &written, now)?;
            announce(c, &written)?;
            // Every written outcome left `sending`.
            let changes = written.iter().map(|row| {
                let moved = Tally::moved(DeliveryState::Sending, row.state, 1);
                (row.import_id, moved)
            });
            for (import, change) in tallies::by_import(changes) {
                add_tally(c, import, change)?;
            }
            QueryResult::Ok(written.len())
        })?,
    };
    Ok(Written {
        written,
        fenced_out: outcomes.len() - written,
    })
}

/// An `email.sent` or `email.failed` event for each written outcome that sent an email or gave
/// it up, for the webhooks of its workspace.
fn announce<C: BackendConnection>(c: &mut C, written: &[WrittenRow]) -> QueryResult<()> {
    let events: Vec<(DeliveryId, EventType)> = written
        .iter()
        .filter_map(|row| match row.state {
            DeliveryState::Sent => Some((row.id, EventType::EmailSent)),
            DeliveryState::Failed => Some((row.id, EventType::EmailFailed)),
            _ => None,
        })
        .collect();
    webhooks::enqueue_emails(c, &events)
}

/// Adds the unsuccessful attempts among the `written` outcomes of `rows` to `delivery_attempts`
/// at `now` (see [`keep_attempts!`]); when every send was accepted, no statement runs.
fn keep_attempts_sqlite(
    c: &mut diesel::SqliteConnection,
    rows: &[OutcomeRow<'_>],
    written: &[WrittenRow],
    now: String,
) -> QueryResult<()> {
    let written: std::collections::HashSet<DeliveryId> = written.iter().map(|w| w.id).collect();
    let unsuccessful: Vec<&OutcomeRow<'_>> = rows
        .iter()
        .filter(|r| r.state != DeliveryState::Sent.as_str() && r.error.is_some())
        .filter(|r| written.contains(&r.id))
        .collect();
    if unsuccessful.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_string(&unsuccessful).expect("outcomes serialise");
    let params = (param::<Text, _>(json), param::<Text, _>(now));
    statement(KEEP_ATTEMPTS_SQLITE, params).execute(c)?;
    Ok(())
}

/// Renewal on PostgreSQL: rows locked meanwhile are left out. A group commit locks the same rows
/// in another order, and the two deadlocked (seen once in a million sends); a row it holds is
/// about to leave `sending`, so it needs no longer lease.
#[cfg(feature = "postgres")]
const RENEW_PG: &str = "UPDATE deliveries SET lease_until = $1 WHERE id IN (SELECT id FROM \
     deliveries WHERE state = 'sending' AND claim = ANY($2) FOR UPDATE SKIP LOCKED)";

/// Extends the lease of every delivery still `sending` under one of `claims` (on PostgreSQL, of
/// those no other statement holds at that moment).
pub fn renew(conn: &mut DbConn, claims: &[ClaimToken], lease: Duration) -> QueryResult<usize> {
    let claims: Vec<i64> = claims.iter().map(|c| c.0).collect();
    let lease_until = now() + lease;
    match conn {
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => {
            use diesel::sql_types::Array;
            let params = (
                param::<Timestamp, _>(lease_until),
                param::<Array<BigInt>, _>(claims),
            );
            statement(RENEW_PG, params).execute(c)
        }
        // SQLite has one writer at a time: nothing to deadlock with.
        DbConn::Sqlite(c) => diesel::update(
            deliveries::table
                .filter(deliveries::state.eq(DeliveryState::Sending))
                .filter(deliveries::claim.eq_any(&claims)),
        )
        .set(deliveries::lease_until.eq(Some(lease_until)))
        .execute(c),
    }
}

/// What a hand-back writes: `pending`, due now, no lease, claim or holder, and why. Its attempt
/// still counts and its Message-ID stays, so a repeat is recognisable.
///
/// A macro because the assignments' tuple has a type no one would write out, and both hand-backs
/// set the same columns.
macro_rules! handed_back {
    ($now:expr) => {
        (
            deliveries::state.eq(DeliveryState::Pending),
            deliveries::next_attempt_at.eq($now),
            deliveries::lease_until.eq(None::<NaiveDateTime>),
            deliveries::claim.eq(None::<i64>),
            deliveries::worker_id.eq(None::<WorkerId>),
            deliveries::last_error.eq(Some(INTERRUPTED)),
        )
    };
}

/// Puts every `sending` delivery whose holder is gone back to `pending`, due now: those whose lease
/// ran out, and those of a process no longer registered (declared dead, see
/// [`workers::remove_dead`](crate::store::workers::remove_dead)). The holder's late outcome is
/// fenced out by the cleared claim.
pub fn requeue_abandoned(conn: &mut DbConn) -> QueryResult<usize> {
    let now = now();
    on_conn!(conn, |c| {
        let registered = workers::table.filter(workers::id.nullable().eq(deliveries::worker_id));
        let process_gone = deliveries::worker_id
            .is_not_null()
            .and(diesel::dsl::not(diesel::dsl::exists(registered)));
        diesel::update(
            deliveries::table
                .filter(deliveries::state.eq(DeliveryState::Sending))
                .filter(deliveries::lease_until.lt(now).or(process_gone)),
        )
        .set(handed_back!(now))
        .execute(c)
    })
}

/// Puts every `sending` delivery back to `pending` whoever holds it: only for a process that knows
/// it is the only one claiming (`serve` on the embedded stack, at start-up).
pub(crate) fn requeue_all<C: BackendConnection>(
    c: &mut C,
    now: NaiveDateTime,
) -> QueryResult<usize>
where
{
    c.execute(
        diesel::update(deliveries::table.filter(deliveries::state.eq(DeliveryState::Sending)))
            .set(handed_back!(now)),
    )
}

/// Deliveries waiting to be sent: those of imports from their tallies, those of no import (their
/// import was deleted) counted, one count per state so that each reads its own partial index.
/// Counting them all took 421 ms a call with a million pending.
const UNSENT_SQL: &str = "SELECT CAST(COALESCE((SELECT SUM(unsent) FROM import_email_tallies), 0) \
     AS BIGINT) + (SELECT COUNT(*) FROM deliveries WHERE import_id IS NULL AND state = 'pending') \
     + (SELECT COUNT(*) FROM deliveries WHERE import_id IS NULL AND state = 'sending') AS n";

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Deliveries waiting to be sent (pending or being sent), over all imports, and when the oldest
/// of them was created: gauges for operators.
pub fn unsent(conn: &mut DbConn) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    let unsent = [DeliveryState::Pending, DeliveryState::Sending];
    on_conn!(conn, |c| {
        let count = statement(UNSENT_SQL, ()).get_result::<Count>(c)?.n;
        let oldest = deliveries::table
            .filter(deliveries::state.eq_any(unsent))
            .select(diesel::dsl::min(deliveries::created_at))
            .first(c)?;
        Ok((count, oldest))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statements_keep_as_many_attempts_as_documented() {
        let cap = format!("< {KEPT_ATTEMPTS}");
        assert!(
            KEEP_ATTEMPTS_SQLITE.ends_with(&cap),
            "{KEEP_ATTEMPTS_SQLITE}"
        );
        #[cfg(feature = "postgres")]
        assert!(RECORD_PG.contains(&format!("{cap})")), "{RECORD_PG}");
    }
}

//! Applying a chunk of validated rows: accounts, memberships, groups, invitations, deliveries and
//! per-row outcomes, in one transaction that also advances the import's checkpoint.
//!
//! Every write is a multi-row statement, and the checkpoint moves in the same transaction, so a crash
//! replays at most the chunk that was not committed. Unique keys with `ON CONFLICT DO NOTHING` make a
//! row that races with another import (same person, same workspace) a skip, never a duplicate.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::config::Edition;
use crate::db::DbConn;
use crate::db::schema::{
    accounts, deliveries, import_rows, imports, invitations, member_groups, members,
};
use crate::domain::invitee::{InvalidRow, NewInvitee};
use crate::ids::{AccountId, ImportId, WorkspaceId};
use crate::status::{DeliveryState, MemberStatus, RowOutcome};
use crate::store::members::invitee_status;
use crate::store::tallies::{Tally, add_tally};
use crate::store::{now, storable};
use crate::write_transaction;

/// Rows per multi-row statement: well under both backends' bind-parameter limits.
const STATEMENT_ROWS: usize = 1000;

/// The import a chunk belongs to.
#[derive(Debug, Clone)]
pub struct ImportContext {
    /// The import.
    pub import_id: ImportId,
    /// Its workspace.
    pub workspace_id: WorkspaceId,
    /// The admin who uploaded it, named as the inviter.
    pub invited_by: AccountId,
    /// Decides `invited` vs `requested` for people without an account.
    pub edition: Edition,
    /// Record every row's outcome but write no account, member, invitation or delivery.
    pub dry_run: bool,
}

/// A parsed row, ready to apply.
#[derive(Debug)]
pub enum RowInput {
    /// A valid row whose groups were resolved to ids.
    Valid {
        /// The invitee.
        invitee: NewInvitee,
        /// Ids of the workspace groups the row names.
        group_ids: Vec<i64>,
    },
    /// A row that failed validation.
    Invalid(InvalidRow),
}

/// Where the import resumes after this chunk.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint {
    /// Byte offset of the next unread record.
    pub offset: i64,
    /// Spreadsheet row number of the next unread record.
    pub next_row: i64,
    /// The renewed processing lease.
    pub lease_until: NaiveDateTime,
    /// The claim the run holds the import under; the chunk applies only while it still does.
    pub claim: i64,
}

/// What a chunk did, for metrics.
#[derive(Debug, Default, Clone)]
pub struct ChunkSummary {
    /// Rows that created an invitation.
    pub invited: u64,
    /// Rows skipped.
    pub skipped: u64,
    /// Rows that failed validation.
    pub invalid: u64,
    /// One entry per failing field of every invalid row.
    pub invalid_fields: Vec<&'static str>,
}

/// Why a valid row created nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Already an active member of the workspace.
    AlreadyMember,
    /// Already invited (or requested) and not yet accepted.
    AlreadyInvited,
    /// An archived member: unarchive them instead.
    Archived,
    /// An earlier row of the same file has the same email.
    DuplicateInFile {
        /// The earlier row's number.
        first_row: i64,
    },
}

impl SkipReason {
    fn text(self) -> String {
        match self {
            SkipReason::AlreadyMember => "already_member".into(),
            SkipReason::AlreadyInvited => "already_invited".into(),
            SkipReason::Archived => "archived".into(),
            SkipReason::DuplicateInFile { first_row } => {
                format!("duplicate_in_file: same email as row {first_row}")
            }
        }
    }

    fn for_status(status: &str) -> SkipReason {
        match MemberStatus::parse(status) {
            Some(MemberStatus::Active) => SkipReason::AlreadyMember,
            Some(MemberStatus::Archived) => SkipReason::Archived,
            _ => SkipReason::AlreadyInvited,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = import_rows, treat_none_as_default_value = false)]
struct NewRowResult {
    import_id: i64,
    row_number: i64,
    email: Option<String>,
    outcome: &'static str,
    reason: Option<String>,
    member_id: Option<i64>,
}

#[derive(Insertable)]
#[diesel(table_name = accounts, treat_none_as_default_value = false)]
struct NewAccount<'a> {
    email: &'a str,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    activated_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = members, treat_none_as_default_value = false)]
struct NewMember {
    workspace_id: i64,
    account_id: i64,
    role: &'static str,
    status: &'static str,
    metadata: Option<String>,
    import_id: Option<i64>,
    invited_by: Option<i64>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = deliveries, treat_none_as_default_value = false)]
struct NewDelivery {
    invitation_id: i64,
    member_id: i64,
    import_id: Option<i64>,
    state: &'static str,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    created_at: NaiveDateTime,
}

/// Adds the accounts with the given emails to `$into` (email → id, activation), on a concrete
/// connection.
macro_rules! load_accounts {
    ($c:expr, $emails:expr, $into:expr) => {
        for part in $emails.chunks(STATEMENT_ROWS) {
            let found: Vec<(i64, String, Option<NaiveDateTime>)> = accounts::table
                .filter(accounts::email.eq_any(part))
                .select((accounts::id, accounts::email, accounts::activated_at))
                .load($c)?;
            $into.extend(found.into_iter().map(|(id, e, act)| (e, (id, act))));
        }
    };
}

/// Refreshes the query planner's statistics of the tables an import grows, so that the lookups
/// of later chunks and the senders' claims keep their index plans while the tables grow from
/// nothing faster than autovacuum looks (a table never analysed is planned as if nearly empty:
/// the claim then sorted every pending send of the import, 100 ms a claim at 100,000).
/// SQLite needs nothing: its statements name their index where the choice matters.
pub fn refresh_statistics(conn: &mut DbConn) -> QueryResult<()> {
    match conn {
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => diesel::sql_query("ANALYZE accounts, members, deliveries, import_rows")
            .execute(c)
            .map(drop),
        DbConn::Sqlite(_) => Ok(()),
    }
}

/// Applies one chunk of rows and advances the checkpoint, atomically, while the run still holds
/// the import under `checkpoint.claim`; `None` (nothing applied) when it lost the import.
pub fn apply_chunk(
    conn: &mut DbConn,
    ctx: &ImportContext,
    rows: Vec<RowInput>,
    checkpoint: Checkpoint,
) -> QueryResult<Option<ChunkSummary>> {
    let now = now();
    let import_id = ctx.import_id.0;
    let mut summary = ChunkSummary::default();
    let mut results: Vec<NewRowResult> = Vec::with_capacity(rows.len());
    let result = |results: &mut Vec<NewRowResult>,
                  row: u64,
                  email: Option<String>,
                  outcome: RowOutcome,
                  reason: Option<String>,
                  member: Option<i64>| {
        results.push(NewRowResult {
            import_id,
            row_number: row as i64,
            email: email.map(storable),
            outcome: outcome.as_str(),
            reason: reason.map(storable),
            member_id: member,
        })
    };

    // Invalid rows and duplicates within the chunk need no database.
    let mut candidates: Vec<(NewInvitee, Vec<i64>)> = Vec::new();
    let mut first_row_of: HashMap<String, u64> = HashMap::new();
    for input in rows {
        match input {
            RowInput::Invalid(invalid) => {
                summary.invalid += 1;
                summary
                    .invalid_fields
                    .extend(invalid.errors.iter().map(|e| e.field));
                let reason = invalid.reason();
                result(
                    &mut results,
                    invalid.row,
                    invalid.email,
                    RowOutcome::Invalid,
                    Some(reason),
                    None,
                );
            }
            RowInput::Valid { invitee, group_ids } => {
                let email = invitee.email.as_str().to_owned();
                if let Some(&first_row) = first_row_of.get(&email) {
                    summary.skipped += 1;
                    let reason = SkipReason::DuplicateInFile {
                        first_row: first_row as i64,
                    };
                    result(
                        &mut results,
                        invitee.row,
                        Some(email),
                        RowOutcome::Skipped,
                        Some(reason.text()),
                        None,
                    );
                } else {
                    first_row_of.insert(email, invitee.row);
                    candidates.push((invitee, group_ids));
                }
            }
        }
    }

    write_transaction!(conn, |c| {
        {
            // First, and locking the import's row: is it still ours? Its lease is renewed with it.
            let held = diesel::update(imports::table.find(import_id))
                .filter(imports::claim.eq(checkpoint.claim))
                .set(imports::lease_until.eq(Some(checkpoint.lease_until)))
                .execute(c)?;
            if held == 0 {
                return Ok(None);
            }
            let emails: Vec<&str> = candidates.iter().map(|(i, _)| i.email.as_str()).collect();

            // Duplicates of rows in earlier chunks of the same file.
            let mut earlier: HashMap<String, i64> = HashMap::new();
            for part in emails.chunks(STATEMENT_ROWS) {
                let found: Vec<(Option<String>, Option<i64>)> = import_rows::table
                    .filter(import_rows::import_id.eq(import_id))
                    .filter(import_rows::email.eq_any(part))
                    .filter(import_rows::outcome.ne(RowOutcome::Invalid.as_str()))
                    .group_by(import_rows::email)
                    .select((
                        import_rows::email,
                        diesel::dsl::min(import_rows::row_number),
                    ))
                    .load(c)?;
                earlier.extend(found.into_iter().filter_map(|(e, r)| Some((e?, r?))));
            }

            // People who already have an account, and their membership here if any.
            let mut account_of: HashMap<String, (i64, Option<NaiveDateTime>)> = HashMap::new();
            load_accounts!(c, &emails, account_of);
            let known_ids: Vec<i64> = account_of.values().map(|(id, _)| *id).collect();
            let mut membership_of: HashMap<i64, (i64, String)> = HashMap::new();
            for part in known_ids.chunks(STATEMENT_ROWS) {
                let found: Vec<(i64, i64, String)> = members::table
                    .filter(members::workspace_id.eq(ctx.workspace_id.0))
                    .filter(members::account_id.eq_any(part))
                    .select((members::account_id, members::id, members::status))
                    .load(c)?;
                membership_of.extend(found.into_iter().map(|(a, m, s)| (a, (m, s))));
            }

            let mut to_invite: Vec<(NewInvitee, Vec<i64>)> = Vec::new();
            for (invitee, groups) in candidates {
                let email = invitee.email.as_str();
                let skip = if let Some(&first_row) = earlier.get(email) {
                    Some((SkipReason::DuplicateInFile { first_row }, None))
                } else {
                    account_of
                        .get(email)
                        .and_then(|(id, _)| membership_of.get(id))
                        .map(|(member, status)| (SkipReason::for_status(status), Some(*member)))
                };
                match skip {
                    Some((reason, member)) => {
                        summary.skipped += 1;
                        result(
                            &mut results,
                            invitee.row,
                            Some(email.to_owned()),
                            RowOutcome::Skipped,
                            Some(reason.text()),
                            member,
                        );
                    }
                    None => to_invite.push((invitee, groups)),
                }
            }
            if ctx.dry_run {
                // A dry run stops where a real run starts writing: every write below is for the
                // rows left in `to_invite`, so with none left it writes only the outcomes.
                for (invitee, _) in to_invite.drain(..) {
                    summary.invited += 1;
                    let email = invitee.email.as_str().to_owned();
                    result(
                        &mut results,
                        invitee.row,
                        Some(email),
                        RowOutcome::Invited,
                        None,
                        None,
                    );
                }
            }

            // New people get an account (not activated: they have not accepted anything yet).
            let mut new_accounts: Vec<NewAccount<'_>> = to_invite
                .iter()
                .filter(|(i, _)| !account_of.contains_key(i.email.as_str()))
                .map(|(i, _)| NewAccount {
                    email: i.email.as_str(),
                    first_name: i.first_name.as_deref(),
                    last_name: i.last_name.as_deref(),
                    activated_at: None,
                    created_at: now,
                })
                .collect();
            // Concurrent imports that share people lock the same unique keys; taking them in one
            // global order (email, then account id) keeps two of them from deadlocking.
            new_accounts.sort_unstable_by(|a, b| a.email.cmp(b.email));
            for part in new_accounts.chunks(STATEMENT_ROWS) {
                diesel::insert_into(accounts::table)
                    .values(part)
                    .on_conflict(accounts::email)
                    .do_nothing()
                    .execute(c)?;
            }
            let missing: Vec<&str> = new_accounts.iter().map(|a| a.email).collect();
            load_accounts!(c, &missing, account_of);

            // Memberships; a conflict means another import invited the person meanwhile.
            let mut new_members: Vec<NewMember> = to_invite
                .iter()
                .map(|(i, _)| {
                    let (account_id, activated_at) = account_of[i.email.as_str()];
                    let status = invitee_status(ctx.edition, activated_at.is_some());
                    NewMember {
                        workspace_id: ctx.workspace_id.0,
                        account_id,
                        role: i.role.as_str(),
                        status: status.as_str(),
                        metadata: i
                            .metadata
                            .as_ref()
                            .map(|m| serde_json::Value::Object(m.clone()).to_string()),
                        import_id: Some(import_id),
                        invited_by: Some(ctx.invited_by.0),
                        created_at: now,
                        updated_at: now,
                    }
                })
                .collect();
            new_members.sort_unstable_by_key(|m| m.account_id);
            let mut member_of: HashMap<i64, i64> = HashMap::new();
            for part in new_members.chunks(STATEMENT_ROWS) {
                let inserted: Vec<(i64, i64)> = diesel::insert_into(members::table)
                    .values(part)
                    .on_conflict((members::workspace_id, members::account_id))
                    .do_nothing()
                    .returning((members::account_id, members::id))
                    .get_results(c)?;
                member_of.extend(inserted);
            }

            let mut memberships: Vec<(i64, i64)> = Vec::new();
            let mut invited_members: Vec<i64> = Vec::new();
            for (invitee, groups) in &to_invite {
                let email = invitee.email.as_str();
                let account_id = account_of[email].0;
                match member_of.get(&account_id) {
                    Some(&member_id) => {
                        summary.invited += 1;
                        invited_members.push(member_id);
                        memberships.extend(groups.iter().map(|g| (member_id, *g)));
                        result(
                            &mut results,
                            invitee.row,
                            Some(email.to_owned()),
                            RowOutcome::Invited,
                            None,
                            Some(member_id),
                        );
                    }
                    None => {
                        summary.skipped += 1;
                        let reason = SkipReason::AlreadyInvited.text();
                        result(
                            &mut results,
                            invitee.row,
                            Some(email.to_owned()),
                            RowOutcome::Skipped,
                            Some(reason),
                            None,
                        );
                    }
                }
            }

            let unique: HashSet<(i64, i64)> = memberships.into_iter().collect();
            let group_rows: Vec<_> = unique
                .into_iter()
                .map(|(m, g)| {
                    (
                        member_groups::member_id.eq(m),
                        member_groups::group_id.eq(g),
                    )
                })
                .collect();
            for part in group_rows.chunks(STATEMENT_ROWS) {
                diesel::insert_into(member_groups::table)
                    .values(part)
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }

            // One invitation and one pending delivery per new membership; the link's token is minted
            // when the email is actually sent.
            let invitation_rows: Vec<_> = invited_members
                .iter()
                .map(|m| {
                    (
                        invitations::member_id.eq(*m),
                        invitations::created_at.eq(now),
                    )
                })
                .collect();
            let mut new_deliveries: Vec<NewDelivery> = Vec::with_capacity(invited_members.len());
            for part in invitation_rows.chunks(STATEMENT_ROWS) {
                let created: Vec<(i64, i64)> = diesel::insert_into(invitations::table)
                    .values(part)
                    .returning((invitations::id, invitations::member_id))
                    .get_results(c)?;
                new_deliveries.extend(created.into_iter().map(|(invitation_id, member_id)| {
                    NewDelivery {
                        invitation_id,
                        member_id,
                        import_id: Some(import_id),
                        state: DeliveryState::Pending.as_str(),
                        attempts: 0,
                        next_attempt_at: now,
                        created_at: now,
                    }
                }));
            }
            for part in new_deliveries.chunks(STATEMENT_ROWS) {
                diesel::insert_into(deliveries::table)
                    .values(part)
                    .execute(c)?;
            }
            let unsent = Tally::of(DeliveryState::Pending, new_deliveries.len() as i64);
            add_tally(c, ctx.import_id, unsent)?;

            for part in results.chunks(STATEMENT_ROWS) {
                diesel::insert_into(import_rows::table)
                    .values(part)
                    .execute(c)?;
            }

            diesel::update(imports::table.find(import_id))
                .set((
                    imports::rows_processed.eq(imports::rows_processed + results.len() as i64),
                    imports::rows_invited.eq(imports::rows_invited + summary.invited as i64),
                    imports::rows_skipped.eq(imports::rows_skipped + summary.skipped as i64),
                    imports::rows_invalid.eq(imports::rows_invalid + summary.invalid as i64),
                    imports::checkpoint_offset.eq(checkpoint.offset),
                    imports::checkpoint_row.eq(checkpoint.next_row),
                ))
                .execute(c)?;
            Ok(Some(summary))
        }
    })
}

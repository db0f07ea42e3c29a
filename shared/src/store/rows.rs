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
use crate::db::backend::BackendConnection;
use crate::db::schema::{
    accounts, deliveries, import_rows, imports, invitations, member_groups, members,
};
use crate::domain::invitee::{InvalidRow, NewInvitee};
use crate::domain::role::Role;
use crate::domain::search::member_text;
use crate::ids::{AccountId, GroupId, ImportId, InvitationId, MemberId, WorkspaceId};
use crate::status::{DeliveryState, InvitationCause, MemberStatus, RowOutcome};
use crate::store::members::invitee_status;
use crate::store::tallies::{Tally, add_tally};
use crate::store::{now, storable, webhooks};
use crate::webhooks::EventType;
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
        group_ids: Vec<GroupId>,
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

    fn for_status(status: MemberStatus) -> SkipReason {
        match status {
            MemberStatus::Active => SkipReason::AlreadyMember,
            MemberStatus::Archived => SkipReason::Archived,
            MemberStatus::Invited | MemberStatus::Requested => SkipReason::AlreadyInvited,
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = import_rows, treat_none_as_default_value = false)]
struct NewRowResult {
    import_id: ImportId,
    row_number: i64,
    email: Option<String>,
    outcome: RowOutcome,
    reason: Option<String>,
    member_id: Option<MemberId>,
}

/// A person's global account: only what must be global, the address (`docs/product.md`,
/// "Members and statuses"). What the file says about them goes to the membership.
#[derive(Insertable)]
#[diesel(table_name = accounts, treat_none_as_default_value = false)]
struct NewAccount<'a> {
    email: &'a str,
    activated_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
}

/// A membership of the importing workspace, with everything its file says about the person.
#[derive(Insertable)]
#[diesel(table_name = members, treat_none_as_default_value = false)]
struct NewMember<'a> {
    workspace_id: WorkspaceId,
    account_id: AccountId,
    first_name: Option<&'a str>,
    last_name: Option<&'a str>,
    role: Role,
    status: MemberStatus,
    metadata: Option<String>,
    import_id: Option<ImportId>,
    invited_by: Option<AccountId>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    /// What finds the member in a search, folded once here with the row (`docs/product.md`,
    /// "Finding a member").
    search_text: String,
}

impl<'a> NewMember<'a> {
    /// The membership `invitee` gets (the person's account is in `account_of`).
    fn new(
        ctx: &ImportContext,
        invitee: &'a NewInvitee,
        account_of: &AccountOf,
        now: NaiveDateTime,
    ) -> NewMember<'a> {
        let (account_id, activated_at) = account_of[invitee.email.as_str()];
        NewMember {
            workspace_id: ctx.workspace_id,
            account_id,
            first_name: invitee.first_name.as_deref(),
            last_name: invitee.last_name.as_deref(),
            role: invitee.role,
            status: invitee_status(ctx.edition, activated_at.is_some()),
            metadata: invitee
                .metadata
                .as_ref()
                .map(|m| serde_json::Value::Object(m.clone()).to_string()),
            import_id: Some(ctx.import_id),
            invited_by: Some(ctx.invited_by),
            created_at: now,
            updated_at: now,
            search_text: member_text(
                invitee.email.as_str(),
                invitee.first_name.as_deref(),
                invitee.last_name.as_deref(),
            ),
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = deliveries, treat_none_as_default_value = false)]
struct NewDelivery {
    invitation_id: InvitationId,
    member_id: MemberId,
    import_id: Option<ImportId>,
    state: DeliveryState,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    created_at: NaiveDateTime,
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
    let mut outcomes = Outcomes::new(ctx.import_id, rows.len());
    // Invalid rows and duplicates within the chunk need no database.
    let candidates = outcomes.sort_out(rows);
    write_transaction!(conn, |c| {
        // First, and locking the import's row: is it still ours? Its lease is renewed with it.
        if !hold_import(c, ctx.import_id, &checkpoint)? {
            return Ok(None);
        }
        let mut known = Known::load(c, ctx, &candidates)?;
        let to_invite = outcomes.skip_known(candidates, &known);
        if ctx.dry_run {
            // A dry run stops where a real run starts writing: it writes only the outcomes.
            outcomes.invited_without_writing(to_invite);
        } else {
            create_accounts(c, &to_invite, &mut known.account_of, now)?;
            let member_of = insert_members(c, ctx, &to_invite, &known.account_of, now)?;
            let invited = outcomes.sort_invited(&to_invite, &known.account_of, &member_of);
            insert_groups(c, invited.memberships)?;
            let deliveries = insert_invitations(c, ctx.import_id, &invited.members, now)?;
            insert_deliveries(c, ctx.import_id, &deliveries)?;
            announce_invited(c, ctx, &invited.members)?;
        }
        record_outcomes(c, &outcomes.results)?;
        advance_checkpoint(c, ctx.import_id, &outcomes, &checkpoint)?;
        Ok(Some(outcomes.summary))
    })
}

/// A valid row that is the first of its email in its chunk: what the ledger is asked about.
struct Candidate {
    invitee: NewInvitee,
    group_ids: Vec<GroupId>,
}

/// Email → account id and when the account was activated, of people who have an account.
type AccountOf = HashMap<String, (AccountId, Option<NaiveDateTime>)>;

/// Each row's outcome, in the order decided, and the chunk's counts.
struct Outcomes {
    import_id: ImportId,
    results: Vec<NewRowResult>,
    summary: ChunkSummary,
}

impl Outcomes {
    fn new(import_id: ImportId, rows: usize) -> Outcomes {
        Outcomes {
            import_id,
            results: Vec::with_capacity(rows),
            summary: ChunkSummary::default(),
        }
    }

    fn push(
        &mut self,
        row: u64,
        email: Option<String>,
        outcome: RowOutcome,
        reason: Option<String>,
        member: Option<MemberId>,
    ) {
        self.results.push(NewRowResult {
            import_id: self.import_id,
            row_number: row as i64,
            email: email.map(storable),
            outcome,
            reason: reason.map(storable),
            member_id: member,
        });
    }

    fn invalid(&mut self, invalid: InvalidRow) {
        self.summary.invalid += 1;
        self.summary
            .invalid_fields
            .extend(invalid.errors.iter().map(|e| e.field));
        let reason = invalid.reason();
        self.push(
            invalid.row,
            invalid.email,
            RowOutcome::Invalid,
            Some(reason),
            None,
        );
    }

    fn skipped(&mut self, row: u64, email: String, reason: SkipReason, member: Option<MemberId>) {
        self.summary.skipped += 1;
        let reason = Some(reason.text());
        self.push(row, Some(email), RowOutcome::Skipped, reason, member);
    }

    /// An invited row; its reason column carries how the row was read, if that is worth saying.
    fn invited(&mut self, invitee: &NewInvitee, member: Option<MemberId>) {
        self.summary.invited += 1;
        let email = Some(invitee.email.as_str().to_owned());
        let note = invitee.note.map(str::to_owned);
        self.push(invitee.row, email, RowOutcome::Invited, note, member);
    }

    /// Records the invalid rows and the repeats of an email within the chunk; the other rows, in
    /// order.
    fn sort_out(&mut self, rows: Vec<RowInput>) -> Vec<Candidate> {
        let mut candidates = Vec::new();
        let mut first_row_of: HashMap<String, u64> = HashMap::new();
        for input in rows {
            match input {
                RowInput::Invalid(invalid) => self.invalid(invalid),
                RowInput::Valid { invitee, group_ids } => {
                    let email = invitee.email.as_str().to_owned();
                    if let Some(&first_row) = first_row_of.get(&email) {
                        let first_row = first_row as i64;
                        let reason = SkipReason::DuplicateInFile { first_row };
                        self.skipped(invitee.row, email, reason, None);
                    } else {
                        first_row_of.insert(email, invitee.row);
                        candidates.push(Candidate { invitee, group_ids });
                    }
                }
            }
        }
        candidates
    }

    /// Records the candidates the ledger knows already as skipped; the others, to invite.
    fn skip_known(&mut self, candidates: Vec<Candidate>, known: &Known) -> Vec<Candidate> {
        let mut to_invite = Vec::new();
        for candidate in candidates {
            let email = candidate.invitee.email.as_str();
            match known.skip(email) {
                Some((reason, member)) => {
                    self.skipped(candidate.invitee.row, email.to_owned(), reason, member);
                }
                None => to_invite.push(candidate),
            }
        }
        to_invite
    }

    /// Records every row to invite as invited, for a dry run.
    fn invited_without_writing(&mut self, to_invite: Vec<Candidate>) {
        for Candidate { invitee, .. } in to_invite {
            self.invited(&invitee, None);
        }
    }

    /// Records each row to invite as invited, or as skipped when its membership was not inserted
    /// (another import invited the person meanwhile); the new members and their groups.
    fn sort_invited(
        &mut self,
        to_invite: &[Candidate],
        account_of: &AccountOf,
        member_of: &HashMap<AccountId, MemberId>,
    ) -> Invited {
        let mut invited = Invited::default();
        for Candidate { invitee, group_ids } in to_invite {
            let email = invitee.email.as_str();
            let account_id = account_of[email].0;
            match member_of.get(&account_id) {
                Some(&member_id) => {
                    invited.members.push(member_id);
                    let groups = group_ids.iter().map(|g| (member_id, *g));
                    invited.memberships.extend(groups);
                    self.invited(invitee, Some(member_id));
                }
                None => {
                    let reason = SkipReason::AlreadyInvited;
                    self.skipped(invitee.row, email.to_owned(), reason, None);
                }
            }
        }
        invited
    }
}

/// The memberships a chunk created.
#[derive(Default)]
struct Invited {
    /// The new members, in the order of their rows.
    members: Vec<MemberId>,
    /// (member, group) for every group their rows name, repeats included.
    memberships: Vec<(MemberId, GroupId)>,
}

/// What the ledger knows of a chunk's candidates.
struct Known {
    /// Email → the first row of an earlier chunk of the same file with it (invalid rows aside).
    earlier: HashMap<String, i64>,
    /// Accounts of the candidates who have one.
    account_of: AccountOf,
    /// Account id → member id and status, of those who are members of the workspace.
    membership_of: HashMap<AccountId, (MemberId, MemberStatus)>,
}

impl Known {
    /// Reads what the ledger knows of `candidates`.
    fn load<C: BackendConnection>(
        c: &mut C,
        ctx: &ImportContext,
        candidates: &[Candidate],
    ) -> QueryResult<Known> {
        let emails: Vec<&str> = candidates
            .iter()
            .map(|candidate| candidate.invitee.email.as_str())
            .collect();
        let earlier = earlier_rows(c, ctx.import_id, &emails)?;
        let mut account_of = AccountOf::new();
        load_accounts(c, &emails, &mut account_of)?;
        let membership_of = memberships(c, ctx.workspace_id, &account_of)?;
        Ok(Known {
            earlier,
            account_of,
            membership_of,
        })
    }

    /// Why the row with `email` is skipped, and the member it names, if it is.
    fn skip(&self, email: &str) -> Option<(SkipReason, Option<MemberId>)> {
        if let Some(&first_row) = self.earlier.get(email) {
            return Some((SkipReason::DuplicateInFile { first_row }, None));
        }
        self.account_of
            .get(email)
            .and_then(|(id, _)| self.membership_of.get(id))
            .map(|&(member, status)| (SkipReason::for_status(status), Some(member)))
    }
}

/// Renews the import's lease if the run still holds it under `checkpoint.claim`, locking its row;
/// whether it does.
fn hold_import<C: BackendConnection>(
    c: &mut C,
    import: ImportId,
    checkpoint: &Checkpoint,
) -> QueryResult<bool> {
    let held = c.execute(
        diesel::update(imports::table.find(import))
            .filter(imports::claim.eq(checkpoint.claim))
            .set(imports::lease_until.eq(Some(checkpoint.lease_until))),
    )?;
    Ok(held > 0)
}

/// Email → the first row of an earlier chunk of the import with that email, for the rows that
/// were not invalid: a later row with the same email is a duplicate in the file.
fn earlier_rows<C: BackendConnection>(
    c: &mut C,
    import: ImportId,
    emails: &[&str],
) -> QueryResult<HashMap<String, i64>> {
    let mut earlier = HashMap::new();
    for part in emails.chunks(STATEMENT_ROWS) {
        let found: Vec<(Option<String>, Option<i64>)> = c.load(
            import_rows::table
                .filter(import_rows::import_id.eq(import))
                .filter(import_rows::email.eq_any(part))
                .filter(import_rows::outcome.ne(RowOutcome::Invalid))
                .group_by(import_rows::email)
                .select((
                    import_rows::email,
                    diesel::dsl::min(import_rows::row_number),
                )),
        )?;
        earlier.extend(found.into_iter().filter_map(|(e, r)| Some((e?, r?))));
    }
    Ok(earlier)
}

/// Adds the accounts with the given emails to `account_of`.
fn load_accounts<C: BackendConnection>(
    c: &mut C,
    emails: &[&str],
    account_of: &mut AccountOf,
) -> QueryResult<()> {
    for part in emails.chunks(STATEMENT_ROWS) {
        let found: Vec<(AccountId, String, Option<NaiveDateTime>)> = c.load(
            accounts::table
                .filter(accounts::email.eq_any(part))
                .select((accounts::id, accounts::email, accounts::activated_at)),
        )?;
        account_of.extend(found.into_iter().map(|(id, e, act)| (e, (id, act))));
    }
    Ok(())
}

/// Account id → member id and status, of the accounts in `account_of` that are members of the
/// workspace.
fn memberships<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    account_of: &AccountOf,
) -> QueryResult<HashMap<AccountId, (MemberId, MemberStatus)>> {
    let known_ids: Vec<AccountId> = account_of.values().map(|(id, _)| *id).collect();
    let mut membership_of = HashMap::new();
    for part in known_ids.chunks(STATEMENT_ROWS) {
        let found: Vec<(AccountId, MemberId, MemberStatus)> = c.load(
            members::table
                .filter(members::workspace_id.eq(workspace))
                .filter(members::account_id.eq_any(part))
                .select((members::account_id, members::id, members::status)),
        )?;
        membership_of.extend(found.into_iter().map(|(a, m, s)| (a, (m, s))));
    }
    Ok(membership_of)
}

/// Creates an account for each person to invite who has none (not activated: they have not
/// accepted anything yet) and adds it to `account_of`.
fn create_accounts<C: BackendConnection>(
    c: &mut C,
    to_invite: &[Candidate],
    account_of: &mut AccountOf,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let mut new_accounts: Vec<NewAccount<'_>> = to_invite
        .iter()
        .map(|candidate| &candidate.invitee)
        .filter(|i| !account_of.contains_key(i.email.as_str()))
        .map(|i| NewAccount {
            email: i.email.as_str(),
            activated_at: None,
            created_at: now,
        })
        .collect();
    // Concurrent imports that share people lock the same unique keys; taking them in one
    // global order (email, then account id) keeps two of them from deadlocking.
    new_accounts.sort_unstable_by(|a, b| a.email.cmp(b.email));
    for part in new_accounts.chunks(STATEMENT_ROWS) {
        c.execute(
            diesel::insert_into(accounts::table)
                .values(part)
                .on_conflict(accounts::email)
                .do_nothing(),
        )?;
    }
    // An insert that meets a conflict (another import created the account meanwhile) returns
    // nothing, so every id is read back.
    let created: Vec<&str> = new_accounts.iter().map(|a| a.email).collect();
    load_accounts(c, &created, account_of)
}

/// Inserts a membership for each person to invite; account id → member id of those inserted (a
/// conflict means another import invited the person meanwhile).
fn insert_members<C: BackendConnection>(
    c: &mut C,
    ctx: &ImportContext,
    to_invite: &[Candidate],
    account_of: &AccountOf,
    now: NaiveDateTime,
) -> QueryResult<HashMap<AccountId, MemberId>> {
    let mut new_members: Vec<NewMember<'_>> = to_invite
        .iter()
        .map(|candidate| NewMember::new(ctx, &candidate.invitee, account_of, now))
        .collect();
    // In account id order, for the reason the accounts are inserted in email order.
    new_members.sort_unstable_by_key(|m| m.account_id);
    let mut member_of = HashMap::new();
    for part in new_members.chunks(STATEMENT_ROWS) {
        let inserted: Vec<(AccountId, MemberId)> = c.load(
            diesel::insert_into(members::table)
                .values(part)
                .on_conflict((members::workspace_id, members::account_id))
                .do_nothing()
                .returning((members::account_id, members::id)),
        )?;
        member_of.extend(inserted);
    }
    Ok(member_of)
}

/// Adds the new members to the groups their rows name (a pair named twice is inserted once).
fn insert_groups<C: BackendConnection>(
    c: &mut C,
    memberships: Vec<(MemberId, GroupId)>,
) -> QueryResult<()> {
    let unique: HashSet<(MemberId, GroupId)> = memberships.into_iter().collect();
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
        c.execute(
            diesel::insert_into(member_groups::table)
                .values(part)
                .on_conflict_do_nothing(),
        )?;
    }
    Ok(())
}

/// Inserts one invitation per new member; a pending delivery for each, to insert. The link's
/// token is minted when the email is actually sent.
fn insert_invitations<C: BackendConnection>(
    c: &mut C,
    import: ImportId,
    members: &[MemberId],
    now: NaiveDateTime,
) -> QueryResult<Vec<NewDelivery>> {
    let invitation_rows: Vec<_> = members
        .iter()
        .map(|m| {
            (
                invitations::member_id.eq(*m),
                invitations::created_at.eq(now),
                invitations::cause.eq(InvitationCause::Import),
            )
        })
        .collect();
    let mut new_deliveries = Vec::with_capacity(members.len());
    for part in invitation_rows.chunks(STATEMENT_ROWS) {
        let created: Vec<(InvitationId, MemberId)> = c.load(
            diesel::insert_into(invitations::table)
                .values(part)
                .returning((invitations::id, invitations::member_id)),
        )?;
        new_deliveries.extend(
            created
                .into_iter()
                .map(|(invitation_id, member_id)| NewDelivery {
                    invitation_id,
                    member_id,
                    import_id: Some(import),
                    state: DeliveryState::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    created_at: now,
                }),
        );
    }
    Ok(new_deliveries)
}

/// Inserts the pending deliveries and counts them in the import's tallies.
fn insert_deliveries<C: BackendConnection>(
    c: &mut C,
    import: ImportId,
    new_deliveries: &[NewDelivery],
) -> QueryResult<()> {
    for part in new_deliveries.chunks(STATEMENT_ROWS) {
        c.execute(diesel::insert_into(deliveries::table).values(part))?;
    }
    let unsent = Tally::of(DeliveryState::Pending, new_deliveries.len() as i64);
    add_tally(c, import, unsent)?;
    Ok(())
}

/// A `member.invited` event for each new member, for the workspace's webhooks.
fn announce_invited<C: BackendConnection>(
    c: &mut C,
    ctx: &ImportContext,
    members: &[MemberId],
) -> QueryResult<()> {
    let mut extra = serde_json::Map::new();
    extra.insert("import_id".into(), serde_json::json!(ctx.import_id));
    let event = EventType::MemberInvited;
    webhooks::enqueue_members(c, ctx.workspace_id, event, members, &extra)
}

/// Writes every row's outcome.
fn record_outcomes<C: BackendConnection>(c: &mut C, results: &[NewRowResult]) -> QueryResult<()> {
    for part in results.chunks(STATEMENT_ROWS) {
        c.execute(diesel::insert_into(import_rows::table).values(part))?;
    }
    Ok(())
}

/// Adds the chunk's counts to the import's and moves its checkpoint past the chunk.
fn advance_checkpoint<C: BackendConnection>(
    c: &mut C,
    import: ImportId,
    outcomes: &Outcomes,
    checkpoint: &Checkpoint,
) -> QueryResult<()> {
    let summary = &outcomes.summary;
    c.execute(diesel::update(imports::table.find(import)).set((
        imports::rows_processed.eq(imports::rows_processed + outcomes.results.len() as i64),
        imports::rows_invited.eq(imports::rows_invited + summary.invited as i64),
        imports::rows_skipped.eq(imports::rows_skipped + summary.skipped as i64),
        imports::rows_invalid.eq(imports::rows_invalid + summary.invalid as i64),
        imports::checkpoint_offset.eq(checkpoint.offset),
        imports::checkpoint_row.eq(checkpoint.next_row),
    )))?;
    Ok(())
}

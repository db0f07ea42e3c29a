//! Imports: the stored upload, its status and counters, and its per-row results.

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::backend::BackendConnection;
use crate::db::schema::{deliveries, import_chunks, import_rows, imports, workers};
use crate::ids::{AccountId, ImportId, MemberId, WorkerId, WorkspaceId};
use crate::status::{DeliveryState, ImportStatus, RowOutcome};
use crate::store::audit::{Action, Actor, Target, record_on};
use crate::store::invitations::invitations_of;
use crate::store::webhooks;
use crate::store::{now, tallies};
use crate::webhooks::EventType;
use crate::{on_conn, write_transaction};

/// Size of the pieces an upload is stored in; every piece but the last is exactly this long, so a
/// byte offset maps to a piece without an index.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// An import row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = imports, check_for_backend(diesel::sqlite::Sqlite))]
pub struct Import {
    /// Primary key.
    pub id: ImportId,
    /// Owning workspace.
    pub workspace_id: WorkspaceId,
    /// The admin who uploaded it (the inviter).
    pub created_by: AccountId,
    /// The uploaded file's name.
    pub file_name: String,
    /// The uploaded file's size in bytes.
    pub file_size: i64,
    /// The client's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// Where it is in its lifecycle.
    pub status: ImportStatus,
    /// Why a failed import failed.
    pub error: Option<String>,
    /// File-level notes (unknown columns), one per line.
    pub warnings: Option<String>,
    /// Data rows in the file (known once the worker has counted them).
    pub rows_total: i64,
    /// Rows with an outcome so far.
    pub rows_processed: i64,
    /// Rows that created an invitation.
    pub rows_invited: i64,
    /// Rows skipped (already a member, duplicate…).
    pub rows_skipped: i64,
    /// Rows that failed validation.
    pub rows_invalid: i64,
    /// Byte offset of the next unprocessed record.
    pub checkpoint_offset: i64,
    /// Spreadsheet row number of the next unprocessed record.
    pub checkpoint_row: i64,
    /// Until when the processing worker holds the import.
    pub lease_until: Option<NaiveDateTime>,
    /// When a sweeper last re-enqueued it.
    pub requeued_at: Option<NaiveDateTime>,
    /// Upload time.
    pub created_at: NaiveDateTime,
    /// When a worker first started it.
    pub started_at: Option<NaiveDateTime>,
    /// When it completed or failed.
    pub finished_at: Option<NaiveDateTime>,
    /// The run holding it, while one does.
    pub claim: Option<i64>,
    /// Validate and report only: no member, invitation or email.
    pub dry_run: bool,
    /// When its stored file was deleted, `UPLOAD_RETENTION` after it finished.
    pub upload_deleted_at: Option<NaiveDateTime>,
}

/// What an upload asks to store.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// Target workspace.
    pub workspace_id: WorkspaceId,
    /// Uploading admin.
    pub created_by: AccountId,
    /// File name as uploaded.
    pub file_name: String,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// File-level notes for the admin (unknown columns, the encoding assumed), one per line.
    pub warnings: Option<String>,
    /// Validate and report only.
    pub dry_run: bool,
}

/// Result of storing an upload.
#[derive(Debug)]
pub enum Stored {
    /// A new import, to be enqueued.
    Created(Import),
    /// The `Idempotency-Key` was used before: the earlier import.
    Existing(Import),
}

/// How many of the workspace's imports are queued or processing.
pub fn in_flight(conn: &mut DbConn, workspace: WorkspaceId) -> QueryResult<i64> {
    let open = [ImportStatus::Queued, ImportStatus::Processing];
    on_conn!(conn, |c| {
        imports::table
            .filter(imports::workspace_id.eq(workspace))
            .filter(imports::status.eq_any(open))
            .count()
            .get_result(c)
    })
}

/// Finds the import an `Idempotency-Key` created earlier.
pub fn find_by_idempotency_key(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    key: &str,
) -> QueryResult<Option<Import>> {
    on_conn!(conn, |c| {
        imports::table
            .filter(imports::workspace_id.eq(workspace))
            .filter(imports::idempotency_key.eq(key))
            .select(Import::as_select())
            .first(c)
            .optional()
    })
}

/// Stores an upload and its file in one transaction, reading `file` in [`CHUNK_BYTES`] pieces.
pub fn store_upload(
    conn: &mut DbConn,
    upload: &NewUpload,
    file: &mut dyn Read,
    file_size: u64,
) -> anyhow::Result<Stored> {
    conn.transaction(|conn| {
        let created = on_conn!(&mut *conn, |c| {
            diesel::insert_into(imports::table)
                .values((
                    imports::workspace_id.eq(upload.workspace_id),
                    imports::created_by.eq(upload.created_by),
                    imports::file_name.eq(&upload.file_name),
                    imports::file_size.eq(file_size as i64),
                    imports::idempotency_key.eq(&upload.idempotency_key),
                    imports::status.eq(ImportStatus::Queued),
                    imports::warnings.eq(&upload.warnings),
                    imports::dry_run.eq(upload.dry_run),
                    imports::created_at.eq(now()),
                ))
                .on_conflict((imports::workspace_id, imports::idempotency_key))
                .do_nothing()
                .returning(Import::as_returning())
                .get_result(c)
                .optional()
        })?;
        let Some(import) = created else {
            let key = upload.idempotency_key.as_deref().unwrap_or_default();
            let existing = find_by_idempotency_key(conn, upload.workspace_id, key)?
                .ok_or_else(|| anyhow::anyhow!("idempotency conflict without a row"))?;
            return Ok(Stored::Existing(existing));
        };
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut seq = 0i32;
        loop {
            let n = read_full(file, &mut buf)?;
            if n == 0 {
                break;
            }
            on_conn!(&mut *conn, |c| {
                diesel::insert_into(import_chunks::table)
                    .values((
                        import_chunks::import_id.eq(import.id),
                        import_chunks::seq.eq(seq),
                        import_chunks::data.eq(&buf[..n]),
                    ))
                    .execute(c)
            })?;
            seq += 1;
        }
        Ok(Stored::Created(import))
    })
}

/// Reads until `buf` is full or the input ends, so every stored piece but the last is full-size.
fn read_full(file: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// One stored piece of an upload.
pub fn read_chunk(conn: &mut DbConn, import: ImportId, seq: i32) -> QueryResult<Option<Vec<u8>>> {
    on_conn!(conn, |c| {
        import_chunks::table
            .filter(import_chunks::import_id.eq(import))
            .filter(import_chunks::seq.eq(seq))
            .select(import_chunks::data)
            .first(c)
            .optional()
    })
}

/// An import of a workspace (`None` when it belongs to another).
pub fn get(conn: &mut DbConn, workspace: WorkspaceId, id: ImportId) -> QueryResult<Option<Import>> {
    on_conn!(conn, |c| {
        imports::table
            .filter(imports::id.eq(id))
            .filter(imports::workspace_id.eq(workspace))
            .select(Import::as_select())
            .first(c)
            .optional()
    })
}

/// An import by id alone, for workers.
pub fn get_any(conn: &mut DbConn, id: ImportId) -> QueryResult<Option<Import>> {
    on_conn!(conn, |c| {
        imports::table
            .find(id)
            .select(Import::as_select())
            .first(c)
            .optional()
    })
}

/// The workspace's imports, newest first, `limit` at a time, before the id `before` if given.
pub fn list(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    before: Option<ImportId>,
    limit: i64,
) -> QueryResult<Vec<Import>> {
    on_conn!(conn, |c| {
        let mut query = imports::table
            .filter(imports::workspace_id.eq(workspace))
            .select(Import::as_select())
            .order(imports::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(imports::id.lt(before));
        }
        query.load(c)
    })
}

/// Takes the import for processing (first start or resume) under a lease and a new claim value
/// (in `Import::claim`) for the registered process `worker`, and returns it. `None` when it has
/// finished or another live worker holds it, so a repeated job does nothing.
pub fn begin_processing(
    conn: &mut DbConn,
    id: ImportId,
    lease: Duration,
    worker: Option<WorkerId>,
) -> QueryResult<Option<Import>> {
    let now = now();
    on_conn!(conn, |c| {
        c.transaction(|c| {
            let taken = diesel::update(imports::table.find(id))
                .filter(imports::status.eq_any([ImportStatus::Queued, ImportStatus::Processing]))
                .filter(
                    imports::lease_until
                        .is_null()
                        .or(imports::lease_until.lt(now)),
                )
                .set((
                    imports::status.eq(ImportStatus::Processing),
                    imports::lease_until.eq(Some(now + lease)),
                    imports::claim.eq(Some(rand::random::<i64>())),
                    imports::worker_id.eq(worker),
                ))
                .execute(c)?;
            if taken == 0 {
                return Ok(None);
            }
            diesel::update(imports::table.find(id))
                .filter(imports::started_at.is_null())
                .set(imports::started_at.eq(Some(now)))
                .execute(c)?;
            imports::table
                .find(id)
                .select(Import::as_select())
                .first(c)
                .optional()
        })
    })
}

/// Imports that need their job again, marked so that only one housekeeping re-enqueues each per
/// `lease`: those whose lease lapsed or was handed back (their worker died or stopped), those whose
/// job could not be enqueued at upload ([`mark_unqueued`]), and those still `queued` a lease after
/// upload (their job was lost, e.g. the queue restarted empty).
pub fn claim_stalled(conn: &mut DbConn, lease: Duration) -> QueryResult<Vec<ImportId>> {
    let now = now();
    let stale = now - lease;
    on_conn!(conn, |c| {
        diesel::update(
            imports::table
                .filter(
                    imports::status
                        .eq_any([ImportStatus::Processing, ImportStatus::Queued])
                        .and(imports::lease_until.lt(now))
                        .or(imports::status
                            .eq(ImportStatus::Queued)
                            .and(imports::created_at.lt(stale))),
                )
                .filter(
                    imports::requeued_at
                        .is_null()
                        .or(imports::requeued_at.lt(stale)),
                ),
        )
        .set(imports::requeued_at.eq(Some(now)))
        .returning(imports::id)
        .get_results(c)
    })
}

/// What handing back an import in progress writes: its lease ends now (so [`claim_stalled`]
/// enqueues it again and any worker resumes it at its checkpoint), and its claim and holder are
/// cleared, so the former holder's next checkpoint is fenced out.
///
/// A macro because the assignments' tuple has a type no one would write out, and both hand-backs
/// set the same columns.
macro_rules! handed_back {
    ($now:expr) => {
        (
            imports::lease_until.eq(Some($now)),
            imports::requeued_at.eq(None::<NaiveDateTime>),
            imports::claim.eq(None::<i64>),
            imports::worker_id.eq(None::<WorkerId>),
        )
    };
}

/// Hands back every import being processed by a process no longer registered (declared dead, see
/// [`workers::remove_dead`](crate::store::workers::remove_dead)).
pub fn hand_back_abandoned(conn: &mut DbConn) -> QueryResult<usize> {
    let now = now();
    on_conn!(conn, |c| {
        let registered = workers::table.filter(workers::id.nullable().eq(imports::worker_id));
        diesel::update(
            imports::table
                .filter(imports::status.eq(ImportStatus::Processing))
                .filter(imports::worker_id.is_not_null())
                .filter(diesel::dsl::not(diesel::dsl::exists(registered))),
        )
        .set(handed_back!(now))
        .execute(c)
    })
}

/// Hands back every import being processed, whoever holds it: only for a process that knows it
/// is the only one claiming (`serve` on the embedded stack, at start-up).
pub(crate) fn hand_back_all<C: BackendConnection>(
    c: &mut C,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    c.execute(
        diesel::update(imports::table.filter(imports::status.eq(ImportStatus::Processing)))
            .set(handed_back!(now)),
    )
}

/// Imports being processed now, by any worker (a gauge for operators).
pub fn processing_count(conn: &mut DbConn) -> QueryResult<i64> {
    on_conn!(conn, |c| {
        imports::table
            .filter(imports::status.eq(ImportStatus::Processing))
            .count()
            .get_result(c)
    })
}

/// Gives up the processing lease held under `claim` (shutdown, or a run cut short), so any worker
/// may resume the import now; a no-op when that claim no longer holds it.
pub fn release(conn: &mut DbConn, id: ImportId, claim: i64) -> QueryResult<()> {
    on_conn!(conn, |c| {
        diesel::update(imports::table.find(id))
            .filter(imports::claim.eq(claim))
            .set((
                imports::lease_until.eq(Some(now())),
                imports::requeued_at.eq(None::<NaiveDateTime>),
            ))
            .execute(c)
            .map(drop)
    })
}

/// Marks a stored import whose job could not be enqueued (the queue was down) as due for
/// housekeeping, which enqueues it as soon as the queue answers.
pub fn mark_unqueued(conn: &mut DbConn, id: ImportId) -> QueryResult<()> {
    on_conn!(conn, |c| {
        diesel::update(imports::table.find(id))
            .filter(imports::status.eq(ImportStatus::Queued))
            .set((
                imports::lease_until.eq(Some(now())),
                imports::requeued_at.eq(None::<NaiveDateTime>),
            ))
            .execute(c)
            .map(drop)
    })
}

/// Undoes [`claim_stalled`]'s mark for an import whose job could not be enqueued after all, so the
/// next housekeeping tries again.
pub fn unmark_requeued(conn: &mut DbConn, id: ImportId) -> QueryResult<()> {
    on_conn!(conn, |c| {
        diesel::update(imports::table.find(id))
            .set(imports::requeued_at.eq(None::<NaiveDateTime>))
            .execute(c)
            .map(drop)
    })
}

/// Records the number of data rows once counted.
pub fn set_total(conn: &mut DbConn, id: ImportId, total: i64) -> QueryResult<()> {
    on_conn!(conn, |c| {
        diesel::update(imports::table.find(id))
            .set(imports::rows_total.eq(total))
            .execute(c)
            .map(drop)
    })
}

/// Finishes an import that is still `processing`: `completed`, or `failed` with a file-level
/// error. One cancelled meanwhile stays `cancelled`.
pub fn finish(
    conn: &mut DbConn,
    id: ImportId,
    status: ImportStatus,
    error: Option<&str>,
) -> QueryResult<()> {
    write_transaction!(conn, |c| {
        let finished: Vec<WorkspaceId> = c.load(
            diesel::update(imports::table.find(id))
                .filter(imports::status.eq(ImportStatus::Processing))
                .set((
                    imports::status.eq(status),
                    imports::error.eq(error),
                    imports::finished_at.eq(Some(now())),
                    imports::lease_until.eq(None::<NaiveDateTime>),
                ))
                .returning(imports::workspace_id),
        )?;
        let Some(workspace) = finished.first() else {
            return Ok(());
        };
        let event = match status {
            ImportStatus::Failed => EventType::ImportFailed,
            _ => EventType::ImportCompleted,
        };
        let data = serde_json::json!({"import_id": id, "status": status});
        webhooks::enqueue(c, *workspace, event, data)
    })
}

/// Statuses of an import that is over: its stored file is no longer read.
const FINISHED: [ImportStatus; 3] = [
    ImportStatus::Completed,
    ImportStatus::Failed,
    ImportStatus::Cancelled,
];

/// What [`cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The import is `cancelled` now; this many unsent emails of it were cancelled.
    Cancelled {
        /// Its `pending` and `failed` emails, now `cancelled`.
        emails: i64,
    },
    /// It was cancelled before: nothing changed.
    AlreadyCancelled,
    /// No such import in the workspace.
    NotFound,
}

/// Cancels an import of `workspace`, in one transaction: it becomes `cancelled` and loses its
/// claim, so the run applying it stops before its next chunk (which checks the claim); its
/// unsent (`pending` or `failed`) emails become `cancelled`. Emails being sent (`sending`) finish.
/// A finished import keeps its `finished_at`.
pub fn cancel(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    id: ImportId,
) -> QueryResult<CancelOutcome> {
    let now = now();
    write_transaction!(conn, |c| {
        let status: Option<ImportStatus> = c
            .load(
                imports::table
                    .filter(imports::id.eq(id))
                    .filter(imports::workspace_id.eq(workspace))
                    .select(imports::status),
            )?
            .pop();
        let Some(status) = status else {
            return Ok(CancelOutcome::NotFound);
        };
        if status == ImportStatus::Cancelled {
            return Ok(CancelOutcome::AlreadyCancelled);
        }
        let stop = diesel::update(imports::table.find(id)).set((
            imports::status.eq(ImportStatus::Cancelled),
            imports::cancelled_at.eq(Some(now)),
            imports::claim.eq(None::<i64>),
            imports::lease_until.eq(None::<NaiveDateTime>),
        ));
        c.execute(stop)?;
        if !FINISHED.contains(&status) {
            let ended = imports::finished_at.eq(Some(now));
            c.execute(diesel::update(imports::table.find(id)).set(ended))?;
        }
        let emails = cancel_unsent(c, id)?;
        let data = serde_json::json!({
            "import_id": id,
            "status": ImportStatus::Cancelled,
            "cancelled_emails": emails,
        });
        webhooks::enqueue(c, workspace, EventType::ImportCancelled, data)?;
        Ok(CancelOutcome::Cancelled { emails })
    })
}

/// The imports cancelled at or after `since`, at most `limit` of them, latest first: what a send
/// engine reads every few seconds in case it missed a cancel's notice (docs/product.md, Imports).
pub fn cancelled_since(
    conn: &mut DbConn,
    since: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<ImportId>> {
    on_conn!(conn, |c| imports::table
        .filter(imports::cancelled_at.ge(since))
        .order(imports::cancelled_at.desc())
        .limit(limit)
        .select(imports::id)
        .load(c))
}

/// Cancels the import's `pending` and `failed` emails, taking them off its tallies.
fn cancel_unsent<C: BackendConnection>(c: &mut C, id: ImportId) -> QueryResult<i64> {
    let mut cancelled = 0;
    for state in [DeliveryState::Pending, DeliveryState::Failed] {
        let n = c.execute(
            diesel::update(
                deliveries::table
                    .filter(deliveries::import_id.eq(id))
                    .filter(deliveries::state.eq(state)),
            )
            .set(deliveries::state.eq(DeliveryState::Cancelled)),
        )? as i64;
        tallies::add_tally(
            c,
            id,
            tallies::Tally::moved(state, DeliveryState::Cancelled, n),
        )?;
        cancelled += n;
    }
    Ok(cancelled)
}

/// Deletes the stored files of up to `batch` imports that finished longer than `retention` ago,
/// oldest first, in one transaction: each import is marked `upload_deleted_at` and the deletion
/// recorded in its workspace's audit log (by the service itself, [`Actor::Operator`]). Counts and
/// per-row results stay. Returns how many files were deleted; fewer than `batch` means none is left.
///
/// Each import is marked by a conditional update first, so when several workers' housekeeping run
/// at once, each file is deleted, and its deletion recorded, once.
pub fn delete_expired_uploads(
    conn: &mut DbConn,
    retention: Duration,
    batch: i64,
) -> QueryResult<usize> {
    let now = now();
    let Some(cutoff) = chrono::TimeDelta::from_std(retention)
        .ok()
        .and_then(|r| now.checked_sub_signed(r))
    else {
        return Ok(0);
    };
    write_transaction!(conn, |c| {
        let expired: Vec<(ImportId, WorkspaceId)> = c.load(
            imports::table
                .filter(imports::status.eq_any(FINISHED))
                .filter(imports::finished_at.le(cutoff))
                .filter(imports::upload_deleted_at.is_null())
                .order(imports::finished_at)
                .select((imports::id, imports::workspace_id))
                .limit(batch),
        )?;
        let mut deleted = 0;
        for (import, workspace) in expired {
            if delete_upload(c, (import, workspace), now)? {
                deleted += 1;
            }
        }
        Ok(deleted)
    })
}

/// Marks the import's file deleted unless it is already, then deletes its pieces and records the
/// deletion; `false` when another run got there first.
fn delete_upload<C: BackendConnection>(
    c: &mut C,
    (import, workspace): (ImportId, WorkspaceId),
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let marked = c.execute(
        diesel::update(
            imports::table
                .filter(imports::id.eq(import))
                .filter(imports::upload_deleted_at.is_null()),
        )
        .set(imports::upload_deleted_at.eq(Some(now))),
    )?;
    if marked == 0 {
        return Ok(false);
    }
    c.execute(diesel::delete(
        import_chunks::table.filter(import_chunks::import_id.eq(import)),
    ))?;
    let target = Target::Import(import);
    record_on(c, workspace, Actor::Operator, Action::UploadDelete, target)?;
    Ok(true)
}

/// Emails of an import by delivery state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmailCounts {
    /// Waiting to be sent or retried (including those being sent).
    pub pending: i64,
    /// Accepted by the SMTP server.
    pub sent: i64,
    /// Failed permanently or out of retries.
    pub failed: i64,
    /// Sent, then reported undeliverable by a bounce.
    pub bounced: i64,
    /// Sent, then reported as abuse.
    pub complained: i64,
}

/// An import's emails by state.
pub fn email_counts(conn: &mut DbConn, id: ImportId) -> QueryResult<EmailCounts> {
    Ok(email_counts_of(conn, &[id])?
        .remove(&id)
        .unwrap_or_default())
}

/// The emails of several imports by state, from their tallies (a page of the import list).
pub fn email_counts_of(
    conn: &mut DbConn,
    ids: &[ImportId],
) -> QueryResult<HashMap<ImportId, EmailCounts>> {
    Ok(tallies::of(conn, ids)?
        .into_iter()
        .map(|(id, tally)| {
            let counts = EmailCounts {
                pending: tally.unsent,
                sent: tally.sent,
                failed: tally.failed,
                bounced: tally.bounced,
                complained: tally.complained,
            };
            (id, counts)
        })
        .collect())
}

/// One line of the results file.
#[derive(Debug, Clone)]
pub struct ResultRow {
    /// Spreadsheet row number.
    pub row: i64,
    /// The row's email (lower-cased), if it had one.
    pub email: Option<String>,
    /// What the import did with the row.
    pub outcome: RowOutcome,
    /// Why it was skipped or invalid.
    pub reason: Option<String>,
    /// The membership it created or matched.
    pub member_id: Option<MemberId>,
    /// The invitation email's state.
    pub email_status: Option<DeliveryState>,
    /// The last send error.
    pub error: Option<String>,
}

/// A row's stored outcome, the part of a [`ResultRow`] the import itself wrote.
#[derive(Queryable, Selectable)]
#[diesel(table_name = import_rows, check_for_backend(diesel::sqlite::Sqlite))]
struct RowResult {
    #[diesel(column_name = row_number)]
    row: i64,
    email: Option<String>,
    outcome: RowOutcome,
    reason: Option<String>,
    member_id: Option<MemberId>,
}

/// A page of the rows of an import whose outcome is one of `outcomes`, in row order after row
/// `after`: each row's number and reason (what the file of rows to fix carries).
pub fn rows_with_outcomes(
    conn: &mut DbConn,
    id: ImportId,
    outcomes: &[RowOutcome],
    after: i64,
    limit: i64,
) -> QueryResult<Vec<(i64, Option<String>)>> {
    on_conn!(conn, |c| import_rows::table
        .filter(import_rows::import_id.eq(id))
        .filter(import_rows::row_number.gt(after))
        .filter(import_rows::outcome.eq_any(outcomes))
        .order(import_rows::row_number)
        .limit(limit)
        .select((import_rows::row_number, import_rows::reason))
        .load(c))
}

/// A page of results in row order, after row `after`. The email columns are those of the latest
/// delivery of the row's member for this import: a resend adds a delivery, not a results line.
pub fn results_page(
    conn: &mut DbConn,
    id: ImportId,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<ResultRow>> {
    on_conn!(conn, |c| {
        let lines: Vec<RowResult> = import_rows::table
            .filter(import_rows::import_id.eq(id))
            .filter(import_rows::row_number.gt(after))
            .order(import_rows::row_number)
            .limit(limit)
            .select(RowResult::as_select())
            .load(c)?;
        let members: Vec<MemberId> = lines.iter().filter_map(|l| l.member_id).collect();
        // Ascending ids, so the last one seen per member is its latest email.
        let mut email_of: HashMap<MemberId, (DeliveryState, Option<String>)> = HashMap::new();
        for part in members.chunks(1000) {
            for (member, state, error) in deliveries::table
                .filter(deliveries::import_id.eq(id))
                .filter(deliveries::invitation_id.eq_any(invitations_of(part)))
                .order(deliveries::id)
                .select((
                    deliveries::member_id,
                    deliveries::state,
                    deliveries::last_error,
                ))
                .load::<(MemberId, DeliveryState, Option<String>)>(c)?
            {
                email_of.insert(member, (state, error));
            }
        }
        Ok(lines
            .into_iter()
            .map(|line| {
                let (email_status, error) = line
                    .member_id
                    .and_then(|m| email_of.get(&m).cloned())
                    .map_or((None, None), |(s, e)| (Some(s), e));
                ResultRow {
                    row: line.row,
                    email: line.email,
                    outcome: line.outcome,
                    reason: line.reason,
                    member_id: line.member_id,
                    email_status,
                    error,
                }
            })
            .collect())
    })
}

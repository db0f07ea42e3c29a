//! `ProcessImport`: streams a stored upload from its checkpoint, validates each row and applies the
//! rows a chunk at a time, waking the senders after each chunk.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use apalis::prelude::{BoxDynError, Data};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use invite_shared::db::Db;
use invite_shared::domain::header::{Column, Header, HeaderError};
use invite_shared::domain::invitee::{CsvRow, InvalidRow, NewInvitee, RowError};
use invite_shared::ids::{GroupId, ImportId};
use invite_shared::intake::records::{
    MAX_CELL_BYTES, MAX_ROW_BYTES, Oversize, Record, RecordReader,
};
use invite_shared::jobs::{ProcessImport, SendInvites};
use invite_shared::metrics as m;
use invite_shared::status::{ImportStatus, RowOutcome};
use invite_shared::store::groups;
use invite_shared::store::imports::{self, CHUNK_BYTES, Import};
use invite_shared::store::rows::{self, Checkpoint, ChunkSummary, ImportContext, RowInput};

use crate::Deps;
use crate::jobs::Busy;

/// Least time between two wake-ups of the senders by one import.
const WAKE_EVERY: Duration = Duration::from_secs(1);

/// The job handler.
#[tracing::instrument(skip_all, fields(import_id = %job.import_id))]
pub async fn handle(job: ProcessImport, deps: Data<Deps>) -> Result<(), BoxDynError> {
    let _busy = Busy::new(&deps.activity);
    process(job.import_id, &deps).await.map_err(|e| {
        tracing::error!(
            error = format!("{e:#}"),
            "import interrupted; it will resume"
        );
        e.into()
    })
}

/// Applies every remaining row of an import; a no-op when it has already finished.
pub async fn process(id: ImportId, deps: &Deps) -> anyhow::Result<()> {
    let lease = deps.settings.import_lease;
    let Some(worker) = deps.liveness.wait(&deps.shutdown).await else {
        return Ok(());
    };
    let Some(import) = deps
        .db
        .run(move |c| Ok(imports::begin_processing(c, id, lease, Some(worker))?))
        .await?
    else {
        tracing::debug!("import finished or held by another worker");
        return Ok(());
    };
    let mut lease = LeaseGuard::new(deps.db.clone(), &import, deps.settings.import_lease);
    let started = Instant::now();
    let result = apply_rows(&import, lease.claim, deps).await;
    let status = match result {
        Ok(()) => ImportStatus::Completed,
        Err(Failure::File(reason)) => {
            tracing::warn!(%reason, "import failed");
            deps.db
                .run(move |c| Ok(imports::finish(c, id, ImportStatus::Failed, Some(&reason))?))
                .await?;
            ImportStatus::Failed
        }
        Err(Failure::Transient(e)) => {
            // Hand the import over now rather than when the lease lapses (as soon as the database
            // answers): it resumes at its last checkpoint, here or on another worker.
            lease.hand_back();
            return Err(e);
        }
        Err(Failure::ShuttingDown) => {
            lease.release().await;
            tracing::info!("import paused for shutdown; it resumes at its checkpoint");
            return Ok(());
        }
        Err(Failure::LostLease) => {
            lease.disarm();
            log_lost_lease(id, deps).await;
            return Ok(());
        }
    };
    lease.disarm();
    if status == ImportStatus::Completed {
        deps.db
            .run(move |c| Ok(imports::finish(c, id, ImportStatus::Completed, None)?))
            .await?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "import completed"
        );
    }
    metrics::counter!(m::IMPORTS_TOTAL, "status" => status.as_str()).increment(1);
    metrics::histogram!(m::IMPORT_DURATION).record(started.elapsed().as_secs_f64());
    Ok(())
}

/// Says why a run lost its import: an admin cancelled it, or another worker took it over.
async fn log_lost_lease(id: ImportId, deps: &Deps) {
    let status = deps
        .db
        .run(move |c| Ok(imports::get_any(c, id)?.map(|i| i.status)))
        .await;
    if let Ok(Some(ImportStatus::Cancelled)) = status {
        tracing::info!("import cancelled: no more rows are applied");
    } else {
        tracing::warn!(
            "another worker took the import over (this run stalled past its lease, or this worker \
             was declared dead)"
        );
    }
}

/// Why an import run stopped early.
enum Failure {
    /// The file cannot be processed; retrying will not help.
    File(String),
    /// Something outside the file failed (database, queue); the job is retried and resumes.
    Transient(anyhow::Error),
    /// The process is stopping; the import was left at a checkpoint.
    ShuttingDown,
    /// Another worker holds the import now; this run applied nothing more.
    LostLease,
}

/// The import's lease while a run holds it. A run that ends early without finishing the import
/// gives the lease back so that the import resumes at once (from its checkpoint) instead of after
/// `IMPORT_LEASE`; that includes a run dropped mid-chunk, as apalis drops the jobs of a worker whose
/// queue failed. Fenced by the run's claim, so a late release never frees another worker's lease.
struct LeaseGuard {
    db: Db,
    id: ImportId,
    claim: i64,
    lease: Duration,
    armed: bool,
}

impl LeaseGuard {
    fn new(db: Db, import: &Import, lease: Duration) -> LeaseGuard {
        LeaseGuard {
            db,
            id: import.id,
            claim: import.claim.expect("begin_processing sets the claim"),
            lease,
            armed: true,
        }
    }

    /// Gives the lease back now (the process is stopping: one try, else it lapses).
    async fn release(&mut self) {
        self.armed = false;
        let (id, claim) = (self.id, self.claim);
        if let Err(e) = self
            .db
            .run(move |c| Ok(imports::release(c, id, claim)?))
            .await
        {
            tracing::warn!(
                error = format!("{e:#}"),
                "could not hand the import over; it resumes when its lease lapses"
            );
        }
    }

    /// Gives the lease back in the background, retrying while the database is down.
    fn hand_back(&mut self) {
        self.armed = false;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(hand_back(self.db.clone(), self.id, self.claim, self.lease));
        }
    }

    /// The run ended with the import finished (or lost): nothing to give back.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if self.armed {
            self.hand_back();
        }
    }
}

/// Releases the lease, retrying with backoff while the database is down, until it would have
/// lapsed anyway.
async fn hand_back(db: Db, id: ImportId, claim: i64, lease: Duration) {
    let started = Instant::now();
    let mut failures = 0;
    while let Err(e) = db.run(move |c| Ok(imports::release(c, id, claim)?)).await {
        failures += 1;
        if started.elapsed() >= lease {
            tracing::warn!(error = format!("{e:#}"), %id, "could not hand the import over; its lease has lapsed");
            return;
        }
        tokio::time::sleep(crate::runtime::backoff(failures)).await;
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Transient(e)
    }
}

async fn apply_rows(import: &Import, claim: i64, deps: &Deps) -> Result<(), Failure> {
    let id = import.id;
    let first = file_stream(deps.db.clone(), id, 0)
        .try_next()
        .await?
        .unwrap_or_default();
    let (header, delimiter) =
        Header::read(&first).map_err(|e: HeaderError| Failure::File(e.to_string()))?;

    check_total(import, delimiter, deps).await?;
    let (ctx, group_ids) = context(import, deps).await?;

    let start = import.checkpoint_offset;
    let first_row = if start == 0 {
        1
    } else {
        import.checkpoint_row as u64
    };
    let mut reader = RecordReader::new(delimiter, first_row, start == 0);
    let mut pieces = file_stream(deps.db.clone(), id, start);
    let mut records = Vec::new();
    // The header row was checked already.
    let mut header_pending = start == 0;
    let mut chunk = Chunk::new(deps.settings.import_chunk_rows);
    let mut last_wake: Option<Instant> = None;
    // Planner statistics are refreshed as this run's rows double: after 1, 2, 4, … chunks.
    let (mut applied, mut analyze_at) = (0u64, chunk.capacity as u64);
    loop {
        let piece = pieces.try_next().await?;
        match &piece {
            Some(bytes) => reader.feed(bytes, &mut records),
            None => reader.finish(&mut records),
        }
        for record in records.drain(..) {
            if std::mem::take(&mut header_pending) {
                continue;
            }
            chunk.push(parse_row(&record, &header, &group_ids), &record);
            if !chunk.is_full() {
                continue;
            }
            let summary = apply(&ctx, &mut chunk, start, claim, deps).await?;
            applied += summary.rows;
            if applied >= analyze_at {
                analyze_at = applied * 2;
                refresh_statistics(&deps.db).await;
            }
            if summary.invited > 0 && !import.dry_run {
                wake_senders(id, deps, &mut last_wake).await;
            }
            if deps.shutdown.is_cancelled() {
                return Err(Failure::ShuttingDown);
            }
        }
        if piece.is_none() {
            if !chunk.rows.is_empty() {
                let summary = apply(&ctx, &mut chunk, start, claim, deps).await?;
                if summary.invited > 0 && !import.dry_run {
                    wake_senders(id, deps, &mut last_wake).await;
                }
            }
            return Ok(());
        }
    }
}

/// On the first run, counts the data rows and fails a file over `MAX_ROWS` before any row is
/// applied.
async fn check_total(import: &Import, delimiter: u8, deps: &Deps) -> Result<(), Failure> {
    if import.rows_total != 0 {
        return Ok(());
    }
    let id = import.id;
    let total = count_rows(deps.db.clone(), id, delimiter).await?;
    let limit = deps.settings.max_rows;
    if total as u64 > limit {
        return Err(Failure::File(format!(
            "The file has {total} data rows; the most one import may have is {limit} (MAX_ROWS). Split the file and upload the parts."
        )));
    }
    deps.db
        .run(move |c| Ok(imports::set_total(c, id, total)?))
        .await?;
    Ok(())
}

/// What every chunk of the import is applied with, and the workspace's groups by name.
async fn context(
    import: &Import,
    deps: &Deps,
) -> Result<(ImportContext, HashMap<String, GroupId>), Failure> {
    let workspace = import.workspace_id;
    let group_ids = deps
        .db
        .run(move |c| Ok(groups::by_name(c, workspace)?))
        .await?;
    let ctx = ImportContext {
        import_id: import.id,
        workspace_id: workspace,
        invited_by: import.created_by,
        edition: deps.settings.edition,
        dry_run: import.dry_run,
    };
    Ok((ctx, group_ids))
}

/// The rows read since the last checkpoint, and where the next one would be.
struct Chunk {
    rows: Vec<RowInput>,
    capacity: usize,
    /// Offset (from where this run started reading) just after the last row's record.
    end: u64,
    /// Row number of the line after the last row.
    next_row: u64,
}

impl Chunk {
    fn new(capacity: usize) -> Chunk {
        Chunk {
            rows: Vec::with_capacity(capacity),
            capacity,
            end: 0,
            next_row: 0,
        }
    }

    fn push(&mut self, row: RowInput, record: &Record) {
        self.rows.push(row);
        self.end = record.end;
        self.next_row = record.row + 1;
    }

    fn is_full(&self) -> bool {
        self.rows.len() >= self.capacity
    }
}

/// What one applied chunk did, for the loop's bookkeeping.
struct Applied {
    rows: u64,
    invited: u64,
}

/// Applies the chunk's rows with the checkpoint after them, and empties it.
async fn apply(
    ctx: &ImportContext,
    chunk: &mut Chunk,
    start: i64,
    claim: i64,
    deps: &Deps,
) -> Result<Applied, Failure> {
    let checkpoint = Checkpoint {
        offset: start + chunk.end as i64,
        next_row: chunk.next_row as i64,
        lease_until: invite_shared::store::now() + deps.settings.import_lease,
        claim,
    };
    let rows = std::mem::replace(&mut chunk.rows, Vec::with_capacity(chunk.capacity));
    let count = rows.len() as u64;
    let ctx = ctx.clone();
    let summary = deps
        .db
        .run(move |c| Ok(rows::apply_chunk(c, &ctx, rows, checkpoint)?))
        .await?
        .ok_or(Failure::LostLease)?;
    record_metrics(&summary);
    Ok(Applied {
        rows: count,
        invited: summary.invited,
    })
}

/// Starts this process's sender at once, and the other workers' through the queue at most once
/// every [`WAKE_EVERY`]: a job drains everything due, so more would only add queue entries, and
/// losing one only delays the emails until the next sweep.
async fn wake_senders(id: ImportId, deps: &Deps, last_wake: &mut Option<Instant>) {
    deps.wake.notify_one();
    if last_wake.is_some_and(|t| t.elapsed() < WAKE_EVERY) {
        return;
    }
    *last_wake = Some(Instant::now());
    let wake = SendInvites {
        import_id: Some(id),
    };
    if let Err(e) = deps.queue.push_send(wake).await {
        tracing::warn!(error = format!("{e:#}"), "could not wake the senders");
    }
}

/// See [`rows::refresh_statistics`]; a failure costs only speed.
async fn refresh_statistics(db: &Db) {
    if let Err(e) = db.run(|c| Ok(rows::refresh_statistics(c)?)).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "could not refresh planner statistics"
        );
    }
}

/// Turns one record into a row to apply, resolving group names to the workspace's groups.
fn parse_row(record: &Record, header: &Header, group_ids: &HashMap<String, GroupId>) -> RowInput {
    let row = record.row;
    if let Some(oversize) = record.oversize {
        return RowInput::Invalid(oversized(row, header, &record.fields, oversize));
    }
    let invitee = match NewInvitee::try_from(CsvRow {
        row,
        header,
        record: &record.fields,
    }) {
        Ok(invitee) => invitee,
        Err(invalid) => return RowInput::Invalid(invalid),
    };
    let mut ids = Vec::with_capacity(invitee.groups.len());
    let mut unknown = Vec::new();
    for name in &invitee.groups {
        match group_ids.get(&name.to_lowercase()) {
            Some(id) => ids.push(*id),
            None => unknown.push(name.as_str()),
        }
    }
    if unknown.is_empty() {
        RowInput::Valid {
            invitee,
            group_ids: ids,
        }
    } else {
        RowInput::Invalid(InvalidRow {
            row,
            email: Some(invitee.email.as_str().to_owned()),
            errors: vec![RowError {
                field: "groups",
                message: format!("unknown group(s): {}", unknown.join(", ")),
            }],
        })
    }
}

/// The outcome of a row that broke a size limit: only part of it was read, so it is not validated.
fn oversized(
    row: u64,
    header: &Header,
    fields: &csv::ByteRecord,
    oversize: Oversize,
) -> InvalidRow {
    let (field, message) = match oversize {
        Oversize::Cell { column } => {
            let known = Column::ALL
                .into_iter()
                .find(|c| header.index(*c) == Some(column));
            let message = format!(
                "the cell in column {} is longer than {} KiB",
                column + 1,
                MAX_CELL_BYTES / 1024
            );
            (known.map_or("row", Column::field), message)
        }
        Oversize::Row => (
            "row",
            format!("the row is longer than {} MiB", MAX_ROW_BYTES >> 20),
        ),
    };
    let email_cell = header
        .index(Column::Email)
        .filter(|i| oversize != (Oversize::Cell { column: *i }))
        .and_then(|i| fields.get(i));
    let email = email_cell
        .map(|cell| String::from_utf8_lossy(cell).trim().to_lowercase())
        .filter(|e| !e.is_empty() && e.len() <= 320);
    InvalidRow {
        row,
        email,
        errors: vec![RowError { field, message }],
    }
}

fn record_metrics(summary: &ChunkSummary) {
    for (outcome, n) in [
        (RowOutcome::Invited, summary.invited),
        (RowOutcome::Skipped, summary.skipped),
        (RowOutcome::Invalid, summary.invalid),
    ] {
        metrics::counter!(m::ROWS_TOTAL, "outcome" => outcome.as_str()).increment(n);
    }
    for field in &summary.invalid_fields {
        metrics::counter!(m::ROW_ERRORS_TOTAL, "field" => *field).increment(1);
    }
}

/// Counts the data rows (records after the header) of a stored file, streaming it.
async fn count_rows(db: Db, id: ImportId, delimiter: u8) -> Result<i64, Failure> {
    let mut reader = RecordReader::new(delimiter, 1, true);
    let mut pieces = file_stream(db, id, 0);
    let mut records = Vec::new();
    let mut n = 0i64;
    while let Some(piece) = pieces.try_next().await? {
        reader.feed(&piece, &mut records);
        n += records.len() as i64;
        records.clear();
    }
    reader.finish(&mut records);
    n += records.len() as i64;
    Ok((n - 1).max(0))
}

/// The stored file from byte `offset` on, one stored piece at a time.
fn file_stream(db: Db, id: ImportId, offset: i64) -> BoxStream<'static, anyhow::Result<Bytes>> {
    let first_seq = (offset as usize / CHUNK_BYTES) as i32;
    let skip = offset as usize % CHUNK_BYTES;
    futures::stream::try_unfold((first_seq, skip), move |(seq, skip)| {
        let db = db.clone();
        async move {
            let chunk = db
                .run(move |c| Ok(imports::read_chunk(c, id, seq)?))
                .await
                .with_context(|| format!("reading piece {seq} of the stored file"))?;
            Ok(chunk.map(|data| {
                let bytes = Bytes::from(data);
                let bytes = bytes.slice(skip.min(bytes.len())..);
                (bytes, (seq + 1, 0))
            }))
        }
    })
    .boxed()
}

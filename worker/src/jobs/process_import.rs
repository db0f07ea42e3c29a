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
use invite_shared::domain::header::{Header, HeaderError};
use invite_shared::domain::invitee::{CsvRow, InvalidRow, NewInvitee, RowError};
use invite_shared::ids::{AccountId, ImportId, WorkspaceId};
use invite_shared::jobs::{ProcessImport, SendInvites};
use invite_shared::metrics as m;
use invite_shared::status::{ImportStatus, RowOutcome};
use invite_shared::store::groups;
use invite_shared::store::imports::{self, CHUNK_BYTES, Import};
use invite_shared::store::rows::{self, Checkpoint, ChunkSummary, ImportContext, RowInput};
use tokio_util::io::StreamReader;

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
    let Some(import) = deps
        .db
        .run(move |c| Ok(imports::begin_processing(c, id, lease)?))
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
            tracing::warn!("another worker took the import over (this run stalled past its lease)");
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
            id: ImportId(import.id),
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
    let id = ImportId(import.id);
    let first = file_stream(deps.db.clone(), id, 0)
        .try_next()
        .await?
        .unwrap_or_default();
    let (header, delimiter) =
        Header::read(&first).map_err(|e: HeaderError| Failure::File(e.to_string()))?;

    if import.rows_total == 0 {
        let total = count_rows(deps.db.clone(), id, delimiter).await?;
        deps.db
            .run(move |c| Ok(imports::set_total(c, id, total)?))
            .await?;
    }

    let workspace = WorkspaceId(import.workspace_id);
    let group_ids = deps
        .db
        .run(move |c| Ok(groups::by_name(c, workspace)?))
        .await?;
    let ctx = ImportContext {
        import_id: id,
        workspace_id: workspace,
        invited_by: AccountId(import.created_by),
        edition: deps.settings.edition,
    };

    let start = import.checkpoint_offset;
    let mut reader = csv_reader(deps.db.clone(), id, start, delimiter);
    let mut record = csv_async::ByteRecord::new();
    if start == 0 {
        // The header row was checked already.
        reader
            .read_byte_record(&mut record)
            .await
            .map_err(read_error)?;
    }
    let mut next_row = import.checkpoint_row.max(2) as u64;
    let chunk_rows = deps.settings.import_chunk_rows;
    let mut batch = Vec::with_capacity(chunk_rows);
    let mut last_wake: Option<Instant> = None;
    // Planner statistics are refreshed as this run's rows double: after 1, 2, 4, … chunks.
    let (mut applied, mut analyze_at) = (0u64, chunk_rows as u64);
    loop {
        let more = reader
            .read_byte_record(&mut record)
            .await
            .map_err(read_error)?;
        if more {
            let fields = csv::ByteRecord::from_iter(record.iter());
            batch.push(parse_row(next_row, &header, &fields, &group_ids));
            next_row += 1;
        }
        if batch.len() == chunk_rows || (!more && !batch.is_empty()) {
            let checkpoint = Checkpoint {
                offset: start + reader.position().byte() as i64,
                next_row: next_row as i64,
                lease_until: invite_shared::store::now() + deps.settings.import_lease,
                claim,
            };
            let rows = std::mem::replace(&mut batch, Vec::with_capacity(chunk_rows));
            let ctx = ctx.clone();
            let summary = deps
                .db
                .run(move |c| Ok(rows::apply_chunk(c, &ctx, rows, checkpoint)?))
                .await?
                .ok_or(Failure::LostLease)?;
            record_metrics(&summary);
            applied += chunk_rows as u64;
            if applied >= analyze_at {
                analyze_at = applied * 2;
                refresh_statistics(&deps.db).await;
            }
            if summary.invited > 0 {
                wake_senders(id, deps, &mut last_wake).await;
            }
        }
        if !more {
            return Ok(());
        }
        if batch.is_empty() && deps.shutdown.is_cancelled() {
            return Err(Failure::ShuttingDown);
        }
    }
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

fn read_error(e: csv_async::Error) -> Failure {
    match e.kind() {
        csv_async::ErrorKind::Io(_) => {
            Failure::Transient(anyhow::Error::new(e).context("reading the stored file"))
        }
        _ => Failure::File(format!("the file could not be read as CSV: {e}")),
    }
}

/// Turns one record into a row to apply, resolving group names to the workspace's groups.
fn parse_row(
    row: u64,
    header: &Header,
    record: &csv::ByteRecord,
    group_ids: &HashMap<String, i64>,
) -> RowInput {
    let invitee = match NewInvitee::try_from(CsvRow {
        row,
        header,
        record,
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
    let mut reader = csv_reader(db, id, 0, delimiter);
    let mut record = csv_async::ByteRecord::new();
    let mut n = 0i64;
    while reader
        .read_byte_record(&mut record)
        .await
        .map_err(read_error)?
    {
        n += 1;
    }
    Ok((n - 1).max(0))
}

fn csv_reader(
    db: Db,
    id: ImportId,
    offset: i64,
    delimiter: u8,
) -> csv_async::AsyncReader<impl tokio::io::AsyncRead + Unpin + Send> {
    let stream = file_stream(db, id, offset).map_err(std::io::Error::other);
    csv_async::AsyncReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .create_reader(StreamReader::new(stream))
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

//! Creating an import from a prepared file: stored with its file in one transaction, recorded in
//! the audit log, then enqueued; and cancelling one. The routes `POST …/imports` and
//! `POST …/imports/{id}/cancel` and the commands `invite-api import` and `invite-api cancel` call
//! these.

use crate::db::Db;
use crate::ids::{AccountId, ImportId, WorkspaceId};
use crate::intake::Prepared;
use crate::jobs::ProcessImport;
use crate::metrics as m;
use crate::queue::JobQueue;
use crate::service::audit::record;
use crate::service::{Result, Step as _};
use crate::status::ImportStatus;
use crate::store::audit::{Action, Actor, Target};
use crate::store::imports::{self, CancelOutcome, NewUpload, Stored};
use crate::store::storable;

/// A checked upload, ready to store.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Target workspace.
    pub workspace_id: WorkspaceId,
    /// The uploading admin (the inviter).
    pub created_by: AccountId,
    /// The file's name as uploaded.
    pub file_name: String,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
    /// Validate and report only.
    pub dry_run: bool,
    /// Who the audit log names as the uploader.
    pub actor: Actor,
}

/// Stores the file with its import in one transaction, then enqueues it. If the queue is down the
/// stored import is kept (the caller still answers that it is accepted) and marked for
/// housekeeping, which enqueues it once the queue answers: the database is the ledger, the queue
/// only a signal.
#[tracing::instrument(skip_all, fields(workspace_id = %upload.workspace_id))]
pub async fn create(
    db: &Db,
    queue: &JobQueue,
    upload: Upload,
    prepared: Prepared,
) -> Result<Stored> {
    let Prepared {
        file,
        size,
        header,
        mut notes,
    } = prepared;
    if !header.unknown.is_empty() {
        notes.push(format!(
            "ignored unknown columns: {}",
            header.unknown.join(", ")
        ));
    }
    let new = NewUpload {
        workspace_id: upload.workspace_id,
        created_by: upload.created_by,
        file_name: storable(upload.file_name),
        idempotency_key: upload.idempotency_key,
        warnings: (!notes.is_empty()).then(|| storable(notes.join("\n"))),
        dry_run: upload.dry_run,
    };
    let stored = db
        .run(move |c| {
            let mut file = file;
            imports::store_upload(c, &new, &mut file, size)
        })
        .await
        .step("storing the import")?;
    let Stored::Created(import) = &stored else {
        return Ok(stored);
    };
    let id = import.id;
    let action = if upload.dry_run {
        Action::DryRun
    } else {
        Action::Upload
    };
    record(
        db,
        (upload.workspace_id, upload.actor),
        action,
        Target::Import(id),
    )
    .await;
    metrics::histogram!(m::UPLOAD_BYTES).record(size as f64);
    if let Err(e) = queue.push_import(ProcessImport { import_id: id }).await {
        tracing::warn!(
            error = format!("{e:#}"),
            import_id = %id,
            "import stored; the queue is unavailable, so housekeeping enqueues it once it answers"
        );
        db.run(move |c| Ok(imports::mark_unqueued(c, id)?))
            .await
            .step("marking the import for housekeeping to enqueue")?;
        return Ok(stored);
    }
    tracing::info!(import_id = %id, bytes = size, "import stored and enqueued");
    Ok(stored)
}

/// Cancels an import of `workspace` (see [`imports::cancel`]); a cancellation is audited and
/// counted in `invites_imports_total{status="cancelled"}`, a repeat changes nothing in the
/// database. Either way every send engine is told (see [`crate::cancels`]) before this returns, so
/// that the emails they claimed ahead are given back rather than sent; a repeat tells them again,
/// in case the first notice could not be published.
#[tracing::instrument(skip_all, fields(%workspace, import_id = %id))]
pub async fn cancel(
    db: &Db,
    queue: &JobQueue,
    (workspace, actor): (WorkspaceId, Actor),
    id: ImportId,
) -> Result<CancelOutcome> {
    let outcome = db
        .run(move |c| Ok(imports::cancel(c, workspace, id)?))
        .await
        .step("cancelling the import")?;
    if outcome == CancelOutcome::NotFound {
        return Ok(outcome);
    }
    if let Err(e) = queue.announce_cancel(id).await {
        tracing::warn!(
            error = format!("{e:#}"),
            "the cancel notice could not be published; the send engines read the cancel from the database within seconds"
        );
    }
    if let CancelOutcome::Cancelled { emails } = outcome {
        tracing::info!(emails_cancelled = emails, "import cancelled");
        let status = ImportStatus::Cancelled.as_str();
        metrics::counter!(m::IMPORTS_TOTAL, "status" => status).increment(1);
        record(
            db,
            (workspace, actor),
            Action::ImportCancel,
            Target::Import(id),
        )
        .await;
    }
    Ok(outcome)
}

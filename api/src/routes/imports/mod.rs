//! Imports: upload, progress, list, per-row results, retry of failed sends, cancel and the CSV
//! template.

pub mod cancel;
pub mod create;
pub mod get;
pub mod list;
pub mod results;
pub mod retry;
pub mod template;

use chrono::NaiveDateTime;
use invite_shared::db::{Db, DbConn};
use invite_shared::ids::{ImportId, WorkspaceId};
use invite_shared::status::ImportStatus;
use invite_shared::store::imports::{self, EmailCounts, Import};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// An import as the API shows it (`docs/product.md`, "Imports").
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Import)]
pub struct ImportJson {
    /// Its id.
    pub id: i64,
    /// `queued` → `processing` → `completed`, or `failed` (file-level, see `error`), or
    /// `cancelled` by an admin.
    #[schema(value_type = ImportStatus)]
    pub status: String,
    /// Validates and reports only: writes no member and sends nothing.
    pub dry_run: bool,
    /// The uploaded file's name.
    pub file_name: String,
    /// The stored file's size in bytes (UTF-8 CSV, after transcoding or converting a workbook).
    pub file_size: i64,
    /// Upload time.
    pub created_at: Timestamp,
    /// When a worker first started it.
    pub started_at: Option<Timestamp>,
    /// When it completed, failed or was cancelled.
    pub finished_at: Option<Timestamp>,
    /// When its stored file was deleted, `UPLOAD_RETENTION` after it finished; its counts and
    /// results stay.
    pub upload_deleted_at: Option<Timestamp>,
    /// Why a failed import failed.
    pub error: Option<String>,
    /// File-level notes, e.g. the unknown columns that were ignored.
    pub warnings: Vec<String>,
    /// Row counters.
    pub rows: RowCounts,
    /// The states of the import's invitation emails.
    pub emails: EmailTally,
}

/// An import's row counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct RowCounts {
    /// Data rows in the file (known once a worker has counted them).
    pub total: i64,
    /// Rows with an outcome so far.
    pub processed: i64,
    /// Rows that created an invitation (with `dry_run`: would have).
    pub invited: i64,
    /// Rows skipped: already a member or invited, archived, or a duplicate in the file.
    pub skipped: i64,
    /// Rows that failed validation.
    pub invalid: i64,
}

/// How many of an import's invitation emails are in each state.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EmailCounts)]
pub struct EmailTally {
    /// Waiting to be sent, or being sent.
    pub pending: i64,
    /// Accepted by the mail server.
    pub sent: i64,
    /// Failed for good; `POST …/imports/{id}/retry` sends them again.
    pub failed: i64,
    /// Sent, then reported undeliverable by the recipient's server (a bounce).
    pub bounced: i64,
    /// Sent, then reported as abuse by the recipient or their provider.
    pub complained: i64,
}

/// The import JSON (`docs/product.md`, "Imports"), with its email counts.
pub fn view(conn: &mut DbConn, import: &Import) -> anyhow::Result<ImportJson> {
    let emails = imports::email_counts(conn, import.id)?;
    Ok(render(import, emails))
}

/// The JSON of the workspace's import `id`; 404 when it has none.
pub async fn load(db: &Db, workspace: WorkspaceId, id: ImportId) -> Result<ImportJson, ApiError> {
    db.run(move |c| {
        imports::get(c, workspace, id)?
            .map(|import| view(c, &import))
            .transpose()
    })
    .await?
    .ok_or(ApiError::NotFound("import"))
}

/// The JSON of a page of imports, counting their emails in one query.
pub fn views(conn: &mut DbConn, page: &[Import]) -> anyhow::Result<Vec<ImportJson>> {
    let ids: Vec<ImportId> = page.iter().map(|i| i.id).collect();
    let mut counts = imports::email_counts_of(conn, &ids)?;
    Ok(page
        .iter()
        .map(|i| render(i, counts.remove(&i.id).unwrap_or_default()))
        .collect())
}

fn render(import: &Import, emails: EmailCounts) -> ImportJson {
    let warnings = import
        .warnings
        .as_deref()
        .map(|w| w.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    ImportJson {
        id: import.id.0,
        status: import.status.to_string(),
        dry_run: import.dry_run,
        file_name: import.file_name.clone(),
        file_size: import.file_size,
        created_at: Timestamp(import.created_at),
        started_at: import.started_at.map(Timestamp),
        finished_at: import.finished_at.map(Timestamp),
        upload_deleted_at: import.upload_deleted_at.map(Timestamp),
        error: import.error.clone(),
        warnings,
        rows: RowCounts {
            total: import.rows_total,
            processed: import.rows_processed,
            invited: import.rows_invited,
            skipped: import.rows_skipped,
            invalid: import.rows_invalid,
        },
        emails: EmailTally {
            pending: emails.pending,
            sent: emails.sent,
            failed: emails.failed,
            bounced: emails.bounced,
            complained: emails.complained,
        },
    }
}

/// A stored UTC time as RFC 3339.
pub fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A stored UTC time, shown as RFC 3339 to the second (`2026-06-01T09:30:00Z`).
#[derive(Debug, Clone, Copy, ToSchema)]
#[schema(value_type = String, format = DateTime, example = "2026-06-01T09:30:00Z")]
pub struct Timestamp(pub NaiveDateTime);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&rfc3339(self.0))
    }
}

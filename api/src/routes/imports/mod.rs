//! Imports: upload, progress, list, per-row results, retry of failed sends and the CSV template.

pub mod create;
pub mod get;
pub mod list;
pub mod results;
pub mod retry;
pub mod template;

use chrono::NaiveDateTime;
use invite_shared::db::DbConn;
use invite_shared::ids::ImportId;
use invite_shared::store::imports::{self, EmailCounts, Import};
use serde_json::{Value, json};

/// The import JSON of SPEC.md, with its email counts.
pub fn view(conn: &mut DbConn, import: &Import) -> anyhow::Result<Value> {
    let emails = imports::email_counts(conn, ImportId(import.id))?;
    Ok(render(import, emails))
}

/// The JSON of a page of imports, counting their emails in one query.
pub fn views(conn: &mut DbConn, page: &[Import]) -> anyhow::Result<Vec<Value>> {
    let ids: Vec<ImportId> = page.iter().map(|i| ImportId(i.id)).collect();
    let mut counts = imports::email_counts_of(conn, &ids)?;
    Ok(page
        .iter()
        .map(|i| render(i, counts.remove(&ImportId(i.id)).unwrap_or_default()))
        .collect())
}

fn render(import: &Import, emails: EmailCounts) -> Value {
    let warnings: Vec<&str> = import
        .warnings
        .as_deref()
        .map(|w| w.lines().collect())
        .unwrap_or_default();
    json!({
        "id": import.id,
        "status": import.status,
        "dry_run": import.dry_run,
        "file_name": import.file_name,
        "file_size": import.file_size,
        "created_at": rfc3339(import.created_at),
        "started_at": import.started_at.map(rfc3339),
        "finished_at": import.finished_at.map(rfc3339),
        "error": import.error,
        "warnings": warnings,
        "rows": {
            "total": import.rows_total,
            "processed": import.rows_processed,
            "invited": import.rows_invited,
            "skipped": import.rows_skipped,
            "invalid": import.rows_invalid,
        },
        "emails": {
            "pending": emails.pending,
            "sent": emails.sent,
            "failed": emails.failed,
        },
    })
}

/// A stored UTC time as RFC 3339.
pub fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

//! The audit log as the routes and the CLI use it: record an action, read a page.

use crate::db::Db;
use crate::ids::{AuditEventId, WorkspaceId};
use crate::service::{Result, Step as _, next_cursor};
use crate::store::audit::{self, Action, Actor, Entry, Target};

/// A page of the log, newest first.
#[derive(Debug, Clone)]
pub struct Page {
    /// The entries.
    pub entries: Vec<Entry>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<AuditEventId>,
}

/// The workspace's entries older than `cursor` (from the newest when `None`), at most `limit`.
pub async fn page(
    db: &Db,
    workspace: WorkspaceId,
    cursor: Option<AuditEventId>,
    limit: i64,
) -> Result<Page> {
    let entries = db
        .run(move |c| Ok(audit::page(c, workspace, cursor, limit)?))
        .await
        .step("reading the audit log")?;
    let next_cursor = next_cursor(&entries, limit, |e| e.id);
    Ok(Page {
        entries,
        next_cursor,
    })
}

/// Adds an entry to the audit log. The action has happened by then, so a failure to record it is
/// logged as an error rather than reported to the caller (who might then repeat the action).
pub async fn record(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    action: Action,
    target: Target,
) {
    let result = db
        .run(move |c| Ok(audit::record(c, workspace, actor, action, target)?))
        .await;
    if let Err(e) = result {
        tracing::error!(
            error = format!("{e:#}"),
            action = action.as_str(),
            "could not record the audit entry"
        );
    }
}

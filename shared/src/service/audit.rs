//! The audit log as the routes and the CLI use it: record an action.

use crate::db::Db;
use crate::ids::WorkspaceId;
use crate::store::audit::{self, Action, Actor, Target};

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

//! `GET …/audit?cursor=&limit=`: who did what in the workspace, newest first.

use axum::Json;
use axum::extract::{Query, State};
use invite_shared::ids::AuditEventId;
use invite_shared::service::audit;
use serde::Serialize;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::imports::Timestamp;

/// Most entries in one page.
const MAX_PAGE: i64 = 500;

/// Query of the log.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Entries per page (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// One action in the workspace.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Its id.
    pub id: i64,
    /// The acting admin's email; `null` for an operator at the command line or the service itself.
    pub actor: Option<String>,
    /// `upload`, `dry_run`, `retry`, `resend`, `invitation_link`, `archive`, `unarchive`,
    /// `token_create`, `token_revoke`, `upload_delete` (a stored file deleted after
    /// `UPLOAD_RETENTION`), `import_cancel`, `remind`, `webhook_create`, `webhook_delete`,
    /// `webhook_test`, `webhook_replay` or `webhook_enable`.
    #[schema(example = "upload")]
    pub action: String,
    /// What it acted on, by id (`import 12`, `member 34`, `token 5`, `webhook 3`): never a link
    /// or a token.
    #[schema(example = "import 12")]
    pub target: String,
    /// When.
    pub created_at: Timestamp,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<i64>,
}

/// Read the audit log
///
/// Who did what, newest first, a page at a time: pass `next_cursor` as `cursor` for the next
/// page.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/audit",
    operation_id = "list_audit_entries",
    tag = "audit",
    security(("bearer" = [])),
    params(WorkspacePath, Page),
    responses(
        (status = 200, description = "Who did what, newest first.", body = AuditPage),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Query(page)): Valid<Query<Page>>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let cursor = page.cursor.map(AuditEventId);
    let found = audit::page(&state.db, admin.workspace_id, cursor, limit).await?;
    let entries = found
        .entries
        .into_iter()
        .map(|e| AuditEntry {
            id: e.id.0,
            actor: e.actor,
            action: e.action,
            target: e.target,
            created_at: Timestamp(e.created_at),
        })
        .collect();
    Ok(Json(AuditPage {
        entries,
        next_cursor: found.next_cursor.map(|c| c.0),
    }))
}

//! `GET …/audit?cursor=&limit=`: who did what in the workspace, newest first.

use axum::Json;
use axum::extract::{Query, State};
use invite_shared::store::audit;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;
use crate::routes::imports::rfc3339;

/// Most entries in one page.
const MAX_PAGE: i64 = 500;

/// Query of the log.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Entries per page (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// A page of entries and the cursor of the next one.
pub async fn list(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Query(page)): Valid<Query<Page>>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let workspace = admin.workspace_id;
    let entries = state
        .db
        .run(move |c| Ok(audit::page(c, workspace, page.cursor, limit)?))
        .await?;
    let next = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let entries: Vec<Value> = entries
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "created_at": rfc3339(e.created_at),
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries, "next_cursor": next })))
}

//! `GET …/imports`: the workspace's imports, newest first.

use axum::Json;
use axum::extract::{Query, State};
use invite_shared::ids::ImportId;
use invite_shared::store::imports;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;

const MAX_PAGE: i64 = 100;

/// Query of the list.
#[derive(Debug, Deserialize)]
pub struct Page {
    /// Only imports older than this id (the `next_cursor` of the previous page).
    pub cursor: Option<i64>,
    /// Page size, at most 100 (default 20).
    pub limit: Option<i64>,
}

/// A page of imports with a cursor to the next.
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Query(page)): Valid<Query<Page>>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(20).clamp(1, MAX_PAGE);
    let before = page.cursor.map(ImportId);
    let (views, next) = state
        .db
        .run(move |c| {
            let found = imports::list(c, admin.workspace_id, before, limit)?;
            let next = (found.len() as i64 == limit).then(|| found.last().map(|i| i.id));
            Ok((super::views(c, &found)?, next.flatten()))
        })
        .await?;
    Ok(Json(json!({ "imports": views, "next_cursor": next })))
}

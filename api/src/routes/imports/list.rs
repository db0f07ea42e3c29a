//! `GET …/imports`: the workspace's imports, newest first.

use axum::Json;
use axum::extract::{Query, State};
use invite_shared::ids::ImportId;
use invite_shared::store::imports;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest};
use crate::extract::Valid;
use crate::routes::WorkspacePath;
use crate::routes::imports::ImportJson;

const MAX_PAGE: i64 = 100;

/// Query of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Only imports older than this id (the `next_cursor` of the previous page).
    pub cursor: Option<i64>,
    /// Page size, at most 100 (default 20).
    pub limit: Option<i64>,
}

/// A page of imports, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportPage {
    /// The imports.
    pub imports: Vec<ImportJson>,
    /// The `cursor` of the next page; `null` on the last.
    pub next_cursor: Option<i64>,
}

/// List the workspace's imports
///
/// Newest first, a page at a time: pass `next_cursor` as `cursor` for the next page.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/imports",
    operation_id = "list_imports",
    tag = "imports",
    security(("bearer" = [])),
    params(WorkspacePath, Page),
    responses(
        (status = 200, description = "A page of imports, newest first.", body = ImportPage),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Query(page)): Valid<Query<Page>>,
) -> Result<Json<ImportPage>, ApiError> {
    let limit = page.limit.unwrap_or(20).clamp(1, MAX_PAGE);
    let before = page.cursor.map(ImportId);
    let (views, next) = state
        .db
        .run(move |c| {
            let found = imports::list(c, admin.workspace_id, before, limit)?;
            let next = (found.len() as i64 == limit).then(|| found.last().map(|i| i.id.0));
            Ok((super::views(c, &found)?, next.flatten()))
        })
        .await?;
    Ok(Json(ImportPage {
        imports: views,
        next_cursor: next,
    }))
}

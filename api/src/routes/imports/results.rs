//! `GET …/imports/{id}/results`: the per-row outcome file, streamed a page at a time.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use bytes::Bytes;
use futures::StreamExt as _;
use invite_shared::ids::ImportId;
use invite_shared::service::{ServiceError, results};
use invite_shared::store::imports;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest};
use crate::extract::Valid;
use crate::routes::WorkspacePath;

/// Download an import's per-row results
///
/// Streamed CSV, columns `row,email,outcome,reason,member_id,email_status,error`, one line per
/// data row of the file (numbered as a spreadsheet shows them); cells starting with `=`, `+`, `-`,
/// `@`, tab or CR are prefixed with `'`. 404 for another workspace's import.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/imports/{id}/results",
    operation_id = "get_import_results",
    tag = "imports",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The import's id.")),
    responses(
        (
            status = 200,
            description = "The per-row results, streamed.",
            body = String,
            content_type = "text/csv",
            headers(("Content-Disposition" = String, description = "An attachment file name.")),
        ),
        (status = 400, response = BadRequest),
        AdminErrors,
    ),
)]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
) -> Result<Response, ApiError> {
    let id = ImportId(id);
    state
        .db
        .run(move |c| Ok(imports::get(c, admin.workspace_id, id)?))
        .await?
        .ok_or(ApiError::NotFound("import"))?;
    let db = state.db.clone();
    let header = Bytes::from(results::header_line());
    let pages = futures::stream::try_unfold(Some(0i64), move |after| {
        let db = db.clone();
        async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let page = results::page(&db, id, after).await?;
            Ok::<_, ServiceError>(Some((Bytes::from(page.bytes), page.next)))
        }
    });
    let body = futures::stream::once(async { Ok(header) }).chain(pages);
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                &format!("attachment; filename=\"import-{id}-results.csv\"") as &str,
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

//! `GET …/imports/{id}/results`: the per-row outcome file, streamed a page at a time; with
//! `?outcome=`, the file of rows to fix in the upload's own columns (the repair loop).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use bytes::Bytes;
use futures::StreamExt as _;
use invite_shared::ids::ImportId;
use invite_shared::service::repair::{self, RowsToFix};
use invite_shared::service::{ServiceError, results};
use invite_shared::store::imports::{self, Import};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{AdminErrors, ApiError, BadRequest, ErrorBody};
use crate::extract::Valid;
use crate::routes::WorkspacePath;

/// Query of the results download.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// Outcomes to keep, comma-separated (`invalid,skipped`): then the file holds only those
    /// rows, in the upload's own columns plus `reason`, ready to fix and upload again.
    #[param(pattern = r"^((invited|skipped|invalid)(,(invited|skipped|invalid))*)?$")]
    pub outcome: Option<String>,
}

/// Download an import's per-row results
///
/// Streamed CSV, columns `row,email,outcome,reason,member_id,email_status,error`, one line per
/// data row of the file (numbered as a spreadsheet shows them). With `outcome` (e.g.
/// `invalid,skipped`): only the rows with those outcomes, each as it was uploaded (the upload's
/// own header and cells) plus a trailing `reason` column: the file to fix and upload again;
/// 410 `upload_deleted` once the stored upload was deleted (`UPLOAD_RETENTION`), 422
/// `invalid_filter` for an unknown outcome. Cells starting with `=`, `+`, `-`, `@`, tab or CR are
/// prefixed with `'`. 404 for another workspace's import.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/imports/{id}/results",
    operation_id = "get_import_results",
    tag = "imports",
    security(("bearer" = [])),
    params(WorkspacePath, ("id" = i64, Path, description = "The import's id."), ResultsQuery),
    responses(
        (
            status = 200,
            description = "The per-row results, or the rows to fix, streamed.",
            body = String,
            content_type = "text/csv",
            headers(("Content-Disposition" = String, description = "An attachment file name.")),
        ),
        (status = 400, response = BadRequest),
        (
            status = 410,
            description = "`upload_deleted`: the stored upload the rows to fix are read from was deleted.",
            body = ErrorBody,
        ),
        (
            status = 422,
            description = "An unknown outcome: `invalid_filter`.",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Path((_ws, id))): Valid<Path<(String, i64)>>,
    Valid(Query(query)): Valid<Query<ResultsQuery>>,
) -> Result<Response, ApiError> {
    let id = ImportId(id);
    // An empty `outcome=` asks for no filter: the whole results file.
    let outcomes = query
        .outcome
        .as_deref()
        .filter(|text| !text.is_empty())
        .map(repair::parse_outcomes)
        .transpose()
        .map_err(|message| ApiError::Unprocessable {
            code: "invalid_filter",
            message,
        })?;
    let import = state
        .db
        .run(move |c| Ok(imports::get(c, admin.workspace_id, id)?))
        .await?
        .ok_or(ApiError::NotFound("import"))?;
    let (body, name) = match outcomes {
        Some(outcomes) => (rows_to_fix(&state, &import, outcomes).await?, "rows-to-fix"),
        None => (all_results(&state, id), "results"),
    };
    Ok((
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                &format!("attachment; filename=\"import-{id}-{name}.csv\"") as &str,
            ),
        ],
        body,
    )
        .into_response())
}

/// The results file, a page of rows at a time.
fn all_results(state: &AppState, id: ImportId) -> Body {
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
    Body::from_stream(futures::stream::once(async { Ok(header) }).chain(pages))
}

/// The rows to fix, a stored piece of the upload at a time; 410 when the upload is gone.
async fn rows_to_fix(
    state: &AppState,
    import: &Import,
    outcomes: Vec<invite_shared::status::RowOutcome>,
) -> Result<Body, ApiError> {
    let Some(rows) = RowsToFix::open(&state.db, import, outcomes).await? else {
        let when = import
            .upload_deleted_at
            .map(|at| format!(" on {}", at.format("%Y-%m-%d")))
            .unwrap_or_default();
        return Err(ApiError::Gone {
            code: "upload_deleted",
            message: format!(
                "The uploaded file of this import was deleted{when}, as uploads are kept only for UPLOAD_RETENTION after their import finished; its rows can no longer be downloaded in their own columns. The results file (without `outcome`) is still available."
            ),
        });
    };
    let pieces = futures::stream::try_unfold(rows, |mut rows| async move {
        Ok::<_, ServiceError>(rows.next().await?.map(|bytes| (Bytes::from(bytes), rows)))
    });
    Ok(Body::from_stream(pieces))
}

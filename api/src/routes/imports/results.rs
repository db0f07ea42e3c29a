//! `GET …/imports/{id}/results`: the per-row outcome file, streamed a page at a time.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use invite_shared::db::Db;
use invite_shared::ids::ImportId;
use invite_shared::store::imports::{self, ResultRow};
use tokio::io::AsyncWriteExt as _;

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::Valid;
use crate::openapi::{AdminErrors, BadRequest};
use crate::routes::WorkspacePath;

const PAGE: i64 = 5000;
const COLUMNS: [&str; 7] = [
    "row",
    "email",
    "outcome",
    "reason",
    "member_id",
    "email_status",
    "error",
];

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
    let header = Bytes::from(header_line());
    let pages = futures::stream::try_unfold(Some(0i64), move |after| {
        let db = db.clone();
        async move {
            let Some(after) = after else {
                return Ok(None);
            };
            let (bytes, next) = page(&db, id, after).await?;
            Ok::<_, anyhow::Error>(Some((Bytes::from(bytes), next)))
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

/// The CSV header line.
fn header_line() -> Vec<u8> {
    encode(std::iter::once(COLUMNS.map(String::from)))
}

/// One page of encoded rows after row `after`, and the cursor of the next page if any.
async fn page(db: &Db, id: ImportId, after: i64) -> anyhow::Result<(Vec<u8>, Option<i64>)> {
    let rows = db
        .run(move |c| Ok(imports::results_page(c, id, after, PAGE)?))
        .await?;
    let next = (rows.len() as i64 == PAGE)
        .then(|| rows.last().map(|r| r.row))
        .flatten();
    Ok((encode(rows.into_iter().map(cells)), next))
}

/// Writes the whole results file of an import to `path`.
pub async fn write_file(db: &Db, id: ImportId, path: &std::path::Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&header_line()).await?;
    let mut after = Some(0);
    while let Some(cursor) = after {
        let (bytes, next) = page(db, id, cursor).await?;
        file.write_all(&bytes).await?;
        after = next;
    }
    file.flush().await?;
    Ok(())
}

fn cells(r: ResultRow) -> [String; 7] {
    [
        r.row.to_string(),
        r.email.unwrap_or_default(),
        r.outcome.to_string(),
        r.reason.unwrap_or_default(),
        r.member_id.map(|m| m.to_string()).unwrap_or_default(),
        r.email_status.map(|s| s.to_string()).unwrap_or_default(),
        r.error.unwrap_or_default(),
    ]
}

/// Writes rows as CSV, neutralising cells a spreadsheet would run as formulas.
fn encode(rows: impl Iterator<Item = [String; 7]>) -> Vec<u8> {
    let mut out = csv::Writer::from_writer(Vec::new());
    for row in rows {
        // Writing into a Vec cannot fail.
        let _ = out.write_record(row.iter().map(|c| neutralise(c).into_owned()));
    }
    out.into_inner().unwrap_or_default()
}

/// Prefixes `'` to a cell that starts with `= + - @`, tab or CR (CSV injection).
fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_others_untouched() {
        assert_eq!(neutralise("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(neutralise("+1"), "'+1");
        assert_eq!(neutralise("-2"), "'-2");
        assert_eq!(neutralise("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(neutralise("\tx"), "'\tx");
        assert_eq!(neutralise("ada@example.com"), "ada@example.com");
    }

    #[test]
    fn encoded_rows_are_rfc4180_csv() {
        let out = encode(std::iter::once(
            ["2", "a@b.co", "invalid", "role: \"x\", no", "", "", ""].map(String::from),
        ));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2,a@b.co,invalid,\"role: \"\"x\"\", no\",,,\n"
        );
    }
}

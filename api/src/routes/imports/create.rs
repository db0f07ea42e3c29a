//! `POST …/imports`: check the file, store it durably with the import, enqueue, answer 202.
//!
//! The body (multipart field `file`, or a raw body) is spooled to an anonymous temporary file while
//! its size is checked and its kind sniffed, so memory does not grow with the upload; then
//! [`intake::prepare`] turns it into UTF-8 CSV (transcoding, or converting a workbook) and checks
//! its header before anything is stored. `?dry_run=true` stores an import that only validates.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Query, Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use invite_shared::domain::header::HeaderError;
use invite_shared::intake::decode::{Kind, Sniffer};
use invite_shared::intake::workbook::WorkbookError;
use invite_shared::intake::{self, IntakeError};
use invite_shared::service::imports::{self as service, Upload};
use invite_shared::store::audit::Actor;
use invite_shared::store::imports::{self, Import, Stored};
use tokio::io::AsyncWriteExt as _;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{
    AdminErrors, ApiError, BadRequest, ErrorBody, PayloadTooLarge, UnsupportedMediaType,
};
use crate::extract::Valid;
use crate::limits;
use crate::routes::WorkspacePath;
use crate::routes::imports::ImportJson;

const MAX_KEY_LEN: usize = 255;

/// The upload's query string.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Validate every row and report, writing no member and sending nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// The multipart form of an upload.
#[derive(utoipa::ToSchema)]
pub struct UploadForm {
    /// The CSV file or workbook; its file name becomes the import's `file_name`. Other fields are
    /// ignored.
    #[schema(value_type = String, content_media_type = "application/octet-stream")]
    pub file: Vec<u8>,
}

/// Upload a file of people to invite
///
/// Checks the header at once, stores the file with the import in one transaction, enqueues it
/// and answers 202; rows are validated and applied asynchronously. With a known
/// `Idempotency-Key`, returns the import first created with that key.
#[utoipa::path(
    post,
    path = "/api/v1/workspaces/{ws}/imports",
    operation_id = "create_import",
    tag = "imports",
    security(("bearer" = [])),
    params(
        WorkspacePath,
        Params,
        (
            "Idempotency-Key" = Option<String>,
            Header,
            description = "1 to 255 visible ASCII characters; the same key returns the import \
                first created with it.",
            nullable = false,
            max_length = 255,
            pattern = r"^[!-~]([\t -~]*[!-~])?$",
        ),
    ),
    request_body(
        description = "The file: multipart field `file`, or the raw body. What it is, is read \
            from its bytes: a CSV in UTF-8 (with or without BOM), UTF-16 with BOM or \
            Windows-1252, or an .xlsx, .ods or .xls workbook (first sheet).",
        content(
            (UploadForm = "multipart/form-data"),
            ("text/csv", example = json!(super::template::TEMPLATE)),
            ("application/csv"),
            ("text/plain"),
            ("text/tab-separated-values"),
            ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            ("application/vnd.oasis.opendocument.spreadsheet"),
            ("application/vnd.ms-excel"),
            ("application/octet-stream"),
        ),
    ),
    responses(
        (
            status = 202,
            description = "Stored and queued (or the import first created with this \
                `Idempotency-Key`).",
            body = ImportJson,
            headers(("Location" = String, description = "The import's URL.")),
        ),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 422,
            description = "The file cannot be used: `missing_columns` (naming what is missing), \
                `duplicate_column`, `too_many_columns`, `empty_file`, `not_csv`, \
                `unreadable_workbook`, `workbook_too_large` (it declares, unpacks to or needs \
                more than the workbook limits allow), `too_many_rows`, or `missing_file` (a \
                multipart body without a `file` field).",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id, import_id))]
pub async fn handle(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Query(params)): Valid<Query<Params>>,
    request: Request,
) -> Result<Response, ApiError> {
    let key = idempotency_key(request.headers())?;
    if let Some(key) = key.clone() {
        let workspace = admin.workspace_id;
        let existing = state
            .db
            .run(move |c| Ok(imports::find_by_idempotency_key(c, workspace, &key)?))
            .await?;
        if let Some(import) = existing {
            return accepted(&state, &admin, import).await;
        }
    }

    check_upload_limits(&state, &admin).await?;
    let limit = state.settings.max_upload_bytes;
    let (file_name, (file, size, kind)) = spool(request, &state, limit).await?;
    let prepared = intake::prepare(file, size, kind, &state.converter)
        .await
        .map_err(intake_error)?;
    let upload = Upload {
        workspace_id: admin.workspace_id,
        created_by: admin.account_id,
        file_name,
        idempotency_key: key,
        dry_run: params.dry_run,
        actor: Actor::Admin(admin.account_id),
    };
    let import = match service::create(&state.db, &state.queue, upload, prepared).await? {
        Stored::Existing(import) | Stored::Created(import) => import,
    };
    tracing::Span::current().record("import_id", import.id.0);
    accepted(&state, &admin, import).await
}

/// 429 before anything is read or stored when the workspace has used its uploads of this minute
/// or has too many imports in flight; counts this upload otherwise.
async fn check_upload_limits(state: &AppState, admin: &Admin) -> Result<(), ApiError> {
    let key = admin.workspace_id.to_string();
    let per_minute = state.settings.uploads_per_minute;
    if let Some(wait) = state.limiter.uploads.blocked(&key, per_minute) {
        let message = format!(
            "this workspace has made {per_minute} uploads in the last minute, the most allowed (UPLOADS_PER_MINUTE); wait {} s",
            wait.as_secs().max(1)
        );
        return Err(limits::too_many("uploads", wait, message));
    }
    let workspace = admin.workspace_id;
    let open = state
        .db
        .run(move |c| Ok(imports::in_flight(c, workspace)?))
        .await?;
    let most = i64::from(state.settings.imports_in_flight);
    if open >= most {
        let message = format!(
            "this workspace has {open} imports queued or processing, the most allowed (IMPORTS_IN_FLIGHT); upload again when one has finished"
        );
        return Err(limits::too_many("imports_in_flight", IMPORT_WAIT, message));
    }
    state.limiter.uploads.hit(&key);
    Ok(())
}

/// What a client held back by `IMPORTS_IN_FLIGHT` is told to wait.
const IMPORT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

async fn accepted(state: &AppState, admin: &Admin, import: Import) -> Result<Response, ApiError> {
    let location = format!("/api/v1/workspaces/{}/imports/{}", admin.slug, import.id);
    let view = state.db.run(move |c| super::view(c, &import)).await?;
    Ok((StatusCode::ACCEPTED, [(LOCATION, location)], Json(view)).into_response())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::BadRequest("Idempotency-Key must be 1 to 255 visible ASCII characters".into())
        })?;
    Ok(Some(key.to_owned()))
}

type Spooled = (std::fs::File, u64, Kind);

/// Content types of a raw (not multipart) upload body; what the file really is, is decided from
/// its bytes.
pub(crate) const RAW_TYPES: [&str; 8] = [
    "text/csv",
    "application/csv",
    "text/plain",
    "text/tab-separated-values",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.ms-excel",
    "application/octet-stream",
];

/// Writes the uploaded file to a temporary file, sniffing what it is on the way.
async fn spool(
    request: Request,
    state: &AppState,
    limit: u64,
) -> Result<(String, Spooled), ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            if field.name() != Some("file") {
                continue;
            }
            let name = field.file_name().unwrap_or("upload.csv").to_owned();
            let stream = futures::stream::unfold(field, |mut f| async move {
                f.chunk()
                    .await
                    .map_err(multipart_error)
                    .transpose()
                    .map(|chunk| (chunk, f))
            });
            return Ok((name, write_checked(stream, limit).await?));
        }
        Err(ApiError::Unprocessable {
            code: "missing_file",
            message: "the multipart body has no field named `file`".into(),
        })
    } else if RAW_TYPES.iter().any(|t| content_type.starts_with(t)) {
        let stream = request
            .into_body()
            .into_data_stream()
            .map(|r| r.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}"))));
        Ok(("upload.csv".into(), write_checked(stream, limit).await?))
    } else {
        Err(ApiError::UnsupportedMediaType(
            "send the file as multipart field `file`, or as a text/csv (or workbook) body".into(),
        ))
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit: 0 }
    } else {
        ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    }
}

async fn write_checked(
    stream: impl Stream<Item = Result<Bytes, ApiError>>,
    limit: u64,
) -> Result<Spooled, ApiError> {
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| anyhow::anyhow!("temporary file task: {e}"))?
        .map_err(|e| anyhow::anyhow!("creating a temporary file: {e}"))?;
    let mut file = tokio::fs::File::from_std(file);
    let mut size = 0u64;
    let mut sniffer = Sniffer::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| match e {
            ApiError::PayloadTooLarge { .. } => ApiError::PayloadTooLarge { limit },
            other => other,
        })?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        sniffer.feed(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| anyhow::anyhow!("spooling the upload: {e}"))?;
    }
    file.flush()
        .await
        .map_err(|e| anyhow::anyhow!("spooling the upload: {e}"))?;
    let file = file.into_std().await;
    Ok((file, size, sniffer.finish()))
}

/// The API's answer to an upload that cannot be used.
pub fn intake_error(e: IntakeError) -> ApiError {
    let (code, message) = match &e {
        IntakeError::Binary { .. } => return ApiError::UnsupportedMediaType(e.to_string()),
        IntakeError::WorkbookTooLarge { limit } => {
            return ApiError::PayloadTooLarge { limit: *limit };
        }
        IntakeError::Io(_) => return ApiError::Internal(anyhow::Error::new(e)),
        IntakeError::Busy(busy) => return ApiError::Unavailable(busy.to_string()),
        IntakeError::Workbook(WorkbookError::TooManyRows { .. }) => {
            ("too_many_rows", e.to_string())
        }
        IntakeError::Workbook(WorkbookError::TooLarge { .. } | WorkbookError::Exhausted { .. }) => {
            ("workbook_too_large", e.to_string())
        }
        IntakeError::Workbook(_) => ("unreadable_workbook", e.to_string()),
        IntakeError::Header(header) => (header_code(header), e.to_string()),
    };
    ApiError::Unprocessable { code, message }
}

fn header_code(e: &HeaderError) -> &'static str {
    match e {
        HeaderError::Empty => "empty_file",
        HeaderError::NotUtf8 => "not_csv",
        HeaderError::Missing(_) => "missing_columns",
        HeaderError::Duplicate(_) => "duplicate_column",
        HeaderError::TooManyColumns(_) => "too_many_columns",
    }
}

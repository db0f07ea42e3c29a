//! The API's error type: every failure a handler can return, mapped to a status and the JSON shape
//! `{"error":{"code":"…","message":"…"}}`, and the OpenAPI responses that document those answers,
//! which the handlers' `#[utoipa::path]` name.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use invite_shared::service::ServiceError;
use serde::Serialize;
use utoipa::{IntoResponses, ToResponse, ToSchema};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or unknown bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The caller is not an admin of the workspace.
    #[error("only admins of this workspace may do this")]
    Forbidden,
    /// The deployment's edition does not offer this (e.g. copying invitation links on cloud).
    #[error("{message}")]
    NotOffered {
        /// Machine-readable code.
        code: &'static str,
        /// Why, in words.
        message: String,
    },
    /// The resource does not exist (or belongs to another workspace).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is well-formed but its content is not acceptable.
    #[error("{message}")]
    Unprocessable {
        /// Machine-readable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// A bad query string or body shape.
    #[error("{0}")]
    BadRequest(String),
    /// The upload is larger than `MAX_UPLOAD_BYTES`.
    #[error("the upload is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in force.
        limit: u64,
    },
    /// The body is not a CSV file or workbook (or multipart carrying one); says what to send.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The state forbids the change (e.g. an invitation already used).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// The thing existed but is gone (expired or revoked link).
    #[error("{message}")]
    Gone {
        /// Machine-readable code.
        code: &'static str,
        /// Human message.
        message: String,
    },
    /// A path, query or body the extractor could not read, with the extractor's status.
    #[error("{message}")]
    Rejected {
        /// 400, 415 or 422, as the extractor decided.
        status: StatusCode,
        /// What was wrong.
        message: String,
    },
    /// An abuse limit was reached; try again after `retry_after` seconds.
    #[error("{message}")]
    TooManyRequests {
        /// Which limit, in words.
        message: String,
        /// Seconds until the window ends.
        retry_after: u64,
    },
    /// The request body paused longer than `HTTP_BODY_IDLE_TIMEOUT` or came slower than
    /// `HTTP_BODY_MIN_RATE`.
    #[error(
        "the request body paused too long or arrived too slowly (HTTP_BODY_IDLE_TIMEOUT, HTTP_BODY_MIN_RATE)"
    )]
    SlowBody,
    /// The request was not answered within `HTTP_REQUEST_TIMEOUT`.
    #[error(
        "the request was not answered within {} s (HTTP_REQUEST_TIMEOUT); try again shortly",
        .0.as_secs_f64()
    )]
    TimedOut(std::time::Duration),
    /// A dependency (database, queue) is down.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else; logged with its cause chain, never shown to the client.
    #[error("internal error")]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        if invite_shared::db::is_unavailable(&e) {
            database_unavailable(&e)
        } else {
            ApiError::Internal(e)
        }
    }
}

/// A service call that failed: 503 when the database is unavailable, else 500; either way the
/// cause is logged with its chain, and the client is told no more than for any other failure.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let unavailable = matches!(e, ServiceError::Unavailable { .. });
        let e = anyhow::Error::new(e);
        if unavailable {
            database_unavailable(&e)
        } else {
            ApiError::Internal(e)
        }
    }
}

/// The 503 of a database that could not be reached; the cause goes to the log.
fn database_unavailable(e: &anyhow::Error) -> ApiError {
    tracing::warn!(error = format!("{e:#}"), "the database is unavailable");
    ApiError::Unavailable("the database is unavailable; try again shortly".into())
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, stable: e.g. `unauthorized`, `not_found`, `missing_columns`.
    #[schema(example = "not_found")]
    pub code: String,
    /// For people: what was wrong and, where it helps, what to do.
    #[schema(example = "import not found")]
    pub message: String,
}

/// What a 503 tells the client to wait before trying again, in seconds.
const RETRY_AFTER_SECS: &str = "5";

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotOffered { code, .. } => (StatusCode::FORBIDDEN, code),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Gone { code, .. } => (StatusCode::GONE, code),
            ApiError::Rejected { status, .. } => (*status, "invalid_request"),
            ApiError::TooManyRequests { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ApiError::SlowBody => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::TimedOut(_) => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests { retry_after, .. } = &self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, (*retry_after).into());
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        response
    }
}

/// The path, the query string or a header could not be read: `invalid_request` (saying what was
/// wrong) or `bad_request`; for a JSON body, malformed JSON.
#[derive(ToResponse)]
pub struct BadRequest(pub ErrorBody);

/// No bearer token, or an unknown, revoked or expired one: `unauthorized`.
#[derive(ToResponse)]
pub struct Unauthorized(pub ErrorBody);

/// The token's holder is not an active admin of this workspace: `forbidden`.
#[derive(ToResponse)]
pub struct Forbidden(pub ErrorBody);

/// No such workspace, or the token was made for another one; or the import, member or token in the
/// path is not in this workspace: `not_found`.
#[derive(ToResponse)]
pub struct NotFound(pub ErrorBody);

/// The body is over the limit: `MAX_UPLOAD_BYTES`, or `MAX_WORKBOOK_BYTES` for a workbook
/// (`too_large`; `invalid_request` for a JSON body).
#[derive(ToResponse)]
pub struct PayloadTooLarge(pub ErrorBody);

/// The body's content type (or, for an upload, what its bytes are) is not accepted:
/// `unsupported_media_type`, or `invalid_request` for a JSON body sent without
/// `Content-Type: application/json`.
#[derive(ToResponse)]
pub struct UnsupportedMediaType(pub ErrorBody);

/// The request body paused longer than `HTTP_BODY_IDLE_TIMEOUT` or arrived slower than
/// `HTTP_BODY_MIN_RATE`: `request_timeout`; the connection is closed.
#[derive(ToResponse)]
pub struct RequestTimeout(pub ErrorBody);

/// An abuse limit was reached: failed authentications from this client, uploads per minute or
/// imports in flight of the workspace, a support action within the member's cooldown, or the
/// workspace's daily support emails: `too_many_requests`.
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Seconds to wait before trying again.")))]
pub struct TooManyRequests(pub ErrorBody);

/// A failure of the service, logged with its cause: `internal`.
#[derive(ToResponse)]
pub struct InternalError(pub ErrorBody);

/// The database is unavailable (`unavailable`), or the request was not answered within
/// `HTTP_REQUEST_TIMEOUT` (`timeout`).
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u64, description = "Seconds to wait before trying again.")))]
pub struct Unavailable(pub ErrorBody);

/// The answers every workspace route can give besides its own: those of the bearer token check
/// and of the service itself.
#[derive(IntoResponses)]
pub enum AdminErrors {
    /// See [`Unauthorized`].
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    /// See [`Forbidden`].
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    /// See [`NotFound`].
    #[response(status = 404)]
    NotFound(#[ref_response] NotFound),
    /// See [`RequestTimeout`].
    #[response(status = 408)]
    RequestTimeout(#[ref_response] RequestTimeout),
    /// See [`TooManyRequests`].
    #[response(status = 429)]
    TooManyRequests(#[ref_response] TooManyRequests),
    /// See [`InternalError`].
    #[response(status = 500)]
    Internal(#[ref_response] InternalError),
    /// See [`Unavailable`].
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn a_database_that_cannot_be_reached_is_a_503_with_retry_after() {
        // Nothing listens on port 1: the pool cannot open a connection.
        let db = invite_shared::db::Db::connect("postgres://127.0.0.1:1/none", 1).unwrap();
        let error = db.ping().await.unwrap_err();
        let response = ApiError::from(error).into_response();

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], RETRY_AFTER_SECS);
    }

    #[test]
    fn any_other_failure_is_a_500_without_retry_after() {
        let response = ApiError::from(anyhow::anyhow!("a bug")).into_response();

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().get("retry-after").is_none());
    }

    /// The body of `response` as JSON.
    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_failed_service_call_is_a_500_whose_cause_is_kept_for_the_log() {
        let error = ServiceError::Database {
            doing: "storing the import",
            source: anyhow::anyhow!("the disk is full"),
        };

        let error = ApiError::from(error);

        let ApiError::Internal(cause) = &error else {
            panic!("{error:?}")
        };
        assert_eq!(format!("{cause:#}"), "storing the import: the disk is full");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body(response).await,
            serde_json::json!({"error": {"code": "internal", "message": "internal error"}})
        );
    }

    #[tokio::test]
    async fn a_service_call_without_a_database_is_a_503_with_retry_after() {
        let error = ServiceError::Unavailable {
            doing: "storing the import",
            source: anyhow::anyhow!("timed out waiting for a connection"),
        };

        let response = ApiError::from(error).into_response();

        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], RETRY_AFTER_SECS);
        assert_eq!(body(response).await["error"]["code"], "unavailable");
    }
}

//! The pages' static files, compiled into the binary: the service needs no CDN and no build step.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Response};

use crate::error::ApiError;

/// `GET /assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (content_type, body) = match file.as_str() {
        "invitation.css" => (
            "text/css; charset=utf-8",
            include_str!("../../assets/invitation.css"),
        ),
        "admin.css" => (
            "text/css; charset=utf-8",
            include_str!("../../assets/admin.css"),
        ),
        "admin.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../assets/admin.js"),
        ),
        _ => return Err(ApiError::NotFound("asset")),
    };
    Ok((
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
        body,
    )
        .into_response())
}

/// `GET /admin`: the admin's page; everything on it is loaded by `admin.js` through the API.
pub async fn admin_page() -> Html<&'static str> {
    Html(include_str!("../../assets/admin.html"))
}

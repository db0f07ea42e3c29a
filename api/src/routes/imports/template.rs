//! `GET …/imports/template`: a CSV with the header and one example row.

use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;

use crate::auth::Admin;
use crate::error::AdminErrors;
use crate::routes::WorkspacePath;

/// The template; also the upload's example in the OpenAPI document.
pub(crate) const TEMPLATE: &str = "First Name,Last Name,Email,User Role,Group,Metadata\r\n\
Ada,Lovelace,ada@example.com,End User,Engineering|Research,\"{\"\"employee_id\"\":\"\"E-1001\"\"}\"\r\n";

/// Download the CSV template
///
/// The header and one example row.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/imports/template",
    operation_id = "get_import_template",
    tag = "imports",
    security(("bearer" = [])),
    params(WorkspacePath),
    responses(
        (
            status = 200,
            description = "A CSV with the header and one example row.",
            body = String,
            content_type = "text/csv",
            headers(("Content-Disposition" = String, description = "An attachment file name.")),
        ),
        AdminErrors,
    ),
)]
pub async fn handle(_admin: Admin) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                CONTENT_DISPOSITION,
                "attachment; filename=\"bulk-invite-template.csv\"",
            ),
        ],
        TEMPLATE,
    )
}

#[cfg(test)]
mod tests {
    use invite_shared::domain::header::Header;

    #[test]
    fn the_template_header_passes_the_upload_check() {
        let (header, delimiter) = Header::read(super::TEMPLATE.as_bytes()).unwrap();
        assert_eq!(delimiter, b',');
        assert!(header.unknown.is_empty());
    }
}

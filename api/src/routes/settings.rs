//! `…/settings`: the workspace's settings an admin changes, today `accept_redirect_url`, where an
//! accepted invitation hands over to the workspace's own application.

use axum::Json;
use axum::extract::State;
use invite_shared::domain::redirect::RedirectTemplate;
use invite_shared::service::handover;
use serde::{Deserialize, Deserializer, Serialize};

use crate::AppState;
use crate::auth::Admin;
use crate::error::{
    AdminErrors, ApiError, BadRequest, ErrorBody, PayloadTooLarge, UnsupportedMediaType,
};
use crate::extract::Valid;
use crate::routes::WorkspacePath;

/// The workspace's settings: the body of `PUT …/settings` and the answer of both routes.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSettings {
    /// Where the browser goes once an invitation is accepted, instead of the service's own
    /// welcome page: a URL template with the placeholders `{member_id}`, `{email}` and
    /// `{workspace}` (the slug), each value percent-encoded; the service appends a `token` query
    /// parameter that `GET /api/v1/acceptances/{token}` verifies once. `https` only (`http` for
    /// `localhost`, `127.0.0.1` and `[::1]`), placeholders only in the path, query or fragment, at
    /// most 2000 characters. `null`: the service's own page. Required in `PUT`.
    #[serde(deserialize_with = "required_nullable")]
    #[schema(
        required = true,
        max_length = 2000,
        pattern = r"^\s*https?://\S+\s*$",
        example = "https://app.example.com/welcome?member={member_id}&email={email}"
    )]
    pub accept_redirect_url: Option<String>,
}

/// A field that must be present and may be `null`: serde takes a missing `Option` for `null`
/// unless the field has a deserializer of its own.
fn required_nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// Show the workspace's settings
#[utoipa::path(
    get,
    path = "/api/v1/workspaces/{ws}/settings",
    operation_id = "get_settings",
    tag = "settings",
    security(("bearer" = [])),
    params(WorkspacePath),
    responses(
        (status = 200, description = "The workspace's settings.", body = WorkspaceSettings),
        AdminErrors,
    ),
)]
pub async fn get(
    admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<WorkspaceSettings>, ApiError> {
    let template = handover::redirect(&state.db, admin.workspace_id).await?;
    Ok(Json(WorkspaceSettings {
        accept_redirect_url: template.map(|t| t.as_str().to_owned()),
    }))
}

/// Change the workspace's settings
///
/// Replaces them: `accept_redirect_url` is checked and saved (trimmed), or cleared with `null`.
/// 200 with the settings as saved. Audited as `settings_change` (the setting's name, not its
/// value).
#[utoipa::path(
    put,
    path = "/api/v1/workspaces/{ws}/settings",
    operation_id = "put_settings",
    tag = "settings",
    security(("bearer" = [])),
    params(WorkspacePath),
    request_body = WorkspaceSettings,
    responses(
        (status = 200, description = "The settings as saved.", body = WorkspaceSettings),
        (status = 400, response = BadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (
            status = 422,
            description = "A body without `accept_redirect_url` or with another field \
                (`invalid_request`), or a URL template the service cannot use, said in words \
                (`invalid_redirect_url`): not https, a credential, an unknown placeholder, a \
                placeholder in the host, a `token` parameter of its own.",
            body = ErrorBody,
        ),
        AdminErrors,
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %admin.workspace_id))]
pub async fn put(
    admin: Admin,
    State(state): State<AppState>,
    Valid(Json(body)): Valid<Json<WorkspaceSettings>>,
) -> Result<Json<WorkspaceSettings>, ApiError> {
    let template = body
        .accept_redirect_url
        .as_deref()
        .map(RedirectTemplate::parse)
        .transpose()
        .map_err(|e| ApiError::Unprocessable {
            code: "invalid_redirect_url",
            message: format!("accept_redirect_url: {e}"),
        })?;
    let saved = template.as_ref().map(|t| t.as_str().to_owned());
    handover::set_redirect(&state.db, admin.audit(), template).await?;
    Ok(Json(WorkspaceSettings {
        accept_redirect_url: saved,
    }))
}

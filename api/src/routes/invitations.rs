//! Public invitation links: show one, accept it. Browsers get a small HTML page, API clients JSON.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::ACCEPT;
use axum::response::{Html, IntoResponse, Response};
use invite_shared::store::invitations::{self, InvitationView, Lookup};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Valid;
use crate::routes::imports::rfc3339;
use crate::routes::role_label;

/// Shows the invitation behind a link.
pub async fn show(
    State(state): State<AppState>,
    Valid(Path(token)): Valid<Path<String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lookup = {
        let token = token.clone();
        state
            .db
            .run(move |c| Ok(invitations::lookup(c, &token)?))
            .await?
    };
    let view = usable(lookup)?;
    Ok(if wants_html(&headers) {
        // Relative to /invitations/, and the token is URL-safe base64: safe in an attribute.
        Html(page(
            &format!("Join {}", escape(&view.workspace)),
            &format!(
                "<p>You have been invited to <b>{}</b> as {}.</p>\
                 <form method=\"post\" action=\"{token}/accept\"><button>Accept invitation</button></form>",
                escape(&view.workspace),
                escape(&role_label(&view.role)),
            ),
        ))
        .into_response()
    } else {
        Json(json!({
            "workspace": view.workspace,
            "email": view.email,
            "role": role_label(&view.role),
            "status": view.status,
            "expires_at": rfc3339(view.expires_at),
        }))
        .into_response()
    })
}

/// Accepts an invitation: the member becomes active.
pub async fn accept(
    State(state): State<AppState>,
    Valid(Path(token)): Valid<Path<String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let lookup = state
        .db
        .run(move |c| Ok(invitations::accept(c, &token)?))
        .await?;
    let view = usable(lookup)?;
    Ok(if wants_html(&headers) {
        Html(page(
            "Welcome",
            &format!(
                "<p>You are now a member of <b>{}</b>.</p>",
                escape(&view.workspace)
            ),
        ))
        .into_response()
    } else {
        Json(json!({ "workspace": view.workspace, "email": view.email, "status": "active" }))
            .into_response()
    })
}

fn usable(lookup: Lookup) -> Result<InvitationView, ApiError> {
    match lookup {
        Lookup::Valid(view, _) => Ok(view),
        Lookup::NotFound => Err(ApiError::NotFound("invitation")),
        Lookup::Expired => Err(ApiError::Gone {
            code: "invitation_expired",
            message: "this invitation link has expired; ask an admin to resend it".into(),
        }),
        Lookup::Revoked => Err(ApiError::Gone {
            code: "invitation_revoked",
            message: "this invitation is no longer valid".into(),
        }),
        Lookup::AlreadyUsed => Err(ApiError::Conflict {
            code: "invitation_used",
            message: "this invitation has already been accepted".into(),
        }),
    }
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto\"><h1>{title}</h1>{body}</body></html>"
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

//! Routes grouped by resource.

pub mod assets;
pub mod audit;
pub mod groups;
pub mod health;
pub mod imports;
pub mod invitations;
pub mod members;
pub mod tokens;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{delete, get, post};

use invite_shared::domain::role::Role;

use crate::AppState;

/// The display label of a stored role ("End User"), or the stored text if unknown.
pub fn role_label(stored: &str) -> String {
    Role::from_stored(stored).map_or_else(|| stored.to_owned(), |r| r.label().to_owned())
}

/// All routes, before state and layers.
pub fn router() -> Router<AppState> {
    let workspace = Router::new()
        .route(
            "/imports",
            post(imports::create::handle).get(imports::list::handle),
        )
        .route("/imports/template", get(imports::template::handle))
        .route("/imports/{id}", get(imports::get::handle))
        .route("/imports/{id}/results", get(imports::results::handle))
        .route("/imports/{id}/retry", post(imports::retry::handle))
        .route("/members", get(members::list))
        .route("/members/{id}", get(members::get))
        .route("/members/{id}/resend", post(members::resend::handle))
        .route(
            "/members/{id}/invitation-link",
            post(members::invitation_link::handle),
        )
        .route("/members/{id}/archive", post(members::archive::archive))
        .route("/members/{id}/unarchive", post(members::archive::unarchive))
        .route("/groups", post(groups::create).get(groups::list))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}", delete(tokens::revoke))
        .route("/audit", get(audit::list));
    Router::new()
        .nest("/api/v1/workspaces/{ws}", workspace)
        .route("/invitations/{token}", get(invitations::show))
        .route("/invitations/{token}/accept", post(invitations::accept))
        .route("/", get(|| async { Redirect::to("/admin") }))
        .route("/admin", get(assets::admin_page))
        .route("/assets/{file}", get(assets::serve))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
}

//! Routes grouped by resource.

pub mod acceptances;
pub mod assets;
pub mod audit;
pub mod groups;
pub mod health;
pub mod imports;
pub mod invitations;
pub mod members;
pub mod settings;
pub mod tokens;
pub mod webhooks;

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use utoipa::IntoParams;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use crate::AppState;

/// The `{ws}` path segment of every workspace route, which [`crate::auth::Admin`] reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WorkspacePath {
    /// The workspace's slug.
    pub ws: String,
}

/// All routes, before state and layers, and the OpenAPI document of the API among them, built on
/// `shared`: the document's info, tags and shared components ([`crate::openapi::base`]).
///
/// No route goes without its OpenAPI entry unnoticed:
/// - an API handler comes in only through [`ApiRoutes::routes`] and utoipa-axum's `routes!`, which
///   needs the handler's `#[utoipa::path]` (without one it does not compile) and routes it at the
///   path and methods written there, so the two cannot disagree;
/// - the pages of [`undocumented`] are the only other routes, and the test below fails for any
///   route of the finished router that is neither documented nor one of them (a `.route` added
///   to [`undocumented`] included);
/// - `tests/tests/openapi.rs` calls every documented operation on a running server: each reaches
///   its handler and answers a status its entry lists, and each path allows exactly its
///   documented methods.
pub fn router(shared: OpenApi) -> (Router<AppState>, OpenApi) {
    let (api, document) = api(shared).0.split_for_parts();
    (api.merge(undocumented()), document)
}

/// Every API route. Each handler is registered by `routes!`, which reads its `#[utoipa::path]`
/// (a handler without one does not compile) and routes it at the path and methods documented
/// there.
fn api(shared: OpenApi) -> ApiRoutes {
    ApiRoutes(OpenApiRouter::with_openapi(shared))
        .routes(routes!(imports::create::handle, imports::list::handle))
        .routes(routes!(imports::template::handle))
        .routes(routes!(imports::get::handle))
        .routes(routes!(imports::results::handle))
        .routes(routes!(imports::retry::handle))
        .routes(routes!(imports::cancel::handle))
        .routes(routes!(members::list))
        .routes(routes!(members::remind::handle))
        .routes(routes!(members::get))
        .routes(routes!(members::events::list))
        .routes(routes!(members::resend::handle))
        .routes(routes!(members::invitation_link::handle))
        .routes(routes!(members::archive::archive))
        .routes(routes!(members::archive::unarchive))
        .routes(routes!(members::unsuppress::handle))
        .routes(routes!(members::change_email::handle))
        .routes(routes!(groups::create, groups::list))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::delete))
        .routes(routes!(webhooks::log))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::replay))
        .routes(routes!(webhooks::enable))
        .routes(routes!(audit::list))
        .routes(routes!(settings::get, settings::put))
        .routes(routes!(invitations::show))
        .routes(routes!(invitations::accept))
        .routes(routes!(acceptances::verify))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(health::document))
}

/// The routes left out of the OpenAPI document on purpose, all of them: the admin's page and the
/// pages' static files, for browsers, not API. Every other route belongs in [`api`]; the test
/// below lists these three.
fn undocumented() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin") }))
        .route("/admin", get(assets::admin_page))
        .route("/assets/{file}", get(assets::serve))
}

/// The API's routes with their document. It has no `route` (unlike `OpenApiRouter`), so a route
/// can only come in through [`ApiRoutes::routes`], with its OpenAPI entry.
struct ApiRoutes(OpenApiRouter<AppState>);

impl ApiRoutes {
    /// Adds the handlers of one `routes!`, at their documented path.
    fn routes(self, handlers: UtoipaMethodRouter<AppState>) -> ApiRoutes {
        ApiRoutes(self.0.routes(handlers))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// `(METHOD, path)` of every route of `router`, read from its `Debug` output, as axum has no
    /// API that lists a router's routes. Should that output change, the test below fails (it finds
    /// other routes than the document's); it cannot pass by finding none.
    fn routed(router: &Router<AppState>) -> BTreeSet<(String, String)> {
        let debug = format!("{router:?}");
        let (routes, _fallback) = debug.split_once("fallback_router").expect("axum's Debug");
        let (endpoints, node) = routes.split_once("node: Node").expect("axum's Debug");
        let paths: BTreeMap<&str, &str> = node
            .split("RouteId(")
            .skip(1)
            .filter_map(|entry| {
                let (id, rest) = entry.split_once(')')?;
                let path = rest.strip_prefix(": \"")?.split('"').next()?;
                Some((id, path))
            })
            .collect();
        endpoints
            .split("RouteId(")
            .skip(1)
            .filter_map(|entry| {
                let (id, rest) = entry.split_once(')')?;
                let allow = rest
                    .split("allow_header: Bytes(b\"")
                    .nth(1)?
                    .split('"')
                    .next()?;
                Some((id, allow))
            })
            .flat_map(|(id, allow)| {
                let path = paths.get(id).copied().unwrap_or("?").to_owned();
                allow
                    .split(',')
                    .filter(|method| *method != "HEAD")
                    .map(move |method| (method.to_owned(), path.clone()))
            })
            .collect()
    }

    /// The fields of an OpenAPI path item that are operations.
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    #[test]
    fn every_route_is_in_the_openapi_document_or_a_page() {
        let (router, document) = router(crate::openapi::base());
        let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
        for (path, item) in &document.paths.paths {
            let item = serde_json::to_value(item).unwrap();
            for method in item.as_object().unwrap().keys() {
                if METHODS.contains(&method.as_str()) {
                    expected.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        // `undocumented()`, on purpose.
        for page in ["/", "/admin", "/assets/{file}"] {
            expected.insert(("GET".to_owned(), page.to_owned()));
        }

        let routed = routed(&router);
        let undocumented: Vec<_> = routed.difference(&expected).collect();
        let unrouted: Vec<_> = expected.difference(&routed).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routed without an OpenAPI entry (give the handler a `#[utoipa::path]` and register \
             it in `api()`): {undocumented:?}; documented but not routed: {unrouted:?}"
        );
    }
}

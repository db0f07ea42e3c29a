//! The OpenAPI 3.1 document of the API, served at `GET /api/v1/openapi.json` and checked in as
//! `api/openapi.json` (`invite-api openapi > api/openapi.json` rewrites it).
//!
//! Each handler documents itself with `#[utoipa::path]`, and [`crate::routes::router`] registers
//! it through utoipa-axum's `routes!`, which takes the route's path and methods from that
//! annotation: the router and the document are built from the same facts. This module gives what
//! the operations share (the document's info and tags, the bearer scheme, and as components the
//! error body and the error answers of [`crate::error`]) and renders the whole. It depends on the
//! routes, never the reverse: the route that serves the document is handed its text
//! ([`crate::routes::health::DocumentJson`]).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{
    BadRequest, ErrorBody, ErrorDetail, Forbidden, InternalError, NotFound, PayloadTooLarge,
    RequestTimeout, TooManyRequests, Unauthorized, Unavailable, UnsupportedMediaType,
};

/// Where the document is served.
pub const PATH: &str = "/api/v1/openapi.json";

/// The name of the bearer security scheme that every workspace route requires.
pub const BEARER: &str = "bearer";

/// What the operations share; [`crate::routes::router`] adds the operations.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "bulk-invite",
        description = "Invite people into workspaces in bulk from a CSV file or workbook: upload, \
            follow the import, download its per-row results, and support the invitees whose \
            emails failed. Routes under `/api/v1/workspaces/{ws}/` need `Authorization: Bearer \
            <token>` of an active admin of workspace `{ws}`. Errors are \
            `{\"error\":{\"code\":\"…\",\"message\":\"…\"}}`. Any request whose body pauses \
            or trickles is answered 408 `request_timeout`, and any but the upload not answered in \
            time 503 `timeout`."
    ),
    tags(
        (
            name = "imports",
            description = "Upload a file of people to invite, follow its progress, download its \
                per-row results, and send its failed emails again."
        ),
        (
            name = "members",
            description = "The workspace's members and their latest invitation email; resend, \
                copy a link, archive and unarchive."
        ),
        (name = "groups", description = "The custom groups that rows of a file may name."),
        (
            name = "tokens",
            description = "The workspace's API tokens: list (never a secret), create, revoke."
        ),
        (
            name = "webhooks",
            description = "Signed webhooks (Standard Webhooks): endpoints (the secret shown \
                once), their delivery log, a test event, replay, and enabling a disabled one."
        ),
        (name = "audit", description = "Who did what in the workspace."),
        (
            name = "settings",
            description = "The workspace's settings: where an accepted invitation hands over to \
                the workspace's own application."
        ),
        (
            name = "invitations",
            description = "The invitee's link: public, JSON for API clients and pages for \
                browsers."
        ),
        (
            name = "acceptances",
            description = "The hand-over token an accepted invitation brings to the workspace's \
                application: public, the token is the capability, verified once."
        ),
        (
            name = "operations",
            description = "Liveness, readiness, Prometheus metrics and this document: public."
        ),
    ),
    components(
        schemas(ErrorBody, ErrorDetail),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            PayloadTooLarge,
            UnsupportedMediaType,
            RequestTimeout,
            TooManyRequests,
            InternalError,
            Unavailable,
        ),
    ),
    modifiers(&BearerScheme),
)]
struct Shared;

/// The shared parts of the document, before any operation.
pub fn base() -> utoipa::openapi::OpenApi {
    Shared::openapi()
}

/// Adds the bearer scheme of the admin API tokens.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An API token of an active admin of the workspace in the path (`bi_…`), from \
                 `invite-api token create` or `POST …/tokens`.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
    }
}

/// The whole document, as [`crate::routes::router`] builds it on [`base`].
pub fn document() -> utoipa::openapi::OpenApi {
    crate::routes::router(base()).1
}

/// The document as served and checked in: pretty JSON with a final newline.
pub fn to_json() -> String {
    json(&document())
}

/// `document` as served and checked in.
pub fn json(document: &utoipa::openapi::OpenApi) -> String {
    let mut json = document
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}

#[cfg(test)]
mod tests {
    //! The document's shape. That it matches what the server really routes is checked against a
    //! running server in `tests/tests/openapi.rs`.

    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::Value;

    use super::*;

    fn json() -> Value {
        serde_json::to_value(document()).unwrap()
    }

    /// `(METHOD, path)` of every operation.
    fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
        let mut found = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                found.insert((method.to_uppercase(), path.clone()), operation.clone());
            }
        }
        found
    }

    #[test]
    fn the_document_has_every_api_route_and_no_page() {
        // A route added to `routes::api` adds a line here; one left out of the document cannot be
        // added there at all (see `routes::ApiRoutes`).
        let expected: BTreeSet<(String, String)> = [
            ("POST", "/api/v1/workspaces/{ws}/imports"),
            ("GET", "/api/v1/workspaces/{ws}/imports"),
            ("GET", "/api/v1/workspaces/{ws}/imports/template"),
            ("GET", "/api/v1/workspaces/{ws}/imports/{id}"),
            ("GET", "/api/v1/workspaces/{ws}/imports/{id}/results"),
            ("POST", "/api/v1/workspaces/{ws}/imports/{id}/retry"),
            ("POST", "/api/v1/workspaces/{ws}/imports/{id}/cancel"),
            ("GET", "/api/v1/workspaces/{ws}/members"),
            ("GET", "/api/v1/workspaces/{ws}/members/{id}"),
            ("GET", "/api/v1/workspaces/{ws}/members/{id}/events"),
            ("POST", "/api/v1/workspaces/{ws}/members/remind"),
            ("POST", "/api/v1/workspaces/{ws}/members/{id}/resend"),
            (
                "POST",
                "/api/v1/workspaces/{ws}/members/{id}/invitation-link",
            ),
            ("POST", "/api/v1/workspaces/{ws}/members/{id}/archive"),
            ("POST", "/api/v1/workspaces/{ws}/members/{id}/unarchive"),
            ("POST", "/api/v1/workspaces/{ws}/members/{id}/unsuppress"),
            ("POST", "/api/v1/workspaces/{ws}/members/{id}/email"),
            ("POST", "/api/v1/workspaces/{ws}/groups"),
            ("GET", "/api/v1/workspaces/{ws}/groups"),
            ("GET", "/api/v1/workspaces/{ws}/tokens"),
            ("POST", "/api/v1/workspaces/{ws}/tokens"),
            ("DELETE", "/api/v1/workspaces/{ws}/tokens/{id}"),
            ("GET", "/api/v1/workspaces/{ws}/webhooks"),
            ("POST", "/api/v1/workspaces/{ws}/webhooks"),
            ("DELETE", "/api/v1/workspaces/{ws}/webhooks/{id}"),
            ("GET", "/api/v1/workspaces/{ws}/webhooks/{id}/deliveries"),
            ("POST", "/api/v1/workspaces/{ws}/webhooks/{id}/test"),
            (
                "POST",
                "/api/v1/workspaces/{ws}/webhooks/{id}/deliveries/{delivery_id}/replay",
            ),
            ("POST", "/api/v1/workspaces/{ws}/webhooks/{id}/enable"),
            ("GET", "/api/v1/workspaces/{ws}/audit"),
            ("GET", "/api/v1/workspaces/{ws}/settings"),
            ("PUT", "/api/v1/workspaces/{ws}/settings"),
            ("GET", "/invitations/{token}"),
            ("POST", "/invitations/{token}/accept"),
            ("GET", "/api/v1/acceptances/{token}"),
            ("GET", "/healthz"),
            ("GET", "/readyz"),
            ("GET", "/metrics"),
            ("GET", PATH),
        ]
        .into_iter()
        .map(|(method, path)| (method.to_owned(), path.to_owned()))
        .collect();

        let documented: BTreeSet<_> = operations(&json()).into_keys().collect();

        assert_eq!(documented, expected);
    }

    #[test]
    fn workspace_routes_and_only_they_need_the_bearer_token() {
        let doc = json();
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER],
            serde_json::json!({
                "type": "http",
                "scheme": "bearer",
                "description": doc["components"]["securitySchemes"][BEARER]["description"],
            })
        );
        for ((method, path), operation) in operations(&doc) {
            let security = &operation["security"];
            if path.starts_with("/api/v1/workspaces/{ws}/") {
                assert_eq!(
                    *security,
                    serde_json::json!([{ BEARER: [] }]),
                    "{method} {path}"
                );
                for status in ["401", "403", "404", "429", "500", "503"] {
                    assert!(
                        operation["responses"].get(status).is_some(),
                        "{method} {path} documents {status}"
                    );
                }
            } else {
                assert!(security.is_null(), "{method} {path} is public");
            }
        }
    }

    #[test]
    fn operations_have_unique_ids_and_declare_each_path_parameter() {
        let mut ids = BTreeSet::new();
        for ((method, path), operation) in operations(&json()) {
            let id = operation["operationId"].as_str().unwrap().to_owned();
            assert!(ids.insert(id.clone()), "{id} is unique");
            assert!(
                operation["summary"].is_string(),
                "{method} {path} has a summary"
            );
            let in_template: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(p["required"], true, "{method} {path}");
                    p["name"].as_str().unwrap()
                })
                .collect();
            assert_eq!(declared, in_template, "{method} {path}");
        }
    }

    #[test]
    fn the_upload_documents_every_body_it_accepts() {
        let doc = json();
        let content =
            doc["paths"]["/api/v1/workspaces/{ws}/imports"]["post"]["requestBody"]["content"]
                .as_object()
                .unwrap();

        let documented: BTreeSet<&str> = content.keys().map(String::as_str).collect();
        let accepted: BTreeSet<&str> = crate::routes::imports::create::RAW_TYPES
            .into_iter()
            .chain(["multipart/form-data"])
            .collect();

        assert_eq!(documented, accepted);
    }

    /// Every `$ref` of the document, wherever it is.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let text = to_json();
        let spec = oas3::from_json(&text).expect("parses as OpenAPI 3.1");
        let version = spec.validate_version().expect("a 3.1.x version");
        assert_eq!((version.major, version.minor), (3, 1));
        for (path, method, operation) in spec.operations() {
            for parameter in &operation.parameters {
                parameter.resolve(&spec).expect("a parameter resolves");
            }
            operation
                .request_body(&spec)
                .expect("the request body resolves");
            for (status, response) in operation.responses.iter().flatten() {
                response
                    .resolve(&spec)
                    .unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
            }
        }

        let doc: Value = serde_json::from_str(&text).unwrap();
        let mut targets = Vec::new();
        refs(&doc, &mut targets);
        assert!(!targets.is_empty());
        for target in targets {
            let pointer = target
                .strip_prefix('#')
                .expect("a reference inside the document");
            assert!(doc.pointer(pointer).is_some(), "{target} resolves");
        }
    }

    #[test]
    fn the_document_is_pretty_json_with_a_final_newline() {
        let text = to_json();

        assert!(
            text.starts_with("{\n  \"openapi\": \"3.1.0\","),
            "{}",
            &text[..40]
        );
        assert!(text.ends_with("}\n") && !text.ends_with("\n\n"));
    }
}

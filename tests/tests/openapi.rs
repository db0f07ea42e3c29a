//! The OpenAPI document against a running server, on the SQLite stack only: what is checked is the
//! router, which is the same on both stacks.
//!
//! "A route added without its OpenAPI entry makes a test fail" holds by these, together (see
//! `invite_api::routes::router` for the whole argument):
//! - an API handler enters the router only through utoipa-axum's `routes!` (`ApiRoutes` in
//!   `api/src/routes/mod.rs` has no `route`), which needs the handler's `#[utoipa::path]` and
//!   routes it at the path and methods written there: an undocumented handler does not compile;
//! - a unit test there compares every route of the finished router with the document plus the
//!   three pages of `routes::undocumented` (served here, and absent from the document);
//! - here, on a running server, every documented operation is answered by its handler (never
//!   axum's own 404 or 405) with a status its entry lists, without a token a workspace route is a
//!   401, and every documented path allows exactly its documented methods (axum's `Allow`);
//! - `api/src/openapi.rs`'s unit tests pin the list of operations and check that the document is
//!   OpenAPI 3.1; the first test below pins `api/openapi.json` to what is served.

use std::collections::BTreeSet;

use invite_api::openapi::PATH;
use invite_tests::app::{Stack, TestApp};
use reqwest::Method;
use reqwest::header::{ALLOW, CONTENT_TYPE, LOCATION};
use serde_json::Value;

/// How to bring `api/openapi.json` up to date.
const REGENERATE: &str = "regenerate it with `cargo run -q -p invite-api -- openapi > \
    api/openapi.json`, then review and commit the diff";

fn checked_in() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/openapi.json");
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading api/openapi.json ({e}): {REGENERATE}"))
}

async fn served(app: &TestApp) -> reqwest::Response {
    app.client
        .get(format!("{}{PATH}", app.base))
        .send()
        .await
        .unwrap()
}

async fn document(app: &TestApp) -> Value {
    served(app).await.json().await.unwrap()
}

/// `path` with its parameters filled in: the app's workspace, id 1, an unknown link token.
fn concrete(app: &TestApp, path: &str) -> String {
    let path = path
        .replace("{ws}", &app.workspace)
        .replace("{id}", "1")
        .replace("{delivery_id}", "1")
        .replace("{token}", "no-such-token");
    assert!(
        !path.contains('{'),
        "a parameter this test does not fill: {path}"
    );
    format!("{}{path}", app.base)
}

/// Each documented path with its documented methods.
fn paths(doc: &Value) -> Vec<(String, BTreeSet<String>)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .map(|m| m.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_checked_in_one_and_needs_no_token() {
    let app = TestApp::spawn_without_workers(Stack::Sqlite).await;

    let response = served(&app).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let served = response.text().await.unwrap();
    let checked_in = checked_in();
    if served != checked_in {
        let line = served
            .lines()
            .zip(checked_in.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "one is longer".to_owned(), |n| format!("line {}", n + 1));
        panic!(
            "api/openapi.json is not the document the API serves (first difference: {line}): {REGENERATE}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_reaches_its_handler_and_answers_a_documented_status() {
    // Each workspace route below is one failed authentication from this address.
    let app = TestApp::spawn_with(Stack::Sqlite, |s| s.auth_failures_per_minute = 1_000).await;
    let doc = document(&app).await;
    let mut operations = 0;

    for (path, methods) in paths(&doc) {
        for method in methods {
            let response = app
                .client
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    concrete(&app, &path),
                )
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            let entry = &doc["paths"][&path][method.to_lowercase()];
            operations += 1;

            assert!(
                entry["responses"].get(status.to_string()).is_some(),
                "{method} {path}: {status} is not among its documented answers: {body}"
            );
            if path.starts_with("/api/v1/workspaces/{ws}/") {
                assert_eq!(status, 401, "{method} {path} without a token: {body}");
            }
            if status == 404 {
                // The handler's 404 (an unknown link), not axum's bodiless one for no route.
                let error: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|_| panic!("{method} {path}: a 404 without a JSON body"));
                assert_eq!(error["error"]["code"], "not_found", "{method} {path}");
            }
        }
    }
    assert_eq!(
        operations, 39,
        "the operations of api/src/openapi.rs's list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_documented_path_allows_exactly_its_documented_methods() {
    let app = TestApp::spawn_without_workers(Stack::Sqlite).await;
    let doc = document(&app).await;

    for (path, documented) in paths(&doc) {
        assert!(
            !documented.contains("PATCH"),
            "{path}: pick another unused method"
        );
        let response = app
            .client
            .patch(concrete(&app, &path))
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), 405, "PATCH {path}");
        let allowed: BTreeSet<String> = response.headers()[ALLOW]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            // axum answers HEAD wherever it routes GET.
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(allowed, documented, "the methods routed at {path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_served_and_are_all_that_is_left_out_of_the_document() {
    let app = TestApp::spawn_without_workers(Stack::Sqlite).await;
    let doc = document(&app).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| client.get(format!("{}{path}", app.base)).send();

    let root = get("/").await.unwrap();
    let admin = get("/admin").await.unwrap();
    let asset = get("/assets/invitation.css").await.unwrap();

    assert_eq!(root.status(), 303);
    assert_eq!(root.headers()[LOCATION], "/admin");
    assert_eq!(admin.status(), 200);
    assert!(
        admin.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(asset.status(), 200);
    assert!(
        asset.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let documented: Vec<String> = paths(&doc).into_iter().map(|(path, _)| path).collect();
    for page in ["/", "/admin", "/assets/{file}"] {
        assert!(
            !documented.iter().any(|p| p == page),
            "{page} is a page, not API"
        );
    }
}

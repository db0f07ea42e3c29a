//! The corpus of hostile workbooks (`invite_tests::hostile`) against a real `invite-api serve`
//! process on both stacks: every file, as a dry run and for real, gets a 4xx in words; the process
//! stays up with its peak resident set under the documented bound; and an ordinary workbook
//! uploaded afterwards is imported to the end.

use std::sync::LazyLock;

use invite_tests::app::{Stack, TestApp};
use invite_tests::hostile::{self, Hostile};
use invite_tests::process::ApiProcess;
use serde_json::Value;

/// The README's bound on an API process's own memory (its conversion children apart).
const API_PEAK_RSS: u64 = 128 * 1024 * 1024;

/// Generated once per process: it deflates some 500 MB.
static CORPUS: LazyLock<Vec<Hostile>> = LazyLock::new(hostile::corpus);

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn upload(
    app: &TestApp,
    api: &ApiProcess,
    name: &str,
    bytes: &[u8],
    dry_run: bool,
) -> reqwest::Response {
    let admin = (app.workspace.as_str(), app.token.as_str());
    app.upload_file_to(&api.base, admin, name, bytes, dry_run)
        .await
}

/// Uploads every hostile file twice and checks the answer and the process after each.
async fn every_hostile_workbook_is_refused_in_words(app: &TestApp, api: &mut ApiProcess) {
    for file in CORPUS.iter() {
        for dry_run in [true, false] {
            let response = upload(app, api, file.name, &file.bytes, dry_run).await;
            let status = response.status();
            let body: Value = response.json().await.expect("a JSON error");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            eprintln!(
                "{} (dry run {dry_run}): {status} {}: {message}",
                file.name, body["error"]["code"]
            );
            assert!(status.is_client_error(), "{}: {status} {body}", file.name);
            assert!(
                message.len() > 40,
                "{}: a message in words: {body}",
                file.name
            );
            assert!(api.is_running(), "invite-api exited on {}", file.name);
        }
    }
}

async fn hostile_workbooks_get_a_4xx_in_words_and_the_api_stays_up(stack: Stack) {
    let mut app = TestApp::spawn_without_workers(stack).await;
    if stack == Stack::Postgres {
        // On Redis the API process only enqueues; on SQLite it runs the embedded workers itself.
        app.start_worker().await;
    }
    let mut api = ApiProcess::start(env!("CARGO_BIN_EXE_invite-api"), &app, &[]).await;

    every_hostile_workbook_is_refused_in_words(&app, &mut api).await;
    let peak = api.peak_rss();
    eprintln!(
        "invite-api peak RSS after the corpus: {} MiB",
        peak / (1024 * 1024)
    );
    assert!(peak < API_PEAK_RSS, "peak RSS {peak} bytes");

    let response = upload(&app, &api, "people.xlsx", &fixture("people.xlsx"), false).await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let import = app.settled(id).await;
    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(import["rows"]["invited"], 10, "{import}");
    assert!(api.is_running());
}

invite_tests::on_both_stacks!(hostile_workbooks_get_a_4xx_in_words_and_the_api_stays_up);

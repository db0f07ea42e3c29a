//! Every file an admin's spreadsheet gives, on both stacks: the exports of `tests/fixtures/` (made
//! by LibreOffice, see `scripts/fixtures`), exact row numbers, dry runs and the hard limits.

use std::collections::BTreeMap;

use diesel::dsl::count_star;
use diesel::prelude::*;
use invite_shared::db::DbConn;
use invite_shared::db::schema::{members, workspaces};
use invite_shared::intake::records::MAX_CELL_BYTES;
use invite_shared::on_conn;
use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;
use serde_json::Value;

on_both_stacks!(
    every_export_of_the_same_ten_people_invites_them_with_their_names_exact,
    the_results_name_each_row_as_the_spreadsheet_numbers_it,
    a_workbook_keeps_the_row_numbers_of_its_sheet,
    a_dry_run_reports_every_row_as_the_real_run_does_and_writes_nothing,
    a_file_over_max_rows_fails_naming_the_limit_before_any_row_is_applied,
    a_file_of_a_million_and_one_rows_fails_naming_the_default_limit,
    an_oversized_cell_or_row_is_invalid_and_its_neighbours_are_invited,
    files_that_are_not_spreadsheets_get_a_clear_4xx_and_the_workers_go_on,
    a_workbook_over_max_workbook_bytes_gets_413_and_nothing_is_stored,
    a_conversion_past_its_memory_limit_fails_that_upload_alone,
    a_conversion_past_its_time_limit_fails_that_upload_alone,
);

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Email → (first name, last name) of the source the exports were made from.
fn source_people() -> BTreeMap<String, (String, String)> {
    let source = fixture("people.csv");
    let mut reader = csv::Reader::from_reader(source.as_slice());
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[2].to_owned(), (r[0].to_owned(), r[1].to_owned()))
        })
        .collect()
}

/// Uploads a file to a workspace of its own and waits for the import to settle.
async fn import_into(app: &TestApp, slug: &str, file: &str, dry_run: bool) -> (String, Value) {
    let token = app.admin_token(slug).await;
    let response = app
        .upload_file((slug, &token), file, fixture(file), dry_run)
        .await;
    assert_eq!(
        response.status(),
        202,
        "{file}: {}",
        response.text().await.unwrap()
    );
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let import = app.settled_in(slug, &token, id).await;
    (token, import)
}

/// The results file of an import of workspace `slug`.
async fn results_in(app: &TestApp, (slug, token): (&str, &str), import: &Value) -> String {
    let url = format!(
        "{}/api/v1/workspaces/{slug}/imports/{}/results",
        app.base, import["id"]
    );
    let response = app.client.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// Email → (first name, last name) of the workspace's invited members.
async fn invited_names(
    app: &TestApp,
    slug: &str,
    token: &str,
) -> BTreeMap<String, (String, String)> {
    let url = format!(
        "{}/api/v1/workspaces/{slug}/members?status=invited",
        app.base
    );
    let page: Value = app
        .client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (text("email"), (text("first_name"), text("last_name")))
        })
        .collect()
}

async fn every_export_of_the_same_ten_people_invites_them_with_their_names_exact(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let people = source_people();
    assert_eq!(people.len(), 10);
    let exports = [
        ("people-utf8.csv", None),
        ("people-utf8-bom.csv", None),
        ("people-utf16.txt", Some("UTF-16 LE")),
        ("people-windows1252.csv", Some("Windows-1252")),
        ("people-semicolon.csv", None),
        ("people.xlsx", Some(".xlsx workbook")),
        ("people.ods", Some(".ods workbook")),
    ];
    for (i, (file, note)) in exports.into_iter().enumerate() {
        let slug = format!("export{i}");
        let (token, import) = import_into(&app, &slug, file, false).await;

        assert_eq!(import["status"], "completed", "{file}: {import}");
        assert_eq!(import["rows"]["invited"], 10, "{file}: {import}");
        assert_eq!(import["emails"]["sent"], 10, "{file}: {import}");
        let warnings = import["warnings"].to_string();
        if let Some(note) = note {
            assert!(warnings.contains(note), "{file}: {warnings}");
        }
        assert_eq!(invited_names(&app, &slug, &token).await, people, "{file}");
    }
}

async fn the_results_name_each_row_as_the_spreadsheet_numbers_it(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let (token, import) = import_into(&app, "layout", "rows-layout.csv", false).await;

    assert_eq!(import["status"], "completed", "{import}");
    let results = results_in(&app, ("layout", &token), &import).await;
    let rows: Vec<(u64, String, String)> = csv::Reader::from_reader(results.as_bytes())
        .records()
        .map(|r| {
            let r = r.unwrap();
            let field = r[3].split(':').next().unwrap_or_default().to_owned();
            (r[0].parse().unwrap(), r[2].to_owned(), field)
        })
        .collect();
    assert_eq!(rows, layout_expectations(), "{results}");
}

async fn a_workbook_keeps_the_row_numbers_of_its_sheet(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    for (i, file) in ["sheet-layout.xlsx", "sheet-layout.ods"]
        .into_iter()
        .enumerate()
    {
        let slug = format!("sheet{i}");
        let (token, import) = import_into(&app, &slug, file, false).await;

        assert_eq!(import["rows"]["invited"], 2, "{file}: {import}");
        let results = results_in(&app, (&slug, &token), &import).await;
        let rows: Vec<&str> = results
            .lines()
            .skip(1)
            .map(|l| &l[..l.find(',').unwrap()])
            .collect();
        assert_eq!(rows, ["4", "6"], "{file}: {results}");
    }
}

/// (row, outcome, failing field) of every data row of `rows-layout.csv`, as
/// `tests/fixtures/README.md` lists them.
fn layout_expectations() -> Vec<(u64, String, String)> {
    [
        (2, "invited", ""),
        // Rows 3 and 4 are empty; row 5's metadata cell spans three lines.
        (5, "invited", ""),
        // Row 6 is empty; row 7's cell spans three CRLF lines.
        (7, "invited", ""),
        (8, "invalid", "email"),
        // Row 9 is empty.
        (10, "invalid", "role"),
        // A line break inside the quoted last name: one row, and not a valid name.
        (11, "invalid", "last_name"),
        (12, "invited", ""),
    ]
    .map(|(row, outcome, field)| (row, outcome.to_owned(), field.to_owned()))
    .to_vec()
}

async fn a_dry_run_reports_every_row_as_the_real_run_does_and_writes_nothing(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    // People already in the workspace: the runs below must both skip them.
    let earlier = app.upload_ok(people_csv(50)).await;
    app.settled(earlier).await;
    let emails_before = app.emails().len();
    let members_before = member_count(&app).await;
    let file = mixed_file(10_000);

    let dry = upload_settled(&app, &file, true).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(app.emails().len(), emails_before, "a dry run sends nothing");
    assert_eq!(
        member_count(&app).await,
        members_before,
        "a dry run adds no member"
    );
    let real = upload_settled(&app, &file, false).await;

    // Rows 19 and 39 of the earlier 50 have a bad email here: 48 are already invited.
    let already = 48;
    assert_eq!(dry["rows"], real["rows"]);
    assert_eq!(dry["rows"]["invalid"], 500);
    assert_eq!(dry["rows"]["skipped"], 100 + already);
    let (dry_rows, real_rows) = (outcomes(&app, &dry).await, outcomes(&app, &real).await);
    assert_eq!(dry_rows.len(), 10_000);
    assert_eq!(dry_rows, real_rows);
    assert_eq!(
        member_count(&app).await,
        members_before + 10_000 - 500 - 100 - already
    );
}

/// `n` rows: every 20th has a bad email, every 100th repeats the email of the row before it, and
/// the first 50 are the people of `people_csv(50)`.
fn mixed_file(n: usize) -> String {
    let mut csv = String::from("First Name,Last Name,Email,User Role\n");
    for i in 0..n {
        let email = if i % 20 == 19 {
            format!("not-an-email-{i}")
        } else if i % 100 == 50 {
            format!("person{}@example.com", i - 1)
        } else {
            format!("person{i}@example.com")
        };
        csv.push_str(&format!("First{i},Last{i},{email},End User\n"));
    }
    csv
}

async fn upload_settled(app: &TestApp, file: &str, dry_run: bool) -> Value {
    let response = app
        .upload_file((&app.workspace, &app.token), "mixed.csv", file, dry_run)
        .await;
    assert_eq!(response.status(), 202);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    app.settled(id).await
}

/// (row, email, outcome, reason) of every line of an import's results file.
async fn outcomes(app: &TestApp, import: &Value) -> Vec<[String; 4]> {
    let results = app.results(import["id"].as_i64().unwrap()).await;
    csv::Reader::from_reader(results.as_bytes())
        .records()
        .map(|r| {
            let r = r.unwrap();
            [0, 1, 2, 3].map(|i| r[i].to_owned())
        })
        .collect()
}

async fn member_count(app: &TestApp) -> i64 {
    let slug = app.workspace.clone();
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| {
                members::table
                    .inner_join(workspaces::table)
                    .filter(workspaces::slug.eq(&slug))
                    .select(count_star())
                    .first(c)
            })?)
        })
        .await
        .unwrap()
}

async fn a_file_over_max_rows_fails_naming_the_limit_before_any_row_is_applied(stack: Stack) {
    let mut app = TestApp::spawn_with(stack, |s| s.max_rows = 100).await;
    app.start_worker().await;
    let members_before = member_count(&app).await;

    let over = app.upload_ok(people_csv(101)).await;
    let over = app.settled(over).await;

    assert_eq!(over["status"], "failed");
    let error = over["error"].as_str().unwrap();
    assert!(
        error.contains("101") && error.contains("100 (MAX_ROWS)"),
        "{error}"
    );
    assert_eq!(over["rows"]["processed"], 0);
    assert_eq!(member_count(&app).await, members_before);

    let at_limit = app.upload_ok(people_csv(100)).await;
    assert_eq!(app.settled(at_limit).await["rows"]["invited"], 100);
}

/// The default limit itself: a million and one rows (52 MB).
async fn a_file_of_a_million_and_one_rows_fails_naming_the_default_limit(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    assert_eq!(app.settings.max_rows, 1_000_000);
    let members_before = member_count(&app).await;

    let id = app.upload_ok(people_csv(1_000_001)).await;
    let import = app.settled(id).await;

    assert_eq!(import["status"], "failed");
    let error = import["error"].as_str().unwrap();
    assert!(
        error.contains("1000001 data rows") && error.contains("1000000 (MAX_ROWS)"),
        "{error}"
    );
    assert_eq!(import["rows"]["processed"], 0);
    assert_eq!(member_count(&app).await, members_before);
}

async fn an_oversized_cell_or_row_is_invalid_and_its_neighbours_are_invited(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let mut csv = String::from("First Name,Email,User Role,Notes\n");
    csv.push_str("Ada,ada@example.com,Admin,\n");
    let long_cell = "x".repeat(MAX_CELL_BYTES + 1);
    csv.push_str(&format!("\"{long_cell}\",big@example.com,Admin,\n"));
    csv.push_str("Bob,bob@example.com,Admin,\n");
    let many_fields = ",yy".repeat(600 * 1024);
    csv.push_str(&format!("Wide,wide@example.com,Admin{many_fields}\n"));
    csv.push_str("Cy,cy@example.com,Admin,\n");

    let id = app.upload_ok(csv).await;
    let import = app.settled(id).await;

    assert_eq!(import["rows"]["invited"], 3, "{import}");
    assert_eq!(import["rows"]["invalid"], 2, "{import}");
    let results = app.results(id).await;
    let lines: Vec<&str> = results.lines().collect();
    assert!(
        lines[2].starts_with(
            "3,big@example.com,invalid,first_name: the cell in column 1 is longer than 64 KiB"
        ),
        "{}",
        lines[2]
    );
    assert!(
        lines[4].starts_with("5,wide@example.com,invalid,row: the row is longer than 1 MiB"),
        "{}",
        lines[4]
    );
    for (line, email) in [(1, "ada"), (3, "bob"), (5, "cy")] {
        assert!(
            lines[line].contains(&format!("{email}@example.com,invited")),
            "{}",
            lines[line]
        );
    }
}

async fn files_that_are_not_spreadsheets_get_a_clear_4xx_and_the_workers_go_on(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let token = app.token.clone();
    let cases = [
        ("image.png", fixture("image.png"), 415, "a PNG image"),
        (
            "not-a-workbook.zip",
            fixture("not-a-workbook.zip"),
            422,
            "unreadable_workbook",
        ),
        ("empty.csv", fixture("empty.csv"), 422, "empty_file"),
        (
            "binary.csv",
            b"\x7fELF\x02\x01\x00\x00\nEmail".to_vec(),
            415,
            "binary data",
        ),
    ];
    for (file, bytes, status, said) in cases {
        let response = app
            .upload_file((&app.workspace, &token), file, bytes, false)
            .await;
        assert_eq!(response.status(), status, "{file}");
        let body = response.text().await.unwrap();
        assert!(body.contains(said), "{file}: {body}");
    }
    let header: String = (0..300).map(|i| format!("Column {i},")).collect();
    let wide = app
        .upload(format!("Email,User Role,First Name,{header}\n"))
        .await;
    assert_eq!(wide.status(), 422);
    assert!(wide.text().await.unwrap().contains("too_many_columns"));

    let id = app.upload_ok(people_csv(3)).await;
    assert_eq!(app.settled(id).await["rows"]["invited"], 3);
    // A NUL inside a row is that row's problem only.
    let nul = app.upload_ok(fixture("nul-bytes.csv")).await;
    let nul = app.settled(nul).await;
    assert_eq!(nul["rows"]["invalid"], 1, "{nul}");
    let results = app.results(nul["id"].as_i64().unwrap()).await;
    assert!(
        results.lines().nth(1).unwrap().starts_with("2,"),
        "{results}"
    );
}

async fn a_workbook_over_max_workbook_bytes_gets_413_and_nothing_is_stored(stack: Stack) {
    let workbook = fixture("people.xlsx");
    let app =
        TestApp::spawn_with(stack, |s| s.max_workbook_bytes = workbook.len() as u64 - 1).await;

    let response = app
        .upload_file((&app.workspace, &app.token), "people.xlsx", workbook, false)
        .await;

    assert_eq!(response.status(), 413);
    let listed = app.get_json("/imports").await;
    assert_eq!(listed["imports"], serde_json::json!([]));
}

/// `pg_column_compression`'s answer for a stored piece.
#[derive(QueryableByName)]
struct Compression {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    method: Option<String>,
}

#[tokio::test]
async fn on_postgres_an_upload_is_stored_compressed_with_lz4() {
    // pglz, PostgreSQL's default, took about 40% of the time to store a 100 MiB upload.
    let app = TestApp::spawn_without_workers(Stack::Postgres).await;
    let csv = people_csv(200);
    assert!(csv.len() > 4096, "large enough to be compressed");
    let id = app.upload_ok(csv).await;

    let method = app
        .db
        .run(move |conn| {
            let DbConn::Pg(c) = conn else {
                unreachable!("the app runs on PostgreSQL")
            };
            Ok(diesel::sql_query(
                "SELECT pg_column_compression(data) AS method FROM import_chunks WHERE import_id = $1",
            )
            .bind::<diesel::sql_types::BigInt, _>(id)
            .get_result::<Compression>(c)?
            .method)
        })
        .await
        .unwrap();
    assert_eq!(method.as_deref(), Some("lz4"));
}

/// Uploads the people workbook and returns the answer's status and error message.
async fn upload_people_workbook(app: &TestApp) -> (u16, String) {
    let response = app
        .upload_file(
            (&app.workspace, &app.token),
            "people.xlsx",
            fixture("people.xlsx"),
            false,
        )
        .await;
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The child that converts a workbook aborts when it passes its address-space limit; the upload
/// gets 422 in words and the server takes the next upload.
async fn a_conversion_past_its_memory_limit_fails_that_upload_alone(stack: Stack) {
    // Less than the child's binary alone maps: its first allocation fails.
    let app = TestApp::spawn_with(stack, |s| s.workbook_conversion_memory = 8 << 20).await;

    let (status, message) = upload_people_workbook(&app).await;

    assert_eq!(status, 422, "{message}");
    assert!(message.contains("within the 8 MiB of memory"), "{message}");
    assert_eq!(app.upload(people_csv(3)).await.status(), 202);
}

/// A conversion that outlasts `WORKBOOK_CONVERSION_TIMEOUT` is killed and its upload gets 422.
async fn a_conversion_past_its_time_limit_fails_that_upload_alone(stack: Stack) {
    let app = TestApp::spawn_with(stack, |s| {
        s.workbook_conversion_timeout = std::time::Duration::from_nanos(1);
    })
    .await;

    let (status, message) = upload_people_workbook(&app).await;

    assert_eq!(status, 422, "{message}");
    assert!(message.contains("WORKBOOK_CONVERSION_TIMEOUT"), "{message}");
    assert_eq!(app.upload(people_csv(3)).await.status(), 202);
}

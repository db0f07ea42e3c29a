//! The repair loop: download the rows that were not invited in the upload's own columns with
//! their reason, fix them, upload that file again, and exactly the fixed rows are invited.

use std::time::Duration;

use invite_shared::service::retention;
use invite_tests::app::{Stack, TestApp};
use invite_tests::on_both_stacks;
use serde_json::Value;

on_both_stacks!(
    the_rows_to_fix_come_in_the_uploads_own_columns_and_uploading_them_fixed_invites_exactly_those,
    an_unknown_outcome_is_refused_and_another_workspaces_import_is_not_found,
    the_rows_to_fix_of_a_deleted_upload_are_gone,
);

/// Extra columns (`Team`, `Notes`) and an order of its own; rows 3 and 4 are invalid (an address
/// that is not one, a role that does not exist), row 5 a duplicate of row 2.
const UPLOAD: &str = "Team,Email,User Role,Notes,First Name\n\
Blue,ada@example.com,Admin,first,Ada\n\
Red,not-an-address,Builder,=1+1,Bob\n\
Green,carl@example.com,Wizard,,Carl\n\
Blue,ada@example.com,Builder,again,Ada Two\n\
Red,dora@example.com,End User,,Dora\n";

fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

async fn rows_to_fix(app: &TestApp, id: i64) -> String {
    let response = app
        .get(&format!("/imports/{id}/results?outcome=invalid,skipped"))
        .await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn member_emails(app: &TestApp) -> Vec<String> {
    let page = app.get_json("/members?limit=500").await;
    let mut emails: Vec<String> = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_owned())
        .collect();
    emails.sort();
    emails
}

async fn the_rows_to_fix_come_in_the_uploads_own_columns_and_uploading_them_fixed_invites_exactly_those(
    stack: Stack,
) {
    let app = TestApp::spawn(stack).await;
    let first = app.upload_ok(UPLOAD).await;
    app.settled(first).await;
    let members_before = member_emails(&app).await;

    let text = rows_to_fix(&app, first).await;
    let (header, rows) = read_csv(&text);

    assert_eq!(
        header,
        [
            "Team",
            "Email",
            "User Role",
            "Notes",
            "First Name",
            "reason"
        ]
    );
    let cells: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r[..5].iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        cells,
        vec![
            vec!["Red", "not-an-address", "Builder", "'=1+1", "Bob"],
            vec!["Green", "carl@example.com", "Wizard", "", "Carl"],
            vec!["Blue", "ada@example.com", "Builder", "again", "Ada Two"],
        ],
        "{text}"
    );
    assert!(rows[0][5].contains("email"), "{text}");
    assert!(rows[1][5].contains("role"), "{text}");
    assert!(rows[2][5].contains("duplicate_in_file"), "{text}");

    // Fixed in a spreadsheet: the address and the role; the duplicate left as it was.
    let fixed = text
        .replace("not-an-address", "bob@example.com")
        .replace("Wizard", "Builder");
    let second = app.upload_ok(fixed).await;
    let settled = app.settled(second).await;

    assert_eq!(settled["rows"]["invited"], 2, "{settled}");
    assert_eq!(settled["rows"]["skipped"], 1, "{settled}");
    assert_eq!(settled["rows"]["invalid"], 0, "{settled}");
    let mut expected = members_before.clone();
    expected.extend(["bob@example.com".to_owned(), "carl@example.com".to_owned()]);
    expected.sort();
    assert_eq!(member_emails(&app).await, expected);
    let ada = app.member("ada@example.com").await;
    assert_eq!(
        ada["first_name"], "Ada",
        "the already invited row changed nothing"
    );
    assert_eq!(ada["role"], "Admin", "{ada}");
    assert_eq!(
        app.emails().len(),
        4,
        "ada and dora once, then bob and carl"
    );
    let (header_again, again) = read_csv(&rows_to_fix(&app, second).await);
    assert_eq!(header_again, header, "the new reason replaces the old one");
    assert_eq!(again.len(), 1, "only the duplicate is left: {again:?}");
    assert!(again[0][5].contains("already_invited"), "{again:?}");
}

async fn an_unknown_outcome_is_refused_and_another_workspaces_import_is_not_found(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(UPLOAD).await;
    app.settled(id).await;
    let other = app.other_workspace().await;

    let unknown = app
        .get(&format!("/imports/{id}/results?outcome=invalid,broken"))
        .await;
    let theirs = app
        .get(&format!(
            "/imports/{}/results?outcome=invalid",
            other.import
        ))
        .await;

    assert_eq!(unknown.status(), 422);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_filter", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("broken"),
        "{body}"
    );
    assert_eq!(theirs.status(), 404);
}

async fn the_rows_to_fix_of_a_deleted_upload_are_gone(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(UPLOAD).await;
    app.settled(id).await;
    let deleted = retention::delete_expired_uploads(&app.db, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(deleted, 1);

    let gone = app
        .get(&format!("/imports/{id}/results?outcome=invalid"))
        .await;

    assert_eq!(gone.status(), 410);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upload_deleted", "{body}");
    // The results file itself stays.
    assert_eq!(app.results(id).await.lines().count(), 6);
}

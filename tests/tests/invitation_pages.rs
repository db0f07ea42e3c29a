//! The invitee's pages, on both stacks: a browser opens the emailed link, reads who invites them
//! to what, accepts with a plain form, and gets clear pages for links that cannot be used; API
//! clients keep their JSON.

use diesel::prelude::*;
use invite_shared::db::schema::{accounts, invitation_links, members, workspaces};
use invite_shared::on_conn;
use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;
use reqwest::Response;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};

on_both_stacks!(
    a_browser_sees_the_workspace_the_inviter_the_role_and_the_accept_form,
    submitting_the_form_welcomes_an_active_member_and_the_link_is_then_used,
    an_unknown_link_gets_a_404_page_that_reveals_nothing,
    an_expired_link_gets_a_410_page_asking_an_admin_of_the_workspace_to_resend_it,
    an_archived_members_link_gets_a_410_page,
    api_clients_keep_their_json_answers_with_nosniff,
    markup_in_names_from_the_csv_and_the_inviter_renders_as_text,
);

/// What a browser sends when it follows a link or submits a form.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The Content Security Policy of the invitation pages (the README's dependency notes, askama).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' \
    data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Uploads `csv`, waits until its emails are out and returns the link token of the first one.
async fn emailed_token(app: &TestApp, csv: impl Into<Vec<u8>>) -> String {
    let id = app.upload_ok(csv).await;
    app.settled(id).await;
    app.token_in(&app.emails()[0].text_body())
}

/// `GET /invitations/{token}` as a browser.
async fn open_link(app: &TestApp, token: &str) -> Response {
    app.client
        .get(format!("{}/invitations/{token}", app.base))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap()
}

/// The accept form as a browser submits it: urlencoded (the form has no fields), Accept HTML.
async fn submit_form(app: &TestApp, token: &str) -> Response {
    app.client
        .post(format!("{}/invitations/{token}/accept", app.base))
        .header("accept", BROWSER_ACCEPT)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap()
}

/// A request of an API client asking for JSON.
async fn as_api_client(request: reqwest::RequestBuilder) -> Response {
    request
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
}

/// Asserts an HTML page with the pages' security headers; returns its status and body.
async fn html_page(response: Response) -> (u16, String) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert_html_with_security_headers(&headers);
    (status, response.text().await.unwrap())
}

fn assert_html_with_security_headers(headers: &HeaderMap) {
    assert_eq!(headers[CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers["content-security-policy"], POLICY);
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
}

/// The `status` of `person0@example.com`'s membership, through the admin API.
async fn invitee_status(app: &TestApp) -> Value {
    let id = app.member_id("person0@example.com").await;
    let member = app.get_json(&format!("/members/{id}")).await;
    member["status"].clone()
}

/// Applies `change` to the test's database.
async fn update_db(
    app: &TestApp,
    change: impl FnOnce(&mut invite_shared::db::DbConn) -> QueryResult<usize> + Send + 'static,
) {
    app.db.run(move |c| Ok(change(c)?)).await.unwrap();
}

async fn a_browser_sees_the_workspace_the_inviter_the_role_and_the_accept_form(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let token = emailed_token(&app, people_csv(1)).await;

    let (status, page) = html_page(open_link(&app, &token).await).await;

    assert_eq!(status, 200);
    assert!(page.contains("<h1>Join acme</h1>"), "{page}");
    assert!(page.contains("Hi First0,"), "{page}");
    assert!(page.contains("admin@acme.test invited you"), "{page}");
    assert!(page.contains("<strong>End User</strong>"), "{page}");
    assert!(page.contains("Link expires"), "{page}");
    assert!(
        page.contains(&format!(
            r#"<form method="post" action="/invitations/{token}/accept">"#
        )),
        "{page}"
    );
    assert!(page.contains(r#"<link rel="stylesheet" href="/assets/invitation.css">"#));
    assert!(!page.contains("<script"), "no script at all: {page}");
    assert!(!page.contains("style="), "no inline style: {page}");
}

async fn submitting_the_form_welcomes_an_active_member_and_the_link_is_then_used(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let token = emailed_token(&app, people_csv(1)).await;

    let (accepted, welcome) = html_page(submit_form(&app, &token).await).await;
    let (reopened, used) = html_page(open_link(&app, &token).await).await;
    let (resubmitted, _) = html_page(submit_form(&app, &token).await).await;

    assert_eq!(accepted, 200);
    assert!(
        welcome.contains("<title>Welcome — you are now a member of acme</title>"),
        "{welcome}"
    );
    assert_eq!(invitee_status(&app).await, "active");
    assert_eq!(reopened, 409);
    assert!(used.contains("already been accepted"), "{used}");
    assert!(used.contains("you are a member of acme"), "{used}");
    assert_eq!(resubmitted, 409);
}

async fn an_unknown_link_gets_a_404_page_that_reveals_nothing(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    emailed_token(&app, people_csv(1)).await;

    let (status, page) = html_page(open_link(&app, "no-such-token").await).await;
    let (accepted, _) = html_page(submit_form(&app, "no-such-token").await).await;

    assert_eq!(status, 404);
    assert_eq!(accepted, 404);
    assert!(page.contains("Invitation link not found"), "{page}");
    assert!(!page.contains("acme"), "no workspace named: {page}");
    assert!(!page.contains("<form"), "{page}");
}

async fn an_expired_link_gets_a_410_page_asking_an_admin_of_the_workspace_to_resend_it(
    stack: Stack,
) {
    let app = TestApp::spawn(stack).await;
    let token = emailed_token(&app, people_csv(1)).await;
    update_db(&app, |conn| {
        let past = chrono::Utc::now().naive_utc() - chrono::Duration::hours(1);
        on_conn!(conn, |c| diesel::update(invitation_links::table)
            .set(invitation_links::expires_at.eq(past))
            .execute(c))
    })
    .await;

    let (status, page) = html_page(open_link(&app, &token).await).await;
    let (accepted, _) = html_page(submit_form(&app, &token).await).await;

    assert_eq!(status, 410);
    assert_eq!(accepted, 410);
    assert!(page.contains("This invitation has expired"), "{page}");
    assert!(page.contains("Ask an admin of acme to resend it"), "{page}");
    assert_eq!(invitee_status(&app).await, "invited");
}

async fn an_archived_members_link_gets_a_410_page(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let token = emailed_token(&app, people_csv(1)).await;
    let id = app.member_id("person0@example.com").await;
    let archived = app
        .post_json(&format!("/members/{id}/archive"), json!({}))
        .await;
    assert!(archived.status().is_success(), "{}", archived.status());

    let (status, page) = html_page(open_link(&app, &token).await).await;

    assert_eq!(status, 410);
    assert!(page.contains("no longer valid"), "{page}");
    assert!(page.contains("ask an admin of acme"), "{page}");
}

async fn api_clients_keep_their_json_answers_with_nosniff(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let token = emailed_token(&app, people_csv(1)).await;
    let link = format!("{}/invitations/{token}", app.base);
    let accept = format!("{link}/accept");

    let shown = as_api_client(app.client.get(&link)).await;
    let headers = shown.headers().clone();
    let shown: Value = shown.json().await.unwrap();
    let without_accept: Value = app.show_invitation(&token).await.json().await.unwrap();
    let accepted: Value = as_api_client(app.client.post(&accept))
        .await
        .json()
        .await
        .unwrap();
    let again = as_api_client(app.client.post(&accept)).await;
    let unknown = as_api_client(app.client.get(format!("{}/invitations/nope", app.base))).await;

    assert_eq!(headers[CONTENT_TYPE], "application/json");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.get("content-security-policy").is_none());
    let keys: Vec<&str> = shown
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        ["email", "expires_at", "role", "status", "workspace"],
        "{shown}"
    );
    assert_eq!(shown["workspace"], "acme");
    assert_eq!(shown["email"], "person0@example.com");
    assert_eq!(shown["role"], "End User");
    assert_eq!(shown["status"], "invited");
    assert_eq!(without_accept, shown, "no Accept header is an API client");
    assert_eq!(
        accepted,
        json!({"workspace": "acme", "email": "person0@example.com", "status": "active"})
    );
    assert_eq!(again.status(), 409);
    assert_eq!(again.headers()["x-content-type-options"], "nosniff");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["error"]["code"], "invitation_used");
    assert_eq!(unknown.status(), 404);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(unknown["error"]["code"], "not_found");
}

async fn markup_in_names_from_the_csv_and_the_inviter_renders_as_text(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let markup = "<img src=x onerror=alert(1)>";
    let csv = format!(
        "First Name,Last Name,Email,User Role\n{markup},Lovelace,ada@example.com,End User\n"
    );
    let token = emailed_token(&app, csv).await;
    update_db(&app, move |conn| {
        on_conn!(conn, |c| {
            let admin = accounts::table
                .filter(accounts::email.eq("admin@acme.test"))
                .select(accounts::id);
            diesel::update(members::table.filter(members::account_id.eq_any(admin)))
                .set(members::first_name.eq(markup))
                .execute(c)?;
            diesel::update(workspaces::table)
                .set(workspaces::name.eq(markup))
                .execute(c)
        })
    })
    .await;

    let (shown, page) = html_page(open_link(&app, &token).await).await;
    let (accepted, welcome) = html_page(submit_form(&app, &token).await).await;
    let (_, used) = html_page(open_link(&app, &token).await).await;

    assert_eq!((shown, accepted), (200, 200));
    for body in [&page, &welcome, &used] {
        assert!(
            body.contains("&lt;img") || body.contains("&#60;img"),
            "{body}"
        );
        assert!(!body.contains("<img"), "markup rendered as markup: {body}");
    }
}

//! Hand-over to the workspace's application, on both stacks: with an `accept_redirect_url`, the
//! accept form answers 303 to the filled template plus a hand-over token, which
//! `GET /api/v1/acceptances/{token}` verifies once for the new member's data; an expired token is
//! gone, a workspace's setting and data stay its own, bad templates are refused in words, and
//! without the setting the welcome page is as before.

use std::time::Duration;

use diesel::prelude::*;
use invite_api::commands::{self, SettingsChange};
use invite_shared::db::schema::acceptance_handovers;
use invite_tests::app::{Stack, TestApp, named_people_csv, people_csv};
use invite_tests::on_both_stacks;
use reqwest::Response;
use reqwest::header::{CONTENT_SECURITY_POLICY, LOCATION};
use serde_json::{Value, json};

on_both_stacks!(
    accepting_redirects_to_the_filled_template_with_a_token_that_verifies_once,
    an_expired_token_is_gone_and_an_unknown_one_not_found,
    a_workspaces_setting_and_its_members_data_stay_its_own,
    bad_templates_are_refused_in_words_and_change_nothing,
    without_the_setting_accepting_shows_the_welcome_page_as_before,
    the_cli_twin_sets_clears_and_is_audited_as_the_operator,
);

/// What a browser sends when it submits a form.
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The template of most tests.
const TEMPLATE: &str =
    "https://app.example.com/welcome?member={member_id}&email={email}&ws={workspace}";

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `PUT …/settings` in workspace `slug` with `token`.
async fn put_settings(app: &TestApp, (slug, token): (&str, &str), body: Value) -> Response {
    app.client
        .put(format!("{}/api/v1/workspaces/{slug}/settings", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Sets the app's workspace's `accept_redirect_url`, asserting 200.
async fn set_redirect(app: &TestApp, url: &str) {
    let ws = (app.workspace.as_str(), app.token.as_str());
    let response = put_settings(app, ws, json!({ "accept_redirect_url": url })).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// The link token of the first email to `address`.
fn link_to(app: &TestApp, address: &str) -> String {
    let email = app
        .emails()
        .into_iter()
        .find(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(address)))
        .expect("an email to the invitee");
    app.token_in(&email.text_body())
}

/// Uploads `csv` to the app's workspace, waits until its emails are out, and returns the link
/// token of `address`.
async fn invited(app: &TestApp, csv: &str, address: &str) -> String {
    let id = app.upload_ok(csv.to_owned()).await;
    app.settled(id).await;
    link_to(app, address)
}

/// The accept form as a browser submits it, redirects not followed.
async fn submit_form(app: &TestApp, token: &str) -> Response {
    no_redirects()
        .post(format!("{}/invitations/{token}/accept", app.base))
        .header("accept", BROWSER_ACCEPT)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap()
}

/// The accept answer an API client (asking for JSON) gets.
async fn accept_as_api_client(app: &TestApp, token: &str) -> Value {
    app.client
        .post(format!("{}/invitations/{token}/accept", app.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /api/v1/acceptances/{token}`, with no credentials.
async fn verify(app: &TestApp, token: &str) -> Response {
    app.client
        .get(format!("{}/api/v1/acceptances/{token}", app.base))
        .send()
        .await
        .unwrap()
}

/// The hand-over token of a 303's `Location`, which must start with `prefix` followed by
/// `token=`.
fn handed_over(response: &Response, prefix: &str) -> String {
    assert_eq!(response.status(), 303);
    let location = response.headers()[LOCATION].to_str().unwrap();
    let token = location
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix("token="))
        .unwrap_or_else(|| panic!("{location} is not {prefix}token=…"));
    assert_eq!(token.len(), 43, "{location}");
    token.to_owned()
}

/// The error code of a JSON error answer.
async fn error_code(response: Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let message = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, code, message)
}

async fn accepting_redirects_to_the_filled_template_with_a_token_that_verifies_once(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let group = app
        .post_json("/groups", json!({"name": "Engineering"}))
        .await;
    assert_eq!(group.status(), 201);
    let csv = "First Name,Last Name,Email,User Role,Group\n\
               Ada,Lovelace,ada@example.com,Builder,Engineering\n";
    let link = invited(&app, csv, "ada@example.com").await;
    let member = app.member_id("ada@example.com").await;
    set_redirect(&app, TEMPLATE).await;
    assert_eq!(
        app.get_json("/settings").await,
        json!({ "accept_redirect_url": TEMPLATE })
    );

    // The invitation page lets its form's redirect reach the application.
    let page = app
        .client
        .get(format!("{}/invitations/{link}", app.base))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let policy = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        policy.contains("form-action 'self' https://app.example.com;"),
        "{policy}"
    );

    let accepted = submit_form(&app, &link).await;
    let prefix =
        format!("https://app.example.com/welcome?member={member}&email=ada%40example.com&ws=acme&");
    let token = handed_over(&accepted, &prefix);
    assert_eq!(app.member("ada@example.com").await["status"], "active");

    let first = verify(&app, &token).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let data: Value = first.json().await.unwrap();
    let accepted_at = data["accepted_at"].as_str().unwrap().to_owned();
    assert_eq!(
        data,
        json!({
            "workspace": "acme",
            "member_id": member,
            "email": "ada@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "role": "Builder",
            "groups": ["Engineering"],
            "accepted_at": accepted_at,
        })
    );
    let (status, code, _) = error_code(verify(&app, &token).await).await;
    assert_eq!((status, code.as_str()), (410, "handover_used"));

    let audit = app.get_json("/audit").await;
    let change = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "settings_change")
        .unwrap_or_else(|| panic!("no settings_change in {audit}"));
    assert_eq!(change["target"], "setting accept_redirect_url");
    assert_eq!(change["actor"], "admin@acme.test");
}

async fn an_expired_token_is_gone_and_an_unknown_one_not_found(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let link = invited(&app, &people_csv(1), "person0@example.com").await;
    // A query of its own: the token goes after it, joined by `&`.
    set_redirect(&app, "http://127.0.0.1:9/done?from=invite").await;
    // An API client gets the same URL as `redirect_url`.
    let accepted = accept_as_api_client(&app, &link).await;
    let url = accepted["redirect_url"].as_str().unwrap();
    let token = url
        .strip_prefix("http://127.0.0.1:9/done?from=invite&token=")
        .unwrap_or_else(|| panic!("{accepted}"))
        .to_owned();
    let an_hour_ago = chrono::Utc::now().naive_utc() - Duration::from_secs(3600);
    app.db
        .run(move |c| {
            Ok(diesel::update(acceptance_handovers::table)
                .set(acceptance_handovers::expires_at.eq(an_hour_ago))
                .execute(c)?)
        })
        .await
        .unwrap();

    let (status, code, _) = error_code(verify(&app, &token).await).await;
    assert_eq!((status, code.as_str()), (410, "handover_expired"));
    let unknown = "A".repeat(43);
    let (status, code, _) = error_code(verify(&app, &unknown).await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    // The invitation link is no hand-over token.
    let (status, _, _) = error_code(verify(&app, &link).await).await;
    assert_eq!(status, 404);
}

async fn a_workspaces_setting_and_its_members_data_stay_its_own(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    // The same person is invited to both workspaces, under other names in each.
    let acme_csv = "First Name,Last Name,Email,User Role\nAcme,Person,person0@example.com,Admin\n";
    let acme_link = invited(&app, acme_csv, "person0@example.com").await;
    let globex = app.other_workspace().await;
    let globex_link = app
        .emails()
        .into_iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == "person0@example.com"))
        .map(|m| app.token_in(&m.text_body()))
        .find(|t| *t != acme_link)
        .expect("globex's email");
    set_redirect(&app, "https://acme.example.com/in?m={member_id}").await;

    // globex's admin can neither read nor change acme's settings.
    let acme_as_globex = ("acme", globex.token.as_str());
    let refused = put_settings(&app, acme_as_globex, json!({"accept_redirect_url": null})).await;
    assert!(
        [403, 404].contains(&refused.status().as_u16()),
        "{refused:?}"
    );
    assert_eq!(
        app.get_json("/settings").await["accept_redirect_url"],
        "https://acme.example.com/in?m={member_id}"
    );

    // globex has no setting: its member gets the welcome page.
    let welcome = submit_form(&app, &globex_link).await;
    assert_eq!(welcome.status(), 200);
    assert!(welcome.text().await.unwrap().contains("now a member"));

    let acme_member = app.member_id("person0@example.com").await;
    let token = handed_over(
        &submit_form(&app, &acme_link).await,
        &format!("https://acme.example.com/in?m={acme_member}&"),
    );
    let data: Value = verify(&app, &token).await.json().await.unwrap();
    assert_eq!(data["workspace"], "acme");
    assert_eq!(data["member_id"], acme_member);
    assert_ne!(data["member_id"], globex.member);
    assert_eq!(data["first_name"], "Acme");
    assert_eq!(data["role"], "Admin");
}

async fn bad_templates_are_refused_in_words_and_change_nothing(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let ws = (app.workspace.as_str(), app.token.as_str());
    for (body, words) in [
        (
            json!({"accept_redirect_url": "http://app.example.com/welcome"}),
            "https://",
        ),
        (
            json!({"accept_redirect_url": "https://app.example.com/?id={id}"}),
            "`{id}` is not a placeholder",
        ),
        (
            json!({"accept_redirect_url": "https://{workspace}.example.com/"}),
            "not in the host",
        ),
        (
            json!({"accept_redirect_url": "https://app.example.com/?token=x"}),
            "`token` query parameter",
        ),
        (
            json!({"accept_redirect_url": "https://me:pw@app.example.com/"}),
            "user name or password",
        ),
        (json!({"accept_redirect_url": "welcome"}), "not a URL"),
        (json!({"accept_redirect_url": " "}), "empty"),
    ] {
        let (status, code, message) = error_code(put_settings(&app, ws, body.clone()).await).await;
        assert_eq!(
            (status, code.as_str()),
            (422, "invalid_redirect_url"),
            "{body}"
        );
        assert!(message.contains(words), "{body}: {message}");
    }
    for body in [json!({}), json!({"accept_redirect_url": null, "other": 1})] {
        let (status, code, _) = error_code(put_settings(&app, ws, body.clone()).await).await;
        assert_eq!((status, code.as_str()), (422, "invalid_request"), "{body}");
    }
    assert_eq!(
        app.get_json("/settings").await,
        json!({ "accept_redirect_url": null })
    );
}

async fn without_the_setting_accepting_shows_the_welcome_page_as_before(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let csv = named_people_csv("person", 2);
    let first = invited(&app, &csv, "person0@example.com").await;
    let second = link_to(&app, "person1@example.com");
    set_redirect(&app, TEMPLATE).await;
    let cleared = put_settings(
        &app,
        (app.workspace.as_str(), app.token.as_str()),
        json!({"accept_redirect_url": null}),
    )
    .await;
    assert_eq!(cleared.status(), 200);

    let page = app
        .client
        .get(format!("{}/invitations/{first}", app.base))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.headers()[CONTENT_SECURITY_POLICY],
        invite_api::security::PAGE_POLICY
    );
    let welcome = submit_form(&app, &first).await;
    assert_eq!(welcome.status(), 200);
    assert!(welcome.text().await.unwrap().contains("now a member"));
    let json = accept_as_api_client(&app, &second).await;
    assert_eq!(
        json,
        json!({
            "workspace": "acme",
            "email": "person1@example.com",
            "status": "active",
        })
    );
    let none = app
        .db
        .run(|c| Ok(acceptance_handovers::table.count().get_result::<i64>(c)?))
        .await
        .unwrap();
    assert_eq!(none, 0, "no hand-over without the setting");
}

async fn the_cli_twin_sets_clears_and_is_audited_as_the_operator(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let set = SettingsChange::Set(format!("  {TEMPLATE} "));
    let printed = commands::settings(&app.db, "acme", set).await.unwrap();
    assert_eq!(printed, format!("accept_redirect_url: {TEMPLATE}"));
    assert_eq!(
        app.get_json("/settings").await["accept_redirect_url"],
        TEMPLATE
    );
    let refused = SettingsChange::Set("ftp://app.example.com/".into());
    let error = commands::settings(&app.db, "acme", refused)
        .await
        .unwrap_err();
    assert!(format!("{error:#}").contains("https://"), "{error:#}");

    let printed = commands::settings(&app.db, "acme", SettingsChange::Clear)
        .await
        .unwrap();
    assert!(
        printed.starts_with("accept_redirect_url: none"),
        "{printed}"
    );
    let shown = commands::settings(&app.db, "acme", SettingsChange::Show)
        .await
        .unwrap();
    assert_eq!(shown, printed);
    let audit = app.get_json("/audit").await;
    let changes: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "settings_change")
        .collect();
    assert_eq!(changes.len(), 2, "{audit}");
    assert!(changes.iter().all(|e| e["actor"].is_null()), "{audit}");
}

//! API tokens as a managed resource, on both stacks: a recognisable prefix, a name, an expiry,
//! revocation, `last_used_at`, and never a secret in a list.

use invite_shared::ids::AccountId;
use invite_shared::store::auth::{self, NewToken};
use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;
use reqwest::Method;
use serde_json::{Value, json};

on_both_stacks!(
    a_created_token_works_at_once_and_is_listed_without_its_secret,
    revoked_and_expired_tokens_get_401_on_every_admin_route,
    a_token_made_for_one_workspace_does_not_open_another,
    bad_token_requests_get_a_clear_422_or_404,
);

/// Every admin route, with ids that exist in the app after one small import.
fn admin_routes(import: i64, member: i64) -> Vec<(Method, String)> {
    let paths = [
        (Method::GET, "/imports".to_owned()),
        (Method::POST, "/imports".to_owned()),
        (Method::GET, "/imports/template".to_owned()),
        (Method::GET, format!("/imports/{import}")),
        (Method::GET, format!("/imports/{import}/results")),
        (Method::POST, format!("/imports/{import}/retry")),
        (Method::GET, "/members".to_owned()),
        (Method::GET, format!("/members/{member}")),
        (Method::POST, format!("/members/{member}/resend")),
        (Method::POST, format!("/members/{member}/invitation-link")),
        (Method::POST, format!("/members/{member}/archive")),
        (Method::POST, format!("/members/{member}/unarchive")),
        (Method::GET, "/groups".to_owned()),
        (Method::POST, "/groups".to_owned()),
        (Method::GET, "/tokens".to_owned()),
        (Method::POST, "/tokens".to_owned()),
        (Method::DELETE, "/tokens/1".to_owned()),
    ];
    paths.into_iter().collect()
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap()
}

async fn create_token(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/tokens", body).await
}

async fn a_created_token_works_at_once_and_is_listed_without_its_secret(stack: Stack) {
    let app = TestApp::spawn(stack).await;

    let created = create_token(
        &app,
        json!({"name": "nightly sync", "expires_in": "30days"}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("bi_"), "{secret}");
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    assert!(created["expires_at"].is_string());

    let used = call(&app, Method::GET, "/members", &secret).await;
    assert_eq!(used.status(), 200);
    let listed = app.get("/tokens").await.text().await.unwrap();

    assert!(!listed.contains(&secret), "a list never shows a secret");
    assert!(!listed.contains(&secret[11..]));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let ours = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == created["id"])
        .expect("the new token is listed");
    assert_eq!(ours["name"], "nightly sync");
    assert_eq!(ours["prefix"], created["prefix"]);
    assert!(ours["last_used_at"].is_string(), "{ours}");
    assert!(ours.get("token").is_none());
}

async fn revoked_and_expired_tokens_get_401_on_every_admin_route(stack: Stack) {
    // 34 failed authentications from one address: above the default abuse limit.
    let mut app = TestApp::spawn_with(stack, |s| s.auth_failures_per_minute = 100).await;
    app.start_worker().await;
    let import = app.upload_ok(people_csv(1)).await;
    app.settled(import).await;
    let member = app.member_id("person0@example.com").await;
    let created: Value = create_token(&app, json!({"name": "to revoke"}))
        .await
        .json()
        .await
        .unwrap();
    let revoked = created["token"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&app, Method::GET, "/members", &revoked).await.status(),
        200
    );
    let gone = app
        .client
        .delete(app.url(&format!("/tokens/{}", created["id"])))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let expired = expired_token(&app).await;

    for (method, path) in admin_routes(import, member) {
        for (which, token) in [("revoked", &revoked), ("expired", &expired)] {
            let status = call(&app, method.clone(), &path, token).await.status();
            assert_eq!(status, 401, "{which} token, {method} {path}");
        }
    }
    let listed = app.get_json("/tokens").await;
    let entry = listed["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == created["id"])
        .unwrap()
        .clone();
    assert!(entry["revoked_at"].is_string(), "{entry}");
}

/// A token of the app's admin for its workspace that expired a second ago.
async fn expired_token(app: &TestApp) -> String {
    let slug = app.workspace.clone();
    app.db
        .run(move |c| {
            let workspace = auth::find_workspace(c, &slug)?.expect("the app's workspace");
            let admin = auth::first_admin(c, workspace.id)?.expect("its admin");
            let new = NewToken {
                account: AccountId(admin.0),
                workspace: Some(workspace.id),
                name: "expired".into(),
                expires_at: Some(invite_shared::store::now() - chrono::TimeDelta::seconds(1)),
            };
            Ok(auth::issue_token(c, &new)?.secret)
        })
        .await
        .unwrap()
}

async fn a_token_made_for_one_workspace_does_not_open_another(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    // The same admin administers a second workspace too.
    let other = app.admin_token("globex").await;
    let slug = app.workspace.clone();
    app.db
        .run(move |c| {
            let globex = auth::find_workspace(c, "globex")?.unwrap();
            let acme = auth::find_workspace(c, &slug)?.unwrap();
            let admin = auth::first_admin(c, acme.id)?.unwrap();
            auth::upsert_active_member(
                c,
                globex.id,
                admin,
                invite_shared::domain::role::Role::Admin,
            )?;
            Ok(())
        })
        .await
        .unwrap();

    let url = format!("{}/api/v1/workspaces/globex/members", app.base);
    let crossed = app
        .client
        .get(&url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    let own = app
        .client
        .get(&url)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();

    assert_eq!(
        crossed.status(),
        404,
        "a token made for acme does not open globex"
    );
    assert_eq!(own.status(), 200);
}

async fn bad_token_requests_get_a_clear_422_or_404(stack: Stack) {
    let app = TestApp::spawn(stack).await;

    let no_name = create_token(&app, json!({"name": "  "})).await;
    let too_long = create_token(&app, json!({"name": "x", "expires_in": "20000days"})).await;
    let nonsense = create_token(&app, json!({"name": "x", "expires_in": "soon"})).await;
    let unknown = app
        .client
        .delete(app.url("/tokens/999999"))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();

    assert_eq!(no_name.status(), 422);
    assert_eq!(too_long.status(), 422);
    assert!(too_long.text().await.unwrap().contains("3650 days"));
    assert_eq!(nonsense.status(), 422);
    assert_eq!(unknown.status(), 404);
}

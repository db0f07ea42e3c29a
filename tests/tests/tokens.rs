//! API tokens as a managed resource, on both stacks: a recognisable prefix, a name, an expiry,
//! revocation, `last_used_at`, and never a secret in a list; a token bounded by the token that made
//! it; tokens of every workspace out of every workspace's reach.

use diesel::prelude::*;
use invite_shared::db::schema::api_tokens;
use invite_shared::domain::role::Role;
use invite_shared::ids::{AccountId, TokenId};
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
    a_token_never_outlives_nor_survives_the_token_that_made_it,
    a_token_whose_ancestor_was_revoked_without_the_cascade_gets_401,
    a_legacy_token_is_neither_listed_nor_revocable_by_a_workspace,
    a_lineage_is_eight_generations_at_most,
    a_workspace_has_a_thousand_working_tokens_at_most,
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
                parent: None,
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

/// `POST …/tokens` with `token`, asserting 201; the created token's JSON.
async fn create_with(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app
        .client
        .post(app.url("/tokens"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{body}");
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// The status of `GET …/members` with `token`.
async fn members_status(app: &TestApp, token: &Value) -> u16 {
    let secret = token["token"].as_str().unwrap();
    call(app, Method::GET, "/members", secret)
        .await
        .status()
        .as_u16()
}

async fn a_token_never_outlives_nor_survives_the_token_that_made_it(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let parent = create_with(
        &app,
        &app.token,
        json!({"name": "parent", "expires_in": "2m"}),
    )
    .await;
    let secret = |t: &Value| t["token"].as_str().unwrap().to_owned();

    let child = create_with(&app, &secret(&parent), json!({"name": "child"})).await;
    let longer = create_with(
        &app,
        &secret(&parent),
        json!({"name": "longer", "expires_in": "30days"}),
    )
    .await;
    let shorter = create_with(
        &app,
        &secret(&parent),
        json!({"name": "shorter", "expires_in": "1m"}),
    )
    .await;
    let grandchild = create_with(&app, &secret(&child), json!({"name": "grandchild"})).await;

    assert!(parent["expires_at"].is_string(), "{parent}");
    for capped in [&child, &longer, &grandchild] {
        assert_eq!(capped["expires_at"], parent["expires_at"], "{capped}");
    }
    let shorter_at = shorter["expires_at"].as_str().unwrap();
    assert!(shorter_at < parent["expires_at"].as_str().unwrap());
    for token in [&parent, &child, &longer, &shorter, &grandchild] {
        assert_eq!(members_status(&app, token).await, 200, "{token}");
    }

    let revoked = app
        .client
        .delete(app.url(&format!("/tokens/{}", parent["id"])))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();

    assert_eq!(revoked.status(), 204);
    for token in [&parent, &child, &longer, &shorter, &grandchild] {
        assert_eq!(members_status(&app, token).await, 401, "{token}");
    }
    assert_eq!(
        members_status(&app, &json!({"token": app.token})).await,
        200
    );
    let listed = app.get_json("/tokens").await;
    let listed = listed["tokens"].as_array().unwrap();
    let revoked_ids: Vec<&Value> = listed
        .iter()
        .filter(|t| t["revoked_at"].is_string())
        .map(|t| &t["id"])
        .collect();
    assert_eq!(revoked_ids.len(), 5, "{listed:?}");
    let log = app.get_json("/audit").await;
    let revocations: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "token_revoke")
        .map(|e| &e["target"])
        .collect();
    for token in [&parent, &child, &longer, &shorter, &grandchild] {
        let target = json!(format!("token {}", token["id"]));
        assert!(
            revocations.contains(&&target),
            "{target} in {revocations:?}"
        );
    }
}

async fn a_lineage_is_eight_generations_at_most(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    // The operator's token is the first generation; seven more are made through the API.
    let mut secret = app.token.clone();
    for generation in 2..=invite_shared::store::auth::MAX_GENERATIONS {
        let made = create_with(&app, &secret, json!({"name": format!("g{generation}")})).await;
        secret = made["token"].as_str().unwrap().to_owned();
    }

    let refused = app
        .client
        .post(app.url("/tokens"))
        .bearer_auth(&secret)
        .json(&json!({"name": "one more"}))
        .send()
        .await
        .unwrap();

    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "token_too_deep", "{body}");
    assert_eq!(
        call(&app, Method::GET, "/members", &secret).await.status(),
        200
    );
}

async fn a_workspace_has_a_thousand_working_tokens_at_most(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let slug = app.workspace.clone();
    // With the app's own token, one short of the cap; and an expired one, which does not count.
    app.db
        .run(move |c| {
            let workspace = auth::find_workspace(c, &slug)?.expect("the app's workspace");
            let admin = auth::first_admin(c, workspace.id)?.expect("its admin");
            let past = invite_shared::store::now() - chrono::TimeDelta::seconds(1);
            let expiries = std::iter::repeat_n(None, 998).chain([Some(past)]);
            for (n, expires_at) in expiries.enumerate() {
                let new = NewToken {
                    account: admin,
                    workspace: Some(workspace.id),
                    name: format!("bulk {n}"),
                    expires_at,
                    parent: None,
                };
                auth::issue_token(c, &new)?;
            }
            Ok(())
        })
        .await
        .unwrap();

    let last = create_token(&app, json!({"name": "the thousandth"})).await;
    let refused = create_token(&app, json!({"name": "one too many"})).await;

    assert_eq!(last.status(), 201);
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_tokens", "{body}");
}

async fn a_token_whose_ancestor_was_revoked_without_the_cascade_gets_401(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let parent = create_with(&app, &app.token, json!({"name": "parent"})).await;
    let parent_secret = parent["token"].as_str().unwrap().to_owned();
    let child = create_with(&app, &parent_secret, json!({"name": "child"})).await;
    let grandchild = create_with(
        &app,
        child["token"].as_str().unwrap(),
        json!({"name": "grandchild"}),
    )
    .await;
    assert_eq!(members_status(&app, &grandchild).await, 200);
    // Revoked as a row written behind the cascade's back would be (a token made while its parent
    // was being revoked).
    let parent_id = TokenId(parent["id"].as_i64().unwrap());
    app.db
        .run(move |conn| {
            Ok(invite_shared::on_conn!(conn, |c| {
                diesel::update(api_tokens::table.find(parent_id))
                    .set(api_tokens::revoked_at.eq(Some(invite_shared::store::now())))
                    .execute(c)
            })?)
        })
        .await
        .unwrap();

    assert_eq!(members_status(&app, &child).await, 401);
    assert_eq!(members_status(&app, &grandchild).await, 401);
}

async fn a_legacy_token_is_neither_listed_nor_revocable_by_a_workspace(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let globex = app.admin_token("globex").await;
    // A token of acme's admin, who administers globex too, made as tokens were made before they
    // belonged to one workspace.
    let slug = app.workspace.clone();
    let (legacy_id, legacy) = app
        .db
        .run(move |c| {
            let acme = auth::find_workspace(c, &slug)?.expect("the app's workspace");
            let admin = auth::first_admin(c, acme.id)?.expect("its admin");
            let other = auth::find_workspace(c, "globex")?.expect("globex");
            auth::upsert_active_member(c, other.id, admin, Role::Admin)?;
            let secret = auth::create_token(c, admin)?;
            let id: TokenId = invite_shared::on_conn!(c, |c| {
                api_tokens::table
                    .filter(api_tokens::workspace_id.is_null())
                    .select(api_tokens::id)
                    .first(c)
            })?;
            Ok((id, secret))
        })
        .await
        .unwrap();
    let globex_url = |path: &str| format!("{}/api/v1/workspaces/globex{path}", app.base);

    let acme_list = app.get("/tokens").await.text().await.unwrap();
    let globex_list = app
        .client
        .get(globex_url("/tokens"))
        .bearer_auth(&globex)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let by_globex = app
        .client
        .delete(globex_url(&format!("/tokens/{}", legacy_id.0)))
        .bearer_auth(&globex)
        .send()
        .await
        .unwrap();
    let by_acme = app
        .client
        .delete(app.url(&format!("/tokens/{}", legacy_id.0)))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();

    let listed = |list: &str| {
        let list: Value = serde_json::from_str(list).unwrap();
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == legacy_id.0)
    };
    assert!(!listed(&acme_list), "{acme_list}");
    assert!(!listed(&globex_list), "{globex_list}");
    assert_eq!(by_globex.status(), 404);
    assert_eq!(by_acme.status(), 404);
    // It keeps working where its holder is an admin until an operator revokes it.
    assert_eq!(
        call(&app, Method::GET, "/members", &legacy).await.status(),
        200
    );
    let in_globex = app
        .client
        .get(globex_url("/members"))
        .bearer_auth(&legacy)
        .send()
        .await
        .unwrap();
    assert_eq!(in_globex.status(), 200);
    let listed_for_operators = app
        .db
        .run(|c| Ok(auth::list_legacy_tokens(c)?))
        .await
        .unwrap();
    assert_eq!(listed_for_operators.len(), 1);
    assert_eq!(listed_for_operators[0].id, legacy_id);
}

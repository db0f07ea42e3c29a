//! The audit log, on both stacks: every admin action leaves one entry naming the admin and the
//! target, and no entry carries an invitation link or an API token.

use std::time::Duration;

use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;
use serde_json::{Value, json};

on_both_stacks!(every_action_leaves_one_entry_with_its_actor_and_target);

async fn every_action_leaves_one_entry_with_its_actor_and_target(stack: Stack) {
    // A resend and a copied link of one member in a row: no cooldown between them here.
    let mut app = TestApp::spawn_with(stack, |s| s.member_action_cooldown = Duration::ZERO).await;
    app.start_worker().await;
    let import = app.upload_ok(people_csv(2)).await;
    app.settled(import).await;
    let dry_run = app
        .upload_file(
            (&app.workspace, &app.token),
            "check.csv",
            people_csv(1),
            true,
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let member = app.member_id("person0@example.com").await;
    let other = app.member_id("person1@example.com").await;

    let mut secrets = Vec::new();
    assert_eq!(
        app.post_json(&format!("/imports/{import}/retry"), json!({}))
            .await
            .status(),
        202
    );
    assert_eq!(
        app.post_json(&format!("/members/{member}/resend"), json!({}))
            .await
            .status(),
        202
    );
    let link: Value = app
        .post_json(&format!("/members/{member}/invitation-link"), json!({}))
        .await
        .json()
        .await
        .unwrap();
    secrets.push(
        link["url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned(),
    );
    assert_eq!(
        app.post_json(&format!("/members/{other}/archive"), json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        app.post_json(&format!("/members/{other}/unarchive"), json!({}))
            .await
            .status(),
        200
    );
    let token: Value = app
        .post_json("/tokens", json!({"name": "audited"}))
        .await
        .json()
        .await
        .unwrap();
    secrets.push(token["token"].as_str().unwrap().to_owned());
    let revoked = app
        .client
        .delete(app.url(&format!("/tokens/{}", token["id"])))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);

    let log = app.get("/audit").await.text().await.unwrap();
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret in the audit log: {log}"
        );
    }
    let log: Value = serde_json::from_str(&log).unwrap();
    let mut entries: Vec<(String, String, String)> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or("<none>").to_owned();
            (text("actor"), text("action"), text("target"))
        })
        .collect();
    entries.reverse();
    let admin = admin_email(&app).await;
    let expected: Vec<(String, String, String)> = [
        ("upload", format!("import {import}")),
        ("dry_run", format!("import {dry_run}")),
        ("retry", format!("import {import}")),
        ("resend", format!("member {member}")),
        ("invitation_link", format!("member {member}")),
        ("archive", format!("member {other}")),
        ("unarchive", format!("member {other}")),
        ("token_create", format!("token {}", token["id"])),
        ("token_revoke", format!("token {}", token["id"])),
    ]
    .into_iter()
    .map(|(action, target)| (admin.clone(), action.to_owned(), target))
    .collect();
    assert_eq!(entries, expected);
}

/// The email of the admin whose token the app uses: the one token the list shows for it.
async fn admin_email(app: &TestApp) -> String {
    let tokens = app.get_json("/tokens").await;
    tokens["tokens"]
        .as_array()
        .unwrap()
        .last()
        .and_then(|t| t["created_by"].as_str())
        .expect("the app's token is listed")
        .to_owned()
}

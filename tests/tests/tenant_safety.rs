//! What one admin cannot do to their workspace, to an invitee or to the people in a file, on both
//! stacks: archive the last active admin (the workspace would be locked out), make the service
//! email one address over and over (a per-member cooldown and a per-workspace daily quota, both
//! kept in the database), or keep people's uploaded names and addresses for ever (housekeeping
//! deletes a finished import's stored file after `UPLOAD_RETENTION`). And no answer that carries a
//! secret may be kept by a cache.

use std::time::Duration;

use diesel::prelude::*;
use invite_shared::db::schema::{deliveries, import_chunks, imports};
use invite_shared::on_conn;
use invite_shared::service::retention;
use invite_shared::store::auth;
use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;
use serde_json::{Value, json};

on_both_stacks!(
    archiving_the_last_active_admin_is_a_conflict_and_the_admin_keeps_their_access,
    an_admin_is_archived_while_another_active_admin_remains,
    two_admins_archiving_each_other_at_once_leave_one_of_them_active,
    thirty_resends_to_one_member_queue_exactly_one_email,
    a_copied_link_and_an_unarchive_wait_for_the_cooldown_too,
    support_emails_beyond_the_daily_quota_get_429_until_midnight,
    a_finished_upload_past_its_retention_is_deleted_and_its_results_stay,
);

/// The error code of a JSON error response.
async fn error_code(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The `Retry-After` of a response, in seconds.
fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `invites_rate_limited_total{limit=…}` as the app's `/metrics` shows it now.
async fn rate_limited(app: &TestApp, limit: &str) -> f64 {
    let metrics = app.metrics().await;
    let series = format!(r#"invites_rate_limited_total{{limit="{limit}"}}"#);
    invite_tests::metric_value(&metrics, &series)
        .unwrap_or_else(|| panic!("{series} is exported from the start: {metrics}"))
}

/// How many emails were sent to `email` so far.
fn emails_to(app: &TestApp, email: &str) -> usize {
    let to = |m: &invite_tests::smtp::ReceivedMessage| m.rcpt_to.iter().any(|r| r == email);
    app.emails().iter().filter(|m| to(m)).count()
}

/// The member's deliveries (emails queued for them, whatever their state).
async fn deliveries_of(app: &TestApp, member: i64) -> i64 {
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| deliveries::table
                .filter(deliveries::member_id.eq(member))
                .count()
                .get_result::<i64>(c))?)
        })
        .await
        .unwrap()
}

/// An admin token for `email`, made an active admin of the app's workspace.
async fn another_admin(app: &TestApp, email: &'static str) -> String {
    let slug = app.workspace.clone();
    app.db
        .run(move |c| Ok(auth::create_admin_token(c, &slug, email)?))
        .await
        .unwrap()
}

async fn archiving_the_last_active_admin_is_a_conflict_and_the_admin_keeps_their_access(
    stack: Stack,
) {
    let app = TestApp::spawn_without_workers(stack).await;
    let own = app.member_id("admin@acme.test").await;

    let response = app.post(&format!("/members/{own}/archive")).await;

    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "last_admin", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("last active admin"), "{message}");
    assert_eq!(app.member("admin@acme.test").await["status"], "active");
    assert_eq!(app.get("/members").await.status(), 200, "still signed in");
}

async fn an_admin_is_archived_while_another_active_admin_remains(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    another_admin(&app, "second@acme.test").await;
    let second = app.member_id("second@acme.test").await;
    let own = app.member_id("admin@acme.test").await;

    let response = app.post(&format!("/members/{second}/archive")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(app.member("second@acme.test").await["status"], "archived");
    // Now the caller is the last one.
    let again = app.post(&format!("/members/{own}/archive")).await;
    assert_eq!(again.status(), 409);
    assert_eq!(error_code(again).await, "last_admin");
}

async fn two_admins_archiving_each_other_at_once_leave_one_of_them_active(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    for round in 0..5 {
        let slug = format!("duo{round}");
        let (a, b) = (format!("a@{slug}.test"), format!("b@{slug}.test"));
        let (ws, ea, eb) = (slug.clone(), a.clone(), b.clone());
        let (token_a, token_b) = app
            .db
            .run(move |c| {
                let token_a = auth::create_admin_token(c, &ws, &ea)?;
                Ok((token_a, auth::create_admin_token(c, &ws, &eb)?))
            })
            .await
            .unwrap();
        let base = format!("{}/api/v1/workspaces/{slug}", app.base);
        let members: Value = app
            .get_in((&slug, &token_a), "/members")
            .await
            .json()
            .await
            .unwrap();
        let id_of = |email: &str| {
            members["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["email"] == email)
                .unwrap()["id"]
                .as_i64()
                .unwrap()
        };
        let archive = |token: &str, id: i64| {
            app.client
                .post(format!("{base}/members/{id}/archive"))
                .bearer_auth(token.to_owned())
                .send()
        };

        let (by_a, by_b) = tokio::join!(archive(&token_a, id_of(&b)), archive(&token_b, id_of(&a)));

        let statuses = [by_a.unwrap().status(), by_b.unwrap().status()];
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "one archive wins, the other is refused (409, or 403 once its admin is archived): \
             {statuses:?}"
        );
        let ws = slug.clone();
        let remaining = app
            .db
            .run(move |c| {
                let workspace = auth::find_workspace(c, &ws)?.expect("the workspace");
                Ok(auth::first_admin(c, workspace.id)?)
            })
            .await
            .unwrap();
        assert!(remaining.is_some(), "{slug} keeps an active admin");
    }
}

async fn thirty_resends_to_one_member_queue_exactly_one_email(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(2)).await;
    app.settled(id).await;
    let member = app.member_id("person0@example.com").await;
    let limited_before = rate_limited(&app, "member_cooldown").await;

    let path = format!("/members/{member}/resend");
    let responses = futures::future::join_all((0..30).map(|_| app.post(&path))).await;

    let accepted = responses.iter().filter(|r| r.status() == 202).count();
    assert_eq!(accepted, 1, "one resend within the cooldown");
    for refused in responses.iter().filter(|r| r.status() != 202) {
        assert_eq!(refused.status(), 429);
        let wait = retry_after(refused);
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
    }
    app.settled(id).await;
    assert_eq!(
        deliveries_of(&app, member).await,
        2,
        "the first and one more"
    );
    assert_eq!(emails_to(&app, "person0@example.com"), 2);
    assert!(rate_limited(&app, "member_cooldown").await >= limited_before + 29.0);
    // The cooldown is the member's: another member is resent at once.
    let other = app.member_id("person1@example.com").await;
    assert_eq!(
        app.post(&format!("/members/{other}/resend")).await.status(),
        202
    );
}

async fn a_copied_link_and_an_unarchive_wait_for_the_cooldown_too(stack: Stack) {
    let app = TestApp::spawn_with(stack, |s| {
        s.member_action_cooldown = Duration::from_secs(600)
    })
    .await;
    let csv = people_csv(1);
    let id = app.upload_ok(csv).await;
    app.process_without_sending(id).await;
    let member = app.member_id("person0@example.com").await;

    let link = app
        .post(&format!("/members/{member}/invitation-link"))
        .await;
    assert_eq!(link.status(), 200);
    let again = app
        .post(&format!("/members/{member}/invitation-link"))
        .await;
    assert_eq!(again.status(), 429);
    let wait = retry_after(&again);
    assert!((590..=600).contains(&wait), "Retry-After {wait}");
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MEMBER_ACTION_COOLDOWN"),
        "{body}"
    );
    // Archiving is not held to it; unarchiving (which emails) is, and leaves the member archived.
    assert_eq!(
        app.post(&format!("/members/{member}/archive"))
            .await
            .status(),
        200
    );
    let unarchive = app.post(&format!("/members/{member}/unarchive")).await;
    assert_eq!(unarchive.status(), 429);
    assert_eq!(
        app.member("person0@example.com").await["status"],
        "archived"
    );
}

async fn support_emails_beyond_the_daily_quota_get_429_until_midnight(stack: Stack) {
    let app = TestApp::spawn_with(stack, |s| {
        s.member_action_cooldown = Duration::ZERO;
        s.support_emails_per_day = 2;
    })
    .await;
    let id = app.upload_ok(people_csv(3)).await;
    app.process_without_sending(id).await;
    let mut members = Vec::new();
    for n in 0..3 {
        members.push(app.member_id(&format!("person{n}@example.com")).await);
    }
    let limited_before = rate_limited(&app, "workspace_daily_quota").await;

    for member in &members[..2] {
        assert_eq!(
            app.post(&format!("/members/{member}/resend"))
                .await
                .status(),
            202
        );
    }
    let refused = app.post(&format!("/members/{}/resend", members[2])).await;

    assert_eq!(refused.status(), 429);
    let now = chrono::Utc::now().naive_utc();
    let midnight = now.date().succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap();
    let expected = (midnight - now).num_seconds().unsigned_abs();
    let wait = retry_after(&refused);
    assert!(
        wait.abs_diff(expected) <= 5,
        "Retry-After {wait}, midnight in {expected}"
    );
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("SUPPORT_EMAILS_PER_DAY")
    );
    assert_eq!(
        deliveries_of(&app, members[2]).await,
        1,
        "only the import's email"
    );
    assert!(rate_limited(&app, "workspace_daily_quota").await > limited_before);
    // An unarchive emails too; a copied link does not, so it is still handed out.
    assert_eq!(
        app.post(&format!("/members/{}/archive", members[2]))
            .await
            .status(),
        200
    );
    let unarchive = app
        .post(&format!("/members/{}/unarchive", members[2]))
        .await;
    assert_eq!(unarchive.status(), 429);
    let link = app
        .post(&format!("/members/{}/invitation-link", members[1]))
        .await;
    assert_eq!(link.status(), 200);

    // Housekeeping forgets the counts of past days, never today's.
    let long_ago = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    app.db
        .run(move |c| {
            use invite_shared::db::schema::workspace_daily_emails as w;
            let workspace = auth::find_workspace(c, "acme")?.unwrap().id;
            let old = (
                w::workspace_id.eq(workspace),
                w::day.eq(long_ago),
                w::sent.eq(9),
            );
            Ok(on_conn!(c, |c| diesel::insert_into(w::table)
                .values(old)
                .execute(c))?)
        })
        .await
        .unwrap();
    assert_eq!(
        retention::forget_past_daily_counts(&app.db).await.unwrap(),
        1
    );
    let again = app.post(&format!("/members/{}/resend", members[0])).await;
    assert_eq!(again.status(), 429, "today's count still limits");
}

async fn a_finished_upload_past_its_retention_is_deleted_and_its_results_stay(stack: Stack) {
    let retention = Duration::from_secs(3600);
    let app = TestApp::spawn_with(stack, |s| s.upload_retention = retention).await;
    let id = app.upload_ok(people_csv(3)).await;
    app.process_without_sending(id).await;
    let results_before = app.results(id).await;
    assert!(chunks_of(&app, id).await > 0);

    let early = retention::delete_expired_uploads(&app.db, retention)
        .await
        .unwrap();
    assert_eq!(early, 0, "finished less than the retention ago");
    backdate_finish(&app, id, Duration::from_secs(2 * 3600)).await;
    let deleted = retention::delete_expired_uploads(&app.db, retention)
        .await
        .unwrap();

    assert_eq!(deleted, 1);
    assert_eq!(chunks_of(&app, id).await, 0, "the stored file is gone");
    let import = app.get_json(&format!("/imports/{id}")).await;
    assert!(import["upload_deleted_at"].is_string(), "{import}");
    assert_eq!(import["status"], "completed");
    assert_eq!(import["rows"]["invited"], 3, "{import}");
    let results = app.results(id).await;
    assert_eq!(results, results_before, "every row's result stays");
    assert_eq!(results.lines().count(), 4, "{results}");
    let audit = app.get_json("/audit").await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["action"], "upload_delete", "{audit}");
    assert_eq!(entry["target"], format!("import {id}"));
    assert_eq!(entry["actor"], Value::Null);
    // Once deleted, nothing is left to delete; sending the import's failed emails again works.
    let again = retention::delete_expired_uploads(&app.db, retention)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let retry = app.post(&format!("/imports/{id}/retry")).await;
    assert_eq!(retry.status(), 202);
    assert_eq!(retry.json::<Value>().await.unwrap(), json!({"requeued": 0}));
}

/// How many stored pieces the import's file has.
async fn chunks_of(app: &TestApp, id: i64) -> i64 {
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| import_chunks::table
                .filter(import_chunks::import_id.eq(id))
                .count()
                .get_result::<i64>(c))?)
        })
        .await
        .unwrap()
}

/// Moves the import's `finished_at` back by `by`, as if it had finished that long ago.
async fn backdate_finish(app: &TestApp, id: i64, by: Duration) {
    let at = chrono::Utc::now().naive_utc() - by;
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| diesel::update(imports::table.find(id))
                .set(imports::finished_at.eq(Some(at)))
                .execute(c))?)
        })
        .await
        .unwrap();
}

/// Every answer that carries a secret (an API token, an invitation link, the invitation page
/// whose URL is the secret, its accept answer) and every other API answer says `no-store`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_carry_a_secret_are_never_cached() {
    let app = TestApp::spawn_without_workers(Stack::Sqlite).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.process_without_sending(id).await;
    let member = app.member_id("person0@example.com").await;

    let token = app.post_json("/tokens", json!({"name": "cache"})).await;
    let link = app
        .post(&format!("/members/{member}/invitation-link"))
        .await;
    assert_eq!(token.status(), 201);
    assert_eq!(link.status(), 200);
    let no_store = |r: &reqwest::Response| {
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut seen = vec![
        ("POST …/tokens", no_store(&token)),
        ("POST …/invitation-link", no_store(&link)),
    ];
    let url: Value = link.json().await.unwrap();
    let secret = url["url"].as_str().unwrap().rsplit('/').next().unwrap();
    let page = app.show_invitation(secret).await;
    seen.push(("GET /invitations/{token}", no_store(&page)));
    let accepted = app.accept_invitation(secret).await;
    assert_eq!(accepted.status(), 200);
    seen.push(("POST /invitations/{token}/accept", no_store(&accepted)));
    let unauthorized = app
        .client
        .get(app.url("/members"))
        .bearer_auth("bi_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    seen.push(("a 401", no_store(&unauthorized)));
    seen.push((
        "GET …/imports/{id}",
        no_store(&app.get(&format!("/imports/{id}")).await),
    ));

    for (what, cache) in seen {
        assert_eq!(cache.as_deref(), Some("no-store"), "{what}");
    }
}

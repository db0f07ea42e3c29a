//! Signed webhooks (docs/product.md, "Webhooks"), received by a server that verifies every
//! request with the official Standard Webhooks Python library.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use invite_shared::db::schema::{deliveries, webhook_attempts, webhook_deliveries};
use invite_shared::on_conn;
use invite_shared::store::deliveries::ClaimToken;
use invite_shared::store::webhooks::{self as store, Claimed, Next, Recorded, Tried};
use invite_tests::app::{PATIENCE, Stack, TestApp, free_port, people_csv};
use invite_tests::on_both_stacks;
use invite_tests::smtp::{ReplyPlan, SmtpServer};
use invite_tests::webhooks::Receiver;
use secrecy::SecretString;
use serde_json::{Value, json};

on_both_stacks!(
    a_test_event_arrives_signed_and_is_logged,
    every_event_arrives_with_a_stable_id_through_an_outage_and_errors,
    an_archive_and_an_import_are_reported,
    a_thousand_row_import_is_reported_event_by_event,
    an_endpoint_failing_for_the_whole_window_is_disabled_until_enabled,
    a_late_attempt_after_a_takeover_is_logged_and_leaves_the_streak_alone,
    an_attempt_at_a_delivery_deleted_with_its_endpoint_records_nothing,
);

/// Makes an endpoint at 127.0.0.1:`port` for `events`; its id and secret.
async fn endpoint(app: &TestApp, port: u16, events: &[&str]) -> (i64, String) {
    let body = json!({
        "url": format!("http://127.0.0.1:{port}/hook"),
        "events": events,
        "description": "test receiver",
    });
    let response = app.post_json("/webhooks", body).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let created: Value = response.json().await.unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    (created["id"].as_i64().unwrap(), secret)
}

/// Every request the receiver got passed the official library's verification.
fn all_verified(received: &[Value]) {
    for entry in received {
        assert_eq!(entry["verified"], true, "{entry}");
    }
}

async fn a_test_event_arrives_signed_and_is_logged(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let port = free_port();
    let (id, secret) = endpoint(&app, port, &["webhook.test"]).await;
    let mut receiver = Receiver::new(&secret);
    receiver.start(port, "200").await;

    assert_eq!(
        app.post(&format!("/webhooks/{id}/test")).await.status(),
        202
    );

    let received = receiver.wait_for("the test event", |r| !r.is_empty()).await;
    all_verified(&received);
    assert_eq!(received.len(), 1, "{received:?}");
    let event = &received[0]["body"];
    assert_eq!(event["type"], "webhook.test");
    assert_eq!(event["data"]["endpoint_id"], id);
    assert_eq!(event["data"]["workspace"], app.workspace.as_str());
    let webhook_id = received[0]["webhook_id"].as_str().unwrap();
    assert!(webhook_id.starts_with("msg_"), "{webhook_id}");

    let log = wait_for_log(&app, id, |a| a.iter().any(|a| a["state"] == "delivered")).await;
    assert_eq!(log[0]["status"], 200, "{log:?}");
    assert_eq!(log[0]["webhook_id"], webhook_id);
    assert_eq!(log[0]["response"], "answered 200");
    let listed = app.get_json("/webhooks").await;
    assert_eq!(listed["webhooks"][0]["id"], id);
    assert!(
        !listed.to_string().contains(&secret[6..]),
        "no secret in the list"
    );
    let audit = app.get_json("/audit").await.to_string();
    assert!(
        audit.contains("webhook_create") && audit.contains("webhook_test"),
        "{audit}"
    );
}

/// The endpoint's delivery log, once `done` says so.
async fn wait_for_log(app: &TestApp, id: i64, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + invite_tests::app::PATIENCE;
    loop {
        let log = app.get_json(&format!("/webhooks/{id}/deliveries")).await;
        let attempts = log["attempts"].as_array().cloned().unwrap_or_default();
        if done(&attempts) {
            return attempts;
        }
        assert!(std::time::Instant::now() < deadline, "the log: {log}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn every_event_arrives_with_a_stable_id_through_an_outage_and_errors(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let port = free_port();
    let (id, secret) = endpoint(&app, port, &["webhook.test"]).await;
    let mut receiver = Receiver::new(&secret);
    for _ in 0..3 {
        assert_eq!(
            app.post(&format!("/webhooks/{id}/test")).await.status(),
            202
        );
    }

    // Down: every delivery fails to connect at least once, and is kept for later.
    let log = wait_for_log(&app, id, |a| {
        a.iter()
            .filter(|a| a["error"].is_string())
            .filter_map(|a| a["delivery_id"].as_i64())
            .collect::<BTreeSet<_>>()
            .len()
            == 3
    })
    .await;
    assert!(log.iter().all(|a| a["state"] != "delivered"), "{log:?}");
    let listed = app.get_json("/webhooks").await;
    assert!(
        listed["webhooks"][0]["failing_since"].is_string(),
        "{listed}"
    );

    // Up, answering 500: each arrives, verified, and is retried.
    receiver.start(port, "500").await;
    let ids = |r: &[Value]| -> BTreeSet<String> {
        r.iter()
            .map(|e| e["webhook_id"].as_str().unwrap().to_owned())
            .collect()
    };
    receiver.wait_for("three 500s", |r| ids(r).len() == 3).await;

    // Then 200: each is delivered, under the id it had all along.
    receiver.answer("200");
    let received = receiver
        .wait_for("every event answered 200", |r| {
            r.iter().filter(|e| e["answered"] == 200).count() >= 3
                && ids(r).len() == 3
                && ids(&r
                    .iter()
                    .filter(|e| e["answered"] == 200)
                    .cloned()
                    .collect::<Vec<_>>())
                .len()
                    == 3
        })
        .await;
    all_verified(&received);
    assert_eq!(
        ids(&received).len(),
        3,
        "no new ids on retries: {received:?}"
    );
    let mut by_id: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for e in &received {
        by_id
            .entry(e["webhook_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(e["answered"].as_i64().unwrap());
    }
    for (webhook_id, answers) in &by_id {
        assert_eq!(answers.first(), Some(&500), "{webhook_id}: {answers:?}");
        assert_eq!(answers.last(), Some(&200), "{webhook_id}: {answers:?}");
    }
    let log = wait_for_log(&app, id, |a| {
        a.iter().filter(|a| a["state"] == "delivered").count() >= 3
    })
    .await;
    assert!(log.iter().any(|a| a["status"] == 500), "{log:?}");
    let listed = app.get_json("/webhooks").await;
    assert!(listed["webhooks"][0]["failing_since"].is_null(), "{listed}");

    // A replay sends the delivered message again, with its id.
    let delivery = log[0]["delivery_id"].as_i64().unwrap();
    let replayed = app
        .post(&format!("/webhooks/{id}/deliveries/{delivery}/replay"))
        .await;
    assert_eq!(replayed.status(), 202);
    let before = received.len();
    let again = receiver.wait_for("the replay", |r| r.len() > before).await;
    assert_eq!(ids(&again).len(), 3, "the replay has its old id: {again:?}");
}

async fn an_archive_and_an_import_are_reported(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let port = free_port();
    let events = ["import.completed", "member.archived", "member.accepted"];
    let (_, secret) = endpoint(&app, port, &events).await;
    let mut receiver = Receiver::new(&secret);
    receiver.start(port, "200").await;

    let csv = "First Name,Last Name,Email,User Role\nAda,Lovelace,ada@example.com,End User\n";
    let import: Value = app.upload(csv).await.json().await.unwrap();
    let import_id = import["id"].as_i64().unwrap();
    app.wait_for_import(import_id, |i| i["status"] == "completed")
        .await;
    let member = app.member_id("ada@example.com").await;
    assert_eq!(
        app.post(&format!("/members/{member}/archive"))
            .await
            .status(),
        200
    );

    let received = receiver.wait_for("two events", |r| r.len() >= 2).await;
    all_verified(&received);
    let types: BTreeSet<&str> = received
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["import.completed", "member.archived"])
    );
    let completed = received
        .iter()
        .find(|e| e["type"] == "import.completed")
        .unwrap();
    assert_eq!(completed["body"]["data"]["import_id"], import_id);
    assert_eq!(completed["body"]["data"]["status"], "completed");
    let archived = received
        .iter()
        .find(|e| e["type"] == "member.archived")
        .unwrap();
    assert_eq!(archived["body"]["data"]["member_id"], member);
    assert_eq!(archived["body"]["data"]["email"], "ada@example.com");
    assert_eq!(archived["body"]["data"]["status"], "archived");
}

/// The endpoint as `GET …/webhooks` lists it, once `done` says so.
async fn wait_for_endpoint(app: &TestApp, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let listed = app.get_json("/webhooks").await;
        let found = listed["webhooks"]
            .as_array()
            .and_then(|all| all.iter().find(|e| e["id"] == id))
            .cloned()
            .unwrap_or(Value::Null);
        if done(&found) {
            return found;
        }
        assert!(Instant::now() < deadline, "the endpoint: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Pending webhook deliveries parked until their endpoint is enabled.
async fn parked_deliveries(app: &TestApp) -> i64 {
    let far = chrono::NaiveDate::from_ymd_opt(9999, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| webhook_deliveries::table
                .filter(webhook_deliveries::state.eq("pending"))
                .filter(webhook_deliveries::next_attempt_at.ge(far))
                .count()
                .get_result::<i64>(c))?)
        })
        .await
        .unwrap()
}

/// The `webhook-id`s the receiver got.
fn webhook_ids(received: &[Value]) -> BTreeSet<String> {
    received
        .iter()
        .filter_map(|e| e["webhook_id"].as_str())
        .map(str::to_owned)
        .collect()
}

async fn an_endpoint_failing_for_the_whole_window_is_disabled_until_enabled(stack: Stack) {
    let mut app = TestApp::spawn_with(stack, |s| {
        s.webhook_retry_window = Duration::from_secs(2);
        s.webhook_retry_base_delay = Duration::from_millis(100);
    })
    .await;
    app.start_worker().await;
    let port = free_port();
    let (id, secret) = endpoint(&app, port, &["webhook.test"]).await;
    let mut receiver = Receiver::new(&secret);
    receiver.start(port, "500").await;
    let test = format!("/webhooks/{id}/test");
    assert_eq!(app.post(&test).await.status(), 202);
    // A second event, first tried after the streak began, keeps failing past the window however
    // the first one's last attempt falls.
    receiver.wait_for("a first 500", |r| !r.is_empty()).await;
    assert_eq!(app.post(&test).await.status(), 202);

    let disabled = wait_for_endpoint(&app, id, |e| e["disabled_at"].is_string()).await;
    let reason = disabled["disabled_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("failed for 2s"), "{disabled}");
    // Each delivery ends `failed` (its own window closed first) or parked `pending` (the endpoint
    // was disabled first), whichever the timing gives.
    let log = wait_for_log(&app, id, |a| !a.is_empty()).await;
    assert!(log.iter().all(|a| a["status"] == 500), "{log:?}");
    let before = receiver.received();
    all_verified(&before);
    assert!(before.iter().all(|e| e["answered"] == 500), "{before:?}");

    receiver.answer("200");
    // An event while it is disabled waits for it, parked where no claim looks.
    assert_eq!(app.post(&test).await.status(), 202);
    assert!(parked_deliveries(&app).await >= 1);
    assert!(receiver.received().iter().all(|e| e["answered"] == 500));
    let enabled = app.post(&format!("/webhooks/{id}/enable")).await;
    assert_eq!(enabled.status(), 200);
    wait_for_endpoint(&app, id, |e| e["disabled_at"].is_null()).await;

    let old = webhook_ids(&before);
    let received = receiver
        .wait_for("the event that waited, delivered", |r| {
            r.iter()
                .any(|e| e["answered"] == 200 && !old.contains(e["webhook_id"].as_str().unwrap()))
        })
        .await;
    all_verified(&received);
    let new = webhook_ids(&received).difference(&old).count();
    assert_eq!(new, 1, "one new event: {received:?}");
    wait_for_endpoint(&app, id, |e| e["failing_since"].is_null()).await;
}

/// The app's due webhook deliveries, claimed for `lease`.
async fn claim(app: &TestApp, lease: Duration) -> (ClaimToken, Vec<Claimed>) {
    app.db
        .run(move |c| Ok(store::claim(c, 10, lease)?))
        .await
        .unwrap()
}

/// An attempt at `delivery` under `claim` that was answered 500 and is to be retried in a minute.
fn answered_500(claim: ClaimToken, delivery: &Claimed) -> Tried {
    let at = invite_shared::store::now();
    Tried {
        id: delivery.id,
        claim,
        endpoint: delivery.endpoint,
        at,
        http_status: Some(500),
        error: None,
        latency_ms: 1,
        response: Some("answered 500".into()),
        next: Next::RetryAt(at + chrono::Duration::seconds(60)),
    }
}

/// Records `tried`, an endpoint failing for `window` being disabled.
async fn record(app: &TestApp, tried: Tried, window: Duration) -> anyhow::Result<Recorded> {
    app.db
        .run(move |c| Ok(store::record(c, &tried, window)?))
        .await
}

/// A `webhook.test` event queued to a new endpoint of `app` (which runs no worker); the endpoint.
async fn one_test_event(app: &TestApp) -> i64 {
    let (id, _) = endpoint(app, free_port(), &["webhook.test"]).await;
    assert_eq!(
        app.post(&format!("/webhooks/{id}/test")).await.status(),
        202
    );
    id
}

async fn a_late_attempt_after_a_takeover_is_logged_and_leaves_the_streak_alone(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let id = one_test_event(&app).await;
    // A lease that lapses at once: the next claim takes the delivery over.
    let (late, claimed) = claim(&app, Duration::ZERO).await;
    assert_eq!(claimed.len(), 1);
    let deadline = Instant::now() + PATIENCE;
    let (current, again) = loop {
        let (current, again) = claim(&app, Duration::from_secs(60)).await;
        if !again.is_empty() {
            break (current, again);
        }
        assert!(
            Instant::now() < deadline,
            "the lapsed lease was not taken over"
        );
    };
    assert_eq!(again[0].id, claimed[0].id);

    // With no window at all, any failure the streak counted would disable the endpoint.
    let recorded = record(&app, answered_500(late, &claimed[0]), Duration::ZERO).await;
    assert_eq!(
        recorded.unwrap(),
        Recorded {
            written: false,
            disabled: false
        }
    );
    let endpoint = wait_for_endpoint(&app, id, |e| e.is_object()).await;
    assert!(endpoint["failing_since"].is_null(), "{endpoint}");
    assert!(endpoint["disabled_at"].is_null(), "{endpoint}");
    let log = wait_for_log(&app, id, |a| !a.is_empty()).await;
    assert_eq!(log.len(), 1, "the late attempt is logged: {log:?}");
    assert_eq!(log[0]["state"], "sending", "{log:?}");

    // The attempt of the claim that holds the delivery is what counts.
    let recorded = record(&app, answered_500(current, &again[0]), Duration::ZERO).await;
    assert_eq!(
        recorded.unwrap(),
        Recorded {
            written: true,
            disabled: true
        }
    );
}

async fn an_attempt_at_a_delivery_deleted_with_its_endpoint_records_nothing(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let id = one_test_event(&app).await;
    let (token, claimed) = claim(&app, Duration::from_secs(60)).await;
    assert_eq!(claimed.len(), 1);

    let deleted = app
        .client
        .delete(app.url(&format!("/webhooks/{id}")))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let recorded = record(&app, answered_500(token, &claimed[0]), Duration::ZERO).await;

    assert_eq!(
        recorded.expect("no error for a deleted endpoint"),
        Recorded {
            written: false,
            disabled: false
        }
    );
    let logged: i64 = app
        .db
        .run(|conn| {
            Ok(on_conn!(conn, |c| webhook_attempts::table
                .count()
                .get_result(c))?)
        })
        .await
        .unwrap();
    assert_eq!(logged, 0, "nothing is logged for a deleted endpoint");
}

/// Private, loopback and link-local targets are refused without `WEBHOOK_ALLOW_PRIVATE`, as is
/// plain `http`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_with_words() {
    let app = TestApp::spawn_with(Stack::Sqlite, |s| s.webhook_allow_private = false).await;
    for url in [
        "https://127.0.0.1/hook",
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost:8443/hook",
        "http://example.com/hook",
        "ftp://example.com/hook",
    ] {
        let body = json!({"url": url, "events": ["webhook.test"]});
        let response = app.post_json("/webhooks", body).await;
        assert_eq!(response.status(), 422, "{url}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_url", "{url}: {error}");
        if url.contains("localhost") {
            // What a name resolves to inside the deployment is not told.
            let message = error["error"]["message"].as_str().unwrap();
            assert!(
                !message.contains("127.0.0.1") && !message.contains("::1"),
                "{message}"
            );
            assert!(message.contains("loopback"), "{message}");
        }
    }
    let body = json!({"url": "https://localhost/hook", "events": ["email.opened"]});
    let error: Value = app.post_json("/webhooks", body).await.json().await.unwrap();
    assert_eq!(error["error"]["code"], "invalid_events", "{error}");
    assert_eq!(app.get_json("/webhooks").await["webhooks"], json!([]));
}

/// The import's emails: (email id, member id, state).
async fn emails_of(app: &TestApp, import: i64) -> Vec<(i64, i64, String)> {
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| deliveries::table
                .filter(deliveries::import_id.eq(import))
                .select((deliveries::id, deliveries::member_id, deliveries::state))
                .load::<(i64, i64, String)>(c))?)
        })
        .await
        .unwrap()
}

/// Webhook deliveries not delivered yet.
async fn undelivered(app: &TestApp) -> i64 {
    app.db
        .run(|conn| {
            Ok(on_conn!(conn, |c| webhook_deliveries::table
                .filter(webhook_deliveries::state.ne("delivered"))
                .count()
                .get_result::<i64>(c))?)
        })
        .await
        .unwrap()
}

/// The `data` field `field` of each received event of type `kind`, in arrival order.
fn field_of(received: &[Value], kind: &str, field: &str) -> Vec<Value> {
    received
        .iter()
        .filter(|e| e["type"] == kind)
        .map(|e| e["body"]["data"][field].clone())
        .collect()
}

/// 1,000 rows (2 invalid, 3 addresses refused by the mail server): exactly one `member.invited`
/// per member, one `email.sent` or `email.failed` per email, one `import.completed`, each
/// verified by the official library, with an id of its own, none lost and none twice.
async fn a_thousand_row_import_is_reported_event_by_event(stack: Stack) {
    // A mail server of its own on both stacks: the embedded one would write to its outbox.
    let smtp = SmtpServer::start().await;
    let refused = [
        "person3@example.com",
        "person500@example.com",
        "person997@example.com",
    ];
    for address in refused {
        smtp.reply_for(address, ReplyPlan::Permanent);
    }
    let url = SecretString::from(smtp.url());
    let mut app = TestApp::spawn_with(stack, |s| s.smtp_url = Some(url)).await;
    app.start_worker().await;
    let port = free_port();
    let events = [
        "member.invited",
        "email.sent",
        "email.failed",
        "import.completed",
    ];
    let (_, secret) = endpoint(&app, port, &events).await;
    let mut receiver = Receiver::new(&secret);
    receiver.start(port, "200").await;

    let mut csv = people_csv(998);
    csv.push_str("Bad,Row,not-an-address,End User\nNo,Role,norole@example.com,Overlord\n");
    let import: Value = app.upload(csv).await.json().await.unwrap();
    let import_id = import["id"].as_i64().unwrap();
    let expected = 998 + 998 + 1;
    receiver
        .wait_for("every event", |r| r.len() >= expected)
        .await;
    // Each is logged before it is answered, and marked delivered after: once none is left, the
    // log holds everything that will ever arrive.
    let deadline = std::time::Instant::now() + invite_tests::app::PATIENCE;
    while undelivered(&app).await > 0 {
        assert!(std::time::Instant::now() < deadline, "deliveries left");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let received = receiver.received();
    all_verified(&received);
    let ids: BTreeSet<&str> = received
        .iter()
        .map(|e| e["webhook_id"].as_str().unwrap())
        .collect();
    assert_eq!(received.len(), expected, "nothing lost, nothing twice");
    assert_eq!(ids.len(), expected, "an id per event");

    let emails = emails_of(&app, import_id).await;
    assert_eq!(emails.len(), 998);
    let set = |values: Vec<Value>| -> BTreeSet<i64> {
        values.iter().map(|v| v.as_i64().unwrap()).collect()
    };
    let members: BTreeSet<i64> = emails.iter().map(|e| e.1).collect();
    let invited = field_of(&received, "member.invited", "member_id");
    assert_eq!(invited.len(), 998);
    assert_eq!(set(invited), members);
    for import in field_of(&received, "member.invited", "import_id") {
        assert_eq!(import, import_id);
    }
    let in_state = |state: &str| -> BTreeSet<i64> {
        emails
            .iter()
            .filter(|e| e.2 == state)
            .map(|e| e.0)
            .collect()
    };
    assert_eq!(
        set(field_of(&received, "email.sent", "email_id")),
        in_state("sent")
    );
    assert_eq!(in_state("sent").len(), 995);
    assert_eq!(
        set(field_of(&received, "email.failed", "email_id")),
        in_state("failed")
    );
    let failed: BTreeSet<String> = field_of(&received, "email.failed", "email")
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed, refused.iter().map(|a| a.to_string()).collect());
    for error in field_of(&received, "email.failed", "error") {
        assert!(error.as_str().unwrap().contains("550"), "{error}");
    }
    let completed = field_of(&received, "import.completed", "import_id");
    assert_eq!(completed, vec![Value::from(import_id)]);
}

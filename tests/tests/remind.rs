//! Reminders on both stacks, through the HTTP API: whom a filter reminds, the cooldown and the cap
//! per member, fresh links, workspace lines, and two calls at once.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use invite_shared::db::schema::invitation_links;
use invite_shared::on_conn;
use invite_tests::app::{Stack, TestApp, named_people_csv, people_csv};
use invite_tests::on_both_stacks;
use invite_tests::smtp::ReceivedMessage;
use serde_json::{Value, json};

on_both_stacks!(
    every_invited_member_and_no_one_else_gets_one_reminder_with_a_working_link,
    a_second_call_within_the_cooldown_reminds_nobody,
    a_member_reminded_remind_max_times_is_skipped,
    invited_before_and_import_choose_whom_to_remind,
    another_workspaces_members_are_never_reminded,
    a_member_whose_link_expired_gets_a_fresh_working_link,
    two_calls_at_once_remind_each_member_once,
    a_filter_that_cannot_be_read_is_refused_in_words,
    a_member_whose_email_has_not_gone_out_yet_is_skipped,
);

/// The subject every reminder starts with.
const REMINDER: &str = "Reminder: ";

/// The reminder emails sent so far.
fn reminders(app: &TestApp) -> Vec<ReceivedMessage> {
    app.emails()
        .into_iter()
        .filter(|m| m.subject().starts_with(REMINDER))
        .collect()
}

/// How many reminders each address got.
fn reminders_by_address(app: &TestApp) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for message in reminders(app) {
        for to in &message.rcpt_to {
            *counts.entry(to.clone()).or_insert(0) += 1;
        }
    }
    counts
}

/// `POST …/members/remind` with `body`; its status and JSON.
async fn remind(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.post_json("/members/remind", body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// `(reminded, skipped)` of a call that must succeed.
async fn remind_ok(app: &TestApp, body: Value) -> (u64, u64) {
    let (status, answer) = remind(app, body).await;
    assert_eq!(status, 202, "{answer}");
    (
        answer["reminded"].as_u64().unwrap(),
        answer["skipped"].as_u64().unwrap(),
    )
}

/// Uploads `csv`, waits until every email is sent, and returns the import's id.
async fn settled_upload(app: &TestApp, csv: String) -> i64 {
    let id = app.upload_ok(csv).await;
    app.settled(id).await;
    id
}

async fn every_invited_member_and_no_one_else_gets_one_reminder_with_a_working_link(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let import = settled_upload(&app, people_csv(10)).await;
    let invitations = app.emails();
    for accepted in &invitations[..3] {
        let token = app.token_in(&accepted.text_body());
        assert_eq!(app.accept_invitation(&token).await.status(), 200);
    }
    let accepted: Vec<&String> = invitations[..3].iter().map(|m| &m.rcpt_to[0]).collect();

    let counts = remind_ok(&app, json!({})).await;

    assert_eq!(
        counts,
        (7, 4),
        "the three who accepted and the admin are skipped"
    );
    app.settled(import).await;
    let by_address = reminders_by_address(&app);
    assert_eq!(by_address.len(), 7, "{by_address:?}");
    assert!(by_address.values().all(|&n| n == 1), "{by_address:?}");
    assert!(accepted.iter().all(|a| !by_address.contains_key(*a)));
    let sent = reminders(&app);
    assert!(sent[0].subject().contains("invited you to join"));
    for message in &sent {
        let token = app.token_in(&message.text_body());
        assert_eq!(app.show_invitation(&token).await.status(), 200);
    }
    let token = app.token_in(&sent[0].text_body());
    assert_eq!(app.accept_invitation(&token).await.status(), 200);
    let audit = app.get_json("/audit").await;
    let entries: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "remind")
        .collect();
    assert_eq!(entries.len(), 1, "one entry per call: {audit}");
    assert_eq!(entries[0]["target"], "members: 7 reminded, 4 skipped");
}

async fn a_second_call_within_the_cooldown_reminds_nobody(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let import = settled_upload(&app, people_csv(10)).await;
    let invited = json!({ "status": "invited" });
    assert_eq!(remind_ok(&app, invited.clone()).await, (10, 0));
    app.settled(import).await;

    let again = remind_ok(&app, invited).await;

    assert_eq!(again, (0, 10));
    app.settled(import).await;
    assert_eq!(reminders(&app).len(), 10, "no email for the second call");
}

async fn a_member_reminded_remind_max_times_is_skipped(stack: Stack) {
    let mut app = TestApp::spawn_with(stack, |s| {
        s.remind_cooldown = std::time::Duration::ZERO;
        s.remind_max = 2;
    })
    .await;
    app.start_worker().await;
    let import = settled_upload(&app, people_csv(2)).await;
    let invited = json!({ "status": "invited" });

    // Each call's reminders are sent before the next: a reminder cancels an unsent one.
    let first = remind_ok(&app, invited.clone()).await;
    app.settled(import).await;
    let second = remind_ok(&app, invited.clone()).await;
    app.settled(import).await;
    let third = remind_ok(&app, invited).await;

    assert_eq!((first, second, third), ((2, 0), (2, 0), (0, 2)));
    app.settled(import).await;
    let by_address = reminders_by_address(&app);
    assert_eq!(by_address.len(), 2, "{by_address:?}");
    assert!(by_address.values().all(|&n| n == 2), "{by_address:?}");
}

async fn invited_before_and_import_choose_whom_to_remind(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let early = settled_upload(&app, named_people_csv("early", 3)).await;
    let between = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    let late = settled_upload(&app, named_people_csv("late", 4)).await;

    let before = remind_ok(&app, json!({ "invited_before": between })).await;
    let of_late = remind_ok(&app, json!({ "import": late, "status": "invited" })).await;

    assert_eq!(before, (3, 1), "the early invitees; the admin is skipped");
    assert_eq!(of_late, (4, 0));
    app.settled(early).await;
    app.settled(late).await;
    let mut reminded: Vec<String> = reminders_by_address(&app).into_keys().collect();
    reminded.sort();
    let mut expected: Vec<String> = (0..3)
        .map(|i| format!("early{i}@example.com"))
        .chain((0..4).map(|i| format!("late{i}@example.com")))
        .collect();
    expected.sort();
    assert_eq!(reminded, expected);
    assert_eq!(reminders(&app).len(), 7);
}

async fn another_workspaces_members_are_never_reminded(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let other = app.other_workspace().await;
    let own = settled_upload(&app, named_people_csv("own", 2)).await;

    let with_their_import = remind_ok(&app, json!({ "import": other.import })).await;
    let everyone = remind_ok(&app, json!({})).await;

    assert_eq!(
        with_their_import,
        (0, 0),
        "another workspace's import chooses nobody"
    );
    assert_eq!(
        everyone,
        (2, 1),
        "the workspace's own invitees; its admin is skipped"
    );
    app.settled(own).await;
    app.settled_in("globex", &other.token, other.import).await;
    let by_address = reminders_by_address(&app);
    assert!(
        !by_address.contains_key("person0@example.com"),
        "{by_address:?}"
    );
    assert_eq!(by_address.len(), 2, "{by_address:?}");
    let theirs = app
        .get_in(
            ("globex", &other.token),
            &format!("/members/{}", other.member),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        theirs["email_status"], "sent",
        "their one invitation: {theirs}"
    );
}

async fn a_member_whose_link_expired_gets_a_fresh_working_link(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let import = settled_upload(&app, people_csv(1)).await;
    let old = app.token_in(&app.emails()[0].text_body());
    let past = Utc::now().naive_utc() - chrono::Duration::days(1);
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| diesel::update(invitation_links::table)
                .set(invitation_links::expires_at.eq(past))
                .execute(c))?)
        })
        .await
        .unwrap();
    assert_eq!(app.show_invitation(&old).await.status(), 410);

    assert_eq!(
        remind_ok(&app, json!({ "status": "invited" })).await,
        (1, 0)
    );

    app.settled(import).await;
    let sent = reminders(&app);
    assert_eq!(sent.len(), 1);
    let fresh = app.token_in(&sent[0].text_body());
    assert_ne!(fresh, old);
    assert_eq!(app.show_invitation(&fresh).await.status(), 200);
    assert_eq!(app.accept_invitation(&fresh).await.status(), 200);
    let member = app.member("person0@example.com").await;
    assert_eq!(member["status"], "active");
}

async fn two_calls_at_once_remind_each_member_once(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let import = settled_upload(&app, people_csv(30)).await;
    let invited = json!({ "status": "invited" });

    let (one, two) = tokio::join!(
        remind_ok(&app, invited.clone()),
        remind_ok(&app, invited.clone())
    );

    assert_eq!(one.0 + two.0, 30, "{one:?} {two:?}");
    assert_eq!(one.1 + two.1, 30, "{one:?} {two:?}");
    app.settled(import).await;
    let by_address = reminders_by_address(&app);
    assert_eq!(by_address.len(), 30);
    assert!(by_address.values().all(|&n| n == 1), "{by_address:?}");
}

async fn a_filter_that_cannot_be_read_is_refused_in_words(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let import = settled_upload(&app, people_csv(1)).await;

    let status = remind(&app, json!({ "status": "pending" })).await;
    let email_status = remind(&app, json!({ "email_status": "lost" })).await;
    let time = remind(&app, json!({ "invited_before": "last week" })).await;
    let unknown = remind(&app, json!({ "statuses": ["invited"] })).await;
    let fraction = remind(&app, json!({ "import": 1.5 })).await;
    // JSON Schema's `integer` admits a number written with a zero fraction.
    let whole = remind(&app, json!({ "import": 1.0, "status": "active" })).await;
    // A search that searches for nothing chooses nobody rather than everyone (the list, given
    // the same, lists everyone).
    let blank = remind(&app, json!({ "q": "  " })).await;
    let invisible = remind(&app, json!({ "q": "\u{200b}" })).await;

    for (answer, names) in [
        (&status, "status `pending`"),
        (&email_status, "email_status `lost`"),
        (&time, "invited_before `last week`"),
    ] {
        assert_eq!(answer.0, 422, "{answer:?}");
        assert_eq!(answer.1["error"]["code"], "invalid_filter");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{message}");
    }
    assert_eq!(unknown.0, 422, "{unknown:?}");
    assert_eq!(unknown.1["error"]["code"], "invalid_request");
    assert_eq!(fraction.0, 422, "{fraction:?}");
    for nothing in [&blank, &invisible] {
        assert_eq!(nothing.0, 202, "{nothing:?}");
        assert_eq!(
            nothing.1,
            json!({ "reminded": 0, "skipped": 0, "suppressed": 0 })
        );
    }
    assert_eq!(whole.0, 202, "{whole:?}");
    app.settled(import).await;
    assert!(reminders(&app).is_empty());
}

/// A reminder follows an email that went out: while a member's invitation is still waiting for a
/// worker, a remind skips them rather than sending both within seconds of each other.
async fn a_member_whose_email_has_not_gone_out_yet_is_skipped(stack: Stack) {
    let mut app = TestApp::spawn_without_workers(stack).await;
    let waiting = app.upload_ok(people_csv(3)).await;
    app.process_without_sending(waiting).await;

    let before = remind_ok(&app, json!({ "import": waiting })).await;
    app.start_worker().await;
    app.settled(waiting).await;
    let after = remind_ok(&app, json!({ "import": waiting })).await;
    app.settled(waiting).await;

    assert_eq!(before, (0, 3), "nothing has gone out yet");
    assert_eq!(after, (3, 0), "sent: now they can be reminded");
    let counts = reminders_by_address(&app);
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

/// Members the scale check below invites straight into the ledger.
const MANY: u64 = 100_000;

/// A scale check, run by hand (`cargo nextest run -p invite-tests --test remind --run-ignored
/// only --no-capture`): reminding 100,000 members goes page by page and reminds each once; it
/// prints how long the call took. No worker runs, so the reminders stay pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a scale check: about a minute on PostgreSQL"]
async fn reminding_a_hundred_thousand_members_goes_page_by_page() {
    for stack in [Stack::Postgres, Stack::Sqlite] {
        let app = TestApp::spawn_with(stack, |s| {
            s.http_request_timeout = std::time::Duration::from_secs(600)
        })
        .await;
        let sql = many_members_sql(stack);
        app.db
            .run(move |conn| Ok(on_conn!(conn, |c| c.batch_execute(&sql))?))
            .await
            .unwrap();

        let started = Instant::now();
        let counts = remind_ok(&app, json!({ "status": "invited" })).await;
        let took = started.elapsed();

        assert_eq!(counts, (MANY, 0));
        println!(
            "{stack:?}: {MANY} members reminded in {:.1} s ({:.0} a second)",
            took.as_secs_f64(),
            MANY as f64 / took.as_secs_f64()
        );
    }
}

/// SQL inviting [`MANY`] members into workspace `acme` (no email sent for them).
fn many_members_sql(stack: Stack) -> String {
    let series = match stack {
        Stack::Postgres => format!("SELECT generate_series(1, {MANY}) AS n"),
        Stack::Sqlite => format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {MANY}) \
             SELECT n FROM s"
        ),
    };
    format!(
        "INSERT INTO accounts (email, created_at) SELECT 'many' || n || '@example.com', \
         CURRENT_TIMESTAMP FROM ({series}) AS g; \
         INSERT INTO members (workspace_id, account_id, role, status, created_at, updated_at) \
         SELECT w.id, a.id, 'end_user', 'invited', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP \
         FROM accounts a, workspaces w WHERE w.slug = 'acme' AND a.email LIKE 'many%';"
    )
}

//! Bounces reach the ledger: every email leaves with its own return path as its envelope sender,
//! and a worker reading the bounce mailbox marks the email a real MTA's report names `bounced`.
//!
//! The end-to-end test runs Debian's Postfix (the invitees' server: some have a mailbox, one does
//! not) and Dovecot (the bounce mailbox), which start as root: run as another user, it prints
//! that it was skipped.

use std::time::Duration;

use diesel::prelude::*;
use invite_shared::bounce::ReturnPaths;
use invite_shared::config::Settings;
use invite_shared::db::schema::{deliveries, members};
use invite_shared::ids::DeliveryId;
use invite_shared::on_conn;
use invite_tests::app::{PATIENCE, Stack, TestApp, people_csv};
use invite_tests::dovecot::{self, Dovecot};
use invite_tests::postfix::{BOUNCE_LOCAL, Postfix};
use invite_tests::{metric_value, on_both_stacks};
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;

on_both_stacks!(a_real_mtas_bounce_marks_that_email_bounced_and_suppresses_its_member);

/// The bounce domain, and the key of its return paths.
const BOUNCE_DOMAIN: &str = "bounce.example.com";
const KEY: &str = "a test key of enough bytes";

/// Return paths under the test's bounce address.
fn return_paths() -> ReturnPaths {
    ReturnPaths::new(&bounce_address(), KEY.as_bytes()).unwrap()
}

fn bounce_address() -> String {
    format!("{BOUNCE_LOCAL}@{BOUNCE_DOMAIN}")
}

/// Per-delivery return paths on (`BOUNCE_ADDRESS`, `BOUNCE_KEY`).
fn with_return_paths(settings: &mut Settings) {
    settings.bounce_address = Some(bounce_address());
    settings.bounce_key = Some(SecretString::from(KEY));
}

/// The `Message-ID` local part the ledger keeps for a delivery.
async fn message_id_of(app: &TestApp, delivery: DeliveryId) -> String {
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| deliveries::table
                .filter(deliveries::id.eq(delivery.0))
                .select(deliveries::message_id)
                .first::<Option<String>>(c))?)
        })
        .await
        .unwrap()
        .expect("a sent email has a Message-ID")
}

/// Why the member is suppressed, if they are.
async fn suppressed(app: &TestApp, member: i64) -> Option<String> {
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| members::table
                .filter(members::id.eq(member))
                .select(members::suppressed_reason)
                .first::<Option<String>>(c))?)
        })
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_emails_envelope_sender_is_the_return_path_of_its_own_delivery() {
    let mut app = TestApp::spawn_with(Stack::Postgres, with_return_paths).await;
    app.start_worker().await;
    let id = app.upload_ok(people_csv(3)).await;
    app.settled(id).await;
    let paths = return_paths();

    let messages = app.smtp().messages();
    assert_eq!(messages.len(), 3);
    for message in messages {
        let delivery = paths
            .delivery(&message.mail_from)
            .unwrap_or_else(|e| panic!("MAIL FROM {:?}: {e}", message.mail_from));
        let message_id = message_id_of(&app, delivery).await;
        assert!(
            message
                .data
                .contains(&format!("Message-ID: <{message_id}@")),
            "the return path names this email's own delivery:\n{}",
            message.data
        );
        assert!(
            message
                .data
                .contains("From: \"Bulk Invite\" <no-reply@localhost>")
                || message
                    .data
                    .contains("From: Bulk Invite <no-reply@localhost>"),
            "From: stays EMAIL_FROM:\n{}",
            message.data
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bounce_address_the_envelope_sender_is_email_froms_address() {
    let app = TestApp::spawn(Stack::Postgres).await;
    let id = app.upload_ok(people_csv(2)).await;
    app.settled(id).await;

    let senders: Vec<String> = app
        .smtp()
        .messages()
        .into_iter()
        .map(|m| m.mail_from)
        .collect();
    assert_eq!(senders, ["no-reply@localhost", "no-reply@localhost"]);
}

/// Polls `GET …/members` until the member's `email_status` is `status`; returns the member.
async fn wait_for_status(
    app: &TestApp,
    email: &str,
    status: &str,
    logs: impl Fn() -> String,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let member = app.member(email).await;
        if member["email_status"] == status {
            return member;
        }
        assert!(
            Instant::now() < deadline,
            "{email} is not {status}: {member}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Five invitees of whom `person4@example.com` has no mailbox: Postfix's own DSN for that address
/// comes back to the email's return path, into the bounce mailbox, and the worker reads it.
async fn a_real_mtas_bounce_marks_that_email_bounced_and_suppresses_its_member(stack: Stack) {
    if !dovecot::runnable() {
        return;
    }
    let people: Vec<String> = (0..4).map(|i| format!("person{i}@example.com")).collect();
    let mailboxes: Vec<&str> = people.iter().map(String::as_str).collect();
    let mta = Postfix::start_delivering(BOUNCE_DOMAIN, &mailboxes);
    let imap = Dovecot::start(Some(&mta.mail_root()));
    let mut app = TestApp::spawn_with(stack, |s| {
        with_return_paths(s);
        s.smtp_url = Some(SecretString::from(mta.url()));
        s.bounce_imap_url = Some(SecretString::from(imap.url()));
        s.bounce_poll_interval = Duration::from_millis(200);
    })
    .await;
    app.start_worker().await;
    let logs = || format!("Postfix:\n{}\nDovecot:\n{}", mta.log(), imap.log());

    let id = app.upload_ok(people_csv(5)).await;
    app.wait_for_import(id, |i| i["status"] == "completed")
        .await;
    let bounced = wait_for_status(&app, "person4@example.com", "bounced", logs).await;

    let error = bounced["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("5.1.1") && error.contains("unknown"),
        "{bounced}"
    );
    let member = bounced["id"].as_i64().unwrap();
    assert_eq!(suppressed(&app, member).await.as_deref(), Some("bounced"));
    for person in &people {
        assert_eq!(app.member(person).await["email_status"], "sent", "{person}");
        assert_eq!(
            mta.delivered_to(person),
            1,
            "{person}'s server has the email"
        );
        let member = app.member_id(person).await;
        assert_eq!(suppressed(&app, member).await, None, "{person}");
    }
    let import = app
        .wait_for_import(id, |i| i["emails"]["bounced"] == 1)
        .await;
    assert_eq!(import["emails"]["sent"], 4, "{import}");
    let deadline = Instant::now() + PATIENCE;
    while imap.count("Processed").await != 1 {
        assert!(
            Instant::now() < deadline,
            "the report was not moved\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(imap.count("INBOX").await, 0);
    // At least: under plain `cargo test` both stacks' tests share one process's counters.
    let metrics = app.metrics().await;
    for series in [
        r#"invites_bounce_reports_total{result="recorded"}"#,
        r#"invites_emails_total{result="bounced"}"#,
    ] {
        let counted = metric_value(&metrics, series).unwrap_or_default();
        assert!(counted >= 1.0, "{series}: {counted}\n{metrics}");
    }
    // The reader waits in IDLE now; shutdown takes it out at once.
    let stopping = Instant::now();
    app.stop_workers().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the worker took {:?} to stop",
        stopping.elapsed()
    );
}

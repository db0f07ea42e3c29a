//! Two real `invite-worker` processes read one bounce mailbox (Debian's Dovecot) while one of them
//! is SIGKILLed: every report is applied exactly once and ends in the processed folder.
//!
//! Dovecot starts as root: run as another user, the test prints that it was skipped.
#![cfg(feature = "postgres")]

use std::time::Duration;

use diesel::prelude::*;
use invite_shared::bounce::ReturnPaths;
use invite_shared::db::schema::{bounce_reports, deliveries};
use invite_shared::ids::DeliveryId;
use invite_shared::on_conn;
use invite_tests::app::{PATIENCE, Stack, TestApp, people_csv};
use invite_tests::dovecot::{self, Dovecot};
use invite_tests::process::WorkerProcess;
use secrecy::SecretString;
use tokio::time::Instant;

/// The bounce address and the key of its return paths: the fixture's.
const BOUNCE_ADDRESS: &str = "bounces@bounce.example.com";
const KEY: &str = "a test key of enough bytes";

/// Postfix's DSN for delivery 42, from the unit tests' fixtures.
const FIXTURE: &str = include_str!("../../shared/src/bounce/fixtures/postfix.eml");

/// The ids of the import's deliveries.
async fn deliveries_of(app: &TestApp, import: i64) -> Vec<i64> {
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| deliveries::table
                .filter(deliveries::import_id.eq(import))
                .select(deliveries::id)
                .load::<i64>(c))?)
        })
        .await
        .unwrap()
}

/// Rows of `bounce_reports`, and how many deliveries they name.
async fn reports(app: &TestApp) -> (i64, i64) {
    let named = app
        .db
        .run(|conn| {
            Ok(on_conn!(conn, |c| bounce_reports::table
                .select(bounce_reports::delivery_id)
                .load::<i64>(c))?)
        })
        .await
        .unwrap();
    let deliveries: std::collections::HashSet<i64> = named.iter().copied().collect();
    (named.len() as i64, deliveries.len() as i64)
}

/// The fixture's DSN, naming `delivery` by its return path instead of delivery 42.
fn dsn_for(paths: &ReturnPaths, delivery: i64) -> String {
    let fixtures = paths.address(DeliveryId(42));
    assert!(FIXTURE.contains(&fixtures), "the fixture uses the test key");
    FIXTURE.replace(&fixtures, &paths.address(DeliveryId(delivery)))
}

/// A worker process reading the bounce mailbox at `imap`.
fn reader(app: &TestApp, imap: &Dovecot) -> WorkerProcess {
    let url = imap.url();
    let settings = [
        ("BOUNCE_ADDRESS", BOUNCE_ADDRESS),
        ("BOUNCE_KEY", KEY),
        ("BOUNCE_IMAP_URL", url.as_str()),
        ("BOUNCE_POLL_INTERVAL", "200ms"),
    ];
    WorkerProcess::start(env!("CARGO_BIN_EXE_invite-worker"), app, &settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_read_one_mailbox_and_a_killed_one_leaves_every_report_applied_once() {
    if !dovecot::runnable() {
        return;
    }
    const N: usize = 200;
    let imap = Dovecot::start(None);
    let mut app = TestApp::spawn_with(Stack::Postgres, |s| {
        s.bounce_address = Some(BOUNCE_ADDRESS.to_owned());
        s.bounce_key = Some(SecretString::from(KEY));
    })
    .await;
    app.start_worker().await;
    let import = app.upload_ok(people_csv(N)).await;
    app.settled(import).await;
    app.stop_workers().await;
    let paths = ReturnPaths::new(BOUNCE_ADDRESS, KEY.as_bytes()).unwrap();
    let mut session = imap.session().await;
    for delivery in deliveries_of(&app, import).await {
        let dsn = dsn_for(&paths, delivery);
        session
            .append("INBOX", None, None, dsn.as_bytes())
            .await
            .unwrap();
    }
    session.logout().await.unwrap();
    assert_eq!(imap.count("INBOX").await, N as u32);

    let started = Instant::now();
    let first = reader(&app, &imap);
    let _second = reader(&app, &imap);
    let deadline = Instant::now() + PATIENCE;
    let at_kill = loop {
        let (recorded, _) = reports(&app).await;
        if recorded >= 10 {
            break recorded;
        }
        assert!(Instant::now() < deadline, "no report recorded in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    first.kill();
    assert!(
        at_kill < N as i64,
        "the kill came after every report was recorded"
    );

    loop {
        let (recorded, named) = reports(&app).await;
        let (inbox, processed) = (imap.count("INBOX").await, imap.count("Processed").await);
        if (recorded, inbox, processed) == (N as i64, 0, N as u32) {
            assert_eq!(named, N as i64, "one report per delivery");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{recorded} reports recorded, INBOX {inbox}, Processed {processed}\n{}",
            imap.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{N} reports applied and moved in {:?}; {at_kill} were recorded when one worker was killed",
        started.elapsed()
    );
    let states = app.delivery_states(Some(import)).await;
    assert_eq!(states.get("bounced"), Some(&(N as i64)), "{states:?}");
    let tallies = app.get_json(&format!("/imports/{import}")).await;
    assert_eq!(tallies["emails"]["bounced"], N, "{tallies}");
    assert_eq!(tallies["emails"]["sent"], 0, "{tallies}");
}

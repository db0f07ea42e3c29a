//! Real `invite-worker` processes on PostgreSQL + Redis + SMTP: a worker SIGKILLed mid-send loses
//! no invitation, and several workers share one send-rate cap.
#![cfg(feature = "postgres")]

use std::time::Duration;

use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::process::WorkerProcess;
use invite_tests::smtp::max_in_any_window;

fn worker(app: &TestApp, extra: &[(&str, &str)]) -> WorkerProcess {
    WorkerProcess::start(env!("CARGO_BIN_EXE_invite-worker"), app, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_send_leaves_nobody_without_an_email_and_repeats_at_most_its_pool() {
    let pool = 20;
    let app = TestApp::spawn_without_workers(Stack::Postgres).await;
    // Slow replies keep a full pool of sends in flight when the kill comes.
    app.smtp().set_reply_delay(Duration::from_millis(20));
    let settings = [
        ("SMTP_POOL_SIZE", "20"),
        ("EMAIL_LEASE", "2s"),
        ("IMPORT_LEASE", "2s"),
    ];
    let first = worker(&app, &settings);
    let id = app.upload_ok(people_csv(5000)).await;
    app.smtp()
        .wait_for(1000, invite_tests::app::PATIENCE)
        .await
        .unwrap();

    first.kill();
    let _second = worker(&app, &settings);
    let import = app.settled(id).await;

    assert_eq!(import["emails"]["sent"], 5000, "{import}");
    assert_eq!(import["emails"]["failed"], 0, "{import}");
    let (recipients, repeated) = app.smtp().recipients_and_repeats();
    assert_eq!(recipients, 5000, "every invitee got an email");
    eprintln!("sends repeated after the kill: {repeated}");
    assert!(
        repeated <= pool,
        "a crash repeats at most the sends in flight: {repeated} repeats"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_together_never_send_more_than_the_rate_cap_in_any_second() {
    let app = TestApp::spawn_without_workers(Stack::Postgres).await;
    let settings = [("EMAIL_RATE_PER_SEC", "50"), ("SMTP_POOL_SIZE", "20")];
    let _workers = [worker(&app, &settings), worker(&app, &settings)];

    let id = app.upload_ok(people_csv(250)).await;
    let import = app.settled(id).await;

    assert_eq!(import["emails"]["sent"], 250);
    let accepted = app.smtp().accepted_times();
    assert_eq!(accepted.len(), 250);
    let busiest = max_in_any_window(&accepted, Duration::from_secs(1));
    assert!(busiest <= 50, "{busiest} emails in one second");
    let span = *accepted.last().unwrap() - accepted[0];
    assert!(
        span >= Duration::from_secs(4),
        "250 emails at 50/s take ~5 s: {span:?}"
    );
}

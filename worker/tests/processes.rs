//! Real `invite-worker` processes on PostgreSQL + Redis + SMTP: a worker SIGKILLed mid-send loses
//! no invitation (and what it held is sent within seconds, not after its lease), a worker paused
//! past `WORKER_DEAD_AFTER` is replaced and sends nothing of what it held, and several workers
//! share one send-rate cap.
#![cfg(feature = "postgres")]

use std::time::{Duration, Instant};

use diesel::prelude::*;
use invite_shared::db::schema::{deliveries, workers};
use invite_shared::ids::WorkerId;
use invite_shared::on_conn;
use invite_tests::app::{PATIENCE, Stack, TestApp, named_people_csv, people_csv};
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
    // The cap holds where each email is handed over; the server sees the end of each message a
    // little later, by however long a loaded machine takes to schedule it, which can move a few
    // of one second's emails next to the following second's: 10 are allowed for it. One cap per
    // worker instead of a shared one would give about 100.
    let busiest = max_in_any_window(&accepted, Duration::from_secs(1));
    assert!(busiest <= 60, "{busiest} emails in one second");
    let span = *accepted.last().unwrap() - accepted[0];
    assert!(
        span >= Duration::from_secs(4),
        "250 emails at 50/s take ~5 s: {span:?}"
    );
}

/// The settings of the liveness tests: the leases at their defaults (`EMAIL_LEASE` 5 min,
/// `IMPORT_LEASE` 2 min), a dead worker known within 3 s.
const LIVENESS: [(&str, &str); 3] = [
    ("SMTP_POOL_SIZE", "20"),
    ("WORKER_HEARTBEAT_INTERVAL", "500ms"),
    ("WORKER_DEAD_AFTER", "3s"),
];

/// The registered processes' ids, oldest first.
async fn registered(app: &TestApp) -> Vec<WorkerId> {
    app.db
        .run(|c| {
            Ok(on_conn!(c, |c| workers::table
                .order(workers::id)
                .select(workers::id)
                .load::<WorkerId>(c))?)
        })
        .await
        .unwrap()
}

/// Waits until `done` holds for the registered processes; returns them.
async fn wait_for_registered(app: &TestApp, done: impl Fn(&[WorkerId]) -> bool) -> Vec<WorkerId> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ids = registered(app).await;
        if done(&ids) {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "registered processes stayed {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deliveries `sending` under a claim of `worker`.
async fn held_by(app: &TestApp, worker: WorkerId) -> i64 {
    app.db
        .run(move |c| {
            Ok(on_conn!(c, |c| deliveries::table
                .filter(deliveries::state.eq("sending"))
                .filter(deliveries::worker_id.eq(worker))
                .count()
                .get_result::<i64>(c))?)
        })
        .await
        .unwrap()
}

/// Two workers running, the first registered listed first.
async fn two_workers(app: &TestApp) -> ([WorkerProcess; 2], [WorkerId; 2]) {
    let first = worker(app, &LIVENESS);
    let ids = wait_for_registered(app, |ids| ids.len() == 1).await;
    let second = worker(app, &LIVENESS);
    let both = wait_for_registered(app, |ids| ids.len() == 2).await;
    ([first, second], [ids[0], both[1]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_send_has_its_sends_go_out_within_seconds_though_its_lease_is_five_minutes()
 {
    let app = TestApp::spawn_without_workers(Stack::Postgres).await;
    app.smtp().set_reply_delay(Duration::from_millis(50));
    let ([first, _second], [first_id, _]) = two_workers(&app).await;
    let rows = 4000;
    let id = app.upload_ok(people_csv(rows)).await;
    app.smtp().wait_for(500, PATIENCE).await.unwrap();

    first.kill();
    let killed = Instant::now();
    let held = held_by(&app, first_id).await;
    let import = app.settled(id).await;

    assert!(held > 0, "the kill came while the worker held sends");
    assert_eq!(import["emails"]["sent"], rows, "{import}");
    assert_eq!(import["emails"]["failed"], 0, "{import}");
    let (recipients, repeated) = app.smtp().recipients_and_repeats();
    assert_eq!(recipients, rows, "every invitee got an email");
    assert!(repeated <= 20, "at most SMTP_POOL_SIZE repeats: {repeated}");
    let last = *app.smtp().accepted_times().iter().max().unwrap();
    let after_kill = last.saturating_duration_since(killed);
    eprintln!("last email accepted {after_kill:?} after the kill; {held} sends were held");
    assert!(
        after_kill < Duration::from_secs(30),
        "the last email was accepted {after_kill:?} after the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_worker_dead_after_is_replaced_and_then_gives_back_what_it_held_fenced()
 {
    let app = TestApp::spawn_without_workers(Stack::Postgres).await;
    app.smtp().set_reply_delay(Duration::from_millis(50));
    let ([paused, _other], [paused_id, other_id]) = two_workers(&app).await;
    let rows = 4000;
    let id = app.upload_ok(people_csv(rows)).await;
    app.smtp().wait_for(500, PATIENCE).await.unwrap();

    paused.pause();
    let held = held_by(&app, paused_id).await;
    // Settles only once the paused worker's claims were handed over.
    let import = app.settled(id).await;
    let while_paused = registered(&app).await;
    paused.resume();
    // It finds itself declared dead and registers anew.
    let after = wait_for_registered(&app, |ids| ids.len() == 2).await;
    // A later import, so that the resumed worker has gone through everything it held.
    let later = app.upload_ok(named_people_csv("later", 200)).await;
    app.settled(later).await;
    let import_after = app.settled(id).await;

    assert!(held > 0, "the pause came while the worker held sends");
    assert_eq!(
        while_paused,
        [other_id],
        "the paused worker was declared dead"
    );
    assert!(
        after.contains(&other_id) && !after.contains(&paused_id),
        "{after:?}"
    );
    assert_eq!(import["emails"]["sent"], rows, "{import}");
    assert_eq!(
        import_after["emails"], import["emails"],
        "nothing overwrote the re-sends"
    );
    let (recipients, repeated) = app.smtp().recipients_and_repeats();
    assert_eq!(recipients, rows + 200, "every invitee got an email");
    assert!(
        repeated <= 20,
        "only the sends in flight at the pause went out twice: {repeated}"
    );
}

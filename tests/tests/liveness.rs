//! Worker liveness on both stacks: the claims of a process whose heartbeat is older than
//! `WORKER_DEAD_AFTER` are handed back at once (fenced, with the same Message-ID), the embedded
//! start-up hands back every earlier claim, and a live process keeps its claims however long one
//! send takes.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;
use invite_shared::db::DbConn;
use invite_shared::db::schema::{deliveries, workers as workers_table};
use invite_shared::ids::{ImportId, WorkerId};
use invite_shared::on_conn;
use invite_shared::store::deliveries::{
    self as store, ClaimMemory, ClaimRequest, Claimed, Recorded, SendOutcome,
};
use invite_shared::store::{imports, now, workers};
use invite_tests::app::{Stack, TestApp, named_people_csv, people_csv};
use invite_tests::on_both_stacks;
use invite_tests::smtp::SmtpServer;

on_both_stacks!(
    a_dead_workers_claims_are_handed_back_at_once_and_its_late_outcome_is_fenced_out,
    a_start_up_hand_back_frees_every_claim_whoever_held_it,
    a_live_worker_keeps_its_claim_while_one_send_outlasts_worker_dead_after,
);

/// Registers a process in the app's database.
async fn register(app: &TestApp, name: &'static str) -> WorkerId {
    app.db
        .run(move |c| Ok(workers::register(c, name)?))
        .await
        .unwrap()
}

/// Makes a process's last heartbeat an hour old, as if it died then.
async fn silence(app: &TestApp, id: WorkerId) {
    let hour_ago = now() - chrono::TimeDelta::hours(1);
    app.db
        .run(move |c| {
            Ok(on_conn!(c, |c| diesel::update(
                workers_table::table.find(id)
            )
            .set(workers_table::heartbeat_at.eq(hour_ago))
            .execute(c))?)
        })
        .await
        .unwrap();
}

/// Claims every due delivery for `worker` under a five-minute lease.
async fn claim(app: &TestApp, worker: WorkerId) -> Vec<Claimed> {
    let request = ClaimRequest {
        limit: 100,
        lease: Duration::from_secs(300),
        ttl: Duration::from_secs(3600),
        worker: Some(worker),
    };
    app.db
        .run(move |c| Ok(store::claim_due(c, request, &mut ClaimMemory::default())?))
        .await
        .unwrap()
}

/// How many deliveries are `sending`.
async fn sending(app: &TestApp) -> i64 {
    app.db
        .run(|c| {
            Ok(on_conn!(c, |c| deliveries::table
                .filter(deliveries::state.eq("sending"))
                .count()
                .get_result::<i64>(c))?)
        })
        .await
        .unwrap()
}

/// Starts processing an import for `worker`; whether it was taken.
async fn begin(app: &TestApp, id: i64, worker: WorkerId) -> bool {
    let lease = Duration::from_secs(120);
    app.db
        .run(move |c| {
            Ok(imports::begin_processing(
                c,
                ImportId(id),
                lease,
                Some(worker),
            )?)
        })
        .await
        .unwrap()
        .is_some()
}

async fn a_dead_workers_claims_are_handed_back_at_once_and_its_late_outcome_is_fenced_out(
    stack: Stack,
) {
    let app = TestApp::spawn_without_workers(stack).await;
    let sent = app.upload_ok(people_csv(2)).await;
    app.process_without_sending(sent).await;
    let held = app.upload_ok(named_people_csv("held", 2)).await;
    let (dead, live) = (register(&app, "dead").await, register(&app, "live").await);
    let first = claim(&app, dead).await;
    assert!(begin(&app, held, dead).await, "the import is free");
    silence(&app, dead).await;

    let removed = app
        .db
        .run(|c| Ok(workers::remove_dead(c, Duration::from_secs(15))?))
        .await
        .unwrap();
    let taken_while_held = begin(&app, held, live).await;
    let (requeued, imports_back) = app
        .db
        .run(|c| {
            let requeued = store::requeue_abandoned(c)?;
            Ok((requeued, imports::hand_back_abandoned(c)?))
        })
        .await
        .unwrap();
    let second = claim(&app, live).await;
    let late: Vec<Recorded> = first
        .iter()
        .map(|d| Recorded {
            id: d.id,
            claim: d.claim,
            outcome: SendOutcome::Sent {
                reply: "250 late".into(),
            },
        })
        .collect();
    let late = app
        .db
        .run(move |c| Ok(store::record(c, &late)?))
        .await
        .unwrap();

    assert_eq!(
        first.len(),
        2,
        "both emails were claimed by the process that dies"
    );
    assert_eq!(removed, 1, "only the silent process is dead");
    assert!(!taken_while_held, "the lease holds until the hand-back");
    assert_eq!((requeued, imports_back), (2, 1));
    assert_eq!(second.len(), 2, "the live process claims them at once");
    let ids = |c: &[Claimed]| {
        c.iter()
            .map(|d| (d.id, d.message_id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&first),
        ids(&second),
        "sent again with the same Message-ID"
    );
    assert_eq!(
        (late.written, late.fenced_out),
        (0, 2),
        "the dead process's late outcomes never overwrite the re-claim"
    );
    assert!(begin(&app, held, live).await, "the import resumes at once");
    let alive = app
        .db
        .run(|c| Ok(workers::alive(c, Duration::from_secs(15))?))
        .await
        .unwrap();
    assert_eq!(alive, 1);
}

async fn a_start_up_hand_back_frees_every_claim_whoever_held_it(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let id = app.upload_ok(people_csv(3)).await;
    app.process_without_sending(id).await;
    let held = app.upload_ok(named_people_csv("held", 2)).await;
    let earlier = register(&app, "earlier instance").await;
    claim(&app, earlier).await;
    assert!(begin(&app, held, earlier).await);

    let handed = app
        .db
        .run(|c| Ok(workers::hand_back_all(c)?))
        .await
        .unwrap();
    let alive = app
        .db
        .run(|c| Ok(workers::alive(c, Duration::from_secs(15))?))
        .await
        .unwrap();

    assert_eq!((handed.deliveries, handed.imports), (3, 1));
    assert_eq!(sending(&app).await, 0);
    assert_eq!(alive, 0, "the earlier instance is forgotten");
    let next = register(&app, "this instance").await;
    assert!(begin(&app, held, next).await, "the import resumes at once");
    assert_eq!(claim(&app, next).await.len(), 3, "every email is due again");
}

async fn a_live_worker_keeps_its_claim_while_one_send_outlasts_worker_dead_after(stack: Stack) {
    let smtp = SmtpServer::start().await;
    let dead_after = Duration::from_secs(2);
    let mut app = TestApp::spawn_with(stack, |s| {
        s.smtp_url = Some(smtp.url().into());
        s.worker_dead_after = dead_after;
        s.worker_heartbeat_interval = Duration::from_millis(250);
    })
    .await;
    // One send takes twice WORKER_DEAD_AFTER; the housekeeping of the same process runs meanwhile.
    smtp.set_reply_delay(dead_after * 2);
    app.start_worker().await;
    let started = Instant::now();
    let id = app.upload_ok(people_csv(1)).await;
    let import = app.settled(id).await;

    assert!(started.elapsed() >= dead_after * 2, "the send was slow");
    assert_eq!(import["emails"]["sent"], 1, "{import}");
    assert_eq!(
        smtp.messages().len(),
        1,
        "the claim was never handed over: one send"
    );
    let attempts = app
        .db
        .run(|c| {
            Ok(on_conn!(c, |c| deliveries::table
                .select((deliveries::attempts, deliveries::last_error))
                .first::<(i32, Option<String>)>(c))?)
        })
        .await
        .unwrap();
    assert_eq!(attempts, (1, None), "never put back to pending");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("invites_workers_alive 1"),
        "the live worker is counted"
    );
}

/// A process frozen inside a transaction (a paused VM, `SIGSTOP` between two statements of a
/// claim) keeps its row locks, and other processes' claims skip locked rows: without a limit those
/// rows would wait for it for ever. PostgreSQL ends a service connection's transaction once it
/// has been idle for `WORKER_DEAD_AFTER`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_left_idle_by_a_frozen_process_is_ended_after_worker_dead_after() {
    let app = TestApp::spawn_with(Stack::Postgres, |s| {
        s.worker_dead_after = Duration::from_secs(1);
        s.worker_heartbeat_interval = Duration::from_millis(250);
    })
    .await;
    let row = register(&app, "frozen").await;
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let (thaw_tx, thaw_rx) = std::sync::mpsc::channel::<()>();
    // The frozen process: takes the row's lock, then sends nothing until thawed (or 30 s).
    let db = app.db.clone();
    let frozen = tokio::spawn(async move {
        db.run(move |c| {
            let DbConn::Pg(c) = c else { unreachable!() };
            c.batch_execute(&format!(
                "BEGIN; SELECT id FROM workers WHERE id = {} FOR UPDATE",
                row.0
            ))?;
            locked_tx.send(()).unwrap();
            let _ = thaw_rx.recv_timeout(Duration::from_secs(30));
            Ok(c.batch_execute("COMMIT"))
        })
        .await
    });
    locked_rx.await.unwrap();

    // Another process waits for the lock, at most 15 s.
    let waited = app
        .db
        .run(move |c| {
            let DbConn::Pg(c) = c else { unreachable!() };
            Ok(c.batch_execute(&format!(
                "BEGIN; SET LOCAL lock_timeout = '15s'; \
                 SELECT id FROM workers WHERE id = {} FOR UPDATE; COMMIT",
                row.0
            )))
        })
        .await
        .unwrap();
    thaw_tx.send(()).unwrap();
    let thawed = frozen.await.unwrap().unwrap();

    assert!(waited.is_ok(), "the lock was never released: {waited:?}");
    assert!(
        thawed.is_err(),
        "the frozen transaction was ended by the server"
    );
}

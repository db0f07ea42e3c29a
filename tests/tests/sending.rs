//! The send engine: fair share between imports, graceful shutdown, and the claim fence and lease
//! rules of the ledger on both stacks; retries and outages against a misbehaving SMTP server.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use invite_shared::db::schema::{deliveries, members};
use invite_shared::ids::{DeliveryId, ImportId};
use invite_shared::on_conn;
use invite_shared::status::DeliveryState;
use invite_shared::store::deliveries::{
    self as store, ClaimMemory, ClaimRequest, Recorded, SendOutcome,
};
use invite_shared::store::tallies::{self, Tally};
use invite_tests::app::{Stack, TestApp, named_people_csv, people_csv};
use invite_tests::on_both_stacks;
use invite_tests::smtp::ReplyPlan;
use serde_json::Value;

on_both_stacks!(
    a_small_import_is_sent_before_a_big_one_sending_meanwhile_is_half_done,
    a_graceful_stop_mid_send_hands_back_every_claim_and_nobody_gets_two_emails,
    a_late_outcome_never_overwrites_a_reclaim_which_keeps_the_message_id,
    a_send_given_back_unsent_does_not_count_as_an_attempt,
    a_claim_resumes_where_the_last_ended_yet_comes_back_short_only_when_nothing_else_is_due,
    the_unsent_count_of_the_gauge_matches_the_deliveries_of_imports_and_of_none,
    deleting_a_member_deletes_its_deliveries_through_its_invitations,
);

fn sent(import: &Value) -> i64 {
    import["emails"]["sent"].as_i64().unwrap()
}

async fn a_small_import_is_sent_before_a_big_one_sending_meanwhile_is_half_done(stack: Stack) {
    // The cap keeps the big import's backlog growing while its rows are applied, so that strict
    // first-come order would make the small import wait for tens of thousands of sends.
    let mut app = TestApp::spawn_with(stack, |s| s.email_rate_per_sec = Some(1000)).await;
    app.start_worker().await;
    let big = app.upload_ok(people_csv(50_000)).await;
    let before = app
        .wait_for_import(big, |i| i["rows"]["processed"].as_i64().unwrap() >= 30_000)
        .await;

    let small = app.upload_ok(named_people_csv("small", 10)).await;
    let small_import = app.settled(small).await;
    let big_import = app.get_json(&format!("/imports/{big}")).await;

    assert!(
        before["emails"]["pending"].as_i64().unwrap() > 10_000,
        "the big import had a backlog when the small one came: {before}"
    );
    assert_eq!(sent(&small_import), 10);
    assert!(
        sent(&big_import) < 25_000,
        "the small import waited for half of the big one: {big_import}"
    );
}

async fn a_graceful_stop_mid_send_hands_back_every_claim_and_nobody_gets_two_emails(stack: Stack) {
    let mut app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(3000)).await;
    app.wait_for_import(id, |i| sent(i) >= 300).await;

    app.stop_workers().await;
    let states = app.delivery_states(None).await;
    app.start_worker().await;
    let import = app.settled(id).await;

    assert_eq!(
        states.get("sending"),
        None,
        "a stopped worker holds no claim: {states:?}"
    );
    assert_eq!(states.get("failed"), None, "{states:?}");
    assert!(
        states.contains_key("pending"),
        "the stop came mid-send: {states:?}"
    );
    assert_eq!(sent(&import), 3000);
    assert_eq!(import["emails"]["failed"], 0);
    let emails = app.emails();
    let recipients: HashSet<String> = emails.iter().map(|m| m.rcpt_to.join(",")).collect();
    assert_eq!(recipients.len(), 3000, "everybody got an email");
    assert_eq!(emails.len(), 3000, "nobody got two");
}

async fn a_late_outcome_never_overwrites_a_reclaim_which_keeps_the_message_id(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.process_without_sending(id).await;

    // A worker claims the send, then stalls past its (here: zero) lease.
    let first = claim(&app, Duration::ZERO).await;
    let requeued = app
        .db
        .run(|c| Ok(store::requeue_abandoned(c)?))
        .await
        .unwrap();
    let second = claim(&app, Duration::from_secs(300)).await;
    let late = record(&app, first[0].id, first[0].claim, sent_outcome()).await;
    let current = record(&app, second[0].id, second[0].claim, sent_outcome()).await;
    let again = record(&app, second[0].id, second[0].claim, sent_outcome()).await;

    assert_eq!(requeued, 1);
    assert_eq!(first[0].id, second[0].id);
    assert_ne!(first[0].claim, second[0].claim);
    assert_eq!(first[0].message_id, second[0].message_id);
    assert_eq!(second[0].attempts, 2);
    assert_eq!((late.written, late.fenced_out), (0, 1));
    assert_eq!((current.written, current.fenced_out), (1, 0));
    assert_eq!(
        (again.written, again.fenced_out),
        (0, 1),
        "only a sending delivery takes an outcome"
    );
}

async fn a_send_given_back_unsent_does_not_count_as_an_attempt(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let id = app.upload_ok(people_csv(1)).await;
    app.process_without_sending(id).await;

    let claimed = claim(&app, Duration::from_secs(300)).await;
    let released = SendOutcome::Released {
        at: invite_shared::store::now(),
        error: Some("421 4.3.2 service not available".into()),
    };
    record(&app, claimed[0].id, claimed[0].claim, released).await;
    let (state, attempts, first_attempt_at, last_error) = app
        .db
        .run(|c| {
            Ok(on_conn!(c, |c| deliveries::table
                .select((
                    deliveries::state,
                    deliveries::attempts,
                    deliveries::first_attempt_at,
                    deliveries::last_error,
                ))
                .first::<(
                    String,
                    i32,
                    Option<chrono::NaiveDateTime>,
                    Option<String>
                )>(c))?)
        })
        .await
        .unwrap();

    assert_eq!(claimed[0].attempts, 1);
    assert_eq!(state, "pending");
    assert_eq!(attempts, 0);
    assert_eq!(first_attempt_at, None, "the retry window has not started");
    assert_eq!(
        last_error.as_deref(),
        Some("421 4.3.2 service not available")
    );
}

async fn a_claim_resumes_where_the_last_ended_yet_comes_back_short_only_when_nothing_else_is_due(
    stack: Stack,
) {
    let app = TestApp::spawn_without_workers(stack).await;
    let id = app.upload_ok(people_csv(6)).await;
    app.process_without_sending(id).await;
    let memory = Arc::new(Mutex::new(ClaimMemory::remembering(Duration::from_secs(
        3600,
    ))));

    let first = claim_with(&app, 2, &memory).await;
    // The first send is given back due at its old time: behind where the claims have got to.
    let given_back_id = first[0].id.0;
    let due_at = app
        .db
        .run(move |c| {
            let id = given_back_id;
            Ok(on_conn!(c, |c| deliveries::table
                .find(id)
                .select(deliveries::next_attempt_at)
                .first::<chrono::NaiveDateTime>(c))?)
        })
        .await
        .unwrap();
    let given_back = SendOutcome::Released {
        at: due_at,
        error: None,
    };
    record(&app, first[0].id, first[0].claim, given_back).await;
    let second = claim_with(&app, 2, &memory).await;
    let third = claim_with(&app, 10, &memory).await;
    let fourth = claim_with(&app, 10, &memory).await;

    let ids = |claimed: &[store::Claimed]| claimed.iter().map(|c| c.id.0).collect::<Vec<_>>();
    let all = ids(&first);
    assert_eq!(all.len(), 2);
    assert!(
        ids(&second).iter().all(|id| *id > all[1]),
        "the second claim went on after the first: {:?} then {:?}",
        all,
        ids(&second)
    );
    assert_eq!(third.len(), 3, "the last two, then the one given back");
    assert!(ids(&third).contains(&all[0]), "{:?}", ids(&third));
    assert!(fourth.is_empty());
    assert_eq!(app.delivery_states(None).await.get("pending"), None);
}

async fn the_unsent_count_of_the_gauge_matches_the_deliveries_of_imports_and_of_none(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let id = app.upload_ok(people_csv(6)).await;
    app.process_without_sending(id).await;
    let memory = Arc::default();
    let claimed = claim_with(&app, 3, &memory).await;
    record(&app, claimed[0].id, claimed[0].claim, sent_outcome()).await;
    // As if the import of one pending and one sending delivery had been deleted: they belong to
    // no import, and its tallies no longer count them.
    let orphans = [claimed[1].id.0, pending_ids(&app).await[0]];
    app.db
        .run(move |c| {
            on_conn!(c, |c| diesel::update(
                deliveries::table.filter(deliveries::id.eq_any(orphans))
            )
            .set(deliveries::import_id.eq(None::<i64>))
            .execute(c))?;
            let unsent = Tally::of(DeliveryState::Pending, -2);
            tallies::add(c, ImportId(id), unsent)?;
            Ok(())
        })
        .await
        .unwrap();

    let (unsent, _) = app.db.run(|c| Ok(store::unsent(c)?)).await.unwrap();

    let states = app.delivery_states(None).await;
    assert_eq!(states.get("sent"), Some(&1), "{states:?}");
    assert_eq!(unsent, states["pending"] + states["sending"], "{states:?}");
    assert_eq!(unsent, 5);
}

async fn deleting_a_member_deletes_its_deliveries_through_its_invitations(stack: Stack) {
    // PostgreSQL no longer checks a delivery's member itself: its invitation's does, and the
    // cascade from the member through the invitation must still take the delivery with it.
    let app = TestApp::spawn_without_workers(stack).await;
    let id = app.upload_ok(people_csv(2)).await;
    app.process_without_sending(id).await;
    let gone = app.member_id("person0@example.com").await;

    app.db
        .run(move |c| Ok(on_conn!(c, |c| diesel::delete(members::table.find(gone)).execute(c))?))
        .await
        .unwrap();
    let left: Vec<i64> = app
        .db
        .run(|c| {
            Ok(on_conn!(c, |c| deliveries::table
                .select(deliveries::member_id)
                .load::<i64>(c))?)
        })
        .await
        .unwrap();

    assert_eq!(left.len(), 1, "{left:?}");
    assert_ne!(left[0], gone);
}

/// The ids of the pending deliveries.
async fn pending_ids(app: &TestApp) -> Vec<i64> {
    app.db
        .run(|c| {
            Ok(on_conn!(c, |c| deliveries::table
                .filter(deliveries::state.eq("pending"))
                .select(deliveries::id)
                .load::<i64>(c))?)
        })
        .await
        .unwrap()
}

async fn claim(app: &TestApp, lease: Duration) -> Vec<store::Claimed> {
    let claimed = claim_for(app, 10, lease, &Arc::default()).await;
    assert_eq!(claimed.len(), 1, "one delivery is due");
    claimed
}

async fn claim_with(
    app: &TestApp,
    limit: i64,
    memory: &Arc<Mutex<ClaimMemory>>,
) -> Vec<store::Claimed> {
    claim_for(app, limit, Duration::from_secs(300), memory).await
}

async fn claim_for(
    app: &TestApp,
    limit: i64,
    lease: Duration,
    memory: &Arc<Mutex<ClaimMemory>>,
) -> Vec<store::Claimed> {
    let request = ClaimRequest {
        limit,
        lease,
        ttl: Duration::from_secs(3600),
        worker: None,
    };
    let memory = memory.clone();
    app.db
        .run(move |c| Ok(store::claim_due(c, request, &mut memory.lock().unwrap())?))
        .await
        .unwrap()
}

async fn record(
    app: &TestApp,
    id: DeliveryId,
    claim: store::ClaimToken,
    outcome: SendOutcome,
) -> store::Written {
    let outcomes = vec![Recorded { id, claim, outcome }];
    app.db
        .run(move |c| Ok(store::record(c, &outcomes)?))
        .await
        .unwrap()
}

fn sent_outcome() -> SendOutcome {
    SendOutcome::Sent {
        reply: "250 2.0.0 OK".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_answered_451_three_times_gets_the_email_on_the_fourth_attempt_after_growing_waits()
 {
    let base = Duration::from_millis(100);
    let mut app = TestApp::spawn_with(Stack::Postgres, |s| s.email_retry_base_delay = base).await;
    app.smtp()
        .reply_for("person0@example.com", ReplyPlan::TransientTimes(3));
    app.start_worker().await;

    let id = app.upload_ok(people_csv(3)).await;
    let import = app.settled(id).await;

    assert_eq!(sent(&import), 3);
    assert_eq!(import["emails"]["failed"], 0);
    let attempts = app.smtp().attempts_to("person0@example.com");
    assert_eq!(attempts.len(), 4, "three 451s, then accepted");
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    // Exponential with jitter: the k-th wait is between base·2^(k-1) and twice that.
    for (k, gap) in gaps.iter().enumerate() {
        assert!(*gap >= base * 2u32.pow(k as u32), "wait {k}: {gaps:?}");
    }
    assert!(gaps[2] > gaps[0], "the waits grow: {gaps:?}");
    let recorded: i32 = app
        .db
        .run(|c| {
            Ok(on_conn!(c, |c| deliveries::table
                .inner_join(
                    invite_shared::db::schema::members::table
                        .inner_join(invite_shared::db::schema::accounts::table)
                )
                .filter(invite_shared::db::schema::accounts::email.eq("person0@example.com"))
                .select(deliveries::attempts)
                .first(c))?)
        })
        .await
        .unwrap();
    assert_eq!(recorded, 4, "every attempt is in the ledger");
}

/// How an outage looks to the sender.
#[derive(Clone, Copy)]
enum Outage {
    /// Nothing listens on the server's port.
    RefusedConnections,
    /// The server greets with `421` and closes.
    Answers421,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invitation_is_sent_after_an_outage_of_refused_connections_and_none_fails() {
    every_invitation_is_sent_after_an_outage(Outage::RefusedConnections).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invitation_is_sent_after_the_server_answered_421_for_a_while_and_none_fails() {
    every_invitation_is_sent_after_an_outage(Outage::Answers421).await;
}

async fn every_invitation_is_sent_after_an_outage(outage: Outage) {
    // The outage outlasts the retry window many times over: sends refused by an unavailable
    // server must not count as attempts, or they would all end `failed`.
    let window = Duration::from_millis(300);
    let mut app = TestApp::spawn_with(Stack::Postgres, |s| {
        s.email_retry_window = window;
        s.smtp_outage_backoff = Duration::from_millis(50);
    })
    .await;
    match outage {
        Outage::RefusedConnections => app.smtp().go_down().await,
        Outage::Answers421 => app.smtp().set_unavailable(true),
    }
    app.start_worker().await;

    let id = app.upload_ok(people_csv(50)).await;
    wait_until_a_send_was_refused(&app).await;
    tokio::time::sleep(window * 4).await; // the outage goes on
    match outage {
        Outage::RefusedConnections => app.smtp().come_back().await,
        Outage::Answers421 => app.smtp().set_unavailable(false),
    }
    let import = app.settled(id).await;

    assert_eq!(sent(&import), 50, "{import}");
    assert_eq!(import["emails"]["failed"], 0, "{import}");
    let recipients: HashSet<String> = app.emails().iter().map(|m| m.rcpt_to.join(",")).collect();
    assert_eq!(recipients.len(), 50);
    if let Outage::Answers421 = outage {
        assert!(app.smtp().refused_421() > 0);
    }
}

/// Waits until some delivery carries the error of a send the server did not take.
async fn wait_until_a_send_was_refused(app: &TestApp) {
    let deadline = std::time::Instant::now() + invite_tests::app::PATIENCE;
    loop {
        let errors: i64 = app
            .db
            .run(|c| {
                Ok(on_conn!(c, |c| deliveries::table
                    .filter(deliveries::last_error.is_not_null())
                    .count()
                    .get_result(c))?)
            })
            .await
            .unwrap();
        if errors > 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "no send was tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_that_outlasts_its_lease_keeps_it_and_is_not_sent_twice() {
    // Sends take three leases' time; without renewal, housekeeping would hand them to the other
    // worker, which would send them again.
    let mut app = TestApp::spawn_with(Stack::Postgres, |s| {
        s.email_lease = Duration::from_millis(300);
    })
    .await;
    app.smtp().set_reply_delay(Duration::from_millis(900));
    app.start_worker().await;
    app.start_worker().await;

    let id = app.upload_ok(people_csv(20)).await;
    let import = app.settled(id).await;

    assert_eq!(sent(&import), 20);
    assert_eq!(app.smtp().messages().len(), 20, "no send was repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_commit_finds_its_deliveries_by_primary_key_whatever_the_statistics_say() {
    // Statistics taken while nothing is being sent say that the partial indexes of the sends in
    // progress are nearly empty. Without a vacuum they hold an entry for every send ever claimed,
    // and a group commit that read one whole slowed a million-row run to 510 emails a second.
    let app = TestApp::spawn_without_workers(Stack::Postgres).await;
    let url = app.settings.database_url();
    let plan = tokio::task::spawn_blocking(move || {
        let mut c = diesel::PgConnection::establish(&url).unwrap();
        c.batch_execute(FIVE_THOUSAND_SENT).unwrap();
        c.batch_execute(&format!(
            "PREPARE group_commit(text, text, smallint, bigint[]) AS {}",
            store::RECORD_PG
        ))
        .unwrap();
        // The plan a connection caches after five runs, which no later value changes.
        c.batch_execute("SET plan_cache_mode = force_generic_plan")
            .unwrap();
        diesel::sql_query("EXPLAIN EXECUTE group_commit('[]', '2026-01-01 00:00:00', 0, '{}')")
            .load::<PlanLine>(&mut c)
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>()
            .join("\n")
    })
    .await
    .unwrap();

    assert!(
        plan.contains("Index Scan using deliveries_pkey on deliveries"),
        "{plan}"
    );
    for other in [
        "deliveries_claim",
        "deliveries_unsent_created",
        "Seq Scan on deliveries",
    ] {
        assert!(!plan.contains(other), "{other} in\n{plan}");
    }
}

/// 5,000 members with one sent email each, and the statistics of that: nothing being sent.
const FIVE_THOUSAND_SENT: &str = "\
    INSERT INTO workspaces (slug, name, created_at) VALUES ('plan', 'Plan', now()); \
    INSERT INTO accounts (email, created_at) \
        SELECT 'plan' || g || '@example.com', now() FROM generate_series(1, 5000) g; \
    INSERT INTO members (workspace_id, account_id, role, status, created_at, updated_at) \
        SELECT w.id, a.id, 'end_user', 'invited', now(), now() FROM accounts a, workspaces w \
        WHERE w.slug = 'plan' AND a.email LIKE 'plan%'; \
    INSERT INTO invitations (member_id, created_at) \
        SELECT m.id, now() FROM members m JOIN workspaces w ON w.id = m.workspace_id \
        WHERE w.slug = 'plan'; \
    INSERT INTO deliveries (invitation_id, member_id, state, next_attempt_at, created_at) \
        SELECT id, member_id, 'sent', now(), now() FROM invitations; \
    ANALYZE deliveries;";

/// One line of `EXPLAIN`'s output.
#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = diesel::sql_types::Text, column_name = "QUERY PLAN")]
    line: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_stack_with_an_smtp_server_rides_out_its_outage_too() {
    // SQLite and the embedded queue, sending over SMTP rather than to the outbox.
    let smtp = invite_tests::smtp::SmtpServer::start().await;
    let url = smtp.url();
    let window = Duration::from_millis(300);
    let mut app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.smtp_url = Some(secrecy::SecretString::from(url));
        s.email_retry_window = window;
        s.smtp_outage_backoff = Duration::from_millis(50);
    })
    .await;
    smtp.go_down().await;
    app.start_worker().await;

    let id = app.upload_ok(people_csv(30)).await;
    wait_until_a_send_was_refused(&app).await;
    tokio::time::sleep(window * 4).await; // the outage goes on
    smtp.come_back().await;
    let import = app.settled(id).await;

    assert_eq!(sent(&import), 30, "{import}");
    assert_eq!(import["emails"]["failed"], 0, "{import}");
    let recipients: HashSet<String> = smtp
        .messages()
        .iter()
        .map(|m| m.rcpt_to.join(","))
        .collect();
    assert_eq!(recipients.len(), 30);
}

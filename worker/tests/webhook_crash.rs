//! Real `invite-worker` processes on PostgreSQL + Redis deliver webhooks to a receiver that
//! verifies every request with the official Standard Webhooks library: a worker SIGKILLed with
//! deliveries in flight loses none of them, and the next one sends again, under the same
//! `webhook-id`, only what the dead one had in flight.
#![cfg(feature = "postgres")]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use invite_shared::db::schema::webhook_deliveries;
use invite_shared::on_conn;
use invite_shared::status::WebhookDeliveryState;
use invite_tests::app::{PATIENCE, Stack, TestApp, free_port, people_csv};
use invite_tests::process::WorkerProcess;
use invite_tests::webhooks::Receiver;
use serde_json::{Value, json};

/// Events sent: one `member.archived` per member archived.
const EVENTS: usize = 300;
/// Deliveries one worker claims, and so has in flight, at a time (the sender's `BATCH`).
const BATCH: i64 = 20;

/// The sender's lease with `WEBHOOK_TIMEOUT` 4 s: three deadlines and 5 s.
const LEASE: Duration = Duration::from_secs(17);

/// A worker process that may send to the loopback receiver. A receiver answering "slow:200" takes
/// 1.5 s; the deadline leaves room for that, and the lease lapses soon.
fn worker(app: &TestApp) -> WorkerProcess {
    let settings = [("WEBHOOK_ALLOW_PRIVATE", "true"), ("WEBHOOK_TIMEOUT", "4s")];
    WorkerProcess::start(env!("CARGO_BIN_EXE_invite-worker"), app, &settings)
}

/// Deliveries being sent that were claimed half a second ago or more: their POSTs have reached
/// the slow receiver, which has not answered yet.
async fn at_the_receiver(app: &TestApp) -> i64 {
    let claimed_before = invite_shared::store::now() + (LEASE - Duration::from_millis(500));
    app.db
        .run(move |conn| {
            Ok(on_conn!(conn, |c| webhook_deliveries::table
                .filter(webhook_deliveries::state.eq(WebhookDeliveryState::Sending))
                .filter(webhook_deliveries::lease_until.le(claimed_before))
                .count()
                .get_result(c))?)
        })
        .await
        .unwrap()
}

/// How many webhook deliveries are in each state.
async fn delivery_states(app: &TestApp) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> = app
        .db
        .run(|conn| {
            Ok(on_conn!(conn, |c| webhook_deliveries::table
                .group_by(webhook_deliveries::state)
                .select((
                    webhook_deliveries::state,
                    diesel::dsl::count(webhook_deliveries::id)
                ))
                .load(c))?)
        })
        .await
        .unwrap();
    rows.into_iter().collect()
}

/// Polls the ledger until `done` says so; the states then.
async fn wait_for_states(
    app: &TestApp,
    what: &str,
    done: impl Fn(&BTreeMap<String, i64>) -> bool,
) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let states = delivery_states(app).await;
        if done(&states) {
            return states;
        }
        assert!(Instant::now() < deadline, "{what}: {states:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The count of `state` in `states`.
fn count(states: &BTreeMap<String, i64>, state: &str) -> i64 {
    states.get(state).copied().unwrap_or(0)
}

/// Imports `EVENTS` people with an in-process worker, which is stopped afterwards; their ids.
async fn imported_people(app: &mut TestApp) -> BTreeSet<i64> {
    app.start_worker().await;
    let import = app.upload_ok(people_csv(EVENTS)).await;
    app.settled(import).await;
    app.stop_workers().await;
    let page = app.get_json("/members?limit=500").await;
    let people: BTreeSet<i64> = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["email"].as_str().unwrap().starts_with("person"))
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(people.len(), EVENTS, "{page}");
    people
}

/// An endpoint at 127.0.0.1:`port` for `member.archived`; its secret.
async fn endpoint(app: &TestApp, port: u16) -> String {
    let body = json!({
        "url": format!("http://127.0.0.1:{port}/hook"),
        "events": ["member.archived"],
    });
    let response = app.post_json("/webhooks", body).await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    created["secret"].as_str().unwrap().to_owned()
}

/// The `webhook-id`s each member's event arrived under, one entry per arrival.
fn arrivals_by_member(received: &[Value]) -> BTreeMap<i64, Vec<String>> {
    let mut by_member: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for entry in received {
        assert_eq!(entry["verified"], true, "{entry}");
        assert_eq!(entry["answered"], 200, "{entry}");
        let member = entry["body"]["data"]["member_id"].as_i64().unwrap();
        let webhook_id = entry["webhook_id"].as_str().unwrap().to_owned();
        by_member.entry(member).or_default().push(webhook_id);
    }
    by_member
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_send_loses_no_webhook_and_repeats_only_its_deliveries_in_flight() {
    let mut app = TestApp::spawn_without_workers(Stack::Postgres).await;
    let people = imported_people(&mut app).await;
    let port = free_port();
    let secret = endpoint(&app, port).await;
    let mut receiver = Receiver::new(&secret);
    // Slow answers keep a full claim of deliveries in flight when the kill comes.
    receiver.start(port, "slow:200").await;
    for member in &people {
        let archived = app.post(&format!("/members/{member}/archive")).await;
        assert_eq!(archived.status(), 200);
    }
    assert_eq!(
        delivery_states(&app).await,
        BTreeMap::from([("pending".to_owned(), EVENTS as i64)])
    );

    let started = Instant::now();
    let first = worker(&app);
    let deadline = Instant::now() + PATIENCE;
    while count(&delivery_states(&app).await, "delivered") < BATCH
        || at_the_receiver(&app).await == 0
    {
        assert!(
            Instant::now() < deadline,
            "no claim was delivered and the next in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill();
    let at_kill = delivery_states(&app).await;
    let in_flight = count(&at_kill, "sending");
    assert!(
        (1..=BATCH).contains(&in_flight),
        "the kill came with at most a claim in flight: {at_kill:?}"
    );
    let _second = worker(&app);
    wait_for_states(&app, "every delivery delivered", |s| {
        count(s, "delivered") == EVENTS as i64 && s.len() == 1
    })
    .await;
    let elapsed = started.elapsed();

    let received = receiver
        .wait_for("every event", |r| {
            arrivals_by_member(r).len() == EVENTS || r.len() > EVENTS + BATCH as usize
        })
        .await;
    let by_member = arrivals_by_member(&received);
    assert_eq!(
        by_member.keys().copied().collect::<BTreeSet<_>>(),
        people,
        "every event arrived"
    );
    for (member, ids) in &by_member {
        let distinct: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            1,
            "member {member}'s event kept its id: {ids:?}"
        );
    }
    let webhook_ids: BTreeSet<&String> = by_member.values().flatten().collect();
    assert_eq!(webhook_ids.len(), EVENTS, "each event has an id of its own");
    let repeated = received.len() - EVENTS;
    eprintln!(
        "{EVENTS} webhooks delivered in {elapsed:?}; {in_flight} were in flight at the kill, \
         {repeated} arrived twice"
    );
    assert!(
        (1..=in_flight).contains(&(repeated as i64)),
        "only deliveries in flight at the kill are repeated: {repeated} repeats, {at_kill:?}"
    );
}

//! Retention of webhook events and hand-over tokens (README, `WEBHOOK_RETENTION`): housekeeping
//! deletes events older than the retention with their deliveries and log, keeps one being sent,
//! and deletes hand-over tokens a day after they expired.

use std::time::Duration;

use chrono::TimeDelta;
use diesel::prelude::*;
use invite_shared::db::schema::{
    acceptance_handovers, members, webhook_attempts, webhook_deliveries, webhook_messages,
};
use invite_shared::on_conn;
use invite_shared::service::retention;
use invite_shared::store::now;
use invite_tests::app::{PATIENCE, Stack, TestApp, free_port};
use invite_tests::on_both_stacks;
use invite_tests::webhooks::Receiver;
use serde_json::{Value, json};

on_both_stacks!(old_events_and_long_expired_handovers_are_deleted,);

const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Sends `n` test events to a receiver answering 200; their message ids once all are delivered.
async fn delivered_test_events(app: &TestApp, n: usize) -> Vec<i64> {
    let port = free_port();
    let body = json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["webhook.test"]});
    let created: Value = app.post_json("/webhooks", body).await.json().await.unwrap();
    let id = created["id"].as_i64().unwrap();
    let mut receiver = Receiver::new(created["secret"].as_str().unwrap());
    receiver.start(port, "200").await;
    for _ in 0..n {
        assert_eq!(
            app.post(&format!("/webhooks/{id}/test")).await.status(),
            202
        );
    }
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let states = app
            .db
            .run(|conn| {
                Ok(on_conn!(conn, |c| webhook_deliveries::table
                    .select((webhook_deliveries::message_id, webhook_deliveries::state))
                    .order(webhook_deliveries::message_id)
                    .load::<(i64, String)>(c))?)
            })
            .await
            .unwrap();
        if states.len() == n && states.iter().all(|(_, s)| s == "delivered") {
            drop(receiver);
            return states.into_iter().map(|(m, _)| m).collect();
        }
        assert!(std::time::Instant::now() < deadline, "{states:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn old_events_and_long_expired_handovers_are_deleted(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let messages = delivered_test_events(&app, 3).await;
    // The first becomes old, the second old and being sent (under a live lease), the third stays
    // recent.
    let (being_sent, recent) = (messages[1], messages[2]);
    let long_ago = now() - TimeDelta::days(31);
    app.db
        .run(move |conn| {
            on_conn!(conn, |c| {
                diesel::update(webhook_messages::table.filter(webhook_messages::id.ne(recent)))
                    .set(webhook_messages::created_at.eq(long_ago))
                    .execute(c)?;
                diesel::update(
                    webhook_deliveries::table.filter(webhook_deliveries::message_id.eq(being_sent)),
                )
                .set((
                    webhook_deliveries::state.eq("sending"),
                    webhook_deliveries::lease_until.eq(now() + TimeDelta::hours(1)),
                ))
                .execute(c)?;
                let member: i64 = members::table.select(members::id).first(c)?;
                for (hash, expired) in [(1u8, TimeDelta::days(2)), (2, TimeDelta::hours(1))] {
                    diesel::insert_into(acceptance_handovers::table)
                        .values((
                            acceptance_handovers::token_hash.eq(vec![hash; 32]),
                            acceptance_handovers::member_id.eq(member),
                            acceptance_handovers::accepted_at.eq(now() - expired),
                            acceptance_handovers::expires_at.eq(now() - expired),
                        ))
                        .execute(c)?;
                }
            });
            Ok(())
        })
        .await
        .unwrap();

    let deleted = retention::prune_webhooks_and_handovers(&app.db, RETENTION)
        .await
        .unwrap();

    assert_eq!(
        deleted, 1,
        "the old event alone: the other old one is being sent"
    );
    let (kept, deliveries, logged, handovers) = app
        .db
        .run(|conn| {
            Ok(on_conn!(conn, |c| {
                let kept: Vec<i64> = webhook_messages::table
                    .select(webhook_messages::id)
                    .order(webhook_messages::id)
                    .load(c)?;
                let deliveries: Vec<i64> = webhook_deliveries::table
                    .select(webhook_deliveries::message_id)
                    .order(webhook_deliveries::message_id)
                    .load(c)?;
                let logged: Vec<i64> = webhook_attempts::table
                    .inner_join(webhook_deliveries::table)
                    .select(webhook_deliveries::message_id)
                    .order(webhook_deliveries::message_id)
                    .load(c)?;
                let handovers: Vec<Vec<u8>> = acceptance_handovers::table
                    .select(acceptance_handovers::token_hash)
                    .load(c)?;
                QueryResult::Ok((kept, deliveries, logged, handovers))
            })?)
        })
        .await
        .unwrap();
    assert_eq!(kept, vec![being_sent, recent]);
    assert_eq!(deliveries, vec![being_sent, recent]);
    assert_eq!(
        logged,
        vec![being_sent, recent],
        "the log goes with its event"
    );
    assert_eq!(
        handovers,
        vec![vec![2u8; 32]],
        "expired within the day: kept"
    );
}

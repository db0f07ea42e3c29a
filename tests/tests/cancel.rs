//! Cancelling an import: no row is applied after it, every unsent email of it is cancelled, only
//! the emails being handed to the mail server at that moment still go out; a second cancel
//! changes nothing and answers the same.

use std::time::Duration;

use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;
use serde_json::Value;

on_both_stacks!(a_queued_import_cancelled_applies_no_row_and_a_second_cancel_answers_the_same);

async fn cancel(app: &TestApp, id: i64) -> Value {
    let response = app.post(&format!("/imports/{id}/cancel")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn a_queued_import_cancelled_applies_no_row_and_a_second_cancel_answers_the_same(
    stack: Stack,
) {
    let app = TestApp::spawn_without_workers(stack).await;
    let id = app.upload_ok(people_csv(5)).await;

    let first = cancel(&app, id).await;
    let second = cancel(&app, id).await;
    // A worker that picks the import up now finds nothing to do.
    app.process_without_sending(id).await;

    assert_eq!(first["status"], "cancelled", "{first}");
    assert!(first["finished_at"].is_string(), "{first}");
    assert_eq!(second, first, "a repeat changes nothing");
    let now = app.get_json(&format!("/imports/{id}")).await;
    assert_eq!(now["status"], "cancelled");
    assert_eq!(now["rows"]["processed"], 0, "{now}");
    assert!(app.delivery_states(Some(id)).await.is_empty());
    let audit = app.get_json("/audit").await;
    let cancels = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "import_cancel")
        .count();
    assert_eq!(cancels, 1, "audited once: {audit}");
}

/// Mid-send on the PostgreSQL stack, with the SMTP server: every email accepted after the cancel
/// is one that was being sent when it answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_send_cancels_every_unsent_email_and_only_those_in_flight_go_out() {
    let mut app = TestApp::spawn_with(Stack::Postgres, |s| s.email_rate_per_sec = Some(200)).await;
    app.start_worker().await;
    let id = app.upload_ok(people_csv(3000)).await;
    app.smtp()
        .wait_for(300, Duration::from_secs(60))
        .await
        .unwrap();

    let cancelled = cancel(&app, id).await;
    let accepted_then = app.emails().len();
    let in_flight = app
        .delivery_states(Some(id))
        .await
        .get("sending")
        .copied()
        .unwrap_or(0);
    let settled = app.settled(id).await;

    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(settled["status"], "cancelled");
    let states = app.delivery_states(Some(id)).await;
    assert_eq!(states.get("pending"), None, "{states:?}");
    assert_eq!(states.get("sending"), None, "{states:?}");
    assert_eq!(states.get("failed"), None, "{states:?}");
    let sent = states.get("sent").copied().unwrap_or(0);
    let accepted = app.emails().len() as i64;
    assert_eq!(sent, accepted, "each sent email reached the server once");
    assert!(
        accepted - accepted_then as i64 <= in_flight,
        "after the cancel {} more were accepted, {in_flight} were being sent",
        accepted - accepted_then as i64
    );
    assert!(
        states.get("cancelled").copied().unwrap_or(0) > 0,
        "{states:?}"
    );
    assert_eq!(settled["emails"]["sent"], sent, "{settled}");
}

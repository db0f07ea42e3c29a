//! Cancelling an import: no row is applied after it, every unsent email of it is cancelled, only
//! the emails being handed to the mail server at that moment still go out; a second cancel
//! changes nothing and answers the same.

use std::time::Duration;

use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;
use serde_json::Value;

on_both_stacks!(
    a_queued_import_cancelled_applies_no_row_and_a_second_cancel_answers_the_same,
    cancelling_mid_send_lets_at_most_the_pool_size_through_per_worker,
    an_email_queued_on_purpose_after_a_cancel_goes_out,
);

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

/// Sends in flight per worker: the most a cancel may let through once it has answered. Small, so
/// that the emails claimed ahead (two batches of `SEND_BATCH_SIZE`, 100) would break the bound.
const POOL: u32 = 4;

/// Emails the mail server accepted (PostgreSQL stack) or the outbox holds (embedded stack),
/// counted without reading them.
fn accepted(app: &TestApp, stack: Stack) -> usize {
    match stack {
        Stack::Postgres => app.smtp().messages().len(),
        Stack::Sqlite => std::fs::read_dir(app.settings.outbox_dir()).map_or(0, |entries| {
            entries
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "eml"))
                })
                .count()
        }),
    }
}

/// Waits until at least `n` emails are accepted, failing after a minute.
async fn wait_until_accepted(app: &TestApp, stack: Stack, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while accepted(app, stack) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} emails accepted",
            accepted(app, stack)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Mid-send, with one worker sending at 200 emails/s: once the cancel has answered, the mail
/// server accepts at most the sends that worker had in flight (`SMTP_POOL_SIZE`), not what it
/// had claimed ahead; every other email of the import is `cancelled`, none is left pending or
/// being sent, and a second cancel answers the import as it stands.
async fn cancelling_mid_send_lets_at_most_the_pool_size_through_per_worker(stack: Stack) {
    let mut app = TestApp::spawn_with(stack, |s| {
        s.email_rate_per_sec = Some(200);
        s.smtp_pool_size = POOL;
    })
    .await;
    app.start_worker().await;
    let id = app.upload_ok(people_csv(50_000)).await;
    wait_until_accepted(&app, stack, 1000).await;

    let cancelled = cancel(&app, id).await;
    let accepted_then = accepted(&app, stack);
    let settled = app.settled(id).await;
    let accepted_after = accepted(&app, stack);
    let again = cancel(&app, id).await;

    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(
        accepted_after - accepted_then <= POOL as usize,
        "{} emails were accepted after the cancel answered; at most {POOL} were in flight",
        accepted_after - accepted_then
    );
    let states = app.delivery_states(Some(id)).await;
    assert_eq!(states.get("pending"), None, "{states:?}");
    assert_eq!(states.get("sending"), None, "{states:?}");
    assert_eq!(states.get("failed"), None, "{states:?}");
    let sent = states.get("sent").copied().unwrap_or(0);
    assert_eq!(
        sent, accepted_after as i64,
        "each sent email was accepted once"
    );
    assert!(
        states.get("cancelled").copied().unwrap_or(0) > 0,
        "{states:?}"
    );
    assert_eq!(settled["status"], "cancelled");
    assert_eq!(settled["emails"]["sent"], sent, "{settled}");
    assert_eq!(again, settled, "a repeat changes nothing");
    assert_eq!(again["finished_at"], cancelled["finished_at"]);
}

/// A cancel stops the import's own emails, never one support queues later for a member of it:
/// a reminder is filed under the member's import, which the send engines know as cancelled.
async fn an_email_queued_on_purpose_after_a_cancel_goes_out(stack: Stack) {
    let app = TestApp::spawn(stack).await;
    let id = app.upload_ok(people_csv(2)).await;
    app.settled(id).await;
    let before = accepted(&app, stack);
    assert_eq!(cancel(&app, id).await["status"], "cancelled");

    let reminded = app
        .post_json("/members/remind", serde_json::json!({ "import": id }))
        .await;
    assert_eq!(reminded.status(), 202);
    let import = app.settled(id).await;

    assert_eq!(accepted(&app, stack), before + 2, "{import}");
    for person in ["person0@example.com", "person1@example.com"] {
        let latest = app.member(person).await;
        assert_eq!(latest["email_status"], "sent", "{latest}");
    }
}

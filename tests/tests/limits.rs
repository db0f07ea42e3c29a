//! Abuse limits, on both stacks: each answers 429 with `Retry-After`, is counted in
//! `invites_rate_limited_total{limit}`, and stores nothing.

use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;

on_both_stacks!(
    twenty_failed_authentications_from_one_address_then_429,
    uploads_beyond_the_workspace_limit_get_429_and_nothing_is_stored,
    imports_in_flight_beyond_the_limit_get_429,
);

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn imports_listed(app: &TestApp) -> usize {
    let listed = app.get_json("/imports").await;
    listed["imports"].as_array().unwrap().len()
}

async fn twenty_failed_authentications_from_one_address_then_429(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let members = app.url("/members");
    let attempt = |token: &'static str| app.client.get(&members).bearer_auth(token).send();
    let counted = auth_failures_limited(&app).await;

    for i in 0..20 {
        assert_eq!(attempt("wrong").await.unwrap().status(), 401, "attempt {i}");
    }
    let blocked = attempt("wrong").await.unwrap();

    assert_eq!(blocked.status(), 429);
    assert!((1..=60).contains(&retry_after(&blocked)));
    assert!(blocked.text().await.unwrap().contains("too_many_requests"));
    // The recorder is one per process, which other tests share under `cargo test`: the 429 is
    // counted if the counter moved by at least one.
    assert!(auth_failures_limited(&app).await > counted);
}

/// `invites_rate_limited_total{limit="auth_failures"}` as the app's `/metrics` shows it now.
async fn auth_failures_limited(app: &TestApp) -> f64 {
    let metrics = app.metrics().await;
    invite_tests::metric_value(
        &metrics,
        r#"invites_rate_limited_total{limit="auth_failures"}"#,
    )
    .unwrap_or_else(|| panic!("exported from the start: {metrics}"))
}

async fn uploads_beyond_the_workspace_limit_get_429_and_nothing_is_stored(stack: Stack) {
    let app = TestApp::spawn_with(stack, |s| s.uploads_per_minute = 3).await;
    for _ in 0..3 {
        assert_eq!(app.upload(people_csv(1)).await.status(), 202);
    }

    let refused = app.upload(people_csv(1)).await;

    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused) >= 1);
    assert!(refused.text().await.unwrap().contains("UPLOADS_PER_MINUTE"));
    assert_eq!(
        imports_listed(&app).await,
        3,
        "nothing stored for the refused upload"
    );
}

async fn imports_in_flight_beyond_the_limit_get_429(stack: Stack) {
    // No worker: every upload stays queued.
    let app = TestApp::spawn_with(stack, |s| s.imports_in_flight = 2).await;
    for _ in 0..2 {
        assert_eq!(app.upload(people_csv(1)).await.status(), 202);
    }

    let refused = app.upload(people_csv(1)).await;

    assert_eq!(refused.status(), 429);
    assert!(retry_after(&refused) >= 1);
    assert!(refused.text().await.unwrap().contains("IMPORTS_IN_FLIGHT"));
    assert_eq!(imports_listed(&app).await, 2);
}

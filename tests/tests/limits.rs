//! Abuse limits, on both stacks: each answers 429 with `Retry-After`, is counted in
//! `invites_rate_limited_total{limit}`, and stores nothing. Failed authentications never block a
//! valid token, and clients behind a trusted proxy are counted apart.

use invite_shared::config::TrustedProxies;
use invite_tests::app::{Stack, TestApp, people_csv};
use invite_tests::on_both_stacks;

on_both_stacks!(
    twenty_failed_authentications_from_one_address_then_429,
    uploads_beyond_the_workspace_limit_get_429_and_nothing_is_stored,
    imports_in_flight_beyond_the_limit_get_429,
    a_valid_token_is_served_after_a_hundred_failures_from_its_client,
    clients_behind_a_trusted_proxy_are_limited_apart,
    forwarding_headers_of_an_untrusted_peer_are_ignored,
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

async fn a_valid_token_is_served_after_a_hundred_failures_from_its_client(stack: Stack) {
    let app = TestApp::spawn_without_workers(stack).await;
    let members = app.url("/members");
    let attempt = |token: String| app.client.get(&members).bearer_auth(token).send();
    let mut refused = 0;
    for _ in 0..100 {
        let status = attempt("wrong".into()).await.unwrap().status();
        assert!(status == 401 || status == 429, "{status}");
        refused += usize::from(status == 429);
    }
    assert_eq!(refused, 80, "the first 20 failures are 401, the rest 429");

    let valid = attempt(app.token.clone()).await.unwrap();
    let failing = attempt("wrong".into()).await.unwrap();

    assert_eq!(valid.status(), 200);
    assert_eq!(failing.status(), 429);
    assert!((1..=60).contains(&retry_after(&failing)));
}

/// `GET …/members` with a wrong token, as forwarded for `client`.
async fn fail_as(app: &TestApp, client: &str) -> reqwest::Response {
    app.client
        .get(app.url("/members"))
        .bearer_auth("wrong")
        .header("X-Forwarded-For", client)
        .send()
        .await
        .unwrap()
}

/// The app with a limit of 3 failed authentications a minute, behind `trusted` proxies.
async fn spawn_limited(stack: Stack, trusted: &[&str]) -> TestApp {
    let networks = trusted.iter().map(|n| n.parse().unwrap()).collect();
    TestApp::spawn_with(stack, |s| {
        s.auth_failures_per_minute = 3;
        s.trusted_proxies = TrustedProxies::new(networks);
    })
    .await
}

async fn clients_behind_a_trusted_proxy_are_limited_apart(stack: Stack) {
    // The test client connects from 127.0.0.1: the proxy.
    let app = spawn_limited(stack, &["127.0.0.1/32"]).await;
    for _ in 0..3 {
        assert_eq!(fail_as(&app, "203.0.113.1").await.status(), 401);
    }

    let first = fail_as(&app, "203.0.113.1").await;
    // A forged left part is not read: the proxy appended the client it saw.
    let second = fail_as(&app, "203.0.113.1, 203.0.113.2").await;
    let valid = app
        .client
        .get(app.url("/members"))
        .bearer_auth(&app.token)
        .header("X-Forwarded-For", "203.0.113.1")
        .send()
        .await
        .unwrap();

    assert_eq!(first.status(), 429);
    assert!((1..=60).contains(&retry_after(&first)));
    assert_eq!(second.status(), 401, "another client behind the proxy");
    assert_eq!(valid.status(), 200);
}

async fn forwarding_headers_of_an_untrusted_peer_are_ignored(stack: Stack) {
    let app = spawn_limited(stack, &[]).await;
    for i in 0..3 {
        let client = format!("203.0.113.{i}");
        assert_eq!(fail_as(&app, &client).await.status(), 401);
    }

    let another = fail_as(&app, "198.51.100.7").await;

    assert_eq!(another.status(), 429, "one client: the TCP peer");
}

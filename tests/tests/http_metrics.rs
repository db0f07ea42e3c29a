//! Clients cannot grow `/metrics`: made-up methods and paths add no series, and counters whose
//! labels are a closed set are exported at 0 before their first event. The Prometheus recorder is
//! global to a process, so this binary holds this single test.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use invite_tests::app::{Stack, TestApp};
use invite_tests::metric_value as value;
use reqwest::Method;

/// The `invites_http_*` series of a `/metrics` text: name and labels, without the value.
fn http_series(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| line.starts_with("invites_http_"))
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

/// A request with method `M{i}` to a path that exists, and a GET to one that does not.
async fn made_up_requests(app: &TestApp, i: usize) {
    let method = Method::from_bytes(format!("M{i}").as_bytes()).unwrap();
    let known = app.client.request(method, format!("{}/healthz", app.base));
    let unknown = app.client.get(format!("{}/no/such/{i:x}", app.base));
    assert_eq!(known.send().await.unwrap().status(), 405);
    assert_eq!(unknown.send().await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_add_no_series_and_closed_label_sets_start_at_zero() {
    let app = TestApp::spawn_without_workers(Stack::Sqlite).await;
    let at_start = app.metrics().await;
    for series in [
        r#"invites_row_errors_total{field="email"}"#,
        r#"invites_rows_total{outcome="invalid"}"#,
        r#"invites_imports_total{status="failed"}"#,
        r#"invites_emails_total{result="failed"}"#,
        r#"invites_smtp_replies_total{class="5xx"}"#,
        r#"invites_rate_limited_total{limit="uploads"}"#,
        r#"invites_reminders_total{result="skipped"}"#,
    ] {
        assert_eq!(value(&at_start, series), Some(0.0), "{series}\n{at_start}");
    }

    made_up_requests(&app, 0).await;
    let warmed_up = http_series(&app.metrics().await);
    futures::stream::iter(1..=1000)
        .for_each_concurrent(8, |i| made_up_requests(&app, i))
        .await;
    let after = app.metrics().await;

    assert_eq!(http_series(&after), warmed_up, "{after}");
    let unmatched = r#"invites_http_requests_total{route="unmatched",method="GET",status="4xx"}"#;
    assert_eq!(value(&after, unmatched), Some(1001.0), "{after}");
    let other = r#"invites_http_requests_total{route="/healthz",method="other",status="4xx"}"#;
    assert_eq!(value(&after, other), Some(1001.0), "{after}");
}

//! What `/metrics` says. The Prometheus recorder is global to a process, and `cargo test` runs the
//! tests of one binary as threads of one process, so this binary holds a single test whose phases
//! run one after another, each with its own app (the one before is dropped first): exact values
//! then hold under `cargo test` and nextest alike.

use std::time::{Duration, Instant};

use invite_tests::app::{PATIENCE, Stack, TestApp, people_csv};
use invite_tests::bounces::{BOUNCE, COMPLAINT, DELAY, MESSAGE_ID_ONLY, email_to, handle};
use invite_tests::metric_value as value;
use invite_tests::smtp::ReplyPlan;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened_and_the_gauges_follow_a_backlog() {
    let exported = sends_retries_failures_rows_imports_and_requests_are_counted().await;
    the_dashboard_and_the_alerts_name_only_exported_metrics(&exported);
    bounces_and_complaints_count_each_email_once().await;
    the_pending_gauges_count_a_backlog_while_it_is_being_sent().await;
}

/// The repo's dashboard and alert rules query only metrics that `/metrics` exports.
fn the_dashboard_and_the_alerts_name_only_exported_metrics(exported: &str) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../config");
    let dashboard = std::fs::read_to_string(format!("{root}/grafana/bulk-invite.json")).unwrap();
    let alerts = std::fs::read_to_string(format!("{root}/prometheus/alerts.yml")).unwrap();
    let dashboard: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    let queries: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();

    assert!(panels.len() >= 12, "{} panels", panels.len());
    for text in queries.iter().copied().chain([alerts.as_str()]) {
        for name in metric_names(text) {
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| exported.contains(&format!("# TYPE {base} histogram")))
                .unwrap_or(&name);
            assert!(
                exported.contains(&format!("# TYPE {family} ")),
                "{name} is queried but not exported"
            );
        }
    }
}

/// Every `invites_…` name in a query text.
fn metric_names(text: &str) -> Vec<String> {
    text.match_indices("invites_")
        .map(|(start, _)| {
            text[start..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect()
        })
        .collect()
}

async fn sends_retries_failures_rows_imports_and_requests_are_counted() -> String {
    let app = TestApp::spawn(Stack::Postgres).await;
    app.smtp()
        .reply_for("person0@example.com", ReplyPlan::TransientTimes(2));
    app.smtp()
        .reply_for("person1@example.com", ReplyPlan::Permanent);

    let mut csv = people_csv(3);
    csv.push_str("Bad,Row,not-an-address,End User\n");
    let id = app.upload_ok(csv).await;
    app.settled(id).await;
    let metrics = app.metrics().await;

    for (series, expected) in [
        (r#"invites_emails_total{result="sent"}"#, 2.0),
        (r#"invites_emails_total{result="retried"}"#, 2.0),
        (r#"invites_emails_total{result="failed"}"#, 1.0),
        (r#"invites_smtp_replies_total{class="4xx"}"#, 2.0),
        (r#"invites_smtp_replies_total{class="5xx"}"#, 1.0),
        (r#"invites_rows_total{outcome="invited"}"#, 3.0),
        (r#"invites_rows_total{outcome="invalid"}"#, 1.0),
        (r#"invites_row_errors_total{field="email"}"#, 1.0),
        ("invites_smtp_pauses_total", 0.0),
        (r#"invites_imports_total{status="completed"}"#, 1.0),
        ("invites_email_send_duration_seconds_count", 5.0),
        ("invites_import_duration_seconds_count", 1.0),
        ("invites_upload_bytes_count", 1.0),
    ] {
        assert_eq!(
            value(&metrics, series),
            Some(expected),
            "{series}\n{metrics}"
        );
    }
    for (name, kind) in [
        ("invites_email_send_duration_seconds", "histogram"),
        ("invites_email_record_duration_seconds", "histogram"),
        ("invites_import_duration_seconds", "histogram"),
        ("invites_http_request_duration_seconds", "histogram"),
        ("invites_upload_bytes", "histogram"),
        ("invites_emails_total", "counter"),
        ("invites_imports_total", "counter"),
        ("invites_rows_total", "counter"),
        ("invites_row_errors_total", "counter"),
        ("invites_smtp_replies_total", "counter"),
        ("invites_smtp_pauses_total", "counter"),
        ("invites_worker_busy", "gauge"),
        ("invites_http_requests_total", "counter"),
        ("invites_emails_pending", "gauge"),
        ("invites_oldest_pending_email_age_seconds", "gauge"),
        ("invites_imports_in_progress", "gauge"),
        ("invites_queue_jobs", "gauge"),
        ("invites_bounce_reports_total", "counter"),
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} {kind}")),
            "{name} is a {kind}\n{metrics}"
        );
    }
    // Sends take milliseconds: they fall in the 5 ms bucket, never only in +Inf.
    assert!(
        metrics.contains(r#"invites_email_send_duration_seconds_bucket{le="0.005"}"#),
        "{metrics}"
    );
    // Every outcome was committed in some group: between one group and one per send.
    let commits = value(&metrics, "invites_email_record_duration_seconds_count").unwrap_or(0.0);
    assert!(
        (1.0..=5.0).contains(&commits),
        "{commits} commits\n{metrics}"
    );
    for queue in ["process_import", "send_invites"] {
        for state in ["pending", "scheduled", "running", "dead"] {
            let series = format!(r#"invites_queue_jobs{{queue="{queue}",state="{state}"}}"#);
            assert!(value(&metrics, &series).is_some(), "{series}\n{metrics}");
        }
    }
    let upload = r#"invites_http_requests_total{route="/api/v1/workspaces/{ws}/imports",method="POST",status="2xx"}"#;
    assert_eq!(value(&metrics, upload), Some(1.0), "{metrics}");
    assert!(
        !metrics.contains("acme") && !metrics.contains("@example.com"),
        "no workspace slug or address in a label\n{metrics}"
    );
    metrics
}

/// A bounce read twice counts once, and so does an email that two reports say bounced; a
/// complaint about the bounced email counts as a complaint, a delay not at all.
async fn bounces_and_complaints_count_each_email_once() {
    let app = TestApp::spawn(Stack::Sqlite).await;
    let id = app.upload_ok(people_csv(2)).await;
    app.settled(id).await;
    let bounced = r#"invites_emails_total{result="bounced"}"#;
    let complained = r#"invites_emails_total{result="complained"}"#;
    let before = app.metrics().await;
    assert_eq!(value(&before, bounced), Some(0.0), "exported at 0");
    assert_eq!(value(&before, complained), Some(0.0), "exported at 0");
    let (first, second) = (
        email_to(&app, "person0@example.com").await,
        email_to(&app, "person1@example.com").await,
    );

    let report = BOUNCE.about(&first);
    handle(&app, report.clone()).await;
    handle(&app, report).await;
    handle(&app, MESSAGE_ID_ONLY.about(&first)).await;
    handle(&app, DELAY.about(&second)).await;
    handle(&app, COMPLAINT.about(&first)).await;
    let metrics = app.metrics().await;

    assert_eq!(value(&metrics, bounced), Some(1.0), "{metrics}");
    assert_eq!(value(&metrics, complained), Some(1.0), "{metrics}");
}

async fn the_pending_gauges_count_a_backlog_while_it_is_being_sent() {
    // A capped rate keeps 2,000 emails sending for seconds, far longer than the gauges' period.
    let mut app = TestApp::spawn_with(Stack::Sqlite, |s| s.email_rate_per_sec = Some(500)).await;
    app.start_worker().await;
    let id = app.upload_ok(people_csv(2000)).await;

    let deadline = Instant::now() + PATIENCE;
    let (pending, age) = loop {
        let metrics = app.metrics().await;
        let pending = value(&metrics, "invites_emails_pending").unwrap_or(0.0);
        let age = value(&metrics, "invites_oldest_pending_email_age_seconds").unwrap_or(0.0);
        if pending > 0.0 && age > 0.0 {
            break (pending, age);
        }
        assert!(
            Instant::now() < deadline,
            "the gauges stayed at 0\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let during = app.get_json(&format!("/imports/{id}")).await;
    app.settled(id).await;
    let deadline = Instant::now() + PATIENCE;
    while value(&app.metrics().await, "invites_emails_pending") != Some(0.0) {
        assert!(Instant::now() < deadline, "the gauge never came back to 0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert!(pending <= 2000.0, "{pending}");
    assert!(age < 60.0, "{age}");
    assert!(
        during["emails"]["pending"].as_i64().unwrap() > 0,
        "the gauges were read during the send: {during}"
    );
}

//! A real Prometheus (Debian's `prometheus`, installed by `scripts/test`) scraping the API and two
//! `invite-worker` processes during a 20,000-row import: what an operator's dashboard would show.
#![cfg(feature = "postgres")]

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use invite_tests::app::{PATIENCE, Stack, TestApp, free_port, people_csv};
use invite_tests::process::WorkerProcess;
use serde_json::Value;

/// A Prometheus server scraping `targets` every second, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(api: &str, workers: &[&str]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let quote = |t: &&str| format!("\"{t}\"");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: bulk-invite-api\n    static_configs:\n      - targets: [\"{api}\"]\n  \
             - job_name: bulk-invite-worker\n    static_configs:\n      - targets: [{}]\n",
            workers.iter().map(quote).collect::<Vec<_>>().join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/test installs Debian's package)");
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let targets = 1 + workers.len();
        prometheus
            .wait_for("sum(up)", |v| v == Some(targets as f64))
            .await;
        prometheus
    }

    /// The first value of an instant query's result, if any.
    async fn query(&self, query: &str) -> Option<f64> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }

    /// Polls `query` until `done` holds for its value; returns the value.
    async fn wait_for(&self, query: &str, done: impl Fn(Option<f64>) -> bool) -> Option<f64> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.query(query).await;
            if done(value) {
                return value;
            }
            assert!(Instant::now() < deadline, "{query} stayed at {value:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `promtool check metrics` on `url`'s `/metrics`; its findings when it refuses.
async fn promtool_check_metrics(url: &str) -> Result<(), String> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_sees_the_backlog_and_a_fleet_wide_p95_send_time() {
    let app = TestApp::spawn_without_workers(Stack::Postgres).await;
    let addresses: Vec<String> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let _workers: Vec<WorkerProcess> = addresses
        .iter()
        .map(|addr| {
            WorkerProcess::start(
                env!("CARGO_BIN_EXE_invite-worker"),
                &app,
                &[("METRICS_ADDR", addr.as_str()), ("SMTP_POOL_SIZE", "20")],
            )
        })
        .collect();
    let api = app.base.trim_start_matches("http://").to_owned();
    let workers: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let prometheus = Prometheus::start(&api, &workers).await;

    let id = app.upload_ok(people_csv(20_000)).await;
    let during = prometheus
        .wait_for("max(invites_emails_pending)", |v| {
            v.is_some_and(|v| v > 0.0)
        })
        .await;
    let import = app.settled(id).await;
    let after = prometheus
        .wait_for("max(invites_emails_pending)", |v| v == Some(0.0))
        .await;
    let p95 = prometheus
        .query(
            "histogram_quantile(0.95, sum by (le) \
             (rate(invites_email_send_duration_seconds_bucket[1m])))",
        )
        .await;
    let sending_workers = prometheus
        .query("count(sum by (instance) (invites_email_send_duration_seconds_count) > 0)")
        .await;

    assert_eq!(import["emails"]["sent"], 20_000);
    assert!(during.unwrap() > 0.0 && after == Some(0.0));
    assert!(
        p95.is_some_and(|p| p.is_finite() && p > 0.0),
        "p95 send time over both workers: {p95:?}"
    );
    assert_eq!(
        sending_workers,
        Some(2.0),
        "both workers sent and were scraped"
    );
    for url in [app.base.clone(), format!("http://{}", addresses[0])] {
        if let Err(findings) = promtool_check_metrics(&url).await {
            panic!("promtool check metrics refuses {url}/metrics:\n{findings}");
        }
    }
}

//! The HTTP API as the bench uses it: stream an upload, poll an import.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::Value;

use crate::procs::Children;

/// How often an import is polled.
const POLL: Duration = Duration::from_millis(100);
/// How long an import may make no progress before the bench gives up.
const STALL: Duration = Duration::from_secs(120);
/// The workspace every run invites into.
pub const WORKSPACE: &str = "bench";

/// A client of one `invite-api serve`, with an admin token of [`WORKSPACE`].
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// A client of the API at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: String, token: String) -> Api {
        Api {
            client: reqwest::Client::new(),
            base,
            token,
        }
    }

    /// The HTTP client (for `/readyz`).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// `{base}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn imports_url(&self) -> String {
        self.url(&format!("/api/v1/workspaces/{WORKSPACE}/imports"))
    }

    /// Streams the file as a raw `text/csv` body; the new import's id once the API answered 202.
    pub async fn upload(&self, csv: &Path) -> anyhow::Result<i64> {
        let file = tokio::fs::File::open(csv)
            .await
            .with_context(|| format!("opening {}", csv.display()))?;
        let size = file.metadata().await?.len();
        let response = self
            .client
            .post(self.imports_url())
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, "text/csv")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::from(file))
            .send()
            .await
            .context("uploading the CSV")?;
        let status = response.status();
        let body = response
            .text()
            .await
            .context("reading the upload's answer")?;
        anyhow::ensure!(
            status == reqwest::StatusCode::ACCEPTED,
            "upload answered {status}: {body}"
        );
        let created: Value = serde_json::from_str(&body).context("the upload's answer")?;
        created["id"]
            .as_i64()
            .with_context(|| format!("no import id in {body}"))
    }

    /// Sends a workbook as a raw body; the status of the answer.
    pub async fn upload_workbook(&self, bytes: &[u8]) -> anyhow::Result<reqwest::StatusCode> {
        let response = self
            .client
            .post(self.imports_url())
            .bearer_auth(&self.token)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .context("uploading a workbook")?;
        Ok(response.status())
    }

    /// `GET …/imports/{id}`.
    pub async fn import(&self, id: i64) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(format!("{}/{id}", self.imports_url()))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("polling the import")?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "GET import {id} answered {status}");
        response.json().await.context("the import's JSON")
    }

    /// A GET of `url` with the admin token and `query`, its JSON body; fails unless 200.
    pub async fn get_json(&self, url: &str, query: &[(&str, &str)]) -> anyhow::Result<Value> {
        let response = self
            .client
            .get(url)
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "GET {url} answered {status}");
        response.json().await.context("the answer's JSON")
    }

    /// `GET …/imports/{id}/results`.
    pub async fn results(&self, id: i64) -> anyhow::Result<String> {
        let response = self
            .client
            .get(format!("{}/{id}/results", self.imports_url()))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("fetching the results")?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "GET results {id} answered {status}");
        response.text().await.context("the results file")
    }

    /// Polls the import until `done` holds for it; fails on status `failed`, on a child's exit,
    /// or when `rows.processed` and `emails.sent` stand still for [`STALL`].
    pub async fn wait_for(
        &self,
        id: i64,
        children: &mut Children,
        done: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let mut progress = (0, 0);
        let mut moved_at = Instant::now();
        loop {
            let import = self.import(id).await?;
            anyhow::ensure!(import["status"] != "failed", "import {id} failed: {import}");
            if done(&import) {
                return Ok(import);
            }
            let now = (
                count(&import, "rows", "processed"),
                count(&import, "emails", "sent"),
            );
            if now != progress {
                (progress, moved_at) = (now, Instant::now());
            }
            anyhow::ensure!(
                moved_at.elapsed() < STALL,
                "import {id} made no progress for {STALL:?}: {import}"
            );
            children.ensure_alive()?;
            tokio::time::sleep(POLL).await;
        }
    }
}

/// `import[group][field]` as a number (0 when absent).
pub fn count(import: &Value, group: &str, field: &str) -> u64 {
    import[group][field].as_u64().unwrap_or(0)
}

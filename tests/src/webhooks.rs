//! A webhook receiver for tests: `tests/webhooks/receiver.py`, which verifies every request with
//! the official Standard Webhooks Python library and logs what it got, one JSON line a request.
//!
//! The library is installed by `scripts/test` in a virtualenv, `WEBHOOK_VERIFIER_PYTHON` (default
//! `~/.cache/bulk-invite-webhooks-venv/bin/python`).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::app::PATIENCE;

/// The Python that has the `standardwebhooks` package.
fn python() -> PathBuf {
    match std::env::var_os("WEBHOOK_VERIFIER_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/bulk-invite-webhooks-venv/bin/python")
        }
    }
}

/// A running receiver, killed when dropped; its log outlives restarts.
pub struct Receiver {
    secret: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Receiver {
    /// A receiver for `secret` (`whsec_…`), not started: its endpoint refuses connections.
    pub fn new(secret: &str) -> Receiver {
        Receiver {
            secret: secret.to_owned(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        }
    }

    /// Starts it on 127.0.0.1:`port` (0: a free one), answering `status` ("200", "500",
    /// "slow:200"); the port it listens on.
    pub async fn start(&mut self, port: u16, status: &str) -> u16 {
        self.answer(status);
        let port_file = self.dir.path().join("port");
        let _ = std::fs::remove_file(&port_file);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/webhooks/receiver.py");
        let child = Command::new(python())
            .arg(script)
            .arg(&self.secret)
            .arg(port.to_string())
            .arg(&port_file)
            .arg(self.dir.path().join("log.jsonl"))
            .arg(self.dir.path().join("status"))
            .spawn()
            .expect("the receiver starts (scripts/test installs standardwebhooks)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                return text.trim().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "the receiver did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills it (connections are refused from then on); its log stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The status it answers from now on.
    pub fn answer(&self, status: &str) {
        std::fs::write(self.dir.path().join("status"), status).unwrap();
    }

    /// What it got, in order.
    pub fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    /// Waits until what it got satisfies `done`; what it got.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the receiver got {received:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

//! Real `invite-worker` and `invite-api` processes for tests that kill, outlive or measure them.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;

use crate::app::{PATIENCE, TestApp, free_port};

/// A worker process on the test's database, queue and SMTP server, killed when dropped.
pub struct WorkerProcess(Child);

impl WorkerProcess {
    /// Starts the binary at `bin` (a test's `env!("CARGO_BIN_EXE_invite-worker")`) with the app's
    /// settings, short poll intervals, and `extra` settings on top.
    pub fn start(bin: &str, app: &TestApp, extra: &[(&str, &str)]) -> WorkerProcess {
        assert!(
            app.settings.redis_url.is_some(),
            "worker processes share a Redis queue"
        );
        let child = on_the_apps_stack(bin, app)
            .env("METRICS_ADDR", "127.0.0.1:0")
            .envs(extra.iter().copied())
            .spawn()
            .expect("invite-worker starts");
        WorkerProcess(child)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// Whether the process is still running (it has not exited by itself).
    pub fn is_running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    /// SIGSTOP: the process is frozen, its sockets and claims held, until [`Self::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: a paused process goes on where it stopped.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.0.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }
}

/// `bin` with no configuration but the app's database, queue, mail and public URL (on the SQLite
/// stack its data folder, which holds all three) and short poll intervals.
fn on_the_apps_stack(bin: &str, app: &TestApp) -> Command {
    let settings = &app.settings;
    let mut command = Command::new(bin);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CONFIG_DIR", "/nonexistent")
        .env("RUST_LOG", "warn")
        .env("DATA_DIR", &settings.data_dir)
        .env("QUEUE_PREFIX", &settings.queue_prefix)
        .env("PUBLIC_URL", &settings.public_url)
        .env("QUEUE_POLL_INTERVAL", "200ms")
        .env("SEND_POLL_INTERVAL", "200ms");
    for (name, value) in [
        ("DATABASE_URL", &settings.database_url),
        ("REDIS_URL", &settings.redis_url),
        ("SMTP_URL", &settings.smtp_url),
    ] {
        if let Some(value) = value {
            command.env(name, value.expose_secret());
        }
    }
    command
}

/// An `invite-api serve` process on the test's stack, on a port of its own, killed when dropped.
/// On the SQLite stack it runs the embedded workers too, so the app must not start its own.
pub struct ApiProcess {
    child: Child,
    /// Base URL of its API, e.g. `http://127.0.0.1:41234`.
    pub base: String,
}

impl ApiProcess {
    /// Starts the binary at `bin` (a test's `env!("CARGO_BIN_EXE_invite-api")`) with the app's
    /// settings and `extra` settings on top, and waits until it answers `/healthz`.
    pub async fn start(bin: &str, app: &TestApp, extra: &[(&str, &str)]) -> ApiProcess {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = on_the_apps_stack(bin, app)
            .env("API_ADDR", &addr)
            .envs(extra.iter().copied())
            .spawn()
            .expect("invite-api starts");
        let mut api = ApiProcess {
            child,
            base: format!("http://{addr}"),
        };
        api.wait_until_up(&app.client).await;
        api
    }

    async fn wait_until_up(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + PATIENCE;
        let url = format!("{}/healthz", self.base);
        while !client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(self.is_running(), "invite-api exited while starting");
            assert!(Instant::now() < deadline, "invite-api did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the process is still running (it has not exited or been killed).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The process's peak resident set (`VmHWM`) in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process's status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib * 1024
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

//! Real `invite-worker` processes for tests that kill or outlive them.

use std::process::{Child, Command};

use secrecy::ExposeSecret as _;

use crate::app::TestApp;

/// A worker process on the test's database, queue and SMTP server, killed when dropped.
pub struct WorkerProcess(Child);

impl WorkerProcess {
    /// Starts the binary at `bin` (a test's `env!("CARGO_BIN_EXE_invite-worker")`) with the app's
    /// settings, short poll intervals, and `extra` settings on top.
    pub fn start(bin: &str, app: &TestApp, extra: &[(&str, &str)]) -> WorkerProcess {
        let settings = &app.settings;
        let secret = |s: &Option<secrecy::SecretString>| {
            s.as_ref()
                .expect("a PostgreSQL-stack setting")
                .expose_secret()
                .to_owned()
        };
        let child = Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CONFIG_DIR", "/nonexistent")
            .env("RUST_LOG", "warn")
            .env("DATABASE_URL", secret(&settings.database_url))
            .env("REDIS_URL", secret(&settings.redis_url))
            .env("SMTP_URL", secret(&settings.smtp_url))
            .env("QUEUE_PREFIX", &settings.queue_prefix)
            .env("PUBLIC_URL", &settings.public_url)
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("QUEUE_POLL_INTERVAL", "200ms")
            .env("SEND_POLL_INTERVAL", "200ms")
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
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

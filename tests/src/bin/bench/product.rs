//! Starting the product: `invite-api migrate`, `token create`, `serve`, and `invite-worker`s,
//! each waited for until its `/readyz` answers 200.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::Bench;
use crate::api::{Api, WORKSPACE};
use crate::procs::{self, Children};

/// Where a run's processes find their database, queue and mail server.
pub struct Backends<'a> {
    /// `DATABASE_URL`.
    pub database_url: &'a str,
    /// `QUEUE_PREFIX` on `TEST_REDIS_URL`.
    pub queue_prefix: &'a str,
    /// `SMTP_URL`, when emails are sent.
    pub smtp_url: Option<String>,
    /// The run's folder: `DATA_DIR` and the logs.
    pub dir: &'a Path,
}

/// The API of a run, started and ready.
pub struct RunningApi {
    /// Its client, with an admin token.
    pub api: Api,
    /// Its process id.
    pub pid: u32,
    /// Its port on 127.0.0.1 (`PUBLIC_URL` points there too).
    pub port: u16,
    /// Its log.
    pub log: PathBuf,
}

impl Backends<'_> {
    /// The settings every process of the run gets (before `--env`).
    fn settings(&self, api_port: u16) -> Vec<(&'static str, String)> {
        let mut settings = vec![
            ("DATABASE_URL", self.database_url.to_owned()),
            ("REDIS_URL", invite_tests::app::redis_url()),
            ("QUEUE_PREFIX", self.queue_prefix.to_owned()),
            ("PUBLIC_URL", format!("http://127.0.0.1:{api_port}")),
            ("DATA_DIR", self.dir.join("data").display().to_string()),
        ];
        if let Some(url) = &self.smtp_url {
            settings.push(("SMTP_URL", url.clone()));
        }
        settings
    }
}

/// Migrates, creates an admin token of [`WORKSPACE`], starts `invite-api serve` on a free port
/// and waits until it is ready.
pub async fn start_api(
    bench: &Bench,
    backends: &Backends<'_>,
    children: &mut Children,
) -> anyhow::Result<RunningApi> {
    let port = procs::free_port()?;
    let mut settings = backends.settings(port);
    let log = backends.dir.join("invite-api.log");
    let command = |args: &[&str], settings: &[(&str, String)]| {
        let mut command = procs::product_command(&bench.bins.api, settings, &bench.envs, &log)?;
        command.args(args);
        anyhow::Ok(command)
    };
    procs::run_to_end(
        "invite-api migrate",
        command(&["migrate"], &settings)?,
        &log,
    )?;
    let token = admin_token(
        command(
            &[
                "token",
                "create",
                "--workspace",
                WORKSPACE,
                "--email",
                "admin@bench.example",
            ],
            &settings,
        )?,
        &log,
    )?;
    settings.push(("API_ADDR", format!("127.0.0.1:{port}")));
    let pid = children.spawn(
        "invite-api serve",
        command(&["serve"], &settings)?,
        Some(&log),
    )?;
    let api = Api::new(format!("http://127.0.0.1:{port}"), token);
    procs::wait_ready(api.client(), &api.url("/readyz"), children).await?;
    Ok(RunningApi {
        api,
        pid,
        port,
        log,
    })
}

/// The token `token create` prints on its last line.
fn admin_token(command: Command, log: &Path) -> anyhow::Result<String> {
    let stdout = procs::run_to_end("invite-api token create", command, log)?;
    stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
        .context("invite-api token create printed no token")
}

/// A started worker.
pub struct RunningWorker {
    /// Its process id.
    pub pid: u32,
    /// Its log.
    pub log: PathBuf,
    /// Its `/metrics` (on the port it bound).
    pub metrics_url: String,
}

/// Starts `count` workers (each `METRICS_ADDR=127.0.0.1:0`) and waits until each one's `/readyz`
/// answers 200 on the port it bound.
pub async fn start_workers(
    bench: &Bench,
    backends: &Backends<'_>,
    api: &RunningApi,
    count: u32,
    children: &mut Children,
) -> anyhow::Result<Vec<RunningWorker>> {
    let mut settings = backends.settings(api.port);
    settings.push(("METRICS_ADDR", "127.0.0.1:0".to_owned()));
    let mut workers = Vec::new();
    for i in 1..=count {
        let log = backends.dir.join(format!("invite-worker-{i}.log"));
        let command = procs::product_command(&bench.bins.worker, &settings, &bench.envs, &log)?;
        let pid = children.spawn(&format!("invite-worker #{i}"), command, Some(&log))?;
        workers.push(RunningWorker {
            pid,
            log,
            metrics_url: String::new(),
        });
    }
    for worker in &mut workers {
        let port = procs::wait_listening(worker.pid, children).await?;
        let url = format!("http://127.0.0.1:{port}/readyz");
        procs::wait_ready(api.api.client(), &url, children).await?;
        worker.metrics_url = format!("http://127.0.0.1:{port}/metrics");
    }
    Ok(workers)
}

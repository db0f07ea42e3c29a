//! The workers: process imports and send invitation emails, registered in one place ([`run`]).
//!
//! Retry policy, by job:
//! - `ProcessImport`: errors are transient (database, queue); the queue re-delivers the job, which
//!   resumes at the import's checkpoint. A file-level failure marks the import `failed` and ends the
//!   job successfully, since retrying cannot help.
//! - `SendInvites`: a wake-up of the process's send engine ([`sender`]), never failing. Send
//!   retries are scheduled per delivery in the database (`next_attempt_at`, exponential backoff
//!   with jitter, up to `EMAIL_RETRY_WINDOW`), never by the queue.
//!
//! Beside the queue's workers, each process runs its send engine, its webhook sender
//! ([`webhooks`]), its housekeeping timer, its bounce reader ([`bounces`], with
//! `BOUNCE_IMAP_URL`) and its heartbeat ([`liveness`]), under which it claims every email and
//! import.

pub mod bounces;
pub mod gauges;
pub mod housekeeping;
pub mod jobs;
pub mod liveness;
pub mod runtime;
pub mod sender;
pub mod server;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::*;
use invite_shared::bounce::ReturnPaths;
use invite_shared::cancels::CancelledImports;
use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::email::Mailer;
use invite_shared::queue::JobQueue;
use lettre::message::Mailbox;
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;

/// Everything a job needs; cheap to clone.
#[derive(Clone)]
pub struct Deps {
    /// The ledger.
    pub db: Db,
    /// Where emails go.
    pub mailer: Arc<Mailer>,
    /// The `From` of invitation emails.
    pub from: Mailbox,
    /// Each email's own envelope sender, when `BOUNCE_ADDRESS` is set: reports of its delivery
    /// come back to it.
    pub return_paths: Option<ReturnPaths>,
    /// Settings in force.
    pub settings: Arc<Settings>,
    /// The job queue, to wake the senders.
    pub queue: JobQueue,
    /// Cancelled when the process shuts down: long jobs stop at their next safe point.
    pub shutdown: CancellationToken,
    /// Wakes this process's send engine: there may be due deliveries.
    pub wake: Arc<tokio::sync::Notify>,
    /// The queue jobs this process started and runs.
    pub activity: Arc<jobs::Activity>,
    /// This process's registration, under which it claims work.
    pub liveness: Arc<liveness::Liveness>,
    /// The imports this process knows to be cancelled: its send engine gives their claimed
    /// emails back as `cancelled` instead of sending them ([`invite_shared::cancels`]).
    pub cancelled: Arc<CancelledImports>,
}

impl Deps {
    /// Builds the mailer from settings (SMTP when `SMTP_URL` is set, else the outbox).
    fn mailer(settings: &Settings) -> anyhow::Result<Mailer> {
        Ok(match &settings.smtp_url {
            Some(url) => Mailer::smtp(
                url.expose_secret(),
                settings.smtp_pool_size,
                settings.smtp_timeout,
            )?,
            None => Mailer::outbox(settings.outbox_dir())?,
        })
    }

    /// Assembles the dependencies from settings and already-connected database and queue.
    pub fn new(settings: Arc<Settings>, db: Db, queue: JobQueue) -> anyhow::Result<Deps> {
        let from = settings
            .email_from
            .parse()
            .context("EMAIL_FROM is not a valid mailbox")?;
        Ok(Deps {
            db,
            mailer: Arc::new(Deps::mailer(&settings)?),
            from,
            return_paths: settings.return_paths()?,
            settings: settings.clone(),
            queue,
            shutdown: CancellationToken::new(),
            wake: Arc::new(tokio::sync::Notify::new()),
            activity: Arc::default(),
            liveness: Arc::new(liveness::Liveness::new(
                settings.worker_dead_after,
                settings.worker_heartbeat_interval,
            )),
            cancelled: Arc::default(),
        })
    }
}

/// A name no other live worker has: apalis-redis refuses a name it saw recently.
pub fn unique_worker_name(role: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    let nonce: u32 = rand::random();
    format!("{host}-{}-{nonce:08x}-{role}", std::process::id())
}

/// Registers both workers on `$queues` (a `Queues` of either backend): one registration chain,
/// whatever the backend, so every job has the same concurrency and middleware everywhere.
macro_rules! register_workers {
    ($monitor:expr, $queues:expr, $deps:expr) => {{
        let concurrency = $deps.settings.worker_concurrency;
        let (imports, sends) = ($queues.imports.clone(), $queues.sends.clone());
        let (import_deps, send_deps) = ($deps.clone(), $deps.clone());
        // Fresh names on every (re)start: apalis-redis refuses a name it saw recently.
        let import_name = unique_worker_name("process-import");
        let send_name = unique_worker_name("send-invites");
        $monitor
            .register(move |_| {
                WorkerBuilder::new(import_name.clone())
                    .backend(imports.clone())
                    .data(import_deps.clone())
                    .concurrency(concurrency)
                    .build(jobs::process_import::handle)
            })
            .register(move |_| {
                WorkerBuilder::new(send_name.clone())
                    .backend(sends.clone())
                    .data(send_deps.clone())
                    .concurrency(concurrency)
                    .build(jobs::send_invites::handle)
            })
    }};
}

/// Runs every worker, the send engine and housekeeping until `shutdown` is cancelled, then lets
/// the send engine finish gracefully. The process stays registered (see [`liveness`]) until the
/// send engine has finished. Returns an error only when the queue stayed unavailable longer than
/// `OUTAGE_LIMIT`.
pub async fn run(mut deps: Deps, shutdown: CancellationToken) -> anyhow::Result<()> {
    deps.shutdown = shutdown.clone();
    let registered = CancellationToken::new();
    let heartbeat = tokio::spawn(liveness::run(deps.clone(), registered.clone()));
    let sender = tokio::spawn(sender::run(deps.clone(), shutdown.clone()));
    let housekeeping = tokio::spawn(housekeeping::run(deps.clone(), shutdown.clone()));
    let bounce_reader = tokio::spawn(bounces::run(deps.clone(), shutdown.clone()));
    let webhooks = tokio::spawn(webhooks::run(deps.clone(), shutdown.clone()));
    tokio::spawn(gauges::run(
        deps.db.clone(),
        deps.queue.clone(),
        deps.settings.send_poll_interval,
        deps.settings.worker_dead_after,
        shutdown.clone(),
    ));
    let result = supervise_queue_workers(&deps, &shutdown).await;
    shutdown.cancel();
    housekeeping.await.context("housekeeping panicked")?;
    bounce_reader.await.context("the bounce reader panicked")?;
    webhooks.await.context("the webhook sender panicked")?;
    let sent = sender.await.context("the send engine panicked");
    registered.cancel();
    heartbeat.await.context("the heartbeat panicked")?;
    sent??;
    result
}

/// Runs the queue's workers until `shutdown`. When one of them fails (the queue went away: apalis
/// ends a worker whose backend fails), all are stopped, the queue is pinged with backoff until it
/// answers, and they start again under new names. The ledger needs nothing from the queue's
/// contents: housekeeping re-enqueues imports whose job was lost and the sender polls the database.
async fn supervise_queue_workers(deps: &Deps, shutdown: &CancellationToken) -> anyhow::Result<()> {
    loop {
        let failed = CancellationToken::new();
        let on_failure = failed.clone();
        let monitor = Monitor::new()
            .shutdown_timeout(Duration::from_secs(30))
            .should_restart(move |worker, error| {
                tracing::warn!(worker = worker.name(), error = %error, "a queue worker stopped");
                on_failure.cancel();
                false
            });
        let monitor = match &deps.queue {
            JobQueue::Redis(queues, _) => register_workers!(monitor, queues, deps),
            JobQueue::Sqlite(queues) => register_workers!(monitor, queues, deps),
        };
        let watchdog = tokio::spawn(watch_for_stall(deps.clone(), failed.clone()));
        let (stop, failure) = (shutdown.clone(), failed.clone());
        let result = monitor
            .run_with_signal(async move {
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = failure.cancelled() => {}
                }
                Ok(())
            })
            .await;
        watchdog.abort();
        if shutdown.is_cancelled() {
            return match result {
                // A worker that failed while everything was stopping changes nothing.
                Err(e) if !failed.is_cancelled() => Err(anyhow::anyhow!("worker monitor: {e}")),
                _ => Ok(()),
            };
        }
        runtime::wait_until_available("the queue", &deps.settings, shutdown, || deps.queue.ping())
            .await?;
        tracing::info!("restarting the queue workers");
    }
}

/// Cancels `failed` when the queue workers stalled: jobs have been due in the queue for 30 poll
/// intervals (`QUEUE_POLL_INTERVAL`), this process had room for more, yet started none. A worker
/// whose backend hangs (rather than failing) would otherwise never be restarted.
pub async fn watch_for_stall(deps: Deps, failed: CancellationToken) {
    let stall = deps.settings.queue_poll_interval * 30;
    let room = deps.settings.worker_concurrency * 2;
    let mut tick = tokio::time::interval(stall / 6);
    let mut waiting_since: Option<(tokio::time::Instant, u64)> = None;
    loop {
        tick.tick().await;
        let started = deps.activity.started();
        let due = deps
            .queue
            .depth()
            .await
            .is_ok_and(|depths| depths.iter().any(|d| d.state == "pending" && d.jobs > 0));
        if !due || deps.activity.running() >= room {
            waiting_since = None;
            continue;
        }
        match waiting_since {
            Some((since, seen)) if seen == started => {
                if since.elapsed() >= stall {
                    tracing::warn!(
                        stalled_s = since.elapsed().as_secs(),
                        "jobs are due but the queue workers fetch none; restarting them"
                    );
                    failed.cancel();
                    return;
                }
            }
            _ => waiting_since = Some((tokio::time::Instant::now(), started)),
        }
    }
}

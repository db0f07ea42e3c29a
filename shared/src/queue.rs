//! The job queue: where the API and workers say "there is work". Jobs carry ids only.
//!
//! Redis (`REDIS_URL`) in production; otherwise the embedded queue, apalis-sqlite in
//! `{data_dir}/queue.db`, which survives restarts like Redis does.

use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::TaskSink as _;
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::{SqlitePool, SqliteStorage};
use secrecy::ExposeSecret as _;

use crate::config::Settings;
use crate::jobs::{ProcessImport, SendInvites};

/// Queue names under the deployment's key prefix.
pub fn queue_name(prefix: &str, job: &str) -> String {
    format!("{prefix}:{job}")
}

/// Storage for one job kind on Redis.
pub type RedisQueue<T> = RedisStorage<T, ConnectionManager>;

/// The storage of each job kind, on one backend.
#[derive(Clone)]
pub struct Queues<I, S> {
    /// `ProcessImport` jobs.
    pub imports: I,
    /// `SendInvites` jobs.
    pub sends: S,
}

/// The queue in use.
#[derive(Clone)]
pub enum JobQueue {
    /// Redis, shared by any number of processes.
    Redis(
        Queues<RedisQueue<ProcessImport>, RedisQueue<SendInvites>>,
        ConnectionManager,
    ),
    /// The embedded queue in a SQLite file, for one process.
    Sqlite(Queues<SqliteStorage<ProcessImport>, SqliteStorage<SendInvites>>),
}

impl JobQueue {
    /// Connects to the queue the settings name: Redis when `REDIS_URL` is set, else embedded.
    pub async fn connect(settings: &Settings) -> anyhow::Result<JobQueue> {
        match &settings.redis_url {
            Some(url) => {
                JobQueue::redis(
                    url.expose_secret(),
                    &settings.queue_prefix,
                    settings.queue_poll_interval,
                )
                .await
            }
            None => {
                let path = settings.data_dir.join("queue.db");
                JobQueue::sqlite(&path, &settings.queue_prefix, settings.queue_poll_interval).await
            }
        }
    }

    /// Connects to Redis and names the queues under `prefix`.
    pub async fn redis(url: &str, prefix: &str, poll: Duration) -> anyhow::Result<JobQueue> {
        let conn = apalis_redis::connect(url)
            .await
            .context("connecting to Redis")?;
        // An idle apalis worker fetches again only when its heartbeat fires, so the heartbeat is
        // the poll interval. A worker whose jobs keep it from polling misses heartbeats and its
        // jobs are re-enqueued; the import lease in the database makes such a repeat a no-op.
        let config = |job: &str| {
            apalis_redis::Config::default()
                .queue(queue_name(prefix, job))
                .heartbeat_interval(poll)
        };
        let queues = Queues {
            imports: RedisStorage::new(conn.clone()).with_config(config("process_import")),
            sends: RedisStorage::new(conn.clone()).with_config(config("send_invites")),
        };
        Ok(JobQueue::Redis(queues, conn))
    }

    /// Opens (creating if needed) the embedded queue file.
    pub async fn sqlite(
        path: &std::path::Path,
        prefix: &str,
        poll: Duration,
    ) -> anyhow::Result<JobQueue> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the folder {}", dir.display()))?;
        }
        let options = apalis_sqlite::SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = apalis_sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the embedded queue {}", path.display()))?;
        SqliteStorage::setup(&pool)
            .await
            .context("preparing the embedded queue")?;
        let config = |job: &str| {
            apalis_sqlite::Config::default()
                .queue(queue_name(prefix, job))
                .heartbeat_interval(poll)
        };
        Ok(JobQueue::Sqlite(Queues {
            imports: SqliteStorage::new(&pool).with_config(config("process_import")),
            sends: SqliteStorage::new(&pool).with_config(config("send_invites")),
        }))
    }

    /// Enqueues the processing of an import.
    pub async fn push_import(&self, job: ProcessImport) -> anyhow::Result<()> {
        // The first command on a Redis connection that broke fails and makes the connection
        // manager reconnect; one more try lets the first request after an outage succeed.
        match self.push_import_once(job.clone()).await {
            Ok(()) => Ok(()),
            Err(_) => self.push_import_once(job).await,
        }
    }

    async fn push_import_once(&self, job: ProcessImport) -> anyhow::Result<()> {
        within_deadline(async {
            match self {
                JobQueue::Redis(q, _) => q.imports.clone().push(job).await.map_err(push_error),
                JobQueue::Sqlite(q) => q.imports.clone().push(job).await.map_err(push_error),
            }
        })
        .await
    }

    /// Enqueues a wake-up for the senders (one try more after a failure, as for imports).
    pub async fn push_send(&self, job: SendInvites) -> anyhow::Result<()> {
        match self.push_send_once(job.clone()).await {
            Ok(()) => Ok(()),
            Err(_) => self.push_send_once(job).await,
        }
    }

    async fn push_send_once(&self, job: SendInvites) -> anyhow::Result<()> {
        within_deadline(async {
            match self {
                JobQueue::Redis(q, _) => q.sends.clone().push(job).await.map_err(push_error),
                JobQueue::Sqlite(q) => q.sends.clone().push(job).await.map_err(push_error),
            }
        })
        .await
    }

    /// Checks that the queue answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        within_deadline(async {
            match self {
                JobQueue::Redis(_, conn) => {
                    let mut conn = conn.clone();
                    redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .context("pinging Redis")
                        .map(drop)
                }
                JobQueue::Sqlite(q) => {
                    let pool: &SqlitePool = q.imports.pool();
                    pool.acquire()
                        .await
                        .context("opening the embedded queue")
                        .map(drop)
                }
            }
        })
        .await
    }

    /// Where the queue lives, for the start-up log (no credentials).
    pub fn describe(&self) -> &'static str {
        match self {
            JobQueue::Redis(..) => "Redis",
            JobQueue::Sqlite(_) => "embedded (SQLite)",
        }
    }
}

/// Longest wait for one queue operation. While Redis is down, its connection manager keeps
/// reconnecting and commands wait for it; an upload must not wait that long to be answered.
const QUEUE_DEADLINE: Duration = Duration::from_secs(2);

async fn within_deadline<T>(
    operation: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(QUEUE_DEADLINE, operation)
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the queue did not answer within {QUEUE_DEADLINE:?}"
            ))
        })
}

fn push_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("enqueueing a job: {e}")
}

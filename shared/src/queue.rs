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

use crate::cancels;
use crate::config::Settings;
use crate::ids::ImportId;
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
    /// The deployment's key prefix (`QUEUE_PREFIX`) the queues are named under.
    pub prefix: String,
    /// Where cancel notices are published and heard ([`cancels`]).
    pub notices: Notices,
}

/// How cancel notices travel ([`cancels`]).
#[derive(Clone)]
pub enum Notices {
    /// Redis pub/sub, to every process of the deployment; the client opens the subscriptions.
    Redis(redis::Client),
    /// A channel within this process, shared by every queue opened on the same embedded file.
    Local(tokio::sync::broadcast::Sender<ImportId>),
}

/// The ids of cancelled imports as notices bring them, until the subscription ends.
pub type CancelNotices = futures::stream::BoxStream<'static, ImportId>;

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
        // The connection reconnects on its own after a failure, waiting longer after each try;
        // capped at half a second, so that a Redis back from an outage is in use (and `/readyz`
        // says so) within a second, not after a wait of up to 3.2 s that outlasts a ping.
        let reconnect =
            redis::aio::ConnectionManagerConfig::new().set_max_delay(Duration::from_millis(500));
        let client = redis::Client::open(url).context("the Redis URL")?;
        let conn = client
            .get_connection_manager_with_config(reconnect)
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
            prefix: prefix.to_owned(),
            notices: Notices::Redis(client),
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
            prefix: prefix.to_owned(),
            notices: Notices::Local(cancels::local_channel(path)),
        }))
    }

    /// Enqueues the processing of an import.
    pub async fn push_import(&self, job: ProcessImport) -> anyhow::Result<()> {
        twice(|| self.push_import_once(job.clone())).await
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

    /// Enqueues a wake-up for the senders.
    pub async fn push_send(&self, job: SendInvites) -> anyhow::Result<()> {
        twice(|| self.push_send_once(job.clone())).await
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

    /// Tells every send engine of the deployment that import `id` was cancelled ([`cancels`]).
    pub async fn announce_cancel(&self, id: ImportId) -> anyhow::Result<()> {
        match self {
            JobQueue::Redis(q, conn) => {
                let channel = cancels::channel(&q.prefix);
                within_deadline(async {
                    let mut conn = conn.clone();
                    redis::cmd("PUBLISH")
                        .arg(channel)
                        .arg(id.0)
                        .query_async::<i64>(&mut conn)
                        .await
                        .context("publishing a cancel notice on Redis")
                        .map(drop)
                })
                .await
            }
            // No subscriber yet (no engine runs in this process) is no error: there is no one
            // to tell.
            JobQueue::Sqlite(q) => {
                if let Notices::Local(channel) = &q.notices {
                    let _ = channel.send(id);
                }
                Ok(())
            }
        }
    }

    /// Subscribes to the deployment's cancel notices. The stream ends when the subscription is
    /// lost (Redis went away); the caller subscribes again and reads what it missed from the
    /// database.
    pub async fn cancel_notices(&self) -> anyhow::Result<CancelNotices> {
        use futures::StreamExt as _;
        let (prefix, notices) = match self {
            JobQueue::Redis(q, _) => (&q.prefix, &q.notices),
            JobQueue::Sqlite(q) => (&q.prefix, &q.notices),
        };
        match notices {
            Notices::Redis(client) => {
                let channel = cancels::channel(prefix);
                let pubsub = within_deadline(async {
                    let mut pubsub = client
                        .get_async_pubsub()
                        .await
                        .context("connecting to Redis for cancel notices")?;
                    pubsub
                        .subscribe(channel)
                        .await
                        .context("subscribing to cancel notices")?;
                    Ok(pubsub)
                })
                .await?;
                let ids = pubsub
                    .into_on_message()
                    .filter_map(|msg| async move { msg.get_payload::<i64>().ok().map(ImportId) });
                Ok(ids.boxed())
            }
            Notices::Local(channel) => {
                let receiver = channel.subscribe();
                let ids = futures::stream::unfold(receiver, |mut receiver| async move {
                    use tokio::sync::broadcast::error::RecvError;
                    loop {
                        match receiver.recv().await {
                            Ok(id) => return Some((id, receiver)),
                            // Missed notices are read from the database by the fallback.
                            Err(RecvError::Lagged(_)) => continue,
                            Err(RecvError::Closed) => return None,
                        }
                    }
                });
                Ok(ids.boxed())
            }
        }
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

    /// Jobs of each queue by state: `pending` (waiting for a worker), `scheduled` (a retry, due
    /// later), `running` (held by a worker) and `dead` (given up), read from the backend itself
    /// (apalis's own statistics do not count correctly).
    pub async fn depth(&self) -> anyhow::Result<Vec<QueueDepth>> {
        let mut depths = Vec::new();
        for queue in JOB_QUEUES {
            let counts = within_deadline(async {
                match self {
                    JobQueue::Redis(q, conn) => {
                        let counts: Vec<i64> = redis::Script::new(REDIS_DEPTH)
                            .key(queue_name(&q.prefix, queue))
                            .invoke_async(&mut conn.clone())
                            .await
                            .context("counting the queue's jobs in Redis")?;
                        Ok(STATES.iter().copied().zip(counts).collect::<Vec<_>>())
                    }
                    JobQueue::Sqlite(q) => {
                        sqlite_depth(q.imports.pool(), &queue_name(&q.prefix, queue)).await
                    }
                }
            })
            .await?;
            depths.extend(counts.into_iter().map(|(state, jobs)| QueueDepth {
                queue,
                state,
                jobs,
            }));
        }
        Ok(depths)
    }

    /// Where the queue lives, for the start-up log (no credentials).
    pub fn describe(&self) -> &'static str {
        match self {
            JobQueue::Redis(..) => "Redis",
            JobQueue::Sqlite(_) => "embedded (SQLite)",
        }
    }
}

/// Runs `push` once more if it fails: the first command on a Redis connection that broke fails
/// and makes the connection manager reconnect, so the first request after an outage succeeds.
async fn twice<F, Fut>(push: F) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    match push().await {
        Ok(()) => Ok(()),
        Err(_) => push().await,
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

/// The job queues, as `invites_queue_jobs` labels them.
const JOB_QUEUES: [&str; 2] = ["process_import", "send_invites"];
/// The states `depth` reports, in the order of [`REDIS_DEPTH`]'s answer.
const STATES: [&str; 4] = ["pending", "scheduled", "running", "dead"];

/// How many jobs of one queue are in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    /// `process_import` or `send_invites`.
    pub queue: &'static str,
    /// `pending`, `scheduled`, `running` or `dead`.
    pub state: &'static str,
    /// How many.
    pub jobs: i64,
}

/// apalis-redis 1.0's keys for a queue `KEYS[1]`: a list of jobs handed to workers' fetches, a
/// sorted set of jobs by due time in seconds (new jobs are added there, due now), one set of
/// in-flight jobs per registered worker, and a set of dead jobs. Due jobs count as pending.
const REDIS_DEPTH: &str = r"
local q = KEYS[1]
local now = tonumber(redis.call('TIME')[1])
local running = 0
for _, worker in ipairs(redis.call('ZRANGE', q .. ':workers', 0, -1)) do
    running = running + redis.call('SCARD', q .. ':inflight:' .. worker)
end
local due = redis.call('ZCOUNT', q .. ':scheduled', '-inf', now)
local later = redis.call('ZCOUNT', q .. ':scheduled', '(' .. now, '+inf')
return { redis.call('LLEN', q .. ':active') + due, later, running, redis.call('SCARD', q .. ':dead') }
";

/// apalis-sqlite 1.0 keeps jobs in a `Jobs` table, by queue name (`job_type`) and status.
async fn sqlite_depth(pool: &SqlitePool, name: &str) -> anyhow::Result<Vec<(&'static str, i64)>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM Jobs WHERE job_type = ?1 GROUP BY status")
            .bind(name)
            .fetch_all(pool)
            .await
            .context("counting the embedded queue's jobs")?;
    let count = |statuses: &[&str]| {
        rows.iter()
            .filter(|(status, _)| statuses.contains(&status.as_str()))
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    Ok(vec![
        ("pending", count(&["Pending", "Queued"])),
        ("scheduled", count(&["Failed"])),
        ("running", count(&["Running"])),
        ("dead", count(&["Killed"])),
    ])
}

fn push_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("enqueueing a job: {e}")
}

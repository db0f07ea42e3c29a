//! The job queue: where the API and workers say "there is work". Jobs carry ids only.

use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::TaskSink as _;
use apalis_redis::{ConnectionManager, RedisStorage};
use secrecy::ExposeSecret as _;

use crate::config::Settings;

use crate::jobs::{ProcessImport, SendInvites};

/// Queue names under the deployment's key prefix.
pub fn queue_name(prefix: &str, job: &str) -> String {
    format!("{prefix}:{job}")
}

/// Storage for one job kind on Redis.
pub type RedisQueue<T> = RedisStorage<T, ConnectionManager>;

/// Producer and consumer handles for every job kind.
#[derive(Clone)]
pub struct JobQueue {
    /// `ProcessImport` jobs.
    pub imports: RedisQueue<ProcessImport>,
    /// `SendInvites` jobs.
    pub sends: RedisQueue<SendInvites>,
    conn: ConnectionManager,
}

impl JobQueue {
    /// Connects to the queue the settings name.
    pub async fn connect(settings: &Settings) -> anyhow::Result<JobQueue> {
        let url = settings
            .redis_url
            .as_ref()
            .context("REDIS_URL is not set")?;
        JobQueue::redis(
            url.expose_secret(),
            &settings.queue_prefix,
            settings.queue_poll_interval,
        )
        .await
    }

    /// Connects to Redis and names the queues under `prefix`.
    pub async fn redis(url: &str, prefix: &str, poll: Duration) -> anyhow::Result<JobQueue> {
        let conn = apalis_redis::connect(url)
            .await
            .context("connecting to Redis")?;
        // An idle apalis-redis worker fetches again only when its heartbeat fires, so the heartbeat
        // is the poll interval. A worker whose jobs keep it from polling misses heartbeats and its
        // jobs are re-enqueued; the import lease in the database makes such a repeat a no-op.
        let storage = |job: &str| {
            apalis_redis::Config::default()
                .queue(queue_name(prefix, job))
                .heartbeat_interval(poll)
        };
        Ok(JobQueue {
            imports: RedisStorage::new(conn.clone()).with_config(storage("process_import")),
            sends: RedisStorage::new(conn.clone()).with_config(storage("send_invites")),
            conn,
        })
    }

    /// Enqueues the processing of an import.
    pub async fn push_import(&self, job: ProcessImport) -> anyhow::Result<()> {
        self.imports
            .clone()
            .push(job)
            .await
            .map_err(|e| anyhow::anyhow!("enqueueing ProcessImport: {e}"))
    }

    /// Enqueues a wake-up for the senders.
    pub async fn push_send(&self, job: SendInvites) -> anyhow::Result<()> {
        self.sends
            .clone()
            .push(job)
            .await
            .map_err(|e| anyhow::anyhow!("enqueueing SendInvites: {e}"))
    }

    /// Checks that the queue answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .context("pinging Redis")
            .map(drop)
    }
}

//! Gauges of shared state (emails waiting, the oldest one's age, imports in progress, jobs in the
//! queue), read from the database and the queue on a timer of their own (`SEND_POLL_INTERVAL`) by
//! every process, API and workers alike: they are right during a backlog, and any scrape target
//! (or `max` over all) gives the truth.

use std::time::Duration;

use invite_shared::db::Db;
use invite_shared::metrics as m;
use invite_shared::queue::JobQueue;
use invite_shared::store::{deliveries, imports, now};
use tokio_util::sync::CancellationToken;

use crate::runtime;

/// Refreshes the gauges every `interval` until `stop`.
pub async fn run(db: Db, queue: JobQueue, interval: Duration, stop: CancellationToken) {
    runtime::every(interval, &stop, "reading the gauges", || {
        refresh(&db, &queue)
    })
    .await;
}

async fn refresh(db: &Db, queue: &JobQueue) -> anyhow::Result<()> {
    let ((unsent, oldest), processing) = db
        .run(|c| Ok((deliveries::unsent(c)?, imports::processing_count(c)?)))
        .await?;
    let age = oldest.map_or(0.0, |t| (now() - t).as_seconds_f64().max(0.0));
    metrics::gauge!(m::EMAILS_PENDING).set(unsent as f64);
    metrics::gauge!(m::OLDEST_PENDING_AGE).set(age);
    metrics::gauge!(m::IMPORTS_IN_PROGRESS).set(processing as f64);
    for depth in queue.depth().await? {
        metrics::gauge!(m::QUEUE_JOBS, "queue" => depth.queue, "state" => depth.state)
            .set(depth.jobs as f64);
    }
    Ok(())
}

//! Gauges of shared state (emails waiting, the oldest one's age, imports in progress, live workers,
//! jobs in the queue), read from the database and the queue on a timer of their own (`SEND_POLL_INTERVAL`) by
//! every process, API and workers alike: they are right during a backlog, and any scrape target
//! (or `max` over all) gives the truth.

use std::time::Duration;

use invite_shared::db::Db;
use invite_shared::metrics as m;
use invite_shared::queue::JobQueue;
use invite_shared::store::{deliveries, imports, now, workers};
use tokio_util::sync::CancellationToken;

use crate::runtime;

/// Refreshes the gauges every `interval` until `stop`; a worker counts as alive while its heartbeat
/// is younger than `dead_after`.
pub async fn run(
    db: Db,
    queue: JobQueue,
    interval: Duration,
    dead_after: Duration,
    stop: CancellationToken,
) {
    runtime::every(interval, &stop, "reading the gauges", || {
        refresh(&db, &queue, dead_after)
    })
    .await;
}

async fn refresh(db: &Db, queue: &JobQueue, dead_after: Duration) -> anyhow::Result<()> {
    let ((unsent, oldest), processing, alive) = db
        .run(move |c| {
            let unsent = deliveries::unsent(c)?;
            Ok((
                unsent,
                imports::processing_count(c)?,
                workers::alive(c, dead_after)?,
            ))
        })
        .await?;
    metrics::gauge!(m::WORKERS_ALIVE).set(alive as f64);
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

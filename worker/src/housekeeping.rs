//! Housekeeping on a timer of its own (`SEND_POLL_INTERVAL`), so no backlog of sends can starve
//! it: forget processes whose heartbeat is older than `WORKER_DEAD_AFTER` and hand back their
//! claims, enqueue imports that need a worker (their worker died, their job was lost or never
//! enqueued), put sends of dead workers (or lapsed leases) back to `pending`, wake this process's sender for
//! retries and wake-ups it was not told of, and delete the stored files of imports finished longer
//! than `UPLOAD_RETENTION` ago and webhook events older than `WEBHOOK_RETENTION`. Together with the database as the
//! ledger, this re-creates every signal a queue that restarted empty has lost.

use invite_shared::jobs::ProcessImport;
use invite_shared::service::retention;
use invite_shared::store::{deliveries, imports, workers};
use tokio_util::sync::CancellationToken;

use crate::Deps;
use crate::runtime;

/// Runs until `stop`.
pub async fn run(deps: Deps, stop: CancellationToken) {
    let interval = deps.settings.send_poll_interval;
    runtime::every(interval, &stop, "housekeeping", || once(&deps)).await;
}

async fn once(deps: &Deps) -> anyhow::Result<()> {
    // The database's part first: a queue outage must not stop it.
    hand_back_abandoned(deps).await?;
    deps.wake.notify_one();
    let enqueued = enqueue_imports_needing_a_worker(deps).await;
    // Last, and one batch a tick: a backlog of old uploads, or a failure deleting one, never holds
    // up the recovery of sends and imports above.
    if let Err(e) = tidy(deps).await {
        tracing::warn!(error = %e, "tidying up past retention failed; the next tick tries again");
    }
    enqueued
}

/// Deletes one batch of uploads past `UPLOAD_RETENTION` and of webhook events past
/// `WEBHOOK_RETENTION`, expired hand-over tokens, and forgets past days' support-email counts.
async fn tidy(deps: &Deps) -> anyhow::Result<()> {
    retention::delete_expired_uploads(&deps.db, deps.settings.upload_retention).await?;
    retention::forget_past_daily_counts(&deps.db).await?;
    retention::prune_webhooks_and_handovers(&deps.db, deps.settings.webhook_retention).await?;
    Ok(())
}

/// Forgets dead processes, then hands back the claims of every process gone (dead, or stopped
/// while still holding some) and of lapsed leases.
async fn hand_back_abandoned(deps: &Deps) -> anyhow::Result<()> {
    let dead_after = deps.settings.worker_dead_after;
    let dead = deps
        .db
        .run(move |c| Ok(workers::remove_dead(c, dead_after)?))
        .await?;
    if dead > 0 {
        tracing::warn!(
            dead,
            "workers without a heartbeat for WORKER_DEAD_AFTER are dead"
        );
    }
    let (requeued, imports) = deps
        .db
        .run(|c| {
            let requeued = deliveries::requeue_abandoned(c)?;
            Ok((requeued, imports::hand_back_abandoned(c)?))
        })
        .await?;
    if requeued > 0 {
        tracing::warn!(
            requeued,
            "sends held by a stopped worker are due again; they will be sent once more"
        );
    }
    if imports > 0 {
        tracing::warn!(
            imports,
            "imports held by a stopped worker resume at their checkpoint"
        );
    }
    Ok(())
}

async fn enqueue_imports_needing_a_worker(deps: &Deps) -> anyhow::Result<()> {
    let lease = deps.settings.import_lease;
    for import_id in deps
        .db
        .run(move |c| Ok(imports::claim_stalled(c, lease)?))
        .await?
    {
        if let Err(e) = deps.queue.push_import(ProcessImport { import_id }).await {
            // The queue is down: try again at the next tick rather than a lease later.
            deps.db
                .run(move |c| Ok(imports::unmark_requeued(c, import_id)?))
                .await?;
            return Err(e.context("enqueueing imports that need a worker"));
        }
        tracing::info!(%import_id, "enqueued an import that needs a worker");
    }
    Ok(())
}

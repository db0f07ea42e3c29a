//! Housekeeping on a timer of its own (`SEND_POLL_INTERVAL`), so no backlog of sends can starve
//! it: re-enqueue imports whose worker died, put sends of dead workers back to `pending`, refresh
//! the pending gauge, and wake this process's sender for retries and wake-ups it was not told of.

use invite_shared::jobs::ProcessImport;
use invite_shared::metrics as m;
use invite_shared::store::{deliveries, imports};
use tokio_util::sync::CancellationToken;

use crate::Deps;

/// Runs until `stop`.
pub async fn run(deps: Deps, stop: CancellationToken) {
    let mut tick = tokio::time::interval(deps.settings.send_poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = once(&deps).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "housekeeping failed; will try again"
            );
        }
    }
}

async fn once(deps: &Deps) -> anyhow::Result<()> {
    let lease = deps.settings.import_lease;
    for import_id in deps
        .db
        .run(move |c| Ok(imports::claim_stalled(c, lease)?))
        .await?
    {
        tracing::warn!(%import_id, "re-enqueueing a stalled import");
        deps.queue.push_import(ProcessImport { import_id }).await?;
    }
    let requeued = deps.db.run(|c| Ok(deliveries::requeue_lapsed(c)?)).await?;
    if requeued > 0 {
        tracing::warn!(
            requeued,
            "sends held by a stopped worker are due again; they will be sent once more"
        );
    }
    deps.wake.notify_one();
    let pending = deps.db.run(|c| Ok(deliveries::pending_count(c)?)).await?;
    metrics::gauge!(m::EMAILS_PENDING).set(pending as f64);
    Ok(())
}

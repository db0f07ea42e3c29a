//! `SendInvites`: claims due deliveries in batches, sends them concurrently over the pooled mailer,
//! and records each outcome. The sweeper runs the same drain on a timer for retries.

use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, Data};
use backon::{BackoffBuilder as _, ExponentialBuilder};
use chrono::{NaiveDateTime, TimeZone as _, Utc};
use invite_shared::email::{InvitationEmail, SendError, SendReceipt, build_message};
use invite_shared::ids::DeliveryId;
use invite_shared::jobs::{ProcessImport, SendInvites};
use invite_shared::metrics as m;
use invite_shared::store::deliveries::{self, Claimed, SendOutcome};
use invite_shared::store::imports;
use invite_shared::store::now;
use tokio_util::sync::CancellationToken;

use crate::Deps;
use crate::jobs::Busy;

/// Longest wait between two attempts of one send.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// The job handler.
#[tracing::instrument(skip_all, fields(import_id = ?job.import_id))]
pub async fn handle(job: SendInvites, deps: Data<Deps>) -> Result<(), BoxDynError> {
    let _busy = Busy::new();
    drain(&deps, &deps.shutdown).await.map(drop).map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "sending stopped; it will resume");
        e.into()
    })
}

/// Sends batches until no delivery is due or `stop` is cancelled; returns how many sends were
/// attempted. A batch in hand is always finished and recorded, so a graceful shutdown leaves no
/// delivery claimed.
pub async fn drain(deps: &Deps, stop: &CancellationToken) -> anyhow::Result<usize> {
    let batch = deps.settings.send_batch_size as i64;
    let lease = deps.settings.email_lease;
    let ttl = deps.settings.invite_ttl;
    let mut attempted = 0;
    while !stop.is_cancelled() {
        let claimed = deps
            .db
            .run(move |c| Ok(deliveries::claim_due(c, batch, lease, ttl)?))
            .await?;
        if claimed.is_empty() {
            return Ok(attempted);
        }
        attempted += claimed.len();
        let outcomes: Vec<(DeliveryId, SendOutcome)> =
            futures::future::join_all(claimed.iter().map(|c| send_one(deps, c))).await;
        deps.db
            .run(move |c| Ok(deliveries::record(c, &outcomes)?))
            .await?;
    }
    Ok(attempted)
}

async fn send_one(deps: &Deps, claimed: &Claimed) -> (DeliveryId, SendOutcome) {
    let email = InvitationEmail {
        workspace: claimed.workspace.clone(),
        inviter: claimed.inviter.clone(),
        first_name: claimed.first_name.clone(),
        to: claimed.to.clone(),
        link: deps.settings.invitation_url(&claimed.token),
        expires_at: Utc.from_utc_datetime(&claimed.expires_at),
    };
    let result = match build_message(&deps.from, &email) {
        Ok(message) => {
            // The semaphore is never closed, so acquiring cannot fail.
            let _slot = deps
                .send_slots
                .acquire()
                .await
                .expect("send slots are never closed");
            let started = Instant::now();
            let result = deps.mailer.send(&message).await;
            metrics::histogram!(m::EMAIL_SEND_DURATION).record(started.elapsed().as_secs_f64());
            result
        }
        Err(e) => Err(SendError::Permanent {
            reply: format!("the message could not be built: {e}"),
        }),
    };
    let outcome = decide(deps, claimed, result, now());
    let result_label = match &outcome {
        SendOutcome::Sent { .. } => "sent",
        SendOutcome::RetryAt { .. } => "retried",
        SendOutcome::Failed { .. } => "failed",
    };
    metrics::counter!(m::EMAILS_TOTAL, "result" => result_label).increment(1);
    (claimed.id, outcome)
}

/// Turns a send result into what the ledger records: retry transient failures with exponential
/// backoff and jitter until the retry window closes; fail permanent ones at once.
fn decide(
    deps: &Deps,
    claimed: &Claimed,
    result: Result<SendReceipt, SendError>,
    now: NaiveDateTime,
) -> SendOutcome {
    let error = match result {
        Ok(receipt) => {
            metrics::counter!(m::SMTP_REPLIES_TOTAL, "class" => "2xx").increment(1);
            let reply = match receipt {
                SendReceipt::Smtp { reply } => reply,
                SendReceipt::Outbox { path } => format!("written to {}", path.display()),
                SendReceipt::Memory { index } => format!("kept in memory at {index}"),
            };
            return SendOutcome::Sent { reply };
        }
        Err(e) => e,
    };
    metrics::counter!(m::SMTP_REPLIES_TOTAL, "class" => reply_class(error.reply())).increment(1);
    match error {
        SendError::Permanent { reply } => SendOutcome::Failed { error: reply },
        SendError::Transient { reply } => {
            let delay = retry_delay(deps.settings.email_retry_base_delay, claimed.attempts);
            let at = now + delay;
            if at > claimed.first_attempt_at + deps.settings.email_retry_window {
                SendOutcome::Failed {
                    error: format!("gave up after the retry window: {reply}"),
                }
            } else {
                SendOutcome::RetryAt { at, error: reply }
            }
        }
    }
}

/// The wait before attempt `attempts + 1`: exponential from `base`, with jitter, capped.
fn retry_delay(base: Duration, attempts: i32) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(base)
        .with_max_delay(MAX_RETRY_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1).max(0) as usize)
        .unwrap_or(MAX_RETRY_DELAY)
}

/// The reply's class for metrics: 4xx, 5xx, or `error` when no SMTP code came back.
fn reply_class(reply: &str) -> &'static str {
    match reply.as_bytes().first() {
        Some(b'4') if reply.as_bytes().get(1).is_some_and(u8::is_ascii_digit) => "4xx",
        Some(b'5') if reply.as_bytes().get(1).is_some_and(u8::is_ascii_digit) => "5xx",
        _ => "error",
    }
}

/// Every `SEND_POLL_INTERVAL`: re-enqueue imports and fail sends whose worker died, send what is
/// due (retries, missed wake-ups), refresh the pending gauge. Runs until `shutdown`.
pub async fn sweep(deps: Deps, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(deps.settings.send_poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = sweep_once(&deps, &shutdown).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "send sweep failed; will try again"
            );
        }
    }
}

async fn sweep_once(deps: &Deps, stop: &CancellationToken) -> anyhow::Result<()> {
    let lease = deps.settings.import_lease;
    for import_id in deps
        .db
        .run(move |c| Ok(imports::claim_stalled(c, lease)?))
        .await?
    {
        tracing::warn!(%import_id, "re-enqueueing a stalled import");
        deps.queue.push_import(ProcessImport { import_id }).await?;
    }
    let interrupted = deps
        .db
        .run(|c| Ok(deliveries::fail_expired_leases(c)?))
        .await?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "sends interrupted by a stopped worker were marked failed"
        );
        metrics::counter!(m::EMAILS_TOTAL, "result" => "failed").increment(interrupted as u64);
    }
    drain(deps, stop).await?;
    let pending = deps.db.run(|c| Ok(deliveries::pending_count(c)?)).await?;
    metrics::gauge!(m::EMAILS_PENDING).set(pending as f64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let base = Duration::from_secs(30);
        let first = retry_delay(base, 1);
        assert!(first >= base && first <= base * 2, "{first:?}");
        let fifth = retry_delay(base, 5);
        assert!(fifth >= base * 16, "{fifth:?}");
        assert!(retry_delay(base, 40) <= MAX_RETRY_DELAY * 2);
    }

    #[test]
    fn reply_classes_come_from_the_smtp_code() {
        assert_eq!(reply_class("451 4.3.0 try later"), "4xx");
        assert_eq!(reply_class("550 5.1.1 no such user"), "5xx");
        assert_eq!(reply_class("connection refused"), "error");
    }
}

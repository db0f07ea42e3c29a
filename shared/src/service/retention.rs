//! Retention: the stored file of a finished import (people's names and addresses) is deleted once
//! `UPLOAD_RETENTION` has passed (its counts, per-row results and results download stay), webhook
//! events (whose payloads carry members' addresses) with their delivery log once
//! `WEBHOOK_RETENTION` has, and hand-over tokens a day after they expired. Every worker's
//! housekeeping runs it, and forgets the support-email counts of past days.

use std::time::Duration;

use crate::db::Db;
use crate::service::{Result, Step as _};
use crate::store::{handovers, imports, support, webhooks};

/// Imports whose files one call deletes, in one short transaction.
const BATCH: i64 = 10;

/// Webhook events, or hand-over tokens, one call deletes, in one short transaction.
const ROWS_BATCH: i64 = 1000;

/// How long after it expired a hand-over token is kept, so that a late verification is told it
/// expired rather than that it never existed.
const EXPIRED_HANDOVERS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Deletes the stored files of up to [`BATCH`] imports that finished longer than `retention` ago,
/// oldest first, each recorded in its workspace's audit log; housekeeping calls it every tick, so
/// a backlog is worked off a batch at a time. Returns how many were deleted.
pub async fn delete_expired_uploads(db: &Db, retention: Duration) -> Result<usize> {
    let deleted = db
        .run(move |c| Ok(imports::delete_expired_uploads(c, retention, BATCH)?))
        .await
        .step("deleting uploads past their retention")?;
    if deleted > 0 {
        tracing::info!(
            deleted,
            "deleted the stored files of imports past UPLOAD_RETENTION"
        );
    }
    Ok(deleted)
}

/// Forgets the support-email counts of the days before yesterday (today's, by UTC, is the one that
/// limits; yesterday's stays for a clock a little behind).
pub async fn forget_past_daily_counts(db: &Db) -> Result<usize> {
    let before = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    db.run(move |c| Ok(support::forget_daily_counts_before(c, before)?))
        .await
        .step("forgetting past support-email counts")
}

/// Deletes up to [`ROWS_BATCH`] webhook events written longer than `retention` ago (delivered,
/// failed, or still waiting for a disabled endpoint) with their deliveries and log, and as many
/// hand-over tokens expired a day ago. Returns how many events were deleted.
pub async fn prune_webhooks_and_handovers(db: &Db, retention: Duration) -> Result<usize> {
    let now = crate::store::now();
    // A retention reaching before the calendar's start keeps everything.
    let before = chrono::TimeDelta::from_std(retention)
        .ok()
        .and_then(|kept| now.checked_sub_signed(kept));
    let events = match before {
        Some(before) => db
            .run(move |c| Ok(webhooks::prune(c, before, ROWS_BATCH)?))
            .await
            .step("deleting webhook events past their retention")?,
        None => 0,
    };
    let expired = now - EXPIRED_HANDOVERS_KEPT;
    db.run(move |c| Ok(handovers::prune(c, expired, ROWS_BATCH)?))
        .await
        .step("deleting expired hand-over tokens")?;
    if events > 0 {
        tracing::info!(events, "deleted webhook events past WEBHOOK_RETENTION");
    }
    Ok(events)
}

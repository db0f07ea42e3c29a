//! Retention of stored uploads: the file of a finished import (people's names and addresses) is
//! deleted once `UPLOAD_RETENTION` has passed; its counts, per-row results and results download
//! stay. Every worker's housekeeping runs it, and forgets the support-email counts of past days.

use std::time::Duration;

use crate::db::Db;
use crate::service::{Result, Step as _};
use crate::store::{imports, support};

/// Imports whose files one call deletes, in one short transaction.
const BATCH: i64 = 10;

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

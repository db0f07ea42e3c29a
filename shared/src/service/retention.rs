//! Retention of stored uploads: the file of a finished import (people's names and addresses) is
//! deleted once `UPLOAD_RETENTION` has passed; its counts, per-row results and results download
//! stay. Every worker's housekeeping runs it, and forgets the support-email counts of past days.

use std::time::Duration;

use crate::db::Db;
use crate::service::{Result, Step as _};
use crate::store::{imports, support};

/// Imports whose files one transaction deletes: a backlog is worked off in short transactions.
const BATCH: i64 = 10;

/// Deletes the stored file of every import that finished longer than `retention` ago, in batches
/// of [`BATCH`], each recorded in its workspace's audit log. Returns how many were deleted.
pub async fn delete_expired_uploads(db: &Db, retention: Duration) -> Result<usize> {
    let mut total = 0;
    loop {
        let deleted = db
            .run(move |c| Ok(imports::delete_expired_uploads(c, retention, BATCH)?))
            .await
            .step("deleting uploads past their retention")?;
        total += deleted;
        if deleted < BATCH as usize {
            break;
        }
    }
    if total > 0 {
        tracing::info!(
            deleted = total,
            "deleted the stored files of imports past UPLOAD_RETENTION"
        );
    }
    Ok(total)
}

/// Forgets the support-email counts of the days before yesterday (today's, by UTC, is the one that
/// limits; yesterday's stays for a clock a little behind).
pub async fn forget_past_daily_counts(db: &Db) -> Result<usize> {
    let before = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    db.run(move |c| Ok(support::forget_daily_counts_before(c, before)?))
        .await
        .step("forgetting past support-email counts")
}

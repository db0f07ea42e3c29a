//! Retention of stored uploads: the file of a finished import (people's names and addresses) is
//! deleted once `UPLOAD_RETENTION` has passed; its counts, per-row results and results download
//! stay. Every worker's housekeeping runs it.

use std::time::Duration;

use crate::db::Db;
use crate::service::{Result, Step as _};
use crate::store::imports;

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

//! One job per file: processing an import, and sending invitations.

pub mod process_import;
pub mod send_invites;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use invite_shared::metrics as m;

/// Jobs this process started and is running: what the supervisor's stall watchdog reads.
#[derive(Debug, Default)]
pub struct Activity {
    started: AtomicU64,
    running: AtomicUsize,
}

impl Activity {
    /// Jobs started since the process started.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }
}

/// Counts a job as started, and as running (and in the busy gauge) while it runs.
pub(crate) struct Busy(Arc<Activity>);

impl Busy {
    pub(crate) fn new(activity: &Arc<Activity>) -> Busy {
        activity.started.fetch_add(1, Ordering::Relaxed);
        activity.running.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(m::WORKER_BUSY).increment(1.0);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(m::WORKER_BUSY).decrement(1.0);
    }
}

//! One job per file: processing an import, and sending invitations.

pub mod process_import;
pub mod send_invites;

use invite_shared::metrics as m;

/// Counts this job in the busy gauge while it runs.
pub(crate) struct Busy;

impl Busy {
    pub(crate) fn new() -> Busy {
        metrics::gauge!(m::WORKER_BUSY).increment(1.0);
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        metrics::gauge!(m::WORKER_BUSY).decrement(1.0);
    }
}

//! `SendInvites`: a wake-up for this process's send engine ([`crate::sender`]), which claims and
//! sends every due delivery. The job itself does no sending, so the queue's shutdown or retries
//! can never cut a send short.

use apalis::prelude::{BoxDynError, Data};
use invite_shared::jobs::SendInvites;

use crate::Deps;

/// The job handler.
#[tracing::instrument(skip_all, fields(import_id = ?job.import_id))]
pub async fn handle(job: SendInvites, deps: Data<Deps>) -> Result<(), BoxDynError> {
    let _busy = crate::jobs::Busy::new(&deps.activity);
    deps.wake.notify_one();
    Ok(())
}

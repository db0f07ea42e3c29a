//! Cancel notices: how a cancelled import reaches every send engine at once, so that the emails
//! they claimed ahead of the cancel are given back as `cancelled` instead of sent
//! (docs/product.md, Imports).
//!
//! A send engine claims up to two batches ahead of its sends. Cancelling an import cancels its
//! `pending` emails in the database, but those already claimed (`sending`) sit in the engines'
//! buffers. Asking the database before each send would cost a query per email at thousands of
//! emails a second, and a timed poll alone lets a poll interval's worth of sends through. So the
//! cancel *tells* the engines, and answers only once it has:
//!
//! - on Redis, a `PUBLISH` of the import's id on `{QUEUE_PREFIX}:import-cancelled`, which every
//!   worker process subscribes to;
//! - on the embedded queue (one process), a broadcast within the process, to every queue opened
//!   on the same file.
//!
//! Each engine keeps the ids it heard of in a [`CancelledImports`] set and looks the import up
//! there right before it hands a claimed email to the mail server (a lookup in memory), so after
//! the cancel answered only the sends already handed over (at most `SMTP_POOL_SIZE` per worker)
//! still go out. Pub/sub is fire-and-forget (a subscriber reconnecting misses what was published
//! meanwhile), so every engine also reads the imports cancelled within [`LOOKBACK`] from the
//! database every [`FALLBACK_POLL`]: a missed notice costs at most that long.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::ids::ImportId;

/// How long an engine remembers a cancelled import, and how far back its fallback reads. Longer
/// than the longest wait between two attempts of a send (an hour, with jitter): an email given
/// back to `pending` at the very moment of the cancel (its outcome recorded concurrently with the
/// cancel's transaction) comes back to some engine within that wait, which then cancels it.
pub const LOOKBACK: Duration = Duration::from_secs(3 * 3600);

/// How often each engine reads the recently cancelled imports from the database, in case it
/// missed a notice.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// Most imports one engine remembers (16 bytes and a timestamp each): cancels beyond this within
/// [`LOOKBACK`] push out the oldest, so no number of cancels grows a worker's memory past ~3 MB.
pub const MAX_REMEMBERED: usize = 100_000;

/// The Redis channel of a deployment's cancel notices.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}:import-cancelled")
}

/// The imports a send engine knows to be cancelled, with when it learnt each.
#[derive(Debug, Default)]
pub struct CancelledImports {
    seen: Mutex<HashMap<ImportId, Instant>>,
}

impl CancelledImports {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ImportId, Instant>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers that `id` is cancelled (a repeat keeps the first time).
    pub fn insert(&self, id: ImportId) {
        let mut seen = self.lock();
        if seen.contains_key(&id) {
            return;
        }
        if seen.len() >= MAX_REMEMBERED {
            forget_expired(&mut seen);
        }
        if seen.len() >= MAX_REMEMBERED
            && let Some(oldest) = seen.iter().min_by_key(|(_, at)| **at).map(|(id, _)| *id)
        {
            seen.remove(&oldest);
        }
        seen.insert(id, Instant::now());
    }

    /// Whether `id` is known to be cancelled.
    pub fn contains(&self, id: ImportId) -> bool {
        self.lock().contains_key(&id)
    }

    /// Forgets the imports learnt of longer than [`LOOKBACK`] ago.
    pub fn prune(&self) {
        forget_expired(&mut self.lock());
    }

    /// How many imports are remembered.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

fn forget_expired(seen: &mut HashMap<ImportId, Instant>) {
    seen.retain(|_, at| at.elapsed() < LOOKBACK);
}

/// Notices a subscriber has not read yet before it misses some (and relies on the fallback).
const LOCAL_CAPACITY: usize = 1024;

/// The in-process channel of the embedded queue in `file`: every queue opened on the same file in
/// this process shares it (the API's and the workers' of `serve`, or of a test), and queues of
/// other files never hear it, so two embedded deployments in one process stay apart.
pub(crate) fn local_channel(file: &Path) -> broadcast::Sender<ImportId> {
    static CHANNELS: OnceLock<Mutex<HashMap<PathBuf, broadcast::Sender<ImportId>>>> =
        OnceLock::new();
    let channels = CHANNELS.get_or_init(Mutex::default);
    let mut channels = channels.lock().unwrap_or_else(PoisonError::into_inner);
    // A channel nobody listens to or sends on any more is dropped when another file is opened.
    channels.retain(|_, sender| sender.receiver_count() > 0 || sender.strong_count() > 1);
    channels
        .entry(file.to_owned())
        .or_insert_with(|| broadcast::channel(LOCAL_CAPACITY).0)
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_import_is_remembered_and_the_set_stays_bounded() {
        let set = CancelledImports::default();
        for i in 0..(MAX_REMEMBERED as i64 + 10) {
            set.insert(ImportId(i));
        }
        assert_eq!(set.len(), MAX_REMEMBERED);
        assert!(set.contains(ImportId(MAX_REMEMBERED as i64 + 9)));
        assert!(!set.contains(ImportId(-1)));
    }
}

//! This process's registration and heartbeat (see `invite_shared::store::workers`).
//!
//! The process registers before it claims anything and writes its heartbeat every
//! `WORKER_HEARTBEAT_INTERVAL`. Others count it dead once its heartbeat is older than
//! `WORKER_DEAD_AFTER`, and hand its claims over. So the process trusts its own registration only
//! while its last heartbeat is younger than that, less one interval of margin: past it (the
//! database was unreachable, or the process was paused), it claims nothing and hands nothing more
//! to the mail server, giving back (fenced by each claim) what it still holds. A heartbeat that
//! finds its row gone means it was declared dead: it registers anew and goes on.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use invite_shared::db::Db;
use invite_shared::ids::WorkerId;
use invite_shared::store::workers::{self, HandedBack};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Deps;
use crate::runtime::{OutageLog, backoff};

/// The registration this process trusts: its id, and when its last heartbeat was started.
#[derive(Debug, Clone, Copy)]
struct Beat {
    id: WorkerId,
    at: Instant,
}

/// This process's registration as the rest of the process sees it.
#[derive(Debug)]
pub struct Liveness {
    beat: Mutex<Option<Beat>>,
    /// Tells waiters that the registration changed.
    changed: watch::Sender<()>,
    /// How long after its last heartbeat the registration is trusted.
    trusted_for: Duration,
}

impl Liveness {
    /// Not registered yet, trusting a heartbeat for `WORKER_DEAD_AFTER` less one interval.
    pub fn new(dead_after: Duration, interval: Duration) -> Liveness {
        Liveness {
            beat: Mutex::new(None),
            changed: watch::Sender::new(()),
            trusted_for: dead_after.saturating_sub(interval),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Beat>> {
        self.beat.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The registration in force, if this process may trust it now.
    pub fn current(&self) -> Option<WorkerId> {
        self.lock()
            .filter(|beat| beat.at.elapsed() < self.trusted_for)
            .map(|beat| beat.id)
    }

    /// Whether work claimed under `id` may still be handed to the mail server.
    pub fn holds(&self, id: Option<WorkerId>) -> bool {
        id.is_some() && self.current() == id
    }

    /// Waits until the registration is trusted (its id), or `None` on `stop`.
    pub async fn wait(&self, stop: &CancellationToken) -> Option<WorkerId> {
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(id) = self.current() {
                return Some(id);
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => return None,
                _ = changed.changed() => {}
            }
        }
    }

    fn set(&self, beat: Option<Beat>) {
        *self.lock() = beat;
        self.changed.send_replace(());
    }

    fn id(&self) -> Option<WorkerId> {
        self.lock().map(|beat| beat.id)
    }
}

/// The name a process registers under: its host and process id.
fn process_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!("{host}-{}", std::process::id())
}

/// Registers this process and writes its heartbeat every `WORKER_HEARTBEAT_INTERVAL` until `stop`,
/// registering anew whenever it finds itself declared dead; then removes its row.
pub async fn run(deps: Deps, stop: CancellationToken) {
    let interval = deps.settings.worker_heartbeat_interval;
    let log = OutageLog::default();
    let mut failures = 0;
    loop {
        let started = Instant::now();
        match beat(&deps).await {
            Ok(beat) => {
                log.succeeded("writing the heartbeat");
                failures = 0;
                deps.liveness.set(Some(beat));
            }
            Err(e) => {
                log.failed("writing the heartbeat", &e);
                failures += 1;
            }
        }
        let wait = if failures == 0 {
            interval
        } else {
            backoff(failures).min(interval)
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(started + wait) => {}
        }
    }
    if let Some(id) = deps.liveness.id() {
        deps.liveness.set(None);
        if let Err(e) = deps.db.run(move |c| Ok(workers::deregister(c, id)?)).await {
            tracing::debug!(
                error = format!("{e:#}"),
                "could not remove this worker's row"
            );
        }
    }
}

/// One heartbeat: of the registration in force, or a new registration when there is none or it
/// was declared dead.
async fn beat(deps: &Deps) -> anyhow::Result<Beat> {
    let at = Instant::now();
    if let Some(id) = deps.liveness.id() {
        if deps.db.run(move |c| Ok(workers::heartbeat(c, id)?)).await? {
            return Ok(Beat { id, at });
        }
        tracing::warn!(
            "this worker was declared dead (no heartbeat for WORKER_DEAD_AFTER); its claims were \
             handed over, and it registers anew"
        );
        deps.liveness.set(None);
    }
    let name = process_name();
    let id = deps
        .db
        .run(move |c| Ok(workers::register(c, &name)?))
        .await?;
    tracing::info!(worker_id = %id, "registered this worker");
    Ok(Beat { id, at })
}

/// Hands back at once every claim still held, and forgets every registered process: for a process
/// that is the only one claiming work (`serve` on the embedded stack, at start-up), so whatever is
/// still claimed was left by an earlier instance that stopped.
pub async fn hand_back_earlier_claims(db: &Db) -> anyhow::Result<()> {
    let handed = db.run(|c| Ok(workers::hand_back_all(c)?)).await?;
    if handed != HandedBack::default() {
        tracing::warn!(
            deliveries = handed.deliveries,
            imports = handed.imports,
            "claims of an earlier instance handed back: its emails are sent again, its imports resume"
        );
    }
    Ok(())
}

//! The send engine: one per worker process, a pipeline rather than a batch barrier.
//!
//! - **Claim** ([`Engine::claim_loop`]): claims `SEND_BATCH_SIZE` due deliveries (a fair share
//!   of every import with due sends) whenever that much room is free in a buffer of two batches,
//!   so the next batch is claimed while the last one is still being sent; sleeps when nothing is
//!   due until woken (a `SendInvites` job, an import's chunk, housekeeping) or until the earliest
//!   retry it scheduled.
//! - **Send** ([`Engine::dispatch_loop`], [`Engine::send`]): up to `SMTP_POOL_SIZE` sends at
//!   once, each after the shared rate limit and any outage pause.
//! - **Record** ([`Engine::record_loop`]): each outcome as it finishes, group-committed (whatever
//!   finished meanwhile, in one statement and transaction), fenced by the claim that sent it.
//! - **Renew** ([`Engine::renew_loop`]): the leases of everything held, every third of a lease.
//!
//! Everything is claimed under this process's registration ([`crate::liveness`]): while it cannot
//! trust it (its heartbeat is too old, or it was declared dead and registered anew), it claims
//! nothing, and every claimed delivery it reaches is given back instead of handed to the mail
//! server, fenced by its claim, since another worker may be sending it already.
//!
//! A cancelled import's claimed emails are given back as `cancelled` instead of sent: every
//! engine hears of a cancel at once ([`cancels`], [`invite_shared::cancels`]) and looks the
//! import up in memory right before each hand-over, so once a cancel has answered only the sends
//! already handed to the mail server (at most `SMTP_POOL_SIZE`) go out.
//!
//! A send's slot is freed only once its outcome is committed, so sends in flight *or unrecorded*
//! never exceed `SMTP_POOL_SIZE`: that bounds what a crash can repeat. A graceful shutdown stops
//! claiming, puts every claimed delivery not yet handed to the transport back to `pending`, lets
//! sends in flight finish within `SMTP_TIMEOUT`, and records everything before it returns.

mod cancels;
pub(crate) mod decide;
mod limiter;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{TimeZone as _, Utc};
use invite_shared::email::{InvitationEmail, SendError, build_message};
use invite_shared::ids::WorkerId;
use invite_shared::metrics as m;
use invite_shared::store::deliveries::{
    self, ClaimMemory, ClaimRequest, ClaimToken, Claimed, Recorded, SendOutcome,
};
use invite_shared::store::now;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

pub use decide::retry_delay;
pub use limiter::Limiter;

use crate::Deps;
use crate::runtime::{OutageLog, backoff};

/// Longest pause of all sending while the mail server stays unavailable.
const MAX_PAUSE: Duration = Duration::from_secs(60);
/// Most outcomes written by one group commit.
const MAX_GROUP: usize = 1000;

/// Runs the send engine until `stop` is cancelled, then shuts it down gracefully.
pub async fn run(deps: Deps, stop: CancellationToken) -> anyhow::Result<()> {
    let engine = Arc::new(Engine::new(deps));
    let (jobs_tx, jobs_rx) = unbounded_channel();
    let (done_tx, done_rx) = unbounded_channel();
    let give_up = CancellationToken::new();
    let recorder = tokio::spawn(engine.clone().record_loop(done_rx, give_up.clone()));
    let renewer = tokio::spawn(engine.clone().renew_loop(give_up.clone()));
    let dispatcher = tokio::spawn(engine.clone().dispatch_loop(jobs_rx, done_tx, stop.clone()));
    let heard = CancellationToken::new();
    let listener = tokio::spawn(cancels::run(engine.deps.clone(), heard.clone()));
    engine.claim_loop(jobs_tx, &stop).await;
    dispatcher.await?;
    heard.cancel();
    listener.await?;
    // Everything is decided now; a database that stays down for another send deadline makes the
    // rest wait for their leases to lapse, when any worker sends them again.
    let deadline = engine.deps.settings.smtp_timeout;
    let timer = give_up.clone();
    tokio::spawn(async move {
        tokio::time::sleep(deadline).await;
        timer.cancel();
    });
    recorder.await?;
    give_up.cancel();
    renewer.await?;
    Ok(())
}

/// A claimed delivery on its way to a sender, holding its place in the buffer.
struct Job {
    claimed: Claimed,
    /// The registration it was claimed under.
    worker: WorkerId,
    held: OwnedSemaphorePermit,
}

/// A decided send on its way to the ledger, still holding its places until it is recorded.
struct Done {
    recorded: Recorded,
    _held: OwnedSemaphorePermit,
    _slot: Option<OwnedSemaphorePermit>,
}

/// The engine's shared state.
struct Engine {
    deps: Deps,
    limiter: Limiter,
    /// Deliveries held (claimed, not yet recorded): `SMTP_POOL_SIZE + 2 × SEND_BATCH_SIZE`. With
    /// room for one batch only, the senders ran dry during every claim.
    held: Arc<Semaphore>,
    /// Sends handed over and not yet recorded: `SMTP_POOL_SIZE`. lettre's pool bounds only its
    /// idle connections, so this also bounds the connections open.
    slots: Arc<Semaphore>,
    /// The claims with deliveries still held, and how many each: what the renewer renews.
    claims: Mutex<HashMap<ClaimToken, usize>>,
    /// What the claimer's claims remember between calls; only the claimer uses it.
    claim_memory: Arc<Mutex<ClaimMemory>>,
    /// The earliest retry this engine scheduled, when the claimer should look again.
    next_retry: Mutex<Option<Instant>>,
    pause: Pause,
    db_log: OutageLog,
    limit_log: OutageLog,
}

impl Engine {
    fn new(deps: Deps) -> Engine {
        let settings = &deps.settings;
        let pool = settings.smtp_pool_size.max(1) as usize;
        Engine {
            limiter: Limiter::new(settings, &deps.queue),
            held: Arc::new(Semaphore::new(pool + 2 * settings.send_batch_size)),
            slots: Arc::new(Semaphore::new(pool)),
            claims: Mutex::new(HashMap::new()),
            claim_memory: Arc::default(),
            next_retry: Mutex::new(None),
            pause: Pause::new(settings.smtp_outage_backoff),
            db_log: OutageLog::default(),
            limit_log: OutageLog::default(),
            deps,
        }
    }

    /// Claims whenever a batch's worth of room is free and the server is available, until `stop`.
    async fn claim_loop(&self, jobs: UnboundedSender<Job>, stop: &CancellationToken) {
        let batch = self.deps.settings.send_batch_size as u32;
        let mut failures = 0u32;
        loop {
            let room = tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                room = self.held.clone().acquire_many_owned(batch) => {
                    room.expect("the buffer semaphore is never closed")
                }
            };
            if !self.pause.wait_open(stop).await {
                return;
            }
            let Some(worker) = self.deps.liveness.wait(stop).await else {
                return;
            };
            let claimed = self.claim(batch, worker).await;
            self.log_db(&claimed, "claiming sends");
            match claimed {
                Ok(claimed) if claimed.is_empty() => {
                    failures = 0;
                    drop(room);
                    if !self.idle(stop).await {
                        return;
                    }
                }
                Ok(claimed) => {
                    failures = 0;
                    self.hand_out(claimed, worker, room, &jobs);
                }
                Err(_) => {
                    drop(room);
                    failures += 1;
                    if !sleep_or_stop(backoff(failures), stop).await {
                        return;
                    }
                }
            }
        }
    }

    async fn claim(&self, batch: u32, worker: WorkerId) -> anyhow::Result<Vec<Claimed>> {
        let request = ClaimRequest {
            limit: i64::from(batch),
            lease: self.deps.settings.email_lease,
            ttl: self.deps.settings.invite_ttl,
            worker: Some(worker),
        };
        let memory = self.claim_memory.clone();
        self.deps
            .db
            .run(move |c| {
                let mut memory = memory.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(deliveries::claim_due(c, request, &mut memory)?)
            })
            .await
    }

    /// Queues the claimed deliveries for the senders, one place in the buffer each.
    fn hand_out(
        &self,
        claimed: Vec<Claimed>,
        worker: WorkerId,
        mut room: OwnedSemaphorePermit,
        jobs: &UnboundedSender<Job>,
    ) {
        if let Some(first) = claimed.first() {
            self.lock_claims().insert(first.claim, claimed.len());
        }
        for claimed in claimed {
            let held = room
                .split(1)
                .expect("a place was reserved for each claimed delivery");
            // The dispatcher outlives this loop, so the channel is open.
            let _ = jobs.send(Job {
                claimed,
                worker,
                held,
            });
        }
    }

    /// Waits until woken, until the earliest retry this engine scheduled, or `stop`; false on stop.
    async fn idle(&self, stop: &CancellationToken) -> bool {
        let retry = *self
            .next_retry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = async {
            match retry {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => false,
            _ = self.deps.wake.notified() => true,
            _ = due => {
                let mut next = self.next_retry.lock().unwrap_or_else(PoisonError::into_inner);
                if next.is_some_and(|at| at <= Instant::now()) {
                    *next = None;
                }
                true
            }
        }
    }

    /// Starts a send for each job as a slot frees up; on `stop`, releases what is still queued
    /// and gives the sends in flight until `SMTP_TIMEOUT` to finish.
    async fn dispatch_loop(
        self: Arc<Self>,
        mut jobs: UnboundedReceiver<Job>,
        done: UnboundedSender<Done>,
        stop: CancellationToken,
    ) {
        let mut sends = JoinSet::new();
        let cut_off = CancellationToken::new();
        loop {
            let job = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => break,
                },
            };
            let slot = tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    self.release(job, &done);
                    break;
                }
                slot = self.slots.clone().acquire_owned() => {
                    slot.expect("the send semaphore is never closed")
                }
            };
            let span = tracing::info_span!("send", delivery_id = %job.claimed.id);
            let send = self
                .clone()
                .send(job, slot, done.clone(), stop.clone(), cut_off.clone());
            sends.spawn(send.instrument(span));
            while let Some(finished) = sends.try_join_next() {
                log_panic(finished);
            }
        }
        // Stopping: nothing still queued was handed to the transport. The claimer drops its end
        // of the channel once it has seen `stop`, which ends this loop.
        while let Some(job) = jobs.recv().await {
            self.release(job, &done);
        }
        let in_flight = async {
            while let Some(finished) = sends.join_next().await {
                log_panic(finished);
            }
        };
        if tokio::time::timeout(self.deps.settings.smtp_timeout, in_flight)
            .await
            .is_err()
        {
            tracing::warn!(
                "sends still in flight at the shutdown deadline; they will be sent again"
            );
            cut_off.cancel();
            while let Some(finished) = sends.join_next().await {
                log_panic(finished);
            }
        }
    }

    /// One send: wait for the server and the rate limit, hand the message over, decide.
    async fn send(
        self: Arc<Self>,
        job: Job,
        slot: OwnedSemaphorePermit,
        done: UnboundedSender<Done>,
        stop: CancellationToken,
        cut_off: CancellationToken,
    ) {
        let Job {
            claimed,
            worker,
            held,
        } = job;
        // A cancelled import's email waits for no rate slot.
        let ready = !self.is_cancelled(&claimed)
            && tokio::select! {
                biased;
                _ = stop.cancelled() => false,
                ready = self.ready(&stop) => ready,
            };
        // Checked last before the hand-over (both in memory): past it, the send is in flight.
        let ours = ready && self.deps.liveness.holds(Some(worker));
        if ready && !ours {
            tracing::debug!("gave back a claimed send: this worker's registration lapsed");
        }
        let outcome = if !ours || self.is_cancelled(&claimed) {
            self.give_back(&claimed)
        } else {
            tokio::select! {
                biased;
                _ = cut_off.cancelled() => SendOutcome::RetryAt {
                    at: now(),
                    error: "interrupted by a shutdown; the email may have gone out".into(),
                },
                result = self.transmit(&claimed) => self.decide(&claimed, result),
            }
        };
        let recorded = Recorded {
            id: claimed.id,
            claim: claimed.claim,
            outcome,
        };
        // The recorder outlives every send, so the channel is open.
        let _ = done.send(Done {
            recorded,
            _held: held,
            _slot: Some(slot),
        });
    }

    /// Waits out an outage pause and the rate limit; false when `stop` came first.
    async fn ready(&self, stop: &CancellationToken) -> bool {
        if !self.pause.wait_open(stop).await {
            return false;
        }
        let mut failures = 0;
        let wait = loop {
            let reserved = self.limiter.reserve().await;
            match &reserved {
                Ok(_) => self
                    .limit_log
                    .succeeded("reserving a send slot of the rate limit"),
                Err(e) => self
                    .limit_log
                    .failed("reserving a send slot of the rate limit", e),
            }
            match reserved {
                Ok(wait) => break wait,
                Err(_) => {
                    failures += 1;
                    if !sleep_or_stop(backoff(failures), stop).await {
                        return false;
                    }
                }
            }
        };
        sleep_or_stop(wait, stop).await
    }

    async fn transmit(
        &self,
        claimed: &Claimed,
    ) -> Result<invite_shared::email::SendReceipt, SendError> {
        let email = InvitationEmail {
            kind: claimed.kind,
            workspace: claimed.workspace.clone(),
            inviter: claimed.inviter.clone(),
            first_name: claimed.first_name.clone(),
            to: claimed.to.clone(),
            link: self.deps.settings.invitation_url(&claimed.token),
            expires_at: Utc.from_utc_datetime(&claimed.expires_at),
        };
        // One HMAC per email: its own return path, so a report of it names it.
        let return_path = self
            .deps
            .return_paths
            .as_ref()
            .map(|p| p.address(claimed.id));
        let message = build_message(
            &self.deps.from,
            &email,
            &claimed.message_id,
            return_path.as_deref(),
        )
        .map_err(|e| SendError::Permanent {
            reply: format!("the message could not be built: {e}"),
        })?;
        let started = std::time::Instant::now();
        let result = self.deps.mailer.send(claimed.id, &message).await;
        metrics::histogram!(m::EMAIL_SEND_DURATION).record(started.elapsed().as_secs_f64());
        result
    }

    fn decide(
        &self,
        claimed: &Claimed,
        result: Result<invite_shared::email::SendReceipt, SendError>,
    ) -> SendOutcome {
        match &result {
            Ok(_) => self.pause.reset(),
            Err(SendError::Unavailable { .. }) => self.pause.trip(),
            Err(_) => {}
        }
        match decide::decide(&self.deps.settings, claimed, result, now()) {
            // An email that would go back to `pending` for a later attempt of an import cancelled
            // meanwhile is cancelled: the cancel already cancelled every other unsent one.
            SendOutcome::RetryAt { .. } | SendOutcome::Released { .. }
                if self.is_cancelled(claimed) =>
            {
                SendOutcome::Cancelled
            }
            outcome => outcome,
        }
    }

    /// Whether the claimed email's import is known to be cancelled (a lookup in memory).
    fn is_cancelled(&self, claimed: &Claimed) -> bool {
        claimed
            .import_id
            .is_some_and(|import| self.deps.cancelled.contains(import))
    }

    /// What a claimed email that was never handed to the transport becomes: `cancelled` when its
    /// import is, else `pending` again. Either is fenced by its claim when recorded.
    fn give_back(&self, claimed: &Claimed) -> SendOutcome {
        if self.is_cancelled(claimed) {
            SendOutcome::Cancelled
        } else {
            SendOutcome::Released {
                at: now(),
                error: None,
            }
        }
    }

    /// Writes outcomes as they arrive, each write taking everything that finished meanwhile.
    async fn record_loop(
        self: Arc<Self>,
        mut done: UnboundedReceiver<Done>,
        give_up: CancellationToken,
    ) {
        while let Some(first) = done.recv().await {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match done.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            self.commit(group, &give_up).await;
        }
    }

    /// Records one group, retrying while the database is unreachable (until `give_up`), then
    /// frees the group's places.
    async fn commit(&self, group: Vec<Done>, give_up: &CancellationToken) {
        let outcomes: Arc<Vec<Recorded>> =
            Arc::new(group.iter().map(|d| d.recorded.clone()).collect());
        let mut failures = 0;
        let started = std::time::Instant::now();
        loop {
            let batch = outcomes.clone();
            let written = self
                .deps
                .db
                .run(move |c| Ok(deliveries::record(c, &batch)?))
                .await;
            self.log_db(&written, "recording sends");
            match written {
                Ok(written) => {
                    if written.fenced_out > 0 {
                        tracing::warn!(
                            fenced_out = written.fenced_out,
                            "outcomes not recorded: their deliveries were handed back (a lapsed lease, or this worker declared dead)"
                        );
                    }
                    break;
                }
                Err(_) => {
                    failures += 1;
                    if !sleep_or_stop(backoff(failures), give_up).await {
                        tracing::error!(
                            unrecorded = outcomes.len(),
                            "gave up recording sends; they are sent again when their leases lapse"
                        );
                        break;
                    }
                }
            }
        }
        metrics::histogram!(m::EMAIL_RECORD_DURATION).record(started.elapsed().as_secs_f64());
        self.forget(&outcomes);
        drop(group);
    }

    /// Updates what is held after a group was recorded, and notes the earliest retry.
    fn forget(&self, outcomes: &[Recorded]) {
        let mut claims = self.lock_claims();
        for recorded in outcomes {
            if let Some(left) = claims.get_mut(&recorded.claim) {
                *left -= 1;
                if *left == 0 {
                    claims.remove(&recorded.claim);
                }
            }
        }
        drop(claims);
        let earliest = outcomes
            .iter()
            .filter_map(|r| match &r.outcome {
                SendOutcome::RetryAt { at, .. } => Some(*at),
                _ => None,
            })
            .min();
        if let Some(at) = earliest {
            let wait = (at - now()).to_std().unwrap_or_default();
            let at = Instant::now() + wait;
            let mut next = self
                .next_retry
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *next = Some(next.map_or(at, |n| n.min(at)));
            drop(next);
            // The claimer may be idle with a later (or no) deadline: let it look again.
            self.deps.wake.notify_one();
        }
    }

    /// Renews the leases of everything held, every third of a lease, until `give_up`.
    async fn renew_loop(self: Arc<Self>, give_up: CancellationToken) {
        let lease = self.deps.settings.email_lease;
        let mut tick = tokio::time::interval(lease / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = give_up.cancelled() => return,
                _ = tick.tick() => {}
            }
            let claims: Vec<ClaimToken> = self.lock_claims().keys().copied().collect();
            if claims.is_empty() {
                continue;
            }
            let renewed = self
                .deps
                .db
                .run(move |c| Ok(deliveries::renew(c, &claims, lease)?))
                .await;
            self.log_db(&renewed, "renewing send leases");
        }
    }

    /// Logs a database operation's failure once per outage (whichever operation meets it first).
    fn log_db<T>(&self, result: &anyhow::Result<T>, what: &str) {
        match result {
            Ok(_) => self.db_log.succeeded("the send engine's database work"),
            Err(e) => self.db_log.failed(what, e),
        }
    }

    /// Gives a delivery that was never handed to the transport back ([`Engine::give_back`]).
    fn release(&self, job: Job, done: &UnboundedSender<Done>) {
        let recorded = Recorded {
            id: job.claimed.id,
            claim: job.claimed.claim,
            outcome: self.give_back(&job.claimed),
        };
        let _ = done.send(Done {
            recorded,
            _held: job.held,
            _slot: None,
        });
    }

    fn lock_claims(&self) -> std::sync::MutexGuard<'_, HashMap<ClaimToken, usize>> {
        self.claims.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn log_panic(finished: Result<(), tokio::task::JoinError>) {
    if let Err(e) = finished
        && e.is_panic()
    {
        tracing::error!(error = %e, "a send task panicked; its delivery is sent again when its lease lapses");
    }
}

/// Sleeps `wait` unless `stop` comes first; false on stop.
async fn sleep_or_stop(wait: Duration, stop: &CancellationToken) -> bool {
    // tokio's timer rounds every deadline up to its next 1 ms tick, so even a zero sleep would
    // cost each send about a millisecond.
    if wait.is_zero() {
        return !stop.is_cancelled();
    }
    tokio::select! {
        biased;
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

/// All sending of this process pauses while the mail server is unavailable: the pause starts at
/// `SMTP_OUTAGE_BACKOFF` and doubles (up to [`MAX_PAUSE`]) each time the server is found still
/// unavailable; the first accepted message ends it.
struct Pause {
    base: Duration,
    state: Mutex<PauseState>,
}

struct PauseState {
    until: Option<Instant>,
    next: Duration,
}

impl Pause {
    fn new(base: Duration) -> Pause {
        Pause {
            base,
            state: Mutex::new(PauseState {
                until: None,
                next: base,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PauseState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The server is unavailable: pause, unless a pause is already running.
    fn trip(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        if state.until.is_some_and(|until| until > now) {
            return;
        }
        state.until = Some(now + state.next);
        tracing::warn!(
            pause_ms = state.next.as_millis() as u64,
            "the mail server is unavailable; pausing all sends"
        );
        metrics::counter!(m::SMTP_PAUSES_TOTAL).increment(1);
        state.next = (state.next * 2).min(MAX_PAUSE);
    }

    /// The server accepted a message: no pause, and the next one starts short again.
    fn reset(&self) {
        let mut state = self.lock();
        if state.next != self.base {
            tracing::info!("the mail server is available again; sending resumes");
        }
        state.until = None;
        state.next = self.base;
    }

    /// Waits until no pause runs; false when `stop` came first.
    async fn wait_open(&self, stop: &CancellationToken) -> bool {
        loop {
            let until = self.lock().until;
            match until {
                Some(until) if until > Instant::now() => {
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => return false,
                        _ = tokio::time::sleep_until(until) => {}
                    }
                }
                _ => return !stop.is_cancelled(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_outage_pause_doubles_while_the_server_stays_down_and_ends_on_success() {
        let pause = Pause::new(Duration::from_secs(1));
        let stop = CancellationToken::new();

        pause.trip();
        pause.trip(); // a second failure of the same outage does not lengthen the pause
        let started = Instant::now();
        assert!(pause.wait_open(&stop).await);
        assert_eq!(started.elapsed(), Duration::from_secs(1));

        pause.trip();
        let started = Instant::now();
        assert!(pause.wait_open(&stop).await);
        assert_eq!(started.elapsed(), Duration::from_secs(2));

        pause.reset();
        pause.trip();
        let started = Instant::now();
        assert!(pause.wait_open(&stop).await);
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}

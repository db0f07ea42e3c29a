//! `EMAIL_RATE_PER_SEC`: one send rate shared by every worker.
//!
//! A reservation limiter (GCRA without burst): each send reserves the next free slot on a shared
//! timeline and waits for it, so sends are spaced evenly rather than let through in bursts. The
//! timeline lives in Redis when the queue does (one limit for every worker on every machine, on
//! Redis's clock) and in the process on the embedded stack. Slots are spaced 10% wider than
//! `1 / rate`: `rate` + 1 sends span 1.1 s of reservations, so unless the time from reservation to
//! the server's acceptance varies by more than 100 ms between them, no one-second window at the
//! server sees more than `rate` emails. (5% was not enough: two workers on a loaded 2-core CI
//! machine once put 51 emails in one second at a cap of 50.)

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use apalis_redis::ConnectionManager;
use invite_shared::config::Settings;
use invite_shared::queue::{JobQueue, queue_name};
use tokio::time::Instant;

/// How much wider than `1 / rate` the slots are: room for 100 ms of jitter in any second.
const GUARD: f64 = 1.10;

/// Reserves the slot after the later of now and the timeline's next free slot, moves the timeline
/// on by one interval, and answers how many microseconds the caller waits. Redis's own clock is
/// used, so workers whose clocks differ still share one timeline.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local ttl = math.ceil((slot + interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', slot + interval), 'PX', ttl)
return slot - now
";

/// Time between two sends at `rate` per second, with the guard.
fn slot_interval(rate: u32) -> Duration {
    Duration::from_secs_f64(GUARD / f64::from(rate))
}

/// The send-rate limiter of one worker process.
pub enum Limiter {
    /// No cap.
    Unlimited,
    /// One process: the next free slot in memory.
    Local {
        /// Time between two sends.
        interval: Duration,
        /// The next free slot.
        next: Mutex<Instant>,
    },
    /// Every worker on one Redis.
    Redis {
        /// Time between two sends, in microseconds.
        interval_us: u64,
        /// The key holding the timeline's next free slot.
        key: String,
        /// The queue's connection.
        conn: ConnectionManager,
        /// [`RESERVE`].
        script: redis::Script,
    },
}

impl Limiter {
    /// The limiter the settings ask for, on the queue's Redis when there is one.
    pub fn new(settings: &Settings, queue: &JobQueue) -> Limiter {
        let Some(rate) = settings.email_rate_per_sec else {
            return Limiter::Unlimited;
        };
        let interval = slot_interval(rate);
        match queue {
            JobQueue::Redis(_, conn) => Limiter::Redis {
                interval_us: interval.as_micros() as u64,
                key: queue_name(&settings.queue_prefix, "email-rate"),
                conn: conn.clone(),
                script: redis::Script::new(RESERVE),
            },
            JobQueue::Sqlite(_) => Limiter::Local {
                interval,
                next: Mutex::new(Instant::now()),
            },
        }
    }

    /// Reserves the next send slot and returns how long to wait for it.
    pub async fn reserve(&self) -> anyhow::Result<Duration> {
        match self {
            Limiter::Unlimited => Ok(Duration::ZERO),
            Limiter::Local { interval, next } => {
                let mut next = next
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = Instant::now();
                let slot = (*next).max(now);
                *next = slot + *interval;
                Ok(slot - now)
            }
            Limiter::Redis {
                interval_us,
                key,
                conn,
                script,
            } => {
                let wait_us: u64 = script
                    .key(key)
                    .arg(*interval_us)
                    .invoke_async(&mut conn.clone())
                    .await
                    .context("reserving a send slot in Redis")?;
                Ok(Duration::from_micros(wait_us))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_slots_are_spaced_by_the_interval_with_no_burst() {
        let limiter = Limiter::Local {
            interval: Duration::from_millis(20),
            next: Mutex::new(Instant::now()),
        };

        let mut waits = Vec::new();
        for _ in 0..5 {
            waits.push(limiter.reserve().await.unwrap());
        }

        // Reservations made at (almost) the same instant wait 0, 20, 40, 60 and 80 ms.
        for (i, pair) in waits.windows(2).enumerate() {
            let gap = pair[1].saturating_sub(pair[0]);
            assert!(
                gap >= Duration::from_millis(19) && gap <= Duration::from_millis(21),
                "gap {i}: {gap:?} in {waits:?}"
            );
        }
    }

    #[test]
    fn slots_are_ten_percent_wider_than_the_rate_asks() {
        assert_eq!(slot_interval(50), Duration::from_millis(22));
        assert_eq!(slot_interval(1), Duration::from_millis(1100));
    }
}

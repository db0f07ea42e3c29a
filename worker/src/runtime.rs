//! Process plumbing shared by both binaries: logging, the metrics recorder, shutdown signals,
//! and riding out outages of the services they depend on.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::queue::JobQueue;

use invite_shared::metrics as m;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Logs to stderr, filtered by `RUST_LOG` (else `default`): one JSON object per line with
/// `LOG_FORMAT=json` (for log shippers), else human lines, coloured only on a terminal.
pub fn init_tracing(default: &str) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        logs.json().try_init()
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).try_init()
    };
}

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets =
                |name: &str, buckets: &[f64]| (Matcher::Full(name.to_owned()), buckets.to_vec());
            let handle = [
                buckets(m::EMAIL_SEND_DURATION, m::SEND_BUCKETS),
                buckets(m::EMAIL_RECORD_DURATION, m::RECORD_BUCKETS),
                buckets(m::IMPORT_DURATION, m::IMPORT_BUCKETS),
                buckets(m::HTTP_REQUEST_DURATION, m::HTTP_BUCKETS),
                buckets(m::UPLOAD_BYTES, m::UPLOAD_BUCKETS),
                buckets(m::WEBHOOK_LATENCY, m::WEBHOOK_BUCKETS),
            ]
            .into_iter()
            .try_fold(PrometheusBuilder::new(), |builder, (matcher, buckets)| {
                builder.set_buckets_for_metric(matcher, &buckets)
            })
            .expect("bucket lists are not empty")
            .install_recorder()
            .expect("a metrics recorder was installed twice");
            invite_shared::metrics::describe();
            let upkeep = handle.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
            handle
        })
        .clone()
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutting down: finishing jobs in hand");
        cancel.cancel();
    });
    token
}

/// Logs the failures of one kind of work once per outage: a warning when they start, a line when
/// the work succeeds again, and only debug lines in between.
#[derive(Debug, Default)]
pub struct OutageLog(std::sync::atomic::AtomicBool);

impl OutageLog {
    /// `what` failed with `error`.
    pub fn failed(&self, what: &str, error: &anyhow::Error) {
        if self.0.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::debug!(error = format!("{error:#}"), "{what} still failing");
        } else {
            tracing::warn!(
                error = format!("{error:#}"),
                "{what} failed; retrying with backoff"
            );
        }
    }

    /// `what` succeeded.
    pub fn succeeded(&self, what: &str) {
        if self.0.swap(false, std::sync::atomic::Ordering::Relaxed) {
            tracing::info!("{what} works again");
        }
    }
}

/// Runs `work` every `interval` until `stop`, logging its failures once per outage as `what`.
pub async fn every<F, Fut>(interval: Duration, stop: &CancellationToken, what: &str, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let log = OutageLog::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match work().await {
            Ok(()) => log.succeeded(what),
            Err(e) => log.failed(what, &e),
        }
    }
}

/// Longest wait between two tries of an unavailable service.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// 100 ms, doubling per failure, at most five seconds.
pub fn backoff(failures: u32) -> Duration {
    (Duration::from_millis(100) * 2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(MAX_BACKOFF)
}

/// Tries `attempt` with capped exponential backoff until it succeeds (its value) or `stop` is
/// cancelled (`None`), logging once when the outage starts and once when it ends. Fails only when
/// `OUTAGE_LIMIT` is set and the outage lasted longer: the process should then exit non-zero for
/// its supervisor to restart it.
pub async fn wait_until_available<T, F, Fut>(
    what: &str,
    settings: &Settings,
    stop: &CancellationToken,
    attempt: F,
) -> anyhow::Result<Option<T>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let started = Instant::now();
    let mut failures = 0;
    loop {
        match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    tracing::info!(
                        outage_ms = started.elapsed().as_millis() as u64,
                        "{what} is available again"
                    );
                }
                return Ok(Some(value));
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "{what} is unavailable; retrying with backoff"
                    );
                }
                if let Some(limit) = settings.outage_limit
                    && started.elapsed() >= limit
                {
                    anyhow::bail!(
                        "{what} was unavailable for longer than OUTAGE_LIMIT ({limit:?}): {e:#}"
                    );
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(None),
            _ = tokio::time::sleep(backoff(failures)) => {}
        }
    }
}

/// The database (reachable and migrated) and the queue, waiting out outages at start-up;
/// `None` when `stop` came first.
pub async fn connect_dependencies(
    settings: &Settings,
    stop: &CancellationToken,
) -> anyhow::Result<Option<(Db, JobQueue)>> {
    let db = Db::for_settings(settings)?;
    if wait_until_available("the database", settings, stop, || db.ping())
        .await?
        .is_none()
    {
        return Ok(None);
    }
    db.migrate().await?;
    let queue =
        wait_until_available("the queue", settings, stop, || JobQueue::connect(settings)).await?;
    Ok(queue.map(|queue| (db, queue)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_longer_than_the_limit_is_an_error_and_a_short_one_is_not() {
        let settings = Settings {
            outage_limit: Some(Duration::from_secs(3)),
            ..Settings::default()
        };
        let stop = CancellationToken::new();
        let tries = std::sync::atomic::AtomicU32::new(0);

        let short = wait_until_available("x", &settings, &stop, || {
            let n = tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                anyhow::ensure!(n >= 3, "down");
                Ok(())
            }
        })
        .await;
        let long: anyhow::Result<Option<()>> =
            wait_until_available("x", &settings, &stop, || async { anyhow::bail!("down") }).await;

        assert_eq!(short.unwrap(), Some(()));
        let error = long.unwrap_err().to_string();
        assert!(error.contains("OUTAGE_LIMIT (3s)"), "{error}");
    }
}

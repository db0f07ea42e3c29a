//! Keeps the send engine's set of cancelled imports ([`invite_shared::cancels`]): each notice as
//! it comes, and the imports the database says were cancelled lately, every
//! [`FALLBACK_POLL`], in case a notice was missed (a Redis reconnect, a cancel made by the
//! command line of another process on the embedded stack).

use futures::StreamExt as _;
use invite_shared::cancels::{FALLBACK_POLL, LOOKBACK, MAX_REMEMBERED};
use invite_shared::store::{imports, now};
use tokio_util::sync::CancellationToken;

use crate::Deps;
use crate::runtime::{OutageLog, backoff};

/// Listens and polls until `stop`.
pub async fn run(deps: Deps, stop: CancellationToken) {
    tokio::join!(listen(&deps, &stop), poll(&deps, &stop));
}

/// Subscribes to the notices and remembers each, subscribing again (with backoff) whenever the
/// subscription is lost; what is published meanwhile the poll finds.
async fn listen(deps: &Deps, stop: &CancellationToken) {
    let log = OutageLog::default();
    let mut failures = 0u32;
    loop {
        let subscribed = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            subscribed = deps.queue.cancel_notices() => subscribed,
        };
        match subscribed {
            Ok(mut notices) => {
                log.succeeded("subscribing to cancel notices");
                failures = 0;
                loop {
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        notice = notices.next() => match notice {
                            Some(id) => deps.cancelled.insert(id),
                            None => break,
                        },
                    }
                }
                tracing::debug!("the cancel notices' subscription ended; subscribing again");
            }
            Err(e) => {
                failures += 1;
                log.failed("subscribing to cancel notices", &e);
            }
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff(failures.max(1))) => {}
        }
    }
}

/// Reads the imports cancelled within [`LOOKBACK`] every [`FALLBACK_POLL`] (the first at once, so
/// a process that starts learns of the cancels it missed), and forgets those learnt longer ago.
async fn poll(deps: &Deps, stop: &CancellationToken) {
    let log = OutageLog::default();
    let mut tick = tokio::time::interval(FALLBACK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        deps.cancelled.prune();
        let since = now() - LOOKBACK;
        let limit = MAX_REMEMBERED as i64;
        let read = deps
            .db
            .run(move |c| Ok(imports::cancelled_since(c, since, limit)?))
            .await;
        match read {
            Ok(ids) => {
                log.succeeded("reading the cancelled imports");
                for id in ids {
                    deps.cancelled.insert(id);
                }
            }
            Err(e) => log.failed("reading the cancelled imports", &e),
        }
    }
}

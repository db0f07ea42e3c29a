//! The webhook sender (`docs/product.md`, "Webhooks"): every `SEND_POLL_INTERVAL` it claims due
//! webhook deliveries under a lease, POSTs each signed body, logs the attempt and writes its
//! outcome: 2xx is delivered, anything else (a status, a refusal, a timeout) is retried with
//! exponential backoff and jitter until `WEBHOOK_RETRY_WINDOW` has passed since the first
//! attempt, then `failed`. A worker that dies mid-send leaves its lease to lapse, and another
//! worker sends the delivery again with the same `webhook-id`: at least once.
//!
//! Each attempt gets a fresh `webhook-timestamp` and signature. The target is checked at every
//! send ([`target`]): the client's resolver refuses a name with any forbidden address and the
//! connection goes to the addresses it checked; redirects are not followed, the answer is read
//! up to 64 KiB and its first 256 bytes kept for the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use invite_shared::metrics as m;
use invite_shared::store::webhooks::{self as store, Claimed, Next, Tried};
use invite_shared::store::{deliveries::ClaimToken, now};
use invite_shared::webhooks::{self, target};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tokio_util::sync::CancellationToken;

use crate::Deps;
use crate::runtime;
use crate::sender::decide::retry_delay;

/// Deliveries claimed (and sent at once) per round.
const BATCH: i64 = 20;
/// Most of an answer read: the rest is not waited for.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Bytes of an answer kept in the delivery log.
const KEPT_ANSWER_BYTES: usize = 256;

/// Runs until `stop`.
pub async fn run(deps: Deps, stop: CancellationToken) {
    let client = match client(
        deps.settings.webhook_timeout,
        deps.settings.webhook_allow_private,
    ) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(error = %e, "the webhook sender could not start");
            return;
        }
    };
    let interval = deps.settings.send_poll_interval;
    runtime::every(interval, &stop, "the webhook sender", || {
        drain(&deps, &client, &stop)
    })
    .await;
}

/// The HTTP client: no redirects, no proxy, `timeout` per request, and a resolver that refuses
/// forbidden addresses.
pub fn client(timeout: Duration, allow_private: bool) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("bulk-invite-webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver { allow_private }))
        .build()?)
}

/// Resolves names for the client, refusing a name with any forbidden address: the connection is
/// then made to the addresses checked, never to a second answer.
struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            // The client sets the URL's port on each address.
            let addrs = target::resolve(name.as_str(), 0, allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Claims and sends due deliveries until none is left (or `stop`).
async fn drain(
    deps: &Deps,
    client: &reqwest::Client,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let lease = lease(deps.settings.webhook_timeout);
    while !stop.is_cancelled() {
        let (claim, claimed) = deps
            .db
            .run(move |c| Ok(store::claim(c, BATCH, lease)?))
            .await?;
        if claimed.is_empty() {
            return Ok(());
        }
        let sends = claimed
            .into_iter()
            .map(|delivery| deliver(deps, client, claim, delivery));
        for result in futures::future::join_all(sends).await {
            result?;
        }
    }
    Ok(())
}

/// How long a claim holds: three deadlines of a POST, so only a dead (or frozen) worker's lease
/// lapses.
fn lease(timeout: Duration) -> Duration {
    timeout * 3 + Duration::from_secs(5)
}

/// Sends one delivery and records the attempt.
async fn deliver(
    deps: &Deps,
    client: &reqwest::Client,
    claim: ClaimToken,
    delivery: Claimed,
) -> anyhow::Result<()> {
    let at = now();
    let started = Instant::now();
    let answer = post(client, &delivery, deps.settings.webhook_allow_private).await;
    let elapsed = started.elapsed();
    let endpoint = delivery.endpoint.to_string();
    metrics::histogram!(m::WEBHOOK_LATENCY, "endpoint" => endpoint.clone())
        .record(elapsed.as_secs_f64());
    let next = decide(deps, &delivery, &answer, at);
    let result = match next {
        Next::Delivered => "delivered",
        Next::RetryAt(_) => "retried",
        Next::Failed => "failed",
    };
    metrics::counter!(m::WEBHOOK_DELIVERIES_TOTAL, "endpoint" => endpoint, "result" => result)
        .increment(1);
    let (http_status, error, response) = match answer {
        Ok(Answer { status, kept }) => (Some(i32::from(status)), None, Some(kept)),
        Err(error) => (None, Some(error), None),
    };
    let tried = Tried {
        id: delivery.id,
        claim,
        endpoint: delivery.endpoint,
        at,
        http_status,
        error,
        latency_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        response,
        next,
    };
    let window = deps.settings.webhook_retry_window;
    let recorded = deps
        .db
        .run(move |c| Ok(store::record(c, &tried, window)?))
        .await?;
    if recorded.disabled {
        tracing::warn!(endpoint_id = %delivery.endpoint, "a webhook endpoint failed for WEBHOOK_RETRY_WINDOW and is disabled");
    }
    Ok(())
}

/// What the endpoint answered.
struct Answer {
    /// Its status.
    status: u16,
    /// The first bytes of its body, as text.
    kept: String,
}

/// POSTs the delivery's body, signed now; the answer, or why there was none, in words.
async fn post(
    client: &reqwest::Client,
    delivery: &Claimed,
    allow_private: bool,
) -> Result<Answer, String> {
    let url = target::parse(&delivery.url, allow_private).map_err(|e| e.0)?;
    target::check_literal(&url, allow_private).map_err(|e| e.0)?;
    let timestamp = chrono::Utc::now().timestamp();
    let signature = webhooks::sign(
        &delivery.secret,
        &delivery.msg_id,
        timestamp,
        &delivery.payload,
    )
    .map_err(|e| format!("{e:#}"))?;
    let mut response = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|e| in_words(&e))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while body.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            // The status is the answer; a body cut short changes nothing.
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(KEPT_ANSWER_BYTES);
    let kept = String::from_utf8_lossy(&body).into_owned();
    Ok(Answer { status, kept })
}

/// A client error in words, its causes included, without the URL (which may carry a secret).
fn in_words(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".into();
    }
    let mut words = String::from(if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    });
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        let text = e.to_string();
        if !words.contains(&text) {
            words.push_str(": ");
            words.push_str(&text);
        }
        cause = e.source();
    }
    words
}

/// What the attempt leads to: 2xx delivered; else retried, at the latest when the window closes,
/// and failed once it has.
fn decide(
    deps: &Deps,
    delivery: &Claimed,
    answer: &Result<Answer, String>,
    at: chrono::NaiveDateTime,
) -> Next {
    if matches!(answer, Ok(a) if (200..300).contains(&a.status)) {
        return Next::Delivered;
    }
    let window = deps.settings.webhook_retry_window;
    let closes = delivery.first_attempt_at.unwrap_or(at) + window;
    if at >= closes {
        return Next::Failed;
    }
    let delay = retry_delay(deps.settings.webhook_retry_base_delay, delivery.attempts);
    Next::RetryAt((at + delay).min(closes))
}

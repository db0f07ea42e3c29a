//! What the ledger records for a send result: the retry policy of `docs/product.md` ("Emails")
//! in one place.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use chrono::NaiveDateTime;
use invite_shared::config::Settings;
use invite_shared::email::{SendError, SendReceipt};
use invite_shared::metrics as m;
use invite_shared::store::deliveries::{Claimed, SendOutcome};

/// Longest wait between two attempts of one send.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// Turns a send result into what the ledger records: retry transient failures with exponential
/// backoff and jitter until the retry window closes; fail permanent ones at once; give a send the
/// server could not take back to `pending` without counting it. Counts the result in metrics.
pub fn decide(
    settings: &Settings,
    claimed: &Claimed,
    result: Result<SendReceipt, SendError>,
    now: NaiveDateTime,
) -> SendOutcome {
    // The class of the server's own reply, before it is worded for the ledger.
    let class = match &result {
        Ok(_) => "2xx",
        Err(e) => reply_class(e.reply()),
    };
    let outcome = match result {
        Ok(receipt) => SendOutcome::Sent {
            reply: receipt.to_string(),
        },
        Err(SendError::Permanent { reply }) => SendOutcome::Failed { error: reply },
        Err(SendError::Unavailable { reply }) => SendOutcome::Released {
            at: now,
            error: Some(reply),
        },
        Err(SendError::Transient { reply }) => {
            let at = now + retry_delay(settings.email_retry_base_delay, claimed.attempts);
            if at > claimed.first_attempt_at + settings.email_retry_window {
                SendOutcome::Failed {
                    error: format!("gave up after the retry window: {reply}"),
                }
            } else {
                SendOutcome::RetryAt { at, error: reply }
            }
        }
    };
    let result = match &outcome {
        SendOutcome::Sent { .. } => "sent",
        // Never decided here: a cancelled import's outcome replaces the decision afterwards.
        SendOutcome::RetryAt { .. } | SendOutcome::Released { .. } | SendOutcome::Cancelled => {
            "retried"
        }
        SendOutcome::Failed { .. } => "failed",
    };
    metrics::counter!(m::EMAILS_TOTAL, "result" => result).increment(1);
    metrics::counter!(m::SMTP_REPLIES_TOTAL, "class" => class).increment(1);
    outcome
}

/// The wait before attempt `attempts + 1`: exponential from `base`, with jitter, capped.
pub fn retry_delay(base: Duration, attempts: i32) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(base)
        .with_max_delay(MAX_RETRY_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1).max(0) as usize)
        .unwrap_or(MAX_RETRY_DELAY)
}

/// The reply's class for metrics: 4xx, 5xx, or `error` when no SMTP code came back.
fn reply_class(reply: &str) -> &'static str {
    match reply.as_bytes().first() {
        Some(b'4') if reply.as_bytes().get(1).is_some_and(u8::is_ascii_digit) => "4xx",
        Some(b'5') if reply.as_bytes().get(1).is_some_and(u8::is_ascii_digit) => "5xx",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_stay_capped() {
        let base = Duration::from_secs(30);
        let first = retry_delay(base, 1);
        assert!(first >= base && first <= base * 2, "{first:?}");
        let fifth = retry_delay(base, 5);
        assert!(fifth >= base * 16, "{fifth:?}");
        assert!(retry_delay(base, 40) <= MAX_RETRY_DELAY * 2);
    }

    #[test]
    fn reply_classes_come_from_the_smtp_code() {
        assert_eq!(reply_class("451 4.3.0 try later"), "4xx");
        assert_eq!(reply_class("550 5.1.1 no such user"), "5xx");
        assert_eq!(reply_class("connection refused"), "error");
    }
}

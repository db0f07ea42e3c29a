//! The bounce reader (docs/product.md, "Bounces and complaints"): with `BOUNCE_IMAP_URL` set, every
//! worker process reads the bounce mailbox until shutdown and records each report in the ledger
//! ([`invite_shared::service::bounces`]); a recorded report moves to the processed folder.
//!
//! Several workers read one mailbox together: a report is recorded once by its digest whoever
//! reads it first, and one a killed worker recorded but did not move is moved by the next reader
//! (as a duplicate). Nothing a report holds is logged.

use invite_shared::bounce::{MailboxReader, MailboxUrl, Outcome, ReturnPaths};
use invite_shared::metrics as m;
use invite_shared::service::bounces::{self, Handled};
use invite_shared::store::bounces::Applied;
use tokio_util::sync::CancellationToken;

use crate::Deps;
use crate::runtime::OutageLog;

/// Reads the bounce mailbox until `stop`, when `BOUNCE_IMAP_URL` is set; else says once that
/// reports are not read.
pub async fn run(deps: Deps, stop: CancellationToken) {
    let (Some(url), Some(paths)) = (mailbox(&deps), deps.return_paths.clone()) else {
        tracing::info!(
            "bounces and complaints are not read: set BOUNCE_IMAP_URL (with BOUNCE_ADDRESS) to \
             read them from the bounce mailbox"
        );
        return;
    };
    tracing::info!(
        host = %url.host,
        folder = %url.folder,
        "reading bounces and complaints from the bounce mailbox"
    );
    let mut reader = MailboxReader::new(url, deps.settings.bounce_poll_interval);
    let failures = OutageLog::default();
    reader
        .run(&stop, |_uid, raw| {
            let (deps, paths, failures) = (&deps, &paths, &failures);
            async move { outcome(deps, paths, failures, raw).await }
        })
        .await;
}

/// The mailbox of `BOUNCE_IMAP_URL` (checked when the settings were loaded).
fn mailbox(deps: &Deps) -> Option<MailboxUrl> {
    deps.settings.bounce_mailbox().ok().flatten()
}

/// Records one message and says what the reader does with it next.
async fn outcome(deps: &Deps, paths: &ReturnPaths, failures: &OutageLog, raw: Vec<u8>) -> Outcome {
    let (result, outcome) = match bounces::handle(&deps.db, paths, raw).await {
        Ok(handled) => {
            failures.succeeded("recording bounce reports");
            classify(handled)
        }
        Err(e) => {
            // The database's words, never the report's: the pass stops here, and this message
            // and those after it are read again on the next one.
            failures.failed("recording bounce reports", &anyhow::Error::new(e));
            ("retry", Outcome::Unavailable)
        }
    };
    metrics::counter!(m::BOUNCE_REPORTS_TOTAL, "result" => result).increment(1);
    outcome
}

/// The metric's `result` and the reader's next step for a handled message.
fn classify(handled: Handled) -> (&'static str, Outcome) {
    match handled {
        Handled::Recorded(Applied::Duplicate) => ("duplicate", Outcome::Processed),
        Handled::Recorded(_) => ("recorded", Outcome::Processed),
        // Another sender's report, or a forged tag: left for a person to look at.
        Handled::Unmatched => ("unmatched", Outcome::NotAReport),
        Handled::NotAReport => ("not_a_report", Outcome::NotAReport),
        // The sender has not recorded the email as sent yet: the report raced it.
        Handled::NotYetSent => ("retry", Outcome::Retry),
    }
}

#[cfg(test)]
mod tests {
    use invite_shared::ids::DeliveryId;

    use super::*;

    #[test]
    fn only_reports_of_our_emails_are_moved_and_a_race_is_retried() {
        let recorded = Applied::Recorded {
            delivery: DeliveryId(1),
            changed: true,
        };
        assert_eq!(
            classify(Handled::Recorded(recorded)),
            ("recorded", Outcome::Processed)
        );
        assert_eq!(
            classify(Handled::Recorded(Applied::Duplicate)),
            ("duplicate", Outcome::Processed)
        );
        assert_eq!(
            classify(Handled::Unmatched),
            ("unmatched", Outcome::NotAReport)
        );
        assert_eq!(
            classify(Handled::NotAReport),
            ("not_a_report", Outcome::NotAReport)
        );
        assert_eq!(classify(Handled::NotYetSent), ("retry", Outcome::Retry));
    }
}

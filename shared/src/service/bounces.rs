//! One message of the bounce mailbox, read and recorded (`docs/product.md`, "Bounces and
//! complaints"): what the bounce reader of a worker does with each message it fetches.
//!
//! A report is matched by the return path it was sent to (its tag checked) or, failing that, by
//! the original email's `Message-ID`; a forged tag and a `Message-ID` that is not ours match
//! nothing. Nothing a report holds is logged.

use sha2::{Digest as _, Sha256};

use crate::bounce::report::{self, Action, Dsn, Origin, Report};
use crate::bounce::verp::ReturnPaths;
use crate::db::Db;
use crate::metrics as m;
use crate::service::{Result, Step as _};
use crate::status::ReportKind;
use crate::store::bounces::{self as store, Applied, Finding, Named};

/// Characters of our `Message-ID`s' local part: 32 lower-case hex digits.
const MESSAGE_ID_CHARS: usize = 32;

/// What reading one message came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A report about one of our emails, recorded now or before: move it to the processed folder.
    Recorded(Applied),
    /// A report that names no email of ours (another sender's, a forged tag): left alone.
    Unmatched,
    /// Not a report: left alone.
    NotAReport,
    /// About an email not yet recorded as sent: read it again later.
    NotYetSent,
}

/// Reads `raw` and records what it reports, once however often it is read.
pub async fn handle(db: &Db, paths: &ReturnPaths, raw: Vec<u8>) -> Result<Handled> {
    let report = report::parse(&raw);
    let Some((named, finding)) = finding(&report, paths, &raw) else {
        return Ok(match report {
            Report::NotAReport => Handled::NotAReport,
            _ => Handled::Unmatched,
        });
    };
    let kind = finding.kind;
    let applied = db
        .run(move |c| Ok(store::apply(c, &named, &finding)?))
        .await
        .step("recording a bounce report")?;
    count(applied, kind);
    Ok(match applied {
        Applied::Unmatched => Handled::Unmatched,
        Applied::NotYetSent => Handled::NotYetSent,
        applied => Handled::Recorded(applied),
    })
}

/// The email a report names and what it says of it; `None` for no report, or none naming one of
/// our emails.
fn finding(report: &Report, paths: &ReturnPaths, raw: &[u8]) -> Option<(Named, Finding)> {
    let named = named(report.origin()?, paths)?;
    let digest = Sha256::digest(raw)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let (status, diagnostic) = match report {
        Report::Dsn(dsn) => worst(dsn),
        _ => (None, None),
    };
    let finding = Finding {
        digest,
        kind: report_kind(report)?,
        status,
        diagnostic,
    };
    Some((named, finding))
}

/// The delivery whose tagged return path the report names, else the one whose `Message-ID` it
/// quotes, if that has the form of ours.
fn named(origin: &Origin, paths: &ReturnPaths) -> Option<Named> {
    if let Some(delivery) = origin.delivery(paths) {
        return Some(Named::Delivery(delivery));
    }
    let local = origin.message_id.as_deref()?.split('@').next()?;
    let ours = local.len() == MESSAGE_ID_CHARS && local.bytes().all(|b| b.is_ascii_hexdigit());
    ours.then(|| Named::MessageId(local.to_ascii_lowercase()))
}

/// A bounce when a recipient failed (the reporting server gave up, whatever its status class),
/// a delay when all are only delayed; a complaint is a complaint.
fn report_kind(report: &Report) -> Option<ReportKind> {
    match report {
        Report::Dsn(dsn) if dsn.recipients.is_empty() => None,
        Report::Dsn(dsn) if dsn.recipients.iter().any(|r| r.action == Action::Failed) => {
            Some(ReportKind::Bounced)
        }
        Report::Dsn(_) => Some(ReportKind::Delayed),
        Report::Complaint(_) => Some(ReportKind::Complained),
        Report::NotAReport => None,
    }
}

/// The status and diagnostic of the recipient that matters most: a failed one before a delayed.
fn worst(dsn: &Dsn) -> (Option<String>, Option<String>) {
    let recipient = dsn
        .recipients
        .iter()
        .find(|r| r.action == Action::Failed)
        .or(dsn.recipients.first());
    recipient.map_or((None, None), |r| (r.status.clone(), r.diagnostic.clone()))
}

/// Counts a recorded report's effect on the email's state in `invites_emails_total`.
fn count(applied: Applied, kind: ReportKind) {
    let Applied::Recorded { changed: true, .. } = applied else {
        return;
    };
    let result = match kind {
        ReportKind::Bounced => "bounced",
        ReportKind::Complained => "complained",
        ReportKind::Delayed => return,
    };
    metrics::counter!(m::EMAILS_TOTAL, "result" => result).increment(1);
}

//! Reminders (`docs/product.md`, "Reminders"): a reminder email to every member a filter chooses
//! who has not accepted yet, at most once per `REMIND_COOLDOWN` and `REMIND_MAX` times per member.
//!
//! The members are gone through a page at a time ([`crate::store::reminders`]), each page its own
//! transaction, so memory and transaction size stay the same for ten members or a million. The
//! senders are woken after the first page that reminded anyone and once more at the end (two
//! queue messages at most); the emails go out under the rate cap like every email. One audit
//! entry per call says how many were reminded and skipped, never who.
//!
//! The pages run in a task of their own: a caller that gives up (a client that hangs up, a request
//! past `HTTP_REQUEST_TIMEOUT`) stops neither them nor the audit entry.

use crate::config::Settings;
use crate::db::Db;
use crate::ids::WorkspaceId;
use crate::metrics as m;
use crate::queue::JobQueue;
use crate::service::audit::record;
use crate::service::support::wake;
use crate::service::{Result, ServiceError, Step as _};
use crate::store::audit::{Action, Actor, Target};
use crate::store::members::MemberFilter;
use crate::store::reminders::{self as store, ReminderRules};

/// What a remind call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reminded {
    /// Members sent a reminder.
    pub reminded: u64,
    /// Members the filter chose who were not eligible: accepted, archived, reminded within
    /// `REMIND_COOLDOWN`, reminded `REMIND_MAX` times already, or whose email has not gone out
    /// yet.
    pub skipped: u64,
    /// Members the filter chose who have not accepted but whose address is suppressed (it
    /// bounced or complained): counted apart from `skipped`.
    pub suppressed: u64,
}

/// Reminds the members of `workspace` that `filter` chooses (see the module's overview). On a
/// failure part-way, the pages done stay done, and the audit entry counts them.
#[tracing::instrument(skip_all, fields(%workspace))]
pub async fn remind(
    db: &Db,
    queue: &JobQueue,
    settings: &Settings,
    (workspace, actor): (WorkspaceId, Actor),
    filter: MemberFilter,
) -> Result<Reminded> {
    let rules = ReminderRules {
        cooldown: settings.remind_cooldown,
        max: settings.remind_max,
    };
    let (db, queue) = (db.clone(), queue.clone());
    let run = async move {
        let (counts, outcome) = go_through(&db, &queue, (workspace, rules), filter).await;
        tracing::info!(
            reminded = counts.reminded,
            skipped = counts.skipped,
            suppressed = counts.suppressed,
            "reminders queued"
        );
        let target = Target::Reminded {
            reminded: counts.reminded,
            skipped: counts.skipped,
            suppressed: counts.suppressed,
        };
        record(&db, (workspace, actor), Action::Remind, target).await;
        outcome.map(|()| counts)
    };
    tokio::spawn(run)
        .await
        .map_err(|e| ServiceError::Database {
            doing: "reminding members",
            source: anyhow::anyhow!("the reminding task ended abnormally: {e}"),
        })?
}

/// Goes through the pages of `filter`'s members; what was done, and how it ended.
async fn go_through(
    db: &Db,
    queue: &JobQueue,
    (workspace, rules): (WorkspaceId, ReminderRules),
    mut filter: MemberFilter,
) -> (Reminded, Result<()>) {
    let mut counts = Reminded::default();
    // Reminders queued since the senders were last woken, if they were.
    let mut unannounced: Option<u64> = None;
    loop {
        let this = filter.clone();
        let page = db
            .run(move |c| {
                Ok(store::remind_page(
                    c,
                    workspace,
                    &this,
                    (rules, store::PAGE),
                )?)
            })
            .await
            .step("reminding members");
        let page = match page {
            Ok(page) => page,
            Err(e) => return (counts, Err(e)),
        };
        counts.reminded += page.reminded;
        counts.skipped += page.skipped();
        counts.suppressed += page.suppressed;
        metrics::counter!(m::REMINDERS_TOTAL, "result" => "reminded").increment(page.reminded);
        metrics::counter!(m::REMINDERS_TOTAL, "result" => "skipped").increment(page.skipped());
        metrics::counter!(m::REMINDERS_TOTAL, "result" => "suppressed").increment(page.suppressed);
        match unannounced {
            None if page.reminded > 0 => {
                wake(queue, None).await;
                unannounced = Some(0);
            }
            None => {}
            Some(n) => unannounced = Some(n + page.reminded),
        }
        // A short page is the last one.
        match page.last.filter(|_| page.matched == store::PAGE as u64) {
            Some(last) => filter.after = Some(last),
            None => {
                if unannounced.is_some_and(|n| n > 0) {
                    wake(queue, None).await;
                }
                return (counts, Ok(()));
            }
        }
    }
}

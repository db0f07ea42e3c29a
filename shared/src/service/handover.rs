//! Hand-over to the workspace's application: the `accept_redirect_url` setting (read, set,
//! audited), accepting an invitation with the hand-over token minted in the same transaction, and
//! redeeming that token once.

use std::time::Duration;

use crate::db::Db;
use crate::domain::email;
use crate::domain::redirect::{RedirectTemplate, Values};
use crate::ids::WorkspaceId;
use crate::service::audit::record;
use crate::service::{Result, Step as _};
use crate::store::audit::{Action, Actor, Target};
use crate::store::handovers::{self, HandOver, NewHandover, Redeem};
use crate::store::invitations::{self, Lookup};
use crate::store::now;
use crate::tokens;

/// The name of the setting, as the audit log records a change of it.
pub const SETTING: &str = "accept_redirect_url";

/// The workspace's redirect template, `None` when accepting keeps the service's own page.
pub async fn redirect(db: &Db, workspace: WorkspaceId) -> Result<Option<RedirectTemplate>> {
    let stored = db
        .run(move |c| Ok(handovers::redirect_of(c, workspace)?))
        .await
        .step("reading the workspace's settings")?;
    Ok(stored.map(RedirectTemplate::stored))
}

/// Sets (with `None`, clears) the workspace's redirect template, checked by the caller, and
/// records the change in the audit log (the setting's name, not its value).
pub async fn set_redirect(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    template: Option<RedirectTemplate>,
) -> Result<()> {
    let text = template.map(|t| t.as_str().to_owned());
    db.run(move |c| Ok(handovers::set_redirect(c, workspace, text.as_deref())?))
        .await
        .step("saving the workspace's settings")?;
    let target = Target::Setting(SETTING);
    record(db, (workspace, actor), Action::SettingsChange, target).await;
    Ok(())
}

/// What accepting a link did.
#[derive(Debug)]
pub struct Accepted {
    /// The lookup that decided it (`Valid` when accepted now).
    pub lookup: Lookup,
    /// Where to send the browser: the workspace's filled template with the hand-over token, when
    /// the workspace has one.
    pub redirect: Option<String>,
}

/// Accepts the link `token`: the member becomes active, and when their workspace has an
/// `accept_redirect_url`, a hand-over token valid for `ttl` is stored in the same transaction.
pub async fn accept(db: &Db, token: String, ttl: Duration) -> Result<Accepted> {
    let handover = tokens::mint();
    let new = NewHandover {
        hash: handover.hash,
        expires_at: now() + ttl,
    };
    let (lookup, hand_over) = db
        .run(move |c| Ok(invitations::accept(c, &token, &new)?))
        .await
        .step("accepting the invitation")?;
    let redirect = hand_over.and_then(|to| redirect_url(&to, &handover.plain));
    Ok(Accepted { lookup, redirect })
}

/// The filled template with the token; `None` (the service's own page) for a stored template that
/// no longer makes an allowed URL, which is logged without the member's data.
fn redirect_url(to: &HandOver, token: &str) -> Option<String> {
    let email = email::display(&to.email);
    let values = Values {
        member_id: to.member_id.0,
        email: &email,
        workspace: &to.workspace,
    };
    let url = RedirectTemplate::stored(to.template.clone()).url(values, token);
    if url.is_none() {
        tracing::warn!(
            workspace = %to.workspace,
            "the workspace's accept_redirect_url makes no allowed URL; showing the welcome page"
        );
    }
    url
}

/// Redeems a hand-over token: the member's data the first time, while it is live.
pub async fn redeem(db: &Db, token: &str) -> Result<Redeem> {
    let hash = tokens::hash(token);
    db.run(move |c| Ok(handovers::redeem(c, &hash)?))
        .await
        .step("verifying the hand-over token")
}

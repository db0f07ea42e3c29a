//! `webhook create|list|delete|test`: the twins of `…/webhooks`, over the same service functions,
//! recorded in the audit log as an operator's.

use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::ids::WebhookEndpointId;
use invite_shared::service::webhooks::{self as service, CreateOutcome, EndpointRequest};
use invite_shared::store::audit::Actor;

use super::workspace_id;

/// `webhook create`: the endpoint, and its secret alone on the last line.
pub async fn create(
    settings: &Settings,
    db: &Db,
    slug: &str,
    request: EndpointRequest,
) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    match service::create(db, settings, (workspace, Actor::Operator), request).await? {
        CreateOutcome::Created { endpoint, secret } => Ok(format!(
            "webhook {} created for {}; its signing secret, shown this once:\n{secret}",
            endpoint.id, endpoint.events
        )),
        CreateOutcome::RefusedUrl(why) => anyhow::bail!("refused URL: {why}"),
        CreateOutcome::InvalidEvents(why) => anyhow::bail!("events: {why}"),
        CreateOutcome::InvalidDescription => anyhow::bail!(
            "the description must be at most {} characters, without line breaks",
            service::MAX_DESCRIPTION_CHARS
        ),
        CreateOutcome::TooMany => anyhow::bail!(
            "workspace `{slug}` has {} webhook endpoints; delete one first",
            invite_shared::store::webhooks::MAX_ENDPOINTS
        ),
    }
}

/// `webhook list`: one endpoint per line, never a secret.
pub async fn list(db: &Db, slug: &str) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let endpoints = service::list(db, workspace).await?;
    if endpoints.is_empty() {
        return Ok("no webhooks".to_owned());
    }
    let mut lines = vec!["id\turl\tevents\tstate".to_owned()];
    lines.extend(endpoints.iter().map(|e| {
        let state = match (&e.disabled_at, &e.failing_since) {
            (Some(at), _) => format!(
                "disabled {}: {}",
                at.format("%Y-%m-%d %H:%M"),
                e.disabled_reason.as_deref().unwrap_or("-")
            ),
            (None, Some(since)) => format!("failing since {}", since.format("%Y-%m-%d %H:%M")),
            (None, None) => "enabled".to_owned(),
        };
        format!("{}\t{}\t{}\t{state}", e.id, e.url, e.events)
    }));
    Ok(lines.join("\n"))
}

/// `webhook delete`.
pub async fn delete(db: &Db, slug: &str, id: i64) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let id = WebhookEndpointId(id);
    if !service::delete(db, (workspace, Actor::Operator), id).await? {
        anyhow::bail!("webhook {id} not found in workspace `{slug}`");
    }
    Ok(format!("webhook {id} deleted"))
}

/// `webhook test`.
pub async fn test(db: &Db, slug: &str, id: i64) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let id = WebhookEndpointId(id);
    if !service::test(db, (workspace, Actor::Operator), id).await? {
        anyhow::bail!("webhook {id} not found in workspace `{slug}`");
    }
    Ok(format!(
        "a webhook.test event is queued to webhook {id}; the workers send it"
    ))
}

//! Webhook endpoints (`docs/product.md`, "Webhooks"): create (the URL checked, the secret shown
//! once), list (never a secret), delete, the delivery log, a test event, a replay, and enabling a
//! disabled endpoint; each change recorded in the audit log.

use serde_json::json;

use crate::config::Settings;
use crate::db::Db;
use crate::ids::{WebhookAttemptId, WebhookDeliveryId, WebhookEndpointId, WorkspaceId};
use crate::service::audit::record;
use crate::service::{Result, Step as _, next_cursor};
use crate::store::audit::{Action, Actor, Target};
use crate::store::webhooks::{self as store, Attempt, Created, Endpoint, NewEndpoint};
use crate::webhooks::target;
use crate::webhooks::{Subscription, shown_secret};

/// Longest description.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// What an admin asks for.
#[derive(Debug, Clone)]
pub struct EndpointRequest {
    /// Where to POST.
    pub url: String,
    /// The event types, by name.
    pub events: Vec<String>,
    /// What it is for.
    pub description: String,
}

/// What `create` did.
#[derive(Debug)]
pub enum CreateOutcome {
    /// Made; the secret (`whsec_…`) is shown this once.
    Created {
        /// The endpoint.
        endpoint: Endpoint,
        /// Its signing secret.
        secret: String,
    },
    /// The URL may not be called, in words.
    RefusedUrl(String),
    /// An event type is unknown, or none was given, in words.
    InvalidEvents(String),
    /// The description is too long or has line breaks.
    InvalidDescription,
    /// The workspace has [`store::MAX_ENDPOINTS`] already.
    TooMany,
}

/// Makes an endpoint after checking its URL (its host must resolve to public addresses only,
/// unless `WEBHOOK_ALLOW_PRIVATE`) and its events.
#[tracing::instrument(skip_all, fields(%workspace))]
pub async fn create(
    db: &Db,
    settings: &Settings,
    (workspace, actor): (WorkspaceId, Actor),
    request: EndpointRequest,
) -> Result<CreateOutcome> {
    let events = match Subscription::parse(&request.events) {
        Ok(events) => events,
        Err(why) => return Ok(CreateOutcome::InvalidEvents(why)),
    };
    let description = request.description.trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION_CHARS
        || description.chars().any(char::is_control)
    {
        return Ok(CreateOutcome::InvalidDescription);
    }
    let allow_private = settings.webhook_allow_private;
    let url = match target::parse(request.url.trim(), allow_private) {
        Ok(url) => url,
        Err(refused) => return Ok(CreateOutcome::RefusedUrl(refused.0)),
    };
    if let Err(refused) = target::check(&url, allow_private).await {
        return Ok(CreateOutcome::RefusedUrl(refused.0));
    }
    let new = NewEndpoint {
        url: url.to_string(),
        description,
        events,
    };
    let created = db
        .run(move |c| Ok(store::create_endpoint(c, workspace, &new)?))
        .await
        .step("creating the webhook endpoint")?;
    let Some(Created { endpoint, secret }) = created else {
        return Ok(CreateOutcome::TooMany);
    };
    let target = Target::Webhook(endpoint.id);
    record(db, (workspace, actor), Action::WebhookCreate, target).await;
    Ok(CreateOutcome::Created {
        endpoint,
        secret: shown_secret(&secret),
    })
}

/// The workspace's endpoints, oldest first, never a secret.
pub async fn list(db: &Db, workspace: WorkspaceId) -> Result<Vec<Endpoint>> {
    db.run(move |c| Ok(store::list_endpoints(c, workspace)?))
        .await
        .step("listing the webhook endpoints")
}

/// Deletes the workspace's endpoint `id` and its deliveries; whether it had it.
#[tracing::instrument(skip_all, fields(%workspace, endpoint_id = %id))]
pub async fn delete(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    id: WebhookEndpointId,
) -> Result<bool> {
    let deleted = db
        .run(move |c| Ok(store::delete_endpoint(c, workspace, id)?))
        .await
        .step("deleting the webhook endpoint")?;
    if deleted {
        record(
            db,
            (workspace, actor),
            Action::WebhookDelete,
            Target::Webhook(id),
        )
        .await;
    }
    Ok(deleted)
}

/// Queues a `webhook.test` event to the workspace's endpoint `id` alone; whether it had it.
#[tracing::instrument(skip_all, fields(%workspace, endpoint_id = %id))]
pub async fn test(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    id: WebhookEndpointId,
) -> Result<bool> {
    let data = json!({"endpoint_id": id});
    let queued = db
        .run(move |c| Ok(store::enqueue_test(c, workspace, id, data)?))
        .await
        .step("queueing the test event")?;
    if queued.is_some() {
        record(
            db,
            (workspace, actor),
            Action::WebhookTest,
            Target::Webhook(id),
        )
        .await;
    }
    Ok(queued.is_some())
}

/// Queues the endpoint's delivery `delivery` again (same `webhook-id`); whether it had it.
#[tracing::instrument(skip_all, fields(%workspace, endpoint_id = %id))]
pub async fn replay(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    (id, delivery): (WebhookEndpointId, WebhookDeliveryId),
) -> Result<bool> {
    let replayed = db
        .run(move |c| Ok(store::replay(c, workspace, (id, delivery))?))
        .await
        .step("replaying the webhook delivery")?;
    if replayed {
        record(
            db,
            (workspace, actor),
            Action::WebhookReplay,
            Target::Webhook(id),
        )
        .await;
    }
    Ok(replayed)
}

/// Enables the workspace's endpoint `id` again; the endpoint, if it has it.
#[tracing::instrument(skip_all, fields(%workspace, endpoint_id = %id))]
pub async fn enable(
    db: &Db,
    (workspace, actor): (WorkspaceId, Actor),
    id: WebhookEndpointId,
) -> Result<Option<Endpoint>> {
    let endpoint = db
        .run(move |c| {
            if !store::enable_endpoint(c, workspace, id)? {
                return Ok(None);
            }
            Ok(store::get_endpoint(c, workspace, id)?)
        })
        .await
        .step("enabling the webhook endpoint")?;
    if endpoint.is_some() {
        record(
            db,
            (workspace, actor),
            Action::WebhookEnable,
            Target::Webhook(id),
        )
        .await;
    }
    Ok(endpoint)
}

/// A page of an endpoint's delivery log, newest first.
#[derive(Debug, Clone)]
pub struct LogPage {
    /// The attempts.
    pub attempts: Vec<Attempt>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<WebhookAttemptId>,
}

/// The attempts of the workspace's endpoint `id` older than `cursor`, at most `limit`; `None`
/// when the workspace has no such endpoint.
pub async fn log(
    db: &Db,
    workspace: WorkspaceId,
    id: WebhookEndpointId,
    (cursor, limit): (Option<WebhookAttemptId>, i64),
) -> Result<Option<LogPage>> {
    let page = db
        .run(move |c| {
            if store::get_endpoint(c, workspace, id)?.is_none() {
                return Ok(None);
            }
            Ok(Some(store::attempts_page(
                c,
                workspace,
                id,
                (cursor, limit),
            )?))
        })
        .await
        .step("reading the webhook delivery log")?;
    Ok(page.map(|attempts| LogPage {
        next_cursor: next_cursor(&attempts, limit, |a| a.id),
        attempts,
    }))
}

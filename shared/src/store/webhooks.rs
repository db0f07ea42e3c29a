//! Webhooks on the ledger (`docs/product.md`, "Webhooks"): endpoints, the outbox of events, one
//! delivery per event and endpoint, and the log of every attempt.
//!
//! [`enqueue`] runs inside the transaction of the change an event reports, so the event exists
//! exactly when the change does. Deliveries are claimed like email deliveries: a claim moves due
//! `pending` rows (and `sending` rows whose lease lapsed: their worker died mid-send) to `sending`
//! under a random claim value and a lease; PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, SQLite
//! in a `BEGIN IMMEDIATE` transaction. An outcome is written only while the delivery is still
//! held by the claim that sent it. A delivery whose worker died is sent again: at least once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Bool;

use crate::db::DbConn;
use crate::db::backend::BackendConnection;
use crate::db::schema::{
    accounts, deliveries, members, webhook_attempts, webhook_deliveries, webhook_endpoints,
    webhook_messages, workspaces,
};
use crate::ids::{
    DeliveryId, ImportId, MemberId, WebhookAttemptId, WebhookDeliveryId, WebhookEndpointId,
    WebhookMessageId, WorkspaceId,
};
use crate::status::{MemberStatus, WebhookDeliveryState};
use crate::store::deliveries::ClaimToken;
use crate::store::now;
use crate::webhooks::{self, EventType, Subscription};
use crate::write_transaction;

/// Most endpoints one workspace may have.
pub const MAX_ENDPOINTS: i64 = 20;

/// When a disabled endpoint's pending deliveries are due: never, until it is enabled, which
/// makes them due at once. Parked so far off, they lie beyond every claim's range of the index of
/// due deliveries, however many pile up.
fn parked() -> NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(9999, 12, 31)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .unwrap_or(NaiveDateTime::MAX)
}

/// Rows written per statement: well within both backends' limits on bound parameters.
const STATEMENT_ROWS: usize = 1000;

/// An endpoint as listed: never its secret.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints, check_for_backend(diesel::sqlite::Sqlite))]
pub struct Endpoint {
    /// Its id.
    pub id: WebhookEndpointId,
    /// Where events are POSTed.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The subscribed types, stored comma-separated (see [`Subscription`]).
    pub events: String,
    /// When it was made.
    pub created_at: NaiveDateTime,
    /// When it was disabled for failing `WEBHOOK_RETRY_WINDOW` long; `None` while enabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// The first failed attempt since its last delivered one.
    pub failing_since: Option<NaiveDateTime>,
}

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// Its URL, checked already.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// What it receives.
    pub events: Subscription,
}

/// A new endpoint with its signing key (as stored: base64), which is never read back to a caller.
pub struct Created {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Its signing key.
    pub secret: String,
}

/// Makes an endpoint in `workspace` with a fresh signing key; `None` when the workspace has
/// [`MAX_ENDPOINTS`] already (counted in the same write transaction).
pub fn create_endpoint(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    new: &NewEndpoint,
) -> QueryResult<Option<Created>> {
    let secret = webhooks::new_secret();
    write_transaction!(conn, |c| {
        let count: i64 = c.get_result(
            webhook_endpoints::table
                .filter(webhook_endpoints::workspace_id.eq(workspace))
                .count(),
        )?;
        if count >= MAX_ENDPOINTS {
            return Ok(None);
        }
        let endpoint: Endpoint = c.get_result(
            diesel::insert_into(webhook_endpoints::table)
                .values((
                    webhook_endpoints::workspace_id.eq(workspace),
                    webhook_endpoints::url.eq(&new.url),
                    webhook_endpoints::description.eq(&new.description),
                    webhook_endpoints::events.eq(new.events.stored()),
                    webhook_endpoints::secret.eq(&secret),
                    webhook_endpoints::created_at.eq(now()),
                ))
                .returning(crate::db::backend::columns::<Endpoint>()),
        )?;
        Ok(Some(Created {
            endpoint,
            secret: secret.clone(),
        }))
    })
}

/// The workspace's endpoints, oldest first.
pub fn list_endpoints(conn: &mut DbConn, workspace: WorkspaceId) -> QueryResult<Vec<Endpoint>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::workspace_id.eq(workspace))
        .order(webhook_endpoints::id)
        .select(Endpoint::as_select())
        .load(conn)
}

/// The workspace's endpoint `id`, if it has it.
pub fn get_endpoint(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    id: WebhookEndpointId,
) -> QueryResult<Option<Endpoint>> {
    webhook_endpoints::table
        .filter(webhook_endpoints::workspace_id.eq(workspace))
        .filter(webhook_endpoints::id.eq(id))
        .select(Endpoint::as_select())
        .first(conn)
        .optional()
}

/// Deletes the workspace's endpoint `id` with its deliveries and their log; whether it had it.
pub fn delete_endpoint(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    id: WebhookEndpointId,
) -> QueryResult<bool> {
    write_transaction!(conn, |c| {
        let ours = webhook_endpoints::table
            .filter(webhook_endpoints::workspace_id.eq(workspace))
            .filter(webhook_endpoints::id.eq(id));
        let owned: i64 = c.get_result(ours.count())?;
        if owned == 0 {
            return Ok(false);
        }
        // Children first: SQLite connections enforce foreign keys, but not every database the
        // service meets cascades (an old file may predate `PRAGMA foreign_keys`).
        let deliveries = webhook_deliveries::table
            .filter(webhook_deliveries::endpoint_id.eq(id))
            .select(webhook_deliveries::id);
        c.execute(diesel::delete(
            webhook_attempts::table.filter(webhook_attempts::delivery_id.eq_any(deliveries)),
        ))?;
        c.execute(diesel::delete(
            webhook_deliveries::table.filter(webhook_deliveries::endpoint_id.eq(id)),
        ))?;
        Ok(c.execute(diesel::delete(ours))? > 0)
    })
}

/// Enables the workspace's endpoint `id` again (its failure streak forgotten); whether it had it.
/// Its deliveries parked while it was disabled are due at once.
pub fn enable_endpoint(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    id: WebhookEndpointId,
) -> QueryResult<bool> {
    write_transaction!(conn, |c| {
        let changed = c.execute(
            diesel::update(
                webhook_endpoints::table
                    .filter(webhook_endpoints::workspace_id.eq(workspace))
                    .filter(webhook_endpoints::id.eq(id)),
            )
            .set((
                webhook_endpoints::disabled_at.eq(None::<NaiveDateTime>),
                webhook_endpoints::disabled_reason.eq(None::<String>),
                webhook_endpoints::failing_since.eq(None::<NaiveDateTime>),
            )),
        )?;
        if changed == 0 {
            return Ok(false);
        }
        // Its pending deliveries (parked, or retried by a send in flight when it was disabled)
        // are due now, each with a retry window and backoff of its own from now.
        c.execute(
            diesel::update(
                webhook_deliveries::table
                    .filter(webhook_deliveries::endpoint_id.eq(id))
                    .filter(webhook_deliveries::state.eq(WebhookDeliveryState::Pending)),
            )
            .set((
                webhook_deliveries::next_attempt_at.eq(now()),
                webhook_deliveries::first_attempt_at.eq(None::<NaiveDateTime>),
                webhook_deliveries::attempts.eq(0),
            )),
        )?;
        Ok(true)
    })
}

/// Writes `event` about `data` to the outbox of `workspace`, with a pending delivery to each of
/// its endpoints subscribed to it (parked for a disabled one); nothing at all when none is. Runs in the caller's
/// transaction, so the event is written if and only if the change it reports is. One indexed
/// read of the workspace's endpoints (at most [`MAX_ENDPOINTS`]) when nobody listens.
pub(crate) fn enqueue<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    event: EventType,
    data: serde_json::Value,
) -> QueryResult<()> {
    let subscribed = subscribers(c, workspace, event)?;
    if subscribed.is_empty() {
        return Ok(());
    }
    write_message(c, workspace, event, data, &subscribed).map(|_| ())
}

/// [`enqueue`] for an event about a member: its data is the member's id, their status and
/// address (the receiving application knows its people by address), read only when someone
/// listens.
pub(crate) fn enqueue_member<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    event: EventType,
    member: MemberId,
) -> QueryResult<()> {
    enqueue_members(c, workspace, event, &[member], &serde_json::Map::new())
}

/// [`enqueue_member`] for each of `members` at once (an import's chunk), each event's data also
/// carrying the fields of `extra`: a read of the members and two inserts per thousand when someone
/// listens, the one read of [`enqueue`] when nobody does.
pub(crate) fn enqueue_members<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    event: EventType,
    members: &[MemberId],
    extra: &serde_json::Map<String, serde_json::Value>,
) -> QueryResult<()> {
    if members.is_empty() {
        return Ok(());
    }
    let subscribed = subscribers(c, workspace, event)?;
    if subscribed.is_empty() {
        return Ok(());
    }
    let mut data = Vec::with_capacity(members.len());
    for part in members.chunks(STATEMENT_ROWS) {
        let found: Vec<(MemberId, MemberStatus, String)> = c.load(
            members::table
                .inner_join(accounts::table)
                .filter(members::id.eq_any(part))
                .order(members::id)
                .select((members::id, members::status, accounts::email)),
        )?;
        data.extend(found.into_iter().map(|(member, status, email)| {
            let mut fields = extra.clone();
            fields.insert("member_id".into(), serde_json::json!(member));
            fields.insert("status".into(), status.as_str().into());
            fields.insert("email".into(), email.into());
            serde_json::Value::Object(fields)
        }));
    }
    write_messages(c, workspace, event, data, &subscribed).map(drop)
}

/// Writes an `email.*` event for each email of `emails` with the type given beside it (`sent`,
/// `failed`, `bounced`, `complained`), to the endpoints of its member's workspace subscribed to
/// it. Runs in the transaction that moved the emails; one read when nobody listens. The data is
/// the email's id, its member's id and address, its import's id (if an import sent it) and its
/// error (the server's reply, or a bounce's status and diagnostic).
pub(crate) fn enqueue_emails<C: BackendConnection>(
    c: &mut C,
    emails: &[(DeliveryId, EventType)],
) -> QueryResult<()> {
    if emails.is_empty() {
        return Ok(());
    }
    if !email_events_wanted(c)? {
        return Ok(());
    }
    let ids: Vec<DeliveryId> = emails.iter().map(|(id, _)| *id).collect();
    let listening = email_subscribers(c, &ids)?;
    if listening.is_empty() {
        return Ok(());
    }
    let details = email_details(c, &ids, listening.keys())?;
    // In workspace order, so that two transactions lock disabled endpoints in the same order.
    let mut batches: BTreeMap<(WorkspaceId, EventType), Vec<serde_json::Value>> = BTreeMap::new();
    for &(id, event) in emails {
        let Some((workspace, data)) = details.get(&id) else {
            continue;
        };
        if listening[workspace].iter().any(|(_, s)| s.includes(event)) {
            let batch = batches.entry((*workspace, event)).or_default();
            batch.push(data.clone());
        }
    }
    for ((workspace, event), data) in batches {
        let endpoints: Vec<WebhookEndpointId> = listening[&workspace]
            .iter()
            .filter(|(_, s)| s.includes(event))
            .map(|(id, _)| *id)
            .collect();
        write_messages(c, workspace, event, data, &endpoints)?;
    }
    Ok(())
}

/// Whether any endpoint of the deployment subscribes to an `email.*` event: one read of the small
/// table of endpoints, which spares an email's group commit everything else when none does.
pub(crate) fn email_events_wanted<C: BackendConnection>(c: &mut C) -> QueryResult<bool> {
    let any: Option<WebhookEndpointId> = c
        .first(
            webhook_endpoints::table
                .filter(webhook_endpoints::events.like("%email.%"))
                .select(webhook_endpoints::id),
        )
        .optional()?;
    Ok(any.is_some())
}

/// The endpoints (with their subscriptions) of the workspaces whose members the emails `ids`
/// went to, by workspace.
fn email_subscribers<C: BackendConnection>(
    c: &mut C,
    ids: &[DeliveryId],
) -> QueryResult<HashMap<WorkspaceId, Vec<(WebhookEndpointId, Subscription)>>> {
    let workspaces = deliveries::table
        .inner_join(members::table)
        .filter(deliveries::id.eq_any(ids))
        .select(members::workspace_id);
    let endpoints: Vec<(WebhookEndpointId, WorkspaceId, String)> = c.load(
        webhook_endpoints::table
            .filter(webhook_endpoints::workspace_id.eq_any(workspaces))
            .select((
                webhook_endpoints::id,
                webhook_endpoints::workspace_id,
                webhook_endpoints::events,
            )),
    )?;
    let mut by_workspace: HashMap<WorkspaceId, Vec<_>> = HashMap::new();
    for (id, workspace, events) in endpoints {
        let subscription = Subscription::from_stored(&events);
        by_workspace
            .entry(workspace)
            .or_default()
            .push((id, subscription));
    }
    Ok(by_workspace)
}

/// Each email of `ids` whose member is in one of `workspaces`: that workspace and its event data.
fn email_details<'w, C: BackendConnection>(
    c: &mut C,
    ids: &[DeliveryId],
    workspaces: impl Iterator<Item = &'w WorkspaceId>,
) -> QueryResult<HashMap<DeliveryId, (WorkspaceId, serde_json::Value)>> {
    let workspaces: Vec<WorkspaceId> = workspaces.copied().collect();
    type Row = (
        DeliveryId,
        MemberId,
        WorkspaceId,
        Option<ImportId>,
        String,
        Option<String>,
    );
    let rows: Vec<Row> = c.load(
        deliveries::table
            .inner_join(members::table.inner_join(accounts::table))
            .filter(deliveries::id.eq_any(ids))
            .filter(members::workspace_id.eq_any(workspaces))
            .select((
                deliveries::id,
                members::id,
                members::workspace_id,
                deliveries::import_id,
                accounts::email,
                deliveries::last_error,
            )),
    )?;
    Ok(rows
        .into_iter()
        .map(|(id, member, workspace, import, email, error)| {
            let data = serde_json::json!({
                "email_id": id,
                "member_id": member,
                "email": email,
                "import_id": import,
                "error": error,
            });
            (id, (workspace, data))
        })
        .collect())
}

/// The workspace's endpoints subscribed to `event`; a disabled one's deliveries wait until it is
/// enabled again.
fn subscribers<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    event: EventType,
) -> QueryResult<Vec<WebhookEndpointId>> {
    let endpoints: Vec<(WebhookEndpointId, String)> = c.load(
        webhook_endpoints::table
            .filter(webhook_endpoints::workspace_id.eq(workspace))
            .select((webhook_endpoints::id, webhook_endpoints::events)),
    )?;
    Ok(endpoints
        .into_iter()
        .filter(|(_, events)| Subscription::from_stored(events).includes(event))
        .map(|(id, _)| id)
        .collect())
}

/// Writes a `webhook.test` event about `data` to the outbox with a pending delivery to the
/// workspace's endpoint `endpoint` alone (a disabled one's waits until it is enabled); `None`
/// when the workspace has no such endpoint.
pub fn enqueue_test(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    endpoint: WebhookEndpointId,
    data: serde_json::Value,
) -> QueryResult<Option<WebhookMessageId>> {
    write_transaction!(conn, |c| {
        let owned: i64 = c.get_result(
            webhook_endpoints::table
                .filter(webhook_endpoints::workspace_id.eq(workspace))
                .filter(webhook_endpoints::id.eq(endpoint))
                .count(),
        )?;
        if owned == 0 {
            return Ok(None);
        }
        write_message(c, workspace, EventType::WebhookTest, data, &[endpoint]).map(Some)
    })
}

/// Inserts the message (its data naming the workspace by slug) and its pending deliveries to
/// `endpoints`.
fn write_message<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    event: EventType,
    data: serde_json::Value,
    endpoints: &[WebhookEndpointId],
) -> QueryResult<WebhookMessageId> {
    let written = write_messages(c, workspace, event, vec![data], endpoints)?;
    written
        .into_iter()
        .next()
        .ok_or(diesel::result::Error::NotFound)
}

/// Inserts a message of `event` for each of `data` (each naming the workspace by slug), and a
/// pending delivery of each to every one of `endpoints`, a thousand rows a statement; their ids.
fn write_messages<C: BackendConnection>(
    c: &mut C,
    workspace: WorkspaceId,
    event: EventType,
    data: Vec<serde_json::Value>,
    endpoints: &[WebhookEndpointId],
) -> QueryResult<Vec<WebhookMessageId>> {
    let at = now();
    let slug: String = c.get_result(workspaces::table.find(workspace).select(workspaces::slug))?;
    let messages: Vec<_> = data
        .into_iter()
        .map(|mut data| {
            if let Some(fields) = data.as_object_mut() {
                fields.insert("workspace".into(), slug.clone().into());
            }
            (
                webhook_messages::workspace_id.eq(workspace),
                webhook_messages::msg_id.eq(webhooks::new_msg_id()),
                webhook_messages::event_type.eq(event.as_str()),
                webhook_messages::payload.eq(webhooks::body(event, at, data)),
                webhook_messages::created_at.eq(at),
            )
        })
        .collect();
    let mut ids = Vec::with_capacity(messages.len());
    for part in messages.chunks(STATEMENT_ROWS) {
        let inserted: Vec<WebhookMessageId> = c.load(
            diesel::insert_into(webhook_messages::table)
                .values(part)
                .returning(webhook_messages::id),
        )?;
        ids.extend(inserted);
    }
    // Locked, not just read: an enable waits for this transaction, and then makes due what it
    // parked (read alone, an enable in between would miss the parked rows, for good).
    let disabled: Vec<WebhookEndpointId> = c.load(
        diesel::update(
            webhook_endpoints::table
                .filter(webhook_endpoints::id.eq_any(endpoints))
                .filter(webhook_endpoints::disabled_at.is_not_null()),
        )
        .set(webhook_endpoints::disabled_at.eq(webhook_endpoints::disabled_at))
        .returning(webhook_endpoints::id),
    )?;
    let due = |endpoint: &WebhookEndpointId| {
        if disabled.contains(endpoint) {
            parked()
        } else {
            at
        }
    };
    let deliveries: Vec<_> = ids
        .iter()
        .flat_map(|message| endpoints.iter().map(move |endpoint| (*message, *endpoint)))
        .map(|(message, endpoint)| {
            (
                webhook_deliveries::message_id.eq(message),
                webhook_deliveries::endpoint_id.eq(endpoint),
                webhook_deliveries::state.eq(WebhookDeliveryState::Pending),
                webhook_deliveries::attempts.eq(0),
                webhook_deliveries::next_attempt_at.eq(due(&endpoint)),
                webhook_deliveries::created_at.eq(at),
            )
        })
        .collect();
    for part in deliveries.chunks(STATEMENT_ROWS) {
        c.execute(diesel::insert_into(webhook_deliveries::table).values(part))?;
    }
    Ok(ids)
}

/// Queues the workspace endpoint's delivery `delivery` again, due now, with a new retry window:
/// the same message, so the same `webhook-id`. Whether the endpoint had that delivery and it was
/// not being sent (one being sent is left to its worker).
pub fn replay(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    (endpoint, delivery): (WebhookEndpointId, WebhookDeliveryId),
) -> QueryResult<bool> {
    let ours = webhook_endpoints::table
        .filter(webhook_endpoints::workspace_id.eq(workspace))
        .filter(webhook_endpoints::id.eq(endpoint))
        .select(webhook_endpoints::id);
    // A delivery being sent is left to its worker: its outcome is about to be written.
    let changed = diesel::update(
        webhook_deliveries::table
            .filter(webhook_deliveries::id.eq(delivery))
            .filter(webhook_deliveries::endpoint_id.eq_any(ours))
            .filter(webhook_deliveries::state.ne(WebhookDeliveryState::Sending)),
    )
    .set((
        webhook_deliveries::state.eq(WebhookDeliveryState::Pending),
        webhook_deliveries::next_attempt_at.eq(now()),
        webhook_deliveries::first_attempt_at.eq(None::<NaiveDateTime>),
        webhook_deliveries::attempts.eq(0),
    ))
    .execute(conn)?;
    Ok(changed > 0)
}

/// One attempt in the delivery log, as shown.
#[derive(Debug, Clone, Queryable)]
pub struct Attempt {
    /// Its id (the cursor of the next page).
    pub id: WebhookAttemptId,
    /// The delivery it tried (replay names it).
    pub delivery_id: WebhookDeliveryId,
    /// The `webhook-id` sent.
    pub msg_id: String,
    /// The event's type.
    pub event_type: String,
    /// When it was made.
    pub at: NaiveDateTime,
    /// The HTTP status answered, if one was.
    pub http_status: Option<i32>,
    /// Why no status came back (refused, timed out, no connection), in words.
    pub error: Option<String>,
    /// How long it took.
    pub latency_ms: i64,
    /// The answer's first 256 bytes, as text.
    pub response: Option<String>,
    /// The delivery's state now.
    pub state: WebhookDeliveryState,
}

/// The log of the workspace endpoint's attempts older than `cursor` (from the newest when
/// `None`), newest first, at most `limit`.
pub fn attempts_page(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    endpoint: WebhookEndpointId,
    (cursor, limit): (Option<WebhookAttemptId>, i64),
) -> QueryResult<Vec<Attempt>> {
    let ours = webhook_endpoints::table
        .filter(webhook_endpoints::workspace_id.eq(workspace))
        .filter(webhook_endpoints::id.eq(endpoint))
        .select(webhook_endpoints::id);
    let mut query = webhook_attempts::table
        .inner_join(webhook_deliveries::table.inner_join(webhook_messages::table))
        .filter(webhook_attempts::endpoint_id.eq_any(ours))
        .order(webhook_attempts::id.desc())
        .limit(limit)
        .select((
            webhook_attempts::id,
            webhook_attempts::delivery_id,
            webhook_messages::msg_id,
            webhook_messages::event_type,
            webhook_attempts::at,
            webhook_attempts::http_status,
            webhook_attempts::error,
            webhook_attempts::latency_ms,
            webhook_attempts::response,
            webhook_deliveries::state,
        ))
        .into_boxed();
    if let Some(cursor) = cursor {
        query = query.filter(webhook_attempts::id.lt(cursor));
    }
    query.load(conn)
}

/// A claimed delivery with what its POST needs.
#[derive(Clone, Queryable)]
pub struct Claimed {
    /// The delivery.
    pub id: WebhookDeliveryId,
    /// The endpoint.
    pub endpoint: WebhookEndpointId,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// When it was first tried (start of its retry window).
    pub first_attempt_at: Option<NaiveDateTime>,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's signing key, as stored.
    pub secret: String,
    /// The `webhook-id`.
    pub msg_id: String,
    /// The JSON body.
    pub payload: String,
}

/// Claims at most `limit` due deliveries of enabled endpoints for `lease`: the pending ones due
/// and the ones whose lease lapsed (their worker died mid-send). Returns the claim and them.
pub fn claim(
    conn: &mut DbConn,
    limit: i64,
    lease: Duration,
) -> QueryResult<(ClaimToken, Vec<Claimed>)> {
    let token = ClaimToken::new();
    let at = now();
    let until = at + lease;
    // Two reads, each an ordered range of its own partial index (the states are written out, so
    // that SQLite, which cannot match a bound value to an index's condition, uses them too):
    // one read of both, ordered, would sort every due delivery at each claim.
    let enabled = || {
        webhook_endpoints::table
            .filter(webhook_endpoints::disabled_at.is_null())
            .select(webhook_endpoints::id)
    };
    let due = webhook_deliveries::table
        .filter(sql::<Bool>("webhook_deliveries.state = 'pending'"))
        .filter(webhook_deliveries::next_attempt_at.le(at))
        .filter(webhook_deliveries::endpoint_id.eq_any(enabled()))
        .order((webhook_deliveries::next_attempt_at, webhook_deliveries::id))
        .limit(limit)
        .select(webhook_deliveries::id);
    let lapsed = webhook_deliveries::table
        .filter(sql::<Bool>("webhook_deliveries.state = 'sending'"))
        .filter(webhook_deliveries::lease_until.lt(at))
        .filter(webhook_deliveries::endpoint_id.eq_any(enabled()))
        .order(webhook_deliveries::lease_until)
        .limit(limit)
        .select(webhook_deliveries::id);
    let ids: Vec<WebhookDeliveryId> = match conn {
        #[cfg(feature = "postgres")]
        DbConn::Pg(c) => c.transaction(|c| {
            let mut ids = lapsed.for_update().skip_locked().load(c)?;
            ids.extend(
                due.for_update()
                    .skip_locked()
                    .load::<WebhookDeliveryId>(c)?,
            );
            ids.truncate(usize::try_from(limit).unwrap_or(0));
            take(c, &ids, token, (at, until))?;
            Ok::<_, diesel::result::Error>(ids)
        })?,
        DbConn::Sqlite(c) => c.immediate_transaction(|c| {
            let mut ids = lapsed.load(c)?;
            ids.extend(due.load::<WebhookDeliveryId>(c)?);
            ids.truncate(usize::try_from(limit).unwrap_or(0));
            take(c, &ids, token, (at, until))?;
            Ok::<_, diesel::result::Error>(ids)
        })?,
    };
    if ids.is_empty() {
        return Ok((token, Vec::new()));
    }
    let claimed = webhook_deliveries::table
        .inner_join(webhook_messages::table)
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::id.eq_any(&ids))
        .select((
            webhook_deliveries::id,
            webhook_deliveries::endpoint_id,
            webhook_deliveries::attempts,
            webhook_deliveries::first_attempt_at,
            webhook_endpoints::url,
            webhook_endpoints::secret,
            webhook_messages::msg_id,
            webhook_messages::payload,
        ))
        .load(conn)?;
    Ok((token, claimed))
}

/// Moves the claimed `ids` to `sending` under `token` until `until`.
fn take<C: BackendConnection>(
    c: &mut C,
    ids: &[WebhookDeliveryId],
    token: ClaimToken,
    (at, until): (NaiveDateTime, NaiveDateTime),
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    c.execute(
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(ids))).set((
            webhook_deliveries::state.eq(WebhookDeliveryState::Sending),
            webhook_deliveries::claim.eq(Some(token.0)),
            webhook_deliveries::lease_until.eq(Some(until)),
            webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
            webhook_deliveries::first_attempt_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
            >("COALESCE(first_attempt_at, ")
            .bind::<diesel::sql_types::Timestamp, _>(at)
            .sql(")")),
        )),
    )
}

/// How an attempt ended, as the delivery records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// 2xx: delivered.
    Delivered,
    /// Tried again at this time.
    RetryAt(NaiveDateTime),
    /// Out of its retry window: failed.
    Failed,
}

/// One attempt to record.
#[derive(Debug, Clone)]
pub struct Tried {
    /// The delivery.
    pub id: WebhookDeliveryId,
    /// The claim it was sent under (the fence).
    pub claim: ClaimToken,
    /// Its endpoint.
    pub endpoint: WebhookEndpointId,
    /// When the attempt started.
    pub at: NaiveDateTime,
    /// The HTTP status, if one came back.
    pub http_status: Option<i32>,
    /// Why none did, in words.
    pub error: Option<String>,
    /// How long it took.
    pub latency_ms: i64,
    /// The answer's first 256 bytes, as text.
    pub response: Option<String>,
    /// What happens next.
    pub next: Next,
}

/// What [`record`] did to the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The delivery was still held by the attempt's claim, and its outcome was written.
    pub written: bool,
    /// This attempt disabled the endpoint: it had failed for `window`.
    pub disabled: bool,
}

/// Writes the attempt's outcome (if the delivery is still held by its claim), logs it, and keeps
/// the endpoint's failure streak: cleared by a delivery, started by a failure, and an endpoint
/// failing for `window` is disabled.
///
/// Only an attempt whose outcome was written moves the streak: a late one, whose lease lapsed
/// and whose delivery another worker took over, is logged and changes nothing else. An attempt
/// at a delivery deleted with its endpoint meanwhile records nothing.
pub fn record(conn: &mut DbConn, tried: &Tried, window: Duration) -> QueryResult<Recorded> {
    write_transaction!(conn, |c| {
        // Either write holds the delivery's row until commit, so it cannot be deleted under the
        // attempt logged next.
        let written = write_outcome(c, tried)? > 0;
        if !written && !hold(c, tried.id)? {
            return Ok(Recorded {
                written: false,
                disabled: false,
            });
        }
        log_attempt(c, tried)?;
        let disabled = written && track_streak(c, tried, window)?;
        Ok(Recorded { written, disabled })
    })
}

/// Holds the delivery's row for the rest of the transaction without changing it; whether it
/// still exists.
fn hold<C: BackendConnection>(c: &mut C, id: WebhookDeliveryId) -> QueryResult<bool> {
    let touched = c.execute(
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq(id)))
            .set(webhook_deliveries::attempts.eq(webhook_deliveries::attempts)),
    )?;
    Ok(touched > 0)
}

/// Adds the attempt to the delivery log.
fn log_attempt<C: BackendConnection>(c: &mut C, tried: &Tried) -> QueryResult<usize> {
    c.execute(diesel::insert_into(webhook_attempts::table).values((
        webhook_attempts::delivery_id.eq(tried.id),
        webhook_attempts::endpoint_id.eq(tried.endpoint),
        webhook_attempts::at.eq(tried.at),
        webhook_attempts::http_status.eq(tried.http_status),
        webhook_attempts::error.eq(&tried.error),
        webhook_attempts::latency_ms.eq(tried.latency_ms),
        webhook_attempts::response.eq(&tried.response),
    )))
}

/// Writes the delivery's new state, fenced by its claim.
fn write_outcome<C: BackendConnection>(c: &mut C, tried: &Tried) -> QueryResult<usize> {
    let held = webhook_deliveries::table
        .filter(webhook_deliveries::id.eq(tried.id))
        .filter(webhook_deliveries::claim.eq(tried.claim.0))
        .filter(webhook_deliveries::state.eq(WebhookDeliveryState::Sending));
    let status = tried
        .http_status
        .map(|s| s.to_string())
        .or_else(|| tried.error.clone());
    let (state, next_at, delivered_at) = match tried.next {
        Next::Delivered => (WebhookDeliveryState::Delivered, tried.at, Some(now())),
        Next::RetryAt(at) => (WebhookDeliveryState::Pending, at, None),
        Next::Failed => (WebhookDeliveryState::Failed, tried.at, None),
    };
    c.execute(diesel::update(held).set((
        webhook_deliveries::state.eq(state),
        webhook_deliveries::next_attempt_at.eq(next_at),
        webhook_deliveries::delivered_at.eq(delivered_at),
        webhook_deliveries::last_status.eq(status),
        webhook_deliveries::claim.eq(None::<i64>),
        webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
    )))
}

/// Clears or extends the endpoint's failure streak; whether it disabled the endpoint.
fn track_streak<C: BackendConnection>(
    c: &mut C,
    tried: &Tried,
    window: Duration,
) -> QueryResult<bool> {
    let endpoint = webhook_endpoints::table.filter(webhook_endpoints::id.eq(tried.endpoint));
    if tried.next == Next::Delivered {
        c.execute(
            diesel::update(endpoint)
                .set(webhook_endpoints::failing_since.eq(None::<NaiveDateTime>)),
        )?;
        return Ok(false);
    }
    c.execute(
        diesel::update(endpoint.filter(webhook_endpoints::failing_since.is_null()))
            .set(webhook_endpoints::failing_since.eq(Some(tried.at))),
    )?;
    let reason = format!(
        "every delivery failed for {}; enable it again once it answers",
        humantime_serde::re::humantime::format_duration(window)
    );
    let disabled = c.execute(
        diesel::update(
            endpoint
                .filter(webhook_endpoints::disabled_at.is_null())
                .filter(webhook_endpoints::failing_since.le(tried.at - window)),
        )
        .set((
            webhook_endpoints::disabled_at.eq(Some(tried.at)),
            webhook_endpoints::disabled_reason.eq(Some(reason)),
        )),
    )?;
    if disabled > 0 {
        park(c, tried.endpoint)?;
    }
    Ok(disabled > 0)
}

/// Parks the endpoint's pending deliveries until it is enabled (see [`parked`]).
fn park<C: BackendConnection>(c: &mut C, endpoint: WebhookEndpointId) -> QueryResult<usize> {
    c.execute(
        diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::endpoint_id.eq(endpoint))
                .filter(webhook_deliveries::state.eq(WebhookDeliveryState::Pending)),
        )
        .set(webhook_deliveries::next_attempt_at.eq(parked())),
    )
}

/// Deletes up to `limit` events written before `before`, oldest first, with their deliveries and
/// their log, except an event one of whose deliveries is being sent this moment (under a live
/// lease); how many.
pub fn prune(conn: &mut DbConn, before: NaiveDateTime, limit: i64) -> QueryResult<usize> {
    write_transaction!(conn, |c| {
        // A send under a live lease is about to record its attempt; a lapsed one's worker died.
        let sending = webhook_deliveries::table
            .filter(webhook_deliveries::state.eq(WebhookDeliveryState::Sending))
            .filter(webhook_deliveries::lease_until.ge(now()))
            .select(webhook_deliveries::message_id);
        let old: Vec<WebhookMessageId> = c.load(
            webhook_messages::table
                .filter(webhook_messages::created_at.lt(before))
                .filter(webhook_messages::id.ne_all(sending))
                .order((webhook_messages::created_at, webhook_messages::id))
                .limit(limit)
                .select(webhook_messages::id),
        )?;
        if old.is_empty() {
            return Ok(0);
        }
        // Children first, as `delete_endpoint` does.
        let deliveries = webhook_deliveries::table
            .filter(webhook_deliveries::message_id.eq_any(&old))
            .select(webhook_deliveries::id);
        c.execute(diesel::delete(
            webhook_attempts::table.filter(webhook_attempts::delivery_id.eq_any(deliveries)),
        ))?;
        c.execute(diesel::delete(
            webhook_deliveries::table.filter(webhook_deliveries::message_id.eq_any(&old)),
        ))?;
        c.execute(diesel::delete(
            webhook_messages::table.filter(webhook_messages::id.eq_any(&old)),
        ))
    })
}

/// Never the signing key: a debug print may reach a log.
impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("endpoint", &self.endpoint)
            .field("secret", &"…")
            .finish()
    }
}

/// Never the signing key, nor the body (it names a member): a debug print may reach a log.
impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("attempts", &self.attempts)
            .field("msg_id", &self.msg_id)
            .finish_non_exhaustive()
    }
}

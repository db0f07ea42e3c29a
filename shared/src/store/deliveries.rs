//! Email deliveries: claimed in batches under a lease, sent, and recorded.
//!
//! A claim moves due `pending` rows to `sending` with a lease and mints a new link for each
//! invitation in the same transaction. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, so any number of workers
//! share the work without sending twice; SQLite serialises writers, so the same statement without it
//! is already exclusive. A `sending` row whose lease ran out belonged to a worker that died mid-send:
//! it is marked failed rather than re-sent, because the email may already have gone out.

use std::collections::HashMap;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamp};

use crate::db::DbConn;
use crate::db::schema::{accounts, deliveries, invitation_links, members, workspaces};
use crate::ids::DeliveryId;
use crate::on_conn;
use crate::status::DeliveryState;
use crate::store::now;
use crate::tokens;

/// What the last error of a delivery interrupted by a worker's death says.
pub const INTERRUPTED: &str =
    "interrupted: the worker stopped while sending, so the email may or may not have gone out";

/// A claimed delivery with everything needed to write its email.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The delivery.
    pub id: DeliveryId,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// When it was first tried (start of its retry window).
    pub first_attempt_at: NaiveDateTime,
    /// The invitee's address.
    pub to: String,
    /// The invitee's first name, if known.
    pub first_name: Option<String>,
    /// The workspace's display name.
    pub workspace: String,
    /// Who invited them (a name, or their address).
    pub inviter: String,
    /// The link token, minted for this send and never stored in plain.
    pub token: String,
    /// When the link expires.
    pub expires_at: NaiveDateTime,
}

/// How a send ended.
#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// Accepted; the server's reply.
    Sent {
        /// The SMTP reply (or outbox path).
        reply: String,
    },
    /// A transient failure, to be tried again at `at`.
    RetryAt {
        /// The next attempt's time.
        at: NaiveDateTime,
        /// The error or server reply.
        error: String,
    },
    /// A permanent failure, or out of retries.
    Failed {
        /// The error or server reply.
        error: String,
    },
}

#[derive(QueryableByName)]
struct ClaimedId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[cfg(feature = "postgres")]
const CLAIM_PG: &str = "UPDATE deliveries SET state = 'sending', lease_until = $1, attempts = attempts + 1, \
     first_attempt_at = COALESCE(first_attempt_at, $2) \
     WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= $2 \
     ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING id";
const CLAIM_SQLITE: &str = "UPDATE deliveries SET state = 'sending', lease_until = ?1, attempts = attempts + 1, \
     first_attempt_at = COALESCE(first_attempt_at, ?2) \
     WHERE id IN (SELECT id FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?2 \
     ORDER BY next_attempt_at, id LIMIT ?3) RETURNING id";

/// Claims up to `limit` due deliveries for `lease`, minting a link valid for `ttl` for each.
pub fn claim_due(
    conn: &mut DbConn,
    limit: i64,
    lease: Duration,
    ttl: Duration,
) -> QueryResult<Vec<Claimed>> {
    let now = now();
    let lease_until = now + lease;
    let expires_at = now + ttl;
    conn.transaction(|conn| {
        let ids: Vec<i64> = match conn {
            #[cfg(feature = "postgres")]
            DbConn::Pg(c) => diesel::sql_query(CLAIM_PG)
                .bind::<Timestamp, _>(lease_until)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load::<ClaimedId>(c)?,
            DbConn::Sqlite(c) => diesel::sql_query(CLAIM_SQLITE)
                .bind::<Timestamp, _>(lease_until)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load::<ClaimedId>(c)?,
        }
        .into_iter()
        .map(|r| r.id)
        .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        on_conn!(conn, |c| {
            type Row = (
                i64,
                i64,
                i32,
                NaiveDateTime,
                String,
                Option<String>,
                String,
                Option<i64>,
            );
            let rows: Vec<Row> = deliveries::table
                .inner_join(
                    members::table
                        .inner_join(accounts::table)
                        .inner_join(workspaces::table),
                )
                .filter(deliveries::id.eq_any(&ids))
                .select((
                    deliveries::id,
                    deliveries::invitation_id,
                    deliveries::attempts,
                    deliveries::first_attempt_at.assume_not_null(),
                    accounts::email,
                    accounts::first_name,
                    workspaces::name,
                    members::invited_by,
                ))
                .load(c)?;
            let inviter_ids: Vec<i64> = rows.iter().filter_map(|r| r.7).collect();
            let inviters: HashMap<i64, String> = accounts::table
                .filter(accounts::id.eq_any(&inviter_ids))
                .select((
                    accounts::id,
                    accounts::email,
                    accounts::first_name,
                    accounts::last_name,
                ))
                .load::<(i64, String, Option<String>, Option<String>)>(c)?
                .into_iter()
                .map(|(id, email, first, last)| (id, display_name(email, first, last)))
                .collect();
            let mut claimed = Vec::with_capacity(rows.len());
            let mut links = Vec::with_capacity(rows.len());
            for (id, invitation_id, attempts, first_attempt_at, to, first_name, workspace, by) in
                rows
            {
                let token = tokens::mint();
                links.push((
                    invitation_links::token_hash.eq(token.hash),
                    invitation_links::invitation_id.eq(invitation_id),
                    invitation_links::expires_at.eq(expires_at),
                    invitation_links::created_at.eq(now),
                ));
                claimed.push(Claimed {
                    id: DeliveryId(id),
                    attempts,
                    first_attempt_at,
                    to,
                    first_name,
                    inviter: by
                        .and_then(|b| inviters.get(&b).cloned())
                        .unwrap_or_else(|| workspace.clone()),
                    workspace,
                    token: token.plain,
                    expires_at,
                });
            }
            // One statement for the batch's links, not a round trip per email.
            diesel::insert_into(invitation_links::table)
                .values(&links)
                .execute(c)?;
            Ok(claimed)
        })
    })
}

/// "First Last", or the address when the account has no name.
fn display_name(email: String, first: Option<String>, last: Option<String>) -> String {
    let name = [first, last]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() { email } else { name }
}

/// Records how each send of a batch ended, in one transaction.
pub fn record(conn: &mut DbConn, outcomes: &[(DeliveryId, SendOutcome)]) -> QueryResult<()> {
    let now = now();
    conn.transaction(|conn| {
        on_conn!(conn, |c| {
            for (id, outcome) in outcomes {
                let row = deliveries::table.find(id.0);
                match outcome {
                    SendOutcome::Sent { reply } => diesel::update(row)
                        .set((
                            deliveries::state.eq(DeliveryState::Sent.as_str()),
                            deliveries::sent_at.eq(Some(now)),
                            deliveries::lease_until.eq(None::<NaiveDateTime>),
                            deliveries::last_reply.eq(Some(reply)),
                            deliveries::last_error.eq(None::<String>),
                        ))
                        .execute(c)?,
                    SendOutcome::RetryAt { at, error } => diesel::update(row)
                        .set((
                            deliveries::state.eq(DeliveryState::Pending.as_str()),
                            deliveries::next_attempt_at.eq(at),
                            deliveries::lease_until.eq(None::<NaiveDateTime>),
                            deliveries::last_error.eq(Some(error)),
                        ))
                        .execute(c)?,
                    SendOutcome::Failed { error } => diesel::update(row)
                        .set((
                            deliveries::state.eq(DeliveryState::Failed.as_str()),
                            deliveries::lease_until.eq(None::<NaiveDateTime>),
                            deliveries::last_error.eq(Some(error)),
                        ))
                        .execute(c)?,
                };
            }
            Ok(())
        })
    })
}

/// Fails every `sending` delivery whose lease has run out (its worker died mid-send).
pub fn fail_expired_leases(conn: &mut DbConn) -> QueryResult<usize> {
    on_conn!(conn, |c| {
        diesel::update(
            deliveries::table
                .filter(deliveries::state.eq(DeliveryState::Sending.as_str()))
                .filter(deliveries::lease_until.lt(now())),
        )
        .set((
            deliveries::state.eq(DeliveryState::Failed.as_str()),
            deliveries::lease_until.eq(None::<NaiveDateTime>),
            deliveries::last_error.eq(Some(INTERRUPTED)),
        ))
        .execute(c)
    })
}

/// Deliveries waiting to be sent, over all imports (a gauge for operators).
pub fn pending_count(conn: &mut DbConn) -> QueryResult<i64> {
    on_conn!(conn, |c| {
        deliveries::table
            .filter(deliveries::state.eq_any([
                DeliveryState::Pending.as_str(),
                DeliveryState::Sending.as_str(),
            ]))
            .count()
            .get_result(c)
    })
}

//! Registered worker processes and their heartbeats.
//!
//! Every process that claims work (each `invite-worker`, and `serve` on the embedded stack)
//! registers a row and writes its heartbeat every `WORKER_HEARTBEAT_INTERVAL`; its claims of
//! emails and imports name that row. A process whose heartbeat is older than `WORKER_DEAD_AFTER`
//! is dead: housekeeping deletes its row ([`remove_dead`]), and then hands back whatever claims
//! name a process no longer registered, at once rather than after their leases. A process whose
//! heartbeat finds its row gone knows it was declared dead, and registers anew.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::schema::workers;
use crate::ids::WorkerId;
use crate::store::{deliveries, imports, now};
use crate::{on_conn, write_transaction};

/// Registers a process by `name` (host and process id, for operators); its id.
pub fn register(conn: &mut DbConn, name: &str) -> QueryResult<WorkerId> {
    let now = now();
    on_conn!(conn, |c| {
        diesel::insert_into(workers::table)
            .values((
                workers::name.eq(name),
                workers::started_at.eq(now),
                workers::heartbeat_at.eq(now),
            ))
            .returning(workers::id)
            .get_result(c)
    })
}

/// Writes the process's heartbeat; `false` when its row is gone (it was declared dead, and its
/// claims may have been handed back).
pub fn heartbeat(conn: &mut DbConn, id: WorkerId) -> QueryResult<bool> {
    let now = now();
    on_conn!(conn, |c| {
        diesel::update(workers::table.find(id))
            .set(workers::heartbeat_at.eq(now))
            .execute(c)
            .map(|n| n > 0)
    })
}

/// Removes the process's row (a graceful stop); claims still naming it are handed back by the
/// next housekeeping.
pub fn deregister(conn: &mut DbConn, id: WorkerId) -> QueryResult<()> {
    on_conn!(conn, |c| {
        diesel::delete(workers::table.find(id)).execute(c).map(drop)
    })
}

/// The cut-off of live heartbeats: older ones are dead.
fn cutoff(dead_after: Duration) -> NaiveDateTime {
    let dead_after = chrono::TimeDelta::from_std(dead_after).unwrap_or(chrono::TimeDelta::MAX);
    now()
        .checked_sub_signed(dead_after)
        .unwrap_or(NaiveDateTime::MIN)
}

/// Deletes the rows of processes whose heartbeat is older than `dead_after`; how many.
///
/// A heartbeat written meanwhile either lands first (the row is no longer dead and stays) or
/// finds the row gone: a process never goes on believing it holds claims that were handed back.
pub fn remove_dead(conn: &mut DbConn, dead_after: Duration) -> QueryResult<usize> {
    let cutoff = cutoff(dead_after);
    on_conn!(conn, |c| {
        diesel::delete(workers::table.filter(workers::heartbeat_at.lt(cutoff))).execute(c)
    })
}

/// Processes whose heartbeat is at most `dead_after` old (a gauge for operators).
pub fn alive(conn: &mut DbConn, dead_after: Duration) -> QueryResult<i64> {
    let cutoff = cutoff(dead_after);
    on_conn!(conn, |c| {
        workers::table
            .filter(workers::heartbeat_at.ge(cutoff))
            .count()
            .get_result(c)
    })
}

/// What a start-up hand-back gave back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandedBack {
    /// Emails put back to `pending`, to be sent again with their Message-ID.
    pub deliveries: usize,
    /// Imports to be resumed at their checkpoint.
    pub imports: usize,
}

/// Forgets every registered process and hands back every claim at once, in one transaction: for
/// `serve` on the embedded stack at start-up, the only process that ever claims there, so every
/// claim still held belongs to an earlier instance of it.
pub fn hand_back_all(conn: &mut DbConn) -> QueryResult<HandedBack> {
    let now = now();
    write_transaction!(conn, |c| {
        diesel::delete(workers::table).execute(c)?;
        Ok(HandedBack {
            deliveries: deliveries::requeue_all(c, now)?,
            imports: imports::hand_back_all(c, now)?,
        })
    })
}

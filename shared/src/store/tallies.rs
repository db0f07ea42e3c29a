//! An import's emails by state, kept as they change: every statement that creates a delivery of an
//! import or moves one between the counted states adds its change here, in its own transaction, so
//! that progress is read from a few rows instead of counted over all of an import's deliveries.
//!
//! Each change goes to one of [`SHARDS`] rows of the import, picked at random, so that concurrent
//! writers (each worker's recorder, the import's chunks, support actions) seldom wait for the same
//! row lock; a reader adds the rows up. Moves within `unsent` (a claim, a lapsed lease) and to or
//! from `cancelled` change nothing here but what they take from `sent`, `failed` or `unsent`.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::db::DbConn;
use crate::db::backend::BackendConnection;
use crate::db::schema::import_email_tallies as t;
use crate::ids::ImportId;
use crate::on_conn;
use crate::status::DeliveryState;

/// Rows per import that writers spread their changes over.
pub const SHARDS: i16 = 16;

/// A change to an import's tallies, or their sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Pending or being sent.
    pub unsent: i64,
    /// Accepted by the mail server.
    pub sent: i64,
    /// Failed permanently or out of retries.
    pub failed: i64,
    /// Sent, then reported undeliverable.
    pub bounced: i64,
    /// Sent, then reported as abuse.
    pub complained: i64,
}

impl Tally {
    /// `n` deliveries counted in `state` (nothing for `cancelled`).
    pub fn of(state: DeliveryState, n: i64) -> Tally {
        let mut tally = Tally::default();
        match state {
            DeliveryState::Pending | DeliveryState::Sending => tally.unsent = n,
            DeliveryState::Sent => tally.sent = n,
            DeliveryState::Failed => tally.failed = n,
            DeliveryState::Bounced => tally.bounced = n,
            DeliveryState::Complained => tally.complained = n,
            DeliveryState::Cancelled => {}
        }
        tally
    }

    /// `n` deliveries moved from one state to another.
    pub fn moved(from: DeliveryState, to: DeliveryState, n: i64) -> Tally {
        Tally::of(to, n) - Tally::of(from, n)
    }
}

impl std::ops::Add for Tally {
    type Output = Tally;

    fn add(self, o: Tally) -> Tally {
        Tally {
            unsent: self.unsent + o.unsent,
            sent: self.sent + o.sent,
            failed: self.failed + o.failed,
            bounced: self.bounced + o.bounced,
            complained: self.complained + o.complained,
        }
    }
}

impl std::ops::Sub for Tally {
    type Output = Tally;

    fn sub(self, o: Tally) -> Tally {
        Tally {
            unsent: self.unsent - o.unsent,
            sent: self.sent - o.sent,
            failed: self.failed - o.failed,
            bounced: self.bounced - o.bounced,
            complained: self.complained - o.complained,
        }
    }
}

/// Sums the changes of many deliveries per import, leaving out those of no import.
pub fn by_import(
    changes: impl IntoIterator<Item = (Option<ImportId>, Tally)>,
) -> HashMap<ImportId, Tally> {
    let mut sums: HashMap<ImportId, Tally> = HashMap::new();
    for (import, change) in changes {
        if let Some(import) = import {
            let sum = sums.entry(import).or_default();
            *sum = *sum + change;
        }
    }
    sums
}

/// A random shard for one write.
pub fn shard() -> i16 {
    rand::random_range(0..SHARDS)
}

/// Adds `change` to the tallies of `import` inside the caller's transaction; nothing for no change.
pub(crate) fn add_tally<C: BackendConnection>(
    c: &mut C,
    import: ImportId,
    change: Tally,
) -> QueryResult<usize> {
    if change == Tally::default() {
        return Ok(0);
    }
    c.execute(
        diesel::insert_into(t::table)
            .values((
                t::import_id.eq(import),
                t::shard.eq(shard()),
                t::unsent.eq(change.unsent),
                t::sent.eq(change.sent),
                t::failed.eq(change.failed),
                t::bounced.eq(change.bounced),
                t::complained.eq(change.complained),
            ))
            .on_conflict((t::import_id, t::shard))
            .do_update()
            .set((
                t::unsent.eq(t::unsent + diesel::upsert::excluded(t::unsent)),
                t::sent.eq(t::sent + diesel::upsert::excluded(t::sent)),
                t::failed.eq(t::failed + diesel::upsert::excluded(t::failed)),
                t::bounced.eq(t::bounced + diesel::upsert::excluded(t::bounced)),
                t::complained.eq(t::complained + diesel::upsert::excluded(t::complained)),
            )),
    )
}

/// Adds `change` to the import's tallies, in the caller's transaction if any: for a change of
/// deliveries' states made outside this crate's store functions.
pub fn add(conn: &mut DbConn, import: ImportId, change: Tally) -> QueryResult<()> {
    on_conn!(conn, |c| add_tally(c, import, change).map(drop))
}

/// One shard of an import's tallies.
#[derive(Queryable, Selectable)]
#[diesel(table_name = t, check_for_backend(diesel::sqlite::Sqlite))]
struct Shard {
    import_id: ImportId,
    unsent: i64,
    sent: i64,
    failed: i64,
    bounced: i64,
    complained: i64,
}

/// The tallies of several imports (none for an import without deliveries).
pub fn of(conn: &mut DbConn, imports: &[ImportId]) -> QueryResult<HashMap<ImportId, Tally>> {
    let shards: Vec<Shard> = on_conn!(conn, |c| {
        t::table
            .filter(t::import_id.eq_any(imports))
            .select(Shard::as_select())
            .load(c)
    })?;
    Ok(by_import(shards.into_iter().map(|shard| {
        let tally = Tally {
            unsent: shard.unsent,
            sent: shard.sent,
            failed: shard.failed,
            bounced: shard.bounced,
            complained: shard.complained,
        };
        (Some(shard.import_id), tally)
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_take_from_one_count_and_add_to_another() {
        use DeliveryState::*;
        assert_eq!(
            Tally::moved(Sending, Sent, 3),
            Tally {
                unsent: -3,
                sent: 3,
                ..Tally::default()
            }
        );
        assert_eq!(
            Tally::moved(Failed, Pending, 2),
            Tally {
                unsent: 2,
                failed: -2,
                ..Tally::default()
            }
        );
        assert_eq!(
            Tally::moved(Failed, Cancelled, 1),
            Tally {
                failed: -1,
                ..Tally::default()
            }
        );
        assert_eq!(Tally::moved(Pending, Sending, 5), Tally::default());
    }
}

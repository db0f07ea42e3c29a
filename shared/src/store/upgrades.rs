//! Upgrades of stored data that SQL cannot do, run once right after the migrations: a migration
//! adds a task's name to `data_upgrades`, [`run_pending`] runs it and removes the name. Each task
//! is idempotent, so processes that start together may both run it.

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};
use diesel::sql_types::Bool;

use crate::db::DbConn;
use crate::db::schema::{accounts, data_upgrades};
use crate::domain::email::InviteeEmail;
use crate::ids::{AccountId, MemberId};
use crate::on_conn;
use crate::store::members;

/// Addresses stored before they were stored canonically (NFC, the domain as an A-label).
const CANONICAL_ADDRESSES: &str = "canonical_addresses";

/// Memberships written before they carried the text a search finds them by.
const MEMBER_SEARCH_TEXT: &str = "member_search_text";

/// Memberships [`member_search_texts`] fills per transaction: short transactions, so the API and
/// the workers go on while a large table is filled at start-up.
const SEARCH_TEXT_BATCH: i64 = 1000;

/// What [`canonical_addresses`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Canonicalised {
    /// Addresses rewritten to their canonical form.
    pub rewritten: usize,
    /// Addresses left as they were because another account has their canonical form: the same
    /// person with two accounts, from before.
    pub taken: usize,
    /// Addresses left as they were because they are not acceptable any more.
    pub refused: usize,
}

/// Runs every pending task, then forgets it.
pub fn run_pending(conn: &mut DbConn) -> QueryResult<()> {
    if is_pending(conn, CANONICAL_ADDRESSES)? {
        let done = canonical_addresses(conn)?;
        tracing::info!(
            rewritten = done.rewritten,
            left_as_another_accounts = done.taken,
            left_as_refused = done.refused,
            "stored addresses brought to their canonical form"
        );
        forget(conn, CANONICAL_ADDRESSES)?;
    }
    // After the addresses: the text holds the canonical address.
    if is_pending(conn, MEMBER_SEARCH_TEXT)? {
        let filled = member_search_texts(conn)?;
        tracing::info!(filled, "memberships given the text a search finds them by");
        forget(conn, MEMBER_SEARCH_TEXT)?;
    }
    Ok(())
}

/// Fills the search text of every membership that has none (written before search existed), a
/// batch per transaction in id order; how many were filled.
pub fn member_search_texts(conn: &mut DbConn) -> QueryResult<usize> {
    let mut after = MemberId(0);
    let mut filled = 0;
    while let Some((last, n)) = members::fill_search_texts(conn, after, SEARCH_TEXT_BATCH)? {
        filled += n;
        after = last;
    }
    Ok(filled)
}

fn is_pending(conn: &mut DbConn, name: &str) -> QueryResult<bool> {
    on_conn!(conn, |c| {
        diesel::select(diesel::dsl::exists(
            data_upgrades::table.filter(data_upgrades::name.eq(name)),
        ))
        .get_result(c)
    })
}

fn forget(conn: &mut DbConn, name: &str) -> QueryResult<usize> {
    on_conn!(conn, |c| {
        diesel::delete(data_upgrades::table.filter(data_upgrades::name.eq(name))).execute(c)
    })
}

/// Rewrites each stored address that is not in its canonical form. Only an address with a
/// character outside printable ASCII can differ from its canonical form (stored addresses were
/// lower-cased already), so only those are read.
pub fn canonical_addresses(conn: &mut DbConn) -> QueryResult<Canonicalised> {
    let beyond_ascii = if matches!(conn, DbConn::Sqlite(_)) {
        "email GLOB '*[^ -~]*'"
    } else {
        "email ~ '[^ -~]'"
    };
    let candidates: Vec<(AccountId, String)> = on_conn!(conn, |c| {
        accounts::table
            .filter(sql::<Bool>(beyond_ascii))
            .select((accounts::id, accounts::email))
            .load(c)
    })?;
    let mut done = Canonicalised::default();
    for (id, stored) in candidates {
        let Ok(canonical) = InviteeEmail::parse(&stored) else {
            done.refused += 1;
            continue;
        };
        if canonical.as_str() == stored {
            continue;
        }
        if rewrite(conn, id, canonical.as_str())? {
            done.rewritten += 1;
        } else {
            done.taken += 1;
        }
    }
    Ok(done)
}

/// Sets account `id`'s address to `canonical` unless another account has it (the unique address
/// decides, whichever process rewrites first).
fn rewrite(conn: &mut DbConn, id: AccountId, canonical: &str) -> QueryResult<bool> {
    let updated = on_conn!(conn, |c| {
        diesel::update(accounts::table.find(id))
            .set(accounts::email.eq(canonical))
            .execute(c)
    });
    match updated {
        Ok(1) => {
            members::refresh_search_texts(conn, id)?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(other) => Err(other),
    }
}

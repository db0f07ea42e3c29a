//! The store: every read and write of the ledger, as functions over a [`DbConn`](crate::db::DbConn).
//!
//! Functions run inside `Db::run` (a blocking thread). Each module owns one part of the flow.
//!
//! Rows come back as named structs typed with the ids of [`crate::ids`] and the enums of
//! [`crate::status`], so a stored text no enum knows fails the read instead of being taken for
//! some state. Their `Selectable` derives check each field against its column on SQLite, the
//! backend every build has; the field types decode alike on PostgreSQL.

pub mod audit;
pub mod auth;
pub mod deliveries;
pub mod groups;
pub mod imports;
pub mod invitations;
pub mod members;
pub mod rows;
pub mod support;
pub mod tallies;

use chrono::NaiveDateTime;

/// The current time as stored (UTC, no zone), so both backends compare timestamps alike.
pub fn now() -> NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

/// Raw cell text as the database can store it: PostgreSQL `TEXT` refuses NUL bytes, which any
/// upload may contain, so they become U+FFFD.
pub fn storable(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

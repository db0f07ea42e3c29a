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
pub mod bounces;
pub mod deliveries;
pub mod groups;
pub mod handovers;
pub mod imports;
pub mod invitations;
pub mod members;
pub mod reminders;
pub mod rows;
pub mod support;
pub mod suppression;
pub mod tallies;
pub mod timeline;
pub mod upgrades;
pub mod webhooks;
pub mod workers;

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

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection as _;
    use diesel::result::Error;
    use diesel::{Connection as _, QueryResult, SqliteConnection};
    use diesel_migrations::MigrationHarness as _;

    use crate::db::{DbConn, SQLITE_MIGRATIONS};
    use crate::ids::{ImportId, WorkspaceId};
    use crate::store::{imports, members};

    /// A migrated database holding a workspace with one member and one import, stored as given.
    fn ledger(import_status: &str, member_role: &str, member_status: &str) -> DbConn {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let at = "'2026-11-01 00:00:00'";
        c.batch_execute(&format!(
            "INSERT INTO workspaces (id, slug, name, created_at) VALUES (1, 'w', 'W', {at}); \
             INSERT INTO accounts (id, email, created_at) VALUES (1, 'a@example.com', {at}); \
             INSERT INTO members (id, workspace_id, account_id, role, status, created_at, \
                 updated_at) VALUES (1, 1, 1, '{member_role}', '{member_status}', {at}, {at}); \
             INSERT INTO imports (id, workspace_id, created_by, file_name, file_size, status, \
                 created_at) VALUES (1, 1, 1, 'a.csv', 1, '{import_status}', {at});"
        ))
        .unwrap();
        DbConn::Sqlite(c)
    }

    fn the_members(conn: &mut DbConn) -> QueryResult<Vec<members::MemberView>> {
        members::list(conn, WorkspaceId(1), &members::MemberFilter::default(), 10)
    }

    /// Asserts that `read` failed to decode a row, with a message (Diesel names the field, its
    /// cause the value) that names `value`.
    fn assert_refused<T: std::fmt::Debug>(read: QueryResult<T>, value: &str) {
        let Err(Error::DeserializationError(e)) = read else {
            panic!("expected a deserialization error naming {value:?}, got {read:?}");
        };
        let mut message = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            message = format!("{message}: {c}");
            cause = c.source();
        }
        assert!(message.contains(&format!("{value:?}")), "{message}");
    }

    #[test]
    fn known_stored_values_read_back_as_their_types() {
        let mut conn = ledger("completed", "end_user", "requested");
        let import = imports::get_any(&mut conn, ImportId(1)).unwrap().unwrap();
        assert_eq!(import.status, crate::status::ImportStatus::Completed);
        let member = the_members(&mut conn).unwrap().remove(0);
        assert_eq!(member.role, crate::domain::role::Role::EndUser);
        assert_eq!(member.status, crate::status::MemberStatus::Requested);
    }

    #[test]
    fn an_unknown_import_status_fails_the_read_instead_of_reading_as_failed() {
        let mut conn = ledger("paused", "end_user", "active");
        assert_refused(imports::get_any(&mut conn, ImportId(1)), "paused");
    }

    #[test]
    fn an_unknown_member_status_fails_the_read_instead_of_reading_as_archived() {
        let mut conn = ledger("queued", "end_user", "suspended");
        assert_refused(the_members(&mut conn), "suspended");
    }

    #[test]
    fn an_unknown_role_fails_the_read() {
        let mut conn = ledger("queued", "owner", "active");
        assert_refused(the_members(&mut conn), "owner");
    }
}

//! Upgrades: this release's migrations, applied to a database that the migrations of the releases
//! before made and that holds members and emails in every state, named people and a stored
//! upload, keep them and leave them readable and sendable.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::migration::{MigrationSource, MigrationVersion};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use invite_shared::db::{DbConn, PG_MIGRATIONS, SQLITE_MIGRATIONS};
use invite_shared::ids::{DeliveryId, ImportId, MemberId, WorkspaceId};
use invite_shared::status::{DeliveryState, InvitationCause};
use invite_shared::store::deliveries::{self, ClaimMemory, ClaimRequest, Recorded, SendOutcome};
use invite_shared::store::imports;
use invite_shared::store::members::{self, MemberFilter};
use invite_shared::store::timeline::{self, What};
use invite_shared::store::upgrades::{self, Canonicalised};
use invite_tests::app::{Stack, TestDatabase};
use invite_tests::on_both_stacks;

on_both_stacks!(this_releases_migrations_keep_every_member_name_and_email_usable);

/// The version of this release's first migration: the ones before it make the database that
/// [`BEFORE`] is written for, and it and every later one are what an upgrade applies.
const FIRST_OF_THIS_RELEASE: &str = "2026-12-06-000001";

/// Written with the schema of the releases before: an admin, one invitee each whose email was
/// sent, failed, or is still to be sent (invited by the admin), the first of them with a later
/// invitation made for a copied link, and a person who is a member of two workspaces. Names were still kept on the account then, and addresses as they were written:
/// a Unicode domain, a decomposed letter, and one person under both forms of a domain.
const BEFORE: &str = "\
    INSERT INTO workspaces (id, slug, name, created_at) VALUES \
        (1, 'upgrade', 'Upgrade', '2026-11-01 00:00:00'), \
        (2, 'other', 'Other', '2026-11-01 00:00:00'); \
    INSERT INTO accounts (id, email, first_name, last_name, created_at) VALUES \
        (1, 'admin@example.com', 'Grace', 'Hopper', '2026-11-01 00:00:00'), \
        (2, 'sent@example.com', NULL, NULL, '2026-11-01 00:00:00'), \
        (3, 'failed@example.com', NULL, NULL, '2026-11-01 00:00:00'), \
        (4, 'pending@example.com', 'Pat', NULL, '2026-11-01 00:00:00'), \
        (5, 'both@example.com', 'Ada', 'Lovelace', '2026-11-01 00:00:00'), \
        (6, 'ute@bücher.de', NULL, NULL, '2026-11-01 00:00:00'), \
        (7, 'jo\u{308}rg@example.com', NULL, NULL, '2026-11-01 00:00:00'), \
        (8, 'dup@bücher.de', NULL, NULL, '2026-11-01 00:00:00'), \
        (9, 'dup@xn--bcher-kva.de', NULL, NULL, '2026-11-01 00:00:00'); \
    INSERT INTO members (id, workspace_id, account_id, role, status, invited_by, created_at, \
        updated_at) VALUES \
        (1, 1, 1, 'admin', 'active', NULL, '2026-11-01 00:00:00', '2026-11-01 00:00:00'), \
        (2, 1, 2, 'end_user', 'invited', 1, '2026-11-01 00:00:00', '2026-11-01 00:00:00'), \
        (3, 1, 3, 'end_user', 'invited', 1, '2026-11-01 00:00:00', '2026-11-01 00:00:00'), \
        (4, 1, 4, 'end_user', 'invited', 1, '2026-11-01 00:00:00', '2026-11-01 00:00:00'), \
        (5, 1, 5, 'builder', 'active', NULL, '2026-11-01 00:00:00', '2026-11-01 00:00:00'), \
        (6, 2, 5, 'end_user', 'invited', NULL, '2026-11-01 00:00:00', '2026-11-01 00:00:00'); \
    INSERT INTO invitations (id, member_id, created_at) VALUES \
        (1, 2, '2026-11-01 00:00:00'), (2, 3, '2026-11-01 00:00:00'), \
        (3, 4, '2026-11-01 00:00:00'), (4, 2, '2026-11-02 00:00:00'); \
    INSERT INTO deliveries (id, invitation_id, member_id, state, attempts, next_attempt_at, \
        created_at, last_error) VALUES \
        (1, 1, 2, 'sent', 1, '2026-11-01 00:00:00', '2026-11-01 00:00:00', NULL), \
        (2, 2, 3, 'failed', 1, '2026-11-01 00:00:00', '2026-11-01 00:00:00', '550 no such user'), \
        (3, 3, 4, 'pending', 0, '2026-11-01 00:00:00', '2026-11-01 00:00:00', NULL); \
    INSERT INTO imports (id, workspace_id, created_by, file_name, file_size, status, created_at) \
        VALUES (1, 1, 1, 'before.csv', 9000, 'queued', '2026-11-01 00:00:00');";

/// A stored piece of that upload, large enough to be compressed: [`LINE`] and a newline,
/// [`LINES`] times.
const LINE: &str = "First,Last,someone@example.com";
const LINES: usize = 500;

/// Stores that piece; `repeated` is the backend's SQL for [`LINE`] and a newline `LINES` times.
fn store_chunk(repeated: &str) -> String {
    format!("INSERT INTO import_chunks (import_id, seq, data) VALUES (1, 0, {repeated});")
}

fn chunk_pg() -> String {
    store_chunk(&format!(
        "convert_to(repeat('{LINE}' || chr(10), {LINES}), 'UTF8')"
    ))
}

/// SQLite has no `repeat`: `LINES` zero bytes in hex, each `00` replaced.
fn chunk_sqlite() -> String {
    store_chunk(&format!(
        "CAST(replace(hex(zeroblob({LINES})), '00', '{LINE}' || char(10)) AS BLOB)"
    ))
}

/// Applies the migrations of `source` older than [`FIRST_OF_THIS_RELEASE`], writes [`BEFORE`] and
/// `chunk`, then applies every pending migration (`source` makes the embedded list, which is not
/// `Copy`, once per use).
fn upgrade<C>(conn: &mut C, source: fn() -> EmbeddedMigrations, chunk: &str)
where
    C: MigrationHarness<C::Backend> + Connection + SimpleConnection,
    EmbeddedMigrations: MigrationSource<C::Backend>,
{
    let first = MigrationVersion::from(FIRST_OF_THIS_RELEASE.replace('-', ""));
    let mut older = 0;
    // Pending migrations come oldest first.
    while let Some(next) = conn
        .pending_migrations(source())
        .unwrap()
        .into_iter()
        .next()
        .filter(|m| m.name().version() < first)
    {
        conn.run_migration(next.as_ref()).unwrap();
        older += 1;
    }
    assert!(older > 0, "the releases before left migrations");
    conn.batch_execute(BEFORE).unwrap();
    conn.batch_execute(chunk).unwrap();
    let applied = conn.run_pending_migrations(source()).unwrap();
    assert!(
        applied.iter().all(|v| *v >= first),
        "only this release's migrations are left: {applied:?}"
    );
    assert!(
        applied.contains(&first),
        "this release's first migration applies: {applied:?}"
    );
}

async fn this_releases_migrations_keep_every_member_name_and_email_usable(stack: Stack) {
    let folder = tempfile::tempdir().unwrap();
    let (_database, mut conn) = match stack {
        Stack::Postgres => {
            let (database, url) = TestDatabase::create().unwrap();
            let mut c = PgConnection::establish(&url).unwrap();
            upgrade(&mut c, || PG_MIGRATIONS, &chunk_pg());
            (Some(database), DbConn::Pg(c))
        }
        Stack::Sqlite => {
            let path = folder.path().join("upgrade.db");
            let mut c = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
            upgrade(&mut c, || SQLITE_MIGRATIONS, &chunk_sqlite());
            (None, DbConn::Sqlite(c))
        }
    };

    assert_eq!(
        emails_in(&mut conn, DeliveryState::Sent),
        ["sent@example.com"]
    );
    assert_eq!(
        emails_in(&mut conn, DeliveryState::Failed),
        ["failed@example.com"]
    );
    let request = ClaimRequest {
        limit: 10,
        lease: Duration::from_secs(60),
        ttl: Duration::from_secs(3600),
        worker: None,
    };
    let claimed = deliveries::claim_due(&mut conn, request, &mut ClaimMemory::default()).unwrap();
    assert_eq!(claimed.len(), 1, "the email still to be sent");
    assert_eq!(
        (claimed[0].id, claimed[0].to.as_str()),
        (DeliveryId(3), "pending@example.com")
    );
    assert_eq!(
        claimed[0].first_name.as_deref(),
        Some("Pat"),
        "its greeting"
    );
    assert_eq!(claimed[0].inviter, "Grace Hopper", "its inviter");
    let sent = Recorded {
        id: claimed[0].id,
        claim: claimed[0].claim,
        outcome: SendOutcome::Sent {
            reply: "250 2.0.0 OK".into(),
        },
    };
    assert_eq!(deliveries::record(&mut conn, &[sent]).unwrap().written, 1);
    assert_eq!(
        emails_in(&mut conn, DeliveryState::Sent),
        ["pending@example.com", "sent@example.com"]
    );
    assert_eq!(
        imports::read_chunk(&mut conn, ImportId(1), 0).unwrap(),
        Some(format!("{LINE}\n").repeat(LINES).into_bytes()),
        "the upload stored before reads back whole"
    );
    assert_eq!(
        names_of(&mut conn, WorkspaceId(1), "both@example.com"),
        (Some("Ada".into()), Some("Lovelace".into())),
        "the account's names on its oldest membership, of the workspace whose file gave them"
    );
    assert_eq!(
        names_of(&mut conn, WorkspaceId(2), "both@example.com"),
        (None, None),
        "another workspace never gets names its own files did not give"
    );
    assert_eq!(
        names_of(&mut conn, WorkspaceId(1), "sent@example.com"),
        (None, None),
        "an unnamed account's membership stays unnamed"
    );

    let story = timeline::page(&mut conn, (WorkspaceId(1), MemberId(2)), None, 10)
        .unwrap()
        .expect("the member");
    let causes: Vec<(i64, Option<InvitationCause>)> = story
        .iter()
        .filter_map(|e| match e.what {
            What::Invited { invitation, cause } => Some((invitation.0, cause)),
            _ => None,
        })
        .collect();
    assert_eq!(
        causes,
        [
            (4, Some(InvitationCause::InvitationLink)),
            (1, Some(InvitationCause::Import))
        ],
        "what made the invitations of before, where the ledger tells"
    );

    let done = upgrades::canonical_addresses(&mut conn).unwrap();
    assert_eq!(
        done,
        Canonicalised {
            rewritten: 2,
            taken: 1,
            refused: 0
        }
    );
    assert_eq!(
        account_emails(&mut conn),
        [
            "dup@bücher.de",
            "dup@xn--bcher-kva.de",
            "jörg@example.com",
            "ute@xn--bcher-kva.de"
        ]
    );
    upgrades::run_pending(&mut conn).unwrap();
    let pending: i64 = invite_shared::on_conn!(&mut conn, |c| {
        use diesel::prelude::*;
        invite_shared::db::schema::data_upgrades::table
            .count()
            .get_result(c)
    })
    .unwrap();
    assert_eq!(pending, 0, "each task runs once, then is forgotten");
}

/// The addresses of accounts 6 to 9, sorted.
fn account_emails(conn: &mut DbConn) -> Vec<String> {
    use diesel::prelude::*;
    use invite_shared::db::schema::accounts;
    let mut emails: Vec<String> = invite_shared::on_conn!(conn, |c| accounts::table
        .filter(accounts::id.ge(6))
        .select(accounts::email)
        .load(c))
    .unwrap();
    emails.sort();
    emails
}

/// The names workspace `workspace`'s member list shows for `email`.
fn names_of(
    conn: &mut DbConn,
    workspace: WorkspaceId,
    email: &str,
) -> (Option<String>, Option<String>) {
    let member = members::list(conn, workspace, &MemberFilter::default(), 50)
        .unwrap()
        .into_iter()
        .find(|m| m.email == email)
        .unwrap_or_else(|| panic!("{email} is a member of workspace {workspace}"));
    (member.first_name, member.last_name)
}

/// The addresses of the members whose latest email is in `state`, sorted.
fn emails_in(conn: &mut DbConn, state: DeliveryState) -> Vec<String> {
    let filter = MemberFilter {
        email_status: Some(state),
        ..MemberFilter::default()
    };
    let mut emails: Vec<String> = members::list(conn, WorkspaceId(1), &filter, 50)
        .unwrap()
        .into_iter()
        .map(|m| m.email)
        .collect();
    emails.sort();
    emails
}

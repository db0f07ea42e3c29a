//! The schema floor: the import's rows `\copy`-ed straight into the product's own five tables
//! (accounts, members, invitations, deliveries, import_rows) with every index, key and foreign-key
//! check the migrations create. No code that writes this schema can be faster, so it tells how
//! much of the gap between the import and the bare `COPY` is the schema's and how much the
//! code's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection as _;
use diesel::{Connection as _, PgConnection};
use diesel_migrations::MigrationHarness as _;
use invite_shared::db::PG_MIGRATIONS;
use invite_shared::domain::search::member_text;

use crate::cpu::{CpuUse, Snapshot};
use crate::csv_gen;
use crate::database::{self, FreshDatabase};
use crate::procs;

/// The one timestamp every floor row carries.
const AT: &str = "2026-01-01 00:00:00";

/// The workspace, the inviting admin (account 1) and the import the floor's rows belong to.
const SETUP: &str = "
    INSERT INTO workspaces (id, slug, name, created_at) VALUES (1, 'floor', 'Floor', now());
    INSERT INTO accounts (id, email, created_at) VALUES (1, 'admin@floor.example', now());
    INSERT INTO imports (id, workspace_id, created_by, file_name, file_size, status, created_at)
        VALUES (1, 1, 1, 'floor.csv', 0, 'processing', now());";

/// Each table's `\copy` target, in the order their foreign keys need.
const TABLES: [(&str, &str); 5] = [
    ("accounts", "accounts (id, email, created_at)"),
    (
        "members",
        "members (id, workspace_id, account_id, first_name, last_name, role, status, metadata, \
         import_id, invited_by, created_at, updated_at, search_text)",
    ),
    ("invitations", "invitations (id, member_id, created_at)"),
    (
        "deliveries",
        "deliveries (id, invitation_id, member_id, import_id, state, attempts, next_attempt_at, \
         created_at)",
    ),
    (
        "import_rows",
        "import_rows (import_id, row_number, email, outcome, member_id)",
    ),
];

/// Times `\copy` of `rows` invitees (the bench CSV's people) into the five tables of a freshly
/// migrated database of its own, in one transaction, and the machine's CPU time meanwhile; the
/// database is dropped afterwards.
pub fn schema_floor(rows: u64) -> anyhow::Result<(Duration, CpuUse)> {
    let database = FreshDatabase::create()?;
    let mut conn = PgConnection::establish(&database.url)
        .with_context(|| format!("connecting to {}", database.url))?;
    conn.run_pending_migrations(PG_MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("migrating the floor's database: {e}"))?;
    conn.batch_execute(SETUP)
        .context("writing the floor's workspace")?;
    let dir = tempfile::tempdir().context("creating a folder for the floor's files")?;
    write_files(dir.path(), rows)?;
    // `-1`: every `\copy` in one transaction.
    let mut psql = database::psql(&database.url);
    psql.arg("-1");
    for (file, target) in TABLES {
        psql.arg("-c").arg(format!(
            "\\copy {target} FROM '{}' WITH (FORMAT csv)",
            csv_path(dir.path(), file).display()
        ));
    }
    let before = Snapshot::take(&[]);
    let elapsed = procs::timed(&mut psql, "psql \\copy into the product's tables")?;
    Ok((elapsed, CpuUse::between(&[], &before, &Snapshot::take(&[]))))
}

/// Where a table's rows are written.
fn csv_path(dir: &Path, table: &str) -> PathBuf {
    dir.join(format!("{table}.csv"))
}

/// One CSV per table. Invitee `i` gets id `i + 2` in each table (1 is the admin's account),
/// the values the import writes for the bench CSV's row `i` (see `csv_gen`).
fn write_files(dir: &Path, rows: u64) -> anyhow::Result<()> {
    let mut writers = TABLES
        .iter()
        .map(|(file, _)| csv::Writer::from_path(csv_path(dir, file)))
        .collect::<Result<Vec<_>, _>>()
        .context("creating the floor's files")?;
    for i in 0..rows {
        let id = (i + 2).to_string();
        let email = format!("person{i}@bench.example");
        let role = ["admin", "builder", "end_user"][(i % 3) as usize];
        let metadata = if i.is_multiple_of(3) {
            format!(r#"{{"employee_id":{i}}}"#)
        } else {
            String::new()
        };
        let (first, last) = (format!("First{i}"), csv_gen::last_name(i));
        let search_text = member_text(&email, Some(&first), Some(&last));
        // The header is the file's row 1, so invitee `i` is on row `i + 2`: its id.
        let row_number = &id;
        let records: [&[&str]; 5] = [
            &[&id, &email, AT],
            &[
                &id,
                "1",
                &id,
                &first,
                &last,
                role,
                "invited",
                &metadata,
                "1",
                "1",
                AT,
                AT,
                &search_text,
            ],
            &[&id, &id, AT],
            &[&id, &id, &id, "1", "pending", "0", AT, AT],
            &["1", row_number, &email, "invited", &id],
        ];
        for (writer, record) in writers.iter_mut().zip(records) {
            writer.write_record(record)?;
        }
    }
    for writer in &mut writers {
        writer.flush()?;
    }
    Ok(())
}

//! `invite-api import` on a PostgreSQL database that refuses to store the upload: the error it
//! prints carries the database's own words, not only the `internal error` an HTTP client gets.
#![cfg(feature = "postgres")]

use std::path::Path;
use std::process::{Command, Output};

use diesel::Connection as _;
use diesel::connection::SimpleConnection as _;
use invite_tests::app::TestDatabase;

/// What the database answers to any write of an upload's file, by [`refuse_uploads`].
const DISK_FULL: &str = "bulk-invite test: the disk is full";

/// A trigger that fails every write of an upload's file with [`DISK_FULL`]. Storing an upload
/// writes its file to `import_chunks` in the transaction that creates the import, before anything
/// is enqueued: this fails the CLI's own database call, not a worker's (a worker retries a database
/// error and resumes the import at its checkpoint).
fn refuse_uploads() -> String {
    format!(
        "CREATE FUNCTION refuse_upload() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             RAISE EXCEPTION '{DISK_FULL}';
         END
         $$;
         CREATE TRIGGER refuse_upload BEFORE INSERT ON import_chunks
             FOR EACH ROW EXECUTE FUNCTION refuse_upload();"
    )
}

/// `invite-api` on database `url` and nothing else of the environment: the embedded queue and
/// the outbox in `dir`, no configuration file.
fn invite_api(dir: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_invite-api"))
        .args(args)
        .env_clear()
        .env("DATABASE_URL", url)
        .env("DATA_DIR", dir.join("data"))
        .env("CONFIG_DIR", "/nonexistent")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_import_the_database_refuses_to_store_prints_the_database_error() {
    let (_database, url) = TestDatabase::create().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let migrated = invite_api(dir.path(), &url, &["migrate"]);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    diesel::PgConnection::establish(&url)
        .unwrap()
        .batch_execute(&refuse_uploads())
        .unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "First Name,Email,User Role\nAda,ada@example.com,Admin\n",
    )
    .unwrap();

    let output = invite_api(
        dir.path(),
        &url,
        &["import", csv.to_str().unwrap(), "--workspace", "demo"],
    );

    let stderr = text(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("error: storing the import: {DISK_FULL}")),
        "the step and the database's error: {stderr}"
    );
    assert!(!stderr.contains("internal error"), "{stderr}");
}

//! The operators' commands, through the real `invite-api` binary on the embedded stack: the support
//! twins of the admin routes (`retry --workspace WS --import ID`, `resend --workspace WS --member
//! ID`, `members --workspace WS [--search TEXT]`) and `token create | list [--legacy] | revoke`.

use std::path::Path;
use std::process::{Command, Output};

use diesel::prelude::*;
use invite_shared::db::Db;
use invite_shared::db::schema::{accounts, deliveries, members, workspaces};
use invite_shared::ids::ImportId;
use invite_shared::on_conn;
use invite_shared::status::DeliveryState;
use invite_shared::store::tallies::{self, Tally};

/// `invite-api` on the embedded stack, with its data in `dir`.
fn invite_api(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_invite-api"));
    command
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env("DATA_DIR", dir.join("data"));
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "SMTP_URL",
        "API_ADDR",
        "CONFIG_FILE",
        "EDITION",
    ] {
        command.env_remove(var);
    }
    command
}

fn run(dir: &Path, args: &[&str]) -> Output {
    invite_api(dir).args(args).output().unwrap()
}

/// `invite-api token create --workspace demo --email EMAIL` with `more` arguments.
fn token_create(dir: &Path, email: &str, more: &[&str]) -> Output {
    let mut args = vec!["token", "create", "--workspace", "demo", "--email", email];
    args.extend_from_slice(more);
    run(dir, &args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Imports three people into workspace `demo`, their emails sent to the outbox; the ledger's pool.
fn imported(dir: &Path) -> Db {
    let csv = dir.join("people.csv");
    std::fs::write(
        &csv,
        "First Name,Email,User Role\nAda,person0@example.com,Admin\n\
         Bob,person1@example.com,Builder\nCy,person2@example.com,End User\n",
    )
    .unwrap();
    let output = invite_api(dir)
        .arg("import")
        .arg(&csv)
        .args(["--workspace", "demo"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let url = format!("sqlite://{}", dir.join("data/bulk-invite.db").display());
    Db::connect(&url, 2).unwrap()
}

/// The id of the member of `demo` with this address.
async fn member_id(db: &Db, email: &'static str) -> i64 {
    db.run(move |conn| {
        Ok(on_conn!(conn, |c| members::table
            .inner_join(accounts::table)
            .inner_join(workspaces::table)
            .filter(workspaces::slug.eq("demo"))
            .filter(accounts::email.eq(email))
            .select(members::id)
            .first::<i64>(c))?)
    })
    .await
    .unwrap()
}

/// The member's deliveries, oldest first: (state, attempts).
async fn deliveries_of(db: &Db, member: i64) -> Vec<(String, i32)> {
    db.run(move |conn| {
        Ok(on_conn!(conn, |c| deliveries::table
            .filter(deliveries::member_id.eq(member))
            .order(deliveries::id)
            .select((deliveries::state, deliveries::attempts))
            .load(c))?)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_retry_command_queues_the_failed_sends_of_an_import_and_says_how_many() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported(dir.path());
    let bob = member_id(&db, "person1@example.com").await;
    // The outbox cannot refuse an email: the arrangement records Bob's send as failed.
    db.run(move |conn| {
        on_conn!(conn, |c| diesel::update(
            deliveries::table.filter(deliveries::member_id.eq(bob))
        )
        .set((
            deliveries::state.eq("failed"),
            deliveries::last_error.eq(Some("550 5.1.1 no such user")),
        ))
        .execute(c))?;
        let moved = Tally::moved(DeliveryState::Sent, DeliveryState::Failed, 1);
        tallies::add(conn, ImportId(1), moved)?;
        Ok(())
    })
    .await
    .unwrap();

    let output = run(
        dir.path(),
        &["retry", "--workspace", "demo", "--import", "1"],
    );

    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("import 1: 1 failed send queued again"),
        "{stdout}"
    );
    assert_eq!(
        deliveries_of(&db, bob).await,
        vec![("pending".to_owned(), 0)]
    );
    let others = member_id(&db, "person0@example.com").await;
    assert_eq!(
        deliveries_of(&db, others).await,
        vec![("sent".to_owned(), 1)]
    );
}

#[tokio::test]
async fn the_resend_command_queues_a_new_invitation_email_and_names_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported(dir.path());
    let ada = member_id(&db, "person0@example.com").await;

    let output = run(
        dir.path(),
        &[
            "resend",
            "--workspace",
            "demo",
            "--member",
            &ada.to_string(),
        ],
    );

    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains(&format!(
            "member {ada} (person0@…): a new invitation email is queued"
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains("example.com"),
        "the address is masked: {stdout}"
    );
    assert_eq!(
        deliveries_of(&db, ada).await,
        vec![("sent".to_owned(), 1), ("pending".to_owned(), 0)],
        "the sent email stays as it was; a new one waits"
    );
}

#[tokio::test]
async fn the_support_commands_fail_clearly_on_an_unknown_workspace_member_or_import() {
    let dir = tempfile::tempdir().unwrap();
    let _db = imported(dir.path());

    let member = run(
        dir.path(),
        &["resend", "--workspace", "demo", "--member", "999"],
    );
    let import = run(
        dir.path(),
        &["retry", "--workspace", "demo", "--import", "42"],
    );
    let workspace = run(
        dir.path(),
        &["resend", "--workspace", "nope", "--member", "1"],
    );

    for (output, message) in [
        (member, "member 999 not found in workspace `demo`"),
        (import, "import 42 not found in workspace `demo`"),
        (workspace, "workspace `nope` not found"),
    ] {
        assert!(!output.status.success(), "{message}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert!(text(&output.stdout).is_empty());
    }
}

#[test]
fn a_new_token_can_be_made_for_the_first_admin_whose_token_was_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    // The CLI's import made admin@localhost an active admin of `demo`.
    imported(dir.path());

    let created = token_create(
        dir.path(),
        "Admin@localhost",
        &["--name", "lost the first one"],
    );

    assert!(created.status.success(), "{}", text(&created.stderr));
    assert!(text(&created.stdout).trim().starts_with("bi_"));
    let listed = text(&run(dir.path(), &["token", "list", "--workspace", "demo"]).stdout);
    let line = listed
        .lines()
        .find(|l| l.contains("lost the first one"))
        .expect("listed by name");
    // The list shows an admin's address only up to its @.
    assert!(line.contains("\tadmin@…\t"), "{line}");
}

#[tokio::test]
async fn the_resend_command_refuses_an_active_member() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported(dir.path());
    // The CLI's import made admin@localhost an active admin of `demo`.
    let admin = member_id(&db, "admin@localhost").await;

    let output = run(
        dir.path(),
        &[
            "resend",
            "--workspace",
            "demo",
            "--member",
            &admin.to_string(),
        ],
    );

    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("member {admin} is active")),
        "{stderr}"
    );
}

#[test]
fn tokens_are_created_named_listed_without_secrets_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let created = token_create(
        dir.path(),
        "ops@example.com",
        &["--name", "nightly", "--expires-in", "90days"],
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let secret = text(&created.stdout).trim().to_owned();
    assert!(secret.starts_with("bi_") && secret.len() == 46, "{secret}");

    let listed = run(dir.path(), &["token", "list", "--workspace", "demo"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    assert!(!listed.contains(&secret), "{listed}");
    assert!(!listed.contains(&secret[11..]), "{listed}");
    let line = listed
        .lines()
        .find(|l| l.contains("nightly"))
        .expect("listed by name");
    assert!(
        line.contains(&secret[..11]) && line.ends_with("active"),
        "{line}"
    );
    let id = line.split('\t').next().unwrap();

    let revoked = run(dir.path(), &["token", "revoke", "--workspace", "demo", id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let listed = text(&run(dir.path(), &["token", "list", "--workspace", "demo"]).stdout);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("nightly") && l.ends_with("revoked")),
        "{listed}"
    );
    let again = run(
        dir.path(),
        &["token", "revoke", "--workspace", "demo", "999"],
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("token 999 not found"),
        "{}",
        text(&again.stderr)
    );
    let bad = token_create(dir.path(), "ops@example.com", &["--expires-in", "5s"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("between 1 minute and 3650 days"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn the_audit_command_shows_what_operators_did() {
    let dir = tempfile::tempdir().unwrap();
    imported(dir.path());
    let retried = run(
        dir.path(),
        &["retry", "--workspace", "demo", "--import", "1"],
    );
    assert!(retried.status.success(), "{}", text(&retried.stderr));

    let audit = run(dir.path(), &["audit", "--workspace", "demo"]);

    assert!(audit.status.success(), "{}", text(&audit.stderr));
    let audit = text(&audit.stdout);
    let lines: Vec<&str> = audit.lines().collect();
    assert_eq!(lines.len(), 2, "{audit}");
    assert!(
        lines[0].ends_with("\toperator (CLI)\tretry\timport 1"),
        "{audit}"
    );
    assert!(
        lines[1].ends_with("\toperator (CLI)\tupload\timport 1"),
        "{audit}"
    );
    let unknown = run(dir.path(), &["audit", "--workspace", "nowhere"]);
    assert!(!unknown.status.success());
}

#[tokio::test]
async fn legacy_tokens_are_listed_and_revoked_by_operators_only() {
    let dir = tempfile::tempdir().unwrap();
    let created = token_create(dir.path(), "ops@example.com", &["--name", "scoped"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    // A token of every workspace its admin administers, as earlier versions made them.
    let url = format!(
        "sqlite://{}",
        dir.path().join("data/bulk-invite.db").display()
    );
    let db = Db::connect(&url, 1).unwrap();
    db.run(|c| {
        let account = invite_shared::store::auth::ensure_account(c, "ops@example.com")?;
        Ok(invite_shared::store::auth::create_token(c, account)?)
    })
    .await
    .unwrap();

    let in_workspace = text(&run(dir.path(), &["token", "list", "--workspace", "demo"]).stdout);
    let legacy = run(dir.path(), &["token", "list", "--legacy"]);

    assert!(legacy.status.success(), "{}", text(&legacy.stderr));
    let legacy = text(&legacy.stdout);
    let lines: Vec<&str> = legacy.lines().skip(1).collect();
    assert_eq!(lines.len(), 1, "{legacy}");
    assert!(
        !lines[0].contains("scoped") && lines[0].ends_with("active"),
        "{legacy}"
    );
    let id = lines[0].split('\t').next().unwrap();
    assert!(
        !in_workspace
            .lines()
            .any(|l| l.starts_with(&format!("{id}\t"))),
        "{in_workspace}"
    );
    let by_workspace = run(dir.path(), &["token", "revoke", "--workspace", "demo", id]);
    assert!(
        !by_workspace.status.success(),
        "a workspace does not reach it"
    );
    let revoked = run(dir.path(), &["token", "revoke", id]);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let legacy = text(&run(dir.path(), &["token", "list", "--legacy"]).stdout);
    assert!(
        legacy
            .lines()
            .nth(1)
            .is_some_and(|l| l.ends_with("revoked")),
        "{legacy}"
    );
    // Recorded where its admin administers.
    let audit = text(&run(dir.path(), &["audit", "--workspace", "demo"]).stdout);
    let entry = format!("\toperator (CLI)\ttoken_revoke\ttoken {id}");
    assert!(audit.lines().any(|l| l.ends_with(&entry)), "{audit}");
}

#[tokio::test]
async fn the_remind_command_reminds_the_matching_members_once_and_prints_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = imported(dir.path());
    let bob = member_id(&db, "person1@example.com").await;
    let remind = ["remind", "--workspace", "demo", "--status", "invited"];

    let first = run(dir.path(), &remind);
    let again = run(dir.path(), &remind);

    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("workspace `demo`: 3 reminded, 0 skipped"),
        "{}",
        text(&first.stdout)
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("workspace `demo`: 0 reminded, 3 skipped"),
        "within REMIND_COOLDOWN: {}",
        text(&again.stdout)
    );
    assert_eq!(
        deliveries_of(&db, bob).await,
        vec![("sent".to_owned(), 1), ("pending".to_owned(), 0)],
        "one reminder waits for the workers of `serve`"
    );
}

#[tokio::test]
async fn the_remind_command_refuses_a_filter_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let _db = imported(dir.path());

    let output = run(
        dir.path(),
        &[
            "remind",
            "--workspace",
            "demo",
            "--invited-before",
            "yesterday",
        ],
    );

    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("invited_before `yesterday` is not an RFC 3339 time"),
        "{}",
        text(&output.stderr)
    );
}

/// Imports four people whose names and addresses `members --search` looks through into
/// workspace `demo`.
fn imported_to_search(dir: &Path) {
    let csv = dir.join("people.csv");
    std::fs::write(
        &csv,
        "First Name,Last Name,Email,User Role\nAnne,Müller,anne@bücher.de,Admin\n\
         Annette,MULLER,annette@example.com,Builder\nJosé,Álvarez,jose@example.com,End User\n\
         Zoë,Qi,zoe@example.com,End User\n",
    )
    .unwrap();
    let output = run(
        dir,
        &["import", csv.to_str().unwrap(), "--workspace", "demo"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// The lines `members` printed after its header, and asserts that it succeeded.
fn member_lines(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["members", "--workspace", "demo"];
    all.extend_from_slice(args);
    let output = run(dir, &all);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = text(&output.stdout);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("id\temail\tname\tstatus\temail status"),
        "{out}"
    );
    lines.map(str::to_owned).collect()
}

/// The address column of `lines`.
fn addresses(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l.split('\t').nth(1).unwrap_or(l))
        .collect()
}

#[test]
fn the_members_command_finds_people_by_part_of_their_address_or_name() {
    let dir = tempfile::tempdir().unwrap();
    imported_to_search(dir.path());

    let lines = member_lines(dir.path(), &["--search", "muller"]);
    assert_eq!(addresses(&lines), ["anne@bücher.de", "annette@example.com"]);
    let anne: Vec<&str> = lines[0].split('\t').collect();
    assert!(anne[0].parse::<i64>().is_ok(), "the id first: {anne:?}");
    assert_eq!(
        &anne[1..],
        ["anne@bücher.de", "Anne Müller", "invited", "sent"]
    );

    let jose = member_lines(dir.path(), &["--search", "JOSÉ"]);
    assert_eq!(addresses(&jose), ["jose@example.com"]);
}

#[test]
fn the_members_command_filters_by_status_and_stops_at_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    imported_to_search(dir.path());

    let active = member_lines(dir.path(), &["--status", "active"]);
    assert_eq!(
        addresses(&active),
        ["admin@localhost"],
        "only the first start's admin has accepted"
    );
    let invited = member_lines(dir.path(), &["--status", "invited", "--search", "e"]);
    assert_eq!(invited.len(), 4, "{invited:?}");

    let first_two = member_lines(dir.path(), &["--search", "e", "--limit", "2"]);
    assert_eq!(first_two.len(), 3, "two members and a note: {first_two:?}");
    assert!(first_two[2].contains("--limit"), "{first_two:?}");

    let none = run(
        dir.path(),
        &["members", "--workspace", "demo", "--search", "nobody"],
    );
    assert_eq!(text(&none.stdout).trim(), "no members");
}

#[test]
fn the_members_command_refuses_an_unknown_status_or_workspace() {
    let dir = tempfile::tempdir().unwrap();
    imported_to_search(dir.path());

    let output = run(
        dir.path(),
        &["members", "--workspace", "demo", "--status", "asleep"],
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("unknown status `asleep`"),
        "{}",
        text(&output.stderr)
    );

    let output = run(dir.path(), &["members", "--workspace", "nowhere"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("workspace `nowhere` not found"));
}

//! `invite-api members --workspace WS [--search TEXT] [--status S] [--limit N]`, the operators'
//! twin of `GET …/members`, through the real binary on the embedded stack.

use std::path::Path;
use std::process::{Command, Output};

/// `invite-api` on the embedded stack, with its data in `dir`.
fn invite_api(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_invite-api"));
    command
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .env("DATA_DIR", dir.join("data"))
        .args(args);
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
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Imports four people into workspace `demo`.
fn imported(dir: &Path) {
    let csv = dir.join("people.csv");
    std::fs::write(
        &csv,
        "First Name,Last Name,Email,User Role\nAnne,Müller,anne@bücher.de,Admin\n\
         Annette,MULLER,annette@example.com,Builder\nJosé,Álvarez,jose@example.com,End User\n\
         Zoë,Qi,zoe@example.com,End User\n",
    )
    .unwrap();
    let output = invite_api(
        dir,
        &["import", csv.to_str().unwrap(), "--workspace", "demo"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// The lines `members` printed after its header, and asserts that it succeeded.
fn member_lines(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["members", "--workspace", "demo"];
    all.extend_from_slice(args);
    let output = invite_api(dir, &all);
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
    imported(dir.path());

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
    imported(dir.path());

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

    let none = invite_api(
        dir.path(),
        &["members", "--workspace", "demo", "--search", "nobody"],
    );
    assert_eq!(text(&none.stdout).trim(), "no members");
}

#[test]
fn the_members_command_refuses_an_unknown_status_or_workspace() {
    let dir = tempfile::tempdir().unwrap();
    imported(dir.path());

    let output = invite_api(
        dir.path(),
        &["members", "--workspace", "demo", "--status", "asleep"],
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("unknown status `asleep`"),
        "{}",
        text(&output.stderr)
    );

    let output = invite_api(dir.path(), &["members", "--workspace", "nowhere"]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("workspace `nowhere` not found"));
}

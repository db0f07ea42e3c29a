//! The embedded default, through the real `invite-api` binary with no configuration at all:
//! SQLite, the embedded queue and the outbox, in a fresh folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(120);

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `invite-api` with every setting left to its default, run in `dir`.
fn invite_api(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_invite-api"));
    command.current_dir(dir).env("RUST_LOG", "warn");
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "SMTP_URL",
        "API_ADDR",
        "DATA_DIR",
        "CONFIG_FILE",
    ] {
        command.env_remove(var);
    }
    command
}

/// The addresses of the `.eml` files in the outbox (a file cut short by a crash may have none).
fn outbox_recipients(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir.join("data/outbox")) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "eml"))
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter_map(|eml| {
            let line = eml.lines().find(|l| l.starts_with("To: "))?;
            let to = line.trim_start_matches("To: ");
            Some(match (to.find('<'), to.find('>')) {
                (Some(a), Some(b)) => to[a + 1..b].to_owned(),
                _ => to.to_owned(),
            })
        })
        .collect()
}

fn people_csv(n: usize) -> String {
    let mut csv = String::from("First Name,Last Name,Email,User Role\n");
    for i in 0..n {
        csv.push_str(&format!(
            "First{i},Last{i},person{i}@example.com,End User\n"
        ));
    }
    csv
}

#[test]
fn the_import_command_completes_the_sample_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();

    let output = invite_api(dir.path())
        .arg("import")
        .arg(repo_file("examples/people.csv"))
        .args(["--workspace", "demo"])
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("completed"), "{stdout}");
    assert!(
        stdout.contains("rows: 12 invited, 1 skipped, 5 invalid (of 18)"),
        "{stdout}"
    );
    assert!(stdout.contains("emails: 12 sent, 0 failed"), "{stdout}");
    let mut recipients = outbox_recipients(dir.path());
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 12, "one .eml per invited row");
    let results =
        std::fs::read_to_string(dir.path().join("data/results/import-1-results.csv")).unwrap();
    assert_eq!(results.lines().count(), 19, "a header and one line per row");
}

#[test]
fn the_import_command_writes_the_rows_to_fix_in_the_files_own_columns() {
    let dir = tempfile::tempdir().unwrap();

    let output = invite_api(dir.path())
        .arg("import")
        .arg(repo_file("examples/people.csv"))
        .args(["--workspace", "demo", "--outcome", "invalid,skipped"])
        .output()
        .unwrap();
    let unknown = invite_api(dir.path())
        .arg("import")
        .arg(repo_file("examples/people.csv"))
        .args(["--workspace", "demo", "--outcome", "invalid,lost"])
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let fix = dir.path().join("data/results/import-1-rows-to-fix.csv");
    assert!(stdout.contains("rows to fix:"), "{stdout}");
    let text = std::fs::read_to_string(fix).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("First Name,Last Name,Email,User Role,Group,Metadata,reason")
    );
    let rows = csv::Reader::from_reader(text.as_bytes()).records().count();
    assert_eq!(rows, 6, "the five invalid rows and the duplicate: {text}");
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("unknown outcome `lost`"), "{stderr}");
}

#[test]
fn a_dry_run_import_of_a_workbook_reports_every_row_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();

    let output = invite_api(dir.path())
        .arg("import")
        .arg(repo_file("tests/fixtures/people.xlsx"))
        .args(["--workspace", "demo", "--dry-run"])
        .output()
        .unwrap();

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("dry run: nothing was written or sent"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rows: 10 would be invited, 0 skipped, 0 invalid (of 10)"),
        "{stdout}"
    );
    assert!(stdout.contains("emails: 0 sent"), "{stdout}");
    assert!(
        outbox_recipients(dir.path()).is_empty(),
        "a dry run sends nothing"
    );
    let results =
        std::fs::read_to_string(dir.path().join("data/results/import-1-results.csv")).unwrap();
    assert_eq!(results.lines().count(), 11, "a header and one line per row");
    assert!(
        results.contains("2,jose.nunez@example.com,invited,"),
        "{results}"
    );
}

#[test]
fn the_import_command_fails_on_a_file_without_the_required_columns() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.csv");
    std::fs::write(&file, "Name,Phone\nAda,1\n").unwrap();

    let output = invite_api(dir.path())
        .arg("import")
        .arg(&file)
        .args(["--workspace", "demo"])
        .output()
        .unwrap();

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Email") && stderr.contains("User Role"),
        "{stderr}"
    );
}

/// A running `invite-api serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// Starts the server in `dir` and returns it with the first-start admin token, if printed.
    async fn start(dir: &Path, extra_env: &[(&str, &str)]) -> (Server, Option<String>) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let mut command = invite_api(dir);
        command
            .arg("serve")
            .env("API_ADDR", format!("127.0.0.1:{port}"))
            .env("PUBLIC_URL", &base)
            .envs(extra_env.iter().copied())
            .stdout(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let server = Server { child, base };
        let deadline = Instant::now() + PATIENCE;
        let ready = format!("{}/readyz", server.base);
        while !reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200) {
            assert!(
                Instant::now() < deadline,
                "invite-api serve did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The first-start banner is printed before the listener binds, so it is complete now.
        let token = read_token(stdout);
        (server, token)
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token line of the first-start banner, read without blocking on a still-open pipe.
fn read_token(stdout: std::process::ChildStdout) -> Option<String> {
    use std::io::{BufRead as _, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        lines.push(line);
        if lines.len() == 3 {
            break;
        }
    }
    lines
        .iter()
        .position(|l| l.starts_with("Admin API token"))
        .and_then(|i| lines.get(i + 1).cloned())
}

/// Uploads a CSV as a raw `text/csv` body and returns the response status and JSON.
async fn upload(server: &Server, token: &str, csv: String) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/workspaces/default/imports", server.base))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Polls the import until `done` says so.
async fn wait_for_import(
    server: &Server,
    token: &str,
    id: i64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/workspaces/default/imports/{id}", server.base);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = client.get(&url).bearer_auth(token).send().await.unwrap();
        let import: Value = response.json().await.unwrap();
        if done(&import) {
            return import;
        }
        assert!(Instant::now() < deadline, "import {id} stuck: {import}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn settled(import: &Value) -> bool {
    import["status"] == "completed" && import["emails"]["pending"] == 0
}

#[tokio::test]
async fn serve_with_no_configuration_accepts_an_upload_and_processes_it_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let (server, token) = Server::start(dir.path(), &[]).await;
    let token = token.expect("the first start prints an admin token");

    let (status, body) = upload(&server, &token, people_csv(50)).await;

    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_i64().unwrap();
    let import = wait_for_import(&server, &token, id, settled).await;
    assert_eq!(import["rows"]["invited"], 50);
    assert_eq!(import["emails"]["sent"], 50);
    assert_eq!(outbox_recipients(dir.path()).len(), 50);
}

/// Uploads `rows` people and waits until 1,000 rows are applied and emails are going out: the
/// moment a crash hurts most. Returns the import's id.
async fn upload_until_underway(server: &Server, token: &str, rows: usize) -> i64 {
    let (_, body) = upload(server, token, people_csv(rows)).await;
    let id = body["id"].as_i64().unwrap();
    wait_for_import(server, token, id, |i| {
        i["rows"]["processed"].as_i64().unwrap() >= 1000
            && i["emails"]["sent"].as_i64().unwrap() > 0
    })
    .await;
    id
}

#[tokio::test]
async fn a_killed_embedded_process_resumes_and_every_invitee_has_exactly_one_email_file() {
    let dir = tempfile::tempdir().unwrap();
    // Short leases so the restarted process takes over at once.
    let env = [
        ("IMPORT_LEASE", "1s"),
        ("EMAIL_LEASE", "1s"),
        ("SEND_POLL_INTERVAL", "200ms"),
    ];
    let rows = 10_000;
    let (server, token) = Server::start(dir.path(), &env).await;
    let token = token.unwrap();
    let id = upload_until_underway(&server, &token, rows).await;
    server.kill();
    let before_restart = outbox_recipients(dir.path()).len();
    let (server, second_token) = Server::start(dir.path(), &env).await;
    let import = wait_for_import(&server, &token, id, settled).await;

    assert!(
        second_token.is_none(),
        "the first-start token is printed once"
    );
    assert!(before_restart < rows, "the kill came mid-import");
    assert_eq!(import["rows"]["processed"], rows);
    assert_eq!(import["rows"]["invited"], rows);
    assert_eq!(import["emails"]["sent"], rows, "{import}");
    assert_eq!(
        import["emails"]["failed"], 0,
        "no invitee is left without an email"
    );
    let mut recipients = outbox_recipients(dir.path());
    let files = recipients.len();
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), rows, "every invitee has an email file");
    assert_eq!(
        files, rows,
        "and exactly one: a repeated send replaces its file"
    );
}

#[test]
fn log_format_json_writes_one_json_object_per_log_line() {
    let dir = tempfile::tempdir().unwrap();

    let output = invite_api(dir.path())
        .arg("migrate")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();

    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        lines.iter().any(
            |l| l["level"] == "INFO" && l["fields"]["message"] == "database migrations applied"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_killed_embedded_process_restarted_at_once_sends_everything_within_seconds_despite_its_leases()
 {
    let dir = tempfile::tempdir().unwrap();
    // The default leases (EMAIL_LEASE 5m, IMPORT_LEASE 2m), and a dead process known only after
    // ten minutes: only the start-up hand-back can make the restarted process go on at once.
    let env = [
        ("SEND_POLL_INTERVAL", "200ms"),
        ("WORKER_DEAD_AFTER", "10m"),
    ];
    let rows = 5_000;
    let (server, token) = Server::start(dir.path(), &env).await;
    let token = token.unwrap();
    let id = upload_until_underway(&server, &token, rows).await;

    server.kill();
    let restarted = Instant::now();
    let (server, _) = Server::start(dir.path(), &env).await;
    let import = wait_for_import(&server, &token, id, settled).await;
    let took = restarted.elapsed();

    assert_eq!(import["rows"]["invited"], rows, "{import}");
    assert_eq!(import["emails"]["sent"], rows, "{import}");
    assert!(
        took < Duration::from_secs(30),
        "everything was sent {took:?} after the restart"
    );
    let mut recipients = outbox_recipients(dir.path());
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), rows, "every invitee has an email file");
}

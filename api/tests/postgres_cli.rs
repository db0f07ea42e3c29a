//! The real binaries on PostgreSQL + Redis: `token create` prints a token that `serve` accepts.
#![cfg(feature = "postgres")]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use diesel::Connection as _;
use diesel::connection::SimpleConnection as _;

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A database of its own, dropped with the test.
struct Database(String);

impl Database {
    fn create() -> (Database, String) {
        let name = format!("bi_cli_{:016x}", rand_suffix());
        let mut conn = diesel::PgConnection::establish(&admin_url()).unwrap();
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let (base, _) = admin_url()
            .rsplit_once('/')
            .map(|(b, d)| (b.to_owned(), d.to_owned()))
            .unwrap();
        (Database(name.clone()), format!("{base}/{name}"))
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut conn) = diesel::PgConnection::establish(&admin_url()) {
            let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.0));
        }
    }
}

fn rand_suffix() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn token_create_prints_a_token_that_serve_accepts_on_postgres_and_redis() {
    let (_database, url) = Database::create();
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("bi-cli-{:x}", rand_suffix());
    let invite_api = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_invite-api"));
        command
            .env("DATABASE_URL", &url)
            .env("REDIS_URL", &redis)
            .env("SMTP_URL", "smtp://127.0.0.1:2")
            .env("QUEUE_PREFIX", &prefix)
            .env("RUST_LOG", "warn");
        command
    };

    let output = invite_api()
        .args([
            "token",
            "create",
            "--workspace",
            "acme",
            "--email",
            "Ops@Acme.test",
        ])
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert!(
        token.starts_with("bi_") && token.len() == 3 + 43,
        "bi_ and 32 random bytes, URL-safe base64: {stdout}"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Killed(
        invite_api()
            .arg("serve")
            .env("API_ADDR", format!("127.0.0.1:{port}"))
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/api/v1/workspaces/acme/imports");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(response) = reqwest::Client::new()
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
        {
            break response.status();
        }
        assert!(Instant::now() < deadline, "invite-api serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 200);
}

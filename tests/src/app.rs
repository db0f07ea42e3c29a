//! `TestApp`: the API on port 0 with its own database, queue and mailbox, plus in-process workers
//! that can be started and stopped, on either stack:
//! - [`Stack::Postgres`]: a fresh PostgreSQL database, a Redis key prefix and an SMTP server that
//!   speaks real SMTP over TCP;
//! - [`Stack::Sqlite`]: the embedded default in a temporary folder (SQLite, the embedded queue and
//!   the `.eml` outbox).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use diesel::Connection as _;
use diesel::connection::SimpleConnection as _;
use invite_api::{AppState, router};
use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::intake::workbook::child::{ConversionLimits, Converter};
use invite_shared::queue::JobQueue;
use invite_shared::store::auth;
use invite_worker::{Deps, runtime};
use secrecy::SecretString;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::smtp::{ReceivedMessage, SmtpServer};

/// How long a test waits for asynchronous work before failing.
pub const PATIENCE: Duration = Duration::from_secs(300);

/// The server PostgreSQL tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The Redis tests use (each with its own key prefix).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The first `To` address of a raw message (an outbox file).
pub fn recipient_of(raw: &[u8]) -> Option<String> {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| {
            m.to()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .map(str::to_owned)
        })
}

/// The `invite-api` binary of this build, which converts workbooks in child processes: cargo
/// builds a package's binaries for its integration tests, into the folder above the test
/// executables' `deps/`.
pub fn invite_api_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("a folder");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("the profile folder")
    } else {
        dir
    };
    let binary = dir.join("invite-api");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p invite-api` (cargo test --workspace does)",
        binary.display()
    );
    binary
}

/// Webhook receivers of tests run on the test's loopback, over plain HTTP, and retry quickly.
fn loopback_webhooks(settings: Settings) -> Settings {
    Settings {
        webhook_allow_private: true,
        webhook_timeout: Duration::from_secs(2),
        webhook_retry_base_delay: Duration::from_millis(100),
        ..settings
    }
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// A database of its own, dropped with the test.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// A new, empty database on the test server, and its URL.
    pub fn create() -> anyhow::Result<(TestDatabase, String)> {
        let admin = postgres_admin_url();
        let name = unique("bi_test");
        let mut conn = diesel::PgConnection::establish(&admin)
            .with_context(|| format!("connecting to {admin}"))?;
        conn.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let (base, _) = admin
            .rsplit_once('/')
            .context("TEST_DATABASE_URL needs a database path")?;
        Ok((
            TestDatabase { name: name.clone() },
            format!("{base}/{name}"),
        ))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Plain blocking I/O on its own thread, so dropping inside the runtime is fine.
        let _ = std::thread::spawn(move || {
            if let Ok(mut conn) = diesel::PgConnection::establish(&postgres_admin_url()) {
                let _ = conn.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        })
        .join();
    }
}

/// Redis keys of one test, deleted with it.
struct TestKeys {
    prefix: String,
}

impl Drop for TestKeys {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let _ = std::thread::spawn(move || -> redis::RedisResult<()> {
            let mut conn = redis::Client::open(redis_url())?.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
            }
            Ok(())
        })
        .join();
    }
}

/// Which backends a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// PostgreSQL + Redis + SMTP.
    Postgres,
    /// SQLite + embedded queue + outbox.
    Sqlite,
}

/// What a stack's resources are, kept alive (and cleaned up) with the app.
enum Backing {
    Postgres {
        smtp: SmtpServer,
        _keys: TestKeys,
        _database: TestDatabase,
    },
    Sqlite {
        dir: tempfile::TempDir,
    },
}

/// A running worker process, in-process.
struct RunningWorker {
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The whole system for one test.
pub struct TestApp {
    /// Base URL of the API, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The test's database.
    pub db: Db,
    /// The settings the API and workers run with.
    pub settings: Arc<Settings>,
    /// The workspace the admin token administers.
    pub workspace: String,
    /// An admin token of `workspace`.
    pub token: String,
    workers: Vec<RunningWorker>,
    server: JoinHandle<()>,
    backing: Backing,
}

impl TestApp {
    /// The API and one worker.
    pub async fn spawn(stack: Stack) -> TestApp {
        let mut app = TestApp::spawn_without_workers(stack).await;
        app.start_worker().await;
        app
    }

    /// The API only: uploads queue up until [`TestApp::start_worker`].
    pub async fn spawn_without_workers(stack: Stack) -> TestApp {
        TestApp::spawn_with(stack, |_| {}).await
    }

    /// The API only, with settings adjusted by `customize`.
    pub async fn spawn_with(stack: Stack, customize: impl FnOnce(&mut Settings)) -> TestApp {
        runtime::init_tracing("warn");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut settings = loopback_webhooks(Settings {
            public_url: base.clone(),
            api_addr: addr,
            send_poll_interval: Duration::from_millis(100),
            queue_poll_interval: Duration::from_millis(200),
            email_retry_base_delay: Duration::from_millis(50),
            import_chunk_rows: 500,
            smtp_pool_size: 50,
            db_pool_size: 6,
            ..Settings::default()
        });
        let backing = match stack {
            Stack::Postgres => {
                let (database, database_url) =
                    TestDatabase::create().expect("creating a test database");
                let prefix = unique("bi-test");
                let smtp = SmtpServer::start().await;
                settings.database_url = Some(SecretString::from(database_url));
                settings.redis_url = Some(SecretString::from(redis_url()));
                settings.smtp_url = Some(SecretString::from(smtp.url()));
                settings.queue_prefix = prefix.clone();
                Backing::Postgres {
                    smtp,
                    _keys: TestKeys { prefix },
                    _database: database,
                }
            }
            Stack::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                settings.data_dir = dir.path().to_owned();
                Backing::Sqlite { dir }
            }
        };
        customize(&mut settings);
        let settings = Arc::new(settings);
        let db = Db::for_settings(&settings).unwrap();
        db.migrate().await.expect("migrations apply");
        let queue = JobQueue::connect(&settings)
            .await
            .expect("the queue is reachable");
        let state = AppState {
            db: db.clone(),
            queue,
            settings: settings.clone(),
            metrics: runtime::metrics_handle(),
            limiter: Arc::default(),
            converter: Arc::new(Converter::new(
                invite_api_binary(),
                ConversionLimits::from_settings(&settings),
                settings.workbook_conversions,
            )),
        };
        let server_settings = settings.clone();
        // Aborted on drop: the dropped server closes its connections as in a graceful shutdown.
        let server = tokio::spawn(async move {
            let stop = CancellationToken::new();
            invite_worker::server::serve(listener, router(state), &server_settings, stop).await;
        });
        let workspace = "acme".to_owned();
        let ws = workspace.clone();
        let token = db
            .run(move |c| Ok(auth::create_admin_token(c, &ws, "admin@acme.test")?))
            .await
            .unwrap();
        TestApp {
            base,
            client: reqwest::Client::new(),
            db,
            settings,
            workspace,
            token,
            workers: Vec::new(),
            server,
            backing,
        }
    }

    /// The SMTP server (PostgreSQL stack only).
    pub fn smtp(&self) -> &SmtpServer {
        match &self.backing {
            Backing::Postgres { smtp, .. } => smtp,
            Backing::Sqlite { .. } => panic!("the SQLite stack writes emails to its outbox"),
        }
    }

    /// The Redis key prefix of this test, when it runs on Redis.
    pub fn redis_prefix(&self) -> Option<&str> {
        self.settings
            .redis_url
            .is_some()
            .then_some(self.settings.queue_prefix.as_str())
    }

    /// Every email sent so far: received by the SMTP server, or written to the outbox.
    pub fn emails(&self) -> Vec<ReceivedMessage> {
        match &self.backing {
            Backing::Postgres { smtp, .. } => smtp.messages(),
            Backing::Sqlite { dir } => {
                let Ok(entries) = std::fs::read_dir(dir.path().join("outbox")) else {
                    return Vec::new();
                };
                entries
                    .map(|e| e.unwrap().path())
                    // A `.partial` file is a message being written.
                    .filter(|path| path.extension().is_some_and(|e| e == "eml"))
                    .map(|path| std::fs::read(path).unwrap())
                    .map(|raw| {
                        let to = recipient_of(&raw).expect("an outbox file with a To address");
                        ReceivedMessage {
                            mail_from: String::new(),
                            rcpt_to: vec![to],
                            data: String::from_utf8(raw).unwrap(),
                        }
                    })
                    .collect()
            }
        }
    }

    /// Starts one more worker: its own database pool, Redis connection, mailer and name.
    pub async fn start_worker(&mut self) {
        let db = Db::for_settings(&self.settings).unwrap();
        let queue = JobQueue::connect(&self.settings).await.unwrap();
        let deps = Deps::new(self.settings.clone(), db, queue).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(invite_worker::run(deps, stop.clone()));
        self.workers.push(RunningWorker { stop, task });
    }

    /// Stops every worker and waits for them to finish their jobs in hand.
    pub async fn stop_workers(&mut self) {
        for worker in self.workers.drain(..) {
            worker.stop.cancel();
            worker.task.await.unwrap().unwrap();
        }
    }

    /// `/api/v1/workspaces/{workspace}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1/workspaces/{}{path}", self.base, self.workspace)
    }

    /// A GET with the admin token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// A GET with the admin token, its body read as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// The member with this address, as `GET …/members` shows it (the workspace's admin is a
    /// member too).
    pub async fn member(&self, email: &str) -> Value {
        let page = self.get_json("/members?limit=500").await;
        page["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == email)
            .unwrap_or_else(|| panic!("no member {email}: {page}"))
            .clone()
    }

    /// The id of the member with this address.
    pub async fn member_id(&self, email: &str) -> i64 {
        self.member(email).await["id"].as_i64().unwrap()
    }

    /// A POST with the admin token and no body.
    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    /// A GET of `path` under workspace `slug` with `token`, asserting 200.
    pub async fn get_in(&self, (slug, token): (&str, &str), path: &str) -> reqwest::Response {
        let response = self
            .client
            .get(format!("{}/api/v1/workspaces/{slug}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path} in {slug}");
        response
    }

    /// A JSON POST with the admin token.
    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Uploads `csv` as multipart field `file`.
    pub async fn upload(&self, csv: impl Into<Vec<u8>>) -> reqwest::Response {
        self.upload_with(csv, None).await
    }

    /// Uploads `csv` with an optional `Idempotency-Key`.
    pub async fn upload_with(
        &self,
        csv: impl Into<Vec<u8>>,
        key: Option<&str>,
    ) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(csv.into())
            .file_name("people.csv")
            .mime_str("text/csv")
            .unwrap();
        let mut request = self
            .client
            .post(self.url("/imports"))
            .bearer_auth(&self.token)
            .multipart(reqwest::multipart::Form::new().part("file", part));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// An admin token of workspace `slug`, creating the workspace and its admin if needed.
    pub async fn admin_token(&self, slug: &str) -> String {
        let slug = slug.to_owned();
        self.db
            .run(move |c| {
                let admin = format!("admin@{slug}.test");
                Ok(auth::create_admin_token(c, &slug, &admin)?)
            })
            .await
            .unwrap()
    }

    /// Uploads `bytes` as multipart field `file` named `file_name` to workspace `slug`, as a dry
    /// run if asked.
    pub async fn upload_file(
        &self,
        (slug, token): (&str, &str),
        file_name: &str,
        bytes: impl Into<Vec<u8>>,
        dry_run: bool,
    ) -> reqwest::Response {
        self.upload_file_to(&self.base, (slug, token), file_name, bytes, dry_run)
            .await
    }

    /// [`TestApp::upload_file`] to the API at `base` (another process on the app's stack).
    pub async fn upload_file_to(
        &self,
        base: &str,
        (slug, token): (&str, &str),
        file_name: &str,
        bytes: impl Into<Vec<u8>>,
        dry_run: bool,
    ) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes.into()).file_name(file_name.to_owned());
        let query = if dry_run { "?dry_run=true" } else { "" };
        self.client
            .post(format!("{base}/api/v1/workspaces/{slug}/imports{query}"))
            .bearer_auth(token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap()
    }

    /// Uploads and returns the new import's id, asserting 202.
    pub async fn upload_ok(&self, csv: impl Into<Vec<u8>>) -> i64 {
        let response = self.upload(csv).await;
        assert_eq!(response.status(), 202, "upload was not accepted");
        response.json::<Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// Polls the import until it is finished and no email is pending; returns its JSON.
    pub async fn settled(&self, id: i64) -> Value {
        self.settled_in(&self.workspace, &self.token, id).await
    }

    /// [`TestApp::settled`] for another workspace's import.
    pub async fn settled_in(&self, workspace: &str, token: &str, id: i64) -> Value {
        let deadline = Instant::now() + PATIENCE;
        let url = format!("{}/api/v1/workspaces/{workspace}/imports/{id}", self.base);
        loop {
            let response = self
                .client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let import: Value = response.json().await.unwrap();
            let finished = matches!(
                import["status"].as_str(),
                Some("completed" | "failed" | "cancelled")
            );
            if finished && import["emails"]["pending"] == 0 {
                self.assert_tallies_count(id, &import).await;
                return import;
            }
            assert!(
                Instant::now() < deadline,
                "import {id} did not settle: {import}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The import's `emails` (read from tallies kept as deliveries change) must equal its
    /// deliveries counted by state, whatever sends, retries, resends and archives came before.
    async fn assert_tallies_count(&self, id: i64, import: &Value) {
        use diesel::prelude::*;
        use invite_shared::db::schema::deliveries as d;
        let rows: Vec<(String, i64)> = self
            .db
            .run(move |conn| {
                Ok(invite_shared::on_conn!(conn, |c| d::table
                    .filter(d::import_id.eq(id))
                    .group_by(d::state)
                    .select((d::state, diesel::dsl::count_star()))
                    .load(c))?)
            })
            .await
            .unwrap();
        let count = |states: &[&str]| -> i64 {
            let of_state = rows.iter().filter(|(s, _)| states.contains(&s.as_str()));
            of_state.map(|(_, n)| n).sum()
        };
        let counted = serde_json::json!({
            "pending": count(&["pending", "sending"]),
            "sent": count(&["sent"]),
            "failed": count(&["failed"]),
        });
        let tallied = &import["emails"];
        for key in ["pending", "sent", "failed"] {
            assert_eq!(
                tallied[key], counted[key],
                "import {id}: emails.{key} from the tallies against the deliveries: {tallied} vs {counted}"
            );
        }
    }

    /// Polls the import until `done` holds; returns its JSON. Answers other than 200 (a database
    /// outage) are polled through.
    pub async fn wait_for_import(&self, id: i64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let response = self.get(&format!("/imports/{id}")).await;
            let ok = response.status() == 200;
            let import: Value = response.json().await.unwrap_or_default();
            if ok && done(&import) {
                return import;
            }
            assert!(Instant::now() < deadline, "import {id} stuck: {import}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Applies every row of an import in this task, with no sender running: its deliveries stay
    /// `pending` until a worker starts.
    pub async fn process_without_sending(&self, id: i64) {
        let db = Db::connect(&self.settings.database_url(), 2).unwrap();
        let queue = JobQueue::connect(&self.settings).await.unwrap();
        let deps = Deps::new(self.settings.clone(), db, queue).unwrap();
        // An import is claimed under a registered process, as a worker claims it.
        let registered = CancellationToken::new();
        let heartbeat = tokio::spawn(invite_worker::liveness::run(
            deps.clone(),
            registered.clone(),
        ));
        invite_worker::jobs::process_import::process(invite_shared::ids::ImportId(id), &deps)
            .await
            .unwrap();
        registered.cancel();
        heartbeat.await.unwrap();
    }

    /// How many deliveries are in each state: of import `import`, or of all.
    pub async fn delivery_states(&self, import: Option<i64>) -> HashMap<String, i64> {
        use diesel::prelude::*;
        use invite_shared::db::schema::deliveries as d;
        let counted: Vec<(Option<i64>, String, i64)> = self
            .db
            .run(|conn| {
                Ok(invite_shared::on_conn!(conn, |c| d::table
                    .group_by((d::import_id, d::state))
                    .select((d::import_id, d::state, diesel::dsl::count_star()))
                    .load(c))?)
            })
            .await
            .unwrap();
        let mut states = HashMap::new();
        for (of, state, n) in counted {
            if import.is_none() || of == import {
                *states.entry(state).or_insert(0) += n;
            }
        }
        states
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.base);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A second workspace, `globex`, whose admin invited `person0@example.com` in a settled import.
    pub async fn other_workspace(&self) -> OtherWorkspace {
        let token = self
            .db
            .run(|c| Ok(auth::create_admin_token(c, "globex", "boss@globex.test")?))
            .await
            .unwrap();
        let base = format!("{}/api/v1/workspaces/globex", self.base);
        let part = reqwest::multipart::Part::bytes(people_csv(1).into_bytes()).file_name("x.csv");
        let created: Value = self
            .client
            .post(format!("{base}/imports"))
            .bearer_auth(&token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let import = created["id"].as_i64().expect("the upload was accepted");
        self.settled_in("globex", &token, import).await;
        let members: Value = self
            .get_in(("globex", &token), "/members")
            .await
            .json()
            .await
            .unwrap();
        let member = members["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == "person0@example.com")
            .and_then(|m| m["id"].as_i64())
            .expect("the invitee is a member");
        OtherWorkspace {
            token,
            import,
            member,
        }
    }

    /// `GET /invitations/{token}` (public, no token).
    pub async fn show_invitation(&self, token: &str) -> reqwest::Response {
        let url = format!("{}/invitations/{token}", self.base);
        self.client.get(url).send().await.unwrap()
    }

    /// `POST /invitations/{token}/accept` (public, no token).
    pub async fn accept_invitation(&self, token: &str) -> reqwest::Response {
        let url = format!("{}/invitations/{token}/accept", self.base);
        self.client.post(url).send().await.unwrap()
    }

    /// The results CSV of an import.
    pub async fn results(&self, id: i64) -> String {
        let response = self.get(&format!("/imports/{id}/results")).await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    /// The link token carried by an email's text body.
    pub fn token_in(&self, text: &str) -> String {
        let marker = format!("{}/invitations/", self.base);
        let start = text.find(&marker).expect("the email carries a link") + marker.len();
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.stop.cancel();
            worker.task.abort();
        }
        self.server.abort();
    }
}

/// Another workspace's admin token, import and member, for tests of who may see what.
pub struct OtherWorkspace {
    /// An admin token of `globex`.
    pub token: String,
    /// Its settled import.
    pub import: i64,
    /// The member that import invited.
    pub member: i64,
}

/// A results file with its member ids (which the database picks) redacted, for snapshots that
/// both stacks share.
pub fn results_without_member_ids(results: &str) -> String {
    let mut reader = csv::Reader::from_reader(results.as_bytes());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(reader.headers().unwrap()).unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        let fields = record.iter().enumerate().map(|(i, field)| match i {
            4 if !field.is_empty() => "[member]",
            _ => field,
        });
        writer.write_record(fields).unwrap();
    }
    String::from_utf8(writer.into_inner().unwrap()).unwrap()
}

/// A CSV with a header and `n` valid rows `person{i}@example.com`.
pub fn people_csv(n: usize) -> String {
    named_people_csv("person", n)
}

/// A CSV with a header and `n` valid rows `{local}{i}@example.com`.
pub fn named_people_csv(local: &str, n: usize) -> String {
    let mut csv = String::from("First Name,Last Name,Email,User Role\n");
    for i in 0..n {
        csv.push_str(&format!(
            "First{i},Last{i},{local}{i}@example.com,End User\n"
        ));
    }
    csv
}

//! Outages with real worker processes, and nobody acting: a Redis of the test's own stopped
//! mid-import and started again empty (as a Redis without persistence comes back), and the test's
//! PostgreSQL database cut off and refusing connections (as in a restart or failover).
#![cfg(feature = "postgres")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::Text;
use invite_shared::db::schema::{deliveries, import_rows, invitations, members};
use invite_shared::on_conn;
use invite_tests::app::{
    PATIENCE, Stack, TestApp, free_port, named_people_csv, people_csv, postgres_admin_url,
};
use invite_tests::process::WorkerProcess;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

/// A `redis-server` on its own port that keeps nothing on disk, stopped when dropped.
struct RedisServer(Child);

impl RedisServer {
    /// Starts Redis on `port` and waits until it answers.
    async fn start(port: u16) -> RedisServer {
        let server = RedisServer(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir", "/tmp"])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is installed (scripts/test installs it)"),
        );
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let client = redis::Client::open(url.as_str()).unwrap();
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return server;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it; its data is gone.
    fn stop(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The status of `GET {url}/readyz`, or 0 when nothing answers.
async fn readyz(url: &str) -> u16 {
    reqwest::get(format!("{url}/readyz"))
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// `GET {url}/healthz` answers 200 within three tries, as a liveness probe with a failure
/// threshold judges it (a loaded test machine can drop one connection).
async fn alive(url: &str) -> bool {
    for _ in 0..3 {
        match reqwest::get(format!("{url}/healthz")).await {
            Ok(r) if r.status() == 200 => return true,
            other => eprintln!("{url}/healthz: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// Polls both `/readyz` until they answer `status`; returns how long that took.
async fn wait_for_readiness(urls: &[&str], status: u16) -> Duration {
    let started = Instant::now();
    for url in urls {
        while readyz(url).await != status {
            assert!(
                started.elapsed() < PATIENCE,
                "{url}/readyz never answered {status}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_mid_import_loses_nothing_and_needs_nobody() {
    let redis_port = free_port();
    let redis = RedisServer::start(redis_port).await;
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let app = TestApp::spawn_with(Stack::Postgres, |s| {
        s.redis_url = Some(SecretString::from(redis_url.clone()));
    })
    .await;
    // Slow replies keep the import sending while Redis is away.
    app.smtp().set_reply_delay(Duration::from_millis(10));
    let metrics_port = free_port().to_string();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut worker = WorkerProcess::start(
        env!("CARGO_BIN_EXE_invite-worker"),
        &app,
        &[
            ("METRICS_ADDR", metrics_addr.as_str()),
            ("SMTP_POOL_SIZE", "20"),
            ("IMPORT_LEASE", "3s"),
            ("EMAIL_LEASE", "3s"),
        ],
    );
    let worker_url = format!("http://{metrics_addr}");
    wait_for_readiness(&[&app.base, &worker_url], 200).await;
    let big = app.upload_ok(people_csv(5000)).await;
    app.wait_for_import(big, |i| i["rows"]["processed"].as_i64().unwrap() >= 500)
        .await;

    redis.stop();
    let noticed = wait_for_readiness(&[&app.base, &worker_url], 503).await;
    let alive_during = alive(&app.base).await && alive(&worker_url).await;
    let during = app.upload(named_people_csv("late", 100)).await;
    let during_status = during.status();
    let late = during.json::<Value>().await.unwrap()["id"].as_i64();
    tokio::time::sleep(Duration::from_secs(10)).await; // the outage goes on
    let _redis = RedisServer::start(redis_port).await;
    let recovery = wait_for_readiness(&[&app.base, &worker_url], 200).await;
    let big_import = app.settled(big).await;
    let late_import = app
        .settled(late.expect("the upload during the outage has an id"))
        .await;

    assert_eq!(during_status, 202, "an upload during the outage is kept");
    assert!(
        noticed <= Duration::from_secs(5),
        "not ready after {noticed:?}"
    );
    assert!(alive_during, "/healthz stays 200 during the outage");
    assert!(
        recovery <= Duration::from_secs(5),
        "ready again after {recovery:?}"
    );
    assert!(worker.is_running(), "the worker rode the outage out");
    for (import, rows) in [(&big_import, 5000), (&late_import, 100)] {
        assert_eq!(import["status"], "completed", "{import}");
        assert_eq!(import["rows"]["invited"], rows, "{import}");
        assert_eq!(import["emails"]["sent"], rows, "{import}");
        assert_eq!(import["emails"]["failed"], 0, "{import}");
    }
    let (recipients, repeated) = app.smtp().recipients_and_repeats();
    assert_eq!(recipients, 5100, "every invitee got an email");
    eprintln!("sends repeated after the Redis outage: {repeated}");
    assert!(repeated <= 20, "{repeated} repeats");
}

/// The app's database, seen from the server's admin connection.
struct Database {
    name: String,
    admin: diesel::PgConnection,
}

impl Database {
    fn of(app: &TestApp) -> Database {
        let url = app.settings.database_url.as_ref().unwrap().expose_secret();
        Database {
            name: url.rsplit('/').next().unwrap().to_owned(),
            admin: diesel::PgConnection::establish(&postgres_admin_url()).unwrap(),
        }
    }

    /// Terminates every connection to it; returns how many there were.
    fn cut_every_connection(&mut self) -> usize {
        #[derive(QueryableByName)]
        struct Terminated {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            #[allow(dead_code)]
            pg_terminate_backend: bool,
        }
        diesel::sql_query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind::<Text, _>(&self.name)
        .load::<Terminated>(&mut self.admin)
        .unwrap()
        .len()
    }

    /// Refuses (or accepts again) new connections, as a database that is down does.
    fn allow_connections(&mut self, allow: bool) {
        let statement = format!("ALTER DATABASE {} ALLOW_CONNECTIONS {allow}", self.name);
        diesel::sql_query(statement)
            .execute(&mut self.admin)
            .unwrap();
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // The test database is dropped with the app; it must accept the drop's connection.
        let statement = format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name);
        let _ = diesel::sql_query(statement).execute(&mut self.admin);
    }
}

fn processed(import: &Value) -> i64 {
    import["rows"]["processed"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_off_and_then_down_mid_import_loses_and_repeats_nothing() {
    let rows = 20_000;
    let app = TestApp::spawn_without_workers(Stack::Postgres).await;
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let mut worker = WorkerProcess::start(
        env!("CARGO_BIN_EXE_invite-worker"),
        &app,
        &[
            ("METRICS_ADDR", metrics_addr.as_str()),
            ("SMTP_POOL_SIZE", "20"),
        ],
    );
    let worker_url = format!("http://{metrics_addr}");
    let mut database = Database::of(&app);
    wait_for_readiness(&[&app.base, &worker_url], 200).await;
    let id = app.upload_ok(people_csv(rows)).await;

    // A failover: every connection cut at once.
    app.wait_for_import(id, |i| processed(i) >= 4000).await;
    let cut = database.cut_every_connection();
    // A restart: cut, and refusing connections for a while.
    app.wait_for_import(id, |i| processed(i) >= 10_000).await;
    database.allow_connections(false);
    database.cut_every_connection();
    let noticed = wait_for_readiness(&[&app.base, &worker_url], 503).await;
    let alive_during = alive(&app.base).await && alive(&worker_url).await;
    let refused = app.upload(people_csv(1)).await;
    tokio::time::sleep(Duration::from_secs(5)).await; // the outage goes on
    database.allow_connections(true);
    let recovery = wait_for_readiness(&[&app.base, &worker_url], 200).await;
    let import = app.settled(id).await;

    assert!(cut > 0, "connections were cut");
    assert!(
        noticed <= Duration::from_secs(5),
        "not ready after {noticed:?}"
    );
    assert!(alive_during, "/healthz stays 200 during the outage");
    assert_eq!(
        refused.status(),
        503,
        "an upload while the database is down"
    );
    assert_eq!(refused.headers()["retry-after"], "5");
    assert!(
        recovery <= Duration::from_secs(5),
        "ready again after {recovery:?}"
    );
    assert!(worker.is_running(), "the worker rode the outage out");
    assert_eq!(import["status"], "completed", "{import}");
    assert_eq!(import["rows"]["processed"], rows, "{import}");
    assert_eq!(import["rows"]["invited"], rows, "{import}");
    assert_eq!(import["emails"]["sent"], rows, "{import}");
    assert_eq!(import["emails"]["failed"], 0, "{import}");
    let counts = app
        .db
        .run(|c| {
            let counts: QueryResult<[i64; 4]> = on_conn!(c, |c| {
                (|| {
                    Ok([
                        import_rows::table.count().get_result(c)?,
                        members::table.count().get_result(c)?,
                        invitations::table.count().get_result(c)?,
                        deliveries::table.count().get_result(c)?,
                    ])
                })()
            });
            Ok(counts?)
        })
        .await
        .unwrap();
    let n = rows as i64;
    // One member more: the admin who uploaded.
    assert_eq!(counts, [n, n + 1, n, n], "no row applied twice");
    let (recipients, repeated) = app.smtp().recipients_and_repeats();
    assert_eq!(recipients, rows, "every invitee got an email");
    eprintln!("sends repeated after the database outages: {repeated}");
    assert!(
        repeated <= 2 * 20,
        "{repeated} repeats, more than the sends in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_workers_that_fetch_nothing_while_jobs_are_due_are_restarted() {
    // No queue worker runs here: the upload's job stays due, as behind a wedged worker.
    let app = TestApp::spawn_with(Stack::Sqlite, |s| {
        s.queue_poll_interval = Duration::from_millis(50);
    })
    .await;
    app.upload_ok(people_csv(1)).await;
    let db = invite_shared::db::Db::connect(&app.settings.database_url(), 2).unwrap();
    let queue = invite_shared::queue::JobQueue::connect(&app.settings)
        .await
        .unwrap();
    let deps = invite_worker::Deps::new(app.settings.clone(), db, queue).unwrap();
    let failed = tokio_util::sync::CancellationToken::new();

    let started = Instant::now();
    tokio::time::timeout(
        PATIENCE,
        invite_worker::watch_for_stall(deps, failed.clone()),
    )
    .await
    .expect("the watchdog noticed the stall");

    assert!(failed.is_cancelled());
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not before 30 poll intervals: {:?}",
        started.elapsed()
    );
}

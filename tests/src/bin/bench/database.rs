//! PostgreSQL and Redis for a run: a fresh database and a Redis key prefix, both removed when
//! dropped, and the `COPY` reference.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection as _;
use diesel::{Connection as _, PgConnection, RunQueryDsl as _};
use invite_tests::app::{postgres_admin_url, redis_url};

use crate::procs;

/// psql, for the `\copy` references.
const PSQL: &str = "/usr/bin/psql";

/// psql on `url`, without the user's `.psqlrc`, quiet, stopping at the first error; the
/// commands follow as `-c` arguments.
pub fn psql(url: &str) -> Command {
    let mut command = Command::new(PSQL);
    command.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url]);
    command
}

/// A name no other run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

/// A database of its own on `TEST_DATABASE_URL`'s server, dropped (`WITH (FORCE)`) with this.
pub struct FreshDatabase {
    name: String,
    /// Its connection URL.
    pub url: String,
}

impl FreshDatabase {
    /// Creates `bench_<random>`.
    pub fn create() -> anyhow::Result<FreshDatabase> {
        let admin = postgres_admin_url();
        let name = unique("bench");
        admin_connection()?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .with_context(|| format!("creating database {name}"))?;
        let (base, _) = admin
            .rsplit_once('/')
            .context("TEST_DATABASE_URL needs a database path")?;
        let url = format!("{base}/{name}");
        Ok(FreshDatabase { name, url })
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Ok(mut conn) = admin_connection() {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = conn.batch_execute(&sql) {
                eprintln!("bench: could not drop database {}: {e}", self.name);
            }
        }
    }
}

/// A connection to `TEST_DATABASE_URL`.
fn admin_connection() -> anyhow::Result<PgConnection> {
    let admin = postgres_admin_url();
    PgConnection::establish(&admin).with_context(|| format!("connecting to {admin}"))
}

/// The server's `server_version`.
pub fn postgres_version() -> anyhow::Result<String> {
    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::Text)]
        server_version: String,
    }
    let version: Version = diesel::sql_query("SHOW server_version")
        .get_result(&mut admin_connection()?)
        .context("SHOW server_version")?;
    Ok(version.server_version)
}

/// Redis's `redis_version`.
pub fn redis_version() -> anyhow::Result<String> {
    let mut conn = redis_connection()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn)?;
    info.lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(|v| v.trim().to_owned())
        .context("no redis_version in INFO")
}

fn redis_connection() -> anyhow::Result<redis::Connection> {
    let url = redis_url();
    redis::Client::open(url.as_str())
        .and_then(|client| client.get_connection())
        .with_context(|| format!("connecting to {url}"))
}

/// A Redis key prefix of its own (`QUEUE_PREFIX`); its keys are deleted with this.
pub struct RedisKeys {
    /// The prefix.
    pub prefix: String,
}

impl RedisKeys {
    /// A fresh `bench_<random>` prefix.
    pub fn new() -> RedisKeys {
        RedisKeys {
            prefix: unique("bench"),
        }
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let deleted = redis_connection().and_then(|mut conn| {
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
            }
            Ok(())
        });
        if let Err(e) = deleted {
            eprintln!("bench: could not delete Redis keys {pattern}: {e:#}");
        }
    }
}

/// Times `\copy` of the CSV into a bare table with a unique index on `lower(email)`, in the run's
/// database; the table is dropped afterwards so it does not weigh on the product's run.
pub fn copy_reference(url: &str, csv: &Path) -> anyhow::Result<Duration> {
    let mut conn = PgConnection::establish(url).with_context(|| format!("connecting to {url}"))?;
    conn.batch_execute(
        "CREATE TABLE bench_copy (first_name text, last_name text, email text, role text, \
         groups text, metadata jsonb);
         CREATE UNIQUE INDEX ON bench_copy (lower(email));",
    )
    .context("creating bench_copy")?;
    let copy = format!(
        "\\copy bench_copy FROM '{}' WITH (FORMAT csv, HEADER true)",
        csv.display()
    );
    let elapsed = procs::timed(psql(url).args(["-c", &copy]), "psql \\copy")?;
    conn.batch_execute("DROP TABLE bench_copy")
        .context("dropping bench_copy")?;
    Ok(elapsed)
}

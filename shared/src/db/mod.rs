//! The database: one connection type over PostgreSQL or SQLite, its pool and its migrations.
//!
//! Queries are written once with Diesel's DSL. [`DbConn`] is a Diesel `MultiConnection`; where a query
//! needs a backend's own features (bulk `ON CONFLICT … RETURNING`, `FOR UPDATE SKIP LOCKED`) the
//! [`on_conn!`] macro compiles the same body once per backend, a store function written once for
//! both takes any [`BackendConnection`](backend::BackendConnection), and the few backend-specific
//! statements live in a `match` next to it.

pub(crate) mod backend;
pub mod schema;
pub mod statement;

use std::time::Duration;

use anyhow::Context as _;
use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use deadpool_sync::SyncWrapper;
use diesel::connection::SimpleConnection;
#[cfg(feature = "postgres")]
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ConnectionError};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// PostgreSQL's migrations (public so that a test can apply them one at a time).
#[cfg(feature = "postgres")]
pub const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
/// SQLite's migrations.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// A connection to either supported database.
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    /// PostgreSQL, for production and scale-out.
    #[cfg(feature = "postgres")]
    Pg(PgConnection),
    /// SQLite, the embedded default.
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the concrete backend connection, compiling it once per backend.
///
/// A macro because each arm binds `$c` to another type: a function would need a closure generic
/// over the connection, which Rust closures cannot be.
#[cfg(feature = "postgres")]
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg($c) => $body,
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the concrete backend connection (SQLite only in this build).
///
/// A macro so that code written for both builds calls it alike (see the PostgreSQL build's).
#[cfg(not(feature = "postgres"))]
#[macro_export]
macro_rules! on_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
        }
    };
}

/// Runs `$body` in a write transaction with `$c` bound to the concrete connection. On SQLite it
/// starts with `BEGIN IMMEDIATE`: a transaction that reads before it writes would otherwise fail
/// with "database is locked" when another connection writes meanwhile, instead of waiting.
///
/// A macro for the reason [`on_conn!`] is one: each arm binds `$c` to another connection type, and
/// the transaction methods themselves differ (`immediate_transaction` is SQLite's own).
#[cfg(feature = "postgres")]
#[macro_export]
macro_rules! write_transaction {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg($c) => diesel::Connection::transaction($c, |$c| $body),
            $crate::db::DbConn::Sqlite($c) => $c.immediate_transaction(|$c| $body),
        }
    };
}

/// Runs `$body` in a write transaction (`BEGIN IMMEDIATE`; SQLite only in this build).
///
/// A macro so that code written for both builds calls it alike (see the PostgreSQL build's).
#[cfg(not(feature = "postgres"))]
#[macro_export]
macro_rules! write_transaction {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $c.immediate_transaction(|$c| $body),
        }
    };
}

/// No connection to the database could be had (it is down, restarting, or unreachable).
#[derive(Debug, thiserror::Error)]
#[error("database unavailable: {0}")]
pub struct Unavailable(String);

/// Whether `error` says the database is unavailable (no connection could be had, or the one in use
/// was cut), as opposed to a query that failed: the caller may answer 503 and retry later.
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    error.chain().any(|cause| {
        cause.is::<Unavailable>()
            || matches!(
                cause.downcast_ref::<Error>(),
                Some(Error::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _
                ))
            )
    })
}

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    /// A `postgres://` or `postgresql://` URL, passed to libpq unchanged.
    Postgres(String),
    /// A SQLite file path (from `sqlite://PATH` or `sqlite:PATH`).
    Sqlite(String),
}

impl DbTarget {
    /// Parses `DATABASE_URL`; anything but PostgreSQL or SQLite is a configuration error.
    pub fn parse(url: &str) -> anyhow::Result<DbTarget> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DbTarget::Postgres(url.to_owned()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            anyhow::ensure!(
                !path.is_empty(),
                "DATABASE_URL `sqlite://` needs a file path"
            );
            return Ok(DbTarget::Sqlite(path.to_owned()));
        }
        anyhow::bail!("DATABASE_URL must start with postgres:// or sqlite:// (got another scheme)")
    }

    /// Opens a connection. On PostgreSQL, `idle_transaction_limit` is the session's
    /// `idle_in_transaction_session_timeout`: the server ends a transaction whose client has sent
    /// nothing for that long, so a process frozen mid-transaction (a paused VM, `SIGSTOP`, a
    /// stalled host) cannot hold row locks that other processes' `SKIP LOCKED` claims then skip
    /// for ever.
    pub fn establish(
        &self,
        idle_transaction_limit: Option<Duration>,
    ) -> Result<DbConn, ConnectionError> {
        match self {
            #[cfg(feature = "postgres")]
            DbTarget::Postgres(url) => {
                let mut conn = PgConnection::establish(url)?;
                if let Some(limit) = idle_transaction_limit {
                    conn.batch_execute(&format!(
                        "SET idle_in_transaction_session_timeout = {}",
                        limit.as_millis().max(1)
                    ))
                    .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
                }
                Ok(DbConn::Pg(conn))
            }
            #[cfg(not(feature = "postgres"))]
            DbTarget::Postgres(_) => Err(ConnectionError::BadConnection(
                "this build has no PostgreSQL support: build with the `postgres` feature (on by default)"
                    .into(),
            )),
            DbTarget::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(path)?;
                // WAL lets readers (the API) run while a worker writes; the busy timeout makes
                // concurrent writers queue instead of failing with SQLITE_BUSY.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
                Ok(DbConn::Sqlite(conn))
            }
        }
    }
}

/// How recently a pooled connection must have been checked out to skip the health check (a
/// `SELECT 1` round trip and a thread hop, half a millisecond on every checkout under load).
const FRESH: Duration = Duration::from_secs(1);

/// Creates connections for the pool; unlike the derived `establish`, it keeps the real error.
#[derive(Debug)]
pub struct Manager {
    target: DbTarget,
    /// See [`DbTarget::establish`].
    idle_transaction_limit: Option<Duration>,
}

impl managed::Manager for Manager {
    type Type = SyncWrapper<DbConn>;
    type Error = anyhow::Error;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        let target = self.target.clone();
        let limit = self.idle_transaction_limit;
        SyncWrapper::new(deadpool::Runtime::Tokio1, move || {
            target
                .establish(limit)
                .context("connecting to the database")
        })
        .await
    }

    async fn recycle(
        &self,
        conn: &mut Self::Type,
        metrics: &Metrics,
    ) -> RecycleResult<Self::Error> {
        if conn.is_mutex_poisoned() {
            return Err(RecycleError::message("connection mutex poisoned"));
        }
        // A connection whose last piece of work failed never comes back ([`Db::run`] drops it),
        // so one in steady use is known good; only one idle for a while is asked.
        if metrics.last_used() < FRESH {
            return Ok(());
        }
        let healthy = conn
            .interact(|c| c.batch_execute("SELECT 1").is_ok())
            .await
            .unwrap_or(false);
        if healthy {
            Ok(())
        } else {
            Err(RecycleError::message("connection failed its health check"))
        }
    }
}

/// A pool of database connections; cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: managed::Pool<Manager>,
}

impl Db {
    /// The pool of a service process: `DATABASE_URL`, `DB_POOL_SIZE`, and on PostgreSQL a
    /// transaction left idle for `WORKER_DEAD_AFTER` is ended by the server — the time after
    /// which the process itself would count as dead ([`DbTarget::establish`]).
    pub fn for_settings(settings: &crate::config::Settings) -> anyhow::Result<Db> {
        Db::build(
            &settings.database_url(),
            settings.db_pool_size,
            Some(settings.worker_dead_after),
        )
    }

    /// Builds a pool for `url` (no connection is made until first use), for tools and tests.
    pub fn connect(url: &str, max_size: usize) -> anyhow::Result<Db> {
        Db::build(url, max_size, None)
    }

    fn build(
        url: &str,
        max_size: usize,
        idle_transaction_limit: Option<Duration>,
    ) -> anyhow::Result<Db> {
        let target = DbTarget::parse(url)?;
        if let DbTarget::Sqlite(path) = &target
            && let Some(dir) = std::path::Path::new(path).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the folder {}", dir.display()))?;
        }
        let manager = Manager {
            target,
            idle_transaction_limit,
        };
        let pool = managed::Pool::builder(manager)
            .max_size(max_size)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .context("building the database pool")?;
        Ok(Db { pool })
    }

    /// Runs blocking Diesel code on a pooled connection, off the async executor.
    pub async fn run<R, F>(&self, f: F) -> anyhow::Result<R>
    where
        F: FnOnce(&mut DbConn) -> anyhow::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| Unavailable(e.to_string()))?;
        let r = conn
            .interact(f)
            .await
            .map_err(|e| anyhow::anyhow!("database task failed: {e}"))?;
        if r.is_err() {
            // The error may have broken the connection (a restart, a cut): never reuse it.
            drop(managed::Object::take(conn));
        }
        r
    }

    /// Applies pending migrations for this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.run(|conn| {
            let applied = match conn {
                // Several processes may start at once; the advisory lock makes them take turns.
                #[cfg(feature = "postgres")]
                DbConn::Pg(c) => c
                    .batch_execute("SELECT pg_advisory_lock(7311000001)")
                    .map_err(Into::into)
                    .and_then(|()| c.run_pending_migrations(PG_MIGRATIONS).map(|v| v.len()))
                    .and_then(|n| {
                        c.batch_execute("SELECT pg_advisory_unlock(7311000001)")?;
                        Ok(n)
                    }),
                DbConn::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|v| v.len()),
            }
            .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
            if applied > 0 {
                tracing::info!(applied, "database migrations applied");
            }
            crate::store::upgrades::run_pending(conn)
                .map_err(|e| anyhow::anyhow!("upgrading stored data: {e}"))
        })
        .await
    }

    /// Checks that a connection can be made and answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.run(|c| c.batch_execute("SELECT 1").context("pinging the database"))
            .await
    }
}

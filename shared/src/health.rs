//! Readiness: whether the database and the queue answer, said without connection details (a
//! failing dependency is named, its error is logged at debug level only).

use std::future::Future;
use std::time::Duration;

use serde::Serialize;

use crate::db::Db;
use crate::queue::JobQueue;

/// How long a readiness check waits for each dependency: a connection that is being re-established
/// (the pool waiting for a connection, Redis's connection manager retrying) would otherwise hold the
/// probe far past an orchestrator's timeout.
pub const PING_DEADLINE: Duration = Duration::from_secs(2);

/// `ping`, or an error when it takes longer than [`PING_DEADLINE`].
async fn within_deadline(ping: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::time::timeout(PING_DEADLINE, ping)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {PING_DEADLINE:?}")))
}

/// Which dependencies answered a readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The database answered `SELECT 1`.
    pub database: bool,
    /// The queue answered a ping.
    pub queue: bool,
}

impl Readiness {
    /// Pings both dependencies at once, each within [`PING_DEADLINE`].
    pub async fn check(db: &Db, queue: &JobQueue) -> Readiness {
        let (database, queue) =
            tokio::join!(within_deadline(db.ping()), within_deadline(queue.ping()));
        for (name, result) in [("database", &database), ("queue", &queue)] {
            if let Err(e) = result {
                tracing::debug!(dependency = name, error = format!("{e:#}"), "not ready");
            }
        }
        Readiness {
            database: database.is_ok(),
            queue: queue.is_ok(),
        }
    }

    /// Both answered.
    pub fn ready(&self) -> bool {
        self.database && self.queue
    }

    /// What `/readyz` answers: `{"database": "ok" | "unavailable", "queue": "ok" | "unavailable"}`.
    pub fn report(&self) -> ReadinessReport {
        ReadinessReport {
            database: self.database.into(),
            queue: self.queue.into(),
        }
    }
}

/// The body of `/readyz`: each dependency, named without connection details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ReadinessReport {
    /// The database.
    pub database: DependencyState,
    /// The queue (Redis, or the embedded one).
    pub queue: DependencyState,
}

/// Whether a dependency answered its readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DependencyState {
    /// It answered in time.
    Ok,
    /// It did not answer, or not in time.
    Unavailable,
}

impl From<bool> for DependencyState {
    fn from(answered: bool) -> DependencyState {
        if answered {
            DependencyState::Ok
        } else {
            DependencyState::Unavailable
        }
    }
}

//! Readiness: whether the database and the queue answer, said without connection details (a
//! failing dependency is named, its error is logged at debug level only).

use std::future::Future;
use std::time::Duration;

use serde_json::{Value, json};

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

    /// `{"database": "ok" | "unavailable", "queue": "ok" | "unavailable"}`.
    pub fn to_json(&self) -> Value {
        let word = |ok: bool| if ok { "ok" } else { "unavailable" };
        json!({ "database": word(self.database), "queue": word(self.queue) })
    }
}

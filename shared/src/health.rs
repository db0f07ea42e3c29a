//! Readiness: whether the database and the queue answer, said without connection details (a
//! failing dependency is named, its error is logged at debug level only).

use serde_json::{Value, json};

use crate::db::Db;
use crate::queue::JobQueue;

/// Which dependencies answered a readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The database answered `SELECT 1`.
    pub database: bool,
    /// The queue answered a ping.
    pub queue: bool,
}

impl Readiness {
    /// Pings both dependencies at once.
    pub async fn check(db: &Db, queue: &JobQueue) -> Readiness {
        let (database, queue) = tokio::join!(db.ping(), queue.ping());
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

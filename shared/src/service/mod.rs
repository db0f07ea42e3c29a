//! The service layer: what the HTTP API and the CLI both do, once. Each function runs its store
//! actions on the pool, records the audit entry, wakes the workers, and returns an outcome or a
//! [`ServiceError`] that keeps its cause.
//!
//! The callers are adapters: a route maps a [`ServiceError`] to its HTTP answer (503 when the
//! database is unavailable, 500 otherwise, the cause logged), the CLI prints the whole chain, so an
//! operator reads the database's own words.

pub mod audit;
pub mod bounces;
pub mod handover;
pub mod imports;
pub mod members;
pub mod reminders;
pub mod repair;
pub mod results;
pub mod retention;
pub mod support;
pub mod timeline;
pub mod tokens;
pub mod webhooks;

use std::path::PathBuf;

/// Why a service call failed; its cause (the database's error, an I/O error) is its `source`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No connection to the database could be had, or the one in use was cut, while doing the
    /// step: trying again shortly may succeed.
    #[error("{doing}")]
    Unavailable {
        /// The step, e.g. `storing the import`.
        doing: &'static str,
        /// What the pool or the driver said.
        #[source]
        source: anyhow::Error,
    },
    /// The database refused or failed a query of the step.
    #[error("{doing}")]
    Database {
        /// The step, e.g. `storing the import`.
        doing: &'static str,
        /// The database's error.
        #[source]
        source: anyhow::Error,
    },
    /// A file could not be written.
    #[error("writing {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
}

impl ServiceError {
    /// A failed database step, sorted into [`ServiceError::Unavailable`] or
    /// [`ServiceError::Database`] once, here, so that callers match on the variant.
    fn database(doing: &'static str, source: anyhow::Error) -> ServiceError {
        if crate::db::is_unavailable(&source) {
            ServiceError::Unavailable { doing, source }
        } else {
            ServiceError::Database { doing, source }
        }
    }
}

/// What a service function returns.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Names the step of a database call whose error becomes a [`ServiceError`].
trait Step<T> {
    /// The error, if any, as the failure of `doing`.
    fn step(self, doing: &'static str) -> Result<T>;
}

impl<T> Step<T> for anyhow::Result<T> {
    fn step(self, doing: &'static str) -> Result<T> {
        self.map_err(|source| ServiceError::database(doing, source))
    }
}

/// The cursor of the page after `page`, read with at most `limit` items: the key of its last item
/// when it is full (more may follow); `None` when it is short, as the last page is.
fn next_cursor<T, K>(page: &[T], limit: i64, key: impl Fn(&T) -> K) -> Option<K> {
    if page.len() as i64 == limit {
        page.last().map(key)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_error_stays_in_the_chain() {
        let cause = anyhow::anyhow!("the disk is full").context("inserting a chunk");
        let error: anyhow::Error = Err::<(), _>(cause)
            .step("storing the import")
            .unwrap_err()
            .into();

        assert_eq!(
            format!("{error:#}"),
            "storing the import: inserting a chunk: the disk is full"
        );
    }

    #[test]
    fn a_cut_connection_is_unavailable() {
        use diesel::result::{DatabaseErrorKind, Error};
        let cut =
            Error::DatabaseError(DatabaseErrorKind::ClosedConnection, Box::new(String::new()));
        let cause = anyhow::Error::new(cut);

        let error = Err::<(), _>(cause).step("listing tokens").unwrap_err();

        assert!(
            matches!(error, ServiceError::Unavailable { .. }),
            "{error:?}"
        );
    }
}

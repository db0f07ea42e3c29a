//! [`BackendConnection`]: a store function written once runs on every backend's connection.
//!
//! A statement that uses `ON CONFLICT` or `RETURNING` runs only on a concrete connection (Diesel's
//! `MultiConnection` has no `ON CONFLICT`), and Diesel does not let the type of an upsert be named,
//! so a function generic over the connection cannot say in a bound that its statements run on it.
//! Its bound is [`BackendConnection`] instead: a connection that runs any statement every backend
//! can run. Each backend runs it with its own Diesel implementation, so the SQL and the round trips
//! are those of the same statement run on that connection directly.

#[cfg(feature = "postgres")]
use diesel::PgConnection;
use diesel::dsl::Limit;
use diesel::query_dsl::LoadQuery;
use diesel::query_dsl::methods::{ExecuteDsl, LimitDsl};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{Connection, QueryResult, RunQueryDsl, Selectable};

/// A statement every backend's connection can execute.
#[cfg(feature = "postgres")]
pub(crate) trait Execute: ExecuteDsl<PgConnection> + ExecuteDsl<SqliteConnection> {}

#[cfg(feature = "postgres")]
impl<Q> Execute for Q where Q: ExecuteDsl<PgConnection> + ExecuteDsl<SqliteConnection> {}

/// A statement every backend's connection can execute (SQLite only in this build).
#[cfg(not(feature = "postgres"))]
pub(crate) trait Execute: ExecuteDsl<SqliteConnection> {}

#[cfg(not(feature = "postgres"))]
impl<Q> Execute for Q where Q: ExecuteDsl<SqliteConnection> {}

/// A query every backend's connection can load as rows of `U`.
#[cfg(feature = "postgres")]
pub(crate) trait Load<'q, U>:
    LoadQuery<'q, PgConnection, U> + LoadQuery<'q, SqliteConnection, U>
{
}

#[cfg(feature = "postgres")]
impl<'q, U, Q> Load<'q, U> for Q where
    Q: LoadQuery<'q, PgConnection, U> + LoadQuery<'q, SqliteConnection, U>
{
}

/// A query every backend's connection can load as rows of `U` (SQLite only in this build).
#[cfg(not(feature = "postgres"))]
pub(crate) trait Load<'q, U>: LoadQuery<'q, SqliteConnection, U> {}

#[cfg(not(feature = "postgres"))]
impl<'q, U, Q> Load<'q, U> for Q where Q: LoadQuery<'q, SqliteConnection, U> {}

/// The columns a `Selectable` row reads, for a query that every backend runs: `T::as_select()`
/// names one backend in its type, so such a query selects the columns themselves and loads `T` by
/// position (`Queryable`). The derive selects the same columns for every backend, so SQLite's, which
/// every build has, serve for all.
pub(crate) fn columns<T: Selectable<Sqlite>>() -> T::SelectExpression {
    T::construct_selection()
}

/// The connection of one backend, for a function written once for all of them: it runs what
/// `RunQueryDsl` would run on it.
pub(crate) trait BackendConnection: Connection {
    /// `query.execute(self)`: the number of rows changed.
    fn execute<Q: Execute>(&mut self, query: Q) -> QueryResult<usize>;

    /// `query.load(self)` (or `get_results`): every row.
    fn load<'q, U, Q: Load<'q, U>>(&mut self, query: Q) -> QueryResult<Vec<U>>;

    /// `query.get_result(self)`: the first row, `NotFound` when there is none.
    fn get_result<'q, U, Q: Load<'q, U>>(&mut self, query: Q) -> QueryResult<U>;

    /// `query.first(self)`: the first row of `query` limited to one, `NotFound` when there is none.
    fn first<'q, U, Q>(&mut self, query: Q) -> QueryResult<U>
    where
        Q: LimitDsl,
        Limit<Q>: Load<'q, U>,
    {
        self.get_result(query.limit(1))
    }
}

/// Implements [`BackendConnection`] for one backend's connection type. A macro because it writes an
/// impl per type, which a function cannot, and Rust cannot write one generic impl either: that
/// would have to prove `Q: ExecuteDsl<C>` for every `Q: Execute`, a bound over types it cannot
/// state.
macro_rules! backend_connection {
    ($conn:ty) => {
        impl BackendConnection for $conn {
            fn execute<Q: Execute>(&mut self, query: Q) -> QueryResult<usize> {
                <Q as ExecuteDsl<Self>>::execute(query, self)
            }

            fn load<'q, U, Q: Load<'q, U>>(&mut self, query: Q) -> QueryResult<Vec<U>> {
                <Q as RunQueryDsl<Self>>::load(query, self)
            }

            fn get_result<'q, U, Q: Load<'q, U>>(&mut self, query: Q) -> QueryResult<U> {
                <Q as RunQueryDsl<Self>>::get_result(query, self)
            }
        }
    };
}

#[cfg(feature = "postgres")]
backend_connection!(PgConnection);
backend_connection!(SqliteConnection);

//! Hand-written SQL that Diesel keeps prepared on each connection.
//!
//! `diesel::sql_query` marks its statement unsafe to cache, so PostgreSQL parsed and planned the
//! send engine's statements on every call: planning took 0.30 ms of each group commit of send
//! outcomes (about as long as running it) and 0.25–0.34 ms of each claim's three statements
//! (`pg_stat_statements.track_planning`, 100,000 emails). A [`Statement`] writes the same fixed
//! text every time, so Diesel's statement cache prepares it once per connection.
//!
//! The text names its parameters `$1`, `$2`, …; each occurrence becomes a placeholder of the
//! backend (`$n` on PostgreSQL, `?` on SQLite) bound to that parameter, so a parameter may be used
//! more than once. A `$` not followed by a digit (SQLite's JSON paths, `'$.id'`) is text.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};
use diesel::{QueryResult, RunQueryDsl};

/// A fixed statement and its parameters; run it with `load` (rows as `QueryableByName`) or
/// `execute`.
#[must_use = "a statement runs only with `load` or `execute`"]
pub struct Statement<P> {
    sql: &'static str,
    params: P,
}

/// `sql` with `params`, a tuple of [`param`]s in the order of their numbers.
pub fn statement<P>(sql: &'static str, params: P) -> Statement<P> {
    Statement { sql, params }
}

/// One parameter of SQL type `ST`.
pub struct Param<ST, T> {
    value: T,
    sql_type: PhantomData<ST>,
}

/// A parameter of SQL type `ST`, e.g. `param::<Text, _>(json)`.
pub fn param<ST, T>(value: T) -> Param<ST, T> {
    Param {
        value,
        sql_type: PhantomData,
    }
}

/// Parameters a statement binds by number.
pub trait Params<DB: Backend> {
    /// Binds parameter `index` (from 0) where the text names it.
    fn bind<'b>(&'b self, index: usize, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()>;
}

/// Implements [`Params`] for tuples of one arity. A macro because it writes an impl per arity: a
/// function cannot write impls, and Rust has no generics over the length of a tuple.
macro_rules! params_tuple {
    ($($i:tt $T:ident $ST:ident),+) => {
        impl<DB, $($ST, $T),+> Params<DB> for ($(Param<$ST, $T>,)+)
        where
            DB: Backend $(+ HasSqlType<$ST>)+,
            $($T: ToSql<$ST, DB>,)+
        {
            fn bind<'b>(&'b self, index: usize, out: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
                match index {
                    $($i => out.push_bind_param::<$ST, $T>(&self.$i.value),)+
                    _ => Err(unknown_param(index)),
                }
            }
        }
    };
}

impl<DB: Backend> Params<DB> for () {
    fn bind<'b>(&'b self, index: usize, _: &mut AstPass<'_, 'b, DB>) -> QueryResult<()> {
        Err(unknown_param(index))
    }
}

fn unknown_param(index: usize) -> diesel::result::Error {
    let message = format!(
        "the statement names parameter ${} it was not given",
        index + 1
    );
    diesel::result::Error::QueryBuilderError(message.into())
}

params_tuple!(0 A SA);
params_tuple!(0 A SA, 1 B SB);
params_tuple!(0 A SA, 1 B SB, 2 C SC);
params_tuple!(0 A SA, 1 B SB, 2 C SC, 3 D SD);
params_tuple!(0 A SA, 1 B SB, 2 C SC, 3 D SD, 4 E SE);
params_tuple!(0 A SA, 1 B SB, 2 C SC, 3 D SD, 4 E SE, 5 F SF);
params_tuple!(0 A SA, 1 B SB, 2 C SC, 3 D SD, 4 E SE, 5 F SF, 6 G SG);
params_tuple!(0 A SA, 1 B SB, 2 C SC, 3 D SD, 4 E SE, 5 F SF, 6 G SG, 7 H SH);

impl<DB, P> QueryFragment<DB> for Statement<P>
where
    DB: Backend,
    P: Params<DB>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let mut rest = self.sql;
        while let Some(at) = rest.find('$') {
            let digits = rest[at + 1..]
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len() - at - 1);
            out.push_sql(&rest[..at]);
            if digits == 0 {
                out.push_sql("$");
            } else {
                let number: usize = rest[at + 1..at + 1 + digits].parse().map_err(|_| {
                    diesel::result::Error::QueryBuilderError("parameter number".into())
                })?;
                self.params.bind(number.saturating_sub(1), &mut out)?;
            }
            rest = &rest[at + 1 + digits..];
        }
        out.push_sql(rest);
        Ok(())
    }
}

impl<P> QueryId for Statement<P> {
    type QueryId = ();
    // No static id: Diesel then caches the prepared statement by its text and parameter types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<P> Query for Statement<P> {
    type SqlType = Untyped;
}

impl<Conn, P> RunQueryDsl<Conn> for Statement<P> {}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{BigInt, Text};
    use diesel::sqlite::{Sqlite, SqliteConnection};
    use diesel::{Connection as _, QueryableByName};

    use super::*;

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = Text)]
        s: String,
    }

    #[test]
    fn each_occurrence_of_a_parameter_is_bound_and_a_dollar_without_digits_is_text() {
        let s = statement(
            "SELECT $2 + $2 AS n, $1 || json_extract('{\"a\":\"$\"}', '$.a') AS s",
            (param::<Text, _>("x"), param::<BigInt, _>(20i64)),
        );
        let sql = diesel::debug_query::<Sqlite, _>(&s).to_string();
        assert!(
            sql.starts_with("SELECT ? + ? AS n, ? || json_extract"),
            "{sql}"
        );

        let mut c = SqliteConnection::establish(":memory:").unwrap();
        let rows: Vec<Row> = s.load(&mut c).unwrap();
        assert_eq!(
            rows,
            vec![Row {
                n: 40,
                s: "x$".into()
            }]
        );
    }

    #[test]
    fn a_parameter_that_was_not_given_is_an_error_not_a_panic() {
        let s = statement("SELECT $3 AS n", (param::<BigInt, _>(1i64),));
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        assert!(s.execute(&mut c).is_err());
    }
}

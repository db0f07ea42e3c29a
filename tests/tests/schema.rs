//! `shared/src/db/schema.rs` is written by hand, one file for both backends. This checks it
//! against what each migration folder creates: the same tables, each with the same columns, their
//! types, nullability and primary key, on a freshly migrated PostgreSQL and SQLite database. A
//! column added to a migration only, or to `schema.rs` only, fails it.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use invite_shared::db::Db;
use invite_shared::on_conn;
use invite_tests::app::TestDatabase;

/// What a table is made of: its columns (name → type family and nullability) and primary key.
#[derive(Debug, Default, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, (String, bool)>,
    primary_key: Vec<String>,
}

type Tables = BTreeMap<String, Table>;

/// Tables the migrations create that `schema.rs` does not describe, on purpose.
/// SQLite's full-text index of member search (`members_search`) and the tables FTS5 keeps it in
/// are an index, read only by raw SQL.
const UNMAPPED: [&str; 7] = [
    "__diesel_schema_migrations",
    "sqlite_sequence",
    "members_search",
    "members_search_config",
    "members_search_data",
    "members_search_docsize",
    "members_search_idx",
];

/// The type family a Diesel SQL type stands for, as both backends store it: SQLite has one
/// integer type, so every integer is `integer` there.
fn family(diesel_type: &str, sqlite: bool) -> String {
    match diesel_type {
        "BigInt" | "Integer" | "SmallInt" if sqlite => "integer",
        "Bool" if sqlite => "integer",
        other => other,
    }
    .to_owned()
}

/// `schema.rs`, read as text: every `diesel::table!` with its columns.
fn declared(sqlite: bool) -> Tables {
    let source = include_str!("../../shared/src/db/schema.rs");
    let mut tables = Tables::new();
    let mut current: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if let Some((name, key)) = line.strip_suffix('{').and_then(|l| l.split_once('(')) {
            let key = key.trim().trim_end_matches(')');
            let table = tables.entry(name.trim().to_owned()).or_default();
            table.primary_key = key.split(',').map(|c| c.trim().to_owned()).collect();
            current = Some(name.trim().to_owned());
        } else if let (Some(table), Some((column, ty))) = (&current, line.split_once("->")) {
            let ty = ty.trim().trim_end_matches(',');
            let (ty, nullable) = match ty.strip_prefix("Nullable<") {
                Some(inner) => (inner.trim_end_matches('>'), true),
                None => (ty, false),
            };
            let columns = &mut tables.get_mut(table).expect("opened above").columns;
            columns.insert(column.trim().to_owned(), (family(ty, sqlite), nullable));
        } else if line == "}" {
            current = None;
        }
    }
    tables
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
    /// 1-based position in the primary key, 0 if not in it.
    #[diesel(sql_type = BigInt)]
    key_position: i64,
}

/// The Diesel type a PostgreSQL column's type maps to.
fn postgres_family(data_type: &str) -> String {
    match data_type {
        "bigint" => "BigInt",
        "integer" => "Integer",
        "smallint" => "SmallInt",
        "text" | "character varying" => "Text",
        "bytea" => "Binary",
        "boolean" => "Bool",
        "timestamp without time zone" => "Timestamp",
        "date" => "Date",
        "timestamp with time zone" => "Timestamptz",
        other => other,
    }
    .to_owned()
}

/// The Diesel type family an SQLite column's declared type maps to.
fn sqlite_family(declared: &str) -> String {
    match declared.to_ascii_uppercase().as_str() {
        "INTEGER" | "BIGINT" | "SMALLINT" | "BOOLEAN" => "integer",
        "TEXT" => "Text",
        "BLOB" => "Binary",
        "TIMESTAMP" => "Timestamp",
        "DATE" => "Date",
        other => return other.to_owned(),
    }
    .to_owned()
}

fn tables_of(rows: Vec<ColumnRow>, map: fn(&str) -> String) -> Tables {
    let mut tables = Tables::new();
    let mut keys: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    for row in rows {
        if UNMAPPED.contains(&row.table_name.as_str()) {
            continue;
        }
        if row.key_position > 0 {
            let key = keys.entry(row.table_name.clone()).or_default();
            key.push((row.key_position, row.column_name.clone()));
        }
        let table = tables.entry(row.table_name).or_default();
        let ty = (map(&row.data_type), row.nullable);
        table.columns.insert(row.column_name, ty);
    }
    for (name, mut key) in keys {
        key.sort();
        let table = tables.get_mut(&name).expect("a table with a key");
        table.primary_key = key.into_iter().map(|(_, column)| column).collect();
    }
    tables
}

const POSTGRES_COLUMNS: &str = "
    SELECT c.table_name::text AS table_name, c.column_name::text AS column_name,
           c.data_type::text AS data_type, c.is_nullable = 'YES' AS nullable,
           COALESCE(k.ordinal_position, 0)::bigint AS key_position
    FROM information_schema.columns c
    LEFT JOIN information_schema.table_constraints t
      ON t.table_schema = c.table_schema AND t.table_name = c.table_name
     AND t.constraint_type = 'PRIMARY KEY'
    LEFT JOIN information_schema.key_column_usage k
      ON k.constraint_name = t.constraint_name AND k.table_schema = c.table_schema
     AND k.column_name = c.column_name
    WHERE c.table_schema = 'public'";

/// `pk` is the column's position in the primary key; a rowid alias (`INTEGER PRIMARY KEY`) is
/// never NULL, whatever `notnull` says.
const SQLITE_COLUMNS: &str = "
    SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type,
           (p.\"notnull\" = 0 AND p.pk = 0) AS nullable, p.pk AS key_position
    FROM sqlite_master m, pragma_table_info(m.name) p
    WHERE m.type = 'table'";

/// Migrates a fresh database at `url` and runs `query` on it, through the app's own pool.
async fn migrated_columns(url: &str, query: &'static str) -> Vec<ColumnRow> {
    let db = Db::connect(url, 1).expect("a database");
    db.migrate().await.expect("the migrations apply");
    db.run(move |conn| Ok(on_conn!(conn, |c| diesel::sql_query(query).load(c))?))
        .await
        .expect("the catalogue reads")
}

fn assert_same(declared: &Tables, created: &Tables, backend: &str) {
    let names = |t: &Tables| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(declared), names(created), "tables on {backend}");
    for (name, table) in declared {
        assert_eq!(
            table, &created[name],
            "table {name} on {backend}: schema.rs, then migrations"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_rs_matches_what_the_postgres_migrations_create() {
    let (_database, url) = TestDatabase::create().unwrap();
    let rows = migrated_columns(&url, POSTGRES_COLUMNS).await;

    assert_same(
        &declared(false),
        &tables_of(rows, postgres_family),
        "PostgreSQL",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_rs_matches_what_the_sqlite_migrations_create() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("schema.db").display());
    let rows = migrated_columns(&url, SQLITE_COLUMNS).await;

    assert_same(&declared(true), &tables_of(rows, sqlite_family), "SQLite");
}

//! The two migration sets (`migrations/sqlite`, `migrations/postgres`) differ in SQL types only:
//! migrated from scratch, both databases have the same tables, the same columns per table (by
//! name) and the same explicitly created indexes (by table and name). The store code is written
//! once for both (`db/sql/`), so a column or index present on one backend only is a bug.
//!
//! Ignored: sqlx's `_sqlx_migrations`, SQLite's internal tables and the indexes that back
//! primary keys and UNIQUE constraints (`sqlite_autoindex_*` on SQLite, `<table>_pkey` and
//! `<table>_<col>_key` on PostgreSQL), whose names differ by design.
//!
//! The PostgreSQL half runs when `PULP_TEST_DATABASE_URL` is set; otherwise the test compares
//! nothing and says so.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{AssertSqlSafe, Connection, PgConnection, Row, SqliteConnection};

/// Tables with their column names, and indexes as `(table, index)`.
#[derive(Debug, PartialEq)]
struct Schema {
    columns: BTreeMap<String, BTreeSet<String>>,
    indexes: BTreeSet<(String, String)>,
}

async fn sqlite_schema(url: &str) -> Schema {
    let mut conn = SqliteConnection::connect(url).await.expect("open SQLite");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("SQLite tables");
    let mut columns = BTreeMap::new();
    let mut indexes = BTreeSet::new();
    for table in tables {
        let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
            .bind(&table)
            .fetch_all(&mut conn)
            .await
            .expect("SQLite columns");
        // origin 'c': created by CREATE INDEX ('pk' and 'u' back constraints).
        let idx: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM pragma_index_list($1) \
             WHERE origin = 'c' AND name NOT LIKE 'sqlite_autoindex_%'",
        )
        .bind(&table)
        .fetch_all(&mut conn)
        .await
        .expect("SQLite indexes");
        indexes.extend(idx.into_iter().map(|i| (table.clone(), i)));
        columns.insert(table, cols.into_iter().collect());
    }
    let _ = conn.close().await;
    Schema { columns, indexes }
}

async fn pg_schema(url: &str) -> Schema {
    let mut conn = PgConnection::connect(url).await.expect("open PostgreSQL");
    let rows = sqlx::query(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name \
         FROM information_schema.columns c JOIN information_schema.tables t \
         ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
         AND c.table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("PostgreSQL columns");
    let mut columns: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in &rows {
        columns
            .entry(row.get("table_name"))
            .or_default()
            .insert(row.get("column_name"));
    }
    // Indexes that back a constraint (primary key, UNIQUE, EXCLUDE) carry its name.
    let rows = sqlx::query(
        "SELECT tablename::text AS table_name, indexname::text AS index_name FROM pg_indexes i \
         WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint k \
                         JOIN pg_namespace n ON n.oid = k.connamespace \
                         WHERE n.nspname = i.schemaname AND k.conname = i.indexname \
                         AND k.contype IN ('p', 'u', 'x'))",
    )
    .fetch_all(&mut conn)
    .await
    .expect("PostgreSQL indexes");
    let indexes = rows
        .iter()
        .map(|r| (r.get("table_name"), r.get("index_name")))
        .collect();
    let _ = conn.close().await;
    Schema { columns, indexes }
}

/// One line per difference, empty when the schemas match.
fn differences(sqlite: &Schema, pg: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let tables: BTreeSet<&String> = sqlite.columns.keys().chain(pg.columns.keys()).collect();
    for table in tables {
        match (sqlite.columns.get(table), pg.columns.get(table)) {
            (Some(_), None) => out.push(format!("table {table}: SQLite only")),
            (None, Some(_)) => out.push(format!("table {table}: PostgreSQL only")),
            (Some(s), Some(p)) => {
                for c in s.difference(p) {
                    out.push(format!("column {table}.{c}: SQLite only"));
                }
                for c in p.difference(s) {
                    out.push(format!("column {table}.{c}: PostgreSQL only"));
                }
            }
            (None, None) => unreachable!(),
        }
    }
    for (table, index) in sqlite.indexes.difference(&pg.indexes) {
        out.push(format!("index {index} on {table}: SQLite only"));
    }
    for (table, index) in pg.indexes.difference(&sqlite.indexes) {
        out.push(format!("index {index} on {table}: PostgreSQL only"));
    }
    out
}

#[tokio::test]
async fn migrations_give_both_backends_the_same_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("pulp.db").display());
    drop(
        pulp_rs::db::connect(&sqlite_url)
            .await
            .expect("migrate SQLite"),
    );
    let sqlite = sqlite_schema(&sqlite_url).await;
    assert!(
        sqlite.columns.contains_key("tasks") && !sqlite.indexes.is_empty(),
        "the SQLite schema was not read: {sqlite:?}"
    );

    let Ok(admin_url) = std::env::var("PULP_TEST_DATABASE_URL") else {
        eprintln!("PULP_TEST_DATABASE_URL unset: SQLite schema read, PostgreSQL half skipped");
        return;
    };
    let pg_url = pulp_rs::db::fresh_database(&admin_url, "pulp_schema")
        .await
        .expect("create PostgreSQL database");
    drop(
        pulp_rs::db::connect(&pg_url)
            .await
            .expect("migrate PostgreSQL"),
    );
    let pg = pg_schema(&pg_url).await;

    let diff = differences(&sqlite, &pg);

    // Dropped before the verdict: a test run leaves no database behind.
    let name = url::Url::parse(&pg_url).expect("URL").path()[1..].to_string();
    let mut admin = PgConnection::connect(&admin_url).await.expect("admin");
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the test database");
    assert!(
        diff.is_empty(),
        "the migrations disagree:\n  {}",
        diff.join("\n  ")
    );
}

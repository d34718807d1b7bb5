//! Test databases: a SQLite file under a temporary directory, and, when
//! `PULP_TEST_DATABASE_URL` names a PostgreSQL server, a fresh database on it per call (so tests
//! run in parallel without seeing each other's rows).
#![allow(dead_code)]

use std::path::Path;
use std::sync::Once;

use pulp_rs::db::{self, DynStore};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// A store on `dir/pulp.db`.
pub async fn sqlite_store(dir: &Path) -> DynStore {
    let url = format!("sqlite://{}", dir.join("pulp.db").display());
    db::connect(&url).await.expect("open SQLite test database")
}

/// A store on a fresh PostgreSQL database, or `None` when `PULP_TEST_DATABASE_URL` is unset.
/// The database is left behind; [`PgTestDb`] drops it when the test is done.
pub async fn pg_store() -> Option<DynStore> {
    PgTestDb::create().await.map(|db| db.store)
}

/// Every configured backend: SQLite always, PostgreSQL when `PULP_TEST_DATABASE_URL` is set.
pub async fn test_stores(dir: &Path) -> Vec<(&'static str, DynStore)> {
    let mut out = vec![("sqlite", sqlite_store(dir).await)];
    if let Some(pg) = pg_store().await {
        out.push(("postgres", pg));
    }
    out
}

/// A fresh PostgreSQL database `pulp_test_<uuid>` and a store on it.
pub struct PgTestDb {
    pub store: DynStore,
    name: String,
    admin_url: String,
}

impl PgTestDb {
    /// `None` (after printing one line per process) when `PULP_TEST_DATABASE_URL` is unset.
    pub async fn create() -> Option<PgTestDb> {
        let Ok(admin_url) = std::env::var("PULP_TEST_DATABASE_URL") else {
            static SKIP: Once = Once::new();
            SKIP.call_once(|| eprintln!("PULP_TEST_DATABASE_URL unset: skipping PostgreSQL runs"));
            return None;
        };
        let name = format!("pulp_test_{}", uuid::Uuid::new_v4().simple());
        admin(&admin_url, &format!("CREATE DATABASE \"{name}\"")).await;
        let mut url = url::Url::parse(&admin_url).expect("PULP_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        let store = db::connect(url.as_str())
            .await
            .expect("open PostgreSQL test database");
        Some(PgTestDb {
            store,
            name,
            admin_url,
        })
    }

    /// Drops the database (closing the store's connections). Not called when a test fails, so
    /// a failed test's rows stay around to look at.
    pub async fn drop_database(self) {
        drop(self.store);
        admin(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        )
        .await;
    }
}

async fn admin(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url)
        .await
        .expect("connect to PULP_TEST_DATABASE_URL");
    sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

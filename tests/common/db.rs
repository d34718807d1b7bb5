//! Test databases: a SQLite file under a temporary directory, and, when
//! `PULP_TEST_DATABASE_URL` names a PostgreSQL server, a fresh database on it per call (so tests
//! run in parallel without seeing each other's rows).
//!
//! Every fresh PostgreSQL database a test binary makes is registered ([`drop_at_exit`]) and
//! dropped when the binary exits, whether its tests passed or not, so a run leaves nothing on
//! the cluster. `PULP_TEST_KEEP_DATABASES=1` keeps them, to look at a failure's rows.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Mutex, Once};

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
        drop_at_exit(&admin_url, url.as_str());
        let store = db::connect(url.as_str())
            .await
            .expect("open PostgreSQL test database");
        Some(PgTestDb {
            store,
            name,
            admin_url,
        })
    }

    /// The database's URL (for a test that reads PostgreSQL's own views).
    #[allow(dead_code)] // not every test binary reads it
    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&self.admin_url).expect("PULP_TEST_DATABASE_URL is a URL");
        url.set_path(&self.name);
        url.to_string()
    }

    /// Drops the database now (closing the store's connections); else it goes when the test
    /// binary exits.
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

/// `(admin URL, fresh database URL)` of every database to drop when the process exits.
static TO_DROP: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// A fresh database (from [`pulp_rs::db::fresh_database`]) on `PULP_TEST_DATABASE_URL`,
/// registered to be dropped at exit.
pub async fn fresh_pg_url(admin_url: &str, prefix: &str) -> String {
    let url = pulp_rs::db::fresh_database(admin_url, prefix)
        .await
        .expect("fresh PostgreSQL database");
    drop_at_exit(admin_url, &url);
    url
}

/// Registers `fresh_url` to be dropped (through `admin_url`) when this test process exits.
pub fn drop_at_exit(admin_url: &str, fresh_url: &str) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: `drop_registered` is a plain `extern "C" fn()` that never unwinds.
        unsafe {
            libc::atexit(drop_registered);
        }
    });
    TO_DROP
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((admin_url.to_string(), fresh_url.to_string()));
}

/// The exit hook: drops every registered database, each with `WITH (FORCE)` (the pools of
/// stores still alive are cut off), on a runtime of its own.
extern "C" fn drop_registered() {
    let all = std::mem::take(&mut *TO_DROP.lock().unwrap_or_else(|p| p.into_inner()));
    if all.is_empty() || std::env::var("PULP_TEST_KEEP_DATABASES").as_deref() == Ok("1") {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            for (admin, fresh) in all {
                if let Err(e) = pulp_rs::db::drop_fresh_database(&admin, &fresh).await {
                    eprintln!("cannot drop test database: {e}");
                }
            }
        });
    });
}

//! The SQLite backend of [`Store`]: one WAL database file, embedded migrations
//! (`migrations/sqlite`), a single-connection write pool whose transactions start with
//! `BEGIN IMMEDIATE` (SQLite has one writer; taking the lock up front avoids upgrade deadlocks)
//! and a read pool of several connections.
//!
//! Storage conventions: ids are hyphenated UUID TEXT, times INTEGER microseconds since the Unix
//! epoch, JSON TEXT, booleans 0/1. Batches are written with multi-row `VALUES` statements of at
//! most [`CHUNK`] rows, far below SQLite's bound-parameter limit.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, QueryBuilder, Sqlite, Transaction};
use uuid::fmt::Hyphenated;
use uuid::Uuid;

use super::shared::{self, CaRow};
use super::{DbError, DbResult, DynStore};
use crate::models::{NewArtifact, NewRemoteArtifact, UnsavedContent};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "tasks",
        include_str!("../../migrations/sqlite/0002_tasks.sql"),
    ),
    (
        3,
        "server",
        include_str!("../../migrations/sqlite/0003_server.sql"),
    ),
    (
        6,
        "distribution",
        include_str!("../../migrations/sqlite/0006_distribution.sql"),
    ),
    (
        7,
        "parity",
        include_str!("../../migrations/sqlite/0007_parity.sql"),
    ),
];

/// Rows per multi-row statement (at most 9 columns: 4,500 parameters).
const CHUNK: usize = 500;

/// The SQLite [`Store`].
pub struct SqliteStore {
    pub(super) write: SqlitePool,
    pub(super) read: SqlitePool,
}

/// Opens (creating if missing) the database file named by `url`, runs the migrations.
pub async fn connect(url: &str) -> DbResult<DynStore> {
    Ok(Arc::new(SqliteStore::connect(url).await?))
}

impl SqliteStore {
    /// Opens (creating if missing) the database file named by `url`, runs the migrations.
    pub async fn connect(url: &str) -> DbResult<SqliteStore> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut write_opts = SqlitePoolOptions::new().max_connections(1);
        if in_memory {
            // The database lives as long as its only connection.
            write_opts = write_opts
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let write = write_opts.connect_with(opts.clone()).await?;
        shared::migrator(MIGRATIONS).run(&write).await?;
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await?
        };
        Ok(SqliteStore { write, read })
    }

    pub(super) async fn begin_write(&self) -> DbResult<Transaction<'static, Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

// ---- the dialect: what the shared store code (`db/sql/`) is compiled against ----------------

/// The driver the shared code runs on here.
pub(super) type Db = Sqlite;
/// The store the shared code implements the traits for.
pub(super) type Backend = SqliteStore;

// Compiled once per backend by design (see `sql/mod.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

impl SqliteStore {
    /// The pool for reads (several connections; WAL lets them run beside the writer).
    pub(super) fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// The pool for single writes outside a transaction (the one writer connection).
    pub(super) fn writer(&self) -> &SqlitePool {
        &self.write
    }
}

/// Dialect hook: `<column> IN <a list bound as parameter $n>`. SQLite binds the list as one JSON
/// array (see [`ids_param`], [`strs_param`]) and reads it with `json_each`.
pub(super) fn in_list_param(n: usize) -> String {
    format!("IN (SELECT value FROM json_each(${n}))")
}

/// Dialect hook: ids bound as one list parameter (a JSON array of hyphenated ids).
pub(super) fn ids_param(ids: &[Uuid]) -> String {
    serde_json::Value::from(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()).to_string()
}

/// Dialect hook: strings bound as one list parameter (a JSON array).
pub(super) fn strs_param<S: AsRef<str>>(v: &[S]) -> String {
    serde_json::Value::from(v.iter().map(|s| s.as_ref()).collect::<Vec<_>>()).to_string()
}

/// Dialect hook: appends `<column> contains <needle>` (case-sensitive substring, the needle
/// bound) to a query being built: `instr` here, `strpos` on PostgreSQL.
pub(super) fn push_contains(qb: &mut QueryBuilder<Sqlite>, column: &str, needle: &str) {
    qb.push(format_args!("instr({column}, "))
        .push_bind(needle.to_string())
        .push(") > 0");
}

/// Dialect hook: appends `<JSON array column> holds any of <values>` (a string element equal to
/// one of them; none for an empty list) to a query being built. SQLite walks the array with
/// `json_each`; PostgreSQL uses `jsonb ?| text[]`.
pub(super) fn push_json_has_any(qb: &mut QueryBuilder<Sqlite>, column: &str, values: &[String]) {
    qb.push(format_args!(
        "EXISTS (SELECT 1 FROM json_each({column}) r \
         WHERE r.value IN (SELECT value FROM json_each("
    ))
    .push_bind(strs_param(values))
    .push(")))");
}

/// Dialect hook: the SQL value of JSON array `column` with the string parameter `$n` appended.
pub(super) fn json_array_append(column: &str, n: usize) -> String {
    format!("json_insert({column}, '$[#]', ${n})")
}

/// Dialect hook: the suffix of a `SELECT` that locks the rows it returns for the rest of the
/// transaction, skipping rows another transaction holds. Nothing here: inside the claim
/// transaction ([`SqliteStore::begin_claim`]) this connection is the only writer.
pub(super) fn for_update_skip_locked() -> &'static str {
    ""
}

impl SqliteStore {
    /// Dialect hook: the transaction that claims tasks and reaps workers, serialized against every
    /// other claimer and reaper. `BEGIN IMMEDIATE` on the single writer connection does it.
    pub(super) async fn begin_claim(&self) -> DbResult<Transaction<'static, Sqlite>> {
        self.begin_write().await
    }
}

/// Dialect hook: the clause that locks the rows a `SELECT` reads until the write transaction
/// ends. None on SQLite: the write transaction (`BEGIN IMMEDIATE`) already holds the one write
/// lock.
pub(super) const FOR_UPDATE: &str = "";

/// Dialect hook: pushes the value of member `key` of the JSON column `column` onto a query
/// being built, for comparing with text: `json_extract(column, '$.<key>')`, the path bound.
pub(super) fn push_json_member(qb: &mut sqlx::QueryBuilder<Sqlite>, column: &str, key: &str) {
    qb.push(format!("json_extract({column}, "))
        .push_bind(format!("$.{key}"))
        .push(")");
}

// ---- value helpers ---------------------------------------------------------------------------

pub(super) fn hy(id: Uuid) -> Hyphenated {
    id.hyphenated()
}

pub(super) fn opt_hy(id: Option<Uuid>) -> Option<Hyphenated> {
    id.map(Uuid::hyphenated)
}

pub(super) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// `(?,?,?),(?,?,?)` for `rows` rows of `cols` columns.
fn values(rows: usize, cols: usize) -> String {
    let mut one = String::with_capacity(cols * 2 + 1);
    one.push('(');
    for c in 0..cols {
        if c > 0 {
            one.push(',');
        }
        one.push('?');
    }
    one.push(')');
    let mut s = String::with_capacity(rows * (one.len() + 1));
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push_str(&one);
    }
    s
}

/// `?,?,?` for an `IN (...)` list of `n` values.
pub(super) fn in_list(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s
}

// ---- row decoding ----------------------------------------------------------------------------

/// Dialect hook: locks the repository row for the rest of the write transaction and returns
/// its `next_version`. SQLite's write transaction (`BEGIN IMMEDIATE`) already holds the one
/// write lock, so this only reads.
pub(super) async fn lock_repository(conn: &mut SqliteConnection, id: Uuid) -> DbResult<i64> {
    sqlx::query_scalar("SELECT next_version FROM repositories WHERE id = $1")
        .bind(hy(id))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository {id}")))
}

/// What [`Store::backend`] answers.
pub(super) const BACKEND: &str = "sqlite";

// ---- dialect hooks: the batched writes of the sync pipeline -----------------------------------

impl SqliteStore {
    /// Inserts artifacts (an existing sha256 wins) with chunked multi-row `VALUES`.
    pub(super) async fn batch_insert_artifacts(
        tx: &mut SqliteConnection,
        rows: &[&NewArtifact],
    ) -> DbResult<()> {
        let now = us(shared::now());
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO artifacts (id, sha256, size, sha224, sha384, sha512, file, \
                 pulp_created, timestamp_of_interest) VALUES {} \
                 ON CONFLICT (sha256) DO NOTHING",
                values(chunk.len(), 9)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for a in chunk {
                q = q
                    .bind(hy(Uuid::now_v7()))
                    .bind(&a.sha256)
                    .bind(shared::to_i64(a.size, "artifact size")?)
                    .bind(&a.other.sha224)
                    .bind(&a.other.sha384)
                    .bind(&a.other.sha512)
                    .bind(&a.file)
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Inserts new units (an existing natural key wins) with chunked multi-row `VALUES`.
    pub(super) async fn batch_insert_content(
        tx: &mut SqliteConnection,
        new: &[&UnsavedContent],
    ) -> DbResult<()> {
        let now = us(shared::now());
        for chunk in new.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO content (id, pulp_type, natural_key, repo_key, data, pulp_created, \
                 timestamp_of_interest) VALUES {} \
                 ON CONFLICT (pulp_type, natural_key) DO NOTHING",
                values(chunk.len(), 7)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for u in chunk {
                q = q
                    .bind(hy(Uuid::now_v7()))
                    .bind(&u.pulp_type)
                    .bind(&u.natural_key)
                    .bind(&u.repo_key)
                    .bind(u.data.to_string())
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Ensures content artifacts (an artifact now known fills one that had none) with chunked
    /// multi-row `VALUES` upserts.
    pub(super) async fn batch_write_content_artifacts(
        tx: &mut SqliteConnection,
        cas: &[CaRow<'_>],
    ) -> DbResult<()> {
        for chunk in cas.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO content_artifacts (id, content_id, artifact_id, relative_path) \
                 VALUES {} ON CONFLICT (content_id, relative_path) DO UPDATE \
                 SET artifact_id = excluded.artifact_id \
                 WHERE content_artifacts.artifact_id IS NULL \
                 AND excluded.artifact_id IS NOT NULL",
                values(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ca in chunk {
                q = q
                    .bind(hy(Uuid::now_v7()))
                    .bind(hy(ca.content_id))
                    .bind(opt_hy(ca.artifact_id))
                    .bind(ca.relative_path);
            }
            q.execute(&mut *tx)
                .await
                .map_err(shared::content_artifact_write_err)?;
        }
        Ok(())
    }

    /// Upserts remote artifacts of content artifacts with chunked multi-row `VALUES`; a row
    /// that did not change is not rewritten.
    pub(super) async fn batch_write_remote_artifacts(
        tx: &mut SqliteConnection,
        rows: &[(Uuid, &NewRemoteArtifact)],
    ) -> DbResult<()> {
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                "INSERT INTO remote_artifacts (id, content_artifact_id, remote_id, url, size, \
                 sha256, sha224, sha384, sha512) VALUES {} \
                 ON CONFLICT (content_artifact_id, remote_id) DO UPDATE SET \
                 url = excluded.url, size = excluded.size, sha256 = excluded.sha256, \
                 sha224 = excluded.sha224, sha384 = excluded.sha384, sha512 = excluded.sha512 \
                 WHERE remote_artifacts.url IS NOT excluded.url \
                 OR remote_artifacts.size IS NOT excluded.size \
                 OR remote_artifacts.sha256 IS NOT excluded.sha256 \
                 OR remote_artifacts.sha224 IS NOT excluded.sha224 \
                 OR remote_artifacts.sha384 IS NOT excluded.sha384 \
                 OR remote_artifacts.sha512 IS NOT excluded.sha512",
                values(chunk.len(), 9)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (ca, ra) in chunk {
                q = q
                    .bind(hy(Uuid::now_v7()))
                    .bind(hy(*ca))
                    .bind(hy(ra.remote_id))
                    .bind(&ra.url)
                    .bind(shared::opt_to_i64(ra.size, "remote artifact size")?)
                    .bind(&ra.sha256)
                    .bind(&ra.other.sha224)
                    .bind(&ra.other.sha384)
                    .bind(&ra.other.sha512);
            }
            q.execute(&mut *tx)
                .await
                .map_err(shared::remote_artifact_write_err)?;
        }
        Ok(())
    }

    /// Adds memberships of `ids` to an incomplete version (reopening those it removed):
    /// chunked `IN (...)` lists and multi-row `VALUES`. The caller holds the write lock.
    pub(super) async fn batch_associate(
        tx: &mut SqliteConnection,
        repository_id: Uuid,
        version_id: Uuid,
        ids: &[Uuid],
    ) -> DbResult<u64> {
        let v = hy(version_id);
        let repo = hy(repository_id);
        let mut added = 0;
        for chunk in ids.chunks(CHUNK) {
            // A unit this version removed (mirror or replacement) and now adds again: reopen.
            let sql = format!(
                "UPDATE repository_content SET version_removed_id = NULL \
                 WHERE repository_id = ? AND version_removed_id = ? AND content_id IN ({})",
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(repo).bind(v);
            for id in chunk {
                q = q.bind(hy(*id));
            }
            added += q.execute(&mut *tx).await?.rows_affected();
            // Units without an open row get one.
            let sql = format!(
                "INSERT INTO repository_content (id, repository_id, content_id, \
                 version_added_id) VALUES {} \
                 ON CONFLICT (repository_id, content_id) WHERE version_removed_id IS NULL \
                 DO NOTHING",
                values(chunk.len(), 4)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(hy(Uuid::now_v7())).bind(repo).bind(hy(*id)).bind(v);
            }
            added += q
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    shared::map_write_err(
                        e,
                        || "repository content".to_string(),
                        || "content to associate".to_string(),
                    )
                })?
                .rows_affected();
        }
        Ok(added)
    }

    /// Drops the open memberships of `drop` from an incomplete version: rows it added go,
    /// older ones are closed by it. Chunked `IN (...)` lists.
    pub(super) async fn batch_unassociate(
        tx: &mut SqliteConnection,
        repository_id: Uuid,
        version_id: Uuid,
        drop: &[Uuid],
    ) -> DbResult<u64> {
        let v = hy(version_id);
        let repo = hy(repository_id);
        let mut removed = 0;
        for chunk in drop.chunks(CHUNK) {
            // Added by this very version: the row goes away.
            let sql = format!(
                "DELETE FROM repository_content WHERE repository_id = ? \
                 AND version_added_id = ? AND version_removed_id IS NULL \
                 AND content_id IN ({})",
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(repo).bind(v);
            for c in chunk {
                q = q.bind(hy(*c));
            }
            removed += q.execute(&mut *tx).await?.rows_affected();
            // Older: closed by this version.
            let sql = format!(
                "UPDATE repository_content SET version_removed_id = ? \
                 WHERE repository_id = ? AND version_removed_id IS NULL \
                 AND content_id IN ({})",
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(v).bind(repo);
            for c in chunk {
                q = q.bind(hy(*c));
            }
            removed += q.execute(&mut *tx).await?.rows_affected();
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(values(2, 3), "(?,?,?),(?,?,?)");
        assert_eq!(values(1, 1), "(?)");
        assert_eq!(in_list(3), "?,?,?");
        assert_eq!(in_list(1), "?");
    }

    #[tokio::test]
    async fn in_memory_database_works() {
        let store = connect("sqlite::memory:").await.unwrap();
        let repo = store
            .create_repository("file.file", "mem", None)
            .await
            .unwrap();
        assert_eq!(store.latest_version(repo.id).await.unwrap().number, 0);
    }
}

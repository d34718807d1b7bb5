//! The SQLite backend of [`Store`]: one WAL database file, embedded migrations
//! (`migrations/sqlite`), a single-connection write pool whose transactions start with
//! `BEGIN IMMEDIATE` (SQLite has one writer; taking the lock up front avoids upgrade deadlocks)
//! and a read pool of several connections.
//!
//! Storage conventions: ids are hyphenated UUID TEXT, times INTEGER microseconds since the Unix
//! epoch, JSON TEXT, booleans 0/1. Batches are written with multi-row `VALUES` statements of at
//! most [`CHUNK`] rows, far below SQLite's bound-parameter limit.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};
use uuid::fmt::Hyphenated;
use uuid::Uuid;

use super::shared::{self, CaRow};
use super::{DbError, DbResult, DynStore, Store};
use crate::models::{
    Artifact, Content, ContentArtifact, ContentToSave, NewArtifact, NewRemoteArtifact,
    OtherDigests, Policy, Remote, RemoteArtifact, Repository, RepositoryVersion, VersionCounts,
};

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
];

/// Rows per multi-row statement (at most 9 columns: 4,500 parameters).
const CHUNK: usize = 500;
/// Open memberships read per page by `unassociate_except`.
const PAGE: i64 = 5000;

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

/// Dialect hook: the clause that locks the rows a `SELECT` reads until the write transaction
/// ends. None on SQLite: the write transaction (`BEGIN IMMEDIATE`) already holds the one write
/// lock.
pub(super) const FOR_UPDATE: &str = "";

/// Dialect hook: the function giving the 1-based position of a substring, 0 when absent, as
/// `<fn>(haystack, needle)`.
pub(super) const STRPOS_FN: &str = "instr";

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

pub(super) fn uuid_at(row: &SqliteRow, i: usize) -> DbResult<Uuid> {
    Ok(row.try_get::<Hyphenated, _>(i)?.into_uuid())
}

pub(super) fn opt_uuid_at(row: &SqliteRow, i: usize) -> DbResult<Option<Uuid>> {
    Ok(row
        .try_get::<Option<Hyphenated>, _>(i)?
        .map(Hyphenated::into_uuid))
}

pub(super) fn time_at(row: &SqliteRow, i: usize) -> DbResult<DateTime<Utc>> {
    let v: i64 = row.try_get(i)?;
    shared::micros_to_time(v).ok_or_else(|| DbError::Corrupt(format!("timestamp {v}")))
}

pub(super) fn json_at(row: &SqliteRow, i: usize) -> DbResult<serde_json::Value> {
    let s: &str = row.try_get(i)?;
    serde_json::from_str(s).map_err(|e| DbError::Corrupt(format!("JSON column: {e}")))
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

macro_rules! repo_cols {
    () => {
        "id, pulp_type, name, description, next_version, remote_id, pulp_created, \
         pulp_last_updated, pulp_labels, retain_repo_versions, plugin_data"
    };
}

macro_rules! version_cols {
    () => {
        "id, repository_id, number, complete, added, removed, present, pulp_created"
    };
}

macro_rules! content_cols {
    () => {
        "c.id, c.pulp_type, c.natural_key, c.repo_key, c.data, c.pulp_created"
    };
}

macro_rules! artifact_cols {
    () => {
        "a.id, a.sha256, a.size, a.sha224, a.sha384, a.sha512, a.file, a.pulp_created"
    };
}

macro_rules! remote_cols {
    () => {
        "id, pulp_type, name, url, policy, download_concurrency, max_retries, username, \
         password, proxy_url, proxy_username, proxy_password, ca_cert, client_cert, client_key, \
         tls_validation, headers, connect_timeout, sock_read_timeout, total_timeout, rate_limit, \
         pulp_created, pulp_last_updated, pulp_labels, sock_connect_timeout"
    };
}

macro_rules! remote_artifact_cols {
    () => {
        "id, content_artifact_id, remote_id, url, size, sha256, sha224, sha384, sha512"
    };
}

pub(super) fn repo_from(row: &SqliteRow) -> DbResult<Repository> {
    Ok(Repository {
        id: uuid_at(row, 0)?,
        pulp_type: row.try_get(1)?,
        name: row.try_get(2)?,
        description: row.try_get(3)?,
        next_version: row.try_get(4)?,
        remote_id: opt_uuid_at(row, 5)?,
        pulp_created: time_at(row, 6)?,
        pulp_last_updated: time_at(row, 7)?,
        pulp_labels: super::catalog::labels_from_json(&json_at(row, 8)?)?,
        retain_repo_versions: shared::opt_to_u64(row.try_get(9)?, "retain_repo_versions")?,
        plugin_data: json_at(row, 10)?,
    })
}

pub(super) fn version_from(row: &SqliteRow) -> DbResult<RepositoryVersion> {
    Ok(RepositoryVersion {
        id: uuid_at(row, 0)?,
        repository_id: uuid_at(row, 1)?,
        number: row.try_get(2)?,
        complete: row.try_get(3)?,
        counts: VersionCounts {
            added: shared::to_u64(row.try_get(4)?, "added count")?,
            removed: shared::to_u64(row.try_get(5)?, "removed count")?,
            present: shared::to_u64(row.try_get(6)?, "present count")?,
        },
        pulp_created: time_at(row, 7)?,
    })
}

pub(super) fn content_from(row: &SqliteRow) -> DbResult<Content> {
    Ok(Content {
        id: uuid_at(row, 0)?,
        pulp_type: row.try_get(1)?,
        natural_key: row.try_get(2)?,
        repo_key: row.try_get(3)?,
        data: json_at(row, 4)?,
        pulp_created: time_at(row, 5)?,
    })
}

/// An artifact whose 8 columns start at `base`.
pub(super) fn artifact_from(row: &SqliteRow, base: usize) -> DbResult<Artifact> {
    Ok(Artifact {
        id: uuid_at(row, base)?,
        sha256: row.try_get(base + 1)?,
        size: shared::to_u64(row.try_get(base + 2)?, "artifact size")?,
        other: OtherDigests {
            sha224: row.try_get(base + 3)?,
            sha384: row.try_get(base + 4)?,
            sha512: row.try_get(base + 5)?,
        },
        file: row.try_get(base + 6)?,
        pulp_created: time_at(row, base + 7)?,
    })
}

pub(super) fn remote_from(row: &SqliteRow) -> DbResult<Remote> {
    let policy: &str = row.try_get(4)?;
    Ok(Remote {
        id: uuid_at(row, 0)?,
        pulp_type: row.try_get(1)?,
        name: row.try_get(2)?,
        url: row.try_get(3)?,
        policy: Policy::from_str(policy).map_err(DbError::Corrupt)?,
        download_concurrency: shared::opt_to_u32(row.try_get(5)?, "download_concurrency")?,
        max_retries: shared::opt_to_u32(row.try_get(6)?, "max_retries")?,
        username: row.try_get(7)?,
        password: row.try_get(8)?,
        proxy_url: row.try_get(9)?,
        proxy_username: row.try_get(10)?,
        proxy_password: row.try_get(11)?,
        ca_cert: row.try_get(12)?,
        client_cert: row.try_get(13)?,
        client_key: row.try_get(14)?,
        tls_validation: row.try_get(15)?,
        headers: shared::headers_from_json(&json_at(row, 16)?)?,
        connect_timeout: row.try_get(17)?,
        sock_read_timeout: row.try_get(18)?,
        total_timeout: row.try_get(19)?,
        rate_limit: shared::opt_to_u32(row.try_get(20)?, "rate_limit")?,
        pulp_created: time_at(row, 21)?,
        pulp_last_updated: time_at(row, 22)?,
        pulp_labels: super::catalog::labels_from_json(&json_at(row, 23)?)?,
        sock_connect_timeout: row.try_get(24)?,
    })
}

fn remote_artifact_from(row: &SqliteRow) -> DbResult<RemoteArtifact> {
    Ok(RemoteArtifact {
        id: uuid_at(row, 0)?,
        content_artifact_id: uuid_at(row, 1)?,
        remote_id: uuid_at(row, 2)?,
        url: row.try_get(3)?,
        size: shared::opt_to_u64(row.try_get(4)?, "remote artifact size")?,
        sha256: row.try_get(5)?,
        other: OtherDigests {
            sha224: row.try_get(6)?,
            sha384: row.try_get(7)?,
            sha512: row.try_get(8)?,
        },
    })
}

// ---- shared queries --------------------------------------------------------------------------

/// What the version methods need to know of a version row.
struct VersionHead {
    repository_id: Uuid,
    number: i64,
    complete: bool,
}

async fn version_head(conn: &mut SqliteConnection, id: Uuid) -> DbResult<Option<VersionHead>> {
    let row =
        sqlx::query("SELECT repository_id, number, complete FROM repository_versions WHERE id = ?")
            .bind(hy(id))
            .fetch_optional(&mut *conn)
            .await?;
    row.map(|r| {
        Ok(VersionHead {
            repository_id: uuid_at(&r, 0)?,
            number: r.try_get(1)?,
            complete: r.try_get(2)?,
        })
    })
    .transpose()
}

/// The head of an incomplete version, or NotFound / Conflict.
async fn incomplete_head(conn: &mut SqliteConnection, id: Uuid) -> DbResult<VersionHead> {
    let head = version_head(conn, id)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository version {id}")))?;
    if head.complete {
        return Err(DbError::Conflict(format!(
            "repository version {} is complete and cannot change",
            head.number
        )));
    }
    Ok(head)
}

async fn version_by_id(conn: &mut SqliteConnection, id: Uuid) -> DbResult<RepositoryVersion> {
    let row = sqlx::query(concat!(
        "SELECT ",
        version_cols!(),
        " FROM repository_versions WHERE id = ?"
    ))
    .bind(hy(id))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| DbError::NotFound(format!("repository version {id}")))?;
    version_from(&row)
}

/// Deletes the memberships an incomplete version added, reopens those it removed, deletes it.
async fn discard_in(conn: &mut SqliteConnection, version_id: Uuid) -> DbResult<()> {
    match version_head(conn, version_id).await? {
        None => return Ok(()),
        Some(h) if h.complete => return Ok(()),
        Some(_) => {}
    }
    let v = hy(version_id);
    sqlx::query("DELETE FROM repository_content WHERE version_added_id = ?")
        .bind(v)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE repository_content SET version_removed_id = NULL WHERE version_removed_id = ?",
    )
    .bind(v)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM repository_versions WHERE id = ?")
        .bind(v)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn count_scalar(
    conn: &mut SqliteConnection,
    sql: &'static str,
    a: Hyphenated,
) -> DbResult<u64> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(a)
        .fetch_one(&mut *conn)
        .await?;
    shared::to_u64(n, "count")
}

/// Units present in version `number` of a repository, by the range rule.
async fn count_present_at(
    conn: &mut SqliteConnection,
    repository_id: Uuid,
    number: i64,
) -> DbResult<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM repository_content rc \
         JOIN repository_versions va ON va.id = rc.version_added_id \
         LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
         WHERE rc.repository_id = ? AND va.number <= ? AND (vr.id IS NULL OR vr.number > ?)",
    )
    .bind(hy(repository_id))
    .bind(number)
    .bind(number)
    .fetch_one(&mut *conn)
    .await?;
    shared::to_u64(n, "count")
}

const COUNT_ADDED: &str = "SELECT count(*) FROM repository_content WHERE version_added_id = ?";
const COUNT_REMOVED: &str = "SELECT count(*) FROM repository_content WHERE version_removed_id = ?";
const COUNT_OPEN: &str =
    "SELECT count(*) FROM repository_content WHERE repository_id = ? AND version_removed_id IS NULL";

async fn get_remote_in(conn: &mut SqliteConnection, id: Uuid) -> DbResult<Remote> {
    let row = sqlx::query(concat!(
        "SELECT ",
        remote_cols!(),
        " FROM remotes WHERE id = ?"
    ))
    .bind(hy(id))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| DbError::NotFound(format!("remote {id}")))?;
    remote_from(&row)
}

async fn get_repository_in(conn: &mut SqliteConnection, id: Uuid) -> DbResult<Repository> {
    let row = sqlx::query(concat!(
        "SELECT ",
        repo_cols!(),
        " FROM repositories WHERE id = ?"
    ))
    .bind(hy(id))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| DbError::NotFound(format!("repository {id}")))?;
    repo_from(&row)
}

/// Binds every option of a remote after `id`, in `remote_cols!()` order minus the id and times.
fn bind_remote_options<'q>(
    q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments>,
    r: &'q Remote,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    q.bind(&r.pulp_type)
        .bind(&r.name)
        .bind(&r.url)
        .bind(r.policy.as_str())
        .bind(r.download_concurrency.map(i64::from))
        .bind(r.max_retries.map(i64::from))
        .bind(&r.username)
        .bind(&r.password)
        .bind(&r.proxy_url)
        .bind(&r.proxy_username)
        .bind(&r.proxy_password)
        .bind(&r.ca_cert)
        .bind(&r.client_cert)
        .bind(&r.client_key)
        .bind(r.tls_validation)
        .bind(shared::headers_to_json(&r.headers))
        .bind(r.connect_timeout)
        .bind(r.sock_read_timeout)
        .bind(r.total_timeout)
        .bind(r.rate_limit.map(i64::from))
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    // ---- remotes -----------------------------------------------------------------------------

    async fn create_remote(&self, remote: &Remote) -> DbResult<Remote> {
        let now = shared::now();
        let mut tx = self.begin_write().await?;
        let q = sqlx::query(concat!(
            "INSERT INTO remotes (",
            remote_cols!(),
            ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        ))
        .bind(hy(remote.id));
        bind_remote_options(q, remote)
            .bind(us(now))
            .bind(us(now))
            .bind(super::catalog::labels_to_json(&remote.pulp_labels).to_string())
            .bind(remote.sock_connect_timeout)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                shared::conflict_or_sqlx(e, || {
                    format!(
                        "a remote named {:?} (or with id {}) exists",
                        remote.name, remote.id
                    )
                })
            })?;
        let saved = get_remote_in(&mut tx, remote.id).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn update_remote(&self, remote: &Remote) -> DbResult<Remote> {
        let mut tx = self.begin_write().await?;
        let q = sqlx::query(
            "UPDATE remotes SET pulp_type = ?, name = ?, url = ?, policy = ?, \
             download_concurrency = ?, max_retries = ?, username = ?, password = ?, \
             proxy_url = ?, proxy_username = ?, proxy_password = ?, ca_cert = ?, \
             client_cert = ?, client_key = ?, tls_validation = ?, headers = ?, \
             connect_timeout = ?, sock_read_timeout = ?, total_timeout = ?, rate_limit = ?, \
             pulp_last_updated = ?, pulp_labels = ?, sock_connect_timeout = ? WHERE id = ?",
        );
        let done = bind_remote_options(q, remote)
            .bind(us(shared::now()))
            .bind(super::catalog::labels_to_json(&remote.pulp_labels).to_string())
            .bind(remote.sock_connect_timeout)
            .bind(hy(remote.id))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                shared::conflict_or_sqlx(e, || format!("a remote named {:?} exists", remote.name))
            })?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("remote {}", remote.id)));
        }
        let saved = get_remote_in(&mut tx, remote.id).await?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn get_remote(&self, id: Uuid) -> DbResult<Remote> {
        let mut conn = self.read.acquire().await?;
        get_remote_in(&mut conn, id).await
    }

    async fn get_remote_by_name(&self, name: &str) -> DbResult<Option<Remote>> {
        sqlx::query(concat!(
            "SELECT ",
            remote_cols!(),
            " FROM remotes WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.read)
        .await?
        .map(|r| remote_from(&r))
        .transpose()
    }

    // ---- repositories and versions -----------------------------------------------------------

    async fn create_repository(
        &self,
        pulp_type: &str,
        name: &str,
        remote_id: Option<Uuid>,
    ) -> DbResult<Repository> {
        let id = Uuid::now_v7();
        let now = us(shared::now());
        let mut tx = self.begin_write().await?;
        sqlx::query(concat!(
            "INSERT INTO repositories (",
            repo_cols!(),
            ") VALUES (?, ?, ?, NULL, 1, ?, ?, ?, '{}', NULL, '{}')"
        ))
        .bind(hy(id))
        .bind(pulp_type)
        .bind(name)
        .bind(opt_hy(remote_id))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            shared::map_write_err(
                e,
                || format!("a repository named {name:?} exists"),
                || format!("remote {}", remote_id.unwrap_or_default()),
            )
        })?;
        sqlx::query(concat!(
            "INSERT INTO repository_versions (",
            version_cols!(),
            ") VALUES (?, ?, 0, 1, 0, 0, 0, ?)"
        ))
        .bind(hy(Uuid::now_v7()))
        .bind(hy(id))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let repo = get_repository_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(repo)
    }

    async fn get_repository(&self, id: Uuid) -> DbResult<Repository> {
        let mut conn = self.read.acquire().await?;
        get_repository_in(&mut conn, id).await
    }

    async fn get_repository_by_name(&self, name: &str) -> DbResult<Option<Repository>> {
        sqlx::query(concat!(
            "SELECT ",
            repo_cols!(),
            " FROM repositories WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.read)
        .await?
        .map(|r| repo_from(&r))
        .transpose()
    }

    async fn list_repositories(&self) -> DbResult<Vec<Repository>> {
        sqlx::query(concat!(
            "SELECT ",
            repo_cols!(),
            " FROM repositories ORDER BY name"
        ))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(repo_from)
        .collect()
    }

    async fn set_repository_remote(
        &self,
        repository_id: Uuid,
        remote_id: Option<Uuid>,
    ) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE repositories SET remote_id = ?, pulp_last_updated = ? WHERE id = ?",
        )
        .bind(opt_hy(remote_id))
        .bind(us(shared::now()))
        .bind(hy(repository_id))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            shared::map_write_err(
                e,
                || "remote".to_string(),
                || format!("remote {}", remote_id.unwrap_or_default()),
            )
        })?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("repository {repository_id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_versions(&self, repository_id: Uuid) -> DbResult<Vec<RepositoryVersion>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM repository_versions WHERE repository_id = ? AND complete = 1 ORDER BY number"
        ))
        .bind(hy(repository_id))
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            // Every repository has version 0.
            return Err(DbError::NotFound(format!("repository {repository_id}")));
        }
        rows.iter().map(version_from).collect()
    }

    async fn get_version(
        &self,
        repository_id: Uuid,
        number: i64,
    ) -> DbResult<Option<RepositoryVersion>> {
        sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM repository_versions WHERE repository_id = ? AND number = ? AND complete = 1"
        ))
        .bind(hy(repository_id))
        .bind(number)
        .fetch_optional(&self.read)
        .await?
        .map(|r| version_from(&r))
        .transpose()
    }

    async fn latest_version(&self, repository_id: Uuid) -> DbResult<RepositoryVersion> {
        let row = sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM repository_versions WHERE repository_id = ? AND complete = 1 \
             ORDER BY number DESC LIMIT 1"
        ))
        .bind(hy(repository_id))
        .fetch_optional(&self.read)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository {repository_id}")))?;
        version_from(&row)
    }

    async fn create_incomplete_version(&self, repository_id: Uuid) -> DbResult<RepositoryVersion> {
        let mut tx = self.begin_write().await?;
        let next: i64 = sqlx::query_scalar("SELECT next_version FROM repositories WHERE id = ?")
            .bind(hy(repository_id))
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("repository {repository_id}")))?;
        let leftovers: Vec<Hyphenated> = sqlx::query_scalar(
            "SELECT id FROM repository_versions WHERE repository_id = ? AND complete = 0",
        )
        .bind(hy(repository_id))
        .fetch_all(&mut *tx)
        .await?;
        for v in leftovers {
            discard_in(&mut tx, v.into_uuid()).await?;
        }
        let id = Uuid::now_v7();
        sqlx::query(concat!(
            "INSERT INTO repository_versions (",
            version_cols!(),
            ") VALUES (?, ?, ?, 0, 0, 0, 0, ?)"
        ))
        .bind(hy(id))
        .bind(hy(repository_id))
        .bind(next)
        .bind(us(shared::now()))
        .execute(&mut *tx)
        .await?;
        let v = version_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn incomplete_versions(&self) -> DbResult<Vec<(Uuid, Uuid)>> {
        let rows: Vec<(Hyphenated, Hyphenated)> = sqlx::query_as(
            "SELECT id, repository_id FROM repository_versions WHERE complete = 0 \
             ORDER BY pulp_created, id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(v, r)| (v.into_uuid(), r.into_uuid()))
            .collect())
    }

    async fn discard_version(&self, version_id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        discard_in(&mut tx, version_id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn finalize_version(&self, version_id: Uuid) -> DbResult<Option<RepositoryVersion>> {
        let mut tx = self.begin_write().await?;
        let head = incomplete_head(&mut tx, version_id).await?;
        let v = hy(version_id);
        let repo = hy(head.repository_id);
        let added = count_scalar(&mut tx, COUNT_ADDED, v).await?;
        if added > 0 {
            // Units added by this version are open (never removed by it): two of them with
            // the same repo key cannot both stay.
            let dup = sqlx::query(
                "SELECT c.pulp_type, c.repo_key FROM repository_content rc \
                 JOIN content c ON c.id = rc.content_id \
                 WHERE rc.version_added_id = ? \
                 GROUP BY c.pulp_type, c.repo_key HAVING count(*) > 1 \
                 ORDER BY c.pulp_type, c.repo_key LIMIT 1",
            )
            .bind(v)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = dup {
                let pulp_type: String = row.try_get(0)?;
                let repo_key: String = row.try_get(1)?;
                tx.rollback().await?;
                return Err(DbError::Conflict(format!(
                    "two units added with the same repo key {pulp_type} {repo_key:?}"
                )));
            }
            // Replacement: an older open unit with the repo key of an added one is removed.
            sqlx::query(
                "UPDATE repository_content SET version_removed_id = ?1 \
                 WHERE repository_id = ?2 AND version_removed_id IS NULL \
                 AND version_added_id <> ?1 \
                 AND content_id IN ( \
                     SELECT old.id FROM repository_content rn \
                     JOIN content cn ON cn.id = rn.content_id \
                     JOIN content old ON old.pulp_type = cn.pulp_type \
                         AND old.repo_key = cn.repo_key AND old.id <> cn.id \
                     WHERE rn.version_added_id = ?1)",
            )
            .bind(v)
            .bind(repo)
            .execute(&mut *tx)
            .await?;
        }
        let removed = count_scalar(&mut tx, COUNT_REMOVED, v).await?;
        if added == 0 && removed == 0 {
            sqlx::query("DELETE FROM repository_versions WHERE id = ?")
                .bind(v)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(None);
        }
        let present = count_scalar(&mut tx, COUNT_OPEN, repo).await?;
        sqlx::query(
            "UPDATE repository_versions SET complete = 1, added = ?, removed = ?, present = ? \
             WHERE id = ?",
        )
        .bind(shared::to_i64(added, "count")?)
        .bind(shared::to_i64(removed, "count")?)
        .bind(shared::to_i64(present, "count")?)
        .bind(v)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE repositories SET next_version = ?, pulp_last_updated = ? WHERE id = ?")
            .bind(head.number + 1)
            .bind(us(shared::now()))
            .bind(repo)
            .execute(&mut *tx)
            .await?;
        let done = version_by_id(&mut tx, version_id).await?;
        tx.commit().await?;
        Ok(Some(done))
    }

    async fn version_content(
        &self,
        version_id: Uuid,
        limit: u64,
        offset: u64,
    ) -> DbResult<Vec<Content>> {
        let mut conn = self.read.acquire().await?;
        let head = match version_head(&mut conn, version_id).await? {
            Some(h) if h.complete => h,
            _ => {
                return Err(DbError::NotFound(format!(
                    "repository version {version_id}"
                )))
            }
        };
        sqlx::query(concat!(
            "SELECT ",
            content_cols!(),
            " FROM repository_content rc \
             JOIN repository_versions va ON va.id = rc.version_added_id \
             LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
             JOIN content c ON c.id = rc.content_id \
             WHERE rc.repository_id = ? AND va.number <= ? \
             AND (vr.id IS NULL OR vr.number > ?) \
             ORDER BY c.pulp_type, c.natural_key LIMIT ? OFFSET ?"
        ))
        .bind(hy(head.repository_id))
        .bind(head.number)
        .bind(head.number)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(content_from)
        .collect()
    }

    // ---- pipeline ----------------------------------------------------------------------------

    async fn find_artifacts_by_sha256(&self, sha256s: &[String]) -> DbResult<Vec<Artifact>> {
        let keys = shared::dedupe_strings(sha256s);
        let mut out = Vec::with_capacity(keys.len());
        let mut conn = self.read.acquire().await?;
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                concat!(
                    "SELECT ",
                    artifact_cols!(),
                    " FROM artifacts a WHERE a.sha256 IN ({})"
                ),
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(*k);
            }
            for row in q.fetch_all(&mut *conn).await? {
                out.push(artifact_from(&row, 0)?);
            }
        }
        Ok(out)
    }

    async fn insert_artifacts(&self, artifacts: &[NewArtifact]) -> DbResult<Vec<Artifact>> {
        let rows = shared::dedupe_artifacts(artifacts);
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let now = us(shared::now());
        let mut tx = self.begin_write().await?;
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
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(CHUNK) {
            let sql = format!(
                concat!(
                    "SELECT ",
                    artifact_cols!(),
                    " FROM artifacts a WHERE a.sha256 IN ({})"
                ),
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for a in chunk {
                q = q.bind(&a.sha256);
            }
            for row in q.fetch_all(&mut *tx).await? {
                out.push(artifact_from(&row, 0)?);
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn find_content(
        &self,
        pulp_type: &str,
        natural_keys: &[String],
    ) -> DbResult<Vec<Content>> {
        let keys = shared::dedupe_strings(natural_keys);
        let mut out = Vec::with_capacity(keys.len());
        let mut conn = self.read.acquire().await?;
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                concat!(
                    "SELECT ",
                    content_cols!(),
                    " FROM content c WHERE c.pulp_type = ? AND c.natural_key IN ({})"
                ),
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(pulp_type);
            for k in chunk {
                q = q.bind(*k);
            }
            for row in q.fetch_all(&mut *conn).await? {
                out.push(content_from(&row)?);
            }
        }
        Ok(out)
    }

    async fn save_content(&self, batch: &[ContentToSave]) -> DbResult<Vec<Uuid>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let new = shared::new_units(batch);
        let now = us(shared::now());
        let mut tx = self.begin_write().await?;
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
        // Read the ids back by natural key: rows inserted meanwhile by someone else count.
        let mut by_key: HashMap<(String, String), Uuid> = HashMap::with_capacity(new.len());
        let mut start = 0;
        while start < new.len() {
            // `new` is sorted by type: take a run of one type, at most CHUNK long.
            let pulp_type = new[start].pulp_type.as_str();
            let mut end = start;
            while end < new.len() && end - start < CHUNK && new[end].pulp_type == pulp_type {
                end += 1;
            }
            let run = &new[start..end];
            let sql = format!(
                "SELECT id, natural_key FROM content WHERE pulp_type = ? AND natural_key IN ({})",
                in_list(run.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(pulp_type);
            for u in run {
                q = q.bind(&u.natural_key);
            }
            for row in q.fetch_all(&mut *tx).await? {
                by_key.insert((pulp_type.to_string(), row.try_get(1)?), uuid_at(&row, 0)?);
            }
            start = end;
        }
        let ids = shared::ids_in_input_order(batch, &by_key)?;
        let cas: Vec<CaRow<'_>> = shared::content_artifact_rows(batch, &ids);
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
            q.execute(&mut *tx).await.map_err(|e| {
                shared::map_write_err(
                    e,
                    || "content artifact".to_string(),
                    || "content or artifact of a content artifact".to_string(),
                )
            })?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn save_remote_artifacts(&self, batch: &[NewRemoteArtifact]) -> DbResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let content_ids =
            shared::dedupe_ids(&batch.iter().map(|r| r.content_id).collect::<Vec<_>>());
        let mut tx = self.begin_write().await?;
        let mut ca_ids: HashMap<(Uuid, String), Uuid> = HashMap::new();
        for chunk in content_ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT id, content_id, relative_path FROM content_artifacts \
                 WHERE content_id IN ({})",
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(hy(*id));
            }
            for row in q.fetch_all(&mut *tx).await? {
                ca_ids.insert((uuid_at(&row, 1)?, row.try_get(2)?), uuid_at(&row, 0)?);
            }
        }
        let rows = shared::remote_artifact_rows(batch, &ca_ids)?;
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
            q.execute(&mut *tx).await.map_err(|e| {
                shared::map_write_err(
                    e,
                    || "remote artifact".to_string(),
                    || "remote of a remote artifact".to_string(),
                )
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn content_artifacts(
        &self,
        content_ids: &[Uuid],
    ) -> DbResult<Vec<(ContentArtifact, Option<Artifact>)>> {
        let ids = shared::dedupe_ids(content_ids);
        let mut out = Vec::with_capacity(ids.len());
        let mut conn = self.read.acquire().await?;
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                concat!(
                    "SELECT ca.id, ca.content_id, ca.artifact_id, ca.relative_path, ",
                    artifact_cols!(),
                    " FROM content_artifacts ca LEFT JOIN artifacts a ON a.id = ca.artifact_id \
                     WHERE ca.content_id IN ({}) ORDER BY ca.content_id, ca.relative_path"
                ),
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(hy(*id));
            }
            for row in q.fetch_all(&mut *conn).await? {
                let ca = ContentArtifact {
                    id: uuid_at(&row, 0)?,
                    content_id: uuid_at(&row, 1)?,
                    artifact_id: opt_uuid_at(&row, 2)?,
                    relative_path: row.try_get(3)?,
                };
                let art = if opt_uuid_at(&row, 4)?.is_some() {
                    Some(artifact_from(&row, 4)?)
                } else {
                    None
                };
                out.push((ca, art));
            }
        }
        Ok(out)
    }

    async fn remote_artifacts(&self, content_artifact_id: Uuid) -> DbResult<Vec<RemoteArtifact>> {
        sqlx::query(concat!(
            "SELECT ",
            remote_artifact_cols!(),
            " FROM remote_artifacts WHERE content_artifact_id = ? ORDER BY remote_id"
        ))
        .bind(hy(content_artifact_id))
        .fetch_all(&self.read)
        .await?
        .iter()
        .map(remote_artifact_from)
        .collect()
    }

    async fn associate(&self, version_id: Uuid, content_ids: &[Uuid]) -> DbResult<u64> {
        let ids = shared::dedupe_ids(content_ids);
        let mut tx = self.begin_write().await?;
        let head = incomplete_head(&mut tx, version_id).await?;
        let v = hy(version_id);
        let repo = hy(head.repository_id);
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
        tx.commit().await?;
        Ok(added)
    }

    async fn unassociate_except(&self, version_id: Uuid, keep: &HashSet<Uuid>) -> DbResult<u64> {
        let mut tx = self.begin_write().await?;
        let head = incomplete_head(&mut tx, version_id).await?;
        let v = hy(version_id);
        let repo = hy(head.repository_id);
        let mut removed = 0;
        let mut after = String::new();
        loop {
            let page: Vec<String> = sqlx::query_scalar(
                "SELECT content_id FROM repository_content \
                 WHERE repository_id = ? AND version_removed_id IS NULL AND content_id > ? \
                 ORDER BY content_id LIMIT ?",
            )
            .bind(repo)
            .bind(&after)
            .bind(PAGE)
            .fetch_all(&mut *tx)
            .await?;
            let mut drop = Vec::new();
            for c in &page {
                let id = Uuid::parse_str(c)
                    .map_err(|e| DbError::Corrupt(format!("content id {c:?}: {e}")))?;
                if !keep.contains(&id) {
                    drop.push(c.as_str());
                }
            }
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
                    q = q.bind(*c);
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
                    q = q.bind(*c);
                }
                removed += q.execute(&mut *tx).await?.rows_affected();
            }
            if page.len() < PAGE as usize {
                break;
            }
            match page.into_iter().next_back() {
                Some(last) => after = last,
                None => break,
            }
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn count_version(&self, version_id: Uuid) -> DbResult<VersionCounts> {
        let mut conn = self.read.acquire().await?;
        let head = version_head(&mut conn, version_id)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("repository version {version_id}")))?;
        let v = hy(version_id);
        let added = count_scalar(&mut conn, COUNT_ADDED, v).await?;
        let removed = count_scalar(&mut conn, COUNT_REMOVED, v).await?;
        let present = if head.complete {
            count_present_at(&mut conn, head.repository_id, head.number).await?
        } else {
            count_scalar(&mut conn, COUNT_OPEN, hy(head.repository_id)).await?
        };
        Ok(VersionCounts {
            added,
            removed,
            present,
        })
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

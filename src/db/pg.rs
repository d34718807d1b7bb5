//! The PostgreSQL backend of [`Store`]: a pool of [`POOL_SIZE`] connections, embedded
//! migrations (`migrations/postgres`), batch writes as `INSERT ... SELECT FROM UNNEST(...)`
//! with one array parameter per column (no parameter limit), every batch sorted by its unique
//! key so concurrent syncs lock rows in the same order.
//!
//! Version-changing transactions lock the repository row (`FOR NO KEY UPDATE`) first, so two
//! of them on one repository serialize instead of deadlocking.
//!
//! Known issue: sqlx 0.9.0 does not set `TCP_NODELAY` (sqlx issue #4335, fixed upstream after
//! 0.9.0). Over TLS (the default `sslmode=prefer` against a server with `ssl = on`), a statement
//! larger than one TLS record (16 KiB, i.e. most batch statements) then waits ~40 ms for a
//! delayed ACK, which makes a sync several times slower. Until sqlx is upgraded, point the URL
//! at a Unix socket (`postgres:///pulp?host=/var/run/postgresql`) or use `sslmode=disable` on a
//! trusted local link.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
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
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "tasks",
        include_str!("../../migrations/postgres/0002_tasks.sql"),
    ),
    (
        3,
        "server",
        include_str!("../../migrations/postgres/0003_server.sql"),
    ),
    (
        6,
        "distribution",
        include_str!("../../migrations/postgres/0006_distribution.sql"),
    ),
];

/// Connections in the pool.
const POOL_SIZE: u32 = 10;
/// Open memberships read per page by `unassociate_except`.
const PAGE: i64 = 5000;

/// The PostgreSQL [`Store`].
pub struct PgStore {
    pub(super) pool: PgPool,
}

/// Connects to the database named by `url` and runs the migrations.
pub async fn connect(url: &str) -> DbResult<DynStore> {
    Ok(Arc::new(PgStore::connect(url).await?))
}

impl PgStore {
    /// Connects to the database named by `url` and runs the migrations.
    pub async fn connect(url: &str) -> DbResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect(url)
            .await?;
        shared::migrator(MIGRATIONS).run(&pool).await?;
        Ok(PgStore { pool })
    }

    pub(super) async fn begin(&self) -> DbResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

// ---- the dialect: what the shared store code (`db/sql/`) is compiled against ----------------

/// The driver the shared code runs on here.
pub(super) type Db = Postgres;
/// The store the shared code implements the traits for.
pub(super) type Backend = PgStore;

#[path = "sql/mod.rs"]
mod sql;

impl PgStore {
    /// The pool for reads (the one pool).
    pub(super) fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// The pool for single writes outside a transaction (the one pool).
    pub(super) fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// Dialect hook: a write transaction. PostgreSQL locks rows as statements touch them (and
    /// [`lock_repository`] takes the repository row up front where order matters).
    pub(super) async fn begin_write(&self) -> DbResult<Transaction<'static, Postgres>> {
        self.begin().await
    }
}

/// Dialect hook: `<column> IN <a list bound as parameter $n>`: `= ANY($n)` over an array.
pub(super) fn in_list_param(n: usize) -> String {
    format!("= ANY(${n})")
}

/// Dialect hook: ids bound as one list parameter (a `uuid[]`).
pub(super) fn ids_param(ids: &[Uuid]) -> Vec<Uuid> {
    ids.to_vec()
}

/// Dialect hook: strings bound as one list parameter (a `text[]`).
pub(super) fn strs_param<S: AsRef<str>>(v: &[S]) -> Vec<String> {
    v.iter().map(|s| s.as_ref().to_string()).collect()
}

/// Dialect hook: the clause that locks the rows a `SELECT` reads until the write transaction
/// ends.
pub(super) const FOR_UPDATE: &str = " FOR UPDATE";

/// Dialect hook: the function giving the 1-based position of a substring, 0 when absent, as
/// `<fn>(haystack, needle)`.
pub(super) const STRPOS_FN: &str = "strpos";

/// Dialect hook: pushes the value of member `key` of the JSON column `column` onto a query
/// being built, for comparing with text: `column ->> '<key>'`, the key bound.
pub(super) fn push_json_member(qb: &mut sqlx::QueryBuilder<Postgres>, column: &str, key: &str) {
    qb.push(format!("{column} ->> ")).push_bind(key.to_string());
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

pub(super) fn repo_from(row: &PgRow) -> DbResult<Repository> {
    Ok(Repository {
        id: row.try_get(0)?,
        pulp_type: row.try_get(1)?,
        name: row.try_get(2)?,
        description: row.try_get(3)?,
        next_version: row.try_get(4)?,
        remote_id: row.try_get(5)?,
        pulp_created: row.try_get(6)?,
        pulp_last_updated: row.try_get(7)?,
        pulp_labels: super::catalog::labels_from_json(&row.try_get::<serde_json::Value, _>(8)?)?,
        retain_repo_versions: shared::opt_to_u64(row.try_get(9)?, "retain_repo_versions")?,
        plugin_data: row.try_get(10)?,
    })
}

pub(super) fn version_from(row: &PgRow) -> DbResult<RepositoryVersion> {
    Ok(RepositoryVersion {
        id: row.try_get(0)?,
        repository_id: row.try_get(1)?,
        number: row.try_get(2)?,
        complete: row.try_get(3)?,
        counts: VersionCounts {
            added: shared::to_u64(row.try_get(4)?, "added count")?,
            removed: shared::to_u64(row.try_get(5)?, "removed count")?,
            present: shared::to_u64(row.try_get(6)?, "present count")?,
        },
        pulp_created: row.try_get(7)?,
    })
}

pub(super) fn content_from(row: &PgRow) -> DbResult<Content> {
    Ok(Content {
        id: row.try_get(0)?,
        pulp_type: row.try_get(1)?,
        natural_key: row.try_get(2)?,
        repo_key: row.try_get(3)?,
        data: row.try_get(4)?,
        pulp_created: row.try_get(5)?,
    })
}

/// An artifact whose 8 columns start at `base`.
pub(super) fn artifact_from(row: &PgRow, base: usize) -> DbResult<Artifact> {
    Ok(Artifact {
        id: row.try_get(base)?,
        sha256: row.try_get(base + 1)?,
        size: shared::to_u64(row.try_get(base + 2)?, "artifact size")?,
        other: OtherDigests {
            sha224: row.try_get(base + 3)?,
            sha384: row.try_get(base + 4)?,
            sha512: row.try_get(base + 5)?,
        },
        file: row.try_get(base + 6)?,
        pulp_created: row.try_get(base + 7)?,
    })
}

pub(super) fn remote_from(row: &PgRow) -> DbResult<Remote> {
    let policy: &str = row.try_get(4)?;
    let headers: serde_json::Value = row.try_get(16)?;
    Ok(Remote {
        id: row.try_get(0)?,
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
        headers: shared::headers_from_json(&headers)?,
        connect_timeout: row.try_get(17)?,
        sock_read_timeout: row.try_get(18)?,
        total_timeout: row.try_get(19)?,
        rate_limit: shared::opt_to_u32(row.try_get(20)?, "rate_limit")?,
        pulp_created: row.try_get(21)?,
        pulp_last_updated: row.try_get(22)?,
        pulp_labels: super::catalog::labels_from_json(&row.try_get::<serde_json::Value, _>(23)?)?,
        sock_connect_timeout: row.try_get(24)?,
    })
}

fn remote_artifact_from(row: &PgRow) -> DbResult<RemoteArtifact> {
    Ok(RemoteArtifact {
        id: row.try_get(0)?,
        content_artifact_id: row.try_get(1)?,
        remote_id: row.try_get(2)?,
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

async fn version_head(conn: &mut PgConnection, id: Uuid) -> DbResult<Option<VersionHead>> {
    let row = sqlx::query(
        "SELECT repository_id, number, complete FROM repository_versions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(VersionHead {
            repository_id: r.try_get(0)?,
            number: r.try_get(1)?,
            complete: r.try_get(2)?,
        })
    })
    .transpose()
}

/// Locks the repository row for the rest of the transaction; returns its `next_version`.
async fn lock_repository(conn: &mut PgConnection, id: Uuid) -> DbResult<i64> {
    sqlx::query_scalar("SELECT next_version FROM repositories WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository {id}")))
}

/// Locks the version's repository, then returns the version's head if it still exists.
async fn locked_head(conn: &mut PgConnection, id: Uuid) -> DbResult<Option<VersionHead>> {
    let Some(head) = version_head(conn, id).await? else {
        return Ok(None);
    };
    lock_repository(conn, head.repository_id).await?;
    version_head(conn, id).await
}

/// Locks the version's repository and returns the head of the incomplete version, or
/// NotFound / Conflict.
async fn locked_incomplete_head(conn: &mut PgConnection, id: Uuid) -> DbResult<VersionHead> {
    let head = locked_head(conn, id)
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

async fn version_by_id(conn: &mut PgConnection, id: Uuid) -> DbResult<RepositoryVersion> {
    let row = sqlx::query(concat!(
        "SELECT ",
        version_cols!(),
        " FROM repository_versions WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| DbError::NotFound(format!("repository version {id}")))?;
    version_from(&row)
}

/// Deletes the memberships an incomplete version added, reopens those it removed, deletes it.
/// The caller holds the repository lock.
async fn discard_locked(conn: &mut PgConnection, version_id: Uuid) -> DbResult<()> {
    sqlx::query("DELETE FROM repository_content WHERE version_added_id = $1")
        .bind(version_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE repository_content SET version_removed_id = NULL WHERE version_removed_id = $1",
    )
    .bind(version_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM repository_versions WHERE id = $1")
        .bind(version_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn count_scalar(conn: &mut PgConnection, sql: &'static str, a: Uuid) -> DbResult<u64> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(a)
        .fetch_one(&mut *conn)
        .await?;
    shared::to_u64(n, "count")
}

/// Units present in version `number` of a repository, by the range rule.
async fn count_present_at(
    conn: &mut PgConnection,
    repository_id: Uuid,
    number: i64,
) -> DbResult<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM repository_content rc \
         JOIN repository_versions va ON va.id = rc.version_added_id \
         LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
         WHERE rc.repository_id = $1 AND va.number <= $2 \
         AND (vr.id IS NULL OR vr.number > $2)",
    )
    .bind(repository_id)
    .bind(number)
    .fetch_one(&mut *conn)
    .await?;
    shared::to_u64(n, "count")
}

const COUNT_ADDED: &str = "SELECT count(*) FROM repository_content WHERE version_added_id = $1";
const COUNT_REMOVED: &str = "SELECT count(*) FROM repository_content WHERE version_removed_id = $1";
const COUNT_OPEN: &str = "SELECT count(*) FROM repository_content \
                          WHERE repository_id = $1 AND version_removed_id IS NULL";

async fn get_remote_in(conn: &mut PgConnection, id: Uuid) -> DbResult<Remote> {
    let row = sqlx::query(concat!(
        "SELECT ",
        remote_cols!(),
        " FROM remotes WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| DbError::NotFound(format!("remote {id}")))?;
    remote_from(&row)
}

async fn get_repository_in(conn: &mut PgConnection, id: Uuid) -> DbResult<Repository> {
    let row = sqlx::query(concat!(
        "SELECT ",
        repo_cols!(),
        " FROM repositories WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| DbError::NotFound(format!("repository {id}")))?;
    repo_from(&row)
}

/// Binds every option of a remote, in `remote_cols!()` order minus the id and times.
fn bind_remote_options<'q>(q: Query<'q>, r: &'q Remote) -> Query<'q> {
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

/// A remote artifact as stored, for comparing with what a sync found.
type RaValues = (
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    // ---- remotes -----------------------------------------------------------------------------

    async fn create_remote(&self, remote: &Remote) -> DbResult<Remote> {
        let now = shared::now();
        let mut tx = self.begin().await?;
        let q = sqlx::query(concat!(
            "INSERT INTO remotes (",
            remote_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $17::jsonb, $18, $19, $20, $21, $22, $23, $24, $25)"
        ))
        .bind(remote.id);
        bind_remote_options(q, remote)
            .bind(now)
            .bind(now)
            .bind(super::catalog::labels_to_json(&remote.pulp_labels))
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
        let mut tx = self.begin().await?;
        let q = sqlx::query(
            "UPDATE remotes SET pulp_type = $1, name = $2, url = $3, policy = $4, \
             download_concurrency = $5, max_retries = $6, username = $7, password = $8, \
             proxy_url = $9, proxy_username = $10, proxy_password = $11, ca_cert = $12, \
             client_cert = $13, client_key = $14, tls_validation = $15, headers = $16::jsonb, \
             connect_timeout = $17, sock_read_timeout = $18, total_timeout = $19, \
             rate_limit = $20, pulp_last_updated = $21, pulp_labels = $22, \
             sock_connect_timeout = $23 WHERE id = $24",
        );
        let done = bind_remote_options(q, remote)
            .bind(shared::now())
            .bind(super::catalog::labels_to_json(&remote.pulp_labels))
            .bind(remote.sock_connect_timeout)
            .bind(remote.id)
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
        let mut conn = self.pool.acquire().await?;
        get_remote_in(&mut conn, id).await
    }

    async fn get_remote_by_name(&self, name: &str) -> DbResult<Option<Remote>> {
        sqlx::query(concat!(
            "SELECT ",
            remote_cols!(),
            " FROM remotes WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
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
        let now = shared::now();
        let mut tx = self.begin().await?;
        sqlx::query(concat!(
            "INSERT INTO repositories (",
            repo_cols!(),
            ") VALUES ($1, $2, $3, NULL, 1, $4, $5, $5, '{}'::jsonb, NULL, '{}'::jsonb)"
        ))
        .bind(id)
        .bind(pulp_type)
        .bind(name)
        .bind(remote_id)
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
            ") VALUES ($1, $2, 0, true, 0, 0, 0, $3)"
        ))
        .bind(Uuid::now_v7())
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let repo = get_repository_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(repo)
    }

    async fn get_repository(&self, id: Uuid) -> DbResult<Repository> {
        let mut conn = self.pool.acquire().await?;
        get_repository_in(&mut conn, id).await
    }

    async fn get_repository_by_name(&self, name: &str) -> DbResult<Option<Repository>> {
        sqlx::query(concat!(
            "SELECT ",
            repo_cols!(),
            " FROM repositories WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
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
        .fetch_all(&self.pool)
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
        let done = sqlx::query(
            "UPDATE repositories SET remote_id = $1, pulp_last_updated = $2 WHERE id = $3",
        )
        .bind(remote_id)
        .bind(shared::now())
        .bind(repository_id)
        .execute(&self.pool)
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
        Ok(())
    }

    async fn list_versions(&self, repository_id: Uuid) -> DbResult<Vec<RepositoryVersion>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM repository_versions WHERE repository_id = $1 AND complete ORDER BY number"
        ))
        .bind(repository_id)
        .fetch_all(&self.pool)
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
            " FROM repository_versions WHERE repository_id = $1 AND number = $2 AND complete"
        ))
        .bind(repository_id)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| version_from(&r))
        .transpose()
    }

    async fn latest_version(&self, repository_id: Uuid) -> DbResult<RepositoryVersion> {
        let row = sqlx::query(concat!(
            "SELECT ",
            version_cols!(),
            " FROM repository_versions WHERE repository_id = $1 AND complete \
             ORDER BY number DESC LIMIT 1"
        ))
        .bind(repository_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository {repository_id}")))?;
        version_from(&row)
    }

    async fn create_incomplete_version(&self, repository_id: Uuid) -> DbResult<RepositoryVersion> {
        let mut tx = self.begin().await?;
        let next = lock_repository(&mut tx, repository_id).await?;
        let leftovers: Vec<Uuid> = sqlx::query_scalar(
            "SELECT id FROM repository_versions WHERE repository_id = $1 AND NOT complete",
        )
        .bind(repository_id)
        .fetch_all(&mut *tx)
        .await?;
        for v in leftovers {
            discard_locked(&mut tx, v).await?;
        }
        let id = Uuid::now_v7();
        sqlx::query(concat!(
            "INSERT INTO repository_versions (",
            version_cols!(),
            ") VALUES ($1, $2, $3, false, 0, 0, 0, $4)"
        ))
        .bind(id)
        .bind(repository_id)
        .bind(next)
        .bind(shared::now())
        .execute(&mut *tx)
        .await?;
        let v = version_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn incomplete_versions(&self) -> DbResult<Vec<(Uuid, Uuid)>> {
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT id, repository_id FROM repository_versions WHERE NOT complete \
             ORDER BY pulp_created, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn discard_version(&self, version_id: Uuid) -> DbResult<()> {
        let mut tx = self.begin().await?;
        match locked_head(&mut tx, version_id).await? {
            Some(h) if !h.complete => discard_locked(&mut tx, version_id).await?,
            _ => {}
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finalize_version(&self, version_id: Uuid) -> DbResult<Option<RepositoryVersion>> {
        let mut tx = self.begin().await?;
        let head = locked_incomplete_head(&mut tx, version_id).await?;
        let added = count_scalar(&mut tx, COUNT_ADDED, version_id).await?;
        if added > 0 {
            // Units added by this version are open (never removed by it): two of them with
            // the same repo key cannot both stay.
            let dup = sqlx::query(
                "SELECT c.pulp_type, c.repo_key FROM repository_content rc \
                 JOIN content c ON c.id = rc.content_id \
                 WHERE rc.version_added_id = $1 \
                 GROUP BY c.pulp_type, c.repo_key HAVING count(*) > 1 \
                 ORDER BY c.pulp_type, c.repo_key LIMIT 1",
            )
            .bind(version_id)
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
                "UPDATE repository_content SET version_removed_id = $1 \
                 WHERE repository_id = $2 AND version_removed_id IS NULL \
                 AND version_added_id <> $1 \
                 AND content_id IN ( \
                     SELECT old.id FROM repository_content rn \
                     JOIN content cn ON cn.id = rn.content_id \
                     JOIN content old ON old.pulp_type = cn.pulp_type \
                         AND old.repo_key = cn.repo_key AND old.id <> cn.id \
                     WHERE rn.version_added_id = $1)",
            )
            .bind(version_id)
            .bind(head.repository_id)
            .execute(&mut *tx)
            .await?;
        }
        let removed = count_scalar(&mut tx, COUNT_REMOVED, version_id).await?;
        if added == 0 && removed == 0 {
            sqlx::query("DELETE FROM repository_versions WHERE id = $1")
                .bind(version_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(None);
        }
        let present = count_scalar(&mut tx, COUNT_OPEN, head.repository_id).await?;
        sqlx::query(
            "UPDATE repository_versions SET complete = true, added = $1, removed = $2, \
             present = $3 WHERE id = $4",
        )
        .bind(shared::to_i64(added, "count")?)
        .bind(shared::to_i64(removed, "count")?)
        .bind(shared::to_i64(present, "count")?)
        .bind(version_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE repositories SET next_version = $1, pulp_last_updated = $2 WHERE id = $3",
        )
        .bind(head.number + 1)
        .bind(shared::now())
        .bind(head.repository_id)
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
        let mut conn = self.pool.acquire().await?;
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
             WHERE rc.repository_id = $1 AND va.number <= $2 \
             AND (vr.id IS NULL OR vr.number > $2) \
             ORDER BY c.pulp_type, c.natural_key LIMIT $3 OFFSET $4"
        ))
        .bind(head.repository_id)
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
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query(concat!(
            "SELECT ",
            artifact_cols!(),
            " FROM artifacts a WHERE a.sha256 = ANY($1)"
        ))
        .bind(keys)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| artifact_from(r, 0))
        .collect()
    }

    async fn insert_artifacts(&self, artifacts: &[NewArtifact]) -> DbResult<Vec<Artifact>> {
        let rows = shared::dedupe_artifacts(artifacts);
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Uuid> = rows.iter().map(|_| Uuid::now_v7()).collect();
        let sha256: Vec<&str> = rows.iter().map(|a| a.sha256.as_str()).collect();
        let size = rows
            .iter()
            .map(|a| shared::to_i64(a.size, "artifact size"))
            .collect::<DbResult<Vec<i64>>>()?;
        let sha224: Vec<Option<&str>> = rows.iter().map(|a| a.other.sha224.as_deref()).collect();
        let sha384: Vec<Option<&str>> = rows.iter().map(|a| a.other.sha384.as_deref()).collect();
        let sha512: Vec<Option<&str>> = rows.iter().map(|a| a.other.sha512.as_deref()).collect();
        let file: Vec<&str> = rows.iter().map(|a| a.file.as_str()).collect();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO artifacts (id, sha256, size, sha224, sha384, sha512, file, \
             pulp_created, timestamp_of_interest) \
             SELECT u.id, u.sha256, u.size, u.sha224, u.sha384, u.sha512, u.file, $8, $8 \
             FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::text[], \
                         $6::text[], $7::text[]) \
                  AS u(id, sha256, size, sha224, sha384, sha512, file) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(ids)
        .bind(&sha256)
        .bind(size)
        .bind(sha224)
        .bind(sha384)
        .bind(sha512)
        .bind(file)
        .bind(shared::now())
        .execute(&mut *tx)
        .await?;
        let out = sqlx::query(concat!(
            "SELECT ",
            artifact_cols!(),
            " FROM artifacts a WHERE a.sha256 = ANY($1)"
        ))
        .bind(&sha256)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| artifact_from(r, 0))
        .collect::<DbResult<Vec<_>>>()?;
        tx.commit().await?;
        Ok(out)
    }

    async fn find_content(
        &self,
        pulp_type: &str,
        natural_keys: &[String],
    ) -> DbResult<Vec<Content>> {
        let keys = shared::dedupe_strings(natural_keys);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query(concat!(
            "SELECT ",
            content_cols!(),
            " FROM content c WHERE c.pulp_type = $1 AND c.natural_key = ANY($2)"
        ))
        .bind(pulp_type)
        .bind(keys)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(content_from)
        .collect()
    }

    async fn save_content(&self, batch: &[ContentToSave]) -> DbResult<Vec<Uuid>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let new = shared::new_units(batch);
        let mut tx = self.begin().await?;
        let mut by_key: HashMap<(String, String), Uuid> = HashMap::with_capacity(new.len());
        if !new.is_empty() {
            let ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
            let types: Vec<&str> = new.iter().map(|u| u.pulp_type.as_str()).collect();
            let keys: Vec<&str> = new.iter().map(|u| u.natural_key.as_str()).collect();
            let repo_keys: Vec<&str> = new.iter().map(|u| u.repo_key.as_str()).collect();
            let data: Vec<String> = new.iter().map(|u| u.data.to_string()).collect();
            sqlx::query(
                "INSERT INTO content (id, pulp_type, natural_key, repo_key, data, pulp_created, \
                 timestamp_of_interest) \
                 SELECT u.id, u.pulp_type, u.natural_key, u.repo_key, u.data::jsonb, $6, $6 \
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                      AS u(id, pulp_type, natural_key, repo_key, data) \
                 ON CONFLICT (pulp_type, natural_key) DO NOTHING",
            )
            .bind(ids)
            .bind(&types)
            .bind(&keys)
            .bind(repo_keys)
            .bind(data)
            .bind(shared::now())
            .execute(&mut *tx)
            .await?;
            // Read the ids back by natural key: rows inserted meanwhile by someone else count.
            let rows = sqlx::query(
                "SELECT c.id, c.pulp_type, c.natural_key FROM content c \
                 JOIN UNNEST($1::text[], $2::text[]) AS u(pulp_type, natural_key) \
                   ON c.pulp_type = u.pulp_type AND c.natural_key = u.natural_key",
            )
            .bind(&types)
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?;
            for row in rows {
                by_key.insert((row.try_get(1)?, row.try_get(2)?), row.try_get(0)?);
            }
        }
        let ids = shared::ids_in_input_order(batch, &by_key)?;
        let cas: Vec<CaRow<'_>> = shared::content_artifact_rows(batch, &ids);
        if !cas.is_empty() {
            let ca_ids: Vec<Uuid> = cas.iter().map(|_| Uuid::now_v7()).collect();
            let content_ids: Vec<Uuid> = cas.iter().map(|c| c.content_id).collect();
            let artifact_ids: Vec<Option<Uuid>> = cas.iter().map(|c| c.artifact_id).collect();
            let paths: Vec<&str> = cas.iter().map(|c| c.relative_path).collect();
            sqlx::query(
                "INSERT INTO content_artifacts (id, content_id, artifact_id, relative_path) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[]) \
                 ON CONFLICT (content_id, relative_path) DO NOTHING",
            )
            .bind(ca_ids)
            .bind(content_ids)
            .bind(artifact_ids)
            .bind(paths)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                shared::map_write_err(
                    e,
                    || "content artifact".to_string(),
                    || "content or artifact of a content artifact".to_string(),
                )
            })?;
            // An artifact now known fills a content artifact that had none.
            let known: Vec<&CaRow<'_>> = cas.iter().filter(|c| c.artifact_id.is_some()).collect();
            if !known.is_empty() {
                let content_ids: Vec<Uuid> = known.iter().map(|c| c.content_id).collect();
                let paths: Vec<&str> = known.iter().map(|c| c.relative_path).collect();
                let artifact_ids: Vec<Option<Uuid>> = known.iter().map(|c| c.artifact_id).collect();
                sqlx::query(
                    "UPDATE content_artifacts ca SET artifact_id = u.artifact_id \
                     FROM UNNEST($1::uuid[], $2::text[], $3::uuid[]) \
                          AS u(content_id, relative_path, artifact_id) \
                     WHERE ca.content_id = u.content_id AND ca.relative_path = u.relative_path \
                     AND ca.artifact_id IS NULL",
                )
                .bind(content_ids)
                .bind(paths)
                .bind(artifact_ids)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    shared::map_write_err(
                        e,
                        || "content artifact".to_string(),
                        || "artifact of a content artifact".to_string(),
                    )
                })?;
            }
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
        let mut tx = self.begin().await?;
        let mut ca_ids: HashMap<(Uuid, String), Uuid> = HashMap::new();
        let rows = sqlx::query(
            "SELECT id, content_id, relative_path FROM content_artifacts \
             WHERE content_id = ANY($1)",
        )
        .bind(&content_ids)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            ca_ids.insert((row.try_get(1)?, row.try_get(2)?), row.try_get(0)?);
        }
        let wanted = shared::remote_artifact_rows(batch, &ca_ids)?;
        // Write only what is new or changed: an upsert would lock every existing row.
        let wanted_cas: Vec<Uuid> =
            shared::dedupe_ids(&wanted.iter().map(|(ca, _)| *ca).collect::<Vec<_>>());
        let mut stored: HashMap<(Uuid, Uuid), RaValues> = HashMap::new();
        let rows = sqlx::query(
            "SELECT content_artifact_id, remote_id, url, size, sha256, sha224, sha384, sha512 \
             FROM remote_artifacts WHERE content_artifact_id = ANY($1)",
        )
        .bind(&wanted_cas)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            stored.insert(
                (row.try_get(0)?, row.try_get(1)?),
                (
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                    row.try_get(6)?,
                    row.try_get(7)?,
                ),
            );
        }
        let mut write = Vec::new();
        for (ca, ra) in wanted {
            let values: RaValues = (
                ra.url.clone(),
                shared::opt_to_i64(ra.size, "remote artifact size")?,
                ra.sha256.clone(),
                ra.other.sha224.clone(),
                ra.other.sha384.clone(),
                ra.other.sha512.clone(),
            );
            if stored.get(&(ca, ra.remote_id)) != Some(&values) {
                write.push((ca, ra.remote_id, values));
            }
        }
        if !write.is_empty() {
            let ids: Vec<Uuid> = write.iter().map(|_| Uuid::now_v7()).collect();
            let cas: Vec<Uuid> = write.iter().map(|w| w.0).collect();
            let remotes: Vec<Uuid> = write.iter().map(|w| w.1).collect();
            let urls: Vec<&str> = write.iter().map(|w| w.2 .0.as_str()).collect();
            let sizes: Vec<Option<i64>> = write.iter().map(|w| w.2 .1).collect();
            let sha256: Vec<Option<&str>> = write.iter().map(|w| w.2 .2.as_deref()).collect();
            let sha224: Vec<Option<&str>> = write.iter().map(|w| w.2 .3.as_deref()).collect();
            let sha384: Vec<Option<&str>> = write.iter().map(|w| w.2 .4.as_deref()).collect();
            let sha512: Vec<Option<&str>> = write.iter().map(|w| w.2 .5.as_deref()).collect();
            sqlx::query(
                "INSERT INTO remote_artifacts (id, content_artifact_id, remote_id, url, size, \
                 sha256, sha224, sha384, sha512) \
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], \
                                      $5::int8[], $6::text[], $7::text[], $8::text[], $9::text[]) \
                 ON CONFLICT (content_artifact_id, remote_id) DO UPDATE SET \
                 url = EXCLUDED.url, size = EXCLUDED.size, sha256 = EXCLUDED.sha256, \
                 sha224 = EXCLUDED.sha224, sha384 = EXCLUDED.sha384, sha512 = EXCLUDED.sha512 \
                 WHERE (remote_artifacts.url, remote_artifacts.size, remote_artifacts.sha256, \
                        remote_artifacts.sha224, remote_artifacts.sha384, \
                        remote_artifacts.sha512) \
                 IS DISTINCT FROM (EXCLUDED.url, EXCLUDED.size, EXCLUDED.sha256, \
                                   EXCLUDED.sha224, EXCLUDED.sha384, EXCLUDED.sha512)",
            )
            .bind(ids)
            .bind(cas)
            .bind(remotes)
            .bind(urls)
            .bind(sizes)
            .bind(sha256)
            .bind(sha224)
            .bind(sha384)
            .bind(sha512)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
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
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(concat!(
            "SELECT ca.id, ca.content_id, ca.artifact_id, ca.relative_path, ",
            artifact_cols!(),
            " FROM content_artifacts ca LEFT JOIN artifacts a ON a.id = ca.artifact_id \
             WHERE ca.content_id = ANY($1) ORDER BY ca.content_id, ca.relative_path"
        ))
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let ca = ContentArtifact {
                id: row.try_get(0)?,
                content_id: row.try_get(1)?,
                artifact_id: row.try_get(2)?,
                relative_path: row.try_get(3)?,
            };
            let art = if row.try_get::<Option<Uuid>, _>(4)?.is_some() {
                Some(artifact_from(&row, 4)?)
            } else {
                None
            };
            out.push((ca, art));
        }
        Ok(out)
    }

    async fn remote_artifacts(&self, content_artifact_id: Uuid) -> DbResult<Vec<RemoteArtifact>> {
        sqlx::query(concat!(
            "SELECT ",
            remote_artifact_cols!(),
            " FROM remote_artifacts WHERE content_artifact_id = $1 ORDER BY remote_id"
        ))
        .bind(content_artifact_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(remote_artifact_from)
        .collect()
    }

    async fn associate(&self, version_id: Uuid, content_ids: &[Uuid]) -> DbResult<u64> {
        let ids = shared::dedupe_ids(content_ids);
        let mut tx = self.begin().await?;
        let head = locked_incomplete_head(&mut tx, version_id).await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        // A unit this version removed (mirror or replacement) and now adds again: reopen.
        let mut added = sqlx::query(
            "UPDATE repository_content SET version_removed_id = NULL \
             WHERE repository_id = $1 AND version_removed_id = $2 AND content_id = ANY($3)",
        )
        .bind(head.repository_id)
        .bind(version_id)
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Units without an open row get one.
        let row_ids: Vec<Uuid> = ids.iter().map(|_| Uuid::now_v7()).collect();
        added += sqlx::query(
            "INSERT INTO repository_content (id, repository_id, content_id, version_added_id) \
             SELECT u.id, $1, u.content_id, $2 \
             FROM UNNEST($3::uuid[], $4::uuid[]) AS u(id, content_id) \
             ORDER BY u.content_id \
             ON CONFLICT (repository_id, content_id) WHERE version_removed_id IS NULL \
             DO NOTHING",
        )
        .bind(head.repository_id)
        .bind(version_id)
        .bind(row_ids)
        .bind(&ids)
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
        tx.commit().await?;
        Ok(added)
    }

    async fn unassociate_except(&self, version_id: Uuid, keep: &HashSet<Uuid>) -> DbResult<u64> {
        let mut tx = self.begin().await?;
        let head = locked_incomplete_head(&mut tx, version_id).await?;
        let mut removed = 0;
        let mut after: Option<Uuid> = None;
        loop {
            let q = match after {
                None => sqlx::query_scalar(
                    "SELECT content_id FROM repository_content \
                     WHERE repository_id = $1 AND version_removed_id IS NULL \
                     ORDER BY content_id LIMIT $2",
                )
                .bind(head.repository_id)
                .bind(PAGE),
                Some(last) => sqlx::query_scalar(
                    "SELECT content_id FROM repository_content \
                     WHERE repository_id = $1 AND version_removed_id IS NULL \
                     AND content_id > $3 ORDER BY content_id LIMIT $2",
                )
                .bind(head.repository_id)
                .bind(PAGE)
                .bind(last),
            };
            let page: Vec<Uuid> = q.fetch_all(&mut *tx).await?;
            let drop: Vec<Uuid> = page.iter().filter(|c| !keep.contains(c)).copied().collect();
            if !drop.is_empty() {
                // Added by this very version: the row goes away.
                removed += sqlx::query(
                    "DELETE FROM repository_content WHERE repository_id = $1 \
                     AND version_added_id = $2 AND version_removed_id IS NULL \
                     AND content_id = ANY($3)",
                )
                .bind(head.repository_id)
                .bind(version_id)
                .bind(&drop)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Older: closed by this version.
                removed += sqlx::query(
                    "UPDATE repository_content SET version_removed_id = $2 \
                     WHERE repository_id = $1 AND version_removed_id IS NULL \
                     AND content_id = ANY($3)",
                )
                .bind(head.repository_id)
                .bind(version_id)
                .bind(&drop)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            if page.len() < PAGE as usize {
                break;
            }
            after = page.last().copied();
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn count_version(&self, version_id: Uuid) -> DbResult<VersionCounts> {
        let mut conn = self.pool.acquire().await?;
        let head = version_head(&mut conn, version_id)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("repository version {version_id}")))?;
        let added = count_scalar(&mut conn, COUNT_ADDED, version_id).await?;
        let removed = count_scalar(&mut conn, COUNT_REMOVED, version_id).await?;
        let present = if head.complete {
            count_present_at(&mut conn, head.repository_id, head.number).await?
        } else {
            count_scalar(&mut conn, COUNT_OPEN, head.repository_id).await?
        };
        Ok(VersionCounts {
            added,
            removed,
            present,
        })
    }
}

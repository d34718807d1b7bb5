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

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use uuid::Uuid;

use super::shared::{self, CaRow};
use super::{DbError, DbResult, DynStore};
use crate::models::{NewArtifact, NewRemoteArtifact, UnsavedContent};

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
    (
        7,
        "parity",
        include_str!("../../migrations/postgres/0007_parity.sql"),
    ),
];

/// Connections in the pool.
const POOL_SIZE: u32 = 10;

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

// ---- the dialect: what the shared store code (`db/sql/`) is compiled against ----------------

/// The driver the shared code runs on here.
pub(super) type Db = Postgres;
/// The store the shared code implements the traits for.
pub(super) type Backend = PgStore;

// Compiled once per backend by design (see `sql/mod.rs`).
#[allow(clippy::duplicate_mod)]
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

/// The advisory lock key taken by claimers and reapers (`pulp` + `task` in ASCII).
const CLAIM_LOCK: i64 = 0x7075_6c70_7461_736b;

/// Dialect hook: appends `<column> contains <needle>` (case-sensitive substring, the needle
/// bound) to a query being built: `strpos` here, `instr` on SQLite.
pub(super) fn push_contains(qb: &mut QueryBuilder<Postgres>, column: &str, needle: &str) {
    qb.push(format_args!("strpos({column}, "))
        .push_bind(needle.to_string())
        .push(") > 0");
}

/// Dialect hook: appends `<JSON array column> holds any of <values>` (a string element equal to
/// one of them; none for an empty list) to a query being built: `jsonb ?| text[]` here,
/// `json_each` on SQLite.
pub(super) fn push_json_has_any(qb: &mut QueryBuilder<Postgres>, column: &str, values: &[String]) {
    qb.push(format_args!("{column} ?| "))
        .push_bind(strs_param(values));
}

/// Dialect hook: the SQL value of JSON array `column` with the string parameter `$n` appended.
pub(super) fn json_array_append(column: &str, n: usize) -> String {
    format!("{column} || jsonb_build_array(CAST(${n} AS TEXT))")
}

/// Dialect hook: the suffix of a `SELECT` that locks the rows it returns for the rest of the
/// transaction, skipping rows another transaction holds (a concurrent cancel of a task is then
/// never waited for nor overwritten by a claim).
pub(super) fn for_update_skip_locked() -> &'static str {
    " FOR UPDATE SKIP LOCKED"
}

impl PgStore {
    /// Dialect hook: the transaction that claims tasks and reaps workers, serialized against every
    /// other claimer and reaper (of every process sharing the database) by the transaction-scoped
    /// advisory lock [`CLAIM_LOCK`].
    pub(super) async fn begin_claim(&self) -> DbResult<Transaction<'static, Postgres>> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Dialect hook: the clause that locks the rows a `SELECT` reads until the write transaction
/// ends.
pub(super) const FOR_UPDATE: &str = " FOR UPDATE";

/// Dialect hook: pushes the value of member `key` of the JSON column `column` onto a query
/// being built, for comparing with text: `column ->> '<key>'`, the key bound.
pub(super) fn push_json_member(qb: &mut sqlx::QueryBuilder<Postgres>, column: &str, key: &str) {
    qb.push(format!("{column} ->> ")).push_bind(key.to_string());
}

// ---- row decoding ----------------------------------------------------------------------------

/// Dialect hook: locks the repository row for the rest of the transaction (`FOR NO KEY
/// UPDATE`: concurrent writers of one repository queue here) and returns its `next_version`.
pub(super) async fn lock_repository(conn: &mut PgConnection, id: Uuid) -> DbResult<i64> {
    sqlx::query_scalar("SELECT next_version FROM repositories WHERE id = $1 FOR NO KEY UPDATE")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository {id}")))
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

/// What [`Store::backend`] answers.
pub(super) const BACKEND: &str = "postgres";

// ---- dialect hooks: the batched writes of the sync pipeline -----------------------------------

impl PgStore {
    /// Inserts artifacts (an existing sha256 wins) from `UNNEST` arrays.
    pub(super) async fn batch_insert_artifacts(
        tx: &mut PgConnection,
        rows: &[&NewArtifact],
    ) -> DbResult<()> {
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
        Ok(())
    }

    /// Inserts new units (an existing natural key wins) from `UNNEST` arrays.
    pub(super) async fn batch_insert_content(
        tx: &mut PgConnection,
        new: &[&UnsavedContent],
    ) -> DbResult<()> {
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
        Ok(())
    }

    /// Ensures content artifacts from `UNNEST` arrays, then fills those that had no artifact
    /// with one now known.
    pub(super) async fn batch_write_content_artifacts(
        tx: &mut PgConnection,
        cas: &[CaRow<'_>],
    ) -> DbResult<()> {
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
        .map_err(shared::content_artifact_write_err)?;
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
        Ok(())
    }

    /// Writes the remote artifacts that are new or changed, from `UNNEST` arrays (an upsert of
    /// every row would lock every existing row).
    pub(super) async fn batch_write_remote_artifacts(
        tx: &mut PgConnection,
        wanted: &[(Uuid, &NewRemoteArtifact)],
    ) -> DbResult<()> {
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
                (
                    row.try_get("content_artifact_id")?,
                    row.try_get("remote_id")?,
                ),
                (
                    row.try_get("url")?,
                    row.try_get("size")?,
                    row.try_get("sha256")?,
                    row.try_get("sha224")?,
                    row.try_get("sha384")?,
                    row.try_get("sha512")?,
                ),
            );
        }
        let mut write = Vec::new();
        for &(ca, ra) in wanted {
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
            .map_err(shared::remote_artifact_write_err)?;
        }
        Ok(())
    }

    /// Adds memberships of `ids` to an incomplete version (reopening those it removed):
    /// `= ANY` and `UNNEST` arrays. The caller holds the repository lock.
    pub(super) async fn batch_associate(
        tx: &mut PgConnection,
        repository_id: Uuid,
        version_id: Uuid,
        ids: &[Uuid],
    ) -> DbResult<u64> {
        // A unit this version removed (mirror or replacement) and now adds again: reopen.
        let mut added = sqlx::query(
            "UPDATE repository_content SET version_removed_id = NULL \
             WHERE repository_id = $1 AND version_removed_id = $2 AND content_id = ANY($3)",
        )
        .bind(repository_id)
        .bind(version_id)
        .bind(ids)
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
        .bind(repository_id)
        .bind(version_id)
        .bind(row_ids)
        .bind(ids)
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
        Ok(added)
    }

    /// Drops the open memberships of `drop` from an incomplete version: rows it added go,
    /// older ones are closed by it. `= ANY` arrays.
    pub(super) async fn batch_unassociate(
        tx: &mut PgConnection,
        repository_id: Uuid,
        version_id: Uuid,
        drop: &[Uuid],
    ) -> DbResult<u64> {
        // Added by this very version: the row goes away.
        let mut removed = sqlx::query(
            "DELETE FROM repository_content WHERE repository_id = $1 \
             AND version_added_id = $2 AND version_removed_id IS NULL \
             AND content_id = ANY($3)",
        )
        .bind(repository_id)
        .bind(version_id)
        .bind(drop)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Older: closed by this version.
        removed += sqlx::query(
            "UPDATE repository_content SET version_removed_id = $2 \
             WHERE repository_id = $1 AND version_removed_id IS NULL \
             AND content_id = ANY($3)",
        )
        .bind(repository_id)
        .bind(version_id)
        .bind(drop)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Ok(removed)
    }
}

//! [`Store`]: remotes, repositories, versions and the pipeline's saves and lookups, written
//! once; the batched writes they open transactions for are in `batch.rs`. Batched lookups bind
//! their keys as one list parameter (`in_list_param`), which keeps the unique indexes in use on
//! both backends.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::super::{ids_param, in_list_param, strs_param, LOCK_REPOSITORY};
use super::rows::{
    artifact_cols, artifact_from, content_from, remote_artifact_from, remote_from, repo_from,
    version_from, CONTENT_COLS, REMOTE_ARTIFACT_COLS, REMOTE_COLS, REPO_COLS, VERSION_COLS,
};
use super::{batch, row_by_id, Backend, Conn};
use crate::db::shared;
use crate::db::shared::labels_to_json;
use crate::db::types::{Id, Json, Time};
use crate::db::{DbError, DbResult, Store};
use crate::models::{
    Artifact, Content, ContentArtifact, ContentToSave, NewArtifact, NewRemoteArtifact, Remote,
    RemoteArtifact, Repository, RepositoryVersion, VersionCounts,
};

/// What the version methods need to know of a version row.
pub(crate) struct VersionHead {
    pub repository_id: Uuid,
    pub number: i64,
    pub complete: bool,
}

pub(crate) async fn version_head(conn: &mut Conn, id: Uuid) -> DbResult<Option<VersionHead>> {
    let row = sqlx::query(
        "SELECT repository_id, number, complete FROM repository_versions WHERE id = $1",
    )
    .bind(Id(id))
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| {
        Ok(VersionHead {
            repository_id: r.try_get::<Id, _>("repository_id")?.0,
            number: r.try_get("number")?,
            complete: r.try_get("complete")?,
        })
    })
    .transpose()
}

/// Locks the repository row for the rest of the write transaction (see the backend's
/// `LOCK_REPOSITORY`) and returns its `next_version`.
pub(crate) async fn lock_repository(conn: &mut Conn, id: Uuid) -> DbResult<i64> {
    let sql = format!("SELECT next_version FROM repositories WHERE id = $1{LOCK_REPOSITORY}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(Id(id))
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository {id}")))
}

/// Locks the version's repository (see [`lock_repository`]), then returns the
/// version's head if it still exists.
async fn locked_head(conn: &mut Conn, id: Uuid) -> DbResult<Option<VersionHead>> {
    let Some(head) = version_head(conn, id).await? else {
        return Ok(None);
    };
    lock_repository(conn, head.repository_id).await?;
    version_head(conn, id).await
}

/// Locks the version's repository and returns the head of the incomplete version, or
/// NotFound / Conflict.
pub(crate) async fn locked_incomplete_head(conn: &mut Conn, id: Uuid) -> DbResult<VersionHead> {
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

async fn version_by_id(conn: &mut Conn, id: Uuid) -> DbResult<RepositoryVersion> {
    let sql = format!("SELECT {VERSION_COLS} FROM repository_versions WHERE id = $1");
    let row = row_by_id(&mut *conn, sql, "repository version", id).await?;
    version_from(&row)
}

/// Deletes the memberships an incomplete version added, reopens those it removed, deletes it.
/// The caller holds the repository lock.
async fn discard_locked(conn: &mut Conn, version_id: Uuid) -> DbResult<()> {
    sqlx::query("DELETE FROM repository_content WHERE version_added_id = $1")
        .bind(Id(version_id))
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE repository_content SET version_removed_id = NULL WHERE version_removed_id = $1",
    )
    .bind(Id(version_id))
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM repository_versions WHERE id = $1")
        .bind(Id(version_id))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn count_scalar(conn: &mut Conn, sql: &'static str, a: Uuid) -> DbResult<u64> {
    let n: i64 = sqlx::query_scalar(sql)
        .bind(Id(a))
        .fetch_one(&mut *conn)
        .await?;
    shared::to_u64(n, "count")
}

/// Units present in version `number` of a repository, by the range rule.
async fn count_present_at(conn: &mut Conn, repository_id: Uuid, number: i64) -> DbResult<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM repository_content rc \
         JOIN repository_versions va ON va.id = rc.version_added_id \
         LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
         WHERE rc.repository_id = $1 AND va.number <= $2 \
         AND (vr.id IS NULL OR vr.number > $2)",
    )
    .bind(Id(repository_id))
    .bind(number)
    .fetch_one(&mut *conn)
    .await?;
    shared::to_u64(n, "count")
}

const COUNT_ADDED: &str = "SELECT count(*) FROM repository_content WHERE version_added_id = $1";
const COUNT_REMOVED: &str = "SELECT count(*) FROM repository_content WHERE version_removed_id = $1";
const COUNT_OPEN: &str = "SELECT count(*) FROM repository_content \
                          WHERE repository_id = $1 AND version_removed_id IS NULL";

async fn get_remote_in(conn: &mut Conn, id: Uuid) -> DbResult<Remote> {
    let sql = format!("SELECT {REMOTE_COLS} FROM remotes WHERE id = $1");
    let row = row_by_id(&mut *conn, sql, "remote", id).await?;
    remote_from(&row)
}

async fn get_repository_in(conn: &mut Conn, id: Uuid) -> DbResult<Repository> {
    let sql = format!("SELECT {REPO_COLS} FROM repositories WHERE id = $1");
    let row = row_by_id(&mut *conn, sql, "repository", id).await?;
    repo_from(&row)
}

/// The options of a remote, in the order of [`REMOTE_OPTIONS`].
type Query<'q> = sqlx::query::Query<'q, super::Db, <super::Db as sqlx::Database>::Arguments>;

/// The columns every remote write sets, in [`bind_remote_options`] order.
const REMOTE_OPTIONS: [&str; 24] = [
    "pulp_type",
    "name",
    "url",
    "policy",
    "download_concurrency",
    "max_retries",
    "username",
    "password",
    "proxy_url",
    "proxy_username",
    "proxy_password",
    "ca_cert",
    "client_cert",
    "client_key",
    "tls_validation",
    "headers",
    "connect_timeout",
    "sock_read_timeout",
    "total_timeout",
    "rate_limit",
    "pulp_last_updated",
    "pulp_labels",
    "sock_connect_timeout",
    "plugin_data",
];

/// Binds every option of a remote, in [`REMOTE_OPTIONS`] order.
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
        .bind(Json(shared::headers_value(&r.headers)))
        .bind(r.connect_timeout)
        .bind(r.sock_read_timeout)
        .bind(r.total_timeout)
        .bind(r.rate_limit.map(i64::from))
        .bind(Time(shared::now()))
        .bind(Json(labels_to_json(&r.pulp_labels)))
        .bind(r.sock_connect_timeout)
        .bind(Json(r.plugin_data.clone()))
}

#[async_trait]
impl Store for Backend {
    fn backend(&self) -> &'static str {
        super::super::BACKEND
    }

    // ---- remotes -----------------------------------------------------------------------------

    async fn create_remote(&self, remote: &Remote) -> DbResult<Remote> {
        let sealed = self.sealer().seal_remote(remote);
        let remote = &sealed;
        let mut tx = self.begin_write().await?;
        let placeholders: Vec<String> = (1..=REMOTE_OPTIONS.len() + 2)
            .map(|i| format!("${i}"))
            .collect();
        let sql = format!(
            "INSERT INTO remotes ({}, pulp_created, id) VALUES ({})",
            REMOTE_OPTIONS.join(", "),
            placeholders.join(", ")
        );
        bind_remote_options(sqlx::query(sqlx::AssertSqlSafe(sql)), remote)
            .bind(Time(shared::now()))
            .bind(Id(remote.id))
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
        self.open_remote(saved)
    }

    async fn update_remote(&self, remote: &Remote) -> DbResult<Remote> {
        let sealed = self.sealer().seal_remote(remote);
        let remote = &sealed;
        let mut tx = self.begin_write().await?;
        let sets: Vec<String> = REMOTE_OPTIONS
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect();
        let sql = format!(
            "UPDATE remotes SET {} WHERE id = ${}",
            sets.join(", "),
            REMOTE_OPTIONS.len() + 1
        );
        let done = bind_remote_options(sqlx::query(sqlx::AssertSqlSafe(sql)), remote)
            .bind(Id(remote.id))
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
        self.open_remote(saved)
    }

    async fn get_remote(&self, id: Uuid) -> DbResult<Remote> {
        let mut conn = self.reader().acquire().await?;
        self.open_remote(get_remote_in(&mut conn, id).await?)
    }

    async fn get_remote_by_name(&self, name: &str) -> DbResult<Option<Remote>> {
        let sql = format!("SELECT {REMOTE_COLS} FROM remotes WHERE name = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(self.reader())
            .await?
            .map(|r| remote_from(&r).and_then(|r| self.open_remote(r)))
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
        let now = Time(shared::now());
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "INSERT INTO repositories ({REPO_COLS}) \
             VALUES ($1, $2, $3, NULL, 1, $4, $5, $5, $6, NULL, $6)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(id))
            .bind(pulp_type)
            .bind(name)
            .bind(remote_id.map(Id))
            .bind(now)
            .bind(Json(serde_json::json!({})))
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                shared::map_write_err(
                    e,
                    || format!("a repository named {name:?} exists"),
                    || format!("remote {}", remote_id.unwrap_or_default()),
                )
            })?;
        let sql = format!(
            "INSERT INTO repository_versions ({VERSION_COLS}) \
             VALUES ($1, $2, 0, $3, 0, 0, 0, $4)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(Uuid::now_v7()))
            .bind(Id(id))
            .bind(true)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let repo = get_repository_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(repo)
    }

    async fn get_repository(&self, id: Uuid) -> DbResult<Repository> {
        let mut conn = self.reader().acquire().await?;
        get_repository_in(&mut conn, id).await
    }

    async fn get_repository_by_name(&self, name: &str) -> DbResult<Option<Repository>> {
        let sql = format!("SELECT {REPO_COLS} FROM repositories WHERE name = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(self.reader())
            .await?
            .map(|r| repo_from(&r))
            .transpose()
    }

    async fn list_repositories(&self) -> DbResult<Vec<Repository>> {
        let sql = format!("SELECT {REPO_COLS} FROM repositories ORDER BY name");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.reader())
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
        .bind(remote_id.map(Id))
        .bind(Time(shared::now()))
        .bind(Id(repository_id))
        .execute(self.writer())
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
        let sql = format!(
            "SELECT {VERSION_COLS} FROM repository_versions \
             WHERE repository_id = $1 AND complete = $2 ORDER BY number"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(repository_id))
            .bind(true)
            .fetch_all(self.reader())
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
        let sql = format!(
            "SELECT {VERSION_COLS} FROM repository_versions \
             WHERE repository_id = $1 AND number = $2 AND complete = $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(repository_id))
            .bind(number)
            .bind(true)
            .fetch_optional(self.reader())
            .await?
            .map(|r| version_from(&r))
            .transpose()
    }

    async fn latest_version(&self, repository_id: Uuid) -> DbResult<RepositoryVersion> {
        let sql = format!(
            "SELECT {VERSION_COLS} FROM repository_versions \
             WHERE repository_id = $1 AND complete = $2 ORDER BY number DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(repository_id))
            .bind(true)
            .fetch_optional(self.reader())
            .await?
            .ok_or_else(|| DbError::NotFound(format!("repository {repository_id}")))?;
        version_from(&row)
    }

    async fn create_incomplete_version(&self, repository_id: Uuid) -> DbResult<RepositoryVersion> {
        let mut tx = self.begin_write().await?;
        let next = lock_repository(&mut tx, repository_id).await?;
        let leftovers: Vec<Id> = sqlx::query_scalar(
            "SELECT id FROM repository_versions WHERE repository_id = $1 AND complete = $2",
        )
        .bind(Id(repository_id))
        .bind(false)
        .fetch_all(&mut *tx)
        .await?;
        for v in leftovers {
            discard_locked(&mut tx, v.0).await?;
        }
        let id = Uuid::now_v7();
        let sql = format!(
            "INSERT INTO repository_versions ({VERSION_COLS}) \
             VALUES ($1, $2, $3, $4, 0, 0, 0, $5)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(id))
            .bind(Id(repository_id))
            .bind(next)
            .bind(false)
            .bind(Time(shared::now()))
            .execute(&mut *tx)
            .await?;
        let v = version_by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn incomplete_versions(&self) -> DbResult<Vec<(Uuid, Uuid)>> {
        let rows: Vec<(Id, Id)> = sqlx::query_as(
            "SELECT id, repository_id FROM repository_versions WHERE complete = $1 \
             ORDER BY pulp_created, id",
        )
        .bind(false)
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|(v, r)| (v.0, r.0)).collect())
    }

    async fn discard_version(&self, version_id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        match locked_head(&mut tx, version_id).await? {
            Some(h) if !h.complete => discard_locked(&mut tx, version_id).await?,
            _ => {}
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finalize_version(&self, version_id: Uuid) -> DbResult<Option<RepositoryVersion>> {
        let mut tx = self.begin_write().await?;
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
            .bind(Id(version_id))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = dup {
                let pulp_type: String = row.try_get("pulp_type")?;
                let repo_key: String = row.try_get("repo_key")?;
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
            .bind(Id(version_id))
            .bind(Id(head.repository_id))
            .execute(&mut *tx)
            .await?;
        }
        let removed = count_scalar(&mut tx, COUNT_REMOVED, version_id).await?;
        if added == 0 && removed == 0 {
            sqlx::query("DELETE FROM repository_versions WHERE id = $1")
                .bind(Id(version_id))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(None);
        }
        let present = count_scalar(&mut tx, COUNT_OPEN, head.repository_id).await?;
        sqlx::query(
            "UPDATE repository_versions SET complete = $1, added = $2, removed = $3, \
             present = $4 WHERE id = $5",
        )
        .bind(true)
        .bind(shared::to_i64(added, "count")?)
        .bind(shared::to_i64(removed, "count")?)
        .bind(shared::to_i64(present, "count")?)
        .bind(Id(version_id))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE repositories SET next_version = $1, pulp_last_updated = $2 WHERE id = $3",
        )
        .bind(head.number + 1)
        .bind(Time(shared::now()))
        .bind(Id(head.repository_id))
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
        let mut conn = self.reader().acquire().await?;
        let head = match version_head(&mut conn, version_id).await? {
            Some(h) if h.complete => h,
            _ => {
                return Err(DbError::NotFound(format!(
                    "repository version {version_id}"
                )))
            }
        };
        let sql = format!(
            "SELECT {CONTENT_COLS} FROM repository_content rc \
             JOIN repository_versions va ON va.id = rc.version_added_id \
             LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
             JOIN content c ON c.id = rc.content_id \
             WHERE rc.repository_id = $1 AND va.number <= $2 \
             AND (vr.id IS NULL OR vr.number > $2) \
             ORDER BY c.pulp_type, c.natural_key LIMIT $3 OFFSET $4"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(head.repository_id))
            .bind(head.number)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(content_from)
            .collect()
    }

    // ---- pipeline: the batched paths are the backend's --------------------------------------

    async fn find_artifacts_by_sha256(&self, sha256s: &[String]) -> DbResult<Vec<Artifact>> {
        let keys = shared::dedupe_strings(sha256s);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM artifacts a WHERE a.sha256 {}",
            artifact_cols("a", ""),
            in_list_param(1)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(strs_param(&keys))
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| artifact_from(r, ""))
            .collect()
    }

    async fn insert_artifacts(&self, artifacts: &[NewArtifact]) -> DbResult<Vec<Artifact>> {
        let rows = shared::dedupe_artifacts(artifacts);
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        batch::insert_artifacts(&mut tx, &rows).await?;
        let shas: Vec<&str> = rows.iter().map(|a| a.sha256.as_str()).collect();
        let sql = format!(
            "SELECT {} FROM artifacts a WHERE a.sha256 {}",
            artifact_cols("a", ""),
            in_list_param(1)
        );
        let out = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(strs_param(&shas))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| artifact_from(r, ""))
            .collect::<DbResult<Vec<_>>>()?;
        tx.commit().await?;
        self.grew(rows.len());
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
        let sql = format!(
            "SELECT {CONTENT_COLS} FROM content c WHERE c.pulp_type = $1 AND c.natural_key {}",
            in_list_param(2)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(pulp_type)
            .bind(strs_param(&keys))
            .fetch_all(self.reader())
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
        let mut tx = self.begin_write().await?;
        if !new.is_empty() {
            batch::insert_content(&mut tx, &new).await?;
        }
        // Read the ids back by natural key, a run of one type at a time (`new` is sorted by
        // type): rows inserted meanwhile by someone else count.
        let mut by_key: HashMap<(String, String), Uuid> = HashMap::with_capacity(new.len());
        let sql = format!(
            "SELECT id, natural_key FROM content WHERE pulp_type = $1 AND natural_key {}",
            in_list_param(2)
        );
        for run in new.chunk_by(|a, b| a.pulp_type == b.pulp_type) {
            let keys: Vec<&str> = run.iter().map(|u| u.natural_key.as_str()).collect();
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(run[0].pulp_type.as_str())
                .bind(strs_param(&keys))
                .fetch_all(&mut *tx)
                .await?;
            for row in rows {
                by_key.insert(
                    (run[0].pulp_type.clone(), row.try_get("natural_key")?),
                    row.try_get::<Id, _>("id")?.0,
                );
            }
        }
        let ids = shared::ids_in_input_order(batch, &by_key)?;
        let cas = shared::content_artifact_rows(batch, &ids);
        if !cas.is_empty() {
            batch::write_content_artifacts(&mut tx, &cas).await?;
        }
        tx.commit().await?;
        self.grew(new.len() + cas.len());
        Ok(ids)
    }

    async fn save_remote_artifacts(&self, batch: &[NewRemoteArtifact]) -> DbResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let content_ids =
            shared::dedupe_ids(&batch.iter().map(|r| r.content_id).collect::<Vec<_>>());
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT id, content_id, relative_path FROM content_artifacts WHERE content_id {}",
            in_list_param(1)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ids_param(&content_ids))
            .fetch_all(&mut *tx)
            .await?;
        let mut ca_ids: HashMap<(Uuid, String), Uuid> = HashMap::with_capacity(rows.len());
        for row in rows {
            ca_ids.insert(
                (
                    row.try_get::<Id, _>("content_id")?.0,
                    row.try_get("relative_path")?,
                ),
                row.try_get::<Id, _>("id")?.0,
            );
        }
        let wanted = shared::remote_artifact_rows(batch, &ca_ids)?;
        let written = match wanted.is_empty() {
            true => 0,
            false => batch::write_remote_artifacts(&mut tx, &wanted).await?,
        };
        tx.commit().await?;
        self.grew(written);
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
        let sql = format!(
            "SELECT ca.id, ca.content_id, ca.artifact_id, ca.relative_path, {} \
             FROM content_artifacts ca LEFT JOIN artifacts a ON a.id = ca.artifact_id \
             WHERE ca.content_id {} ORDER BY ca.content_id, ca.relative_path",
            artifact_cols("a", "a_"),
            in_list_param(1)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ids_param(&ids))
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let ca = ContentArtifact {
                id: row.try_get::<Id, _>("id")?.0,
                content_id: row.try_get::<Id, _>("content_id")?.0,
                artifact_id: row.try_get::<Option<Id>, _>("artifact_id")?.map(|i| i.0),
                relative_path: row.try_get("relative_path")?,
            };
            let art = match row.try_get::<Option<Id>, _>("a_id")? {
                Some(_) => Some(artifact_from(&row, "a_")?),
                None => None,
            };
            out.push((ca, art));
        }
        Ok(out)
    }

    async fn remote_artifacts(&self, content_artifact_id: Uuid) -> DbResult<Vec<RemoteArtifact>> {
        let sql = format!(
            "SELECT {REMOTE_ARTIFACT_COLS} FROM remote_artifacts \
             WHERE content_artifact_id = $1 ORDER BY remote_id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(content_artifact_id))
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(remote_artifact_from)
            .collect()
    }

    async fn associate(&self, version_id: Uuid, content_ids: &[Uuid]) -> DbResult<u64> {
        let ids = shared::dedupe_ids(content_ids);
        let mut tx = self.begin_write().await?;
        let head = locked_incomplete_head(&mut tx, version_id).await?;
        let added = match ids.is_empty() {
            true => 0,
            false => batch::associate(&mut tx, head.repository_id, version_id, &ids).await?,
        };
        tx.commit().await?;
        self.grew(added as usize);
        Ok(added)
    }

    async fn unassociate_except(&self, version_id: Uuid, keep: &HashSet<Uuid>) -> DbResult<u64> {
        let mut tx = self.begin_write().await?;
        let head = locked_incomplete_head(&mut tx, version_id).await?;
        let mut removed = 0;
        let mut after: Option<Id> = None;
        loop {
            let page: Vec<Id> = sqlx::query_scalar(
                "SELECT content_id FROM repository_content \
                 WHERE repository_id = $1 AND version_removed_id IS NULL \
                 AND ($3 IS NULL OR content_id > $3) ORDER BY content_id LIMIT $2",
            )
            .bind(Id(head.repository_id))
            .bind(PAGE)
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            let drop: Vec<Uuid> = page
                .iter()
                .map(|c| c.0)
                .filter(|c| !keep.contains(c))
                .collect();
            if !drop.is_empty() {
                removed +=
                    batch::unassociate(&mut tx, head.repository_id, version_id, &drop).await?;
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
        let mut conn = self.reader().acquire().await?;
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

/// Open memberships read per page by `unassociate_except`.
const PAGE: i64 = 5000;

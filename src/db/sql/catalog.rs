//! [`CatalogStore`]: REST lists, repository updates, deletes, modify and version deletion.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, QueryBuilder, Row};
use uuid::Uuid;

use super::super::{push_json_member, FOR_UPDATE};
use super::rows::{content_from, remote_from, repo_from, CONTENT_COLS, REMOTE_COLS, REPO_COLS};
use super::store::locked_incomplete_head;
use super::{batch, delete_by_id, Backend, Db};
use crate::db::catalog::{CatalogStore, LAST_VERSION};
use crate::db::shared;
use crate::db::shared::labels_to_json;
use crate::db::types::{opt_id, Id, Json, Time};
use crate::db::{DbError, DbResult};
use crate::models::ContentQuery;
use crate::models::{Content, Remote, Repository, RepositoryVersion, VersionCounts};

/// Columns of the fields a content list may be ordered by.
const CONTENT_ORDER: &[(&str, &str)] = &[
    ("pk", "c.id"),
    ("pulp_id", "c.id"),
    ("pulp_created", "c.pulp_created"),
    ("pulp_type", "c.pulp_type"),
    ("timestamp_of_interest", "c.timestamp_of_interest"),
];

/// Pushes ` WHERE ...` with every condition of `q` (all but limit and offset).
fn push_content_where(qb: &mut QueryBuilder<Db>, q: &ContentQuery) {
    qb.push(" WHERE 1 = 1");
    if let Some(t) = &q.pulp_type {
        qb.push(" AND c.pulp_type = ").push_bind(t.clone());
    }
    if let Some((repo, number)) = q.in_version {
        qb.push(
            " AND c.id IN (SELECT rc.content_id FROM repository_content rc \
             JOIN repository_versions va ON va.id = rc.version_added_id \
             LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
             WHERE rc.repository_id = ",
        )
        .push_bind(Id(repo))
        .push(" AND va.number <= ")
        .push_bind(number)
        .push(" AND (vr.id IS NULL OR vr.number > ")
        .push_bind(number)
        .push("))");
    }
    if let Some(v) = q.added_in {
        qb.push(
            " AND c.id IN (SELECT content_id FROM repository_content WHERE version_added_id = ",
        )
        .push_bind(Id(v))
        .push(")");
    }
    if let Some(v) = q.removed_in {
        qb.push(
            " AND c.id IN (SELECT content_id FROM repository_content WHERE version_removed_id = ",
        )
        .push_bind(Id(v))
        .push(")");
    }
    if let Some(ids) = &q.ids {
        qb.push(" AND c.id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(Id(*id));
        }
        qb.push(")");
    }
    for (key, value) in &q.data_equals {
        qb.push(" AND ");
        push_json_member(qb, "c.data", key);
        qb.push(" = ").push_bind(value.clone());
    }
}

#[async_trait]
impl CatalogStore for Backend {
    async fn version_type_counts(
        &self,
        version: &RepositoryVersion,
    ) -> DbResult<Vec<(String, VersionCounts)>> {
        let rows = sqlx::query(
            "SELECT c.pulp_type, \
             SUM(CASE WHEN rc.version_added_id = $2 THEN 1 ELSE 0 END) AS added, \
             SUM(CASE WHEN rc.version_removed_id = $2 THEN 1 ELSE 0 END) AS removed, \
             SUM(CASE WHEN va.number <= $3 AND (vr.id IS NULL OR vr.number > $3) \
                 THEN 1 ELSE 0 END) AS present \
             FROM repository_content rc JOIN content c ON c.id = rc.content_id \
             JOIN repository_versions va ON va.id = rc.version_added_id \
             LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
             WHERE rc.repository_id = $1 AND va.number <= $3 \
             AND (vr.id IS NULL OR vr.number >= $3) GROUP BY c.pulp_type ORDER BY c.pulp_type",
        )
        .bind(Id(version.repository_id))
        .bind(Id(version.id))
        .bind(version.number)
        .fetch_all(self.reader())
        .await?;
        let count = |r: &super::DbRow, c: &str| -> DbResult<u64> {
            let n: Option<i64> = r.try_get(c)?;
            Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
        };
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("pulp_type")?,
                    VersionCounts {
                        added: count(r, "added")?,
                        removed: count(r, "removed")?,
                        present: count(r, "present")?,
                    },
                ))
            })
            .collect()
    }

    async fn list_remotes(&self, pulp_type: Option<&str>) -> DbResult<Vec<Remote>> {
        let sql = format!(
            "SELECT {REMOTE_COLS} FROM remotes \
             WHERE (CAST($1 AS TEXT) IS NULL OR pulp_type = $1) ORDER BY name"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(pulp_type)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| remote_from(r).and_then(|r| self.open_remote(r)))
            .collect()
    }

    async fn delete_remote(&self, id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        delete_by_id(&mut tx, "remotes", "remote", id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_repository(&self, r: &Repository) -> DbResult<Repository> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE repositories SET name = $1, description = $2, remote_id = $3, \
             pulp_labels = $4, retain_repo_versions = $5, plugin_data = $6, \
             pulp_last_updated = $7 WHERE id = $8",
        )
        .bind(&r.name)
        .bind(&r.description)
        .bind(opt_id(r.remote_id))
        .bind(Json(labels_to_json(&r.pulp_labels)))
        .bind(shared::opt_to_i64(
            r.retain_repo_versions,
            "retain_repo_versions",
        )?)
        .bind(Json(r.plugin_data.clone()))
        .bind(Time(shared::now()))
        .bind(Id(r.id))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            shared::map_write_err(
                e,
                || format!("a repository named {:?} exists", r.name),
                || format!("remote {}", r.remote_id.unwrap_or_default()),
            )
        })?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("repository {}", r.id)));
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {REPO_COLS} FROM repositories WHERE id = $1"
        )))
        .bind(Id(r.id))
        .fetch_one(&mut *tx)
        .await?;
        let saved = repo_from(&row)?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn delete_repository(&self, id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM repository_content WHERE repository_id = $1")
            .bind(Id(id))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM repository_versions WHERE repository_id = $1")
            .bind(Id(id))
            .execute(&mut *tx)
            .await?;
        delete_by_id(&mut tx, "repositories", "repository", id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_content(&self, q: &ContentQuery) -> DbResult<(u64, Vec<Content>)> {
        if q.ids.as_ref().is_some_and(|ids| ids.is_empty()) {
            return Ok((0, Vec::new()));
        }
        let mut count_q = QueryBuilder::<Db>::new("SELECT count(*) FROM content c");
        push_content_where(&mut count_q, q);
        let mut list_q = QueryBuilder::<Db>::new(format!("SELECT {CONTENT_COLS} FROM content c"));
        push_content_where(&mut list_q, q);
        list_q
            .push(super::order_by(
                &q.order,
                CONTENT_ORDER,
                "c.pulp_created, c.id",
            ))
            .push(" LIMIT ")
            .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .push(" OFFSET ")
            .push_bind(i64::try_from(q.offset).unwrap_or(i64::MAX));
        let mut conn = self.reader().acquire().await?;
        let count: i64 = count_q.build_query_scalar().fetch_one(&mut *conn).await?;
        let rows = list_q.build().fetch_all(&mut *conn).await?;
        let content = rows.iter().map(content_from).collect::<DbResult<_>>()?;
        Ok((shared::to_u64(count, "count")?, content))
    }

    async fn unassociate(&self, version_id: Uuid, content_ids: &[Uuid]) -> DbResult<u64> {
        let ids = shared::dedupe_ids(content_ids);
        let mut tx = self.begin_write().await?;
        let head = locked_incomplete_head(&mut tx, version_id).await?;
        let removed = batch::unassociate(&mut tx, head.repository_id, version_id, &ids).await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn delete_version(&self, version_id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT repository_id, number, complete FROM repository_versions WHERE id = $1",
        )
        .bind(Id(version_id))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository version {version_id}")))?;
        let repo: Id = row.try_get("repository_id")?;
        let number: i64 = row.try_get("number")?;
        let complete: bool = row.try_get("complete")?;
        if !complete {
            return Err(DbError::NotFound(format!(
                "repository version {version_id}"
            )));
        }
        // Serializes with other writers of this repository's versions.
        sqlx::query(AssertSqlSafe(format!(
            "SELECT id FROM repositories WHERE id = $1{FOR_UPDATE}"
        )))
        .bind(repo)
        .execute(&mut *tx)
        .await?;
        let versions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM repository_versions WHERE repository_id = $1 AND complete",
        )
        .bind(repo)
        .fetch_one(&mut *tx)
        .await?;
        if versions <= 1 {
            return Err(DbError::Conflict(LAST_VERSION.to_string()));
        }
        let v = Id(version_id);
        let next: Option<Id> = sqlx::query_scalar(
            "SELECT id FROM repository_versions WHERE repository_id = $1 AND complete \
             AND number > $2 ORDER BY number LIMIT 1",
        )
        .bind(repo)
        .bind(number)
        .fetch_optional(&mut *tx)
        .await?;
        match next {
            Some(n) => {
                // Removed by this version, added again by the next: one row, never removed.
                let pairs = sqlx::query(
                    "SELECT r1.id AS r1_id, r2.id AS r2_id, r2.version_removed_id AS r2_removed \
                     FROM repository_content r1 \
                     JOIN repository_content r2 ON r2.repository_id = r1.repository_id \
                     AND r2.content_id = r1.content_id AND r2.version_added_id = $1 \
                     WHERE r1.version_removed_id = $2",
                )
                .bind(n)
                .bind(v)
                .fetch_all(&mut *tx)
                .await?;
                for p in pairs {
                    let r1: Id = p.try_get("r1_id")?;
                    let r2: Id = p.try_get("r2_id")?;
                    let r2_removed: Option<Id> = p.try_get("r2_removed")?;
                    sqlx::query("DELETE FROM repository_content WHERE id = $1")
                        .bind(r2)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE repository_content SET version_removed_id = $1 WHERE id = $2",
                    )
                    .bind(r2_removed)
                    .bind(r1)
                    .execute(&mut *tx)
                    .await?;
                }
                // Added by this version, removed by the next: never visible any more.
                sqlx::query(
                    "DELETE FROM repository_content \
                     WHERE version_added_id = $1 AND version_removed_id = $2",
                )
                .bind(v)
                .bind(n)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE repository_content SET version_added_id = $1 \
                     WHERE version_added_id = $2",
                )
                .bind(n)
                .bind(v)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE repository_content SET version_removed_id = $1 \
                     WHERE version_removed_id = $2",
                )
                .bind(n)
                .bind(v)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE repository_versions SET \
                     added = (SELECT count(*) FROM repository_content WHERE version_added_id = $1), \
                     removed = (SELECT count(*) FROM repository_content \
                                WHERE version_removed_id = $1) WHERE id = $1",
                )
                .bind(n)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM repository_content WHERE version_added_id = $1")
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE repository_content SET version_removed_id = NULL \
                     WHERE version_removed_id = $1",
                )
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("DELETE FROM repository_versions WHERE id = $1")
            .bind(v)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

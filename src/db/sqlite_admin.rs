//! [`AdminStore`] on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::admin::{AdminStore, ArtifactFilter, OrphanCleanup};
use super::shared;
use super::sqlite::{hy, time_at, us, uuid_at, SqliteStore};
use super::{DbError, DbResult};
use crate::models::{Artifact, OtherDigests};

const ARTIFACT_COLS: &str = "id, sha256, size, sha224, sha384, sha512, file, pulp_created";

/// The conditions of an [`ArtifactFilter`], parameters `?1` to `?4`.
const ARTIFACT_WHERE: &str = " FROM artifacts WHERE (?1 IS NULL OR sha256 = ?1) \
     AND (?2 IS NULL OR sha224 = ?2) AND (?3 IS NULL OR sha384 = ?3) \
     AND (?4 IS NULL OR sha512 = ?4)";

/// Content in no repository version and served by no published file.
const ORPHAN_CONTENT: &str = "NOT EXISTS (SELECT 1 FROM repository_content rc \
     WHERE rc.content_id = content.id) \
     AND NOT EXISTS (SELECT 1 FROM content_artifacts ca \
     JOIN published_files pf ON pf.content_artifact_id = ca.id WHERE ca.content_id = content.id)";

fn artifact_from(row: &SqliteRow) -> DbResult<Artifact> {
    Ok(Artifact {
        id: uuid_at(row, 0)?,
        sha256: row.try_get(1)?,
        size: shared::to_u64(row.try_get(2)?, "artifact size")?,
        other: OtherDigests {
            sha224: row.try_get(3)?,
            sha384: row.try_get(4)?,
            sha512: row.try_get(5)?,
        },
        file: row.try_get(6)?,
        pulp_created: time_at(row, 7)?,
    })
}

fn ids_json(ids: &[Uuid]) -> String {
    serde_json::Value::from(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()).to_string()
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn user_password_hash(&self, username: &str) -> DbResult<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    async fn set_user_password_hash(&self, username: &str, hash: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO users (username, password_hash, pulp_created) VALUES (?, ?, ?) \
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
        )
        .bind(username)
        .bind(hash)
        .bind(shared::now().timestamp_micros())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
        limit: u64,
        offset: u64,
    ) -> DbResult<Vec<Artifact>> {
        let sql = format!(
            "SELECT {ARTIFACT_COLS}{ARTIFACT_WHERE} ORDER BY pulp_created, id LIMIT ?5 OFFSET ?6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.sha256.as_deref())
            .bind(filter.sha224.as_deref())
            .bind(filter.sha384.as_deref())
            .bind(filter.sha512.as_deref())
            .bind(shared::to_i64(limit, "limit")?)
            .bind(shared::to_i64(offset, "offset")?)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(artifact_from).collect()
    }

    async fn count_artifacts(&self, filter: &ArtifactFilter) -> DbResult<u64> {
        let sql = format!("SELECT COUNT(*){ARTIFACT_WHERE}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(filter.sha256.as_deref())
            .bind(filter.sha224.as_deref())
            .bind(filter.sha384.as_deref())
            .bind(filter.sha512.as_deref())
            .fetch_one(&self.read)
            .await?;
        shared::to_u64(n, "count")
    }

    async fn get_artifact(&self, id: Uuid) -> DbResult<Artifact> {
        let sql = format!("SELECT {ARTIFACT_COLS} FROM artifacts WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hy(id))
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("artifact {id}")))?;
        artifact_from(&row)
    }

    async fn delete_artifact(&self, id: Uuid) -> DbResult<Artifact> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "DELETE FROM artifacts WHERE id = ? \
             AND NOT EXISTS (SELECT 1 FROM content_artifacts WHERE artifact_id = artifacts.id) \
             AND NOT EXISTS (SELECT 1 FROM published_files WHERE artifact_id = artifacts.id) \
             RETURNING {ARTIFACT_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(hy(id))
            .fetch_optional(&mut *tx)
            .await?;
        let out = match row {
            Some(row) => artifact_from(&row)?,
            None => {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM artifacts WHERE id = ?)")
                        .bind(hy(id))
                        .fetch_one(&mut *tx)
                        .await?;
                return Err(if exists {
                    DbError::Conflict(format!(
                        "artifact {id} is in use by content or a publication"
                    ))
                } else {
                    DbError::NotFound(format!("artifact {id}"))
                });
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn existing_content_ids(&self, ids: &[Uuid]) -> DbResult<Vec<Uuid>> {
        let rows =
            sqlx::query("SELECT id FROM content WHERE id IN (SELECT value FROM json_each(?))")
                .bind(ids_json(ids))
                .fetch_all(&self.read)
                .await?;
        rows.iter().map(|r| uuid_at(r, 0)).collect()
    }

    async fn delete_orphans(
        &self,
        cutoff: DateTime<Utc>,
        content_ids: Option<&[Uuid]>,
    ) -> DbResult<OrphanCleanup> {
        let cutoff = us(cutoff);
        let only = content_ids.map(ids_json);
        let mut tx = self.begin_write().await?;
        // With content_ids, only the artifacts of the content deleted now are candidates.
        let candidates: Option<String> = match &only {
            None => None,
            Some(ids) => {
                let sql = format!(
                    "SELECT DISTINCT artifact_id FROM content_artifacts \
                     WHERE artifact_id IS NOT NULL AND content_id IN (SELECT id FROM content \
                     WHERE id IN (SELECT value FROM json_each(?1)) \
                     AND timestamp_of_interest < ?2 AND {ORPHAN_CONTENT})"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(ids)
                    .bind(cutoff)
                    .fetch_all(&mut *tx)
                    .await?;
                let ids: Vec<Uuid> = rows
                    .iter()
                    .map(|r| uuid_at(r, 0))
                    .collect::<DbResult<_>>()?;
                Some(ids_json(&ids))
            }
        };
        let sql = format!(
            "DELETE FROM content WHERE timestamp_of_interest < ?1 \
             AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2))) AND {ORPHAN_CONTENT}"
        );
        let content_removed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cutoff)
            .bind(only.as_deref())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let rows = sqlx::query(
            "DELETE FROM artifacts WHERE timestamp_of_interest < ?1 \
             AND (?2 IS NULL OR id IN (SELECT value FROM json_each(?2))) \
             AND NOT EXISTS (SELECT 1 FROM content_artifacts ca WHERE ca.artifact_id = artifacts.id) \
             AND NOT EXISTS (SELECT 1 FROM published_files pf WHERE pf.artifact_id = artifacts.id) \
             RETURNING id, sha256, file",
        )
        .bind(cutoff)
        .bind(candidates.as_deref())
        .fetch_all(&mut *tx)
        .await?;
        let mut artifacts = Vec::with_capacity(rows.len());
        for row in &rows {
            artifacts.push((uuid_at(row, 0)?, row.try_get(1)?, row.try_get(2)?));
        }
        tx.commit().await?;
        Ok(OrphanCleanup {
            content_removed,
            artifacts,
        })
    }
}

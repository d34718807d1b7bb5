//! [`UploadStore`]: uploads, their chunks, and the repo-key conflicts of a version being built.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::{delete_by_id, row_by_id, Backend, DbRow};
use crate::db::shared;
use crate::db::types::{Id, Time};
use crate::db::upload::UploadStore;
use crate::db::{DbError, DbResult};
use crate::models::{Upload, UploadChunk};

const UPLOAD_COLS: &str = "id, size, pulp_created, pulp_last_updated";

fn upload_from(row: &DbRow) -> DbResult<Upload> {
    Ok(Upload {
        id: row.try_get::<Id, _>("id")?.0,
        size: shared::to_u64(row.try_get("size")?, "size")?,
        pulp_created: row.try_get::<Time, _>("pulp_created")?.0,
        pulp_last_updated: row.try_get::<Time, _>("pulp_last_updated")?.0,
    })
}

#[async_trait]
impl UploadStore for Backend {
    async fn create_upload(&self, size: u64) -> DbResult<Upload> {
        let now = shared::now();
        let upload = Upload {
            id: Uuid::now_v7(),
            size,
            pulp_created: now,
            pulp_last_updated: now,
        };
        sqlx::query(
            "INSERT INTO uploads (id, size, pulp_created, pulp_last_updated) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(Id(upload.id))
        .bind(shared::to_i64(size, "size")?)
        .bind(Time(now))
        .bind(Time(now))
        .execute(self.writer())
        .await?;
        Ok(upload)
    }

    async fn get_upload(&self, id: Uuid) -> DbResult<Upload> {
        let sql = format!("SELECT {UPLOAD_COLS} FROM uploads WHERE id = $1");
        let row = row_by_id(self.reader(), sql, "upload", id).await?;
        upload_from(&row)
    }

    async fn list_uploads(&self, limit: u64, offset: u64) -> DbResult<(u64, Vec<Upload>)> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM uploads")
            .fetch_one(self.reader())
            .await?;
        let sql = format!(
            "SELECT {UPLOAD_COLS} FROM uploads ORDER BY pulp_created, id LIMIT $1 OFFSET $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(shared::to_i64(limit, "limit")?)
            .bind(shared::to_i64(offset, "offset")?)
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(upload_from(row)?);
        }
        Ok((shared::to_u64(count, "count")?, out))
    }

    async fn upload_chunks(&self, upload_id: Uuid) -> DbResult<Vec<UploadChunk>> {
        let rows = sqlx::query(
            "SELECT id, start_byte, size FROM upload_chunks WHERE upload_id = $1 \
             ORDER BY start_byte, pulp_created, id",
        )
        .bind(Id(upload_id))
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(UploadChunk {
                id: row.try_get::<Id, _>("id")?.0,
                offset: shared::to_u64(row.try_get("start_byte")?, "offset")?,
                size: shared::to_u64(row.try_get("size")?, "size")?,
            });
        }
        Ok(out)
    }

    async fn add_upload_chunk(
        &self,
        upload_id: Uuid,
        chunk_id: Uuid,
        offset: u64,
        size: u64,
    ) -> DbResult<()> {
        let now = Time(shared::now());
        let mut tx = self.begin_write().await?;
        let touched = sqlx::query("UPDATE uploads SET pulp_last_updated = $1 WHERE id = $2")
            .bind(now)
            .bind(Id(upload_id))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if touched == 0 {
            return Err(DbError::NotFound(format!("upload {upload_id}")));
        }
        sqlx::query(
            "INSERT INTO upload_chunks (id, upload_id, start_byte, size, pulp_created) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Id(chunk_id))
        .bind(Id(upload_id))
        .bind(shared::to_i64(offset, "offset")?)
        .bind(shared::to_i64(size, "size")?)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_upload(&self, id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        delete_by_id(&mut tx, "uploads", "upload", id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_uploads_before(&self, cutoff: DateTime<Utc>) -> DbResult<Vec<Uuid>> {
        let ids: Vec<Id> =
            sqlx::query_scalar("DELETE FROM uploads WHERE pulp_last_updated < $1 RETURNING id")
                .bind(Time(cutoff))
                .fetch_all(self.writer())
                .await?;
        Ok(ids.into_iter().map(|i| i.0).collect())
    }

    async fn upload_ids(&self) -> DbResult<Vec<Uuid>> {
        let ids: Vec<Id> = sqlx::query_scalar("SELECT id FROM uploads")
            .fetch_all(self.reader())
            .await?;
        Ok(ids.into_iter().map(|i| i.0).collect())
    }

    async fn repo_key_conflicts(
        &self,
        version_id: Uuid,
        limit: u64,
    ) -> DbResult<Vec<(String, String)>> {
        // The units this version adds (open, added by it) against the open units of the same
        // repository it did not add: the ones `finalize_version` would remove as replaced.
        let rows = sqlx::query(
            "SELECT DISTINCT cn.pulp_type, cn.repo_key FROM repository_content rn \
             JOIN content cn ON cn.id = rn.content_id \
             JOIN repository_content ro ON ro.repository_id = rn.repository_id \
                 AND ro.version_removed_id IS NULL AND ro.version_added_id <> $1 \
             JOIN content co ON co.id = ro.content_id AND co.pulp_type = cn.pulp_type \
                 AND co.repo_key = cn.repo_key AND co.id <> cn.id \
             WHERE rn.version_added_id = $1 AND rn.version_removed_id IS NULL \
             ORDER BY cn.pulp_type, cn.repo_key LIMIT $2",
        )
        .bind(Id(version_id))
        .bind(shared::to_i64(limit, "limit")?)
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push((row.try_get("pulp_type")?, row.try_get("repo_key")?));
        }
        Ok(out)
    }
}

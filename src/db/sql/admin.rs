//! [`AdminStore`]: users, artifacts as REST objects, orphan cleanup.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use super::super::{ids_param, in_list_param};
use super::{row_by_id, rows, Backend, DbRow};
use crate::db::admin::AdminStore;
use crate::db::shared;
use crate::db::types::{Id, Json, Time};
use crate::db::{DbError, DbResult};
use crate::models::Artifact;
use crate::models::{ArtifactFilter, OrphanCleanup, SigningService};
use crate::secrets::{SecretBox, SecretError};
use std::sync::Arc;

const ARTIFACT_COLS: &str = "id, sha256, size, sha224, sha384, sha512, file, pulp_created";

fn artifact_from(row: &DbRow) -> DbResult<Artifact> {
    rows::artifact_from(row, "")
}

/// The conditions of an [`ArtifactFilter`], parameters `$1` to `$4`.
const ARTIFACT_WHERE: &str = " FROM artifacts WHERE (CAST($1 AS TEXT) IS NULL OR sha256 = $1) \
     AND (CAST($2 AS TEXT) IS NULL OR sha224 = $2) AND (CAST($3 AS TEXT) IS NULL OR sha384 = $3) \
     AND (CAST($4 AS TEXT) IS NULL OR sha512 = $4)";

/// Content in no repository version and served by no published file.
const ORPHAN_CONTENT: &str = "NOT EXISTS (SELECT 1 FROM repository_content rc \
     WHERE rc.content_id = content.id) \
     AND NOT EXISTS (SELECT 1 FROM content_artifacts ca \
     JOIN published_files pf ON pf.content_artifact_id = ca.id WHERE ca.content_id = content.id)";

#[async_trait]
impl AdminStore for Backend {
    async fn user_password_hash(&self, username: &str) -> DbResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM users WHERE username = $1")
                .bind(username)
                .fetch_optional(self.reader())
                .await?,
        )
    }

    async fn set_user_password_hash(&self, username: &str, hash: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO users (username, password_hash, pulp_created) VALUES ($1, $2, $3) \
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
        )
        .bind(username)
        .bind(hash)
        .bind(Time(shared::now()))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn create_signing_service(&self, s: &SigningService) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO signing_services \
             (id, pulp_type, name, script, pubkey_fingerprint, public_key, pulp_created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Id(s.id))
        .bind(&s.pulp_type)
        .bind(&s.name)
        .bind(&s.script)
        .bind(&s.pubkey_fingerprint)
        .bind(&s.public_key)
        .bind(Time(s.pulp_created))
        .execute(self.writer())
        .await
        .map_err(|e| {
            shared::conflict_or_sqlx(e, || format!("a signing service named {:?} exists", s.name))
        })?;
        Ok(())
    }

    async fn list_signing_services(&self) -> DbResult<Vec<SigningService>> {
        sqlx::query(
            "SELECT id, pulp_type, name, script, pubkey_fingerprint, public_key, pulp_created \
             FROM signing_services ORDER BY name",
        )
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(signing_service_from)
        .collect()
    }

    async fn get_signing_service(&self, id: Uuid) -> DbResult<SigningService> {
        sqlx::query(
            "SELECT id, pulp_type, name, script, pubkey_fingerprint, public_key, pulp_created \
             FROM signing_services WHERE id = $1",
        )
        .bind(Id(id))
        .fetch_optional(self.reader())
        .await?
        .map(|r| signing_service_from(&r))
        .transpose()?
        .ok_or_else(|| DbError::NotFound(format!("signing service {id}")))
    }

    async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
        limit: u64,
        offset: u64,
    ) -> DbResult<Vec<Artifact>> {
        let sql = format!(
            "SELECT {ARTIFACT_COLS}{ARTIFACT_WHERE} ORDER BY pulp_created, id LIMIT $5 OFFSET $6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.sha256.as_deref())
            .bind(filter.sha224.as_deref())
            .bind(filter.sha384.as_deref())
            .bind(filter.sha512.as_deref())
            .bind(shared::to_i64(limit, "limit")?)
            .bind(shared::to_i64(offset, "offset")?)
            .fetch_all(self.reader())
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
            .fetch_one(self.reader())
            .await?;
        shared::to_u64(n, "count")
    }

    async fn get_artifact(&self, id: Uuid) -> DbResult<Artifact> {
        let sql = format!("SELECT {ARTIFACT_COLS} FROM artifacts WHERE id = $1");
        let row = row_by_id(self.reader(), sql, "artifact", id).await?;
        artifact_from(&row)
    }

    async fn delete_artifact(&self, id: Uuid) -> DbResult<Artifact> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "DELETE FROM artifacts WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM content_artifacts WHERE artifact_id = artifacts.id) \
             AND NOT EXISTS (SELECT 1 FROM published_files WHERE artifact_id = artifacts.id) \
             RETURNING {ARTIFACT_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(id))
            .fetch_optional(&mut *tx)
            .await?;
        let out = match row {
            Some(row) => artifact_from(&row)?,
            None => {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM artifacts WHERE id = $1)")
                        .bind(Id(id))
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
        let sql = format!("SELECT id FROM content WHERE id {}", in_list_param(1));
        let found: Vec<Id> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(ids_param(ids))
            .fetch_all(self.reader())
            .await?;
        Ok(found.into_iter().map(|i| i.0).collect())
    }

    async fn delete_orphans(
        &self,
        cutoff: DateTime<Utc>,
        content_ids: Option<&[Uuid]>,
    ) -> DbResult<OrphanCleanup> {
        let cutoff = Time(cutoff);
        let only = content_ids.map(ids_param);
        let mut tx = self.begin_write().await?;
        // With content_ids, only the artifacts of the content deleted now are candidates.
        let candidates = match &only {
            None => None,
            Some(ids) => {
                let sql = format!(
                    "SELECT DISTINCT artifact_id FROM content_artifacts \
                     WHERE artifact_id IS NOT NULL AND content_id IN (SELECT id FROM content \
                     WHERE id {} AND timestamp_of_interest < $2 AND {ORPHAN_CONTENT})",
                    in_list_param(1)
                );
                let found: Vec<Id> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(ids)
                    .bind(cutoff)
                    .fetch_all(&mut *tx)
                    .await?;
                let found: Vec<Uuid> = found.into_iter().map(|i| i.0).collect();
                Some(ids_param(&found))
            }
        };
        let sql = format!(
            "DELETE FROM content WHERE timestamp_of_interest < $1 \
             AND ($2 IS NULL OR id {}) AND {ORPHAN_CONTENT}",
            in_list_param(2)
        );
        let content_removed = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cutoff)
            .bind(only)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let sql = format!(
            "DELETE FROM artifacts WHERE timestamp_of_interest < $1 \
             AND ($2 IS NULL OR id {}) \
             AND NOT EXISTS (SELECT 1 FROM content_artifacts ca WHERE ca.artifact_id = artifacts.id) \
             AND NOT EXISTS (SELECT 1 FROM published_files pf WHERE pf.artifact_id = artifacts.id) \
             RETURNING id, sha256, file",
            in_list_param(2)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(cutoff)
            .bind(candidates)
            .fetch_all(&mut *tx)
            .await?;
        let mut artifacts = Vec::with_capacity(rows.len());
        for row in &rows {
            artifacts.push((
                row.try_get::<Id, _>("id")?.0,
                row.try_get("sha256")?,
                row.try_get("file")?,
            ));
        }
        tx.commit().await?;
        Ok(OrphanCleanup {
            content_removed,
            artifacts,
        })
    }

    fn set_secrets(&self, secrets: SecretBox) {
        *self
            .secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(secrets);
    }

    fn secrets(&self) -> Arc<SecretBox> {
        self.sealer()
    }

    async fn record_key_id(&self, key_id: &str) -> DbResult<String> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO db_encryption (id, key_id) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
        let recorded: String = sqlx::query_scalar("SELECT key_id FROM db_encryption WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(recorded)
    }

    async fn rotate_secrets(&self, new: &SecretBox) -> DbResult<u64> {
        let old = self.sealer();
        let new_id = new
            .key_id()
            .ok_or_else(|| DbError::Corrupt("rotating to no key".into()))?
            .to_string();
        let bad = |e: SecretError| DbError::Corrupt(format!("a stored secret: {e}"));
        let mut tx = self.begin_write().await?;
        let mut changed = 0u64;
        let rows =
            sqlx::query("SELECT id, password, proxy_password, client_key FROM remotes ORDER BY id")
                .fetch_all(&mut *tx)
                .await?;
        for row in &rows {
            let mut values: Vec<Option<String>> = Vec::with_capacity(3);
            for col in ["password", "proxy_password", "client_key"] {
                let stored: Option<String> = row.try_get(col)?;
                let again = match stored {
                    Some(s) => {
                        changed += 1;
                        Some(new.reencrypt(&old, &s).map_err(bad)?)
                    }
                    None => None,
                };
                values.push(again);
            }
            sqlx::query(
                "UPDATE remotes SET password = $1, proxy_password = $2, client_key = $3 \
                 WHERE id = $4",
            )
            .bind(&values[0])
            .bind(&values[1])
            .bind(&values[2])
            .bind(row.try_get::<Id, _>("id")?)
            .execute(&mut *tx)
            .await?;
        }
        // Task arguments holding secrets (a remote update's body): every sealed string in them.
        let tasks =
            sqlx::query("SELECT id, args FROM tasks WHERE CAST(args AS TEXT) LIKE $1 ORDER BY id")
                .bind(format!("%{}%", crate::secrets::PREFIX))
                .fetch_all(&mut *tx)
                .await?;
        for row in &tasks {
            let mut value = row.try_get::<Json, _>("args")?.0;
            changed += reseal_json(&mut value, &old, new).map_err(bad)?;
            sqlx::query("UPDATE tasks SET args = $1 WHERE id = $2")
                .bind(Json(value))
                .bind(row.try_get::<Id, _>("id")?)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO db_encryption (id, key_id) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET key_id = excluded.key_id",
        )
        .bind(&new_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.set_secrets(new.clone());
        Ok(changed)
    }
}

/// Re-encrypts from `old` to `new` every sealed string inside `value`; how many.
fn reseal_json(
    value: &mut serde_json::Value,
    old: &SecretBox,
    new: &SecretBox,
) -> Result<u64, SecretError> {
    match value {
        serde_json::Value::String(s) if s.starts_with(crate::secrets::PREFIX) => {
            *s = new.reencrypt(old, s)?;
            Ok(1)
        }
        serde_json::Value::Array(items) => {
            let mut n = 0;
            for item in items {
                n += reseal_json(item, old, new)?;
            }
            Ok(n)
        }
        serde_json::Value::Object(members) => {
            let mut n = 0;
            for item in members.values_mut() {
                n += reseal_json(item, old, new)?;
            }
            Ok(n)
        }
        _ => Ok(0),
    }
}

fn signing_service_from(row: &DbRow) -> DbResult<SigningService> {
    Ok(SigningService {
        id: row.try_get::<Id, _>("id")?.0,
        pulp_type: row.try_get("pulp_type")?,
        name: row.try_get("name")?,
        script: row.try_get("script")?,
        pubkey_fingerprint: row.try_get("pubkey_fingerprint")?,
        public_key: row.try_get("public_key")?,
        pulp_created: row.try_get::<Time, _>("pulp_created")?.0,
    })
}

//! [`CatalogStore`] on SQLite: REST lists, repository updates, deletes, modify and version
//! deletion.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};
use uuid::fmt::Hyphenated;
use uuid::Uuid;

use super::catalog::{labels_to_json, CatalogStore, ContentQuery, LAST_VERSION};
use super::shared;
use super::sqlite::{content_from, hy, in_list, remote_from, repo_from, us, SqliteStore};
use super::{DbError, DbResult};
use crate::models::{Content, Remote, Repository};

const REMOTE_COLS: &str = "id, pulp_type, name, url, policy, download_concurrency, max_retries, \
     username, password, proxy_url, proxy_username, proxy_password, ca_cert, client_cert, \
     client_key, tls_validation, headers, connect_timeout, sock_read_timeout, total_timeout, \
     rate_limit, pulp_created, pulp_last_updated, pulp_labels, sock_connect_timeout";
const REPO_COLS: &str = "id, pulp_type, name, description, next_version, remote_id, \
     pulp_created, pulp_last_updated, pulp_labels, retain_repo_versions, plugin_data";
const CONTENT_COLS: &str = "c.id, c.pulp_type, c.natural_key, c.repo_key, c.data, c.pulp_created";

/// A value bound into a query built at run time.
enum Arg {
    Text(String),
    Int(i64),
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn list_remotes(&self, pulp_type: Option<&str>) -> DbResult<Vec<Remote>> {
        let sql = format!(
            "SELECT {REMOTE_COLS} FROM remotes WHERE (? IS NULL OR pulp_type = ?) ORDER BY name"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(pulp_type)
            .bind(pulp_type)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(remote_from)
            .collect()
    }

    async fn delete_remote(&self, id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM remotes WHERE id = ?")
            .bind(hy(id))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("remote {id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn update_repository(&self, r: &Repository) -> DbResult<Repository> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE repositories SET name = ?, description = ?, remote_id = ?, pulp_labels = ?, \
             retain_repo_versions = ?, plugin_data = ?, pulp_last_updated = ? WHERE id = ?",
        )
        .bind(&r.name)
        .bind(&r.description)
        .bind(r.remote_id.map(hy))
        .bind(labels_to_json(&r.pulp_labels).to_string())
        .bind(shared::opt_to_i64(
            r.retain_repo_versions,
            "retain_repo_versions",
        )?)
        .bind(r.plugin_data.to_string())
        .bind(us(shared::now()))
        .bind(hy(r.id))
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
            "SELECT {REPO_COLS} FROM repositories WHERE id = ?"
        )))
        .bind(hy(r.id))
        .fetch_one(&mut *tx)
        .await?;
        let saved = repo_from(&row)?;
        tx.commit().await?;
        Ok(saved)
    }

    async fn delete_repository(&self, id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM repository_content WHERE repository_id = ?")
            .bind(hy(id))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM repository_versions WHERE repository_id = ?")
            .bind(hy(id))
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM repositories WHERE id = ?")
            .bind(hy(id))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("repository {id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_content(&self, q: &ContentQuery) -> DbResult<(u64, Vec<Content>)> {
        let mut cond = String::from(" WHERE 1 = 1");
        let mut args: Vec<Arg> = Vec::new();
        if let Some(t) = &q.pulp_type {
            cond.push_str(" AND c.pulp_type = ?");
            args.push(Arg::Text(t.clone()));
        }
        if let Some((repo, number)) = q.in_version {
            cond.push_str(
                " AND c.id IN (SELECT rc.content_id FROM repository_content rc \
                 JOIN repository_versions va ON va.id = rc.version_added_id \
                 LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
                 WHERE rc.repository_id = ? AND va.number <= ? \
                 AND (vr.id IS NULL OR vr.number > ?))",
            );
            args.push(Arg::Text(hy(repo).to_string()));
            args.push(Arg::Int(number));
            args.push(Arg::Int(number));
        }
        if let Some(v) = q.added_in {
            cond.push_str(
                " AND c.id IN (SELECT content_id FROM repository_content WHERE version_added_id = ?)",
            );
            args.push(Arg::Text(hy(v).to_string()));
        }
        if let Some(v) = q.removed_in {
            cond.push_str(
                " AND c.id IN (SELECT content_id FROM repository_content \
                 WHERE version_removed_id = ?)",
            );
            args.push(Arg::Text(hy(v).to_string()));
        }
        if let Some(ids) = &q.ids {
            if ids.is_empty() {
                return Ok((0, Vec::new()));
            }
            cond.push_str(&format!(" AND c.id IN ({})", in_list(ids.len())));
            args.extend(ids.iter().map(|id| Arg::Text(hy(*id).to_string())));
        }
        for (key, value) in &q.data_equals {
            cond.push_str(" AND json_extract(c.data, ?) = ?");
            args.push(Arg::Text(format!("$.{key}")));
            args.push(Arg::Text(value.clone()));
        }
        let count_sql = format!("SELECT count(*) FROM content c{cond}");
        let list_sql = format!(
            "SELECT {CONTENT_COLS} FROM content c{cond} ORDER BY c.pulp_created, c.id \
             LIMIT ? OFFSET ?"
        );
        let mut conn = self.read.acquire().await?;
        let mut cq = sqlx::query_scalar::<_, i64>(AssertSqlSafe(count_sql));
        let mut lq = sqlx::query(AssertSqlSafe(list_sql));
        for a in &args {
            match a {
                Arg::Text(s) => {
                    cq = cq.bind(s.clone());
                    lq = lq.bind(s.clone());
                }
                Arg::Int(i) => {
                    cq = cq.bind(*i);
                    lq = lq.bind(*i);
                }
            }
        }
        let count = shared::to_u64(cq.fetch_one(&mut *conn).await?, "count")?;
        let rows = lq
            .bind(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .bind(i64::try_from(q.offset).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await?;
        let content = rows.iter().map(content_from).collect::<DbResult<_>>()?;
        Ok((count, content))
    }

    async fn unassociate(&self, version_id: Uuid, content_ids: &[Uuid]) -> DbResult<u64> {
        let ids = shared::dedupe_ids(content_ids);
        let mut tx = self.begin_write().await?;
        let row =
            sqlx::query("SELECT repository_id, complete FROM repository_versions WHERE id = ?")
                .bind(hy(version_id))
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| DbError::NotFound(format!("repository version {version_id}")))?;
        let repo: Hyphenated = row.try_get(0)?;
        let complete: bool = row.try_get(1)?;
        if complete {
            return Err(DbError::Conflict(
                "a complete repository version cannot change".into(),
            ));
        }
        let mut removed = 0;
        for chunk in ids.chunks(500) {
            let sql = format!(
                "UPDATE repository_content SET version_removed_id = ? \
                 WHERE repository_id = ? AND version_removed_id IS NULL \
                 AND version_added_id <> ? AND content_id IN ({})",
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(hy(version_id))
                .bind(repo)
                .bind(hy(version_id));
            for id in chunk {
                q = q.bind(hy(*id));
            }
            removed += q.execute(&mut *tx).await?.rows_affected();
            let sql = format!(
                "DELETE FROM repository_content WHERE version_added_id = ? AND content_id IN ({})",
                in_list(chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(hy(version_id));
            for id in chunk {
                q = q.bind(hy(*id));
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn delete_version(&self, version_id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT repository_id, number, complete FROM repository_versions WHERE id = ?",
        )
        .bind(hy(version_id))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository version {version_id}")))?;
        let repo: Hyphenated = row.try_get(0)?;
        let number: i64 = row.try_get(1)?;
        let complete: bool = row.try_get(2)?;
        if !complete {
            return Err(DbError::NotFound(format!(
                "repository version {version_id}"
            )));
        }
        let versions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM repository_versions WHERE repository_id = ? AND complete = 1",
        )
        .bind(repo)
        .fetch_one(&mut *tx)
        .await?;
        if versions <= 1 {
            return Err(DbError::Conflict(LAST_VERSION.to_string()));
        }
        let v = hy(version_id);
        let next: Option<Hyphenated> = sqlx::query_scalar(
            "SELECT id FROM repository_versions WHERE repository_id = ? AND complete = 1 \
             AND number > ? ORDER BY number LIMIT 1",
        )
        .bind(repo)
        .bind(number)
        .fetch_optional(&mut *tx)
        .await?;
        match next {
            Some(n) => {
                // Removed by this version, added again by the next: one row, never removed.
                let pairs = sqlx::query(
                    "SELECT r1.id, r2.id, r2.version_removed_id FROM repository_content r1 \
                     JOIN repository_content r2 ON r2.repository_id = r1.repository_id \
                     AND r2.content_id = r1.content_id AND r2.version_added_id = ? \
                     WHERE r1.version_removed_id = ?",
                )
                .bind(n)
                .bind(v)
                .fetch_all(&mut *tx)
                .await?;
                for p in pairs {
                    let r1: Hyphenated = p.try_get(0)?;
                    let r2: Hyphenated = p.try_get(1)?;
                    let r2_removed: Option<Hyphenated> = p.try_get(2)?;
                    sqlx::query("DELETE FROM repository_content WHERE id = ?")
                        .bind(r2)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE repository_content SET version_removed_id = ? WHERE id = ?",
                    )
                    .bind(r2_removed)
                    .bind(r1)
                    .execute(&mut *tx)
                    .await?;
                }
                // Added by this version, removed by the next: never visible any more.
                sqlx::query(
                    "DELETE FROM repository_content \
                     WHERE version_added_id = ? AND version_removed_id = ?",
                )
                .bind(v)
                .bind(n)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE repository_content SET version_added_id = ? WHERE version_added_id = ?",
                )
                .bind(n)
                .bind(v)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE repository_content SET version_removed_id = ? \
                     WHERE version_removed_id = ?",
                )
                .bind(n)
                .bind(v)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE repository_versions SET \
                     added = (SELECT count(*) FROM repository_content WHERE version_added_id = ?1), \
                     removed = (SELECT count(*) FROM repository_content \
                                WHERE version_removed_id = ?1) WHERE id = ?1",
                )
                .bind(n)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM repository_content WHERE version_added_id = ?")
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "UPDATE repository_content SET version_removed_id = NULL \
                     WHERE version_removed_id = ?",
                )
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("DELETE FROM repository_versions WHERE id = ?")
            .bind(v)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

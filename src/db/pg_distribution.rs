//! [`DistributionStore`] on PostgreSQL. The SQL is written with `?` placeholders and numbered
//! (`$1`, `$2`...) by [`numbered`], so it reads like the SQLite twin.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::distribution::{
    like_escape, Distribution, DistributionFields, DistributionFilter, DistributionStore,
    Publication, PublicationFilter, ServedFile, VersionRef,
};
use super::pg::{artifact_from, PgStore};
use super::shared;
use super::{DbError, DbResult};

const PUB_COLS: &str = "p.id, p.pulp_type, p.repository_version_id, v.repository_id, v.number, \
     p.complete, p.pass_through, p.plugin_data, p.pulp_created, p.pulp_last_updated";
const PUB_FROM: &str =
    "FROM publications p JOIN repository_versions v ON v.id = p.repository_version_id";

const DIST_COLS: &str = "d.id, d.pulp_type, d.name, d.base_path, d.repository_id, \
     d.repository_version_id, v.repository_id, v.number, d.publication_id, d.hidden, \
     d.pulp_labels, d.pulp_created, d.pulp_last_updated";
const DIST_FROM: &str =
    "FROM distributions d LEFT JOIN repository_versions v ON v.id = d.repository_version_id";

/// The columns of a served file: content artifact, path, artifact (8), remote size and sha256,
/// created.
const FILE_COLS: &str = "ca.id, ca.relative_path, a.id, a.sha256, a.size, a.sha224, a.sha384, \
     a.sha512, a.file, a.pulp_created, \
     (SELECT ra.size FROM remote_artifacts ra WHERE ra.content_artifact_id = ca.id LIMIT 1), \
     (SELECT ra.sha256 FROM remote_artifacts ra WHERE ra.content_artifact_id = ca.id LIMIT 1), \
     c.pulp_created";
/// A version's content artifacts (binds: version id).
const VERSION_FILES_FROM: &str = "FROM repository_versions v \
     JOIN repository_content rc ON rc.repository_id = v.repository_id \
     JOIN repository_versions va ON va.id = rc.version_added_id \
     LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
     JOIN content_artifacts ca ON ca.content_id = rc.content_id \
     JOIN content c ON c.id = ca.content_id \
     LEFT JOIN artifacts a ON a.id = ca.artifact_id \
     WHERE v.id = ? AND va.number <= v.number AND (vr.id IS NULL OR vr.number > v.number)";
/// A publication's metadata files (binds: publication id).
const PUBLISHED_COLS: &str = "pf.relative_path, a.id, a.sha256, a.size, a.sha224, a.sha384, \
     a.sha512, a.file, a.pulp_created \
     FROM published_files pf JOIN artifacts a ON a.id = pf.artifact_id \
     WHERE pf.publication_id = ?";

/// `sql` with each `?` replaced by `$1`, `$2`... in order.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// `?,?,?` for an `IN (...)` list of `n` values.
fn in_list(n: usize) -> String {
    vec!["?"; n].join(",")
}

fn pub_from(row: &PgRow) -> DbResult<Publication> {
    Ok(Publication {
        id: row.try_get::<Uuid, _>(0)?,
        pulp_type: row.try_get(1)?,
        version: VersionRef {
            id: row.try_get::<Uuid, _>(2)?,
            repository_id: row.try_get::<Uuid, _>(3)?,
            number: row.try_get(4)?,
        },
        complete: row.try_get(5)?,
        pass_through: row.try_get(6)?,
        plugin_data: row.try_get::<serde_json::Value, _>(7)?,
        pulp_created: row.try_get(8)?,
        pulp_last_updated: row.try_get(9)?,
    })
}

fn dist_from(row: &PgRow) -> DbResult<Distribution> {
    let version = match row.try_get::<Option<Uuid>, _>(5)? {
        Some(id) => Some(VersionRef {
            id,
            repository_id: row.try_get::<Uuid, _>(6)?,
            number: row.try_get(7)?,
        }),
        None => None,
    };
    let labels = row.try_get::<serde_json::Value, _>(10)?;
    Ok(Distribution {
        id: row.try_get::<Uuid, _>(0)?,
        pulp_type: row.try_get(1)?,
        name: row.try_get(2)?,
        base_path: row.try_get(3)?,
        repository_id: row.try_get::<Option<Uuid>, _>(4)?,
        repository_version: version,
        publication_id: row.try_get::<Option<Uuid>, _>(8)?,
        hidden: row.try_get(9)?,
        pulp_labels: serde_json::from_value(labels)
            .map_err(|e| DbError::Corrupt(format!("distribution labels: {e}")))?,
        pulp_created: row.try_get(11)?,
        pulp_last_updated: row.try_get(12)?,
    })
}

fn file_from(row: &PgRow) -> DbResult<ServedFile> {
    let artifact = match row.try_get::<Option<Uuid>, _>(2)? {
        Some(_) => Some(artifact_from(row, 2)?),
        None => None,
    };
    Ok(ServedFile {
        content_artifact_id: Some(row.try_get::<Uuid, _>(0)?),
        relative_path: row.try_get(1)?,
        artifact,
        remote_size: shared::opt_to_u64(row.try_get(10)?, "remote artifact size")?,
        remote_sha256: row.try_get(11)?,
        pulp_created: row.try_get(12)?,
    })
}

fn published_from(row: &PgRow) -> DbResult<ServedFile> {
    let artifact = artifact_from(row, 1)?;
    Ok(ServedFile {
        relative_path: row.try_get(0)?,
        content_artifact_id: None,
        pulp_created: artifact.pulp_created,
        artifact: Some(artifact),
        remote_size: None,
        remote_sha256: None,
    })
}

fn dist_write_err(e: sqlx::Error, d: &DistributionFields) -> DbError {
    shared::map_write_err(
        e,
        || {
            format!(
                "a distribution named {:?} or with base path {:?} exists",
                d.name, d.base_path
            )
        },
        || "the repository, repository version or publication".to_string(),
    )
}

impl PgStore {
    async fn publication_in(&self, id: Uuid) -> DbResult<Publication> {
        let sql = format!("SELECT {PUB_COLS} {PUB_FROM} WHERE p.id = ?");
        let row = sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("publication {id}")))?;
        pub_from(&row)
    }

    async fn distribution_in(&self, id: Uuid) -> DbResult<Distribution> {
        let sql = format!("SELECT {DIST_COLS} {DIST_FROM} WHERE d.id = ?");
        let row = sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("distribution {id}")))?;
        dist_from(&row)
    }
}

#[async_trait]
impl DistributionStore for PgStore {
    async fn create_publication(
        &self,
        pulp_type: &str,
        version_id: Uuid,
        pass_through: bool,
        plugin_data: &serde_json::Value,
    ) -> DbResult<Publication> {
        let id = Uuid::now_v7();
        let now = shared::now();
        sqlx::query(AssertSqlSafe(numbered(
            "INSERT INTO publications (id, pulp_type, repository_version_id, complete, \
             pass_through, plugin_data, pulp_created, pulp_last_updated) \
             VALUES (?, ?, ?, false, ?, ?::jsonb, ?, ?)",
        )))
        .bind(id)
        .bind(pulp_type)
        .bind(version_id)
        .bind(pass_through)
        .bind(plugin_data)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            shared::map_write_err(
                e,
                || "publication".into(),
                || format!("repository version {version_id}"),
            )
        })?;
        self.publication_in(id).await
    }

    async fn add_published_artifacts(
        &self,
        publication_id: Uuid,
        files: &[(String, Uuid)],
    ) -> DbResult<()> {
        let mut tx = self.begin().await?;
        for (path, artifact_id) in files {
            sqlx::query(AssertSqlSafe(numbered(
                "INSERT INTO published_files (id, publication_id, relative_path, artifact_id) \
                 VALUES (?, ?, ?, ?)",
            )))
            .bind(Uuid::now_v7())
            .bind(publication_id)
            .bind(path)
            .bind(*artifact_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                shared::map_write_err(
                    e,
                    || format!("{path:?} is published twice"),
                    || format!("publication {publication_id}"),
                )
            })?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn complete_publication(&self, id: Uuid) -> DbResult<Publication> {
        sqlx::query(AssertSqlSafe(numbered(
            "UPDATE publications SET complete = true, pulp_last_updated = ? WHERE id = ?",
        )))
        .bind(shared::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.publication_in(id).await
    }

    async fn delete_publication(&self, id: Uuid) -> DbResult<()> {
        let done = sqlx::query(AssertSqlSafe(numbered(
            "DELETE FROM publications WHERE id = ?",
        )))
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("publication {id}")));
        }
        Ok(())
    }

    async fn get_publication(&self, id: Uuid) -> DbResult<Publication> {
        let sql = format!("SELECT {PUB_COLS} {PUB_FROM} WHERE p.id = ?");
        let row = sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("publication {id}")))?;
        pub_from(&row)
    }

    async fn list_publications(&self, f: &PublicationFilter) -> DbResult<(u64, Vec<Publication>)> {
        let mut cond = String::from(" WHERE p.complete");
        if f.pulp_type.is_some() {
            cond.push_str(" AND p.pulp_type = ?");
        }
        if f.version_id.is_some() {
            cond.push_str(" AND p.repository_version_id = ?");
        }
        if f.repository_id.is_some() {
            cond.push_str(" AND v.repository_id = ?");
        }
        if f.created_gte.is_some() {
            cond.push_str(" AND p.pulp_created >= ?");
        }
        if f.created_lte.is_some() {
            cond.push_str(" AND p.pulp_created <= ?");
        }
        let count_sql = format!("SELECT count(*) {PUB_FROM}{cond}");
        let list_sql = format!(
            "SELECT {PUB_COLS} {PUB_FROM}{cond} ORDER BY p.pulp_created DESC, p.id DESC \
             LIMIT ? OFFSET ?"
        );
        macro_rules! bind_all {
            ($q:expr) => {{
                let mut q = $q;
                if let Some(t) = &f.pulp_type {
                    q = q.bind(t.clone());
                }
                if let Some(v) = f.version_id {
                    q = q.bind(v);
                }
                if let Some(r) = f.repository_id {
                    q = q.bind(r);
                }
                if let Some(t) = f.created_gte {
                    q = q.bind(t);
                }
                if let Some(t) = f.created_lte {
                    q = q.bind(t);
                }
                q
            }};
        }
        let n: i64 = bind_all!(sqlx::query_scalar(AssertSqlSafe(numbered(&count_sql))))
            .fetch_one(&self.pool)
            .await?;
        let rows = bind_all!(sqlx::query(AssertSqlSafe(numbered(&list_sql))))
            .bind(shared::to_i64(f.limit, "limit")?)
            .bind(shared::to_i64(f.offset, "offset")?)
            .fetch_all(&self.pool)
            .await?;
        let list = rows.iter().map(pub_from).collect::<DbResult<Vec<_>>>()?;
        Ok((shared::to_u64(n, "count")?, list))
    }

    async fn publication_distributions(&self, ids: &[Uuid]) -> DbResult<Vec<(Uuid, Uuid)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT publication_id, id FROM distributions WHERE publication_id IN ({}) \
             ORDER BY base_path",
            in_list(ids.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(numbered(&sql)));
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((r.try_get::<Uuid, _>(0)?, r.try_get::<Uuid, _>(1)?)))
            .collect()
    }

    async fn latest_publication(
        &self,
        repository_id: Option<Uuid>,
        version_id: Option<Uuid>,
    ) -> DbResult<Option<Publication>> {
        let sql = format!(
            "SELECT {PUB_COLS} {PUB_FROM} WHERE p.complete \
             AND (CAST(? AS uuid) IS NULL OR v.repository_id = ?) AND (CAST(? AS uuid) IS NULL OR v.id = ?) \
             ORDER BY v.number DESC, p.pulp_created DESC LIMIT 1"
        );
        sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(repository_id)
            .bind(repository_id)
            .bind(version_id)
            .bind(version_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| pub_from(&r))
            .transpose()
    }

    async fn version_ref(&self, version_id: Uuid) -> DbResult<VersionRef> {
        let row = sqlx::query(AssertSqlSafe(numbered(
            "SELECT repository_id, number FROM repository_versions WHERE id = ?",
        )))
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("repository version {version_id}")))?;
        Ok(VersionRef {
            id: version_id,
            repository_id: row.try_get::<Uuid, _>(0)?,
            number: row.try_get(1)?,
        })
    }

    async fn create_distribution(&self, d: &DistributionFields) -> DbResult<Distribution> {
        let id = Uuid::now_v7();
        let now = shared::now();
        sqlx::query(AssertSqlSafe(numbered(
            "INSERT INTO distributions (id, pulp_type, name, base_path, repository_id, \
             repository_version_id, publication_id, hidden, pulp_labels, pulp_created, \
             pulp_last_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?::jsonb, ?, ?)",
        )))
        .bind(id)
        .bind(&d.pulp_type)
        .bind(&d.name)
        .bind(&d.base_path)
        .bind(d.repository_id)
        .bind(d.repository_version_id)
        .bind(d.publication_id)
        .bind(d.hidden)
        .bind(serde_json::to_value(&d.pulp_labels).unwrap_or_default())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| dist_write_err(e, d))?;
        self.distribution_in(id).await
    }

    async fn update_distribution(
        &self,
        id: Uuid,
        d: &DistributionFields,
    ) -> DbResult<Distribution> {
        let done = sqlx::query(AssertSqlSafe(numbered(
            "UPDATE distributions SET name = ?, base_path = ?, repository_id = ?, \
             repository_version_id = ?, publication_id = ?, hidden = ?, pulp_labels = ?::jsonb, \
             pulp_last_updated = ? WHERE id = ?",
        )))
        .bind(&d.name)
        .bind(&d.base_path)
        .bind(d.repository_id)
        .bind(d.repository_version_id)
        .bind(d.publication_id)
        .bind(d.hidden)
        .bind(serde_json::to_value(&d.pulp_labels).unwrap_or_default())
        .bind(shared::now())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| dist_write_err(e, d))?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("distribution {id}")));
        }
        self.distribution_in(id).await
    }

    async fn delete_distribution(&self, id: Uuid) -> DbResult<()> {
        let done = sqlx::query(AssertSqlSafe(numbered(
            "DELETE FROM distributions WHERE id = ?",
        )))
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("distribution {id}")));
        }
        Ok(())
    }

    async fn get_distribution(&self, id: Uuid) -> DbResult<Distribution> {
        let sql = format!("SELECT {DIST_COLS} {DIST_FROM} WHERE d.id = ?");
        let row = sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| DbError::NotFound(format!("distribution {id}")))?;
        dist_from(&row)
    }

    async fn get_distribution_by_name(&self, name: &str) -> DbResult<Option<Distribution>> {
        let sql = format!("SELECT {DIST_COLS} {DIST_FROM} WHERE d.name = ?");
        sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| dist_from(&r))
            .transpose()
    }

    async fn list_distributions(
        &self,
        f: &DistributionFilter,
    ) -> DbResult<(u64, Vec<Distribution>)> {
        let mut cond = String::from(" WHERE 1 = 1");
        if f.pulp_type.is_some() {
            cond.push_str(" AND d.pulp_type = ?");
        }
        if f.name.is_some() {
            cond.push_str(" AND d.name = ?");
        }
        if f.name_contains.is_some() {
            cond.push_str(" AND strpos(d.name, ?) > 0");
        }
        if f.name_icontains.is_some() {
            cond.push_str(" AND lower(d.name) LIKE lower(?) ESCAPE '\\'");
        }
        if !f.name_in.is_empty() {
            cond.push_str(&format!(" AND d.name IN ({})", in_list(f.name_in.len())));
        }
        if f.base_path.is_some() {
            cond.push_str(" AND d.base_path = ?");
        }
        if f.base_path_contains.is_some() {
            cond.push_str(" AND strpos(d.base_path, ?) > 0");
        }
        if f.base_path_icontains.is_some() {
            cond.push_str(" AND lower(d.base_path) LIKE lower(?) ESCAPE '\\'");
        }
        if f.repository_id.is_some() {
            cond.push_str(" AND d.repository_id = ?");
        }
        let count_sql = format!("SELECT count(*) {DIST_FROM}{cond}");
        let list_sql =
            format!("SELECT {DIST_COLS} {DIST_FROM}{cond} ORDER BY d.base_path LIMIT ? OFFSET ?");
        macro_rules! bind_all {
            ($q:expr) => {{
                let mut q = $q;
                if let Some(v) = &f.pulp_type {
                    q = q.bind(v.clone());
                }
                if let Some(v) = &f.name {
                    q = q.bind(v.clone());
                }
                if let Some(v) = &f.name_contains {
                    q = q.bind(v.clone());
                }
                if let Some(v) = &f.name_icontains {
                    q = q.bind(format!("%{}%", like_escape(v)));
                }
                for v in &f.name_in {
                    q = q.bind(v.clone());
                }
                if let Some(v) = &f.base_path {
                    q = q.bind(v.clone());
                }
                if let Some(v) = &f.base_path_contains {
                    q = q.bind(v.clone());
                }
                if let Some(v) = &f.base_path_icontains {
                    q = q.bind(format!("%{}%", like_escape(v)));
                }
                if let Some(v) = f.repository_id {
                    q = q.bind(v);
                }
                q
            }};
        }
        let n: i64 = bind_all!(sqlx::query_scalar(AssertSqlSafe(numbered(&count_sql))))
            .fetch_one(&self.pool)
            .await?;
        let rows = bind_all!(sqlx::query(AssertSqlSafe(numbered(&list_sql))))
            .bind(shared::to_i64(f.limit, "limit")?)
            .bind(shared::to_i64(f.offset, "offset")?)
            .fetch_all(&self.pool)
            .await?;
        let list = rows.iter().map(dist_from).collect::<DbResult<Vec<_>>>()?;
        Ok((shared::to_u64(n, "count")?, list))
    }

    async fn overlapping_distribution(
        &self,
        base_path: &str,
        prefixes: &[String],
        exclude: Option<Uuid>,
    ) -> DbResult<Option<Distribution>> {
        let sql = format!(
            "SELECT {DIST_COLS} {DIST_FROM} WHERE (d.base_path IN ({}) \
             OR d.base_path LIKE ? ESCAPE '\\') AND (CAST(? AS uuid) IS NULL OR d.id <> ?) \
             ORDER BY d.base_path LIMIT 1",
            in_list(prefixes.len().max(1))
        );
        let mut q = sqlx::query(AssertSqlSafe(numbered(&sql)));
        if prefixes.is_empty() {
            q = q.bind(base_path.to_string());
        }
        for p in prefixes {
            q = q.bind(p.clone());
        }
        q.bind(format!("{}/%", like_escape(base_path)))
            .bind(exclude)
            .bind(exclude)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| dist_from(&r))
            .transpose()
    }

    async fn distribution_for_paths(
        &self,
        candidates: &[String],
    ) -> DbResult<Option<Distribution>> {
        if candidates.is_empty() {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {DIST_COLS} {DIST_FROM} WHERE d.base_path IN ({}) \
             ORDER BY length(d.base_path) DESC LIMIT 1",
            in_list(candidates.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(numbered(&sql)));
        for c in candidates {
            q = q.bind(c.clone());
        }
        q.fetch_optional(&self.pool)
            .await?
            .map(|r| dist_from(&r))
            .transpose()
    }

    async fn base_paths_under(&self, prefix: &str) -> DbResult<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(numbered(
            "SELECT base_path FROM distributions WHERE NOT hidden AND base_path LIKE ? \
             ESCAPE '\\' ORDER BY base_path",
        )))
        .bind(format!("{}%", like_escape(prefix)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn version_file(
        &self,
        version_id: Uuid,
        relative_path: &str,
    ) -> DbResult<Option<ServedFile>> {
        let sql = format!(
            "SELECT {FILE_COLS} {VERSION_FILES_FROM} AND ca.relative_path = ? \
             ORDER BY ca.id LIMIT 1"
        );
        sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(version_id)
            .bind(relative_path)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| file_from(&r))
            .transpose()
    }

    async fn version_files(&self, version_id: Uuid, prefix: &str) -> DbResult<Vec<ServedFile>> {
        let sql = format!(
            "SELECT {FILE_COLS} {VERSION_FILES_FROM} AND ca.relative_path LIKE ? ESCAPE '\\' \
             ORDER BY ca.relative_path"
        );
        sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(version_id)
            .bind(format!("{}%", like_escape(prefix)))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(file_from)
            .collect()
    }

    async fn published_file(
        &self,
        publication_id: Uuid,
        relative_path: &str,
    ) -> DbResult<Option<ServedFile>> {
        let sql = format!("SELECT {PUBLISHED_COLS} AND pf.relative_path = ?");
        sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(publication_id)
            .bind(relative_path)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| published_from(&r))
            .transpose()
    }

    async fn published_files(
        &self,
        publication_id: Uuid,
        prefix: &str,
    ) -> DbResult<Vec<ServedFile>> {
        let sql = format!(
            "SELECT {PUBLISHED_COLS} AND pf.relative_path LIKE ? ESCAPE '\\' \
             ORDER BY pf.relative_path"
        );
        sqlx::query(AssertSqlSafe(numbered(&sql)))
            .bind(publication_id)
            .bind(format!("{}%", like_escape(prefix)))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(published_from)
            .collect()
    }

    async fn link_artifact(&self, content_artifact_id: Uuid, artifact_id: Uuid) -> DbResult<()> {
        sqlx::query(AssertSqlSafe(numbered(
            "UPDATE content_artifacts SET artifact_id = ? WHERE id = ? AND artifact_id IS NULL",
        )))
        .bind(artifact_id)
        .bind(content_artifact_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

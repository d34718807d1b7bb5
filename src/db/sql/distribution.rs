//! [`DistributionStore`]: publications, distributions and the content app's lookups.

use std::sync::LazyLock;

use async_trait::async_trait;
use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, QueryBuilder, Row};
use uuid::Uuid;

use super::super::{ids_param, in_list_param, push_contains, strs_param, PATH_RANGE};
use super::rows::{artifact_cols, artifact_from, content_from, CONTENT_COLS};
use super::{delete_by_id, row_by_id, Backend, Db, DbRow};
use crate::db::distribution::DistributionStore;
use crate::db::shared::{self, labels_to_json, like_escape};
use crate::db::types::{opt_id, Id, Json, Time};
use crate::db::{DbError, DbResult};
use crate::models::{
    Artifact, Content, Distribution, DistributionFields, DistributionFilter, Publication,
    PublicationFilter, PublishedFile, ServedFile, VersionRef,
};

const PUB_COLS: &str = "p.id, p.pulp_type, p.repository_version_id, v.repository_id, v.number, \
     p.complete, p.pass_through, p.plugin_data, p.pulp_created, p.pulp_last_updated";
const PUB_FROM: &str =
    "FROM publications p JOIN repository_versions v ON v.id = p.repository_version_id";

/// Columns of the fields a publication list may be ordered by.
const PUB_ORDER: &[(&str, &str)] = &[
    ("pk", "p.id"),
    ("pulp_id", "p.id"),
    ("pulp_created", "p.pulp_created"),
    ("pulp_last_updated", "p.pulp_last_updated"),
    ("pulp_type", "p.pulp_type"),
    ("complete", "p.complete"),
    ("pass_through", "p.pass_through"),
];

/// Columns of the fields a distribution list may be ordered by.
const DIST_ORDER: &[(&str, &str)] = &[
    ("pk", "d.id"),
    ("pulp_id", "d.id"),
    ("name", "d.name"),
    ("base_path", "d.base_path"),
    ("hidden", "d.hidden"),
    ("pulp_created", "d.pulp_created"),
    ("pulp_last_updated", "d.pulp_last_updated"),
    ("pulp_type", "d.pulp_type"),
];

const DIST_COLS: &str = "d.id, d.pulp_type, d.name, d.base_path, d.repository_id, \
     d.repository_version_id, v.repository_id AS version_repository_id, \
     v.number AS version_number, d.publication_id, d.hidden, d.pulp_labels, d.pulp_created, \
     d.pulp_last_updated, \
     (SELECT pp.pulp_type FROM publications pp WHERE pp.id = d.publication_id) \
     AS publication_type";
const DIST_FROM: &str =
    "FROM distributions d LEFT JOIN repository_versions v ON v.id = d.repository_version_id";

/// The columns of a served file: content artifact, path, artifact (`a_*`), remote size and
/// sha256, created.
static FILE_COLS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "ca.id AS ca_id, ca.relative_path, {}, \
         (SELECT ra.size FROM remote_artifacts ra WHERE ra.content_artifact_id = ca.id LIMIT 1) \
         AS remote_size, \
         (SELECT ra.sha256 FROM remote_artifacts ra WHERE ra.content_artifact_id = ca.id LIMIT 1) \
         AS remote_sha256, \
         c.pulp_created AS file_created",
        artifact_cols("a", "a_")
    )
});

/// A version's content artifacts (parameter `$1`: the version id).
const VERSION_FILES_FROM: &str = "FROM repository_versions v \
     JOIN repository_content rc ON rc.repository_id = v.repository_id \
     JOIN repository_versions va ON va.id = rc.version_added_id \
     LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
     JOIN content_artifacts ca ON ca.content_id = rc.content_id \
     JOIN content c ON c.id = ca.content_id \
     LEFT JOIN artifacts a ON a.id = ca.artifact_id \
     WHERE v.id = $1 AND va.number <= v.number AND (vr.id IS NULL OR vr.number > v.number)";

/// The membership joins of a path-first lookup: `ca` is a CTE of candidate content artifacts,
/// `$2` the version. `CROSS JOIN` keeps `ca` the outer loop on SQLite, which otherwise may walk
/// the repository's content first; PostgreSQL reads the materialized `ca` first anyway.
const PATH_FIRST_FROM: &str = "FROM ca CROSS JOIN repository_versions v \
     JOIN repository_content rc \
       ON rc.repository_id = v.repository_id AND rc.content_id = ca.content_id \
     JOIN repository_versions va ON va.id = rc.version_added_id \
     LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
     JOIN content c ON c.id = ca.content_id \
     LEFT JOIN artifacts a ON a.id = ca.artifact_id \
     WHERE v.id = $2 AND va.number <= v.number AND (vr.id IS NULL OR vr.number > v.number)";

/// The condition "`column` starts with `prefix`" as a byte range on the path index (the
/// dialect's [`PATH_RANGE`] operators): `column >= $lo` (the prefix), and `column < $hi` with the
/// returned end to bind as `$hi` (none when no string sorts above every extension of the prefix).
fn path_range(column: &str, prefix: &str, lo: u8, hi: u8) -> (String, Option<String>) {
    let (ge, lt) = PATH_RANGE;
    match shared::prefix_end(prefix) {
        Some(end) => (
            format!("{column} {ge} ${lo} AND {column} {lt} ${hi}"),
            Some(end),
        ),
        None => (format!("{column} {ge} ${lo}"), None),
    }
}

/// A publication's own files (parameter `$1`: the publication id): metadata artifacts, and
/// content artifacts published at the plugin's paths (downloaded or not).
static PUBLISHED_SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT pf.relative_path, pf.content_artifact_id AS ca_id, {}, \
         (SELECT ra.size FROM remote_artifacts ra WHERE ra.content_artifact_id = ca.id LIMIT 1) \
         AS remote_size, \
         (SELECT ra.sha256 FROM remote_artifacts ra WHERE ra.content_artifact_id = ca.id LIMIT 1) \
         AS remote_sha256, \
         COALESCE(c.pulp_created, a.pulp_created) AS file_created \
         FROM published_files pf \
         LEFT JOIN content_artifacts ca ON ca.id = pf.content_artifact_id \
         LEFT JOIN content c ON c.id = ca.content_id \
         LEFT JOIN artifacts a ON a.id = COALESCE(pf.artifact_id, ca.artifact_id) \
         WHERE pf.publication_id = $1",
        artifact_cols("a", "a_")
    )
});

fn pub_from(row: &DbRow) -> DbResult<Publication> {
    Ok(Publication {
        id: row.try_get::<Id, _>("id")?.0,
        pulp_type: row.try_get("pulp_type")?,
        version: VersionRef {
            id: row.try_get::<Id, _>("repository_version_id")?.0,
            repository_id: row.try_get::<Id, _>("repository_id")?.0,
            number: row.try_get("number")?,
        },
        complete: row.try_get("complete")?,
        pass_through: row.try_get("pass_through")?,
        plugin_data: row.try_get::<Json, _>("plugin_data")?.0,
        pulp_created: row.try_get::<Time, _>("pulp_created")?.0,
        pulp_last_updated: row.try_get::<Time, _>("pulp_last_updated")?.0,
    })
}

fn dist_from(row: &DbRow) -> DbResult<Distribution> {
    let version = match row.try_get::<Option<Id>, _>("repository_version_id")? {
        Some(id) => Some(VersionRef {
            id: id.0,
            repository_id: row.try_get::<Id, _>("version_repository_id")?.0,
            number: row.try_get("version_number")?,
        }),
        None => None,
    };
    let labels = row.try_get::<Json, _>("pulp_labels")?.0;
    Ok(Distribution {
        id: row.try_get::<Id, _>("id")?.0,
        pulp_type: row.try_get("pulp_type")?,
        name: row.try_get("name")?,
        base_path: row.try_get("base_path")?,
        repository_id: row.try_get::<Option<Id>, _>("repository_id")?.map(|i| i.0),
        repository_version: version,
        publication_id: row.try_get::<Option<Id>, _>("publication_id")?.map(|i| i.0),
        publication_type: row.try_get("publication_type")?,
        hidden: row.try_get("hidden")?,
        pulp_labels: serde_json::from_value(labels)
            .map_err(|e| DbError::Corrupt(format!("distribution labels: {e}")))?,
        pulp_created: row.try_get::<Time, _>("pulp_created")?.0,
        pulp_last_updated: row.try_get::<Time, _>("pulp_last_updated")?.0,
    })
}

/// A served file selected with [`FILE_COLS`] or [`PUBLISHED_SELECT`] (where a metadata file
/// has no content artifact).
fn file_from(row: &DbRow) -> DbResult<ServedFile> {
    let artifact = match row.try_get::<Option<Id>, _>("a_id")? {
        Some(_) => Some(artifact_from(row, "a_")?),
        None => None,
    };
    Ok(ServedFile {
        relative_path: row.try_get("relative_path")?,
        content_artifact_id: row.try_get::<Option<Id>, _>("ca_id")?.map(|i| i.0),
        artifact,
        remote_size: shared::opt_to_u64(row.try_get("remote_size")?, "remote artifact size")?,
        remote_sha256: row.try_get("remote_sha256")?,
        pulp_created: row.try_get::<Time, _>("file_created")?.0,
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

/// Pushes the conditions of a publication list after ` WHERE p.complete`.
fn push_publication_where(qb: &mut QueryBuilder<Db>, f: &PublicationFilter) {
    qb.push(" WHERE p.complete");
    if let Some(t) = &f.pulp_type {
        qb.push(" AND p.pulp_type = ").push_bind(t.clone());
    }
    if let Some(v) = f.version_id {
        qb.push(" AND p.repository_version_id = ").push_bind(Id(v));
    }
    if let Some(r) = f.repository_id {
        qb.push(" AND v.repository_id = ").push_bind(Id(r));
    }
    if let Some(t) = f.created_gte {
        qb.push(" AND p.pulp_created >= ").push_bind(Time(t));
    }
    if let Some(t) = f.created_lte {
        qb.push(" AND p.pulp_created <= ").push_bind(Time(t));
    }
}

/// Pushes the conditions of a distribution list.
fn push_distribution_where(qb: &mut QueryBuilder<Db>, f: &DistributionFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(v) = &f.pulp_type {
        qb.push(" AND d.pulp_type = ").push_bind(v.clone());
    }
    if let Some(v) = &f.name {
        qb.push(" AND d.name = ").push_bind(v.clone());
    }
    if let Some(v) = &f.name_contains {
        qb.push(" AND ");
        push_contains(qb, "d.name", v);
    }
    if let Some(v) = &f.name_icontains {
        qb.push(" AND lower(d.name) LIKE lower(")
            .push_bind(format!("%{}%", like_escape(v)))
            .push(") ESCAPE '\\'");
    }
    if !f.name_in.is_empty() {
        qb.push(" AND d.name IN (");
        let mut list = qb.separated(", ");
        for v in &f.name_in {
            list.push_bind(v.clone());
        }
        qb.push(")");
    }
    if let Some(v) = &f.base_path {
        qb.push(" AND d.base_path = ").push_bind(v.clone());
    }
    if let Some(v) = &f.base_path_contains {
        qb.push(" AND ");
        push_contains(qb, "d.base_path", v);
    }
    if let Some(v) = &f.base_path_icontains {
        qb.push(" AND lower(d.base_path) LIKE lower(")
            .push_bind(format!("%{}%", like_escape(v)))
            .push(") ESCAPE '\\'");
    }
    if let Some(ids) = &f.repository_ids {
        if ids.is_empty() {
            qb.push(" AND 1 = 0");
        } else {
            qb.push(" AND d.repository_id IN (");
            let mut list = qb.separated(", ");
            for v in ids {
                list.push_bind(Id(*v));
            }
            qb.push(")");
        }
    }
}

/// A publication, read through `ex` (the write pool right after writing it).
async fn publication<'e>(
    ex: impl sqlx::Executor<'e, Database = Db>,
    id: Uuid,
) -> DbResult<Publication> {
    let sql = format!("SELECT {PUB_COLS} {PUB_FROM} WHERE p.id = $1");
    pub_from(&row_by_id(ex, sql, "publication", id).await?)
}

/// A distribution, read through `ex` (the write pool right after writing it).
async fn distribution<'e>(
    ex: impl sqlx::Executor<'e, Database = Db>,
    id: Uuid,
) -> DbResult<Distribution> {
    let sql = format!("SELECT {DIST_COLS} {DIST_FROM} WHERE d.id = $1");
    dist_from(&row_by_id(ex, sql, "distribution", id).await?)
}

#[async_trait]
impl DistributionStore for Backend {
    async fn create_publication(
        &self,
        pulp_type: &str,
        version_id: Uuid,
        pass_through: bool,
        plugin_data: &serde_json::Value,
    ) -> DbResult<Publication> {
        let id = Uuid::now_v7();
        let now = Time(shared::now());
        sqlx::query(
            "INSERT INTO publications (id, pulp_type, repository_version_id, complete, \
             pass_through, plugin_data, pulp_created, pulp_last_updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Id(id))
        .bind(pulp_type)
        .bind(Id(version_id))
        .bind(false)
        .bind(pass_through)
        .bind(Json(plugin_data.clone()))
        .bind(now)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(|e| {
            shared::map_write_err(
                e,
                || "publication".into(),
                || format!("repository version {version_id}"),
            )
        })?;
        publication(self.writer(), id).await
    }

    async fn add_published_files(
        &self,
        publication_id: Uuid,
        files: &[PublishedFile],
    ) -> DbResult<()> {
        if files.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        super::batch::insert_published_files(&mut tx, publication_id, files).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn complete_publication(&self, id: Uuid) -> DbResult<Publication> {
        sqlx::query("UPDATE publications SET complete = $1, pulp_last_updated = $2 WHERE id = $3")
            .bind(true)
            .bind(Time(shared::now()))
            .bind(Id(id))
            .execute(self.writer())
            .await?;
        publication(self.writer(), id).await
    }

    async fn delete_publication(&self, id: Uuid) -> DbResult<()> {
        let mut conn = self.writer().acquire().await?;
        delete_by_id(&mut conn, "publications", "publication", id).await
    }

    async fn incomplete_publications(&self) -> DbResult<Vec<(Uuid, Uuid)>> {
        let rows: Vec<(Id, Id)> = sqlx::query_as(
            "SELECT p.id, v.repository_id FROM publications p \
             JOIN repository_versions v ON v.id = p.repository_version_id \
             WHERE NOT p.complete ORDER BY p.pulp_created",
        )
        .fetch_all(self.reader())
        .await?;
        Ok(rows.into_iter().map(|(p, r)| (p.0, r.0)).collect())
    }

    async fn get_publication(&self, id: Uuid) -> DbResult<Publication> {
        publication(self.reader(), id).await
    }

    async fn list_publications(&self, f: &PublicationFilter) -> DbResult<(u64, Vec<Publication>)> {
        let mut count_q = QueryBuilder::<Db>::new(format!("SELECT count(*) {PUB_FROM}"));
        push_publication_where(&mut count_q, f);
        let mut list_q = QueryBuilder::<Db>::new(format!("SELECT {PUB_COLS} {PUB_FROM}"));
        push_publication_where(&mut list_q, f);
        list_q
            .push(super::order_by(
                &f.order,
                PUB_ORDER,
                "p.pulp_created DESC, p.id DESC",
            ))
            .push(" LIMIT ")
            .push_bind(shared::to_i64(f.limit, "limit")?)
            .push(" OFFSET ")
            .push_bind(shared::to_i64(f.offset, "offset")?);
        let n: i64 = count_q
            .build_query_scalar()
            .fetch_one(self.reader())
            .await?;
        let rows = list_q.build().fetch_all(self.reader()).await?;
        let list = rows.iter().map(pub_from).collect::<DbResult<Vec<_>>>()?;
        Ok((shared::to_u64(n, "count")?, list))
    }

    async fn publication_distributions(&self, ids: &[Uuid]) -> DbResult<Vec<(Uuid, Uuid)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT publication_id, id FROM distributions WHERE publication_id {} \
             ORDER BY base_path",
            in_list_param(1)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(ids_param(ids))
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<Id, _>("publication_id")?.0,
                    r.try_get::<Id, _>("id")?.0,
                ))
            })
            .collect()
    }

    async fn latest_publication(
        &self,
        repository_id: Option<Uuid>,
        version_id: Option<Uuid>,
    ) -> DbResult<Option<Publication>> {
        let sql = format!(
            "SELECT {PUB_COLS} {PUB_FROM} WHERE p.complete \
             AND (CAST($1 AS TEXT) IS NULL OR v.repository_id = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR v.id = $2) \
             ORDER BY v.number DESC, p.pulp_created DESC LIMIT 1"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(opt_id(repository_id))
            .bind(opt_id(version_id))
            .fetch_optional(self.lookups())
            .await?
            .map(|r| pub_from(&r))
            .transpose()
    }

    async fn create_distribution(&self, d: &DistributionFields) -> DbResult<Distribution> {
        let id = Uuid::now_v7();
        let now = Time(shared::now());
        sqlx::query(
            "INSERT INTO distributions (id, pulp_type, name, base_path, repository_id, \
             repository_version_id, publication_id, hidden, pulp_labels, pulp_created, \
             pulp_last_updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(Id(id))
        .bind(&d.pulp_type)
        .bind(&d.name)
        .bind(&d.base_path)
        .bind(opt_id(d.repository_id))
        .bind(opt_id(d.repository_version_id))
        .bind(opt_id(d.publication_id))
        .bind(d.hidden)
        .bind(Json(labels_to_json(&d.pulp_labels)))
        .bind(now)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(|e| dist_write_err(e, d))?;
        distribution(self.writer(), id).await
    }

    async fn update_distribution(
        &self,
        id: Uuid,
        d: &DistributionFields,
    ) -> DbResult<Distribution> {
        let done = sqlx::query(
            "UPDATE distributions SET name = $1, base_path = $2, repository_id = $3, \
             repository_version_id = $4, publication_id = $5, hidden = $6, pulp_labels = $7, \
             pulp_last_updated = $8 WHERE id = $9",
        )
        .bind(&d.name)
        .bind(&d.base_path)
        .bind(opt_id(d.repository_id))
        .bind(opt_id(d.repository_version_id))
        .bind(opt_id(d.publication_id))
        .bind(d.hidden)
        .bind(Json(labels_to_json(&d.pulp_labels)))
        .bind(Time(shared::now()))
        .bind(Id(id))
        .execute(self.writer())
        .await
        .map_err(|e| dist_write_err(e, d))?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("distribution {id}")));
        }
        distribution(self.writer(), id).await
    }

    async fn delete_distribution(&self, id: Uuid) -> DbResult<()> {
        let mut conn = self.writer().acquire().await?;
        delete_by_id(&mut conn, "distributions", "distribution", id).await
    }

    async fn get_distribution(&self, id: Uuid) -> DbResult<Distribution> {
        distribution(self.reader(), id).await
    }

    async fn get_distribution_by_name(&self, name: &str) -> DbResult<Option<Distribution>> {
        let sql = format!("SELECT {DIST_COLS} {DIST_FROM} WHERE d.name = $1");
        sqlx::query(AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(self.reader())
            .await?
            .map(|r| dist_from(&r))
            .transpose()
    }

    async fn list_distributions(
        &self,
        f: &DistributionFilter,
    ) -> DbResult<(u64, Vec<Distribution>)> {
        let mut count_q = QueryBuilder::<Db>::new(format!("SELECT count(*) {DIST_FROM}"));
        push_distribution_where(&mut count_q, f);
        let mut list_q = QueryBuilder::<Db>::new(format!("SELECT {DIST_COLS} {DIST_FROM}"));
        push_distribution_where(&mut list_q, f);
        list_q
            .push(super::order_by(&f.order, DIST_ORDER, "d.base_path"))
            .push(" LIMIT ")
            .push_bind(shared::to_i64(f.limit, "limit")?)
            .push(" OFFSET ")
            .push_bind(shared::to_i64(f.offset, "offset")?);
        let n: i64 = count_q
            .build_query_scalar()
            .fetch_one(self.reader())
            .await?;
        let rows = list_q.build().fetch_all(self.reader()).await?;
        let list = rows.iter().map(dist_from).collect::<DbResult<Vec<_>>>()?;
        Ok((shared::to_u64(n, "count")?, list))
    }

    async fn overlapping_distribution(
        &self,
        base_path: &str,
        prefixes: &[String],
        exclude: Option<Uuid>,
    ) -> DbResult<Option<Distribution>> {
        // No prefixes: the base path itself (the list is never empty).
        let equal = if prefixes.is_empty() {
            strs_param(&[base_path])
        } else {
            strs_param(prefixes)
        };
        let sql = format!(
            "SELECT {DIST_COLS} {DIST_FROM} WHERE (d.base_path {} \
             OR d.base_path LIKE $2 ESCAPE '\\') AND (CAST($3 AS TEXT) IS NULL OR d.id <> $3) \
             ORDER BY d.base_path LIMIT 1",
            in_list_param(1)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(equal)
            .bind(format!("{}/%", like_escape(base_path)))
            .bind(opt_id(exclude))
            .fetch_optional(self.reader())
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
            "SELECT {DIST_COLS} {DIST_FROM} WHERE d.base_path {} \
             ORDER BY length(d.base_path) DESC LIMIT 1",
            in_list_param(1)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(strs_param(candidates))
            .fetch_optional(self.lookups())
            .await?
            .map(|r| dist_from(&r))
            .transpose()
    }

    async fn base_paths_under(&self, prefix: &str) -> DbResult<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT base_path FROM distributions WHERE NOT hidden AND base_path LIKE $1 \
             ESCAPE '\\' ORDER BY base_path",
        )
        .bind(format!("{}%", like_escape(prefix)))
        .fetch_all(self.reader())
        .await?;
        Ok(rows)
    }

    async fn version_file(
        &self,
        version_id: Uuid,
        relative_path: &str,
    ) -> DbResult<Option<ServedFile>> {
        // Path first: the few content artifacts at this path (path index), then their
        // membership; never a walk of the repository's content, whatever the planner's
        // statistics say (right after a large sync they say the repository is empty).
        let sql = format!(
            "WITH ca AS MATERIALIZED \
               (SELECT * FROM content_artifacts WHERE relative_path = $1) \
             SELECT {} {PATH_FIRST_FROM} ORDER BY ca.id LIMIT 1",
            *FILE_COLS
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(relative_path)
            .bind(Id(version_id))
            .fetch_optional(self.lookups())
            .await?
            .map(|r| file_from(&r))
            .transpose()
    }

    async fn version_units(
        &self,
        version_id: Uuid,
        pulp_type: &str,
        after: Option<Uuid>,
        limit: u64,
    ) -> DbResult<Vec<(Content, Vec<ServedFile>)>> {
        let sql = format!(
            "SELECT {CONTENT_COLS} FROM repository_versions v \
             JOIN repository_content rc ON rc.repository_id = v.repository_id \
             JOIN repository_versions va ON va.id = rc.version_added_id \
             LEFT JOIN repository_versions vr ON vr.id = rc.version_removed_id \
             JOIN content c ON c.id = rc.content_id \
             WHERE v.id = $1 AND va.number <= v.number \
             AND (vr.id IS NULL OR vr.number > v.number) \
             AND c.pulp_type = $2 AND rc.content_id > $3 \
             ORDER BY rc.content_id LIMIT $4"
        );
        // A range on the repository's memberships in id order (`repository_content_repo_idx`),
        // so a page reads about as many rows as it returns, not the whole repository: the nil
        // id is below every other.
        let units: Vec<Content> = sqlx::query(AssertSqlSafe(sql))
            .bind(Id(version_id))
            .bind(pulp_type)
            .bind(Id(after.unwrap_or(Uuid::nil())))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(content_from)
            .collect::<DbResult<_>>()?;
        if units.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT ca.content_id AS unit_id, {} FROM content_artifacts ca \
             JOIN content c ON c.id = ca.content_id \
             LEFT JOIN artifacts a ON a.id = ca.artifact_id WHERE ca.content_id IN (",
            *FILE_COLS
        ));
        let mut list = qb.separated(", ");
        for u in &units {
            list.push_bind(Id(u.id));
        }
        qb.push(") ORDER BY ca.relative_path");
        let mut files: std::collections::HashMap<Uuid, Vec<ServedFile>> = Default::default();
        for row in qb.build().fetch_all(self.reader()).await? {
            let unit: Uuid = row.try_get::<Id, _>("unit_id")?.0;
            files.entry(unit).or_default().push(file_from(&row)?);
        }
        Ok(units
            .into_iter()
            .map(|c| {
                let f = files.remove(&c.id).unwrap_or_default();
                (c, f)
            })
            .collect())
    }

    async fn version_files(
        &self,
        version_id: Uuid,
        prefix: &str,
        visit: &mut (dyn FnMut(ServedFile) + Send),
    ) -> DbResult<()> {
        let mut end = None;
        let sql = if prefix.is_empty() {
            format!(
                "SELECT {} {VERSION_FILES_FROM} ORDER BY ca.relative_path",
                *FILE_COLS
            )
        } else {
            // Path first, as `version_file`: the content artifacts under the prefix (a byte
            // range of the path index), then their membership. A missing directory costs nothing.
            let (range, e) = path_range("relative_path", prefix, 1, 3);
            end = e;
            format!(
                "WITH ca AS MATERIALIZED (SELECT * FROM content_artifacts WHERE {range}) \
                 SELECT {} {PATH_FIRST_FROM} ORDER BY ca.relative_path",
                *FILE_COLS
            )
        };
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if !prefix.is_empty() {
            q = q.bind(prefix);
        }
        q = q.bind(Id(version_id));
        if let Some(end) = end {
            q = q.bind(end);
        }
        let mut rows = q.fetch(self.lookups());
        while let Some(row) = rows.try_next().await? {
            visit(file_from(&row)?);
        }
        Ok(())
    }

    async fn published_file(
        &self,
        publication_id: Uuid,
        relative_path: &str,
    ) -> DbResult<Option<ServedFile>> {
        let sql = format!("{} AND pf.relative_path = $2", *PUBLISHED_SELECT);
        sqlx::query(AssertSqlSafe(sql))
            .bind(Id(publication_id))
            .bind(relative_path)
            .fetch_optional(self.lookups())
            .await?
            .map(|r| file_from(&r))
            .transpose()
    }

    async fn published_files(
        &self,
        publication_id: Uuid,
        prefix: &str,
        visit: &mut (dyn FnMut(ServedFile) + Send),
    ) -> DbResult<()> {
        let (range, end) = path_range("pf.relative_path", prefix, 2, 3);
        let sql = format!(
            "{} AND {range} ORDER BY pf.relative_path",
            *PUBLISHED_SELECT
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(Id(publication_id))
            .bind(prefix);
        if let Some(end) = end {
            q = q.bind(end);
        }
        let mut rows = q.fetch(self.lookups());
        while let Some(row) = rows.try_next().await? {
            visit(file_from(&row)?);
        }
        Ok(())
    }

    async fn link_artifact(&self, content_artifact_id: Uuid, artifact_id: Uuid) -> DbResult<()> {
        sqlx::query(
            "UPDATE content_artifacts SET artifact_id = $1 WHERE id = $2 AND artifact_id IS NULL",
        )
        .bind(Id(artifact_id))
        .bind(Id(content_artifact_id))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn linked_artifact(&self, content_artifact_id: Uuid) -> DbResult<Option<Artifact>> {
        let sql = format!(
            "SELECT {} FROM content_artifacts ca JOIN artifacts a ON a.id = ca.artifact_id \
             WHERE ca.id = $1",
            artifact_cols("a", "a_")
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(Id(content_artifact_id))
            .fetch_optional(self.writer())
            .await?
            .map(|r| artifact_from(&r, "a_"))
            .transpose()
    }

    async fn content_generation(&self) -> DbResult<i64> {
        let n: i64 = sqlx::query_scalar("SELECT generation FROM content_generation WHERE id = 1")
            .fetch_one(self.lookups())
            .await?;
        Ok(n)
    }

    async fn acquire_fetch_lease(
        &self,
        content_artifact_id: Uuid,
        holder: &str,
        ttl: std::time::Duration,
    ) -> DbResult<bool> {
        let now = shared::now();
        let until = lease_end(now, ttl)?;
        let row = sqlx::query(
            "INSERT INTO content_fetch_leases (content_artifact_id, holder, expires_at) \
             VALUES ($1, $2, $3) ON CONFLICT (content_artifact_id) DO UPDATE \
             SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE content_fetch_leases.expires_at < $4 RETURNING holder",
        )
        .bind(Id(content_artifact_id))
        .bind(holder)
        .bind(Time(until))
        .bind(Time(now))
        .fetch_optional(self.writer())
        .await?;
        Ok(row.is_some())
    }

    async fn renew_fetch_lease(
        &self,
        content_artifact_id: Uuid,
        holder: &str,
        ttl: std::time::Duration,
    ) -> DbResult<bool> {
        let until = lease_end(shared::now(), ttl)?;
        let done = sqlx::query(
            "UPDATE content_fetch_leases SET expires_at = $1 \
             WHERE content_artifact_id = $2 AND holder = $3",
        )
        .bind(Time(until))
        .bind(Id(content_artifact_id))
        .bind(holder)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_fetch_lease(&self, content_artifact_id: Uuid, holder: &str) -> DbResult<()> {
        sqlx::query(
            "DELETE FROM content_fetch_leases WHERE content_artifact_id = $1 AND holder = $2",
        )
        .bind(Id(content_artifact_id))
        .bind(holder)
        .execute(self.writer())
        .await?;
        Ok(())
    }
}

/// When a lease taken at `now` for `ttl` ends.
fn lease_end(
    now: chrono::DateTime<chrono::Utc>,
    ttl: std::time::Duration,
) -> DbResult<chrono::DateTime<chrono::Utc>> {
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|_| DbError::Corrupt(format!("lease ttl {ttl:?} out of range")))?;
    Ok(now + ttl)
}

//! The batched writes of the sync pipeline, written once: each reads its rows as the table `u`
//! that the backend's `with_rows` hook provides (`UNNEST` arrays on PostgreSQL, chunked
//! multi-row `VALUES` on SQLite). Batches arrive deduplicated and sorted by their unique key
//! (`shared`), so concurrent syncs lock rows in the same order. Upserts never touch a row that
//! does not change (on PostgreSQL an `ON CONFLICT DO UPDATE` locks every conflicting row).

use std::collections::HashMap;

use sqlx::Row;
use uuid::Uuid;

use super::super::{ids_param, in_list_param, with_rows};
use super::Conn;
use crate::db::shared::{self, CaRow};
use crate::db::types::{Column, Id, Json, Time};
use crate::db::DbResult;
use crate::models::{NewArtifact, NewRemoteArtifact, PublishedFile, UnsavedContent};

/// Inserts artifacts; an existing sha256 wins.
pub(crate) async fn insert_artifacts(conn: &mut Conn, rows: &[&NewArtifact]) -> DbResult<()> {
    let cols = [
        Column::new_ids(rows.len()),
        Column::Text(rows.iter().map(|a| a.sha256.as_str()).collect()),
        Column::Int(
            rows.iter()
                .map(|a| shared::to_i64(a.size, "artifact size"))
                .collect::<DbResult<_>>()?,
        ),
        Column::OptText(rows.iter().map(|a| a.other.sha224.as_deref()).collect()),
        Column::OptText(rows.iter().map(|a| a.other.sha384.as_deref()).collect()),
        Column::OptText(rows.iter().map(|a| a.other.sha512.as_deref()).collect()),
        Column::Text(rows.iter().map(|a| a.file.as_str()).collect()),
        Column::Time(vec![Time(shared::now()); rows.len()]),
    ];
    with_rows(
        conn,
        "id, sha256, size, sha224, sha384, sha512, file, t",
        &cols,
        "INSERT INTO artifacts (id, sha256, size, sha224, sha384, sha512, file, pulp_created, \
         timestamp_of_interest) SELECT id, sha256, size, sha224, sha384, sha512, file, t, t \
         FROM u WHERE true ON CONFLICT (sha256) DO NOTHING",
    )
    .await
    .map_err(|e| shared::conflict_or_sqlx(e, || "artifact".to_string()))?;
    Ok(())
}

/// Inserts content units; an existing (type, natural key) wins.
pub(crate) async fn insert_content(conn: &mut Conn, new: &[&UnsavedContent]) -> DbResult<()> {
    let cols = [
        Column::new_ids(new.len()),
        Column::Text(new.iter().map(|u| u.pulp_type.as_str()).collect()),
        Column::Text(new.iter().map(|u| u.natural_key.as_str()).collect()),
        Column::Text(new.iter().map(|u| u.repo_key.as_str()).collect()),
        Column::Json(new.iter().map(|u| Json(u.data.clone())).collect()),
        Column::Time(vec![Time(shared::now()); new.len()]),
    ];
    with_rows(
        conn,
        "id, pulp_type, natural_key, repo_key, data, t",
        &cols,
        "INSERT INTO content (id, pulp_type, natural_key, repo_key, data, pulp_created, \
         timestamp_of_interest) SELECT id, pulp_type, natural_key, repo_key, data, t, t \
         FROM u WHERE true ON CONFLICT (pulp_type, natural_key) DO NOTHING",
    )
    .await
    .map_err(|e| shared::conflict_or_sqlx(e, || "content".to_string()))?;
    Ok(())
}

/// Ensures content artifacts, then gives those that had no artifact the one now known (an
/// on_demand unit later synced immediate).
pub(crate) async fn write_content_artifacts(conn: &mut Conn, cas: &[CaRow<'_>]) -> DbResult<()> {
    let cols = [
        Column::new_ids(cas.len()),
        Column::Id(cas.iter().map(|c| Id(c.content_id)).collect()),
        Column::OptId(cas.iter().map(|c| c.artifact_id.map(Id)).collect()),
        Column::Text(cas.iter().map(|c| c.relative_path).collect()),
    ];
    with_rows(
        conn,
        "id, content_id, artifact_id, relative_path",
        &cols,
        "INSERT INTO content_artifacts (id, content_id, artifact_id, relative_path) \
         SELECT id, content_id, artifact_id, relative_path FROM u WHERE true \
         ON CONFLICT (content_id, relative_path) DO NOTHING",
    )
    .await
    .map_err(shared::content_artifact_write_err)?;
    let known: Vec<&CaRow<'_>> = cas.iter().filter(|c| c.artifact_id.is_some()).collect();
    if known.is_empty() {
        return Ok(());
    }
    let cols = [
        Column::Id(known.iter().map(|c| Id(c.content_id)).collect()),
        Column::Text(known.iter().map(|c| c.relative_path).collect()),
        Column::OptId(known.iter().map(|c| c.artifact_id.map(Id)).collect()),
    ];
    with_rows(
        conn,
        "content_id, relative_path, artifact_id",
        &cols,
        "UPDATE content_artifacts SET artifact_id = u.artifact_id FROM u \
         WHERE content_artifacts.content_id = u.content_id \
         AND content_artifacts.relative_path = u.relative_path \
         AND content_artifacts.artifact_id IS NULL",
    )
    .await
    .map_err(shared::content_artifact_write_err)?;
    Ok(())
}

/// A remote artifact's values, as stored and as a sync found them.
type RaValues = (
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Writes the remote artifacts `(content artifact id, remote artifact)` that are new or whose
/// URL, size or digests changed; the others are only read. Returns how many were written.
pub(crate) async fn write_remote_artifacts(
    conn: &mut Conn,
    wanted: &[(Uuid, &NewRemoteArtifact)],
) -> DbResult<usize> {
    let cas = shared::dedupe_ids(&wanted.iter().map(|(ca, _)| *ca).collect::<Vec<_>>());
    let sql = format!(
        "SELECT content_artifact_id, remote_id, url, size, sha256, sha224, sha384, sha512 \
         FROM remote_artifacts WHERE content_artifact_id {}",
        in_list_param(1)
    );
    let mut stored: HashMap<(Id, Id), RaValues> = HashMap::new();
    for row in sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(ids_param(&cas))
        .fetch_all(&mut *conn)
        .await?
    {
        let key = (
            row.try_get("content_artifact_id")?,
            row.try_get("remote_id")?,
        );
        let values = (
            row.try_get("url")?,
            row.try_get("size")?,
            row.try_get("sha256")?,
            row.try_get("sha224")?,
            row.try_get("sha384")?,
            row.try_get("sha512")?,
        );
        stored.insert(key, values);
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
        if stored.get(&(Id(ca), Id(ra.remote_id))) != Some(&values) {
            write.push((ca, ra.remote_id, values));
        }
    }
    if write.is_empty() {
        return Ok(0);
    }
    let cols = [
        Column::new_ids(write.len()),
        Column::Id(write.iter().map(|w| Id(w.0)).collect()),
        Column::Id(write.iter().map(|w| Id(w.1)).collect()),
        Column::Text(write.iter().map(|w| w.2 .0.as_str()).collect()),
        Column::OptInt(write.iter().map(|w| w.2 .1).collect()),
        Column::OptText(write.iter().map(|w| w.2 .2.as_deref()).collect()),
        Column::OptText(write.iter().map(|w| w.2 .3.as_deref()).collect()),
        Column::OptText(write.iter().map(|w| w.2 .4.as_deref()).collect()),
        Column::OptText(write.iter().map(|w| w.2 .5.as_deref()).collect()),
    ];
    with_rows(
        conn,
        "id, content_artifact_id, remote_id, url, size, sha256, sha224, sha384, sha512",
        &cols,
        "INSERT INTO remote_artifacts (id, content_artifact_id, remote_id, url, size, sha256, \
         sha224, sha384, sha512) SELECT id, content_artifact_id, remote_id, url, size, sha256, \
         sha224, sha384, sha512 FROM u WHERE true \
         ON CONFLICT (content_artifact_id, remote_id) DO UPDATE SET url = excluded.url, \
         size = excluded.size, sha256 = excluded.sha256, sha224 = excluded.sha224, \
         sha384 = excluded.sha384, sha512 = excluded.sha512",
    )
    .await
    .map_err(shared::remote_artifact_write_err)?;
    Ok(write.len())
}

/// Inserts the published files of publication `publication_id` in one statement (chunked on
/// SQLite). A path twice in the batch is refused before anything is written; a path published
/// by an earlier batch is a unique violation.
pub(crate) async fn insert_published_files(
    conn: &mut Conn,
    publication_id: Uuid,
    files: &[PublishedFile],
) -> DbResult<()> {
    let mut seen = std::collections::HashSet::with_capacity(files.len());
    if let Some(f) = files
        .iter()
        .find(|f| !seen.insert(f.relative_path.as_str()))
    {
        return Err(crate::db::DbError::Conflict(format!(
            "{:?} is published twice",
            f.relative_path
        )));
    }
    let cols = [
        Column::new_ids(files.len()),
        Column::Id(vec![Id(publication_id); files.len()]),
        Column::Text(files.iter().map(|f| f.relative_path.as_str()).collect()),
        Column::OptId(files.iter().map(|f| f.artifact_id.map(Id)).collect()),
        Column::OptId(
            files
                .iter()
                .map(|f| f.content_artifact_id.map(Id))
                .collect(),
        ),
    ];
    with_rows(
        conn,
        "id, publication_id, relative_path, artifact_id, content_artifact_id",
        &cols,
        "INSERT INTO published_files (id, publication_id, relative_path, artifact_id, \
         content_artifact_id) SELECT id, publication_id, relative_path, artifact_id, \
         content_artifact_id FROM u WHERE true",
    )
    .await
    .map_err(|e| {
        shared::map_write_err(
            e,
            || "a path of this batch is already published".to_string(),
            || format!("publication {publication_id}, or an artifact it publishes"),
        )
    })?;
    Ok(())
}

/// Adds memberships of `ids` (sorted, distinct) to the incomplete version, reopening those it
/// removed. The caller holds the repository lock. Returns how many were added.
pub(crate) async fn associate(
    conn: &mut Conn,
    repository_id: Uuid,
    version_id: Uuid,
    ids: &[Uuid],
) -> DbResult<u64> {
    // A unit this version removed (mirror or replacement) and now adds again: reopen.
    let sql = format!(
        "UPDATE repository_content SET version_removed_id = NULL \
         WHERE repository_id = $1 AND version_removed_id = $2 AND content_id {}",
        in_list_param(3)
    );
    let reopened = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(Id(repository_id))
        .bind(Id(version_id))
        .bind(ids_param(ids))
        .execute(&mut *conn)
        .await?
        .rows_affected();
    // Units without an open row get one.
    let cols = [
        Column::new_ids(ids.len()),
        Column::Id(vec![Id(repository_id); ids.len()]),
        Column::Id(ids.iter().copied().map(Id).collect()),
        Column::Id(vec![Id(version_id); ids.len()]),
    ];
    let inserted = with_rows(
        conn,
        "id, repository_id, content_id, version_added_id",
        &cols,
        "INSERT INTO repository_content (id, repository_id, content_id, version_added_id) \
         SELECT id, repository_id, content_id, version_added_id FROM u WHERE true \
         ORDER BY content_id ON CONFLICT (repository_id, content_id) \
         WHERE version_removed_id IS NULL DO NOTHING",
    )
    .await
    .map_err(|e| {
        shared::map_write_err(
            e,
            || "repository content".to_string(),
            || "content to associate".to_string(),
        )
    })?;
    Ok(reopened + inserted)
}

/// Drops the open memberships of `drop` from the incomplete version: rows it added go, older
/// ones are closed by it. The caller holds the repository lock. Returns how many.
pub(crate) async fn unassociate(
    conn: &mut Conn,
    repository_id: Uuid,
    version_id: Uuid,
    drop: &[Uuid],
) -> DbResult<u64> {
    let mut removed = 0;
    for sql in [
        // Added by this very version: the row goes away.
        "DELETE FROM repository_content WHERE repository_id = $1 AND version_added_id = $2 \
         AND version_removed_id IS NULL AND content_id ",
        // Older: closed by this version.
        "UPDATE repository_content SET version_removed_id = $2 \
         WHERE repository_id = $1 AND version_removed_id IS NULL AND content_id ",
    ] {
        removed += sqlx::query(sqlx::AssertSqlSafe(format!("{sql}{}", in_list_param(3))))
            .bind(Id(repository_id))
            .bind(Id(version_id))
            .bind(ids_param(drop))
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(removed)
}

//! Backend-independent helpers of the database layer: batch preparation (dedupe and sort by
//! the unique key, so concurrent writers lock rows in the same order), error mapping, embedded
//! migrations and value conversions. No SQL is sent from here.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::SqlSafeStr;
use uuid::Uuid;

use super::{DbError, DbResult};
use crate::models::{
    ContentToSave, NewArtifact, NewRemoteArtifact, ProgressReport, TaskState, UnsavedContent,
};

/// Builds a migrator from the embedded SQL files, in order: `(version, description, sql)`,
/// exactly as `sqlx::migrate!` would for `<version>_<description>.sql` (same version,
/// description and checksum), without needing the sqlx `macros` feature.
pub(crate) fn migrator(migrations: &[(i64, &'static str, &'static str)]) -> Migrator {
    let mut out = Vec::with_capacity(migrations.len());
    for &(version, description, sql) in migrations {
        out.push(Migration::new(
            version,
            Cow::Borrowed(description),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        ));
    }
    Migrator::with_migrations(out)
}

/// The embedded migrations of `migrations/<dir>/`, as [`migrator`] takes them: each
/// `<version> <description>` names the file `<version>_<description>.sql`, the version written
/// with the file's four digits.
macro_rules! migrations {
    ($dir:literal: $($version:literal $description:ident),* $(,)?) => {
        &[$((
            $version,
            stringify!($description),
            include_str!(concat!(
                "../../migrations/", $dir, "/", stringify!($version), "_",
                stringify!($description), ".sql"
            )),
        )),*]
    };
}
pub(crate) use migrations;

/// The least string above every string that starts with `prefix` (UTF-8 byte order is code point
/// order): the prefix with its last character raised by one, dropping trailing characters that
/// cannot be raised. `None` for an empty prefix, or one of only `char::MAX`.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(c) = chars.pop() {
        if let Some(next) = (u32::from(c) + 1..=u32::from(char::MAX)).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn labels_to_json(labels: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::to_value(labels).unwrap_or_else(|_| serde_json::json!({}))
}

pub(crate) fn labels_from_json(v: &serde_json::Value) -> DbResult<BTreeMap<String, String>> {
    serde_json::from_value(v.clone()).map_err(|e| DbError::Corrupt(format!("pulp_labels: {e}")))
}

/// Maps a unique violation to [`DbError::Conflict`], anything else to [`DbError::Sqlx`].
pub(crate) fn conflict_or_sqlx(e: sqlx::Error, what: impl FnOnce() -> String) -> DbError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return DbError::Conflict(what());
        }
    }
    DbError::Sqlx(e)
}

/// Maps a foreign key violation to [`DbError::NotFound`], a unique violation to
/// [`DbError::Conflict`], anything else to [`DbError::Sqlx`].
pub(crate) fn map_write_err(
    e: sqlx::Error,
    conflict: impl FnOnce() -> String,
    missing: impl FnOnce() -> String,
) -> DbError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_foreign_key_violation() {
            return DbError::NotFound(missing());
        }
    }
    conflict_or_sqlx(e, conflict)
}

/// [`map_write_err`] for a batch of content artifacts.
pub(crate) fn content_artifact_write_err(e: sqlx::Error) -> DbError {
    map_write_err(
        e,
        || "content artifact".to_string(),
        || "content or artifact of a content artifact".to_string(),
    )
}

/// [`map_write_err`] for a batch of remote artifacts.
pub(crate) fn remote_artifact_write_err(e: sqlx::Error) -> DbError {
    map_write_err(
        e,
        || "remote artifact".to_string(),
        || "remote of a remote artifact".to_string(),
    )
}

/// Now, truncated to microseconds (what both backends store).
pub(crate) fn now() -> DateTime<Utc> {
    micros_to_time(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now)
}

pub(crate) fn micros_to_time(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

pub(crate) fn to_i64(v: u64, what: &str) -> DbResult<i64> {
    i64::try_from(v).map_err(|_| DbError::Corrupt(format!("{what} {v} out of range")))
}

pub(crate) fn to_u64(v: i64, what: &str) -> DbResult<u64> {
    u64::try_from(v).map_err(|_| DbError::Corrupt(format!("negative {what}: {v}")))
}

pub(crate) fn opt_to_i64(v: Option<u64>, what: &str) -> DbResult<Option<i64>> {
    v.map(|v| to_i64(v, what)).transpose()
}

pub(crate) fn opt_to_u64(v: Option<i64>, what: &str) -> DbResult<Option<u64>> {
    v.map(|v| to_u64(v, what)).transpose()
}

pub(crate) fn opt_to_u32(v: Option<i64>, what: &str) -> DbResult<Option<u32>> {
    v.map(|v| u32::try_from(v).map_err(|_| DbError::Corrupt(format!("{what} {v} out of range"))))
        .transpose()
}

/// A remote's headers as stored: a JSON list of `[name, value]` pairs.
pub(crate) fn headers_value(h: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Array(
        h.iter()
            .map(|(n, v)| {
                serde_json::Value::Array(vec![
                    serde_json::Value::String(n.clone()),
                    serde_json::Value::String(v.clone()),
                ])
            })
            .collect(),
    )
}

pub(crate) fn headers_from_json(v: &serde_json::Value) -> DbResult<Vec<(String, String)>> {
    serde_json::from_value(v.clone()).map_err(|e| DbError::Corrupt(format!("remote headers: {e}")))
}

/// A task's `error` value: `{"description": ...}`.
pub(crate) fn task_error(description: &str) -> serde_json::Value {
    serde_json::json!({ "description": description })
}

/// A JSON list of strings (a task's resources).
pub(crate) fn strings_from_json(v: serde_json::Value, what: &str) -> DbResult<Vec<String>> {
    serde_json::from_value(v).map_err(|e| DbError::Corrupt(format!("task {what}: {e}")))
}

pub(crate) fn strings_to_json(v: &[String]) -> serde_json::Value {
    serde_json::Value::from(v.to_vec())
}

pub(crate) fn progress_from_json(v: serde_json::Value) -> DbResult<Vec<ProgressReport>> {
    serde_json::from_value(v).map_err(|e| DbError::Corrupt(format!("task progress_reports: {e}")))
}

pub(crate) fn progress_to_json(reports: &[ProgressReport]) -> DbResult<serde_json::Value> {
    serde_json::to_value(reports).map_err(|e| DbError::Corrupt(format!("progress report: {e}")))
}

pub(crate) fn task_state(s: &str) -> DbResult<TaskState> {
    s.parse().map_err(DbError::Corrupt)
}

/// `finish_task` accepts only final states.
pub(crate) fn check_final(state: TaskState) -> DbResult<()> {
    if state.is_final() {
        Ok(())
    } else {
        Err(DbError::Conflict(format!(
            "a task cannot finish in the non-final state {state}"
        )))
    }
}

/// The moment before which a heartbeat is too old.
pub(crate) fn heartbeat_cutoff(ttl: std::time::Duration) -> DbResult<DateTime<Utc>> {
    let ttl = chrono::Duration::from_std(ttl)
        .map_err(|_| DbError::Corrupt(format!("worker ttl {ttl:?} out of range")))?;
    Ok(now() - ttl)
}

/// Distinct artifacts by sha256, sorted by sha256 (first occurrence wins).
pub(crate) fn dedupe_artifacts(artifacts: &[NewArtifact]) -> Vec<&NewArtifact> {
    let mut m: BTreeMap<&str, &NewArtifact> = BTreeMap::new();
    for a in artifacts {
        m.entry(a.sha256.as_str()).or_insert(a);
    }
    m.into_values().collect()
}

/// Distinct strings, sorted.
pub(crate) fn dedupe_strings(v: &[String]) -> Vec<&str> {
    let mut out: Vec<&str> = v.iter().map(String::as_str).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Distinct ids, sorted.
pub(crate) fn dedupe_ids(v: &[Uuid]) -> Vec<Uuid> {
    let mut out = v.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

/// The units of a batch to insert: those without `existing_id`, distinct by
/// (pulp_type, natural_key), sorted by it (first occurrence wins).
pub(crate) fn new_units(batch: &[ContentToSave]) -> Vec<&UnsavedContent> {
    let mut m: BTreeMap<(&str, &str), &UnsavedContent> = BTreeMap::new();
    for u in batch.iter().filter(|u| u.existing_id.is_none()) {
        m.entry((u.content.pulp_type.as_str(), u.content.natural_key.as_str()))
            .or_insert(&u.content);
    }
    m.into_values().collect()
}

/// Content ids of a batch in input order, given the ids of the new units by natural key.
pub(crate) fn ids_in_input_order(
    batch: &[ContentToSave],
    by_key: &HashMap<(String, String), Uuid>,
) -> DbResult<Vec<Uuid>> {
    batch
        .iter()
        .map(|u| match u.existing_id {
            Some(id) => Ok(id),
            None => by_key
                .get(&(u.content.pulp_type.clone(), u.content.natural_key.clone()))
                .copied()
                .ok_or_else(|| {
                    DbError::NotFound(format!(
                        "content {} {:?} (deleted while being saved)",
                        u.content.pulp_type, u.content.natural_key
                    ))
                }),
        })
        .collect()
}

/// One content artifact to ensure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CaRow<'a> {
    pub content_id: Uuid,
    pub relative_path: &'a str,
    pub artifact_id: Option<Uuid>,
}

/// Content artifacts of a batch, distinct by (content_id, relative_path) and sorted by it; a
/// known artifact wins over an unknown one.
pub(crate) fn content_artifact_rows<'a>(
    batch: &'a [ContentToSave],
    ids: &[Uuid],
) -> Vec<CaRow<'a>> {
    let mut m: BTreeMap<(Uuid, &str), Option<Uuid>> = BTreeMap::new();
    for (unit, id) in batch.iter().zip(ids) {
        for (path, art) in &unit.artifacts {
            let e = m.entry((*id, path.as_str())).or_insert(*art);
            if e.is_none() {
                *e = *art;
            }
        }
    }
    m.into_iter()
        .map(|((content_id, relative_path), artifact_id)| CaRow {
            content_id,
            relative_path,
            artifact_id,
        })
        .collect()
}

/// Remote artifacts resolved to their content artifact, distinct by
/// (content_artifact_id, remote_id) and sorted by it (last occurrence wins).
pub(crate) fn remote_artifact_rows<'a>(
    batch: &'a [NewRemoteArtifact],
    ca_ids: &HashMap<(Uuid, String), Uuid>,
) -> DbResult<Vec<(Uuid, &'a NewRemoteArtifact)>> {
    let mut m: BTreeMap<(Uuid, Uuid), &NewRemoteArtifact> = BTreeMap::new();
    for ra in batch {
        let ca = ca_ids
            .get(&(ra.content_id, ra.relative_path.clone()))
            .copied()
            .ok_or_else(|| {
                DbError::NotFound(format!(
                    "content artifact {:?} of content {}",
                    ra.relative_path, ra.content_id
                ))
            })?;
        m.insert((ca, ra.remote_id), ra);
    }
    Ok(m.into_iter().map(|((ca, _), ra)| (ca, ra)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_bound_exactly_the_strings_with_the_prefix() {
        assert_eq!(prefix_end("d1/").as_deref(), Some("d10"));
        assert_eq!(
            prefix_end("a\u{D7FF}").as_deref(),
            Some("a\u{E000}"),
            "past surrogates"
        );
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        let end = prefix_end("pool/é/").unwrap();
        for inside in ["pool/é/", "pool/é/x", "pool/é/\u{10FFFF}\u{10FFFF}"] {
            assert!(inside >= "pool/é/" && inside < end.as_str(), "{inside}");
        }
        for outside in ["pool/é0", "pool/éa", "pool/é", "pool/f/"] {
            assert!(
                !(outside >= "pool/é/" && outside < end.as_str()),
                "{outside}"
            );
        }
    }

    fn unit(t: &str, k: &str) -> UnsavedContent {
        UnsavedContent {
            pulp_type: t.into(),
            natural_key: k.into(),
            repo_key: k.into(),
            data: serde_json::Value::Null,
        }
    }

    fn save(t: &str, k: &str, existing: Option<Uuid>) -> ContentToSave {
        ContentToSave {
            existing_id: existing,
            content: unit(t, k),
            artifacts: vec![(k.into(), None)],
        }
    }

    #[test]
    fn new_units_are_distinct_and_sorted() {
        let batch = vec![
            save("b", "2", None),
            save("a", "9", None),
            save("b", "1", None),
            save("b", "2", None),
            save("a", "0", Some(Uuid::nil())),
        ];
        let keys: Vec<(&str, &str)> = new_units(&batch)
            .iter()
            .map(|u| (u.pulp_type.as_str(), u.natural_key.as_str()))
            .collect();
        assert_eq!(keys, vec![("a", "9"), ("b", "1"), ("b", "2")]);
    }

    #[test]
    fn ids_follow_input_order() {
        let existing = Uuid::now_v7();
        let (x, y) = (Uuid::now_v7(), Uuid::now_v7());
        let batch = vec![
            save("t", "x", None),
            save("t", "e", Some(existing)),
            save("t", "y", None),
            save("t", "x", None),
        ];
        let by_key: HashMap<(String, String), Uuid> = [
            (("t".to_string(), "x".to_string()), x),
            (("t".to_string(), "y".to_string()), y),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            ids_in_input_order(&batch, &by_key).unwrap(),
            vec![x, existing, y, x]
        );
        assert!(matches!(
            ids_in_input_order(&[save("t", "z", None)], &by_key),
            Err(DbError::NotFound(_))
        ));
    }

    #[test]
    fn content_artifact_rows_prefer_known_artifacts() {
        let art = Uuid::now_v7();
        let mut a = save("t", "p", None);
        a.artifacts = vec![("p".into(), None), ("q".into(), None)];
        let mut b = save("t", "p", None);
        b.artifacts = vec![("p".into(), Some(art))];
        let id = Uuid::now_v7();
        let batch = vec![a, b];
        let rows = content_artifact_rows(&batch, &[id, id]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].relative_path, "p");
        assert_eq!(rows[0].artifact_id, Some(art));
        assert_eq!(rows[1].relative_path, "q");
        assert_eq!(rows[1].artifact_id, None);
    }

    #[test]
    fn headers_round_trip() {
        let h = vec![
            ("A".to_string(), "1".to_string()),
            ("A".to_string(), "2".to_string()),
        ];
        let v = headers_value(&h);
        assert_eq!(headers_from_json(&v).unwrap(), h);
    }
}

//! What several API modules share: pulpcore's timestamp format, collection paths, path ids,
//! the plugin of a route, the name and label filters of named models, in-memory pagination,
//! the 202 answer of a dispatched task, and capitalized tags.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::list::Query;
use super::{href, ApiError, ApiResult, AppState};
use crate::models::Task;
use crate::plugins::Plugin;
use crate::validation;

/// pulpcore's timestamp format.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The `remotes/<app>/<kind>/`-style collection path of `plugin`.
pub(crate) fn collection(root: &str, plugin: &dyn Plugin) -> String {
    let n = plugin.api_names();
    format!("{}{root}/{}/{}/", super::API_ROOT, n.app_label, n.kind)
}

/// An id from a path segment; anything else is the 404 it would be in pulpcore.
pub(crate) fn path_id(s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| ApiError::NotFound("No object found.".into()))
}

/// The plugin named `name` (always registered, since routes are made from the plugin list).
pub(crate) fn plugin(state: &AppState, name: &str) -> ApiResult<Arc<dyn Plugin>> {
    state
        .plugin(name)
        .cloned()
        .ok_or_else(|| ApiError::Internal(format!("plugin {name} not loaded")))
}

/// The fields remotes may be ordered by.
pub(crate) const REMOTE_ORDERING: &[&str] = &[
    "pk",
    "pulp_id",
    "name",
    "url",
    "policy",
    "pulp_created",
    "pulp_last_updated",
    "pulp_type",
    "download_concurrency",
    "max_retries",
    "tls_validation",
];

/// The fields repositories may be ordered by.
pub(crate) const REPOSITORY_ORDERING: &[&str] = &[
    "pk",
    "pulp_id",
    "name",
    "description",
    "pulp_created",
    "pulp_last_updated",
    "pulp_type",
    "retain_repo_versions",
];

/// The fields distributions may be ordered by.
pub(crate) const DISTRIBUTION_ORDERING: &[&str] = &[
    "pk",
    "pulp_id",
    "name",
    "base_path",
    "hidden",
    "pulp_created",
    "pulp_last_updated",
    "pulp_type",
];

/// The fields publications may be ordered by.
pub(crate) const PUBLICATION_ORDERING: &[&str] = &[
    "pk",
    "pulp_id",
    "pulp_created",
    "pulp_last_updated",
    "pulp_type",
    "complete",
    "pass_through",
];

/// The fields content may be ordered by.
pub(crate) const CONTENT_ORDERING: &[&str] = &[
    "pk",
    "pulp_id",
    "pulp_created",
    "pulp_type",
    "timestamp_of_interest",
];

/// The fields tasks may be ordered by.
pub(crate) const TASK_ORDERING: &[&str] = &[
    "pk",
    "pulp_id",
    "pulp_created",
    "pulp_last_updated",
    "name",
    "state",
    "logging_cid",
    "started_at",
    "finished_at",
];

/// The name filters of pulpcore's named models.
pub(crate) const NAME_FILTERS: &[&str] = &[
    "name",
    "name__contains",
    "name__icontains",
    "name__iexact",
    "name__in",
    "name__startswith",
    "name__istartswith",
    "pulp_label_select",
];

/// One term of `pulp_label_select`.
enum LabelTerm<'a> {
    Has(&'a str),
    Lacks(&'a str),
    Equals(&'a str, &'a str),
    Differs(&'a str, &'a str),
    Contains(&'a str, &'a str),
}

/// Parses a `pulp_label_select` term: `key`, `!key`, `key=value`, `key!=value` or
/// `key~value`, the key made of word characters and spaces (pulpcore's `LabelFilter`).
fn label_term(term: &str) -> Option<LabelTerm<'_>> {
    let (negated, rest) = match term.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, term),
    };
    let end = rest.find(['=', '!', '~']).unwrap_or(rest.len());
    let key = rest[..end].trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == ' ')
    {
        return None;
    }
    let op = &rest[end..];
    if negated {
        return op.is_empty().then_some(LabelTerm::Lacks(key));
    }
    if op.is_empty() {
        Some(LabelTerm::Has(key))
    } else if let Some(v) = op.strip_prefix("!=") {
        Some(LabelTerm::Differs(key, v.trim()))
    } else if let Some(v) = op.strip_prefix('=') {
        Some(LabelTerm::Equals(key, v.trim()))
    } else {
        op.strip_prefix('~')
            .map(|v| LabelTerm::Contains(key, v.trim()))
    }
}

/// The terms of `pulp_label_select`.
fn label_terms(sel: &str) -> impl Iterator<Item = &str> {
    sel.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Checks the values of the name and label filters: a `pulp_label_select` term that is not
/// one [`label_term`] reads is a 400 rather than a filter that matches nothing.
pub(crate) fn check_name_filters(q: &Query) -> ApiResult<()> {
    if let Some(sel) = q.value("pulp_label_select") {
        for term in label_terms(sel) {
            if label_term(term).is_none() {
                return Err(ApiError::field(
                    "pulp_label_select",
                    format!("Invalid search term: '{term}'."),
                ));
            }
        }
    }
    Ok(())
}

/// The `pulp_type` filter of the generic lists: one of the compiled-in plugins' types, else a
/// 400; absent or empty is `None`.
pub(crate) fn pulp_type_filter<'a>(state: &AppState, q: &'a Query) -> ApiResult<Option<&'a str>> {
    match q.value("pulp_type") {
        None => Ok(None),
        Some(t) if validation::plugin_for(&state.plugins, t).is_some() => Ok(Some(t)),
        Some(t) => Err(ApiError::field(
            "pulp_type",
            format!("Select a valid choice. {t} is not one of the available choices."),
        )),
    }
}

/// Whether `name` and `labels` pass the name and label filters of `q`.
pub(crate) fn name_matches(
    q: &Query,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    if q.value("name").is_some_and(|v| v != name) {
        return false;
    }
    if q.value("name__iexact")
        .is_some_and(|v| !v.eq_ignore_ascii_case(name))
    {
        return false;
    }
    if q.value("name__contains").is_some_and(|v| !name.contains(v)) {
        return false;
    }
    let lower = name.to_lowercase();
    if q.value("name__icontains")
        .is_some_and(|v| !lower.contains(&v.to_lowercase()))
    {
        return false;
    }
    if q.value("name__startswith")
        .is_some_and(|v| !name.starts_with(v))
    {
        return false;
    }
    if q.value("name__istartswith")
        .is_some_and(|v| !lower.starts_with(&v.to_lowercase()))
    {
        return false;
    }
    let names = q.list("name__in");
    if !names.is_empty() && !names.iter().any(|n| n == name) {
        return false;
    }
    if let Some(sel) = q.value("pulp_label_select") {
        for term in label_terms(sel) {
            let ok = match label_term(term) {
                Some(LabelTerm::Has(k)) => labels.contains_key(k),
                Some(LabelTerm::Lacks(k)) => !labels.contains_key(k),
                Some(LabelTerm::Equals(k, v)) => labels.get(k).is_some_and(|x| x == v),
                Some(LabelTerm::Differs(k, v)) => labels.get(k).is_some_and(|x| x != v),
                Some(LabelTerm::Contains(k, v)) => labels.get(k).is_some_and(|x| x.contains(v)),
                // Refused by `check_name_filters` before any item is matched.
                None => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}

/// One page of `items` as pulpcore lists it, ordered by `ordering` (fields of `allowed`) when
/// the request gives one.
pub(crate) fn page_of(
    q: &Query,
    mut items: Vec<Value>,
    allowed: &[&'static str],
) -> ApiResult<Json<Value>> {
    let (limit, offset) = q.page()?;
    super::list::sort_json(&mut items, &q.ordering(allowed)?);
    let count = items.len() as u64;
    let page: Vec<Value> = items
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    Ok(Json(q.paginate(count, page)?))
}

/// The 202 answer for a dispatched task.
pub(crate) fn accepted(task: &Task) -> (StatusCode, Json<Value>) {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "task": href::task(task.id) })),
    )
}

/// Capitalized app label, for tags (`Remotes: File`).
pub(crate) fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The version an href names, for filter `field`: (repository id, number, version id).
pub(crate) async fn version_of(
    state: &AppState,
    plugin: &dyn Plugin,
    field: &str,
    h: &str,
) -> ApiResult<(Uuid, i64, Uuid)> {
    let names = plugin.api_names();
    let bad = || ApiError::field(field, "Invalid hyperlink - Object does not exist.");
    let (coll, repo, number) = href::parse_version(h).ok_or_else(bad)?;
    if coll != ["repositories", names.app_label, names.kind] {
        return Err(bad());
    }
    let v = state
        .store
        .get_version(repo, number)
        .await?
        .ok_or_else(bad)?;
    Ok((repo, number, v.id))
}

/// The message of a filter naming an object that does not exist (or not of the right kind).
pub(crate) const NO_OBJECT: &str = "Invalid hyperlink - Object does not exist.";

/// The repository an href filter names, for filter `field`: a repository href (of `plugin`'s
/// repositories when given, of any compiled-in plugin's otherwise) naming a repository that
/// exists; anything else is a 400 on `field`, never a filter that silently matches nothing.
pub(crate) async fn repository_of(
    state: &AppState,
    plugin: Option<&dyn Plugin>,
    field: &str,
    h: &str,
) -> ApiResult<Uuid> {
    let bad = || ApiError::field(field, NO_OBJECT);
    let parsed = href::parse(h)
        .filter(|p| p.rest.is_empty() && p.collection.first() == Some(&"repositories"))
        .ok_or_else(bad)?;
    let repo = match state.store.get_repository(parsed.id).await {
        Ok(r) => r,
        Err(crate::db::DbError::NotFound(_)) => return Err(bad()),
        Err(e) => return Err(e.into()),
    };
    let owner = match plugin {
        Some(p) => (p.repository_type() == repo.pulp_type).then_some(p.api_names()),
        None => validation::plugin_for(&state.plugins, &repo.pulp_type).map(|p| p.api_names()),
    };
    match owner {
        Some(n) if parsed.collection == ["repositories", n.app_label, n.kind] => Ok(repo.id),
        _ => Err(bad()),
    }
}

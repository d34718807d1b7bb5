//! `distributions/<app>/<kind>/` (list, create, read, update, delete) and the generic
//! `distributions/` list.
//!
//! One model: `name` and `base_path` unique, at most one of `repository`,
//! `repository_version` and `publication`, no base path that is a path-component prefix of
//! another. As in pulpcore, create / update / delete answer 202 with a task (reserving
//! `/api/v3/distributions/` for writes that may change a base path, so the rules checked again
//! inside the task cannot race); the request is validated first, so bad input is a 400 at once.
//!
//! PATCH setting one of the three targets clears the other two unless the body sets them too
//! (setting two non-null is a 400), so a distribution can be moved from a repository to a
//! publication in one call.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::Json;
use serde_json::{json, Value};
use uuid::Uuid;

use super::body::{Fields, JsonObject};
use super::common::{self, accepted, title, ts};
use super::list::Query;
use super::openapi::{paginated, ASYNC_OPERATION};
use super::{href, ApiBuilder, ApiError, ApiResult, AppState, API_ROOT};
use crate::models::{Distribution, DistributionFields, DistributionFilter};
use crate::plugins::Plugin;
use crate::tasks::publish::{
    path_prefixes, DistributionCreateArgs, DistributionDeleteArgs, DistributionUpdateArgs,
};

/// The resource every distribution write reserves.
pub const DISTRIBUTIONS_RESOURCE: &str = "/api/v3/distributions/";

const FILTERS: &[&str] = &[
    "name",
    "name__contains",
    "name__icontains",
    "name__in",
    "base_path",
    "base_path__contains",
    "base_path__icontains",
    "repository",
    "repository__in",
    "ordering",
];

pub fn register(b: &mut ApiBuilder, plugins: &[Arc<dyn Plugin>]) {
    for plugin in plugins {
        let n = plugin.api_names();
        let name = plugin.name();
        let base = format!("{API_ROOT}distributions/{}/{}/", n.app_label, n.kind);
        let detail = format!("{base}{{id}}/");
        let href_param = format!("{}_{}_distribution_href", n.app_label, n.kind);
        let op = |verb: &str| format!("distributions_{}_{}_{verb}", n.app_label, n.kind);
        let tag = format!("Distributions: {}", title(n.kind));
        let schema = format!("{}.{}", n.app_label, plugin.model_names().distribution);
        let response = format!("{schema}Response");
        let patched = format!("Patched{schema}");
        let page = format!("Paginated{response}List");
        let detail_doc = format!("{{{href_param}}}");

        let doc = b.route(
            Method::GET,
            &base,
            &base,
            &op("list"),
            &tag,
            get(move |s: State<AppState>, q: Query| list(s, Some(name), q)),
        );
        doc.summary("List distributions");
        list_params(doc).response(200, Some(&page));
        b.route(
            Method::POST,
            &base,
            &base,
            &op("create"),
            &tag,
            post(move |s: State<AppState>, body: JsonObject| create(s, name, body)),
        )
        .summary("Create a distribution")
        .request(&schema)
        .response(202, Some(ASYNC_OPERATION));
        b.route(
            Method::GET,
            &detail,
            &detail_doc,
            &op("read"),
            &tag,
            get(move |s: State<AppState>, p: Path<Uuid>, q: Query| read(s, name, p, q)),
        )
        .summary("Inspect a distribution")
        .path_param(&href_param)
        .field_selection()
        .response(200, Some(&response));
        b.route(
            Method::PUT,
            &detail,
            &detail_doc,
            &op("update"),
            &tag,
            put(move |s: State<AppState>, p: Path<Uuid>, body: JsonObject| {
                update(s, name, p, body, false)
            }),
        )
        .summary("Update a distribution")
        .path_param(&href_param)
        .request(&schema)
        .response(202, Some(ASYNC_OPERATION));
        b.route(
            Method::PATCH,
            &detail,
            &detail_doc,
            &op("partial_update"),
            &tag,
            patch(move |s: State<AppState>, p: Path<Uuid>, body: JsonObject| {
                update(s, name, p, body, true)
            }),
        )
        .summary("Update a distribution")
        .path_param(&href_param)
        .request(&patched)
        .response(202, Some(ASYNC_OPERATION));
        b.route(
            Method::DELETE,
            &detail,
            &detail_doc,
            &op("delete"),
            &tag,
            delete(move |s: State<AppState>, p: Path<Uuid>| remove(s, name, p)),
        )
        .summary("Delete a distribution")
        .path_param(&href_param)
        .response(202, Some(ASYNC_OPERATION));

        let props = request_properties();
        b.schema(
            &schema,
            json!({"type": "object", "properties": props, "required": ["base_path", "name"]}),
        );
        b.schema(&patched, json!({"type": "object", "properties": props}));
        b.schema(&response, response_schema());
        b.schema(&page, paginated(&response));
    }
    let doc = b.route(
        Method::GET,
        &format!("{API_ROOT}distributions/"),
        &format!("{API_ROOT}distributions/"),
        "distributions_list",
        "Distributions",
        get(|s: State<AppState>, q: Query| list(s, None, q)),
    );
    doc.summary("List distributions");
    list_params(doc).response(200, Some("PaginatedDistributionResponseList"));
    b.schema("DistributionResponse", response_schema());
    b.schema(
        "PaginatedDistributionResponseList",
        paginated("DistributionResponse"),
    );
}

fn list_params(doc: &mut super::routes::OpDoc) -> &mut super::routes::OpDoc {
    doc.paging()
        .query("name", "string", "Filter results where name matches value")
        .query(
            "name__contains",
            "string",
            "Filter results where name contains value",
        )
        .query(
            "name__icontains",
            "string",
            "Filter results where name contains value (case-insensitive)",
        )
        .query(
            "name__in",
            "array",
            "Filter results where name is in a list of values",
        )
        .query(
            "base_path",
            "string",
            "Filter results where base_path matches value",
        )
        .query(
            "base_path__contains",
            "string",
            "Filter results where base_path contains value",
        )
        .query(
            "base_path__icontains",
            "string",
            "Filter results where base_path contains value (case-insensitive)",
        )
        .query(
            "ordering",
            "array",
            "Which field to use when ordering the results.",
        )
        .query(
            "repository",
            "string",
            "Filter results where repository matches value",
        )
        .query(
            "repository__in",
            "array",
            "Filter results where repository is in a list of values",
        )
        .field_selection()
}

fn request_properties() -> Value {
    json!({
        "base_path": {"type": "string", "minLength": 1,
            "description": "The base (relative) path component of the published url."},
        "content_guard": {"type": "string", "nullable": true, "format": "uri"},
        "hidden": {"type": "boolean", "default": false},
        "pulp_labels": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
        "name": {"type": "string", "minLength": 1},
        "repository": {"type": "string", "nullable": true, "format": "uri"},
        "repository_version": {"type": "string", "nullable": true, "format": "uri"},
        "publication": {"type": "string", "nullable": true, "format": "uri"},
        "checkpoint": {"type": "boolean"},
    })
}

fn response_schema() -> Value {
    let mut props = request_properties();
    let extra = json!({
        "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
        "prn": {"type": "string", "readOnly": true},
        "pulp_created": {"type": "string", "format": "date-time", "readOnly": true},
        "pulp_last_updated": {"type": "string", "format": "date-time", "readOnly": true},
        "base_url": {"type": "string", "readOnly": true},
        "content_guard_prn": {"type": "string", "nullable": true, "readOnly": true},
        "no_content_change_since": {"type": "string", "nullable": true, "readOnly": true},
    });
    if let (Some(p), Value::Object(e)) = (props.as_object_mut(), extra) {
        p.extend(e);
    }
    // No `required`: `fields` / `exclude_fields` can leave any property out.
    json!({"type": "object", "properties": props})
}

fn plugin_of_distribution(state: &AppState, pulp_type: &str) -> Option<Arc<dyn Plugin>> {
    state
        .plugins
        .iter()
        .find(|p| p.distribution_type() == pulp_type)
        .cloned()
}

/// The JSON of a distribution.
pub(crate) async fn to_json(state: &AppState, d: &Distribution) -> ApiResult<Value> {
    let plugin = plugin_of_distribution(state, &d.pulp_type)
        .ok_or_else(|| ApiError::Internal(format!("no plugin for {}", d.pulp_type)))?;
    let n = plugin.api_names();
    let repository = d.repository_id.map(|id| href::repository(&n, id));
    let version = d
        .repository_version
        .map(|v| href::version(&n, v.repository_id, v.number));
    let publication = d.publication_id.map(|id| {
        let pn = plugin.names_of_publication(d.publication_type.as_deref().unwrap_or_default());
        href::publication(&pn, id)
    });
    let pinned = d.publication_id.is_some() || d.repository_version.is_some();
    Ok(json!({
        "pulp_href": href::distribution(&n, d.id),
        "prn": href::prn(
            &format!(
                "{}.{}",
                n.app_label,
                plugin.model_names().distribution.to_lowercase()
            ),
            d.id
        ),
        "pulp_created": ts(d.pulp_created),
        "pulp_last_updated": ts(d.pulp_last_updated),
        "base_path": d.base_path,
        "base_url": format!(
            "{}{}{}/",
            state.content_origin.trim_end_matches('/'),
            state.content_path_prefix,
            d.base_path
        ),
        "content_guard": null,
        "content_guard_prn": null,
        "no_content_change_since": if pinned { Some(ts(d.pulp_last_updated)) } else { None },
        "hidden": d.hidden,
        "pulp_labels": d.pulp_labels,
        "name": d.name,
        "repository": repository,
        "repository_version": version,
        "publication": publication,
        "checkpoint": false,
    }))
}

/// Checks a base path: relative, `/`-separated non-empty segments, none `.` or `..` (also
/// percent-encoded), no backslash, NUL or control characters.
pub fn check_base_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("This field may not be blank.".into());
    }
    if p.starts_with('/') || p.ends_with('/') {
        return Err("Base path must not begin or end with a slash.".into());
    }
    if p.chars().any(|c| c == '\\' || c.is_control()) {
        return Err("Base path must not contain backslashes or control characters.".into());
    }
    if p.split('/').count() > crate::content::path::MAX_BASE_PATH_SEGMENTS {
        return Err(format!(
            "Base path must not have more than {} segments.",
            crate::content::path::MAX_BASE_PATH_SEGMENTS
        ));
    }
    for seg in p.split('/') {
        if seg.is_empty() {
            return Err("Base path must not contain empty segments ('//').".into());
        }
        let decoded = percent_encoding::percent_decode_str(seg).decode_utf8_lossy();
        if decoded == "." || decoded == ".." || decoded.contains(['/', '\\', '\0']) {
            return Err(format!("Base path segment {seg:?} is not allowed."));
        }
    }
    Ok(())
}

async fn list(
    State(state): State<AppState>,
    plugin: Option<&str>,
    q: Query,
) -> ApiResult<Response> {
    q.only(FILTERS)?;
    let (limit, offset) = q.page()?;
    let pulp_type = match plugin {
        Some(name) => Some(
            state
                .plugin(name)
                .ok_or_else(|| ApiError::NotFound("Not found.".into()))?
                .distribution_type()
                .to_string(),
        ),
        None => None,
    };
    // Repositories named by `repository` and `repository__in` (both given: both must hold);
    // each must exist.
    let owner = match plugin {
        Some(name) => state.plugin(name).cloned(),
        None => None,
    };
    let mut repository_ids: Option<Vec<Uuid>> = None;
    if let Some(h) = q.value("repository") {
        let id = common::repository_of(&state, owner.as_deref(), "repository", h).await?;
        repository_ids = Some(vec![id]);
    }
    let listed = q.list("repository__in");
    if !listed.is_empty() {
        let mut ids = Vec::with_capacity(listed.len());
        for h in &listed {
            ids.push(common::repository_of(&state, owner.as_deref(), "repository__in", h).await?);
        }
        repository_ids = Some(match repository_ids {
            Some(one) => one.into_iter().filter(|id| ids.contains(id)).collect(),
            None => ids,
        });
    }
    let f = DistributionFilter {
        pulp_type,
        name: q.value("name").map(str::to_string),
        name_contains: q.value("name__contains").map(str::to_string),
        name_icontains: q.value("name__icontains").map(str::to_string),
        name_in: q.list("name__in"),
        base_path: q.value("base_path").map(str::to_string),
        base_path_contains: q.value("base_path__contains").map(str::to_string),
        base_path_icontains: q.value("base_path__icontains").map(str::to_string),
        repository_ids,
        limit,
        offset,
        order: q.ordering(common::DISTRIBUTION_ORDERING)?,
    };
    let (count, rows) = state.store.list_distributions(&f).await?;
    let mut out = Vec::with_capacity(rows.len());
    for d in &rows {
        out.push(to_json(&state, d).await?);
    }
    Ok(Json(q.paginate(count, out)?).into_response())
}

async fn load(state: &AppState, plugin: &str, id: Uuid) -> ApiResult<Distribution> {
    let p = state
        .plugin(plugin)
        .ok_or_else(|| ApiError::NotFound("Not found.".into()))?;
    let d = state.store.get_distribution(id).await?;
    if d.pulp_type != p.distribution_type() {
        return Err(ApiError::NotFound("Not found.".into()));
    }
    Ok(d)
}

async fn read(
    State(state): State<AppState>,
    plugin: &str,
    Path(id): Path<Uuid>,
    q: Query,
) -> ApiResult<Response> {
    let d = load(&state, plugin, id).await?;
    Ok(Json(q.select(to_json(&state, &d).await?)).into_response())
}

/// Where a distribution points, as given in a body: `None` = not in the body.
struct Targets {
    repository: Option<Option<Uuid>>,
    repository_version: Option<Option<Uuid>>,
    publication: Option<Option<Uuid>>,
}

/// Takes `field` (an href or null) and resolves it with `resolve`; records errors in `f`.
async fn target<F, Fut>(f: &mut Fields, field: &str, resolve: F) -> Option<Option<Uuid>>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<Uuid, String>>,
{
    if !f.has(field) {
        return None;
    }
    if f.is_null(field) {
        f.value(field);
        return Some(None);
    }
    let h = f.string(field, false)?;
    match resolve(h).await {
        Ok(id) => Some(Some(id)),
        Err(msg) => {
            f.error(field, msg);
            None
        }
    }
}

const BAD_LINK: &str = "Invalid hyperlink - Object does not exist.";

async fn targets(state: &AppState, plugin: &dyn Plugin, f: &mut Fields) -> Targets {
    let n = &plugin.api_names();
    let repository = target(f, "repository", |h| async move {
        let p = href::parse(&h).ok_or_else(|| BAD_LINK.to_string())?;
        if p.collection != ["repositories", n.app_label, n.kind] || !p.rest.is_empty() {
            return Err(BAD_LINK.to_string());
        }
        state
            .store
            .get_repository(p.id)
            .await
            .map(|r| r.id)
            .map_err(|_| BAD_LINK.to_string())
    })
    .await;
    let repository_version = target(f, "repository_version", |h| async move {
        let (coll, repo, number) = href::parse_version(&h).ok_or_else(|| BAD_LINK.to_string())?;
        if coll != ["repositories", n.app_label, n.kind] {
            return Err(BAD_LINK.to_string());
        }
        match state.store.get_version(repo, number).await {
            Ok(Some(v)) => Ok(v.id),
            _ => Err(BAD_LINK.to_string()),
        }
    })
    .await;
    let publication = target(f, "publication", |h| async move {
        let p = href::parse(&h).ok_or_else(|| BAD_LINK.to_string())?;
        let pt = match p.collection.as_slice() {
            ["publications", app, kind] if *app == n.app_label && p.rest.is_empty() => {
                plugin.publication_type(kind)
            }
            _ => None,
        }
        .ok_or_else(|| BAD_LINK.to_string())?;
        match state.store.get_publication(p.id).await {
            Ok(p) if p.complete && p.pulp_type == pt.pulp_type() => Ok(p.id),
            _ => Err(BAD_LINK.to_string()),
        }
    })
    .await;
    Targets {
        repository,
        repository_version,
        publication,
    }
}

/// Reads a create (`current` None) or update body onto `current`'s fields; validates it.
async fn read_body(
    state: &AppState,
    plugin: &Arc<dyn Plugin>,
    body: JsonObject,
    current: Option<&Distribution>,
    partial: bool,
) -> ApiResult<DistributionFields> {
    let mut f = Fields::new(body.0);
    let required = !partial;
    let mut d = current
        .map(Distribution::fields)
        .unwrap_or_else(|| DistributionFields {
            pulp_type: plugin.distribution_type().to_string(),
            ..DistributionFields::default()
        });
    if let Some(name) = f.name("name", required) {
        d.name = name;
    }
    if let Some(bp) = f.string("base_path", required) {
        match check_base_path(&bp) {
            Ok(()) => d.base_path = bp,
            Err(m) => f.error("base_path", m),
        }
    }
    if let Some(h) = f.boolean("hidden") {
        d.hidden = h;
    } else if !partial {
        d.hidden = false;
    }
    if let Some(l) = f.string_map("pulp_labels") {
        d.pulp_labels = l;
    } else if !partial {
        d.pulp_labels = Default::default();
    }
    if f.has("content_guard") && !f.is_null("content_guard") {
        f.value("content_guard");
        f.error("content_guard", "Content guards are not supported.");
    } else {
        f.value("content_guard");
    }
    if f.boolean("checkpoint") == Some(true) {
        f.error("checkpoint", "Checkpoint distributions are not supported.");
    }
    let t = targets(state, plugin.as_ref(), &mut f).await;
    let given = [&t.repository, &t.repository_version, &t.publication]
        .iter()
        .filter(|x| matches!(x, Some(Some(_))))
        .count();
    if given > 1 {
        f.error(
            "non_field_errors",
            "Only one of the attributes 'repository', 'repository_version' and 'publication' \
             may be used simultaneously.",
        );
    }
    f.finish()?;
    if given == 1 || !partial {
        d.repository_id = t.repository.flatten();
        d.repository_version_id = t.repository_version.flatten();
        d.publication_id = t.publication.flatten();
    } else {
        if let Some(v) = t.repository {
            d.repository_id = v;
        }
        if let Some(v) = t.repository_version {
            d.repository_version_id = v;
        }
        if let Some(v) = t.publication {
            d.publication_id = v;
        }
    }
    // Uniqueness and overlap, answered at once (the task checks again).
    let exclude = current.map(|c| c.id);
    if let Some(other) = state.store.get_distribution_by_name(&d.name).await? {
        if Some(other.id) != exclude {
            return Err(ApiError::field("name", "This field must be unique."));
        }
    }
    let prefixes = path_prefixes(&d.base_path);
    if let Some(other) = state
        .store
        .overlapping_distribution(&d.base_path, &prefixes, exclude)
        .await?
    {
        if other.base_path == d.base_path {
            return Err(ApiError::field("base_path", "This field must be unique."));
        }
        return Err(ApiError::field(
            "base_path",
            format!("Overlaps with existing distribution '{}'", other.name),
        ));
    }
    Ok(d)
}

async fn create(
    State(state): State<AppState>,
    plugin: &str,
    body: JsonObject,
) -> ApiResult<Response> {
    let p = state
        .plugin(plugin)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("Not found.".into()))?;
    let fields = read_body(&state, &p, body, None, false).await?;
    let task = state
        .tasking
        .dispatch_args(
            &DistributionCreateArgs { fields },
            &[DISTRIBUTIONS_RESOURCE],
            &[],
        )
        .await?;
    Ok(accepted(&task).into_response())
}

async fn update(
    State(state): State<AppState>,
    plugin: &str,
    Path(id): Path<Uuid>,
    body: JsonObject,
    partial: bool,
) -> ApiResult<Response> {
    let p = state
        .plugin(plugin)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("Not found.".into()))?;
    let current = load(&state, plugin, id).await?;
    let fields = read_body(&state, &p, body, Some(&current), partial).await?;
    let own = href::distribution(&p.api_names(), id);
    let task = state
        .tasking
        .dispatch_args(
            &DistributionUpdateArgs { id, fields },
            &[own.as_str(), DISTRIBUTIONS_RESOURCE],
            &[],
        )
        .await?;
    Ok(accepted(&task).into_response())
}

async fn remove(
    State(state): State<AppState>,
    plugin: &str,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let d = load(&state, plugin, id).await?;
    let n = plugin_of_distribution(&state, &d.pulp_type)
        .ok_or_else(|| ApiError::Internal(format!("no plugin for {}", d.pulp_type)))?
        .api_names();
    let own = href::distribution(&n, id);
    let task = state
        .tasking
        .dispatch_args(&DistributionDeleteArgs { id }, &[own.as_str()], &[])
        .await?;
    Ok(accepted(&task).into_response())
}

#[cfg(test)]
mod tests {
    use super::check_base_path;

    #[test]
    fn base_paths() {
        for ok in ["a", "a/b", "a-b_c.d/e", "x/.y", "x..y"] {
            assert!(check_base_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "..",
            ".",
            "a/%2e%2e/b",
            "a/%2E",
            "a\\b",
            "a\0b",
            "a\nb",
            "a/%2fb",
        ] {
            assert!(check_base_path(bad).is_err(), "{bad:?}");
        }
    }
}

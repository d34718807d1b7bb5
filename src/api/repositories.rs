//! `repositories/<app>/<kind>/` for every plugin: list, create, read, update, partial update,
//! delete, `sync/`, `modify/`, and `versions/` (list, read, delete); plus the generic
//! `repositories/` list.
//!
//! Everything that changes content or deletes is a task holding the repository's href
//! exclusively (a sync also holds its remote's href shared), so two syncs of one repository run
//! one after the other while syncs of different repositories run side by side.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post, put};
use axum::Json;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::body::{Fields, JsonObject};
use super::common::{
    self, accepted, check_name_filters, collection, name_matches, page_of, path_id, plugin,
    pulp_type_filter, title, ts, NAME_FILTERS,
};
use super::list::Query;
use super::openapi::{paginated, ASYNC_OPERATION};
use super::routes::{OpDoc, Param};
use super::{href, ApiBuilder, ApiError, ApiResult, AppState};
use crate::db::DbError;
use crate::models::ContentQuery;
use crate::models::{Repository, RepositoryVersion};
use crate::plugins::Plugin;
use crate::tasks::repository::{
    ModifyArgs, RepositoryDeleteArgs, RepositoryUpdateArgs, SyncArgs, VersionDeleteArgs,
};
use crate::validation;

// ---- representation ---------------------------------------------------------------------------

async fn repository_json(
    state: &AppState,
    plugin: &dyn Plugin,
    r: &Repository,
) -> ApiResult<Value> {
    let names = plugin.api_names();
    let model = plugin.model_names().repository.to_lowercase();
    let latest = state.store.latest_version(r.id).await?;
    let own = href::repository(&names, r.id);
    let mut v = json!({
        "pulp_href": own,
        "prn": href::prn(&format!("{}.{model}", names.app_label), r.id),
        "pulp_created": ts(r.pulp_created),
        "pulp_last_updated": ts(r.pulp_last_updated),
        "versions_href": format!("{own}versions/"),
        "pulp_labels": r.pulp_labels,
        "latest_version_href": href::version(&names, r.id, latest.number),
        "name": r.name,
        "description": r.description,
        "retain_repo_versions": r.retain_repo_versions,
        "remote": r.remote_id.map(|id| href::remote(&names, id)),
    });
    for f in plugin.repository_fields() {
        let value = r.plugin_data.get(f.name).cloned().unwrap_or(f.default);
        v[f.name] = value;
    }
    Ok(v)
}

async fn version_json(
    state: &AppState,
    plugin: &dyn Plugin,
    v: &RepositoryVersion,
) -> ApiResult<Value> {
    let names = plugin.api_names();
    let own = href::version(&names, v.repository_id, v.number);
    let types = plugin.content_types();
    // One content type: the version's own counts are its counts; several: one query.
    let by_type: Vec<(String, crate::models::VersionCounts)> = match types.as_slice() {
        [one] => vec![(one.pulp_type().to_string(), v.counts)],
        _ => state.store.version_type_counts(v).await?,
    };
    let mut added = Map::new();
    let mut removed = Map::new();
    let mut present = Map::new();
    for (pulp_type, counts) in by_type {
        let n = plugin.names_of_content(&pulp_type);
        let list = format!(
            "{}content/{}/{}/",
            super::API_ROOT,
            n.app_label,
            n.content_kind
        );
        for (part, count, filter) in [
            (&mut added, counts.added, "repository_version_added"),
            (&mut removed, counts.removed, "repository_version_removed"),
            (&mut present, counts.present, "repository_version"),
        ] {
            if count > 0 {
                part.insert(
                    pulp_type.clone(),
                    json!({"count": count, "href": format!("{list}?{filter}={own}")}),
                );
            }
        }
    }
    Ok(json!({
        "pulp_href": own,
        "prn": href::prn("core.repositoryversion", v.id),
        "pulp_created": ts(v.pulp_created),
        "pulp_last_updated": ts(v.pulp_created),
        "number": v.number,
        "repository": href::repository(&names, v.repository_id),
        "base_version": null,
        "content_summary": {
            "added": added,
            "removed": removed,
            "present": present,
        },
    }))
}

// ---- lookups ----------------------------------------------------------------------------------

/// The repository `id` of `plugin`'s type, or 404.
async fn find(state: &AppState, plugin: &dyn Plugin, id: &str) -> ApiResult<Repository> {
    let id = path_id(id)?;
    match state.store.get_repository(id).await {
        Ok(r) if r.pulp_type == plugin.repository_type() => Ok(r),
        Ok(_) | Err(DbError::NotFound(_)) => Err(ApiError::NotFound(
            "No Repository matches the given query.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Checks that the remote `id` exists and is `plugin`'s; a 400 on `field` otherwise.
async fn check_remote(
    state: &AppState,
    plugin: &dyn Plugin,
    id: Uuid,
    field: &str,
) -> ApiResult<()> {
    match state.store.get_remote(id).await {
        Ok(r) if r.pulp_type == plugin.remote_type() => Ok(()),
        Ok(_) | Err(DbError::NotFound(_)) => Err(ApiError::field(
            field,
            "Invalid hyperlink - Object does not exist.",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn check_unique(state: &AppState, name: &str, except: Option<Uuid>) -> ApiResult<()> {
    match state.store.get_repository_by_name(name).await? {
        Some(other) if Some(other.id) != except => {
            Err(ApiError::field("name", "This field must be unique."))
        }
        _ => Ok(()),
    }
}

// ---- repositories -----------------------------------------------------------------------------

const REPO_FILTERS: &[&str] = &["remote"];

async fn list(state: AppState, p: &'static str, q: Query) -> ApiResult<Json<Value>> {
    let mut known = NAME_FILTERS.to_vec();
    known.extend_from_slice(REPO_FILTERS);
    known.push("ordering");
    q.only(&known)?;
    check_name_filters(&q)?;
    let plugin = plugin(&state, p)?;
    // A remote href of this plugin naming a remote that exists; anything else is a 400, not a
    // filter that silently matches nothing.
    let remote_filter = match q.value("remote") {
        None => None,
        Some(h) => {
            let bad = || ApiError::field("remote", common::NO_OBJECT);
            let id = validation::parse_remote_href(plugin.as_ref(), h).ok_or_else(bad)?;
            match state.store.get_remote(id).await {
                Ok(r) if r.pulp_type == plugin.repository_type() => Some(id),
                Ok(_) | Err(DbError::NotFound(_)) => return Err(bad()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let mut items = Vec::new();
    for r in state.store.list_repositories().await? {
        if r.pulp_type != plugin.repository_type() || !name_matches(&q, &r.name, &r.pulp_labels) {
            continue;
        }
        if remote_filter.is_some_and(|f| r.remote_id != Some(f)) {
            continue;
        }
        items.push(repository_json(&state, plugin.as_ref(), &r).await?);
    }
    page_of(&q, items, common::REPOSITORY_ORDERING)
}

async fn list_all(State(state): State<AppState>, q: Query) -> ApiResult<Json<Value>> {
    let mut known = NAME_FILTERS.to_vec();
    known.extend(["pulp_type", "ordering"]);
    q.only(&known)?;
    check_name_filters(&q)?;
    let pulp_type = pulp_type_filter(&state, &q)?;
    let mut items = Vec::new();
    for r in state.store.list_repositories().await? {
        if pulp_type.is_some_and(|t| t != r.pulp_type) || !name_matches(&q, &r.name, &r.pulp_labels)
        {
            continue;
        }
        let Some(p) = validation::plugin_for(&state.plugins, &r.pulp_type) else {
            continue;
        };
        let mut v = repository_json(&state, p.as_ref(), &r).await?;
        v["pulp_type"] = json!(r.pulp_type);
        items.push(v);
    }
    page_of(&q, items, common::REPOSITORY_ORDERING)
}

async fn create(
    state: AppState,
    p: &'static str,
    body: JsonObject,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let plugin = plugin(&state, p)?;
    let now = chrono::Utc::now();
    let template = Repository {
        id: Uuid::nil(),
        pulp_type: plugin.repository_type().to_string(),
        name: String::new(),
        description: None,
        next_version: 1,
        remote_id: None,
        pulp_created: now,
        pulp_last_updated: now,
        pulp_labels: Default::default(),
        retain_repo_versions: None,
        plugin_data: json!({}),
    };
    let wanted = validation::apply_repository(plugin.as_ref(), &template, body.0, false)?;
    if let Some(remote) = wanted.remote_id {
        check_remote(&state, plugin.as_ref(), remote, "remote").await?;
    }
    check_unique(&state, &wanted.name, None).await?;
    let created = match state
        .store
        .create_repository(&wanted.pulp_type, &wanted.name, wanted.remote_id)
        .await
    {
        Ok(r) => r,
        Err(DbError::Conflict(_)) => {
            return Err(ApiError::field("name", "This field must be unique."))
        }
        Err(e) => return Err(e.into()),
    };
    let saved = state
        .store
        .update_repository(&Repository {
            id: created.id,
            ..wanted
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(repository_json(&state, plugin.as_ref(), &saved).await?),
    ))
}

async fn read(state: AppState, p: &'static str, id: String, q: Query) -> ApiResult<Json<Value>> {
    let plugin = plugin(&state, p)?;
    let r = find(&state, plugin.as_ref(), &id).await?;
    Ok(Json(q.select(
        repository_json(&state, plugin.as_ref(), &r).await?,
    )))
}

async fn update(
    state: AppState,
    p: &'static str,
    id: String,
    body: JsonObject,
    partial: bool,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let plugin = plugin(&state, p)?;
    let current = find(&state, plugin.as_ref(), &id).await?;
    let wanted = validation::apply_repository(plugin.as_ref(), &current, body.0.clone(), partial)?;
    if let Some(remote) = wanted.remote_id {
        if Some(remote) != current.remote_id {
            check_remote(&state, plugin.as_ref(), remote, "remote").await?;
        }
    }
    check_unique(&state, &wanted.name, Some(current.id)).await?;
    let own = href::repository(&plugin.api_names(), current.id);
    let task = state
        .tasking
        .dispatch_args(
            &RepositoryUpdateArgs {
                repository: current.id,
                patch: body.0,
                partial,
            },
            &[&own],
            &[],
        )
        .await?;
    Ok(accepted(&task))
}

async fn remove(
    state: AppState,
    p: &'static str,
    id: String,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let plugin = plugin(&state, p)?;
    let current = find(&state, plugin.as_ref(), &id).await?;
    let own = href::repository(&plugin.api_names(), current.id);
    let task = state
        .tasking
        .dispatch_args(
            &RepositoryDeleteArgs {
                repository: current.id,
            },
            &[&own],
            &[],
        )
        .await?;
    Ok(accepted(&task))
}

// ---- sync and modify --------------------------------------------------------------------------

async fn sync(
    state: AppState,
    p: &'static str,
    id: String,
    body: JsonObject,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let plugin = plugin(&state, p)?;
    let repo = find(&state, plugin.as_ref(), &id).await?;
    let mut f = Fields::new(body.0);
    let remote_href = f.string("remote", false);
    let mirror = f.boolean("mirror").unwrap_or(false);
    let sync_options = plugin.sync_options();
    let options =
        validation::apply_plugin_fields(&mut f, &sync_options, &serde_json::json!({}), false);
    if !sync_options.iter().any(|o| o.name == "optimize") {
        // Accepted and meaningless for plugins without it, as pulpcore's generic sync body.
        let _ = f.boolean("optimize");
    }
    let remote = match remote_href {
        Some(h) => match validation::parse_remote_href(plugin.as_ref(), &h) {
            Some(id) => Some(id),
            None => {
                f.error("remote", "Invalid hyperlink - Object does not exist.");
                None
            }
        },
        None => None,
    };
    f.finish()?;
    if mirror && plugin.autopublish(&repo.plugin_data).is_some() {
        return Err(ApiError::invalid(
            "Cannot use mirror mode with autopublished repository.",
        ));
    }
    let remote = match remote.or(repo.remote_id) {
        Some(r) => r,
        None => {
            return Err(ApiError::field(
                "remote",
                "This field is required since a remote is not set on the repository.",
            ))
        }
    };
    check_remote(&state, plugin.as_ref(), remote, "remote").await?;
    let names = plugin.api_names();
    let repo_href = href::repository(&names, repo.id);
    let remote_href = href::remote(&names, remote);
    let task = state
        .tasking
        .dispatch_args(
            &SyncArgs {
                repository: repo.id,
                remote,
                mirror,
                options,
            },
            &[&repo_href],
            &[&remote_href],
        )
        .await?;
    Ok(accepted(&task))
}

/// Content ids of `hrefs` (all of `plugin`'s content type), or a 400 on `field` naming those
/// that do not exist.
async fn content_ids(
    state: &AppState,
    plugin: &dyn Plugin,
    field: &str,
    hrefs: &[String],
) -> ApiResult<Vec<Uuid>> {
    let names = plugin.api_names();
    let kinds: Vec<&str> = plugin
        .content_types()
        .iter()
        .map(|ct| ct.content_kind())
        .collect();
    let mut ids = Vec::new();
    let mut bad = Vec::new();
    for h in hrefs {
        match href::parse(h) {
            Some(p)
                if p.rest.is_empty()
                    && matches!(p.collection.as_slice(),
                        ["content", app, kind] if *app == names.app_label && kinds.contains(kind)) =>
            {
                ids.push(p.id)
            }
            _ => bad.push(h.clone()),
        }
    }
    if bad.is_empty() && !ids.is_empty() {
        let distinct: HashSet<Uuid> = ids.iter().copied().collect();
        let (_, found) = state
            .store
            .list_content(&ContentQuery {
                ids: Some(distinct.iter().copied().collect()),
                limit: distinct.len() as u64,
                ..ContentQuery::default()
            })
            .await?;
        let found: HashSet<Uuid> = found
            .iter()
            .filter(|c| plugin.content_type(&c.pulp_type).is_some())
            .map(|c| c.id)
            .collect();
        for (h, id) in hrefs.iter().zip(&ids) {
            if !found.contains(id) {
                bad.push(h.clone());
            }
        }
    }
    if !bad.is_empty() {
        return Err(ApiError::field(
            field,
            format!("Could not find the following content units: {bad:?}"),
        ));
    }
    Ok(ids)
}

async fn modify(
    state: AppState,
    p: &'static str,
    id: String,
    body: JsonObject,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let plugin = plugin(&state, p)?;
    let repo = find(&state, plugin.as_ref(), &id).await?;
    let mut f = Fields::new(body.0);
    let add = f.string_list("add_content_units").unwrap_or_default();
    let remove = f.string_list("remove_content_units").unwrap_or_default();
    let base = f.string("base_version", false);
    let overwrite = f.boolean("overwrite").unwrap_or(true);
    f.finish()?;
    let remove_all = remove.iter().any(|h| h == "*");
    let add_ids = content_ids(&state, plugin.as_ref(), "add_content_units", &add).await?;
    let remove_ids = if remove_all {
        Vec::new()
    } else {
        content_ids(&state, plugin.as_ref(), "remove_content_units", &remove).await?
    };
    let base_number = match base {
        None => None,
        Some(h) => {
            let ok = href::parse_version(&h).filter(|(_, r, _)| *r == repo.id);
            let number = match ok {
                Some((_, _, n)) => state.store.get_version(repo.id, n).await?.map(|v| v.number),
                None => None,
            };
            match number {
                Some(n) => Some(n),
                None => {
                    return Err(ApiError::field(
                        "base_version",
                        "Invalid hyperlink - Object does not exist.",
                    ))
                }
            }
        }
    };
    let own = href::repository(&plugin.api_names(), repo.id);
    let task = state
        .tasking
        .dispatch_args(
            &ModifyArgs {
                repository: repo.id,
                add_content_units: add_ids,
                remove_content_units: remove_ids,
                remove_all,
                base_version: base_number,
                overwrite,
            },
            &[&own],
            &[],
        )
        .await?;
    Ok(accepted(&task))
}

// ---- versions ---------------------------------------------------------------------------------

const VERSION_FILTERS: &[&str] = &[
    "number",
    "number__gt",
    "number__gte",
    "number__lt",
    "number__lte",
    "content",
    "content__in",
    "pulp_created__gte",
    "pulp_created__lte",
];

async fn versions_list(
    state: AppState,
    p: &'static str,
    id: String,
    q: Query,
) -> ApiResult<Json<Value>> {
    let mut known = VERSION_FILTERS.to_vec();
    known.push("ordering");
    q.only(&known)?;
    let plugin = plugin(&state, p)?;
    let repo = find(&state, plugin.as_ref(), &id).await?;
    let mut versions = state.store.list_versions(repo.id).await?;
    let eq = q.integer("number")?;
    let gt = q.integer("number__gt")?;
    let gte = q.integer("number__gte")?;
    let lt = q.integer("number__lt")?;
    let lte = q.integer("number__lte")?;
    let created_gte = q.date_time("pulp_created__gte")?;
    let created_lte = q.date_time("pulp_created__lte")?;
    versions.retain(|v| {
        eq.is_none_or(|n| v.number == n)
            && gt.is_none_or(|n| v.number > n)
            && gte.is_none_or(|n| v.number >= n)
            && lt.is_none_or(|n| v.number < n)
            && lte.is_none_or(|n| v.number <= n)
            && created_gte.is_none_or(|t| v.pulp_created >= t)
            && created_lte.is_none_or(|t| v.pulp_created <= t)
    });
    let mut wanted: Vec<String> = q.list("content__in");
    if let Some(c) = q.value("content") {
        wanted.push(c.to_string());
    }
    if !wanted.is_empty() {
        let field = if q.value("content").is_some() {
            "content"
        } else {
            "content__in"
        };
        let ids = content_ids(&state, plugin.as_ref(), field, &wanted).await?;
        let mut keep = Vec::new();
        for v in versions {
            let (n, _) = state
                .store
                .list_content(&ContentQuery {
                    in_version: Some((repo.id, v.number)),
                    ids: Some(ids.clone()),
                    limit: 1,
                    ..ContentQuery::default()
                })
                .await?;
            if n > 0 {
                keep.push(v);
            }
        }
        versions = keep;
    }
    // Newest first unless `ordering` says otherwise.
    versions.reverse();
    let mut items = Vec::with_capacity(versions.len());
    for v in &versions {
        items.push(version_json(&state, plugin.as_ref(), v).await?);
    }
    page_of(&q, items, &["number", "pulp_created"])
}

async fn find_version(
    state: &AppState,
    plugin: &dyn Plugin,
    id: &str,
    number: &str,
) -> ApiResult<(Repository, RepositoryVersion)> {
    let repo = find(state, plugin, id).await?;
    let not_found = || ApiError::NotFound("No RepositoryVersion matches the given query.".into());
    let number: i64 = number.parse().map_err(|_| not_found())?;
    let v = state
        .store
        .get_version(repo.id, number)
        .await?
        .ok_or_else(not_found)?;
    Ok((repo, v))
}

async fn version_read(
    state: AppState,
    p: &'static str,
    id: String,
    number: String,
    q: Query,
) -> ApiResult<Json<Value>> {
    let plugin = plugin(&state, p)?;
    let (_, v) = find_version(&state, plugin.as_ref(), &id, &number).await?;
    Ok(Json(
        q.select(version_json(&state, plugin.as_ref(), &v).await?),
    ))
}

async fn version_delete(
    state: AppState,
    p: &'static str,
    id: String,
    number: String,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let plugin = plugin(&state, p)?;
    let (repo, v) = find_version(&state, plugin.as_ref(), &id, &number).await?;
    let own = href::repository(&plugin.api_names(), repo.id);
    let task = state
        .tasking
        .dispatch_args(
            &VersionDeleteArgs {
                repository: repo.id,
                number: v.number,
            },
            &[&own],
            &[],
        )
        .await?;
    Ok(accepted(&task))
}

// ---- registration -----------------------------------------------------------------------------

/// A `date-time` query parameter (pulp-glue passes datetime objects for these).
fn date_time_param<'a>(doc: &'a mut OpDoc, name: &str) -> &'a mut OpDoc {
    doc.params.push(Param {
        name: name.to_string(),
        location: "query",
        schema: json!({"type": "string", "format": "date-time"}),
        required: false,
        description: String::new(),
    });
    doc
}

fn repository_schema(plugin: Option<&dyn Plugin>, response: bool) -> Value {
    let mut props = json!({
        "name": {"type": "string", "minLength": 1, "description": "A unique name for this repository."},
        "description": {"type": "string", "nullable": true, "description": "An optional description."},
        "retain_repo_versions": {"type": "integer", "format": "int64", "minimum": 1, "nullable": true},
        "remote": {"type": "string", "format": "uri", "nullable": true, "description": "An optional remote to use by default when syncing."},
        "pulp_labels": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
    });
    let m = props.as_object_mut().expect("object");
    for f in plugin.map(|p| p.repository_fields()).unwrap_or_default() {
        m.insert(f.name.into(), f.schema);
    }
    if response {
        for (k, v) in [
            (
                "pulp_href",
                json!({"type": "string", "format": "uri", "readOnly": true}),
            ),
            ("prn", json!({"type": "string", "readOnly": true})),
            (
                "pulp_created",
                json!({"type": "string", "format": "date-time", "readOnly": true}),
            ),
            (
                "pulp_last_updated",
                json!({"type": "string", "format": "date-time", "readOnly": true}),
            ),
            (
                "versions_href",
                json!({"type": "string", "format": "uri", "readOnly": true}),
            ),
            (
                "latest_version_href",
                json!({"type": "string", "format": "uri", "readOnly": true}),
            ),
        ] {
            m.insert(k.into(), v);
        }
    }
    json!({"type": "object", "properties": props})
}

fn version_schema() -> Value {
    json!({"type": "object", "properties": {
        "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
        "prn": {"type": "string", "readOnly": true},
        "pulp_created": {"type": "string", "format": "date-time", "readOnly": true},
        "pulp_last_updated": {"type": "string", "format": "date-time", "readOnly": true},
        "number": {"type": "integer", "format": "int64", "readOnly": true},
        "repository": {"type": "string", "format": "uri", "readOnly": true},
        "base_version": {"type": "string", "format": "uri", "nullable": true},
        "content_summary": {"type": "object", "readOnly": true, "properties": {
            "added": {"type": "object", "additionalProperties": {"type": "object"}},
            "removed": {"type": "object", "additionalProperties": {"type": "object"}},
            "present": {"type": "object", "additionalProperties": {"type": "object"}}},
            "required": ["added", "present", "removed"]},
    }})
}

pub fn register(b: &mut ApiBuilder, plugins: &[Arc<dyn Plugin>]) {
    let all = format!("{}repositories/", super::API_ROOT);
    b.route(
        Method::GET,
        &all,
        &all,
        "repositories_list",
        "Repositories",
        get(list_all),
    )
    .summary("List repositories")
    .response(200, Some("PaginatedRepositoryResponseList"));
    // What `list_all` accepts: the name and label filters, `pulp_type`, paging and fields.
    let all_doc = &mut b.routes.last_mut().expect("just registered").doc;
    for f in NAME_FILTERS {
        all_doc.query(f, if *f == "name__in" { "array" } else { "string" }, "");
    }
    all_doc.query(
        "pulp_type",
        "string",
        "Filter results by the object's type (e.g. file.file)",
    );
    super::openapi::list_params(all_doc);
    b.schema("RepositoryResponse", repository_schema(None, true));
    b.schema(
        "PaginatedRepositoryResponseList",
        paginated("RepositoryResponse"),
    );
    b.schema("RepositoryVersionResponse", version_schema());
    b.schema(
        "PaginatedRepositoryVersionResponseList",
        paginated("RepositoryVersionResponse"),
    );
    b.schema(
        "RepositoryAddRemoveContent",
        json!({"type": "object", "properties": {
            "add_content_units": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "remove_content_units": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "base_version": {"type": "string", "format": "uri"},
        }}),
    );
    for plugin in plugins {
        let p = plugin.name();
        let n = plugin.api_names();
        let model = format!("{}.{}", n.app_label, plugin.model_names().repository);
        let response = format!("{model}Response");
        let sync_schema = format!("{}SyncURL", plugin.model_names().repository);
        let coll = collection("repositories", plugin.as_ref());
        let detail = format!("{coll}{{id}}/");
        let ref_param = format!("{}_{}_repository_href", n.app_label, n.kind);
        let vref_param = format!("{}_{}_repository_version_href", n.app_label, n.kind);
        let doc_detail = format!("{{{ref_param}}}");
        let doc_version = format!("{{{vref_param}}}");
        let op = |s: &str| format!("repositories_{}_{}_{s}", n.app_label, n.kind);
        let tag = format!("Repositories: {}", title(n.kind));
        let vtag = format!("Repositories: {} Versions", title(n.kind));
        let l = b
            .route(
                Method::GET,
                &coll,
                &coll,
                &op("list"),
                &tag,
                get(move |State(s): State<AppState>, q: Query| list(s, p, q)),
            )
            .summary("List repositories")
            .response(200, Some(&format!("Paginated{response}List")));
        for f in NAME_FILTERS.iter().chain(REPO_FILTERS) {
            l.query(f, if *f == "name__in" { "array" } else { "string" }, "");
        }
        l.query(
            "ordering",
            "array",
            "Which field to use when ordering the results.",
        )
        .paging()
        .field_selection();
        b.route(
            Method::POST,
            &coll,
            &coll,
            &op("create"),
            &tag,
            post(move |State(s): State<AppState>, body: JsonObject| create(s, p, body)),
        )
        .summary("Create a repository")
        .request(&model)
        .response(201, Some(&response));
        b.route(
            Method::GET,
            &detail,
            &doc_detail,
            &op("read"),
            &tag,
            get(
                move |State(s): State<AppState>, Path(id): Path<String>, q: Query| {
                    read(s, p, id, q)
                },
            ),
        )
        .summary("Inspect a repository")
        .path_param(&ref_param)
        .field_selection()
        .response(200, Some(&response));
        b.route(
            Method::PUT,
            &detail,
            &doc_detail,
            &op("update"),
            &tag,
            put(
                move |State(s): State<AppState>, Path(id): Path<String>, body: JsonObject| {
                    update(s, p, id, body, false)
                },
            ),
        )
        .summary("Update a repository")
        .path_param(&ref_param)
        .request(&model)
        .response(202, Some(ASYNC_OPERATION));
        b.route(
            Method::PATCH,
            &detail,
            &doc_detail,
            &op("partial_update"),
            &tag,
            patch(
                move |State(s): State<AppState>, Path(id): Path<String>, body: JsonObject| {
                    update(s, p, id, body, true)
                },
            ),
        )
        .summary("Update a repository")
        .path_param(&ref_param)
        .request(&format!("Patched{model}"))
        .response(202, Some(ASYNC_OPERATION));
        b.route(
            Method::DELETE,
            &detail,
            &doc_detail,
            &op("delete"),
            &tag,
            delete(move |State(s): State<AppState>, Path(id): Path<String>| remove(s, p, id)),
        )
        .summary("Delete a repository")
        .path_param(&ref_param)
        .response(202, Some(ASYNC_OPERATION));
        b.route(
            Method::POST,
            &format!("{detail}sync/"),
            &format!("{doc_detail}sync/"),
            &op("sync"),
            &tag,
            post(
                move |State(s): State<AppState>, Path(id): Path<String>, body: JsonObject| {
                    sync(s, p, id, body)
                },
            ),
        )
        .summary("Sync from a remote")
        .path_param(&ref_param)
        .request(&sync_schema)
        .response(202, Some(ASYNC_OPERATION));
        b.route(
            Method::POST,
            &format!("{detail}modify/"),
            &format!("{doc_detail}modify/"),
            &op("modify"),
            &tag,
            post(
                move |State(s): State<AppState>, Path(id): Path<String>, body: JsonObject| {
                    modify(s, p, id, body)
                },
            ),
        )
        .summary("Modify repository")
        .path_param(&ref_param)
        .request("RepositoryAddRemoveContent")
        .response(202, Some(ASYNC_OPERATION));
        let vl = b
            .route(
                Method::GET,
                &format!("{detail}versions/"),
                &format!("{doc_detail}versions/"),
                &op("versions_list"),
                &vtag,
                get(
                    move |State(s): State<AppState>, Path(id): Path<String>, q: Query| {
                        versions_list(s, p, id, q)
                    },
                ),
            )
            .summary("List repository versions")
            .path_param(&ref_param)
            .response(200, Some("PaginatedRepositoryVersionResponseList"));
        for f in VERSION_FILTERS {
            match *f {
                "content__in" => vl.query(f, "array", ""),
                f if f.starts_with("number") => vl.query(f, "integer", ""),
                f if f.starts_with("pulp_created") => date_time_param(vl, f),
                f => vl.query(f, "string", ""),
            };
        }
        vl.query(
            "ordering",
            "array",
            "Which field to use when ordering the results.",
        )
        .paging()
        .field_selection();
        let vdetail = format!("{detail}versions/{{number}}/");
        b.route(
            Method::GET,
            &vdetail,
            &doc_version,
            &op("versions_read"),
            &vtag,
            get(
                move |State(s): State<AppState>,
                      Path((id, number)): Path<(String, String)>,
                      q: Query| version_read(s, p, id, number, q),
            ),
        )
        .summary("Inspect a repository version")
        .path_param(&vref_param)
        .field_selection()
        .response(200, Some("RepositoryVersionResponse"));
        b.route(
            Method::DELETE,
            &vdetail,
            &doc_version,
            &op("versions_delete"),
            &vtag,
            delete(
                move |State(s): State<AppState>, Path((id, number)): Path<(String, String)>| {
                    version_delete(s, p, id, number)
                },
            ),
        )
        .summary("Delete a repository version")
        .path_param(&vref_param)
        .response(202, Some(ASYNC_OPERATION));
        let mut request = repository_schema(Some(plugin.as_ref()), false);
        b.schema(&format!("Patched{model}"), request.clone());
        request["required"] = json!(["name"]);
        b.schema(&model, request);
        b.schema(&response, repository_schema(Some(plugin.as_ref()), true));
        b.schema(&format!("Paginated{response}List"), paginated(&response));
        let mut sync_props = json!({
            "remote": {"type": "string", "format": "uri", "description": "A remote to sync from. This will override a remote set on repository."},
            "mirror": {"type": "boolean", "default": false},
            "optimize": {"type": "boolean", "default": true},
        });
        for option in plugin.sync_options() {
            sync_props[option.name] = option.schema;
        }
        b.schema(
            &sync_schema,
            json!({"type": "object", "properties": sync_props}),
        );
    }
}

//! `remotes/<app>/<kind>/` (list, create, read, update, partial update, delete) for every
//! plugin, and the generic `remotes/` list.
//!
//! Updates and deletes are tasks (pulpcore's `general_update` / `general_delete`) holding the
//! remote's href exclusively; the body is validated before dispatching, so a bad one is a 400.
//! Write-only fields (passwords, keys, usernames) are never returned: `hidden_fields` says which
//! are set.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post, put};
use axum::Json;
use serde_json::{json, Map, Value};

use super::body::JsonObject;
use super::common::{
    accepted, check_name_filters, collection, name_matches, page_of, path_id, plugin,
    pulp_type_filter, title, ts, NAME_FILTERS, REMOTE_ORDERING,
};
use super::list::Query;
use super::openapi::{paginated, schema_ref, ASYNC_OPERATION};
use super::{href, ApiBuilder, ApiError, ApiResult, AppState};
use crate::db::DbError;
use crate::models::{Policy, Remote};
use crate::plugins::Plugin;
use crate::tasks::repository::{RemoteDeleteArgs, RemoteUpdateArgs};
use crate::validation::{self, HIDDEN_FIELDS};

/// A `file://` URL must lie below the `allowed_import_paths` setting (pulpcore's
/// `ALLOWED_IMPORT_PATHS`); the sync checks again, since the setting or the files may change.
fn check_import_path(state: &AppState, url: &str) -> ApiResult<()> {
    state
        .download
        .import_paths
        .check_url(url)
        .map_err(|message| ApiError::field("url", message))
}

fn unique_name() -> ApiError {
    ApiError::field("name", "This field must be unique.")
}

// ---- representation ---------------------------------------------------------------------------

/// A remote as pulpcore answers it (secrets left out).
pub(super) fn remote_json(plugin: &dyn Plugin, r: &Remote) -> Value {
    let names = plugin.api_names();
    let model = plugin.model_names().remote.to_lowercase();
    let secret = |f: &str| match f {
        "client_key" => r.client_key.is_some(),
        "proxy_username" => r.proxy_username.is_some(),
        "proxy_password" => r.proxy_password.is_some(),
        "username" => r.username.is_some(),
        _ => r.password.is_some(),
    };
    let hidden: Vec<Value> = HIDDEN_FIELDS
        .iter()
        .map(|f| json!({"name": f, "is_set": secret(f)}))
        .collect();
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|(k, v)| {
            let mut m = Map::new();
            m.insert(k.clone(), Value::String(v.clone()));
            Value::Object(m)
        })
        .collect();
    let mut v = json!({
        "pulp_href": href::remote(&names, r.id),
        "prn": href::prn(&format!("{}.{model}", names.app_label), r.id),
        "pulp_created": ts(r.pulp_created),
        "pulp_last_updated": ts(r.pulp_last_updated),
        "name": r.name,
        "url": r.url,
        "pulp_labels": r.pulp_labels,
        "policy": r.policy.as_str(),
        "hidden_fields": hidden,
        "ca_cert": r.ca_cert,
        "client_cert": r.client_cert,
        "tls_validation": r.tls_validation,
        "proxy_url": r.proxy_url,
        "max_retries": r.max_retries,
        "total_timeout": r.total_timeout,
        "connect_timeout": r.connect_timeout,
        "sock_connect_timeout": r.sock_connect_timeout,
        "sock_read_timeout": r.sock_read_timeout,
        "headers": headers,
        "download_concurrency": r.download_concurrency,
        "rate_limit": r.rate_limit,
    });
    for field in plugin.remote_fields() {
        v[field.name] = r
            .plugin_data
            .get(field.name)
            .cloned()
            .unwrap_or(field.default);
    }
    v
}

// ---- handlers ---------------------------------------------------------------------------------

async fn list(state: AppState, p: &'static str, q: Query) -> ApiResult<Json<Value>> {
    let mut known = NAME_FILTERS.to_vec();
    known.push("ordering");
    q.only(&known)?;
    check_name_filters(&q)?;
    let plugin = plugin(&state, p)?;
    let remotes = state.store.list_remotes(Some(plugin.remote_type())).await?;
    let items = remotes
        .iter()
        .filter(|r| name_matches(&q, &r.name, &r.pulp_labels))
        .map(|r| remote_json(plugin.as_ref(), r))
        .collect();
    page_of(&q, items, REMOTE_ORDERING)
}

async fn list_all(State(state): State<AppState>, q: Query) -> ApiResult<Json<Value>> {
    let mut known = NAME_FILTERS.to_vec();
    known.extend(["pulp_type", "ordering"]);
    q.only(&known)?;
    check_name_filters(&q)?;
    let remotes = state
        .store
        .list_remotes(pulp_type_filter(&state, &q)?)
        .await?;
    let items = remotes
        .iter()
        .filter(|r| name_matches(&q, &r.name, &r.pulp_labels))
        .filter_map(|r| {
            let p = validation::plugin_for(&state.plugins, &r.pulp_type)?;
            let mut v = remote_json(p.as_ref(), r);
            v["pulp_type"] = json!(r.pulp_type);
            Some(v)
        })
        .collect();
    page_of(&q, items, REMOTE_ORDERING)
}

async fn create(
    state: AppState,
    p: &'static str,
    body: JsonObject,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let plugin = plugin(&state, p)?;
    let template = Remote::new(plugin.remote_type(), "", "", Policy::Immediate);
    let remote = validation::apply_remote(plugin.as_ref(), &template, body.0, false)?;
    check_import_path(&state, &remote.url)?;
    if state
        .store
        .get_remote_by_name(&remote.name)
        .await?
        .is_some()
    {
        return Err(unique_name());
    }
    let saved = match state.store.create_remote(&remote).await {
        Ok(r) => r,
        Err(DbError::Conflict(_)) => return Err(unique_name()),
        Err(e) => return Err(e.into()),
    };
    Ok((
        StatusCode::CREATED,
        Json(remote_json(plugin.as_ref(), &saved)),
    ))
}

/// The remote `id` of `plugin`'s type, or 404.
pub(super) async fn find(state: &AppState, plugin: &dyn Plugin, id: &str) -> ApiResult<Remote> {
    let id = path_id(id)?;
    match state.store.get_remote(id).await {
        Ok(r) if r.pulp_type == plugin.remote_type() => Ok(r),
        Ok(_) | Err(DbError::NotFound(_)) => Err(ApiError::NotFound(
            "No Remote matches the given query.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn read(state: AppState, p: &'static str, id: String, q: Query) -> ApiResult<Json<Value>> {
    let plugin = plugin(&state, p)?;
    let r = find(&state, plugin.as_ref(), &id).await?;
    Ok(Json(q.select(remote_json(plugin.as_ref(), &r))))
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
    let updated = validation::apply_remote(plugin.as_ref(), &current, body.0.clone(), partial)?;
    if updated.url != current.url {
        check_import_path(&state, &updated.url)?;
    }
    if updated.name != current.name {
        if let Some(other) = state.store.get_remote_by_name(&updated.name).await? {
            if other.id != current.id {
                return Err(unique_name());
            }
        }
    }
    let href = href::remote(&plugin.api_names(), current.id);
    // The task's arguments are stored: its secrets go in sealed (opened by the task).
    let mut patch = body.0;
    state.store.secrets().encrypt_members(&mut patch);
    let task = state
        .tasking
        .dispatch_args(
            &RemoteUpdateArgs {
                remote: current.id,
                patch,
                partial,
            },
            &[&href],
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
    let href = href::remote(&plugin.api_names(), current.id);
    let task = state
        .tasking
        .dispatch_args(&RemoteDeleteArgs { remote: current.id }, &[&href], &[])
        .await?;
    Ok(accepted(&task))
}

// ---- registration -----------------------------------------------------------------------------

fn remote_schema(response: bool) -> Value {
    let mut props = json!({
        "name": {"type": "string", "minLength": 1, "description": "A unique name for this remote."},
        "url": {"type": "string", "minLength": 1, "description": "The URL of an external content source."},
        "ca_cert": {"type": "string", "nullable": true},
        "client_cert": {"type": "string", "nullable": true},
        "tls_validation": {"type": "boolean"},
        "proxy_url": {"type": "string", "nullable": true},
        "pulp_labels": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
        "download_concurrency": {"type": "integer", "format": "int64", "minimum": 1, "nullable": true},
        "max_retries": {"type": "integer", "format": "int64", "nullable": true},
        "policy": {"type": "string", "enum": ["immediate", "on_demand", "streamed"], "default": "immediate"},
        "total_timeout": {"type": "number", "format": "double", "minimum": 0.0, "nullable": true},
        "connect_timeout": {"type": "number", "format": "double", "minimum": 0.0, "nullable": true},
        "sock_connect_timeout": {"type": "number", "format": "double", "minimum": 0.0, "nullable": true},
        "sock_read_timeout": {"type": "number", "format": "double", "minimum": 0.0, "nullable": true},
        "headers": {"type": "array", "items": {"type": "object"}},
        "rate_limit": {"type": "integer", "format": "int64", "nullable": true},
    });
    let m = props.as_object_mut().expect("object");
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
                "hidden_fields",
                json!({"type": "array", "readOnly": true, "items": {"type": "object",
                "properties": {"name": {"type": "string"}, "is_set": {"type": "boolean"}},
                "required": ["is_set", "name"]}}),
            ),
        ] {
            m.insert(k.into(), v);
        }
    } else {
        for f in HIDDEN_FIELDS {
            m.insert(
                (*f).into(),
                json!({"type": "string", "nullable": true, "writeOnly": true}),
            );
        }
    }
    json!({"type": "object", "properties": props})
}

pub fn register(b: &mut ApiBuilder, plugins: &[Arc<dyn Plugin>]) {
    let list_all_path = format!("{}remotes/", super::API_ROOT);
    b.route(
        Method::GET,
        &list_all_path,
        &list_all_path,
        "remotes_list",
        "Remotes",
        get(list_all),
    )
    .summary("List remotes")
    .response(200, Some("PaginatedGenericRemoteResponseList"));
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
    b.schema("GenericRemoteResponse", remote_schema(true));
    b.schema(
        "PaginatedGenericRemoteResponseList",
        paginated("GenericRemoteResponse"),
    );
    for plugin in plugins {
        let p = plugin.name();
        let n = plugin.api_names();
        let model = format!("{}.{}", n.app_label, plugin.model_names().remote);
        let coll = collection("remotes", plugin.as_ref());
        let detail = format!("{coll}{{id}}/");
        let ref_param = format!("{}_{}_remote_href", n.app_label, n.kind);
        let doc_detail = format!("{{{ref_param}}}");
        let op = |s: &str| format!("remotes_{}_{}_{s}", n.app_label, n.kind);
        let tag = format!("Remotes: {}", title(n.kind));
        let response = format!("{model}Response");
        let list_doc = b
            .route(
                Method::GET,
                &coll,
                &coll,
                &op("list"),
                &tag,
                get(move |State(s): State<AppState>, q: Query| list(s, p, q)),
            )
            .summary("List remotes")
            .response(200, Some(&format!("Paginated{response}List")));
        for f in NAME_FILTERS {
            list_doc.query(f, if *f == "name__in" { "array" } else { "string" }, "");
        }
        super::openapi::list_params(list_doc);
        b.route(
            Method::POST,
            &coll,
            &coll,
            &op("create"),
            &tag,
            post(move |State(s): State<AppState>, body: JsonObject| create(s, p, body)),
        )
        .summary("Create a remote")
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
        .summary("Inspect a remote")
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
        .summary("Update a remote")
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
        .summary("Update a remote")
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
        .summary("Delete a remote")
        .path_param(&ref_param)
        .response(202, Some(ASYNC_OPERATION));
        let mut request = remote_schema(false);
        let mut response_schema = remote_schema(true);
        let mut required = vec!["name", "url"];
        for field in plugin.remote_fields() {
            request["properties"][field.name] = field.schema.clone();
            response_schema["properties"][field.name] = field.schema;
            if field.required {
                required.push(field.name);
            }
        }
        b.schema(&format!("Patched{model}"), request.clone());
        request["required"] = json!(required);
        b.schema(&model, request);
        b.schema(&response, response_schema);
        b.schema(&format!("Paginated{response}List"), paginated(&response));
        let _ = schema_ref;
    }
}

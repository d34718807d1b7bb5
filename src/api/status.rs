//! `status/` (public): the versions pulp-cli checks, the workers the database knows, the API
//! and content app processes online (from the heartbeats each writes into the database, see
//! [`API_APP_TTL`] / [`CONTENT_APP_TTL`]), database reachability, storage space and content-app settings, in pulpcore's
//! `StatusResponse` shape.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::Method;
use axum::routing::get;
use axum::Json;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::list::Query;
use super::openapi::schema_ref;
use super::{workers, ApiBuilder, ApiResult, AppState};
use crate::plugins::Plugin;

/// The pulpcore release whose REST API this server follows; every component (`core` and each
/// plugin) claims it, here and in the OpenAPI document's `x-pulp-app-versions`.
pub const PULPCORE_API_VERSION: &str = "3.123.1";

/// `(component, module, version)` of `core` and of every compiled-in plugin.
fn component_names(plugins: &[Arc<dyn Plugin>]) -> Vec<(String, String, &'static str)> {
    let mut out = vec![(
        "core".to_string(),
        "pulp_rs::api".to_string(),
        PULPCORE_API_VERSION,
    )];
    for p in plugins {
        out.push((
            p.api_names().app_label.to_string(),
            format!("pulp_rs::plugins::{}", p.name()),
            p.version().unwrap_or(PULPCORE_API_VERSION),
        ));
    }
    out
}

/// `{component: version}` for `x-pulp-app-versions` and workers' `versions`.
pub fn app_versions(plugins: &[Arc<dyn Plugin>]) -> Map<String, Value> {
    component_names(plugins)
        .into_iter()
        .map(|(c, _, v)| (c, Value::from(v)))
        .collect()
}

/// The `versions` list of `status/`.
fn versions(plugins: &[Arc<dyn Plugin>]) -> Vec<Value> {
    component_names(plugins)
        .into_iter()
        .map(|(component, module, version)| {
            json!({
                "component": component,
                "version": version,
                "package": "pulp-rs",
                "module": module,
                // Domains are not implemented.
                "domain_compatible": false,
            })
        })
        .collect()
}

/// `(total, used, free)` bytes of the filesystem holding `path`.
fn storage_space(path: &std::path::Path) -> Option<(u64, u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    let total = (st.f_blocks as u64).saturating_mul(frsize);
    let free = (st.f_bavail as u64).saturating_mul(frsize);
    let used = (st.f_blocks as u64)
        .saturating_sub(st.f_bfree as u64)
        .saturating_mul(frsize);
    Some((total, used, free))
}

/// The `app_type` of API processes' heartbeats.
pub const API_APP: &str = "api";
/// The `app_type` of content app processes' heartbeats.
pub const CONTENT_APP: &str = "content";
/// How long an API process stays online after its last heartbeat (pulpcore's `API_APP_TTL`).
pub const API_APP_TTL: Duration = Duration::from_secs(120);
/// How long a content app stays online after its last heartbeat (`CONTENT_APP_TTL`).
pub const CONTENT_APP_TTL: Duration = Duration::from_secs(30);

/// The TTL of an `app_type`'s heartbeats.
pub fn app_ttl(app_type: &str) -> Duration {
    if app_type == API_APP {
        API_APP_TTL
    } else {
        CONTENT_APP_TTL
    }
}

/// `<pid>@<host>`, pulpcore's name of a process; `listening` (the bound address) is added
/// after a colon, since one process may run an API and a content app, or several of each in
/// tests, and each heartbeats under its own name.
pub fn process_name(listening: Option<std::net::SocketAddr>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    match listening {
        Some(addr) => format!("{}@{host}:{}", std::process::id(), addr.port()),
        None => format!("{}@{host}", std::process::id()),
    }
}

/// The online processes of `app_type`, from their heartbeats in the database.
async fn online_apps(
    state: &AppState,
    app_type: &str,
    versions: &Map<String, Value>,
) -> Result<Vec<Value>, crate::db::DbError> {
    let apps = state.store.online_apps(app_type, app_ttl(app_type)).await?;
    Ok(apps
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "last_heartbeat": super::tasks::time(a.last_heartbeat),
                "versions": versions,
            })
        })
        .collect())
}

async fn status(State(state): State<AppState>, q: Query) -> ApiResult<Json<Value>> {
    q.only(&[])?;
    let app_versions = app_versions(&state.plugins);
    let (connected, online_workers) = match state.store.list_workers().await {
        Ok(ws) => (
            true,
            ws.iter()
                .map(|w| {
                    json!({
                        "pulp_href": workers::href(&w.name),
                        "name": w.name,
                        "last_heartbeat": super::tasks::time(w.last_heartbeat),
                        "versions": app_versions,
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "status: the database does not answer");
            (false, Vec::new())
        }
    };
    // Every API and content process heartbeats into the database; when it does not answer,
    // this process (which does) is the one API app known to be online.
    let api_apps = match online_apps(&state, API_APP, &app_versions).await {
        Ok(apps) => apps,
        Err(_) => vec![json!({
            "name": process_name(None),
            "last_heartbeat": super::tasks::time(Utc::now()),
            "versions": app_versions,
        })],
    };
    let content_apps = online_apps(&state, CONTENT_APP, &app_versions)
        .await
        .unwrap_or_default();
    let storage = match state.storage.local_root().and_then(storage_space) {
        Some((total, used, free)) => json!({"total": total, "used": used, "free": free}),
        None => json!({"total": null, "used": null, "free": null}),
    };
    let body = json!({
        "versions": versions(&state.plugins),
        "online_workers": online_workers,
        "online_api_apps": api_apps,
        "online_content_apps": content_apps,
        "database_connection": {"connected": connected},
        "redis_connection": {"connected": false},
        "storage": storage,
        "content_settings": {
            "content_origin": state.content_origin,
            "content_path_prefix": state.content_path_prefix,
        },
        "domain_enabled": false,
    });
    Ok(Json(q.select(body)))
}

pub fn register(b: &mut ApiBuilder) {
    let path = "/pulp/api/v3/status/";
    b.route(
        Method::GET,
        path,
        path,
        "status_read",
        "Status",
        get(status),
    )
    .summary("Inspect status of Pulp")
    .field_selection()
    .response(200, Some("StatusResponse"))
    .public();
    b.schema(
        "VersionResponse",
        json!({
            "type": "object",
            "required": ["component", "domain_compatible", "module", "package", "version"],
            "properties": {
                "component": {"type": "string"},
                "version": {"type": "string"},
                "package": {"type": "string"},
                "module": {"type": "string"},
                "domain_compatible": {"type": "boolean"},
            }
        }),
    );
    b.schema(
        "AppStatusResponse",
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "readOnly": true},
                "last_heartbeat": {"type": "string", "format": "date-time", "readOnly": true},
                "versions": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "nullable": true},
                    "readOnly": true
                },
            }
        }),
    );
    b.schema(
        "StatusResponse",
        json!({
            "type": "object",
            // No `required`: `fields` / `exclude_fields` can leave any property out.
            "properties": {
                "versions": {"type": "array", "items": schema_ref("VersionResponse")},
                "online_workers": {"type": "array", "items": schema_ref("AppStatusResponse")},
                "online_api_apps": {"type": "array", "items": schema_ref("AppStatusResponse")},
                "online_content_apps": {"type": "array", "items": schema_ref("AppStatusResponse")},
                "database_connection": {
                    "type": "object",
                    "required": ["connected"],
                    "properties": {"connected": {"type": "boolean"}}
                },
                "redis_connection": {
                    "type": "object",
                    "nullable": true,
                    "properties": {"connected": {"type": "boolean"}}
                },
                "storage": {
                    "type": "object",
                    "required": ["free", "total", "used"],
                    "properties": {
                        "total": {"type": "integer", "format": "int64", "nullable": true},
                        "used": {"type": "integer", "format": "int64", "nullable": true},
                        "free": {"type": "integer", "format": "int64", "nullable": true},
                    }
                },
                "content_settings": {
                    "type": "object",
                    "required": ["content_path_prefix"],
                    "properties": {
                        "content_origin": {"type": "string", "nullable": true},
                        "content_path_prefix": {"type": "string"},
                    }
                },
                "domain_enabled": {"type": "boolean"},
            }
        }),
    );
}

//! `status/` (public): the versions pulp-cli checks, the workers the database knows, this API
//! process, database reachability, storage space and content-app settings, in pulpcore's
//! `StatusResponse` shape.

use std::sync::Arc;

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

/// `(component, module)` of `core` and of every compiled-in plugin.
fn component_names(plugins: &[Arc<dyn Plugin>]) -> Vec<(String, String)> {
    let mut out = vec![("core".to_string(), "pulp_rs::api".to_string())];
    for p in plugins {
        out.push((
            p.api_names().app_label.to_string(),
            format!("pulp_rs::plugins::{}", p.name()),
        ));
    }
    out
}

/// `{component: version}` for `x-pulp-app-versions` and workers' `versions`.
pub fn app_versions(plugins: &[Arc<dyn Plugin>]) -> Map<String, Value> {
    component_names(plugins)
        .into_iter()
        .map(|(c, _)| (c, Value::from(PULPCORE_API_VERSION)))
        .collect()
}

/// The `versions` list of `status/`.
fn versions(plugins: &[Arc<dyn Plugin>]) -> Vec<Value> {
    component_names(plugins)
        .into_iter()
        .map(|(component, module)| {
            json!({
                "component": component,
                "version": PULPCORE_API_VERSION,
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

/// `<pid>@<host>`, the name this API process reports itself under.
fn process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{}@{host}", std::process::id())
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
    let storage = match storage_space(state.storage.root()) {
        Some((total, used, free)) => json!({"total": total, "used": used, "free": free}),
        None => json!({"total": null, "used": null, "free": null}),
    };
    let body = json!({
        "versions": versions(&state.plugins),
        "online_workers": online_workers,
        // This process answers, so this API app is online; other processes are not recorded.
        "online_api_apps": [{
            "name": process_name(),
            "last_heartbeat": super::tasks::time(Utc::now()),
            "versions": app_versions,
        }],
        // Content apps do not record themselves anywhere this process can see.
        "online_content_apps": [],
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

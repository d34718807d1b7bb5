//! `workers/`: the task workers the database knows (rows are removed when a worker stops or
//! is reaped after missing its heartbeats). A worker has no uuid of its own: its id is derived
//! from its name, so its href is stable across requests and processes.

use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::list::Query;
use super::openapi::paginated;
use super::{href, tasks, ApiBuilder, ApiError, ApiResult, AppState, API_ROOT};
use crate::models::{TaskFilter, TaskState, WorkerStatus};

/// The id of the worker called `name` (a version 8 uuid from the name's sha256).
pub fn worker_id(name: &str) -> Uuid {
    let digest = Sha256::digest(format!("pulp-rs worker:{name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// `/pulp/api/v3/workers/<id>/` of the worker called `name`.
pub fn href(name: &str) -> String {
    format!("{API_ROOT}workers/{}/", worker_id(name))
}

/// The worker whose href (or name) is `value`, among the workers the database knows.
pub async fn find(state: &AppState, value: &str) -> ApiResult<Option<WorkerStatus>> {
    let workers = state.store.list_workers().await?;
    let id = href::parse(value)
        .filter(|p| p.collection == ["workers"] && p.rest.is_empty())
        .map(|p| p.id);
    Ok(workers.into_iter().find(|w| match id {
        Some(id) => worker_id(&w.name) == id,
        None => w.name == value,
    }))
}

async fn worker_json(state: &AppState, w: &WorkerStatus) -> ApiResult<Value> {
    let running = state
        .store
        .list_tasks(&TaskFilter {
            worker: Some(w.name.clone()),
            states: Some(vec![TaskState::Running, TaskState::Canceling]),
            limit: Some(1),
            ..TaskFilter::default()
        })
        .await?;
    let id = worker_id(&w.name);
    Ok(json!({
        "pulp_href": href(&w.name),
        "prn": href::prn("core.worker", id),
        "pulp_created": tasks::time(w.started_at),
        "pulp_last_updated": tasks::time(w.last_heartbeat),
        "name": w.name,
        "last_heartbeat": tasks::time(w.last_heartbeat),
        "versions": super::status::app_versions(&state.plugins),
        "current_task": running.first().map(|t| href::task(t.id)),
    }))
}

async fn list(State(state): State<AppState>, q: Query) -> ApiResult<Json<Value>> {
    q.only(&[
        "name",
        "name__contains",
        "name__icontains",
        "online",
        "missing",
    ])?;
    let (limit, offset) = q.page()?;
    let name = q.value("name");
    let contains = q.value("name__contains");
    let icontains = q.value("name__icontains").map(str::to_lowercase);
    // A worker's row is deleted once it is missing, so every row is an online worker.
    let online = q.boolean("online")?;
    let missing = q.boolean("missing")?;
    if online == Some(false) || missing == Some(true) {
        return Ok(Json(q.paginate(0, Vec::new())?));
    }
    let matching: Vec<WorkerStatus> = state
        .store
        .list_workers()
        .await?
        .into_iter()
        .filter(|w| name.is_none_or(|n| w.name == n))
        .filter(|w| contains.is_none_or(|c| w.name.contains(c)))
        .filter(|w| {
            icontains
                .as_deref()
                .is_none_or(|c| w.name.to_lowercase().contains(c))
        })
        .collect();
    let mut results = Vec::new();
    for w in matching
        .iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
    {
        results.push(worker_json(&state, w).await?);
    }
    Ok(Json(q.paginate(matching.len() as u64, results)?))
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    q.only(&[])?;
    let not_found = || ApiError::NotFound("No Worker matches the given query.".to_string());
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let workers = state.store.list_workers().await?;
    let w = workers
        .iter()
        .find(|w| worker_id(&w.name) == id)
        .ok_or_else(not_found)?;
    Ok(Json(q.select(worker_json(&state, w).await?)))
}

pub fn register(b: &mut ApiBuilder) {
    let list_path = "/pulp/api/v3/workers/";
    b.route(
        Method::GET,
        list_path,
        list_path,
        "workers_list",
        "Workers",
        get(list),
    )
    .summary("List workers")
    .paging()
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
        "online",
        "boolean",
        "Filter results by whether the worker is online",
    )
    .query(
        "missing",
        "boolean",
        "Filter results by whether the worker is missing",
    )
    .field_selection()
    .response(200, Some("PaginatedWorkerResponseList"));
    b.route(
        Method::GET,
        "/pulp/api/v3/workers/{id}/",
        "{worker_href}",
        "workers_read",
        "Workers",
        get(read),
    )
    .summary("Inspect a worker")
    .path_param("worker_href")
    .field_selection()
    .response(200, Some("WorkerResponse"));
    b.schema(
        "WorkerResponse",
        json!({
            "type": "object",
            "properties": {
                "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
                "prn": {"type": "string", "readOnly": true},
                "pulp_created": {"type": "string", "format": "date-time", "readOnly": true},
                "pulp_last_updated": {"type": "string", "format": "date-time", "readOnly": true},
                "name": {"type": "string", "readOnly": true},
                "last_heartbeat": {"type": "string", "format": "date-time", "readOnly": true},
                "versions": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "nullable": true},
                    "readOnly": true
                },
                "current_task": {"type": "string", "format": "uri", "nullable": true,
                                 "readOnly": true},
            }
        }),
    );
    b.schema("PaginatedWorkerResponseList", paginated("WorkerResponse"));
}

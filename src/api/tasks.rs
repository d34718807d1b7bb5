//! `tasks/`: list (with pulpcore's filters and a real count), show, cancel
//! (`PATCH {"state": "canceled"}`) and delete of finished tasks, in pulpcore's `TaskResponse`
//! shape.

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::body::{Fields, JsonObject};
use super::common;
use super::list::Query;
use super::openapi::{paginated, schema_ref};
use super::{href, workers, ApiBuilder, ApiError, ApiResult, AppState};
use crate::db::DbError;
use crate::models::{Task, TaskFilter, TaskState};

/// A timestamp as pulpcore writes it: RFC 3339, microseconds, `Z`.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A task as `TaskResponse`.
pub fn task_json(t: &Task) -> Value {
    let mut reserved: Vec<String> = t.exclusive_resources.clone();
    reserved.extend(t.shared_resources.iter().map(|r| format!("shared:{r}")));
    json!({
        "pulp_href": href::task(t.id),
        "prn": href::prn("core.task", t.id),
        "pulp_created": time(t.pulp_created),
        "pulp_last_updated": time(t.pulp_last_updated),
        "state": t.state.as_str(),
        "name": t.name,
        "logging_cid": t.logging_cid,
        "created_by": null,
        // Not recorded: a task is unblocked at some point before it starts.
        "unblocked_at": t.unblocked_at.map(time),
        "started_at": t.started_at.map(time),
        "finished_at": t.finished_at.map(time),
        "error": t.error,
        "worker": t.worker.as_deref().map(workers::href),
        "parent_task": null,
        "child_tasks": [],
        "task_group": null,
        "progress_reports": t.progress_reports,
        "created_resources": t.created_resources,
        "reserved_resources_record": reserved,
        "result": null,
    })
}

fn parse_state(field: &str, s: &str) -> ApiResult<TaskState> {
    s.parse::<TaskState>().map_err(|_| {
        ApiError::field(
            field,
            format!("Select a valid choice. {s} is not one of the available choices."),
        )
    })
}

/// What an href filter answers when its value is not an href of the right collection.
const INVALID_HREF: &str = "Invalid hyperlink - No URL match.";

/// The id in href filter `name`, which must name an object of `collection` (e.g. `["tasks"]`);
/// absent or empty is `None`, anything else a 400.
fn href_filter(q: &Query, name: &str, collection: &[&str]) -> ApiResult<Option<Uuid>> {
    let Some(v) = q.value(name) else {
        return Ok(None);
    };
    match href::parse(v) {
        Some(p) if p.collection == collection && p.rest.is_empty() => Ok(Some(p.id)),
        _ => Err(ApiError::field(name, INVALID_HREF)),
    }
}

/// An `__in` filter's values; absent or empty is no filter.
fn values(q: &Query, name: &str) -> Option<Vec<String>> {
    Some(q.list(name)).filter(|l| !l.is_empty())
}

/// `x` and `x__in` of a resource filter as "holds any of": both given means the intersection.
fn any_of(q: &Query, name: &str) -> Option<Vec<String>> {
    let single = q.value(name).map(str::to_string);
    match (single, values(q, &format!("{name}__in"))) {
        (None, None) => None,
        (Some(s), None) => Some(vec![s]),
        (None, Some(l)) => Some(l),
        (Some(s), Some(l)) => Some(if l.contains(&s) { vec![s] } else { Vec::new() }),
    }
}

const FILTERS: &[&str] = &[
    "ordering",
    "state",
    "state__in",
    "name",
    "name__contains",
    "logging_cid__contains",
    "worker",
    "created_resources",
    "reserved_resources",
    "reserved_resources__in",
    "exclusive_resources",
    "exclusive_resources__in",
    "shared_resources",
    "shared_resources__in",
    "started_at__gte",
    "started_at__lte",
    "finished_at__gte",
    "finished_at__lte",
    "task_group",
    "parent_task",
];

async fn list(State(state): State<AppState>, q: Query) -> ApiResult<Json<Value>> {
    q.only(FILTERS)?;
    let (limit, offset) = q.page()?;
    let mut filter = TaskFilter {
        limit: Some(limit),
        offset,
        order: q.ordering(common::TASK_ORDERING)?,
        ..TaskFilter::default()
    };
    if let Some(s) = q.value("state") {
        filter.state = Some(parse_state("state", s)?);
    }
    if let Some(list) = values(&q, "state__in") {
        filter.states = Some(
            list.iter()
                .map(|s| parse_state("state__in", s))
                .collect::<ApiResult<_>>()?,
        );
    }
    filter.name = q.value("name").map(str::to_string);
    filter.name_contains = q.value("name__contains").map(str::to_string);
    filter.logging_cid_contains = q.value("logging_cid__contains").map(str::to_string);
    filter.created_resource = q.value("created_resources").map(str::to_string);
    filter.reserved_resources = any_of(&q, "reserved_resources");
    filter.exclusive_resources = any_of(&q, "exclusive_resources");
    filter.shared_resources = any_of(&q, "shared_resources");
    for (name, slot) in [
        ("started_at__gte", &mut filter.started_after),
        ("started_at__lte", &mut filter.started_before),
        ("finished_at__gte", &mut filter.finished_after),
        ("finished_at__lte", &mut filter.finished_before),
    ] {
        *slot = q.date_time(name)?;
    }
    // No task has a parent or a group (tasks do not spawn tasks here, and there are no task
    // groups): a parent that exists matches nothing; a value that names nothing is a 400, as
    // any filter naming an object that does not exist.
    let parent = href_filter(&q, "parent_task", &["tasks"])?;
    if href_filter(&q, "task_group", &["task-groups"])?.is_some() {
        return Err(ApiError::field("task_group", common::NO_OBJECT));
    }
    if let Some(id) = parent {
        match state.store.get_task(id).await {
            Ok(_) => return Ok(Json(q.paginate(0, Vec::new())?)),
            Err(DbError::NotFound(_)) => {
                return Err(ApiError::field("parent_task", common::NO_OBJECT))
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(w) = q.value("worker") {
        // A worker is named by its href or its name; what looks like an href must be one.
        if w.contains(super::API_ROOT) {
            href_filter(&q, "worker", &["workers"])?;
        }
        match workers::find(&state, w).await? {
            Some(found) => filter.worker = Some(found.name),
            None => return Err(ApiError::field("worker", common::NO_OBJECT)),
        }
    }
    let count = state.store.count_tasks(&filter).await?;
    let tasks = state.store.list_tasks(&filter).await?;
    Ok(Json(
        q.paginate(count, tasks.iter().map(task_json).collect())?,
    ))
}

fn task_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound("No Task matches the given query.".into()))
}

async fn get_task(state: &AppState, id: Uuid) -> ApiResult<Task> {
    match state.store.get_task(id).await {
        Ok(t) => Ok(t),
        Err(DbError::NotFound(_)) => Err(ApiError::NotFound(
            "No Task matches the given query.".to_string(),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    q.only(&[])?;
    let task = get_task(&state, task_id(&id)?).await?;
    Ok(Json(q.select(task_json(&task))))
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = task_id(&id)?;
    get_task(&state, id).await?;
    let mut fields = Fields::new(body);
    let wanted = fields.string("state", true);
    if let Some(s) = &wanted {
        if s != "canceled" {
            fields.error(
                "state",
                "The only acceptable value for 'state' is 'canceled'.",
            );
        }
    }
    fields.finish()?;
    match state.store.request_cancel(id).await {
        Ok(task) => Ok(Json(task_json(&task)).into_response()),
        Err(DbError::Conflict(_)) => {
            let task = get_task(&state, id).await?;
            let mut body = task_json(&task);
            body["detail"] = Value::from(format!(
                "Task is already {} and cannot be canceled.",
                task.state
            ));
            Ok((StatusCode::CONFLICT, Json(body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = task_id(&id)?;
    let task = get_task(&state, id).await?;
    if !task.state.is_final() {
        return Err(ApiError::Conflict(format!(
            "Task is {}: only finished tasks can be deleted.",
            task.state
        )));
    }
    match state.store.delete_task(id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(DbError::NotFound(_)) => Err(ApiError::NotFound(
            "No Task matches the given query.".to_string(),
        )),
        Err(DbError::Conflict(_)) => Err(ApiError::Conflict(
            "Task is not finished: only finished tasks can be deleted.".to_string(),
        )),
        Err(e) => Err(e.into()),
    }
}

pub fn register(b: &mut ApiBuilder) {
    let list_path = "/pulp/api/v3/tasks/";
    let doc = b
        .route(
            Method::GET,
            list_path,
            list_path,
            "tasks_list",
            "Tasks",
            get(list),
        )
        .summary("List tasks")
        .paging()
        .query(
            "state",
            "string",
            "Filter results where state matches value",
        )
        .query(
            "state__in",
            "array",
            "Filter results where state is in a comma-separated list of values",
        )
        .query("name", "string", "Filter results where name matches value")
        .query(
            "name__contains",
            "string",
            "Filter results where name contains value",
        )
        .query(
            "logging_cid__contains",
            "string",
            "Filter results where logging_cid contains value",
        )
        .query(
            "worker",
            "string",
            "Filter results by the worker (href or name) that ran the task",
        )
        .query(
            "created_resources",
            "string",
            "Filter results by a resource the task created",
        )
        .query(
            "reserved_resources",
            "string",
            "Filter results by a resource the task reserved (exclusive or shared)",
        )
        .query(
            "reserved_resources__in",
            "array",
            "Filter results by reserved resources (any of)",
        )
        .query(
            "exclusive_resources",
            "string",
            "Filter results by an exclusively reserved resource",
        )
        .query(
            "exclusive_resources__in",
            "array",
            "Filter results by exclusively reserved resources (any of)",
        )
        .query(
            "shared_resources",
            "string",
            "Filter results by a shared resource",
        )
        .query(
            "shared_resources__in",
            "array",
            "Filter results by shared resources (any of)",
        )
        .query(
            "parent_task",
            "string",
            "Filter results by the task (href) that spawned them",
        )
        .query(
            "task_group",
            "string",
            "Filter results by the task group (href) they belong to",
        );
    for name in [
        "started_at__gte",
        "started_at__lte",
        "finished_at__gte",
        "finished_at__lte",
    ] {
        doc.params.push(super::routes::Param {
            name: name.to_string(),
            location: "query",
            schema: json!({"type": "string", "format": "date-time"}),
            required: false,
            description: format!("Filter results where {name}"),
        });
    }
    doc.query(
        "ordering",
        "array",
        "Which field to use when ordering the results.",
    )
    .field_selection()
    .response(200, Some("PaginatedTaskResponseList"));

    let detail = "/pulp/api/v3/tasks/{id}/";
    b.route(
        Method::GET,
        detail,
        "{task_href}",
        "tasks_read",
        "Tasks",
        get(read),
    )
    .summary("Inspect a task")
    .path_param("task_href")
    .field_selection()
    .response(200, Some("TaskResponse"));
    b.route(
        Method::PATCH,
        detail,
        "{task_href}",
        "tasks_cancel",
        "Tasks",
        patch(cancel),
    )
    .summary("Cancel a task")
    .path_param("task_href")
    .request("PatchedTaskCancel")
    .response(200, Some("TaskResponse"))
    .response(409, Some("TaskResponse"));
    b.route(
        Method::DELETE,
        detail,
        "{task_href}",
        "tasks_delete",
        "Tasks",
        delete(remove),
    )
    .summary("Delete a finished task")
    .path_param("task_href")
    .response(204, None);

    let date_time = json!({"type": "string", "format": "date-time", "readOnly": true});
    let nullable_uri =
        json!({"type": "string", "format": "uri", "nullable": true, "readOnly": true});
    b.schema(
        "ProgressReportResponse",
        json!({
            "type": "object",
            "properties": {
                "message": {"type": "string", "readOnly": true},
                "code": {"type": "string", "readOnly": true},
                "state": {"type": "string", "readOnly": true},
                "total": {"type": "integer", "format": "int64", "nullable": true, "readOnly": true},
                "done": {"type": "integer", "format": "int64", "readOnly": true},
                "suffix": {"type": "string", "nullable": true, "readOnly": true},
            }
        }),
    );
    b.schema(
        "TaskResponse",
        json!({
            "type": "object",
            // No `required`: `fields` / `exclude_fields` can leave any property out.
            "properties": {
                "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
                "prn": {"type": "string", "readOnly": true},
                "pulp_created": date_time,
                "pulp_last_updated": date_time,
                "state": {"type": "string", "readOnly": true},
                "name": {"type": "string"},
                "logging_cid": {"type": "string"},
                "created_by": nullable_uri,
                "unblocked_at": {"type": "string", "format": "date-time", "nullable": true, "readOnly": true},
                "started_at": {"type": "string", "format": "date-time", "nullable": true, "readOnly": true},
                "finished_at": {"type": "string", "format": "date-time", "nullable": true, "readOnly": true},
                "error": {"type": "object", "nullable": true, "readOnly": true},
                "worker": nullable_uri,
                "parent_task": nullable_uri,
                "child_tasks": {"type": "array", "items": {"type": "string", "format": "uri"}, "readOnly": true},
                "task_group": nullable_uri,
                "progress_reports": {"type": "array", "items": schema_ref("ProgressReportResponse"), "readOnly": true},
                "created_resources": {"type": "array", "items": {"type": "string", "format": "uri"}, "readOnly": true},
                "reserved_resources_record": {"type": "array", "items": {"type": "string"}, "readOnly": true},
                "result": {"readOnly": true, "nullable": true},
            }
        }),
    );
    b.schema("PaginatedTaskResponseList", paginated("TaskResponse"));
    b.schema(
        "PatchedTaskCancel",
        json!({
            "type": "object",
            "properties": {
                "state": {"type": "string", "minLength": 1,
                          "description": "The desired state of the task. Only 'canceled' is accepted."}
            }
        }),
    );
}

//! `POST content/<app>/<content_kind>/` for every plugin whose units can be made from a file
//! ([`crate::plugins::ContentType::create_fields`]), and the generic read-only `content/`
//! list of every type.
//!
//! A create takes the plugin's fields and exactly one source of bytes: `artifact` (an href),
//! `file` (a multipart part, saved as an artifact here first, reusing an existing one),
//! `upload` (an uncommitted upload, committed by the task) or `file_url` (downloaded by the
//! task; `file://` only below `allowed_import_paths`). Optional `repository` (the unit is added
//! in a new version in the same task) and `overwrite` (default true). It answers 202: the
//! `content_create` task ([`crate::tasks::upload`]) makes the unit with the plugin's hook.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::common::{self, accepted, plugin, ts};
use super::list::Query;
use super::multipart::{FileBody, FILE_PART};
use super::openapi::paginated;
use super::uploads::{store_file, upload_href, upload_of};
use super::{href, ApiBuilder, ApiError, ApiResult, AppState};
use crate::db::DbError;
use crate::models::ContentQuery;
use crate::plugins::Plugin;
use crate::tasks::upload::{ContentCreateArgs, ContentSource};
use crate::validation::Fields;

/// The artifact an href names, for field `field` (400 when it names none).
async fn artifact_of(state: &AppState, field: &str, h: &str) -> ApiResult<Uuid> {
    let bad = || ApiError::field(field, "Invalid hyperlink - Object does not exist.");
    let p = href::parse(h).ok_or_else(bad)?;
    if p.collection != ["artifacts"] || !p.rest.is_empty() {
        return Err(bad());
    }
    match state.store.get_artifact(p.id).await {
        Ok(a) => Ok(a.id),
        Err(DbError::NotFound(_)) => Err(bad()),
        Err(e) => Err(e.into()),
    }
}

/// The repository of `plugin` an href names (400 when it names none).
async fn repository_of(state: &AppState, plugin: &dyn Plugin, h: &str) -> ApiResult<Uuid> {
    let bad = || ApiError::field("repository", "Invalid hyperlink - Object does not exist.");
    let names = plugin.api_names();
    let p = href::parse(h).ok_or_else(bad)?;
    if p.collection != ["repositories", names.app_label, names.kind] || !p.rest.is_empty() {
        return Err(bad());
    }
    match state.store.get_repository(p.id).await {
        Ok(r) if r.pulp_type == plugin.repository_type() => Ok(r.id),
        Ok(_) | Err(DbError::NotFound(_)) => Err(bad()),
        Err(e) => Err(e.into()),
    }
}

const SOURCES: &str =
    "Exactly one of 'artifact', 'file', 'upload' or 'file_url' must be specified.";

async fn create(
    state: AppState,
    p: &'static str,
    t: &'static str,
    mut body: FileBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let plugin = plugin(&state, p)?;
    let ct = plugin
        .content_type(t)
        .ok_or_else(|| ApiError::Internal(format!("content type {t} not loaded")))?;
    let own_fields = ct.create_fields().unwrap_or_default();
    let mut f = Fields::new(body.fields(&["overwrite"], &[]));
    let mut fields = Map::new();
    for field in &own_fields {
        if let Some(v) = f.value(field.name) {
            fields.insert(field.name.to_string(), v);
        }
    }
    let artifact = f.string("artifact", false);
    let upload = f.string("upload", false);
    let file_url = f.string("file_url", false);
    let repository = f.string("repository", false);
    let overwrite = f.boolean("overwrite").unwrap_or(true);
    if let Err((field, message)) = ct.check_create_fields(&fields) {
        f.error(&field, message);
    }
    let given = [
        artifact.is_some(),
        body.file.is_some(),
        upload.is_some(),
        file_url.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        f.error("non_field_errors", SOURCES);
    }
    f.finish()?;
    let repository = match repository {
        Some(h) => Some(repository_of(&state, plugin.as_ref(), &h).await?),
        None => None,
    };
    let mut exclusive: Vec<String> = Vec::new();
    let source = if let Some(h) = artifact {
        ContentSource::Artifact(artifact_of(&state, "artifact", &h).await?)
    } else if let Some(h) = upload {
        let u = upload_of(&state, "upload", &h).await?;
        exclusive.push(upload_href(u.id));
        ContentSource::Upload(u.id)
    } else if let Some(url) = file_url {
        check_file_url(&state, &url)?;
        ContentSource::Url(url)
    } else {
        let file = body
            .file
            .take()
            .ok_or_else(|| ApiError::field(FILE_PART, "No file was submitted."))?;
        ContentSource::Artifact(store_file(&state, file).await?.id)
    };
    if let Some(r) = repository {
        exclusive.push(href::repository(&plugin.api_names(), r));
    }
    let refs: Vec<&str> = exclusive.iter().map(String::as_str).collect();
    let task = state
        .tasking
        .dispatch_args(
            &ContentCreateArgs {
                plugin: p.to_string(),
                pulp_type: t.to_string(),
                fields,
                source,
                repository,
                overwrite,
            },
            &refs,
            &[],
        )
        .await?;
    Ok(accepted(&task))
}

/// A `file_url` must be http(s), or a `file://` path below `allowed_import_paths`.
fn check_file_url(state: &AppState, url: &str) -> ApiResult<()> {
    let parsed = url::Url::parse(url)
        .map_err(|e| ApiError::field("file_url", format!("Enter a valid URL ({e}).")))?;
    if !matches!(parsed.scheme(), "http" | "https" | "file") {
        return Err(ApiError::field(
            "file_url",
            format!(
                "The scheme {:?} is not supported (http, https, file).",
                parsed.scheme()
            ),
        ));
    }
    state
        .download
        .import_paths
        .check_url(url)
        .map_err(|m| ApiError::field("file_url", m))
}

// ---- content/ -----------------------------------------------------------------------------

async fn list_all(State(state): State<AppState>, q: Query) -> ApiResult<Json<Value>> {
    q.only(&["pulp_type", "repository_version", "ordering"])?;
    let (limit, offset) = q.page()?;
    let mut query = ContentQuery {
        pulp_type: common::pulp_type_filter(&state, &q)?.map(str::to_string),
        limit,
        offset,
        order: q.ordering(common::CONTENT_ORDERING)?,
        ..ContentQuery::default()
    };
    if let Some(h) = q.value("repository_version") {
        let bad = || {
            ApiError::field(
                "repository_version",
                "Invalid hyperlink - Object does not exist.",
            )
        };
        let (coll, repo, number) = href::parse_version(h).ok_or_else(bad)?;
        let known = state.plugins.iter().any(|p| {
            let n = p.api_names();
            coll == ["repositories", n.app_label, n.kind]
        });
        if !known || state.store.get_version(repo, number).await?.is_none() {
            return Err(bad());
        }
        query.in_version = Some((repo, number));
    }
    let (count, units) = state.store.list_content(&query).await?;
    let ids: Vec<Uuid> = units.iter().map(|c| c.id).collect();
    let mut artifacts: HashMap<Uuid, Map<String, Value>> = HashMap::new();
    for (ca, a) in state.store.content_artifacts(&ids).await? {
        artifacts.entry(ca.content_id).or_default().insert(
            ca.relative_path.clone(),
            a.map(|a| json!(href::artifact(a.id)))
                .unwrap_or(Value::Null),
        );
    }
    let mut items = Vec::with_capacity(units.len());
    for c in &units {
        let Some(p) = crate::validation::plugin_for(&state.plugins, &c.pulp_type) else {
            continue;
        };
        let names = p.names_of_content(&c.pulp_type);
        let model = p
            .content_type(&c.pulp_type)
            .map_or_else(|| "content".to_string(), |ct| ct.model().to_lowercase());
        items.push(json!({
            "pulp_href": href::content(&names, c.id),
            "prn": href::prn(&format!("{}.{model}", names.app_label), c.id),
            "pulp_type": c.pulp_type,
            "pulp_created": ts(c.pulp_created),
            "pulp_last_updated": ts(c.pulp_created),
            "pulp_labels": {},
            "artifacts": artifacts.remove(&c.id).unwrap_or_default(),
        }));
    }
    Ok(Json(q.paginate(count, items)?))
}

pub fn register(b: &mut ApiBuilder, plugins: &[Arc<dyn Plugin>]) {
    let all = format!("{}content/", super::API_ROOT);
    b.route(
        Method::GET,
        &all,
        &all,
        "content_list",
        "Content",
        get(list_all),
    )
    .summary("List content of every type")
    .query(
        "pulp_type",
        "string",
        "Filter results where pulp_type matches value",
    )
    .query(
        "repository_version",
        "string",
        "Repository Version referenced by HREF",
    )
    .query(
        "ordering",
        "array",
        "Which field to use when ordering the results.",
    )
    .paging()
    .field_selection()
    .response(200, Some("PaginatedMultipleArtifactContentResponseList"));
    let time = json!({"type": "string", "format": "date-time", "readOnly": true});
    b.schema(
        "MultipleArtifactContentResponse",
        json!({"type": "object", "properties": {
            "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
            "prn": {"type": "string", "readOnly": true},
            "pulp_type": {"type": "string", "readOnly": true},
            "pulp_created": time,
            "pulp_last_updated": time,
            "pulp_labels": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
            "artifacts": {"type": "object"},
        }}),
    );
    b.schema(
        "PaginatedMultipleArtifactContentResponseList",
        paginated("MultipleArtifactContentResponse"),
    );

    for (plugin, ct) in plugins
        .iter()
        .flat_map(|p| p.content_types().into_iter().map(move |ct| (p, ct)))
    {
        let Some(fields) = ct.create_fields() else {
            continue;
        };
        let p = plugin.name();
        let t = ct.pulp_type();
        let n = plugin.content_names(ct.as_ref());
        let coll = format!(
            "{}content/{}/{}/",
            super::API_ROOT,
            n.app_label,
            n.content_kind
        );
        let schema = format!("{}.{}", n.app_label, ct.model());
        b.route(
            Method::POST,
            &coll,
            &coll,
            &format!("content_{}_{}_create", n.app_label, n.content_kind),
            &format!("Content: {}", common::title(n.content_kind)),
            post(move |State(s): State<AppState>, body: FileBody| create(s, p, t, body))
                .layer(DefaultBodyLimit::disable()),
        )
        .summary("Create content from a file")
        .request_as(&schema, &["application/json", "multipart/form-data"])
        .response(202, Some(super::openapi::ASYNC_OPERATION));
        let mut props = json!({
            "repository": {"type": "string", "format": "uri", "writeOnly": true},
            "overwrite": {"type": "boolean", "writeOnly": true},
            "artifact": {"type": "string", "format": "uri"},
            "file": {"type": "string", "format": "binary", "writeOnly": true},
            "upload": {"type": "string", "format": "uri", "writeOnly": true},
            "file_url": {"type": "string", "writeOnly": true, "minLength": 1},
        });
        let mut required = Vec::new();
        for f in fields {
            props[f.name] = f.schema;
            if f.required {
                required.push(f.name);
            }
        }
        b.schema(
            &schema,
            json!({"type": "object", "properties": props, "required": required}),
        );
    }
}

//! `publications/<app>/<kind>/`: create (202, task `publish` holding a shared reservation on
//! the repository, as pulpcore), list, read, delete (synchronous 204, as pulpcore). Only
//! complete publications exist for the API. One set of endpoints per publication type of a
//! plugin ([`crate::plugins::PublicationType`]; deb has `apt` and `verbatim`); the type's own
//! fields (file: `manifest`) come from its `options` and are shown as fields of the publication.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use serde_json::{json, Value};
use uuid::Uuid;

use super::body::JsonObject;
use super::common::{self, accepted, title, ts};
use super::list::Query;
use super::openapi::{paginated, ASYNC_OPERATION};
use super::routes::Param;
use super::{href, ApiBuilder, ApiError, ApiResult, AppState, API_ROOT};
use crate::models::{Publication, PublicationFilter};
use crate::plugins::{ApiNames, Plugin, PublicationType};
use crate::tasks::publish::PublishArgs;

const FILTERS: &[&str] = &[
    "repository_version",
    "repository",
    "pulp_created",
    "pulp_created__gte",
    "pulp_created__lte",
    "ordering",
];

pub fn register(b: &mut ApiBuilder, plugins: &[Arc<dyn Plugin>]) {
    for (plugin, pt) in plugins
        .iter()
        .flat_map(|p| p.publication_types().into_iter().map(move |t| (p, t)))
    {
        let n = plugin.names_of_publication(pt.kind());
        let name = plugin.name();
        let kind = pt.kind();
        let base = format!("{API_ROOT}publications/{}/{}/", n.app_label, n.kind);
        let detail = format!("{base}{{id}}/");
        let href_param = format!("{}_{}_publication_href", n.app_label, n.kind);
        let detail_doc = format!("{{{href_param}}}");
        let op = |verb: &str| format!("publications_{}_{}_{verb}", n.app_label, n.kind);
        let tag = format!("Publications: {}", title(n.kind));
        let schema = format!("{}.{}", n.app_label, pt.model());
        let response = format!("{schema}Response");
        let page = format!("Paginated{response}List");

        b.route(
            Method::GET,
            &base,
            &base,
            &op("list"),
            &tag,
            get(move |s: State<AppState>, q: Query| list(s, name, kind, q)),
        )
        .summary("List publications")
        .paging()
        .query(
            "repository_version",
            "string",
            "Repository Version referenced by HREF",
        )
        .query("repository", "string", "Repository referenced by HREF")
        .query(
            "ordering",
            "array",
            "Which field to use when ordering the results.",
        )
        .field_selection()
        .response(200, Some(&page));
        if let Some(doc) = b.routes.last_mut().map(|r| &mut r.doc) {
            for (name, what) in [
                ("pulp_created", "matches"),
                ("pulp_created__gte", "is greater than or equal to"),
                ("pulp_created__lte", "is less than or equal to"),
            ] {
                doc.params.push(Param {
                    name: name.to_string(),
                    location: "query",
                    schema: json!({"type": "string", "format": "date-time"}),
                    required: false,
                    description: format!("Filter results where pulp_created {what} value"),
                });
            }
        }
        b.route(
            Method::POST,
            &base,
            &base,
            &op("create"),
            &tag,
            post(move |s: State<AppState>, body: JsonObject| create(s, name, kind, body)),
        )
        .summary("Create a publication")
        .request(&schema)
        .response(202, Some(ASYNC_OPERATION));
        b.route(
            Method::GET,
            &detail,
            &detail_doc,
            &op("read"),
            &tag,
            get(move |s: State<AppState>, p: Path<Uuid>, q: Query| read(s, name, kind, p, q)),
        )
        .summary("Inspect a publication")
        .path_param(&href_param)
        .field_selection()
        .response(200, Some(&response));
        b.route(
            Method::DELETE,
            &detail,
            &detail_doc,
            &op("delete"),
            &tag,
            delete(move |s: State<AppState>, p: Path<Uuid>| remove(s, name, kind, p)),
        )
        .summary("Delete a publication")
        .path_param(&href_param)
        .response(204, None);

        let mut props = json!({
            "repository_version": {"type": "string", "format": "uri"},
            "repository": {"type": "string", "format": "uri",
                "description": "A URI of the repository to be published."},
            "checkpoint": {"type": "boolean"},
        });
        if let (Some(p), Value::Object(extra)) = (props.as_object_mut(), pt.schema()) {
            p.extend(extra);
        }
        b.schema(&schema, json!({"type": "object", "properties": props}));
        let mut rprops = props.clone();
        if let Some(p) = rprops.as_object_mut() {
            p.extend(
                json!({
                    "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
                    "prn": {"type": "string", "readOnly": true},
                    "pulp_created": {"type": "string", "format": "date-time", "readOnly": true},
                    "pulp_last_updated": {"type": "string", "format": "date-time", "readOnly": true},
                    "distributions": {"type": "array", "items": {"type": "string", "format": "uri"}, "readOnly": true},
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            );
        }
        b.schema(&response, json!({"type": "object", "properties": rprops}));
        b.schema(&page, paginated(&response));
    }
}

/// The JSON of a publication of type `pt`; `distributions` are the hrefs of those serving it.
fn to_json(
    n: &ApiNames,
    pt: &dyn PublicationType,
    p: &Publication,
    distributions: Vec<String>,
) -> Value {
    let pn = ApiNames {
        kind: pt.kind(),
        ..*n
    };
    let model = pt.model().to_lowercase();
    let mut v = json!({
        "pulp_href": href::publication(&pn, p.id),
        "prn": href::prn(&format!("{}.{model}", n.app_label), p.id),
        "pulp_created": ts(p.pulp_created),
        "pulp_last_updated": ts(p.pulp_last_updated),
        "repository_version": href::version(n, p.version.repository_id, p.version.number),
        "repository": href::repository(n, p.version.repository_id),
        "distributions": distributions,
        "checkpoint": false,
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), &p.plugin_data) {
        for (k, val) in extra {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}

async fn with_distributions(
    state: &AppState,
    n: &ApiNames,
    pt: &dyn PublicationType,
    pubs: &[Publication],
) -> ApiResult<Vec<Value>> {
    let ids: Vec<Uuid> = pubs.iter().map(|p| p.id).collect();
    let links = state.store.publication_distributions(&ids).await?;
    Ok(pubs
        .iter()
        .map(|p| {
            let ds = links
                .iter()
                .filter(|(pid, _)| *pid == p.id)
                .map(|(_, d)| href::distribution(n, *d))
                .collect();
            to_json(n, pt, p, ds)
        })
        .collect())
}

/// The plugin `name` and its publication type `kind` (registered: routes are made from them).
fn plugin_of(
    state: &AppState,
    name: &str,
    kind: &str,
) -> ApiResult<(Arc<dyn Plugin>, Arc<dyn PublicationType>)> {
    let p = state
        .plugin(name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("Not found.".into()))?;
    let pt = p
        .publication_type(kind)
        .ok_or_else(|| ApiError::NotFound("Not found.".into()))?;
    Ok((p, pt))
}

async fn list(
    State(state): State<AppState>,
    plugin: &str,
    kind: &str,
    q: Query,
) -> ApiResult<Response> {
    q.only(FILTERS)?;
    let (p, pt) = plugin_of(&state, plugin, kind)?;
    let n = p.api_names();
    let (limit, offset) = q.page()?;
    let mut f = PublicationFilter {
        pulp_type: Some(pt.pulp_type().to_string()),
        limit,
        offset,
        order: q.ordering(common::PUBLICATION_ORDERING)?,
        ..PublicationFilter::default()
    };
    // A version or repository href of another plugin or that names nothing is a 400, as in
    // pulpcore (its test lists by a version that does not exist and expects an error).
    if let Some(h) = q.value("repository_version") {
        let (_, _, version) =
            common::version_of(&state, p.as_ref(), "repository_version", h).await?;
        f.version_id = Some(version);
    }
    if let Some(h) = q.value("repository") {
        f.repository_id =
            Some(common::repository_of(&state, Some(p.as_ref()), "repository", h).await?);
    }
    if let Some(t) = q.date_time("pulp_created")? {
        f.created_gte = Some(t);
        f.created_lte = Some(t);
    }
    if let Some(t) = q.date_time("pulp_created__gte")? {
        f.created_gte = Some(t);
    }
    if let Some(t) = q.date_time("pulp_created__lte")? {
        f.created_lte = Some(t);
    }
    let (count, rows) = state.store.list_publications(&f).await?;
    let out = with_distributions(&state, &n, pt.as_ref(), &rows).await?;
    Ok(Json(q.paginate(count, out)?).into_response())
}

async fn load(state: &AppState, pt: &dyn PublicationType, id: Uuid) -> ApiResult<Publication> {
    let publication = state.store.get_publication(id).await?;
    if !publication.complete || publication.pulp_type != pt.pulp_type() {
        return Err(ApiError::NotFound("Not found.".into()));
    }
    Ok(publication)
}

async fn read(
    State(state): State<AppState>,
    plugin: &str,
    kind: &str,
    Path(id): Path<Uuid>,
    q: Query,
) -> ApiResult<Response> {
    let (p, pt) = plugin_of(&state, plugin, kind)?;
    let publication = load(&state, pt.as_ref(), id).await?;
    let mut out = with_distributions(&state, &p.api_names(), pt.as_ref(), &[publication]).await?;
    Ok(Json(q.select(out.remove(0))).into_response())
}

async fn remove(
    State(state): State<AppState>,
    plugin: &str,
    kind: &str,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let (_, pt) = plugin_of(&state, plugin, kind)?;
    load(&state, pt.as_ref(), id).await?;
    state.store.delete_publication(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn create(
    State(state): State<AppState>,
    plugin: &str,
    kind: &str,
    body: JsonObject,
) -> ApiResult<Response> {
    let (p, pt) = plugin_of(&state, plugin, kind)?;
    let n = p.api_names();
    let mut map = body.0;
    let mut errors = std::collections::BTreeMap::<String, Vec<String>>::new();
    let mut err = |f: &str, m: &str| errors.entry(f.into()).or_default().push(m.into());
    let plugin_data = match pt.options(&mut map) {
        Ok(v) => v,
        Err((field, msg)) => {
            err(&field, &msg);
            Value::Null
        }
    };
    let take_str = |map: &mut serde_json::Map<String, Value>, f: &str| match map.remove(f) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    };
    let repo_href = take_str(&mut map, "repository");
    let version_href = take_str(&mut map, "repository_version");
    match map.remove("checkpoint") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(_) => err("checkpoint", "Checkpoint publications are not supported."),
    }
    for k in map.keys() {
        err(k, "Unexpected field.");
    }
    let mut version_id = None;
    let mut repository_id = None;
    match (repo_href, version_href) {
        (Err(()), _) => err("repository", "Not a valid string."),
        (_, Err(())) => err("repository_version", "Not a valid string."),
        (Ok(Some(_)), Ok(Some(_))) => err(
            "non_field_errors",
            "Either the 'repository' or 'repository_version' need to be specified but not both.",
        ),
        (Ok(None), Ok(None)) => err(
            "non_field_errors",
            "Either the 'repository' or 'repository_version' need to be specified.",
        ),
        (Ok(Some(h)), Ok(None)) => match href::parse(&h) {
            Some(parsed)
                if parsed.collection == ["repositories", n.app_label, n.kind]
                    && parsed.rest.is_empty() =>
            {
                match state.store.latest_version(parsed.id).await {
                    Ok(v) => {
                        version_id = Some(v.id);
                        repository_id = Some(parsed.id);
                    }
                    Err(_) => err("repository", "Invalid hyperlink - Object does not exist."),
                }
            }
            _ => err("repository", "Invalid hyperlink - Object does not exist."),
        },
        (Ok(None), Ok(Some(h))) => match href::parse_version(&h) {
            Some((coll, repo, number)) if coll == ["repositories", n.app_label, n.kind] => {
                match state.store.get_version(repo, number).await {
                    Ok(Some(v)) => {
                        version_id = Some(v.id);
                        repository_id = Some(repo);
                    }
                    _ => err(
                        "repository_version",
                        "Invalid hyperlink - Object does not exist.",
                    ),
                }
            }
            _ => err(
                "repository_version",
                "Invalid hyperlink - Object does not exist.",
            ),
        },
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let (Some(version_id), Some(repository_id)) = (version_id, repository_id) else {
        return Err(ApiError::invalid("No repository version to publish."));
    };
    let repo_href = href::repository(&n, repository_id);
    let task = state
        .tasking
        .dispatch_args(
            &PublishArgs {
                plugin: p.name().to_string(),
                kind: pt.kind().to_string(),
                repository_version: version_id,
                plugin_data,
            },
            &[],
            &[repo_href.as_str()],
        )
        .await?;
    Ok(accepted(&task).into_response())
}

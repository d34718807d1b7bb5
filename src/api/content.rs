//! `content/<app>/<content_kind>/` for every content type of every plugin: list (filtered by
//! repository version, version added / removed, `pulp_href__in` and the type's own data
//! filters) and read. A type with several artifacts per unit shows `artifacts` (relative path
//! -> artifact href), one with one artifact `artifact`, as pulpcore does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};
use uuid::Uuid;

use super::common::{self, path_id, plugin, title, ts};
use super::list::Query;
use super::openapi::paginated;
use super::{href, ApiBuilder, ApiError, ApiResult, AppState};
use crate::models::Content;
use crate::models::ContentQuery;
use crate::plugins::{ContentType, Plugin};

/// Units of one content type as pulpcore answers them, in input order.
async fn content_json(
    state: &AppState,
    plugin: &dyn Plugin,
    ct: &dyn ContentType,
    units: &[Content],
) -> ApiResult<Vec<Value>> {
    let names = plugin.content_names(ct);
    let model = ct.model().to_lowercase();
    let ids: Vec<Uuid> = units.iter().map(|c| c.id).collect();
    let mut artifacts: HashMap<Uuid, serde_json::Map<String, Value>> = HashMap::new();
    for (ca, a) in state.store.content_artifacts(&ids).await? {
        artifacts.entry(ca.content_id).or_default().insert(
            ca.relative_path,
            a.map_or(Value::Null, |a| Value::String(href::artifact(a.id))),
        );
    }
    Ok(units
        .iter()
        .map(|c| {
            let mut v = json!({
                "pulp_href": href::content(&names, c.id),
                "prn": href::prn(&format!("{}.{model}", names.app_label), c.id),
                "pulp_created": ts(c.pulp_created),
                "pulp_last_updated": ts(c.pulp_created),
                "pulp_labels": {},
            });
            let files = artifacts.remove(&c.id).unwrap_or_default();
            if ct.multiple_artifacts() {
                v["artifacts"] = Value::Object(files);
            } else {
                v["artifact"] = files.into_iter().next().map_or(Value::Null, |(_, a)| a);
            }
            for (k, x) in ct.fields(c) {
                v[k] = x;
            }
            v
        })
        .collect())
}

/// The plugin `p` and its content type `t` (both registered: routes are made from them).
fn type_of(
    state: &AppState,
    p: &str,
    t: &str,
) -> ApiResult<(Arc<dyn Plugin>, Arc<dyn ContentType>)> {
    let plugin = plugin(state, p)?;
    let ct = plugin
        .content_type(t)
        .ok_or_else(|| ApiError::Internal(format!("content type {t} not loaded")))?;
    Ok((plugin, ct))
}

const CORE_FILTERS: &[&str] = &[
    "repository_version",
    "repository_version_added",
    "repository_version_removed",
    "pulp_href__in",
    "pulp_label_select",
];

async fn list(
    state: AppState,
    p: &'static str,
    t: &'static str,
    q: Query,
) -> ApiResult<Json<Value>> {
    let (plugin, ct) = type_of(&state, p, t)?;
    let filters = ct.filters();
    let mut known: Vec<&str> = CORE_FILTERS.to_vec();
    known.push("ordering");
    known.extend(filters.iter().map(|(name, _)| *name));
    q.only(&known)?;
    let (limit, offset) = q.page()?;
    let mut query = ContentQuery {
        pulp_type: Some(t.to_string()),
        limit,
        offset,
        order: q.ordering(common::CONTENT_ORDERING)?,
        ..ContentQuery::default()
    };
    if let Some(h) = q.value("repository_version") {
        let (repo, number, _) =
            common::version_of(&state, plugin.as_ref(), "repository_version", h).await?;
        query.in_version = Some((repo, number));
    }
    if let Some(h) = q.value("repository_version_added") {
        query.added_in = Some(
            common::version_of(&state, plugin.as_ref(), "repository_version_added", h)
                .await?
                .2,
        );
    }
    if let Some(h) = q.value("repository_version_removed") {
        query.removed_in = Some(
            common::version_of(&state, plugin.as_ref(), "repository_version_removed", h)
                .await?
                .2,
        );
    }
    let hrefs = q.list("pulp_href__in");
    if !hrefs.is_empty() {
        let names = plugin.content_names(ct.as_ref());
        let mut ids = Vec::with_capacity(hrefs.len());
        for h in &hrefs {
            // An href of other content or of nothing at all is a 400, as in pulpcore, not a
            // term that silently matches nothing.
            match href::parse(h) {
                Some(p)
                    if p.collection == ["content", names.app_label, names.content_kind]
                        && p.rest.is_empty() =>
                {
                    ids.push(p.id)
                }
                _ => {
                    return Err(ApiError::field(
                        "pulp_href__in",
                        "Invalid hyperlink - No URL match.",
                    ))
                }
            }
        }
        query.ids = Some(ids);
    }
    for (name, key) in filters {
        if let Some(v) = q.value(name) {
            let stored = ct
                .filter_value(name, v)
                .map_err(|m| ApiError::field(name, m))?;
            query.data_equals.push((key.to_string(), stored));
        }
    }
    super::common::check_name_filters(&q)?;
    // Units carry no labels: a selection that needs one matches nothing.
    if q.value("pulp_label_select").is_some()
        && !super::common::name_matches(&q, "", &Default::default())
    {
        query.ids = Some(Vec::new());
    }
    let (count, units) = state.store.list_content(&query).await?;
    let items = content_json(&state, plugin.as_ref(), ct.as_ref(), &units).await?;
    Ok(Json(q.paginate(count, items)?))
}

async fn read(
    state: AppState,
    p: &'static str,
    t: &'static str,
    id: String,
    q: Query,
) -> ApiResult<Json<Value>> {
    let (plugin, ct) = type_of(&state, p, t)?;
    let id = path_id(&id)?;
    let (_, units) = state
        .store
        .list_content(&ContentQuery {
            pulp_type: Some(t.to_string()),
            ids: Some(vec![id]),
            limit: 1,
            ..ContentQuery::default()
        })
        .await?;
    if units.is_empty() {
        return Err(ApiError::NotFound(
            "No Content matches the given query.".into(),
        ));
    }
    let v = content_json(&state, plugin.as_ref(), ct.as_ref(), &units)
        .await?
        .remove(0);
    Ok(Json(q.select(v)))
}

pub fn register(b: &mut ApiBuilder, plugins: &[Arc<dyn Plugin>]) {
    for (plugin, ct) in plugins
        .iter()
        .flat_map(|p| p.content_types().into_iter().map(move |ct| (p, ct)))
    {
        let p = plugin.name();
        let t = ct.pulp_type();
        let n = plugin.content_names(ct.as_ref());
        let model = format!("{}.{}", n.app_label, ct.model());
        let response = format!("{model}Response");
        let coll = format!(
            "{}content/{}/{}/",
            super::API_ROOT,
            n.app_label,
            n.content_kind
        );
        let detail = format!("{coll}{{id}}/");
        let ref_param = ct.href_param().map_or_else(
            || format!("{}_{}_content_href", n.app_label, n.kind),
            str::to_string,
        );
        let op = |s: &str| format!("content_{}_{}_{s}", n.app_label, n.content_kind);
        let tag = format!("Content: {}", title(n.content_kind));
        let l = b
            .route(
                Method::GET,
                &coll,
                &coll,
                &op("list"),
                &tag,
                get(move |State(s): State<AppState>, q: Query| list(s, p, t, q)),
            )
            .summary("List content")
            .response(200, Some(&format!("Paginated{response}List")));
        for f in CORE_FILTERS {
            l.query(
                f,
                if *f == "pulp_href__in" {
                    "array"
                } else {
                    "string"
                },
                "",
            );
        }
        for (f, _) in ct.filters() {
            l.query(f, "string", "");
        }
        l.query(
            "ordering",
            "array",
            "Which field to use when ordering the results.",
        )
        .paging()
        .field_selection();
        b.route(
            Method::GET,
            &detail,
            &format!("{{{ref_param}}}"),
            &op("read"),
            &tag,
            get(
                move |State(s): State<AppState>, Path(id): Path<String>, q: Query| {
                    read(s, p, t, id, q)
                },
            ),
        )
        .summary("Inspect content")
        .path_param(&ref_param)
        .field_selection()
        .response(200, Some(&response));
        let mut props = json!({
            "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
            "prn": {"type": "string", "readOnly": true},
            "pulp_created": {"type": "string", "format": "date-time", "readOnly": true},
            "pulp_last_updated": {"type": "string", "format": "date-time", "readOnly": true},
            "pulp_labels": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}},
        });
        if ct.multiple_artifacts() {
            props["artifacts"] = json!({"type": "object", "readOnly": true,
                "additionalProperties": {"type": "string", "format": "uri", "nullable": true},
                "description": "A dict mapping relative paths inside the Content to the corresponding Artifact URLs."});
        } else {
            props["artifact"] = json!({"type": "string", "format": "uri", "nullable": true});
        }
        for (k, s) in ct.schema() {
            props[k] = s;
        }
        b.schema(&response, json!({"type": "object", "properties": props}));
        b.schema(&format!("Paginated{response}List"), paginated(&response));
    }
}

//! The OpenAPI 3 document at `/pulp/api/v3/docs/api.json`, built from the route table alone,
//! and the browsable page at `/pulp/api/v3/docs/`.
//!
//! Every path, operation, parameter, body and response in the document comes from an
//! [`ApiRoute`] and its [`OpDoc`]; component schemas are the ones resource modules registered
//! with [`ApiBuilder::schema`] (using the helpers here for the shapes every resource shares).
//! Nothing is copied from pulpcore's document, so it describes exactly what is implemented.
//!
//! pulp-glue reads `info.x-pulp-app-versions` to decide which features the server has
//! ([`PULPCORE_COMPAT_VERSION`]), finds operations by `operationId`, validates parameters and
//! bodies against their schemas before sending, and picks Basic authentication from
//! `components.securitySchemes` and each operation's `security`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{header, Method};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Extension, Json};
use serde_json::{json, Map, Value};

use super::routes::{ApiRoute, OpDoc};
use super::ApiBuilder;

/// The schema name of `{"task": href}`, the answer of every call that dispatches a task.
pub const ASYNC_OPERATION: &str = "AsyncOperationResponse";

/// The pulpcore (and plugin) release whose REST API this server answers like (see `status/`).
/// pulp-glue gates features on it: >= 3.86 reads a task's `result`, >= 3.106 sends
/// `repository_version: null` with distribution changes.
pub const PULPCORE_COMPAT_VERSION: &str = super::status::PULPCORE_API_VERSION;

/// The name of the Basic authentication scheme in `components.securitySchemes`.
pub const BASIC_AUTH: &str = "basicAuth";

/// A `$ref` to component schema `name`.
pub fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The paginated list of `item` (a component schema name): `{count, next, previous, results}`.
pub fn paginated(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["count", "results"],
        "properties": {
            "count": {"type": "integer", "example": 123},
            "next": {"type": "string", "nullable": true, "format": "uri"},
            "previous": {"type": "string", "nullable": true, "format": "uri"},
            "results": {"type": "array", "items": schema_ref(item)},
        }
    })
}

/// Documents the query parameters every list handler accepts through
/// [`super::list::Query`]: `limit`, `offset`, `ordering`, `fields`, `exclude_fields`.
/// pulp-glue sends `fields` / `exclude_fields` on every `list` call (even empty), and refuses
/// to call an operation that does not declare a parameter it sends.
pub fn list_params(op: &mut OpDoc) -> &mut OpDoc {
    op.paging()
        .query(
            "ordering",
            "array",
            "Which field to use when ordering the results.",
        )
        .field_selection()
}

/// Registers the shared schemas and the two documentation routes.
pub fn register(b: &mut ApiBuilder) {
    b.schema(
        ASYNC_OPERATION,
        json!({
            "type": "object",
            "description": "Serializer for asynchronous operations.",
            "required": ["task"],
            "properties": {"task": {"type": "string", "format": "uri"}}
        }),
    );
    b.schema(
        "OpenApiDocument",
        json!({"type": "object", "description": "This OpenAPI 3 document."}),
    );
    b.route(
        Method::GET,
        "/pulp/api/v3/docs/api.json",
        "/pulp/api/v3/docs/api.json",
        "docs_api_json_read",
        "Docs",
        get(api_json),
    )
    .summary("The OpenAPI 3 document of this API.")
    .response(200, Some("OpenApiDocument"))
    .public();
    b.route(
        Method::GET,
        "/pulp/api/v3/docs/",
        "/pulp/api/v3/docs/",
        "docs_read",
        "Docs",
        get(docs_page),
    )
    .summary("An HTML page listing every operation of this API.")
    .response(200, None)
    .public();
}

async fn api_json(Extension(doc): Extension<Arc<Value>>) -> impl IntoResponse {
    Json(doc.as_ref().clone())
}

async fn docs_page(Extension(doc): Extension<Arc<Value>>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(render_page(&doc)),
    )
}

/// The reason phrase used as a response's (required) `description`.
fn status_description(status: u16) -> &'static str {
    axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Response")
}

/// The `{name}` placeholders of an OpenAPI path, in order.
pub fn path_placeholders(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    out
}

fn parameter(p: &super::routes::Param) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": p.location,
        "required": p.required || p.location == "path",
        "schema": p.schema,
    });
    if !p.description.is_empty() {
        v["description"] = json!(p.description);
    }
    if p.location == "query" && p.schema["type"] == "array" {
        // Comma-separated, as `Query::list` reads them.
        v["style"] = json!("form");
        v["explode"] = json!(false);
    }
    v
}

fn operation(r: &ApiRoute) -> Value {
    let doc = &r.doc;
    let mut params: Vec<Value> = doc.params.iter().map(parameter).collect();
    // A placeholder of the path the doc forgot still has to be declared for glue to fill it.
    for name in path_placeholders(&r.openapi_path) {
        let declared = doc
            .params
            .iter()
            .any(|p| p.location == "path" && p.name == name);
        if !declared {
            params.push(json!({
                "name": name, "in": "path", "required": true, "schema": {"type": "string"}
            }));
        }
    }
    let mut responses = Map::new();
    for (status, schema) in &doc.responses {
        let mut resp = json!({ "description": status_description(*status) });
        if let Some(name) = schema {
            resp["content"] = json!({"application/json": {"schema": schema_ref(name)}});
        }
        responses.insert(status.to_string(), resp);
    }
    let mut op = json!({
        "operationId": r.operation_id,
        "tags": [r.tag],
        "parameters": params,
        "responses": responses,
    });
    if !doc.summary.is_empty() {
        op["summary"] = json!(doc.summary);
    }
    if let Some(name) = &doc.request {
        let mut content = Map::new();
        let types: &[&str] = if doc.request_types.is_empty() {
            &["application/json"]
        } else {
            &doc.request_types
        };
        for t in types {
            content.insert(t.to_string(), json!({"schema": schema_ref(name)}));
        }
        op["requestBody"] = json!({ "required": true, "content": content });
    }
    op["security"] = if doc.public {
        json!([])
    } else {
        json!([{ BASIC_AUTH: [] }])
    };
    op
}

/// The document describing every route of `b`.
pub fn document(b: &ApiBuilder) -> Value {
    let mut paths: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    let mut tags: Vec<&str> = Vec::new();
    for r in &b.routes {
        let method = r.method.as_str().to_ascii_lowercase();
        paths
            .entry(r.openapi_path.as_str())
            .or_default()
            .insert(method, operation(r));
        if !tags.contains(&r.tag.as_str()) {
            tags.push(&r.tag);
        }
    }
    tags.sort_unstable();
    // The same components and versions as `status/` reports (pulp-cli compares them).
    let versions = super::status::app_versions(&crate::plugins::registry());
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Pulp 3 API",
            "version": "v3",
            "description": "pulp-rs: fetch, organize and distribute software packages \
                            (pulpcore-compatible subset).",
            "x-pulp-app-versions": versions,
            "x-pulp-domain-enabled": false,
        },
        "paths": paths,
        "components": {
            "schemas": b.schemas,
            "securitySchemes": {
                BASIC_AUTH: {"type": "http", "scheme": "basic"},
            },
        },
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
    })
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A self-contained page: one table row per operation, grouped by tag.
fn render_page(doc: &Value) -> String {
    let mut rows: Vec<(String, String, String, String, String)> = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, op) in item {
                let tag = op["tags"][0].as_str().unwrap_or("").to_string();
                rows.push((
                    tag,
                    path.clone(),
                    method.to_uppercase(),
                    op["operationId"].as_str().unwrap_or("").to_string(),
                    op["summary"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    rows.sort();
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Pulp 3 API</title>\
         <style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}\
         code{white-space:nowrap}</style></head><body>\n<h1>Pulp 3 API</h1>\n\
         <p>The OpenAPI 3 document: <a href=\"api.json\">api.json</a>.</p>\n\
         <table><tr><th>Tag</th><th>Method</th><th>Path</th><th>Operation</th>\
         <th>Summary</th></tr>\n",
    );
    for (tag, path, method, op_id, summary) in rows {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td>\
             <td>{}</td></tr>\n",
            esc(&tag),
            esc(&method),
            esc(&path),
            esc(&op_id),
            esc(&summary)
        ));
    }
    html.push_str("</table>\n</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_in_order() {
        assert_eq!(
            path_placeholders("{file_file_repository_href}versions/"),
            vec!["file_file_repository_href"]
        );
        assert_eq!(
            path_placeholders("/pulp/api/v3/status/"),
            Vec::<&str>::new()
        );
        assert_eq!(path_placeholders("{a}x/{b}/"), vec!["a", "b"]);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}

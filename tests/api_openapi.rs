//! The OpenAPI document: served without credentials at `/pulp/api/v3/docs/api.json`, with the
//! browsable page at `/pulp/api/v3/docs/`, and well-formed in the ways pulp-glue relies on
//! (unique operation ids, resolvable `$ref`s, declared path parameters, Basic auth scheme,
//! claimed component versions).

mod common;

use std::collections::{BTreeSet, HashSet};

use common::app::{backends, send, TestApp};
use pulp_rs::api::openapi::{self, path_placeholders};
use serde_json::Value;

/// Every `$ref` anywhere under `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    if let Some(s) = x.as_str() {
                        out.push(s);
                    }
                }
                refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// Everything wrong with `doc` as an OpenAPI 3 document pulp-glue can use.
fn problems(doc: &Value) -> Vec<String> {
    let mut bad = Vec::new();
    if !doc["openapi"].as_str().unwrap_or("").starts_with("3.") {
        bad.push("openapi is not 3.x".to_string());
    }
    if !doc["info"]["title"].is_string() || !doc["info"]["version"].is_string() {
        bad.push("info.title / info.version missing".to_string());
    }
    let versions = &doc["info"]["x-pulp-app-versions"];
    for component in ["core", "file"] {
        if !versions[component].is_string() {
            bad.push(format!("x-pulp-app-versions lacks {component}"));
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    if schemes["basicAuth"]["type"] != "http" || schemes["basicAuth"]["scheme"] != "basic" {
        bad.push("no basicAuth security scheme".to_string());
    }
    let schemas = doc["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut all_refs = Vec::new();
    refs(doc, &mut all_refs);
    for r in all_refs {
        match r.strip_prefix("#/components/schemas/") {
            Some(name) if schemas.contains_key(name) => {}
            _ => bad.push(format!("$ref {r} does not resolve")),
        }
    }
    let mut ids = HashSet::new();
    let Some(paths) = doc["paths"].as_object() else {
        bad.push("no paths".to_string());
        return bad;
    };
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Some(id) = op["operationId"].as_str() else {
                bad.push(format!("{method} {path}: no operationId"));
                continue;
            };
            if !ids.insert(id.to_string()) {
                bad.push(format!("operationId {id} is not unique"));
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut declared = BTreeSet::new();
            let mut seen = HashSet::new();
            for p in &params {
                let name = p["name"].as_str().unwrap_or("");
                if !seen.insert((name.to_string(), p["in"].to_string())) {
                    bad.push(format!("{id}: parameter {name} declared twice"));
                }
                if !p["schema"].is_object() {
                    bad.push(format!("{id}: parameter {name} has no schema"));
                }
                if p["in"] == "path" {
                    if p["required"] != true {
                        bad.push(format!("{id}: path parameter {name} not required"));
                    }
                    if !path.contains(&format!("{{{name}}}")) {
                        bad.push(format!("{id}: path parameter {name} not in {path}"));
                    }
                    declared.insert(name.to_string());
                }
            }
            for name in path_placeholders(path) {
                if !declared.contains(name) {
                    bad.push(format!("{id}: {{{name}}} of {path} is not declared"));
                }
            }
            let responses = op["responses"].as_object().cloned().unwrap_or_default();
            if responses.is_empty() {
                bad.push(format!("{id}: no responses"));
            }
            for (status, resp) in &responses {
                if !resp["description"].is_string() {
                    bad.push(format!("{id}: response {status} has no description"));
                }
            }
            match op["security"].as_array() {
                None => bad.push(format!("{id}: no security")),
                Some(reqs) => {
                    for req in reqs {
                        for scheme in req.as_object().into_iter().flatten().map(|(k, _)| k) {
                            if !schemes[scheme].is_object() {
                                bad.push(format!("{id}: unknown security scheme {scheme}"));
                            }
                        }
                    }
                }
            }
            if let Some(body) = op.get("requestBody") {
                // A JSON body, or a multipart form for the operations that take a file.
                let json = body["content"]["application/json"]["schema"].is_object();
                let form = body["content"]["multipart/form-data"]["schema"].is_object();
                if !json && !form {
                    bad.push(format!("{id}: request body without application/json"));
                }
            }
        }
    }
    bad
}

#[test]
fn document_from_the_route_table_is_well_formed() {
    let plugins = pulp_rs::plugins::registry();
    let b = pulp_rs::api::api_builder(&plugins);
    // The route table itself: one operation id per route, one route per (method, path).
    let mut ids = HashSet::new();
    let mut endpoints = HashSet::new();
    for r in &b.routes {
        assert!(
            ids.insert(r.operation_id.clone()),
            "{} twice",
            r.operation_id
        );
        assert!(
            endpoints.insert((r.method.clone(), r.openapi_path.clone())),
            "{} {} twice",
            r.method,
            r.openapi_path
        );
    }
    let doc = openapi::document(&b);
    let bad = problems(&doc);
    assert!(bad.is_empty(), "{bad:#?}");
    // Every route is in the document, and nothing else is.
    let count: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(count, b.routes.len());
    let ops = &doc["paths"]["/pulp/api/v3/docs/api.json"];
    assert_eq!(ops["get"]["operationId"], "docs_api_json_read");
    assert_eq!(ops["get"]["security"], serde_json::json!([]));
    assert_eq!(
        doc["info"]["x-pulp-app-versions"]["core"],
        openapi::PULPCORE_COMPAT_VERSION
    );
}

#[test]
fn problems_are_detected() {
    // The checker itself finds what it is meant to find.
    let doc = serde_json::json!({
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "v", "x-pulp-app-versions": {"core": "1", "file": "1"}},
        "components": {"schemas": {}, "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}}},
        "paths": {
            "{x_href}": {
                "get": {"operationId": "a", "parameters": [{"name": "y_href", "in": "path", "required": true, "schema": {}}],
                        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}},
                        "security": [{"cookieAuth": []}]},
                "delete": {"operationId": "a", "responses": {"204": {}}, "security": []}
            }
        }
    });
    let bad = problems(&doc);
    for expected in [
        "does not resolve",
        "is not unique",
        "not in {x_href}",
        "{x_href} of {x_href} is not declared",
        "unknown security scheme cookieAuth",
        "response 204 has no description",
    ] {
        assert!(
            bad.iter().any(|b| b.contains(expected)),
            "{expected} not reported in {bad:#?}"
        );
    }
}

#[tokio::test]
async fn served_without_credentials() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let resp = app
            .client
            .get(format!("{}/pulp/api/v3/docs/api.json", app.api))
            .send()
            .await
            .expect("GET api.json");
        assert_eq!(resp.status(), 200, "{backend}");
        assert_eq!(
            resp.headers()["content-type"],
            "application/json",
            "{backend}: pulp-glue compares the content type exactly"
        );
        let doc: Value = resp.json().await.expect("json");
        let bad = problems(&doc);
        assert!(bad.is_empty(), "{backend}: {bad:#?}");
        // The same document as the route table gives.
        let b = pulp_rs::api::api_builder(&pulp_rs::plugins::registry());
        assert_eq!(doc, openapi::document(&b), "{backend}");

        // Wrong credentials do not matter for a public route.
        let (status, _) = send(
            app.client
                .get(format!("{}/pulp/api/v3/docs/api.json", app.api))
                .basic_auth("admin", Some("wrong")),
        )
        .await;
        assert_eq!(status, 200, "{backend}");

        let resp = app
            .client
            .get(format!("{}/pulp/api/v3/docs/", app.api))
            .send()
            .await
            .expect("GET docs/");
        assert_eq!(resp.status(), 200, "{backend}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let html = resp.text().await.unwrap();
        assert!(html.contains("docs_api_json_read"), "{backend}: {html}");
        assert!(html.contains("href=\"api.json\""), "{backend}");
        assert!(!html.contains("<script"), "{backend}: no external assets");
        app.stop().await;
    }
}

/// What pulp-cli 0.41.1 sends on every call of these operations (click options with
/// `multiple=True` are sent even when empty): pulp-glue refuses, before any request, to send a
/// parameter the operation does not declare. Read from pulp_cli/generic.py and
/// pulpcore/cli/{core,file}/*.py.
const ALWAYS_SENT: &[(&str, &[&str])] = &[
    ("remotes_file_file_list", &["name__in"]),
    ("remotes_list", &["name__in"]),
    ("repositories_file_file_list", &[]),
    ("repositories_list", &["name__in"]),
    ("repositories_file_file_versions_list", &["number"]),
    ("content_file_files_list", &[]),
    ("publications_file_file_list", &[]),
    ("distributions_file_file_list", &["name__in"]),
    ("distributions_list", &["name__in"]),
    (
        "tasks_list",
        &[
            "state__in",
            "reserved_resources__in",
            "exclusive_resources__in",
            "shared_resources__in",
        ],
    ),
];

#[test]
fn declares_what_pulp_cli_always_sends() {
    let b = pulp_rs::api::api_builder(&pulp_rs::plugins::registry());
    let doc = openapi::document(&b);
    let mut ops = std::collections::HashMap::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ops.insert(op["operationId"].as_str().unwrap().to_string(), op.clone());
        }
    }
    let mut bad = Vec::new();
    for (id, extra) in ALWAYS_SENT {
        let Some(op) = ops.get(*id) else {
            bad.push(format!("{id}: missing"));
            continue;
        };
        let declared: HashSet<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in ["limit", "offset", "fields", "exclude_fields"]
            .iter()
            .chain(extra.iter())
        {
            if !declared.contains(name) {
                bad.push(format!("{id}: {name} not declared"));
            }
        }
    }
    // Bodies: glue adds nulls to distribution changes; a task is canceled with `state`.
    for id in [
        "distributions_file_file_create",
        "distributions_file_file_partial_update",
    ] {
        let schema = request_schema(&doc, &ops[id]);
        for field in ["repository", "publication", "repository_version"] {
            if schema["properties"][field]["nullable"] != true {
                bad.push(format!("{id}: {field} is not nullable"));
            }
        }
    }
    let cancel = request_schema(&doc, &ops["tasks_cancel"]);
    if !cancel["properties"]["state"].is_object() {
        bad.push("tasks_cancel: no state property".to_string());
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// The component schema an operation's JSON request body refers to.
fn request_schema(doc: &Value, op: &Value) -> Value {
    let r = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .expect("a $ref request body");
    let name = r.trim_start_matches("#/components/schemas/");
    doc["components"]["schemas"][name].clone()
}

/// The component schema `$ref` points at.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// Every operation of `doc` by id.
fn operations(doc: &Value) -> std::collections::HashMap<String, Value> {
    let mut ops = std::collections::HashMap::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            ops.insert(op["operationId"].as_str().unwrap().to_string(), op.clone());
        }
    }
    ops
}

#[test]
fn responses_say_what_field_selection_can_leave_out() {
    // `fields` / `exclude_fields` can drop any property of an object (not the page around
    // it): a `required` list would make a generated client refuse a valid answer (as
    // pulpcore's own bindings do, pulp/pulpcore#1998).
    let doc = openapi::document(&pulp_rs::api::api_builder(&pulp_rs::plugins::registry()));
    let mut bad = Vec::new();
    let mut checked = 0;
    for (id, op) in operations(&doc) {
        let selects = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fields" || p["name"] == "exclude_fields");
        if !selects {
            continue;
        }
        let mut schema = resolve(
            &doc,
            &op["responses"]["200"]["content"]["application/json"]["schema"],
        );
        if id.ends_with("_list") {
            assert_eq!(
                schema["required"],
                serde_json::json!(["count", "results"]),
                "{id}"
            );
            schema = resolve(&doc, &schema["properties"]["results"]["items"]);
        }
        assert!(schema["properties"].is_object(), "{id}: {schema}");
        checked += 1;
        if schema.get("required").is_some() {
            bad.push(format!("{id}: required {}", schema["required"]));
        }
    }
    assert!(checked > 20, "{checked}");
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn hrefs_are_declared_as_pulpcore_declares_them() {
    // pulpcore 3.123 declares an href (a path such as `/pulp/api/v3/tasks/<id>/`, not an
    // absolute URL) as `{"type": "string", "format": "uri"}`, read-only where the server sets
    // it; `prn` and `base_url` are plain strings.
    let doc = openapi::document(&pulp_rs::api::api_builder(&pulp_rs::plugins::registry()));
    let schemas = &doc["components"]["schemas"];
    let mut bad = Vec::new();
    let mut check = |schema: &str, field: &str, read_only: bool, nullable: bool| {
        let p = &schemas[schema]["properties"][field];
        let mut want = serde_json::json!({"type": "string", "format": "uri"});
        if read_only {
            want["readOnly"] = true.into();
        }
        if nullable {
            want["nullable"] = true.into();
        }
        let got: serde_json::Map<String, Value> = p
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| *k != "description")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if Value::Object(got) != want {
            bad.push(format!("{schema}.{field}: {p}"));
        }
    };
    for schema in [
        "TaskResponse",
        "ArtifactResponse",
        "WorkerResponse",
        "file.FileRemoteResponse",
        "file.FileRepositoryResponse",
        "RepositoryVersionResponse",
        "file.FileContentResponse",
        "file.FilePublicationResponse",
        "file.FileDistributionResponse",
    ] {
        check(schema, "pulp_href", true, false);
    }
    check(ASYNC, "task", false, false);
    check("file.FileRepositoryResponse", "versions_href", true, false);
    check(
        "file.FileRepositoryResponse",
        "latest_version_href",
        true,
        false,
    );
    check("file.FileRepositoryResponse", "remote", false, true);
    check("RepositoryVersionResponse", "repository", true, false);
    check(
        "file.FilePublicationResponse",
        "repository_version",
        false,
        false,
    );
    check("file.FilePublicationResponse", "repository", false, false);
    check("file.FileDistributionResponse", "repository", false, true);
    check("file.FileDistributionResponse", "publication", false, true);
    check(
        "file.FileDistributionResponse",
        "repository_version",
        false,
        true,
    );
    check("TaskResponse", "worker", true, true);
    assert!(bad.is_empty(), "{bad:#?}");
    for (schema, field) in [
        ("TaskResponse", "prn"),
        ("file.FileDistributionResponse", "base_url"),
    ] {
        assert!(
            schemas[schema]["properties"][field].get("format").is_none(),
            "{schema}.{field}"
        );
    }
    let created = &schemas["TaskResponse"]["properties"]["created_resources"]["items"];
    assert_eq!(created["format"], "uri");
}

const ASYNC: &str = openapi::ASYNC_OPERATION;

#[test]
fn lists_declare_the_filters_they_take() {
    let doc = openapi::document(&pulp_rs::api::api_builder(&pulp_rs::plugins::registry()));
    let ops = operations(&doc);
    let mut bad = Vec::new();
    for (id, filters) in [
        (
            "workers_list",
            &["online", "missing", "name__icontains"][..],
        ),
        (
            "tasks_list",
            &["parent_task", "task_group", "started_at__lte"][..],
        ),
        ("artifacts_list", &["md5", "sha1", "sha256"][..]),
    ] {
        let params = ops[id]["parameters"].as_array().unwrap();
        for f in filters {
            if !params.iter().any(|p| p["name"] == *f) {
                bad.push(format!("{id}: {f}"));
            }
        }
    }
    let online = ops["workers_list"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "online")
        .cloned()
        .unwrap_or_default();
    assert_eq!(online["schema"]["type"], "boolean", "{online}");
    assert!(bad.is_empty(), "{bad:#?}");
}

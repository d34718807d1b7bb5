//! `GET /pulp/api/v3/` (public): pulpcore's API root, Django REST framework's `APIRootView` of
//! its default router: a JSON object naming each top-level list endpoint
//! (`"repositories/file/file"`) with its absolute URL. It lists the parameterless GET routes of
//! the route table, so it names exactly what is implemented. Like pulpcore's, it is not in the
//! OpenAPI document.

use std::sync::Arc;

use axum::http::Method;
use axum::routing::{get, MethodRouter};
use axum::Json;
use serde_json::{Map, Value};

use super::list::Query;
use super::{ApiBuilder, AppState, API_ROOT};

/// The endpoint names the root lists (`"tasks"`, `"repositories/file/file"`), sorted.
pub fn endpoints(b: &ApiBuilder) -> Vec<String> {
    let mut out: Vec<String> = b
        .routes
        .iter()
        .filter(|r| r.method == Method::GET && !r.path.contains('{'))
        .filter_map(|r| r.path.strip_prefix(API_ROOT))
        .filter(|rest| !rest.is_empty() && !rest.starts_with("docs/"))
        .map(|rest| rest.trim_end_matches('/').to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The root's handler, answering with `endpoints` under the request's origin.
pub fn route(endpoints: Vec<String>) -> MethodRouter<AppState> {
    let endpoints = Arc::new(endpoints);
    get(move |q: Query| {
        let endpoints = endpoints.clone();
        async move {
            let body: Map<String, Value> = endpoints
                .iter()
                .map(|e| {
                    (
                        e.clone(),
                        Value::from(format!("{}{API_ROOT}{e}/", q.origin)),
                    )
                })
                .collect();
            Json(Value::Object(body))
        }
    })
}

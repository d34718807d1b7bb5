//! The route table: every endpoint is registered once, with its axum route *and* its OpenAPI
//! operation (path as pulp-glue knows it, `operationId`, tag, parameters, body and responses).
//! The router and `/docs/api.json` are both built from this table, so the document describes
//! exactly what is implemented.

use std::collections::BTreeMap;

use axum::http::Method;
use axum::routing::MethodRouter;
use serde_json::Value;

use super::AppState;

/// A query or path parameter of an operation.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    /// `"query"` or `"path"`.
    pub location: &'static str,
    /// A JSON schema (`{"type": "string"}`...).
    pub schema: Value,
    pub required: bool,
    pub description: String,
}

/// What the OpenAPI document says of one operation.
#[derive(Debug, Clone, Default)]
pub struct OpDoc {
    pub summary: String,
    pub params: Vec<Param>,
    /// Name of the request body schema in `components.schemas`.
    pub request: Option<String>,
    /// Media types the request body may have; empty means `application/json` only.
    pub request_types: Vec<&'static str>,
    /// `(status, response schema name)`; `None` for an empty body.
    pub responses: Vec<(u16, Option<String>)>,
    /// Reachable without credentials.
    pub public: bool,
}

impl OpDoc {
    pub fn summary(&mut self, s: &str) -> &mut OpDoc {
        self.summary = s.to_string();
        self
    }
    /// An optional query parameter of `type_` (`string`, `integer`, `boolean`, or `array` of
    /// strings, sent comma-separated).
    pub fn query(&mut self, name: &str, type_: &str, description: &str) -> &mut OpDoc {
        let schema = if type_ == "array" {
            serde_json::json!({"type": "array", "items": {"type": "string"}})
        } else {
            serde_json::json!({ "type": type_ })
        };
        self.params.push(Param {
            name: name.to_string(),
            location: "query",
            schema,
            required: false,
            description: description.to_string(),
        });
        self
    }
    /// A required path parameter (e.g. `file_file_remote_href`).
    pub fn path_param(&mut self, name: &str) -> &mut OpDoc {
        self.params.push(Param {
            name: name.to_string(),
            location: "path",
            schema: serde_json::json!({"type": "string"}),
            required: true,
            description: String::new(),
        });
        self
    }
    /// `fields` / `exclude_fields`, which every list and detail accepts.
    pub fn field_selection(&mut self) -> &mut OpDoc {
        self.query(
            "fields",
            "array",
            "A list of fields to include in the response.",
        )
        .query(
            "exclude_fields",
            "array",
            "A list of fields to exclude from the response.",
        )
    }
    /// `limit` / `offset`, which every list accepts.
    pub fn paging(&mut self) -> &mut OpDoc {
        self.query("limit", "integer", "Number of results to return per page.")
            .query(
                "offset",
                "integer",
                "The initial index from which to return the results.",
            )
    }
    pub fn request(&mut self, schema: &str) -> &mut OpDoc {
        self.request = Some(schema.to_string());
        self
    }
    /// A request body of `schema` in any of `types` (`multipart/form-data` for a file).
    pub fn request_as(&mut self, schema: &str, types: &[&'static str]) -> &mut OpDoc {
        self.request = Some(schema.to_string());
        self.request_types = types.to_vec();
        self
    }
    /// A request header parameter (`Content-Range`).
    pub fn header(&mut self, name: &str, required: bool, description: &str) -> &mut OpDoc {
        self.params.push(Param {
            name: name.to_string(),
            location: "header",
            schema: serde_json::json!({"type": "string"}),
            required,
            description: description.to_string(),
        });
        self
    }
    pub fn response(&mut self, status: u16, schema: Option<&str>) -> &mut OpDoc {
        self.responses.push((status, schema.map(str::to_string)));
        self
    }
    pub fn public(&mut self) -> &mut OpDoc {
        self.public = true;
        self
    }
}

/// One registered endpoint.
pub struct ApiRoute {
    pub method: Method,
    /// The axum path (`/pulp/api/v3/remotes/file/file/{id}/`).
    pub path: String,
    /// The OpenAPI path (`{file_file_remote_href}` for a detail, else the same as `path`).
    pub openapi_path: String,
    pub operation_id: String,
    pub tag: String,
    pub handler: MethodRouter<AppState>,
    pub doc: OpDoc,
}

/// Collects routes and component schemas.
#[derive(Default)]
pub struct ApiBuilder {
    pub routes: Vec<ApiRoute>,
    pub schemas: BTreeMap<String, Value>,
}

impl ApiBuilder {
    pub fn new() -> ApiBuilder {
        ApiBuilder::default()
    }

    /// Registers `handler` (e.g. `get(list)`) for `method` at `path`, documented as
    /// `operation_id` under `tag` at `openapi_path`. Returns the doc to fill in.
    pub fn route(
        &mut self,
        method: Method,
        path: &str,
        openapi_path: &str,
        operation_id: &str,
        tag: &str,
        handler: MethodRouter<AppState>,
    ) -> &mut OpDoc {
        self.routes.push(ApiRoute {
            method,
            path: path.to_string(),
            openapi_path: openapi_path.to_string(),
            operation_id: operation_id.to_string(),
            tag: tag.to_string(),
            handler,
            doc: OpDoc::default(),
        });
        &mut self.routes.last_mut().expect("just pushed").doc
    }

    /// Adds (or replaces) a component schema.
    pub fn schema(&mut self, name: &str, schema: Value) {
        self.schemas.insert(name.to_string(), schema);
    }

    /// Paths (axum syntax) reachable without credentials, by method.
    pub fn public_routes(&self) -> Vec<(Method, String)> {
        self.routes
            .iter()
            .filter(|r| r.doc.public)
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect()
    }
}

//! The OpenAPI 3 document at `/pulp/api/v3/docs/api.json`, built from the route table (to be
//! written), and the browsable page at `/pulp/api/v3/docs/`.
//!
//! Resource modules register their own component schemas with [`ApiBuilder::schema`], using
//! the helpers here for the shapes every resource shares.

use serde_json::{json, Value};

use super::ApiBuilder;

/// The schema name of `{"task": href}`, the answer of every call that dispatches a task.
pub const ASYNC_OPERATION: &str = "AsyncOperationResponse";

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
}

/// The document describing every route of `b`.
pub fn document(_b: &ApiBuilder) -> Value {
    json!({"openapi": "3.0.3", "paths": {}})
}

//! Request bodies: [`JsonObject`] reads a JSON object (400 on malformed JSON, 413 when too
//! large); [`Fields`] (from [`crate::validation`]) then takes it field by field, so every error
//! names its field the way pulpcore does and unknown fields are rejected.

use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use super::error::ApiError;
pub use crate::validation::Fields;

/// A request body that must be a JSON object. Malformed JSON or another JSON type is a 400; a
/// body over [`super::MAX_BODY_BYTES`] a 413.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(format!(
                        "Request body is larger than {} bytes.",
                        super::MAX_BODY_BYTES
                    ))
                } else {
                    ApiError::invalid(format!("cannot read the request body: {e}"))
                }
            })?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(JsonObject(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(JsonObject(m)),
            Ok(_) => Err(ApiError::invalid(
                "Invalid data. Expected a dictionary (JSON object).",
            )),
            Err(e) => Err(ApiError::field("detail", format!("JSON parse error - {e}"))),
        }
    }
}

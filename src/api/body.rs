//! Request bodies: a JSON object read field by field, so every error names its field the way
//! pulpcore does (`{"url": ["This field is required."]}`) and unknown fields are rejected.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Request};
use serde_json::{Map, Value};

use super::error::ApiError;

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

/// Takes typed fields out of a body, collecting one error list per field.
///
/// Getters return `None` when the field is absent, null or of the wrong type (the last one
/// records an error). Call [`Fields::finish`] last: it fails with every error collected, and
/// with "Unexpected field." for each field no getter took.
pub struct Fields {
    map: Map<String, Value>,
    errors: BTreeMap<String, Vec<String>>,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Fields {
        Fields {
            map,
            errors: BTreeMap::new(),
        }
    }

    /// Records an error against `field`.
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_string())
            .or_default()
            .push(message.into());
    }

    /// Whether the body carries `field` (null included).
    pub fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    /// Whether the body carries `field` as an explicit null.
    pub fn is_null(&self, field: &str) -> bool {
        matches!(self.map.get(field), Some(Value::Null))
    }

    /// Takes the raw value (null included).
    pub fn value(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field)
    }

    /// Takes a string; `required` records "This field is required." when absent or null.
    pub fn string(&mut self, field: &str, required: bool) -> Option<String> {
        match self.map.remove(field) {
            None | Some(Value::Null) => {
                if required {
                    self.error(field, "This field is required.");
                }
                None
            }
            Some(Value::String(s)) => {
                if required && s.is_empty() {
                    self.error(field, "This field may not be blank.");
                    None
                } else {
                    Some(s)
                }
            }
            Some(_) => {
                self.error(field, "Not a valid string.");
                None
            }
        }
    }

    /// Takes a boolean.
    pub fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.error(field, "Must be a valid boolean.");
                None
            }
        }
    }

    /// Takes a non-negative integer.
    pub fn uint(&mut self, field: &str) -> Option<u64> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(_) => {
                self.error(field, "A valid non-negative integer is required.");
                None
            }
        }
    }

    /// Takes a number.
    pub fn number(&mut self, field: &str) -> Option<f64> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                self.error(field, "A valid number is required.");
                None
            }
        }
    }

    /// Takes a list of strings.
    pub fn string_list(&mut self, field: &str) -> Option<Vec<String>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s),
                        _ => {
                            self.error(field, "Expected a list of strings.");
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Some(_) => {
                self.error(field, "Expected a list of items.");
                None
            }
        }
    }

    /// Takes an object whose values are strings (`pulp_labels`).
    pub fn string_map(&mut self, field: &str) -> Option<BTreeMap<String, String>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            out.insert(k, s);
                        }
                        _ => {
                            self.error(field, "Values must be strings.");
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Some(_) => {
                self.error(field, "Expected a dictionary of items.");
                None
            }
        }
    }

    /// Fails with every collected error and every field nobody took.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let rest: Vec<String> = self.map.keys().cloned().collect();
        for field in rest {
            self.error(&field, "Unexpected field.");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

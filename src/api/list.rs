//! Lists and field selection: `limit` / `offset` pagination answering
//! `{count, next, previous, results}` (default page 100), and `fields` / `exclude_fields`.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde_json::{json, Value};

use super::error::ApiError;

/// The page size when a request gives no `limit`.
pub const DEFAULT_LIMIT: u64 = 100;
/// The largest `limit` honoured.
pub const MAX_LIMIT: u64 = 1000;

/// The query string of a request, every pair in order, plus the request's path and host for
/// building `next` / `previous` links.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub pairs: Vec<(String, String)>,
    pub path: String,
    pub origin: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs = match parts.uri.query() {
            Some(q) => url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
            None => Vec::new(),
        };
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        Ok(Query {
            pairs,
            path: parts.uri.path().to_string(),
            origin: format!("http://{host}"),
        })
    }
}

impl Query {
    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `limit` and `offset`, validated.
    pub fn page(&self) -> Result<(u64, u64), ApiError> {
        let limit = match self.get("limit") {
            None | Some("") => DEFAULT_LIMIT,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| ApiError::field("limit", "A valid integer is required."))?
                .clamp(1, MAX_LIMIT),
        };
        let offset = match self.get("offset") {
            None | Some("") => 0,
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| ApiError::field("offset", "A valid integer is required."))?,
        };
        Ok((limit, offset))
    }

    /// A comma-separated list parameter, which may also repeat (`fields=a,b&fields=c`).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Rejects parameters outside `known` (pagination and field selection are always known),
    /// so a misspelt filter is a 400 rather than silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        const ALWAYS: &[&str] = &["limit", "offset", "fields", "exclude_fields", "ordering"];
        for (k, _) in &self.pairs {
            if !ALWAYS.contains(&k.as_str()) && !known.contains(&k.as_str()) {
                return Err(ApiError::field(k, "Unknown filter."));
            }
        }
        Ok(())
    }

    /// Applies `fields` / `exclude_fields` to one object.
    pub fn select(&self, value: Value) -> Value {
        select_fields(value, &self.list("fields"), &self.list("exclude_fields"))
    }

    /// A page of `results` (already limited and offset) out of `count`, fields selected.
    pub fn paginate(&self, count: u64, results: Vec<Value>) -> Result<Value, ApiError> {
        let (limit, offset) = self.page()?;
        let link = |off: u64| {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &self.pairs {
                if k != "limit" && k != "offset" {
                    ser.append_pair(k, v);
                }
            }
            ser.append_pair("limit", &limit.to_string());
            if off > 0 {
                ser.append_pair("offset", &off.to_string());
            }
            format!("{}{}?{}", self.origin, self.path, ser.finish())
        };
        let next = (offset + limit < count).then(|| link(offset + limit));
        let previous = (offset > 0).then(|| link(offset.saturating_sub(limit)));
        let results: Vec<Value> = results.into_iter().map(|v| self.select(v)).collect();
        Ok(json!({"count": count, "next": next, "previous": previous, "results": results}))
    }
}

/// Keeps only `fields` (when given), then drops `exclude`.
pub fn select_fields(value: Value, fields: &[String], exclude: &[String]) -> Value {
    let Value::Object(mut map) = value else {
        return value;
    };
    if !fields.is_empty() {
        let keep: HashSet<&str> = fields.iter().map(String::as_str).collect();
        map.retain(|k, _| keep.contains(k.as_str()));
    }
    for f in exclude {
        map.remove(f);
    }
    Value::Object(map)
}

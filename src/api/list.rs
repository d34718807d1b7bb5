//! Lists and field selection: `limit` / `offset` pagination answering
//! `{count, next, previous, results}` (default page 100), and `fields` / `exclude_fields`.

use std::collections::HashSet;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use serde_json::{json, Value};

use super::error::ApiError;
use crate::models::SortKey;

/// The page size when a request gives no `limit`.
pub const DEFAULT_LIMIT: u64 = 100;
/// The largest `limit` honoured.
pub const MAX_LIMIT: u64 = 1000;
/// The largest `offset` accepted: the databases take offsets as signed 64-bit integers.
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// What a `limit` / `offset` value says, before range checks.
enum Count {
    Fits(u64),
    /// All digits, more than a `u64` holds.
    Huge,
    /// A well-formed negative integer.
    Negative,
}

/// `None` when `v` is not an integer at all.
fn parse_count(v: &str) -> Option<Count> {
    let (negative, digits) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v.strip_prefix('+').unwrap_or(v)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if negative {
        return Some(if digits.bytes().all(|b| b == b'0') {
            Count::Fits(0)
        } else {
            Count::Negative
        });
    }
    Some(digits.parse::<u64>().map_or(Count::Huge, Count::Fits))
}

/// A date-time filter value as Django's `DateTimeField` takes it: ISO 8601 with a zone (`Z`,
/// `+00:00`, `+0000`, `+00`), or a date-time or date without one (taken as UTC), years 1 to
/// 9999. Anything else is a 400 naming `field`.
pub fn parse_date_time(field: &str, s: &str) -> Result<DateTime<Utc>, ApiError> {
    let invalid = || ApiError::field(field, "Enter a valid date/time.");
    let with_zone = DateTime::parse_from_rfc3339(s).ok().or_else(|| {
        // `%#z` reads `+00:00`, `+0000` and `+00`.
        ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"]
            .iter()
            .find_map(|fmt| DateTime::parse_from_str(s, fmt).ok())
    });
    let parsed = if let Some(t) = with_zone {
        Some(t.with_timezone(&Utc))
    } else {
        [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(s, fmt).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|t| t.and_utc())
    };
    let t = parsed.ok_or_else(invalid)?;
    // chrono reads `-5000-01-01` and `+10000-01-01`; Django (and PostgreSQL) do not.
    if !(1..=9999).contains(&t.year()) || !s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(invalid());
    }
    Ok(t)
}

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

    /// `limit` and `offset`, validated: `limit` is a positive integer (larger than
    /// [`MAX_LIMIT`], however large, is [`MAX_LIMIT`]); `offset` is an integer from 0 to
    /// [`MAX_OFFSET`]. Anything else is a 400 naming the parameter.
    pub fn page(&self) -> Result<(u64, u64), ApiError> {
        let limit = match self.get("limit") {
            None | Some("") => DEFAULT_LIMIT,
            Some(v) => match parse_count(v) {
                Some(Count::Fits(0)) | Some(Count::Negative) => {
                    return Err(ApiError::field(
                        "limit",
                        "Ensure this value is greater than or equal to 1.",
                    ))
                }
                Some(Count::Fits(n)) => n.min(MAX_LIMIT),
                Some(Count::Huge) => MAX_LIMIT,
                None => return Err(ApiError::field("limit", "A valid integer is required.")),
            },
        };
        let offset = match self.get("offset") {
            None | Some("") => 0,
            Some(v) => match parse_count(v) {
                Some(Count::Fits(n)) if n <= MAX_OFFSET => n,
                Some(Count::Fits(_)) | Some(Count::Huge) => {
                    return Err(ApiError::field(
                        "offset",
                        format!("Ensure this value is less than or equal to {MAX_OFFSET}."),
                    ))
                }
                Some(Count::Negative) => {
                    return Err(ApiError::field(
                        "offset",
                        "Ensure this value is greater than or equal to 0.",
                    ))
                }
                None => return Err(ApiError::field("offset", "A valid integer is required.")),
            },
        };
        Ok((limit, offset))
    }

    /// A filter's value; an empty one is no filter (as django-filter does).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A date-time filter (see [`parse_date_time`]); absent or empty is `None`.
    pub fn date_time(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.value(name)
            .map(|v| parse_date_time(name, v))
            .transpose()
    }

    /// A boolean filter: `true` / `True` / `1` or `false` / `False` / `0`; absent or empty is
    /// `None`, anything else a 400.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.value(name) {
            None => Ok(None),
            Some("true" | "True" | "1") => Ok(Some(true)),
            Some("false" | "False" | "0") => Ok(Some(false)),
            Some(_) => Err(ApiError::field(name, "Must be a valid boolean.")),
        }
    }

    /// An integer filter; absent or empty is `None`, anything else but an `i64` a 400.
    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.value(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::field(name, "Enter a number."))
            })
            .transpose()
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
        const ALWAYS: &[&str] = &["limit", "offset", "fields", "exclude_fields"];
        for (k, _) in &self.pairs {
            if !ALWAYS.contains(&k.as_str()) && !known.contains(&k.as_str()) {
                return Err(ApiError::field(k, "Unknown filter."));
            }
        }
        Ok(())
    }

    /// `ordering`: fields of `allowed` (a list's declared ones), comma-separated or repeated,
    /// each descending when prefixed with `-`; any other is a 400. Lists that honour it name
    /// `ordering` among their known parameters ([`Query::only`] refuses it elsewhere).
    pub fn ordering(&self, allowed: &[&'static str]) -> Result<Vec<SortKey>, ApiError> {
        let mut out = Vec::new();
        for term in self.list("ordering") {
            let (descending, name) = match term.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, term.as_str()),
            };
            match allowed.iter().find(|a| **a == name) {
                Some(field) => out.push(SortKey { field, descending }),
                None => {
                    return Err(ApiError::field(
                        "ordering",
                        format!(
                            "Select a valid choice. {} is not one of the available choices.",
                            crate::plugins::excerpt(&term)
                        ),
                    ))
                }
            }
        }
        Ok(out)
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

/// Sorts objects by `keys`, stably: each key compares the objects' values of its field
/// (numbers as numbers, strings, booleans; null or missing first); `pk` and `pulp_id` compare
/// the `pulp_href`s, which carry time-ordered (v7) ids.
pub fn sort_json(items: &mut [Value], keys: &[SortKey]) {
    use std::cmp::Ordering;
    fn cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
        match (a.filter(|v| !v.is_null()), b.filter(|v| !v.is_null())) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(Value::Number(x)), Some(Value::Number(y))) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
            (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
            (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        }
    }
    if keys.is_empty() {
        return;
    }
    items.sort_by(|a, b| {
        for k in keys {
            let field = match k.field {
                "pk" | "pulp_id" => "pulp_href",
                f => f,
            };
            let o = cmp(a.get(field), b.get(field));
            let o = if k.descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Query {
        Query {
            pairs: url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
            ..Query::default()
        }
    }

    #[test]
    fn page_bounds() {
        assert_eq!(query("").page().unwrap(), (DEFAULT_LIMIT, 0));
        assert_eq!(query("limit=5&offset=7").page().unwrap(), (5, 7));
        assert_eq!(query("limit=5000").page().unwrap().0, MAX_LIMIT);
        assert_eq!(query("limit=1%2B0").page().ok(), None);
        assert_eq!(query("limit=%2B3&offset=-0").page().unwrap(), (3, 0));
        assert_eq!(
            query("limit=99999999999999999999999").page().unwrap().0,
            MAX_LIMIT
        );
        assert_eq!(
            query("offset=9223372036854775807").page().unwrap().1,
            MAX_OFFSET
        );
        for bad in [
            "limit=0",
            "limit=-0",
            "limit=-1",
            "limit=x",
            "limit=-",
            "offset=9223372036854775808",
            "offset=18446744073709551616",
            "offset=-3",
            "offset=1e3",
        ] {
            assert!(query(bad).page().is_err(), "{bad}");
        }
    }

    #[test]
    fn date_times_as_django_reads_them() {
        let utc = parse_date_time("f", "2024-05-06T07:08:09").unwrap();
        for same in [
            "2024-05-06T07:08:09Z",
            "2024-05-06T07:08:09+00:00",
            "2024-05-06T07:08:09+0000",
            "2024-05-06T07:08:09+00",
            "2024-05-06T09:08:09+0200",
            "2024-05-06T07:08:09.000000Z",
            "2024-05-06 07:08:09+00:00",
        ] {
            assert_eq!(parse_date_time("f", same).unwrap(), utc, "{same}");
        }
        for ok in [
            "2024-05-06T07:08:09Z",
            "2024-05-06T07:08:09.123456+02:00",
            "2024-05-06T07:08:09",
            "2024-05-06 07:08",
            "2024-05-06",
            "0001-01-01T00:00:00Z",
            "9999-12-31",
        ] {
            assert!(parse_date_time("f", ok).is_ok(), "{ok}");
        }
        assert_eq!(
            parse_date_time("f", "2024-05-06T09:08:09+02:00").unwrap(),
            parse_date_time("f", "2024-05-06T07:08:09").unwrap()
        );
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "-5000-01-01",
            "+10000-01-01T00:00:00",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
        ] {
            assert!(parse_date_time("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans_and_integers() {
        let q = query("a=True&b=0&c=yes&d=&n=-4&m=4.0");
        assert_eq!(q.boolean("a").unwrap(), Some(true));
        assert_eq!(q.boolean("b").unwrap(), Some(false));
        assert!(q.boolean("c").is_err());
        assert_eq!(q.boolean("d").unwrap(), None);
        assert_eq!(q.boolean("absent").unwrap(), None);
        assert_eq!(q.integer("n").unwrap(), Some(-4));
        assert!(q.integer("m").is_err());
    }
}

//! Serving a stored artifact: headers (`Content-Type` guessed from the requested path,
//! `ETag` = quoted sha256, `Last-Modified`, `Accept-Ranges`, `X-PULP-ARTIFACT-SIZE`),
//! conditional GET (`If-None-Match`, `If-Modified-Since` -> 304), a single byte range
//! (`Range: bytes=a-b | a- | -n` -> 206 with `Content-Range`; unsatisfiable -> 416 with
//! `Content-Range: bytes */size`; several ranges or an `If-Range` that does not match -> the
//! whole file). The file is streamed from storage; its path comes from the artifact row.

use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{empty, text};
use crate::models::Artifact;
use crate::storage::ArtifactStorage;

/// A requested byte range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// No usable `Range`: the whole file.
    Full,
    Bytes(u64, u64),
    Unsatisfiable,
}

/// Parses a `Range` header against a file of `size` bytes, as aiohttp's `FileResponse` (which
/// pulpcore serves files with) reads it: a range that is not `bytes=<digits>-<digits>` with one
/// side at least, or whose end is before its start, is malformed and answered 416 like one past
/// the end; a unit other than `bytes` is ignored (RFC 9110) and so are several ranges (the whole
/// file, which HTTP allows).
pub fn parse_range(value: Option<&str>, size: u64) -> Range {
    let Some(v) = value else { return Range::Full };
    let v = v.trim();
    let Some(spec) = v.strip_prefix("bytes=") else {
        // Another unit; `bytes` misspelt or without `=` is malformed.
        return if v.get(..5).is_some_and(|u| u.eq_ignore_ascii_case("bytes")) {
            Range::Unsatisfiable
        } else {
            Range::Full
        };
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if (a.is_empty() && b.is_empty())
        || (!a.is_empty() && !digits(a))
        || (!b.is_empty() && !digits(b))
    {
        return Range::Unsatisfiable;
    }
    if a.is_empty() {
        // Suffix: the last n bytes.
        let n = b.parse::<u64>().unwrap_or(u64::MAX);
        if n == 0 || size == 0 {
            return Range::Unsatisfiable;
        }
        return Range::Bytes(size.saturating_sub(n), size - 1);
    }
    let start = a.parse::<u64>().unwrap_or(u64::MAX);
    let end = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => Some(e),
            Ok(_) => return Range::Unsatisfiable,
            Err(_) => Some(u64::MAX),
        }
    };
    if start >= size {
        return Range::Unsatisfiable;
    }
    Range::Bytes(start, end.unwrap_or(size - 1).min(size - 1))
}

/// The range a request asks of a file of `size` bytes whose entity tag is `etag`: an
/// `If-Range` that does not match asks for the whole file.
pub fn requested_range(req: &HeaderMap, size: u64, etag: &str) -> Range {
    let range = parse_range(req.get(header::RANGE).and_then(|v| v.to_str().ok()), size);
    match req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(if_range) if if_range.trim() != etag => Range::Full,
        _ => range,
    }
}

/// The 416 answer for a file of `size` bytes.
pub fn unsatisfiable(mut headers: HeaderMap, size: u64) -> Response {
    headers.insert(header::CONTENT_RANGE, hv(&format!("bytes */{size}")));
    headers.remove(header::CONTENT_LENGTH);
    (StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response()
}

/// `Content-Type` for a requested path.
pub fn content_type(rel: &str) -> String {
    mime_guess::from_path(rel)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_string()
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a conditional request can be answered 304.
fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*");
    }
    if let Some(ims) = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    {
        let secs = |t: SystemTime| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        return secs(modified) <= secs(ims);
    }
    false
}

/// The common headers of a served file.
pub fn file_headers(
    rel: &str,
    sha256: Option<&str>,
    size: Option<u64>,
    modified: DateTime<Utc>,
) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, hv(&content_type(rel)));
    if let Some(sha) = sha256 {
        h.insert(header::ETAG, hv(&format!("\"{sha}\"")));
    }
    h.insert(
        header::LAST_MODIFIED,
        hv(&httpdate::fmt_http_date(SystemTime::from(modified))),
    );
    if let Some(size) = size {
        h.insert("x-pulp-artifact-size", hv(&size.to_string()));
    }
    h
}

/// Serves a stored artifact for the request path `rel`.
pub async fn artifact(
    storage: &ArtifactStorage,
    a: &Artifact,
    rel: &str,
    modified: DateTime<Utc>,
    req: &HeaderMap,
    head: bool,
) -> Response {
    let size = a.size;
    let etag = format!("\"{}\"", a.sha256);
    let mut headers = file_headers(rel, Some(&a.sha256), Some(size), modified);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if not_modified(req, &etag, SystemTime::from(modified)) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let (status, start, len) = match requested_range(req, size, &etag) {
        Range::Full => (StatusCode::OK, 0, size),
        Range::Bytes(s, e) => {
            headers.insert(header::CONTENT_RANGE, hv(&format!("bytes {s}-{e}/{size}")));
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        Range::Unsatisfiable => return unsatisfiable(headers, size),
    };
    headers.insert(header::CONTENT_LENGTH, hv(&len.to_string()));
    if head {
        return (status, headers, empty()).into_response();
    }
    let path = storage.absolute(&a.file);
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(artifact = %a.sha256, error = %e, "artifact file missing from storage");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500: artifact file missing\n",
            );
        }
    };
    if start > 0 {
        if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
            tracing::error!(error = %e, "cannot seek in an artifact file");
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500: cannot read artifact\n",
            );
        }
    }
    let body = Body::from_stream(ReaderStream::with_capacity(file.take(len), 256 * 1024));
    (status, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Range::Full);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Range::Bytes(0, 3));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Range::Bytes(4, 9));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Range::Bytes(7, 9));
        assert_eq!(parse_range(Some("bytes=5-100"), 10), Range::Bytes(5, 9));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Range::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Range::Full);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Range::Unsatisfiable);
        // Malformed: 416, as aiohttp answers.
        for bad in [
            "bytes=-1-11",
            "bytes=5-3",
            "bytes=-",
            "bytes=a-3",
            "bytes=3-b",
            "bytes=3",
            "bytes 0-3",
            "bytes=+1-2",
        ] {
            assert_eq!(parse_range(Some(bad), 10), Range::Unsatisfiable, "{bad}");
        }
        assert_eq!(
            parse_range(Some("bytes=3-99999999999999999999999"), 10),
            Range::Bytes(3, 9)
        );
    }
}

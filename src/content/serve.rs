//! Serving a stored artifact: headers (`Content-Type` guessed from the requested path,
//! `ETag` = quoted sha256, `Last-Modified`, `Accept-Ranges`, `X-PULP-ARTIFACT-SIZE`),
//! conditional GET (`If-None-Match`, `If-Modified-Since` -> 304), a single byte range
//! (`Range: bytes=a-b | a- | -n` -> 206 with `Content-Range`; unsatisfiable -> 416 with
//! `Content-Range: bytes */size`; several ranges or an `If-Range` that does not match -> the
//! whole file).
//!
//! - [`Prepared`]: the headers of a file, built once when its path is resolved (and kept in the
//!   resolution cache), cloned per request.
//! - [`MappedFiles`]: the zero-copy path. hyper cannot `sendfile`, so a file is memory-mapped
//!   once and the mapping shared by every request for it (a bounded map of live mappings):
//!   the body is a slice of the mapping, written to the socket straight from the page cache
//!   with no userspace copy, no buffer per request and no thread hop (opening and mapping a
//!   file are a few microseconds on the runtime thread; a page not in the page cache faults
//!   on it, as nginx without `aio` blocks its worker). Memory is flat in the number of
//!   downloads: 1,000 clients of one file share one mapping. Artifact files are content
//!   addressed, written to a temp file and renamed into place, never modified or truncated
//!   (a deleted file's mapping stays valid), so a mapping is always its artifact's bytes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};

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
        h.insert("x-pulp-artifact-size", HeaderValue::from(size));
    }
    h
}

/// A stored file ready to answer: where it is and its headers.
pub struct Prepared {
    /// The artifact's file, relative to the storage root.
    file: String,
    sha256: String,
    size: u64,
    etag: String,
    modified: SystemTime,
    headers: HeaderMap,
    /// The last segment of the request path (what a client redirected to S3 saves as).
    download_name: String,
}

impl Prepared {
    /// The artifact `a` served at the request path `rel`.
    pub fn new(a: &Artifact, rel: &str, modified: DateTime<Utc>) -> Prepared {
        let mut headers = file_headers(rel, Some(&a.sha256), Some(a.size), modified);
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        Prepared {
            file: a.file.clone(),
            sha256: a.sha256.clone(),
            size: a.size,
            etag: format!("\"{}\"", a.sha256),
            modified: SystemTime::from(modified),
            headers,
            download_name: rel.rsplit('/').next().unwrap_or(rel).to_string(),
        }
    }
}

/// Live mappings kept at most (then about a quarter are let go).
pub const MAX_MAPPED: usize = 4096;
/// Files up to this size are read in when mapped (one fault instead of one per page).
const POPULATE_BELOW: u64 = 4 * 1024 * 1024;

/// Memory-mapped artifact files shared by the requests for them; see the module doc.
#[derive(Default)]
pub struct MappedFiles {
    map: Mutex<HashMap<String, Bytes>>,
}

impl MappedFiles {
    /// The bytes of the file at `file` (relative to the storage root), which must be `size`
    /// bytes long.
    pub fn get(&self, storage: &ArtifactStorage, file: &str, size: u64) -> std::io::Result<Bytes> {
        if size == 0 {
            return Ok(Bytes::new());
        }
        if let Some(b) = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(file)
        {
            return Ok(b.clone());
        }
        let f = std::fs::File::open(storage.absolute(file))?;
        let len = f.metadata()?.len();
        if len != size {
            return Err(std::io::Error::other(format!(
                "the file is {len} bytes, its artifact {size}"
            )));
        }
        let mut opts = memmap2::MmapOptions::new();
        if size <= POPULATE_BELOW {
            opts.populate();
        }
        // SAFETY: artifact files are never modified or truncated once in place (see the module
        // doc): the mapping cannot change under the slices handed out.
        let mapped = unsafe { opts.map(&f)? };
        let bytes = Bytes::from_owner(mapped);
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_MAPPED {
            let drop_keys: Vec<String> = map.keys().take(MAX_MAPPED / 4).cloned().collect();
            for k in drop_keys {
                map.remove(&k);
            }
        }
        map.insert(file.to_string(), bytes.clone());
        Ok(bytes)
    }

    /// Lets every mapping go (requests still sending keep theirs).
    pub fn clear(&self) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// What a request for a prepared file gets: the status, the headers, and the byte range
/// `start .. start + len` of the file to send ([`Plan::Send`]); or a complete answer (304, 416).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    start: u64,
    len: u64,
}

enum Plan {
    Send(Answer),
    Done(Response),
}

#[inline]
fn plan(p: &Prepared, req: &HeaderMap) -> Plan {
    let size = p.size;
    let mut headers = p.headers.clone();
    if !req.is_empty() && not_modified(req, &p.etag, p.modified) {
        return Plan::Done((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    let (status, start, len) = match requested_range(req, size, &p.etag) {
        Range::Full => (StatusCode::OK, 0, size),
        Range::Bytes(s, e) => {
            headers.insert(header::CONTENT_RANGE, hv(&format!("bytes {s}-{e}/{size}")));
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        Range::Unsatisfiable => return Plan::Done(unsatisfiable(headers, size)),
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Plan::Send(Answer {
        status,
        headers,
        start,
        len,
    })
}

/// Answers a request for a prepared file from whichever backend stores it: the filesystem's
/// straight from the shared mapping ([`respond`], no await, no thread hop), object storage's
/// by streaming the object or redirecting to it ([`respond_object`]).
pub async fn respond_stored(
    files: &MappedFiles,
    storage: &ArtifactStorage,
    p: &Prepared,
    req: &HeaderMap,
    head: bool,
) -> Response {
    if storage.local_root().is_some() {
        return respond(files, storage, p, req, head);
    }
    respond_object(storage, p, req, head).await
}

fn missing(p: &Prepared, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(artifact = %p.sha256, error = %e, "artifact missing from storage");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "500: artifact file missing\n",
    )
}

/// Answers from object storage: a 302 to a pre-signed URL when the storage redirects (the
/// client's `Range` and conditional headers then go to the object store), else the object (or
/// the requested range of it) streamed through with bounded memory: the body is pulled from
/// S3 only as fast as the client takes it.
async fn respond_object(
    storage: &ArtifactStorage,
    p: &Prepared,
    req: &HeaderMap,
    head: bool,
) -> Response {
    if let Some(expires) = storage.redirect() {
        let method = if head {
            axum::http::Method::HEAD
        } else {
            axum::http::Method::GET
        };
        return match storage
            .presigned_url(&p.file, method, expires, &p.download_name)
            .await
        {
            Ok(Some(url)) => {
                let mut headers = HeaderMap::new();
                headers.insert(header::LOCATION, hv(url.as_str()));
                (StatusCode::FOUND, headers, empty()).into_response()
            }
            Ok(None) => missing(p, &"the storage cannot sign URLs"),
            Err(e) => missing(p, &e),
        };
    }
    let answer = match plan(p, req) {
        Plan::Send(a) => a,
        Plan::Done(done) => return done,
    };
    if head || answer.len == 0 {
        return (answer.status, answer.headers, empty()).into_response();
    }
    let range = answer.start..answer.start + answer.len;
    match storage.read(&p.file, Some(range)).await {
        Ok(stream) => (answer.status, answer.headers, Body::from_stream(stream)).into_response(),
        Err(e) => missing(p, &e),
    }
}

/// Answers a request for a prepared file on the filesystem backend.
pub fn respond(
    files: &MappedFiles,
    storage: &ArtifactStorage,
    p: &Prepared,
    req: &HeaderMap,
    head: bool,
) -> Response {
    let size = p.size;
    let Answer {
        status,
        headers,
        start,
        len,
    } = match plan(p, req) {
        Plan::Send(a) => a,
        Plan::Done(done) => return done,
    };
    if head {
        return (status, headers, empty()).into_response();
    }
    let bytes = match files.get(storage, &p.file, size) {
        Ok(b) => b,
        Err(e) => return missing(p, &e),
    };
    // start + len <= size = bytes.len(), both fit in usize (the file is mapped).
    let (start, end) = (start as usize, (start + len) as usize);
    (status, headers, Body::from(bytes.slice(start..end))).into_response()
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

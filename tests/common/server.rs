//! A real HTTP fixture server on 127.0.0.1 for integration tests and benchmarks: serves the files
//! of a directory (GET and HEAD, 404 otherwise) with per-path fault injection (status codes,
//! truncated or corrupted bodies, stalls, delays), records requests and headers per path and
//! tracks how many responses are in flight at once. It stops when the [`FixtureServer`] drops.
//!
//! Paths given to its methods are relative (`"dir/file.txt"`), as in [`FixtureServer::url`].
//! When it receives an absolute-form request (as a forward proxy does), it serves the URL's path,
//! so it can stand in for an HTTP proxy too.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::Router;
use sha2::{Digest, Sha256};

/// Size of the body chunks the server sends.
const CHUNK: usize = 64 * 1024;

/// A fault injected into one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and a short text body) instead of the file.
    Status(u16),
    /// Answer with this status and a `Retry-After: <seconds>` header.
    StatusRetryAfter(u16, u64),
    /// Send the headers with the full Content-Length, half the body, then close the connection.
    Truncate,
    /// Send the full length with some bytes changed.
    Corrupt,
    /// Send the headers and half the body, sleep this long, then send the rest.
    Stall(Duration),
    /// Wait this long before answering normally.
    Delay(Duration),
}

#[derive(Default)]
struct PathState {
    queue: VecDeque<Fault>,
    always: Option<Fault>,
    requests: u64,
    last_headers: Option<HeaderMap>,
}

struct Shared {
    root: PathBuf,
    paths: Mutex<HashMap<String, PathState>>,
    delay_all: Mutex<Option<Duration>>,
    total: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts a response as in flight from request arrival until its body is sent or dropped.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A running fixture server.
pub struct FixtureServer {
    pub addr: SocketAddr,
    pub root: PathBuf,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FixtureServer {
    /// Serves `root` on `127.0.0.1:<random port>`.
    pub async fn start(root: &Path) -> FixtureServer {
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            paths: Mutex::new(HashMap::new()),
            delay_all: Mutex::new(None),
            total: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            // TCP_NODELAY: without it small responses wait for the client's delayed ACK (~40 ms).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app).await;
        });
        FixtureServer {
            addr,
            root: root.to_path_buf(),
            shared,
            task,
        }
    }

    /// `http://127.0.0.1:PORT/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Faults consumed one per request to `path`, in order; then requests are served normally.
    pub fn push_faults(&self, path: &str, faults: impl IntoIterator<Item = Fault>) {
        let mut paths = lock(&self.shared.paths);
        paths.entry(key(path)).or_default().queue.extend(faults);
    }

    /// A fault applied to every request of `path` (after any queued ones); `None` clears it.
    pub fn set_always(&self, path: &str, fault: Option<Fault>) {
        lock(&self.shared.paths)
            .entry(key(path))
            .or_default()
            .always = fault;
    }

    /// Delays every response (a slow upstream); `None` clears it.
    pub fn set_delay_all(&self, d: Option<Duration>) {
        *lock(&self.shared.delay_all) = d;
    }

    /// Requests seen for `path`, faulty ones included.
    pub fn requests(&self, path: &str) -> u64 {
        lock(&self.shared.paths)
            .get(&key(path))
            .map_or(0, |s| s.requests)
    }

    /// Requests seen for any path.
    pub fn total_requests(&self) -> u64 {
        self.shared.total.load(Ordering::SeqCst)
    }

    /// The headers of the last request to `path`.
    pub fn last_headers(&self, path: &str) -> Option<HeaderMap> {
        lock(&self.shared.paths)
            .get(&key(path))
            .and_then(|s| s.last_headers.clone())
    }

    /// Responses being produced right now (from request arrival to the end of the body).
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// The most responses ever in flight at once (since start or the last reset).
    pub fn max_in_flight(&self) -> u64 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    pub fn reset_max_in_flight(&self) {
        self.shared
            .max_in_flight
            .store(self.in_flight(), Ordering::SeqCst);
    }
}

fn key(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

/// Decodes `%XX` escapes; `None` if malformed or not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// One piece of a response body.
enum Step {
    Data(Bytes),
    Sleep(Duration),
    /// Abort the body: the server closes the connection.
    Fail,
}

fn chunks(data: &[u8], steps: &mut VecDeque<Step>) {
    for c in data.chunks(CHUNK) {
        steps.push_back(Step::Data(Bytes::copy_from_slice(c)));
    }
}

/// A streamed body that keeps the response counted as in flight until it ends.
fn body(steps: VecDeque<Step>, guard: InFlight) -> Body {
    let stream = futures::stream::unfold((steps, guard), |(mut steps, guard)| async move {
        loop {
            match steps.pop_front()? {
                Step::Data(b) => return Some((Ok(b), (steps, guard))),
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Fail => {
                    steps.clear();
                    let err = std::io::Error::other("injected truncation");
                    return Some((Err(err), (steps, guard)));
                }
            }
        }
    });
    Body::from_stream(stream)
}

fn simple(status: StatusCode, text: &str, guard: InFlight) -> Response {
    let mut steps = VecDeque::new();
    steps.push_back(Step::Data(Bytes::copy_from_slice(text.as_bytes())));
    let mut response = Response::new(body(steps, guard));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let guard = InFlight::enter(&shared);
    shared.total.fetch_add(1, Ordering::SeqCst);
    let raw_path = req.uri().path().to_string();
    let path = percent_decode(raw_path.trim_start_matches('/'));
    let fault = {
        let mut paths = lock(&shared.paths);
        let state = paths
            .entry(path.clone().unwrap_or_else(|| raw_path.clone()))
            .or_default();
        state.requests += 1;
        state.last_headers = Some(req.headers().clone());
        state.queue.pop_front().or_else(|| state.always.clone())
    };

    let delay_all = *lock(&shared.delay_all);
    if let Some(d) = delay_all {
        tokio::time::sleep(d).await;
    }
    if let Some(Fault::Delay(d)) = &fault {
        tokio::time::sleep(*d).await;
    }

    let head = req.method() == Method::HEAD;
    if !head && req.method() != Method::GET {
        return simple(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n", guard);
    }
    match &fault {
        Some(Fault::Status(code)) | Some(Fault::StatusRetryAfter(code, _)) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = simple(status, &format!("injected {code}\n"), guard);
            if let Some(Fault::StatusRetryAfter(_, secs)) = &fault {
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(*secs));
            }
            return response;
        }
        _ => {}
    }

    let Some(path) = path else {
        return simple(StatusCode::BAD_REQUEST, "bad path\n", guard);
    };
    let safe = !path.is_empty()
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\\'));
    if !safe {
        return simple(StatusCode::NOT_FOUND, "not found\n", guard);
    }
    let file = shared.root.join(&path);
    let data = match tokio::fs::metadata(&file).await {
        Ok(meta) if meta.is_file() => match tokio::fs::read(&file).await {
            Ok(data) => data,
            Err(_) => return simple(StatusCode::NOT_FOUND, "not found\n", guard),
        },
        _ => return simple(StatusCode::NOT_FOUND, "not found\n", guard),
    };

    let len = data.len();
    let mut steps = VecDeque::new();
    if !head {
        match fault {
            Some(Fault::Truncate) => {
                chunks(&data[..len / 2], &mut steps);
                // Let the headers and the first half reach the client before the cut.
                steps.push_back(Step::Sleep(Duration::from_millis(20)));
                steps.push_back(Step::Fail);
            }
            Some(Fault::Corrupt) => {
                let mut data = data;
                if !data.is_empty() {
                    let mid = data.len() / 2;
                    data[mid] ^= 0xff;
                    data[0] ^= 0x01;
                }
                chunks(&data, &mut steps);
            }
            Some(Fault::Stall(d)) => {
                chunks(&data[..len / 2], &mut steps);
                steps.push_back(Step::Sleep(d));
                chunks(&data[len / 2..], &mut steps);
            }
            _ => chunks(&data, &mut steps),
        }
    }
    let mut response = Response::new(body(steps, guard));
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// Writes each file under `dir` at its relative path (creating subdirectories) and
/// `dir/PULP_MANIFEST` with lines `relative_path,sha256,size`; returns the manifest text.
pub fn write_file_repo(dir: &Path, files: &[(&str, Vec<u8>)]) -> String {
    let mut manifest = String::new();
    for (relative, data) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create fixture dir");
        }
        std::fs::write(&path, data).expect("write fixture file");
        manifest.push_str(&format!("{relative},{},{}\n", sha256_hex(data), data.len()));
    }
    std::fs::create_dir_all(dir).expect("create fixture dir");
    std::fs::write(dir.join("PULP_MANIFEST"), &manifest).expect("write PULP_MANIFEST");
    manifest
}

/// Lowercase hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

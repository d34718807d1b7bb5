//! The content app: serves distributions at `/pulp/content/<base_path>/<relative_path>`.
//!
//! - [`path`]: the request path, checked before any lookup (no `..`, encoded or not, no
//!   backslash, NUL, control characters or absolute components); nothing from it is ever joined
//!   onto a directory: files are found through the database, stored under content-addressed
//!   names.
//! - [`cache`]: what a request path resolved to (a stored file, a 404) is kept per process and
//!   answered without SQL; a change made by any process is seen within the documented bound
//!   (the database's content generation, bumped by triggers, checked every `ttl / 4`).
//! - Lookup (on a cache miss): the distribution whose base path is the longest path-component
//!   prefix of the request (one indexed query over every prefix), then what it serves, its file
//!   found path first (the content artifacts at that path, or under that directory, by the path
//!   index, then their membership of the version), so a lookup costs the same in a repository
//!   of 10 units or 1,000,000, and a missing file costs next to nothing:
//!   - `publication`: its published (metadata) files, then, when pass-through, the content of
//!     its version;
//!   - `repository_version`: for plugins serving publications (file) the newest publication of
//!     that version, and nothing (404) while it has none; for other plugins the version's
//!     content directly;
//!   - `repository`: for plugins serving publications the newest publication of the repository
//!     (highest version number, as pulpcore: newer unpublished versions are not served), and
//!     nothing (404) until one exists; for other plugins the latest version.
//! - [`serve`]: a stored artifact, memory-mapped once and shared by its requests (zero copy,
//!   no thread hop, memory flat in the number of downloads), with `Content-Length`, `Content-Type` by extension, `ETag`
//!   (the sha256), `Last-Modified`, conditional GET and single byte ranges (206 / 416).
//! - [`ondemand`]: content artifacts without an artifact are fetched from their remote while
//!   streaming to the client; `on_demand` saves them once (one upstream fetch across every
//!   content process: a lease in the database; the other requests wait for the saved file),
//!   `streamed` never does.
//! - Directory paths answer a 301 to add the slash, then an HTML listing; `/pulp/content/`
//!   lists the (visible) distributions.
//! - [`storage_check`]: at start, a sample of the artifacts the database names is looked for
//!   in the storage, and a warning says so when files are missing.

pub mod cache;
mod listing;
mod ondemand;
pub mod path;
mod serve;
pub mod storage_check;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use uuid::Uuid;

use crate::api::AppState;
use crate::db::DbError;
use crate::models::{Distribution, Publication, ServedFile};

/// The content app's path prefix.
pub const CONTENT_PREFIX: &str = "/pulp/content/";

/// The content app's settings.
#[derive(Debug, Clone)]
pub struct ContentSettings {
    /// The resolution cache's coherence bound ([`cache`]); zero disables the cache.
    pub cache_ttl: Duration,
}

impl Default for ContentSettings {
    fn default() -> ContentSettings {
        ContentSettings {
            cache_ttl: cache::DEFAULT_TTL,
        }
    }
}

/// The content app's state, shared by its requests (one `Arc` clone per request).
pub type ContentState = Arc<ContentApp>;

/// The content app: the API's state, the resolution cache, the mapped files and the downloads
/// in flight in this process.
pub struct ContentApp {
    pub app: AppState,
    cache: Arc<cache::ResolutionCache>,
    files: Arc<serve::MappedFiles>,
    inflight: Arc<Mutex<HashMap<Uuid, ondemand::Waiter>>>,
    /// This process's name on on-demand fetch leases.
    holder: Arc<str>,
}

/// The content app's router with the default settings.
pub fn router(state: AppState) -> Router {
    router_with(state, ContentSettings::default())
}

/// The content app's router, inside the shell ([`crate::api::shell::content`]: request id,
/// tracing span, a panic as a 500; no time limit, bodies stream as long as they need). Starts
/// the cache's generation checks (they stop when the router is dropped).
pub fn router_with(state: AppState, settings: ContentSettings) -> Router {
    let files = Arc::new(serve::MappedFiles::default());
    let on_change = {
        let files = files.clone();
        Box::new(move || files.clear()) as Box<dyn Fn() + Send + Sync>
    };
    let cache = Arc::new(cache::ResolutionCache::new(settings.cache_ttl, on_change));
    cache.spawn_checker(state.store.clone());
    let cs = Arc::new(ContentApp {
        app: state,
        cache,
        files,
        inflight: Arc::new(Mutex::new(HashMap::new())),
        holder: format!(
            "{}:{}:{}",
            hostname(),
            std::process::id(),
            Uuid::now_v7().simple()
        )
        .into(),
    });
    let metrics = Router::new()
        .route("/metrics", crate::api::metrics::route(&cs.app))
        .with_state(cs.app.clone());
    let router = Router::new()
        .route(
            "/pulp/content",
            get(|req: axum::extract::Request| counted(req, |_| async { redirect(CONTENT_PREFIX) })),
        )
        .route("/pulp/content/", get(handle))
        .route("/pulp/content/{*rest}", get(handle))
        .with_state(cs)
        .merge(metrics);
    crate::api::shell::content(router)
}

/// This machine's name, for lease holders (`unknown` when unreadable).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Answers `req` with `answer`, counting the response by status, and the body bytes it
/// announces (a GET's `Content-Length` or exact body size; a body cut short by a failed
/// on-demand fetch counts as announced), and timing the request to its response head
/// (`content_request_duration_seconds`). Called by each handler rather than as a middleware
/// layer: no boxed future and no service clone per request.
async fn counted<F, Fut>(req: axum::extract::Request, answer: F) -> Response
where
    F: FnOnce(axum::extract::Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let started = std::time::Instant::now();
    let is_head = req.method() == axum::http::Method::HEAD;
    let resp = answer(req).await;
    let bytes = if is_head {
        0
    } else {
        resp.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| axum::body::HttpBody::size_hint(resp.body()).exact())
            .unwrap_or(0)
    };
    crate::telemetry::global().record_content_response(
        resp.status().as_u16(),
        bytes,
        started.elapsed(),
    );
    resp
}

/// Errors answered as plain text.
fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        msg.into(),
    )
        .into_response()
}

const NOT_FOUND: &str = "404: Not Found\n";
const NOT_POINTING: &str = "404: Distribution is not pointing to a publication, repository, \
     repository version, or remote.\n";

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, NOT_FOUND)
}

fn redirect(to: &str) -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, to.to_string())],
    )
        .into_response()
}

fn db_error(e: DbError) -> Response {
    tracing::error!(error = %e, "database error in the content app");
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "500: Internal Server Error\n",
    )
}

/// What a distribution serves.
enum Target {
    Publication(Publication),
    Version(Uuid),
    /// A repository or version of a plugin serving publications, not published yet.
    Nothing,
}

async fn resolve(cs: &ContentState, d: &Distribution) -> Result<Option<Target>, DbError> {
    let store = &cs.app.store;
    let serves_pubs = cs
        .app
        .plugins
        .iter()
        .find(|p| p.distribution_type() == d.pulp_type)
        .is_some_and(|p| p.serves_publications());
    if let Some(id) = d.publication_id {
        let p = store.get_publication(id).await?;
        return Ok(p.complete.then_some(Target::Publication(p)));
    }
    if let Some(v) = d.repository_version {
        if serves_pubs {
            let p = store.latest_publication(None, Some(v.id)).await?;
            return Ok(Some(p.map_or(Target::Nothing, Target::Publication)));
        }
        return Ok(Some(Target::Version(v.id)));
    }
    if let Some(repo) = d.repository_id {
        if serves_pubs {
            let p = store.latest_publication(Some(repo), None).await?;
            return Ok(Some(p.map_or(Target::Nothing, Target::Publication)));
        }
        let v = store.latest_version(repo).await?;
        return Ok(Some(Target::Version(v.id)));
    }
    Ok(None)
}

/// The file at `rel` of what the distribution serves.
async fn find_file(
    cs: &ContentState,
    target: &Target,
    rel: &str,
) -> Result<Option<ServedFile>, DbError> {
    let store = &cs.app.store;
    match target {
        Target::Publication(p) => {
            if let Some(f) = store.published_file(p.id, rel).await? {
                return Ok(Some(f));
            }
            if p.pass_through {
                return store.version_file(p.version.id, rel).await;
            }
            Ok(None)
        }
        Target::Version(v) => store.version_file(*v, rel).await,
        Target::Nothing => Ok(None),
    }
}

/// The entries directly below `prefix` (ending with `/`, or empty for the root) in what the
/// target serves, read as a stream.
async fn files_under(
    cs: &ContentState,
    target: &Target,
    prefix: &str,
) -> Result<listing::Children, DbError> {
    let store = &cs.app.store;
    let mut children = listing::Children::new(prefix);
    let mut visit = |f: ServedFile| children.add_file(&f);
    match target {
        Target::Publication(p) => {
            store.published_files(p.id, prefix, &mut visit).await?;
            if p.pass_through {
                store
                    .version_files(p.version.id, prefix, &mut visit)
                    .await?;
            }
        }
        Target::Version(v) => store.version_files(*v, prefix, &mut visit).await?,
        Target::Nothing => {}
    }
    Ok(children)
}

async fn handle(State(cs): State<ContentState>, req: axum::extract::Request) -> Response {
    counted(req, |req| answer_request(cs, req)).await
}

async fn answer_request(cs: ContentState, req: axum::extract::Request) -> Response {
    let (parts, _) = req.into_parts();
    let head = parts.method == Method::HEAD;
    let headers = &parts.headers;
    let raw = parts.uri.path();
    // Only paths that were checked and resolved are ever cached: a hit needs no parsing.
    let ticket = match cs.cache.lookup(raw, &cs.app.store).await {
        cache::Lookup::Hit(c) => return answer(&cs, &c, headers, head).await,
        cache::Lookup::Miss(t) => Some(t),
        cache::Lookup::Bypass => None,
    };
    let request = match path::parse(raw) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("400: {e}\n")),
    };
    if request.segments.is_empty() {
        return match listing::root(&cs).await {
            Ok(r) => r,
            Err(e) => db_error(e),
        };
    }
    let remember = |value: cache::Cached| {
        if let Some(t) = ticket {
            cs.cache.insert(t, raw, value);
        }
    };
    let candidates = path::prefixes(&request.segments);
    let dist = match cs.app.store.distribution_for_paths(&candidates).await {
        Ok(d) => d,
        Err(e) => return db_error(e),
    };
    let Some(dist) = dist else {
        // A strict prefix of some base paths: a directory of distributions.
        let joined = request.segments.join("/");
        let under = match cs.app.store.base_paths_under(&format!("{joined}/")).await {
            Ok(u) => u,
            Err(e) => return db_error(e),
        };
        if under.is_empty() {
            remember(cache::Cached::NotFound(NOT_FOUND));
            return not_found();
        }
        if !request.trailing_slash {
            return redirect(&format!("{raw}/"));
        }
        return listing::base_paths(raw, &joined, &under);
    };
    let depth = dist.base_path.split('/').count();
    let rel = request.segments[depth..].join("/");
    let target = match resolve(&cs, &dist).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            remember(cache::Cached::NotFound(NOT_POINTING));
            return text(StatusCode::NOT_FOUND, NOT_POINTING);
        }
        Err(e) => return db_error(e),
    };
    if matches!(target, Target::Nothing) {
        return not_found();
    }
    if !rel.is_empty() && !request.trailing_slash {
        match find_file(&cs, &target, &rel).await {
            Ok(Some(f)) => {
                if let Some(a) = &f.artifact {
                    let prepared = serve::Prepared::new(a, &rel, f.pulp_created);
                    let resp =
                        serve::respond_stored(&cs.files, &cs.app.storage, &prepared, headers, head)
                            .await;
                    remember(cache::Cached::File(prepared));
                    return resp;
                }
                return ondemand::serve(&cs, &f, &rel, headers, head).await;
            }
            Ok(None) => {}
            Err(e) => return db_error(e),
        }
    }
    // A directory?
    let prefix = if rel.is_empty() {
        String::new()
    } else {
        format!("{rel}/")
    };
    let children = match files_under(&cs, &target, &prefix).await {
        Ok(c) => c,
        Err(e) => return db_error(e),
    };
    if children.is_empty() && !rel.is_empty() {
        remember(cache::Cached::NotFound(NOT_FOUND));
        return not_found();
    }
    if !request.trailing_slash {
        return redirect(&format!("{raw}/"));
    }
    listing::files(raw, children, head)
}

/// Answers from a cache entry.
async fn answer(cs: &ContentState, c: &cache::Cached, headers: &HeaderMap, head: bool) -> Response {
    match c {
        cache::Cached::File(p) => {
            serve::respond_stored(&cs.files, &cs.app.storage, p, headers, head).await
        }
        cache::Cached::NotFound(body) => text(StatusCode::NOT_FOUND, *body),
    }
}

/// An empty body (HEAD).
fn empty() -> Body {
    Body::empty()
}

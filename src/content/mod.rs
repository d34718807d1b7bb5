//! The content app: serves distributions at `/pulp/content/<base_path>/<relative_path>`.
//!
//! - [`path`]: the request path, checked before any lookup (no `..`, encoded or not, no
//!   backslash, NUL, control characters or absolute components); nothing from it is ever joined
//!   onto a directory: files are found through the database, stored under content-addressed
//!   names.
//! - Lookup: the distribution whose base path is the longest path-component prefix of the
//!   request (one indexed query over every prefix), then what it serves:
//!   - `publication`: its published (metadata) files, then, when pass-through, the content of
//!     its version;
//!   - `repository_version`: for plugins serving publications (file) the newest publication of
//!     that version, and nothing (404) while it has none; for other plugins the version's
//!     content directly;
//!   - `repository`: for plugins serving publications the newest publication of the repository
//!     (highest version number, as pulpcore: newer unpublished versions are not served), and
//!     nothing (404) until one exists; for other plugins the latest version.
//! - [`serve`]: a stored artifact with `Content-Length`, `Content-Type` by extension, `ETag`
//!   (the sha256), `Last-Modified`, conditional GET and single byte ranges (206 / 416).
//! - [`ondemand`]: content artifacts without an artifact are fetched from their remote while
//!   streaming to the client; `on_demand` saves them once (concurrent requests share one
//!   download in this process), `streamed` never does.
//! - Directory paths answer a 301 to add the slash, then an HTML listing; `/pulp/content/`
//!   lists the (visible) distributions.
//! - [`storage_check`]: at start, a sample of the artifacts the database names is looked for
//!   in the storage, and a warning says so when files are missing.

mod listing;
mod ondemand;
pub mod path;
mod serve;
pub mod storage_check;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use uuid::Uuid;

use crate::api::AppState;
use crate::db::DbError;
use crate::models::{Distribution, Publication, ServedFile};

/// The content app's path prefix.
pub const CONTENT_PREFIX: &str = "/pulp/content/";

/// The content app's state: the API's, plus the downloads in flight in this process.
#[derive(Clone)]
pub struct ContentState {
    pub app: AppState,
    inflight: Arc<Mutex<HashMap<Uuid, ondemand::Waiter>>>,
}

/// The content app's router, inside the shell ([`crate::api::shell::content`]: request id,
/// tracing span, a panic as a 500; no time limit, bodies stream as long as they need).
pub fn router(state: AppState) -> Router {
    let cs = ContentState {
        app: state,
        inflight: Arc::new(Mutex::new(HashMap::new())),
    };
    let metrics = Router::new()
        .route("/metrics", crate::api::metrics::route(&cs.app))
        .with_state(cs.app.clone());
    let router = Router::new()
        .route("/pulp/content", get(|| async { redirect(CONTENT_PREFIX) }))
        .route("/pulp/content/", get(handle))
        .route("/pulp/content/{*rest}", get(handle))
        .layer(axum::middleware::from_fn(count_response))
        .with_state(cs)
        .merge(metrics);
    crate::api::shell::content(router)
}

/// Counts every content response by status, and the body bytes it announces (a GET's
/// `Content-Length` or exact body size; a body cut short by a failed on-demand fetch counts as announced).
async fn count_response(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_head = req.method() == axum::http::Method::HEAD;
    let resp = next.run(req).await;
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
    crate::telemetry::global().record_content_response(resp.status().as_u16(), bytes);
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

fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404: Not Found\n")
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
        .find(|p| p.repository_type() == d.pulp_type)
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

/// Files under `prefix` (ending with `/`, or empty for the root) of what is served.
async fn files_under(
    cs: &ContentState,
    target: &Target,
    prefix: &str,
) -> Result<Vec<ServedFile>, DbError> {
    let store = &cs.app.store;
    match target {
        Target::Publication(p) => {
            let mut out = store.published_files(p.id, prefix).await?;
            if p.pass_through {
                out.extend(store.version_files(p.version.id, prefix).await?);
            }
            Ok(out)
        }
        Target::Version(v) => store.version_files(*v, prefix).await,
        Target::Nothing => Ok(Vec::new()),
    }
}

async fn handle(
    State(cs): State<ContentState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let head = method == Method::HEAD;
    let raw = uri.path();
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
            return text(
                StatusCode::NOT_FOUND,
                "404: Distribution is not pointing to a publication, repository, repository \
                 version, or remote.\n",
            )
        }
        Err(e) => return db_error(e),
    };
    if matches!(target, Target::Nothing) {
        return not_found();
    }
    if !rel.is_empty() && !request.trailing_slash {
        match find_file(&cs, &target, &rel).await {
            Ok(Some(f)) => return serve_file(&cs, f, &rel, &headers, head).await,
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
    let files = match files_under(&cs, &target, &prefix).await {
        Ok(f) => f,
        Err(e) => return db_error(e),
    };
    if files.is_empty() && !rel.is_empty() {
        return not_found();
    }
    if !request.trailing_slash {
        return redirect(&format!("{raw}/"));
    }
    listing::files(raw, &prefix, &files, head)
}

async fn serve_file(
    cs: &ContentState,
    f: ServedFile,
    rel: &str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    match &f.artifact {
        Some(a) => serve::artifact(&cs.app.storage, a, rel, f.pulp_created, headers, head).await,
        None => ondemand::serve(cs, &f, rel, headers, head).await,
    }
}

/// An empty body (HEAD).
fn empty() -> Body {
    Body::empty()
}

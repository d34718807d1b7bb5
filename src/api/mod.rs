//! The pulpcore-compatible REST API at `/pulp/api/v3/`.
//!
//! - [`routes`]: the one route table; the axum router and the OpenAPI document
//!   (`/pulp/api/v3/docs/api.json`, [`openapi`]) are both built from it.
//! - [`error`]: [`ApiError`], answering with pulpcore's shapes (400 `{field: [msg]}`, 404
//!   `{"detail": ...}`).
//! - [`body`]: JSON bodies, read field by field with [`crate::validation::Fields`] (the rules the
//!   tasks share live there, not here: a [`crate::validation::FieldErrors`] becomes a 400); [`list`]: pagination and field selection;
//!   [`auth`]: Basic authentication against the `users` table.
//! - [`shell`]: what every request goes through: request id, tracing span, a panic as a 500,
//!   the time limit; a 500 names the request id and never its cause.
//! - [`href`] (re-exported from [`crate::href`]): `pulp_href` / `prn` of every object.
//! - [`common`]: what several resource modules share (timestamps, collection paths, path ids,
//!   name and label filters, in-memory pagination, the 202 answer of a dispatched task).
//! - [`root`]: `GET /pulp/api/v3/`, the list of endpoints (public, outside the OpenAPI
//!   document, as pulpcore's).
//! - One module per resource: `status`, `tasks`, `workers`, `remotes`, `repositories` (with sync, modify
//!   and versions), `content`, `artifacts`, `orphans`, `publications`, `distributions`,
//!   `signing_services`;
//!   `uploads` (artifact create, chunked uploads) and `content_create` (content from bytes, the
//!   generic `content/` list), whose bodies may be multipart forms ([`multipart`]).
//!
//! Handlers are plugin-generic: a plugin's REST names come from [`crate::plugins::Plugin`], so
//! `remotes/file/file/` exists because the file plugin is compiled in, not because the core
//! names it. Work that changes a repository is dispatched as a task (202 `{"task": href}`).

pub mod auth;
pub mod body;
pub mod common;
pub mod error;
pub mod list;
pub mod metrics;
mod multipart;
pub mod openapi;
pub mod root;
pub mod routes;
pub mod shell;

mod artifacts;
mod content;
mod content_create;
mod distributions;
mod orphans;
mod publications;
mod remotes;
mod repositories;
pub mod signing_services;
pub mod status;
mod tasks;
mod uploads;
mod workers;

use std::sync::Arc;

use axum::middleware;
use axum::Router;

use crate::db::DynStore;
use crate::plugins::Plugin;
use crate::storage::ArtifactStorage;
use crate::tasking::Tasking;

pub use error::{ApiError, ApiResult};
pub use routes::ApiBuilder;

pub use crate::href::{self, API_ROOT};

/// The largest request body the API reads (Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`, 2.5 MB);
/// a larger one is a 413.
pub const MAX_BODY_BYTES: usize = 2_621_440;

/// What the API's handlers share. Everything in it is either the database handle, the artifact
/// store, or derived from settings: no state of its own lives only in this process.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub storage: ArtifactStorage,
    pub tasking: Tasking,
    pub plugins: Vec<Arc<dyn Plugin>>,
    pub auth: Arc<auth::Authenticator>,
    /// Where the content app is reached, e.g. `http://127.0.0.1:24816` (for `base_url`).
    pub content_origin: String,
    /// The content app's path prefix, `/pulp/content/`.
    pub content_path_prefix: String,
    /// Whether `GET /metrics` needs credentials.
    pub metrics_auth: bool,
    /// Process-wide download settings (where `file://` may read, the metadata cap), for
    /// validating remotes and for on-demand fetches.
    pub download: crate::downloader::DownloadSettings,
    /// How long an API request may take to answer ([`shell::api`]).
    pub request_timeout: std::time::Duration,
}

impl AppState {
    /// The plugin whose REST names are `app_label` / `kind` (`file` / `file`).
    pub fn plugin(&self, name: &str) -> Option<&Arc<dyn Plugin>> {
        self.plugins.iter().find(|p| p.name() == name)
    }
}

/// Every route of the API, with its documentation.
pub fn api_builder(plugins: &[Arc<dyn Plugin>]) -> ApiBuilder {
    let mut b = ApiBuilder::new();
    status::register(&mut b);
    tasks::register(&mut b);
    workers::register(&mut b);
    artifacts::register(&mut b);
    uploads::register(&mut b);
    orphans::register(&mut b);
    signing_services::register(&mut b);
    remotes::register(&mut b, plugins);
    repositories::register(&mut b, plugins);
    content::register(&mut b, plugins);
    content_create::register(&mut b, plugins);
    publications::register(&mut b, plugins);
    distributions::register(&mut b, plugins);
    for p in plugins {
        p.register_routes(&mut b);
    }
    openapi::register(&mut b);
    b
}

/// The API router: every route of [`api_builder`], authenticated unless documented public,
/// inside the [`shell`] (request id, tracing span, panic as 500, time limit).
pub fn router(state: AppState) -> Router {
    let b = api_builder(&state.plugins);
    let doc = Arc::new(openapi::document(&b));
    let mut router: Router<AppState> = Router::new();
    let mut by_path: std::collections::BTreeMap<String, axum::routing::MethodRouter<AppState>> =
        Default::default();
    for r in &b.routes {
        let handler = if r.doc.public {
            r.handler.clone()
        } else {
            r.handler
                .clone()
                .route_layer(middleware::from_fn_with_state(
                    state.clone(),
                    auth::require_auth,
                ))
        };
        let mr = by_path.remove(&r.path).unwrap_or_default();
        by_path.insert(r.path.clone(), mr.merge(handler));
    }
    for (path, mr) in by_path {
        router = router.route(&path, mr);
    }
    router = router.route(API_ROOT, root::route(root::endpoints(&b)));
    router = router.route("/metrics", metrics::route(&state));
    let timeout = state.request_timeout;
    let router = router
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::Extension(doc))
        .fallback(|| async { ApiError::NotFound("Not found.".to_string()) })
        .with_state(state);
    shell::api(router, timeout)
}

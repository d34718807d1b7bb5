//! The content app: serves distributions at `/pulp/content/<base_path>/<relative_path>`
//! (to be written): longest-base-path lookup, artifacts streamed from storage with Range and
//! ETag, directory listings, and on-demand fetches from the remote, saved once.

use axum::Router;

use crate::api::AppState;

/// The content app's path prefix.
pub const CONTENT_PREFIX: &str = "/pulp/content/";

/// The content app's router.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}

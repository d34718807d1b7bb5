//! `GET /metrics` (on the API and on the content app): the process's metrics in the
//! OpenMetrics text format, with task counts read from the database at scrape time. Whether it
//! needs credentials is the `metrics_auth` setting (default: open, like most exporters; the
//! metrics carry names and numbers, never URLs or secrets).

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{auth, AppState};
use crate::telemetry;

/// The handler.
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.store.task_counts().await {
        Ok(counts) => telemetry::global().set_task_counts(&counts),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot count tasks"),
    }
    (
        [(header::CONTENT_TYPE, telemetry::CONTENT_TYPE)],
        telemetry::global().render(),
    )
        .into_response()
}

/// Middleware in front of [`metrics`]: Basic auth when the setting asks for it.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.metrics_auth {
        auth::require_auth(State(state), req, next).await
    } else {
        next.run(req).await
    }
}

/// The `/metrics` route for a router over [`AppState`].
pub fn route(state: &AppState) -> axum::routing::MethodRouter<AppState> {
    axum::routing::get(metrics)
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
}

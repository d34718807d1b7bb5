//! The HTTP shell around the API and the content app: what every request goes through before
//! and after its handler.
//!
//! From the outside in:
//! - a request id ([`RequestId`]): the client's `X-Request-Id` when it is a plain token, else a
//!   fresh one ([`fresh_request_id`]: this process's random prefix and a counter, no system call
//!   per request); it is in the request's extensions, in its span, and in the response's
//!   `X-Request-Id` header. A 500 is logged with it, and its body names it and nothing else: no
//!   database or internal error text ever reaches the client ([`InternalError`] carries that
//!   text from the handler to the log).
//! - a tracing span per request (tower-http's `TraceLayer`): method, path, request id, and on
//!   the response its status and latency; at `INFO` for the API, at `DEBUG` for the content
//!   app (a mirror's clients make many small requests: with the default log levels the
//!   content span is disabled and costs nothing).
//! - a panic in a handler becomes a 500 (tower-http's `CatchPanicLayer`), not a dropped
//!   connection.
//! - API only: a time limit (503 when exceeded). It bounds the time to the response head, and
//!   is applied neither to multipart uploads (their bodies stream for as long as the client
//!   sends) nor to the content app, whose bodies stream for as long as a download takes.

use std::any::Any;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

/// The header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// How long an API request may take to answer (its head), by default.
pub const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(60);

/// The id of the request being served (in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// What went wrong behind a 500, for the log only (in the response's extensions; the shell
/// takes it out before the response leaves).
#[derive(Debug, Clone)]
pub struct InternalError(pub String);

/// Which app a shell wraps: how its 500s and time limit look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    Api,
    Content,
}

/// `router` (the API's) inside the shell, with `timeout` as its time limit.
pub fn api(router: Router, timeout: Duration) -> Router {
    wrap(
        router.layer(middleware::from_fn(move |req, next| {
            time_limit(timeout, req, next)
        })),
        App::Api,
    )
}

/// The API's time limit: a 503 when the response takes longer than `timeout`, except for a
/// `multipart/form-data` request (an upload), whose body streams for as long as the client
/// takes to send it.
async fn time_limit(timeout: Duration, req: Request, next: Next) -> Response {
    let upload = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if upload {
        return next.run(req).await;
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `router` (the content app's) inside the shell, without a time limit.
pub fn content(router: Router) -> Router {
    wrap(router, App::Content)
}

fn wrap(router: Router, app: App) -> Router {
    let level = match app {
        App::Api => tracing::Level::INFO,
        App::Content => tracing::Level::DEBUG,
    };
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |req: &Request| make_span(app, req))
                .on_request(())
                .on_response(move |resp: &Response, latency: Duration, span: &Span| {
                    on_response(level, resp, latency, span)
                })
                .on_failure(()),
        )
        .layer(middleware::from_fn(move |req, next| {
            request_id(app, req, next)
        }))
}

fn make_span(app: App, req: &Request) -> Span {
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.as_str())
        .unwrap_or_default();
    macro_rules! span {
        ($level:expr) => {
            tracing::span!(
                $level,
                "request",
                method = %req.method(),
                path = %req.uri().path(),
                request_id = %id,
                status = tracing::field::Empty,
                latency_ms = tracing::field::Empty,
            )
        };
    }
    match app {
        App::Api => span!(tracing::Level::INFO),
        App::Content => span!(tracing::Level::DEBUG),
    }
}

/// A fresh request id: 8 random hex digits drawn once per process, then a per-process counter
/// (`3f9a12bc-1a`). Unique across processes in practice (the prefixes differ), and far cheaper
/// than a uuid per request (no random draw, no system call).
pub fn fresh_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
    format!("{prefix}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn on_response(level: tracing::Level, resp: &Response, latency: Duration, span: &Span) {
    let status = resp.status().as_u16();
    let ms = latency.as_secs_f64() * 1000.0;
    span.record("status", status);
    span.record("latency_ms", ms);
    if level == tracing::Level::INFO {
        tracing::info!(status, latency_ms = ms, "response");
    } else {
        tracing::debug!(status, latency_ms = ms, "response");
    }
}

/// A client's request id is kept when it is a plain token (letters, digits, `-_.:`, at most
/// 128 characters), so it can go into logs and headers as is.
fn client_request_id(req: &Request) -> Option<String> {
    let v = req.headers().get(&REQUEST_ID_HEADER)?.to_str().ok()?;
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| v.to_string())
}

async fn request_id(app: App, mut req: Request, next: Next) -> Response {
    let id = client_request_id(&req).unwrap_or_else(fresh_request_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut resp = next.run(req).await;
    let status = resp.status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        let cause = resp.extensions_mut().remove::<InternalError>();
        // Handlers log their own context; this line ties the cause to the id the client sees.
        match &cause {
            Some(InternalError(cause)) => {
                tracing::error!(request_id = %id, error = %cause, "internal server error")
            }
            None => tracing::error!(request_id = %id, "internal server error"),
        }
        // The API answers every 500 with the id only; the content app answers its own 500s
        // (already free of internal text) as they are, and replaces only those with a cause.
        if app == App::Api || cause.is_some() {
            resp = internal_error_body(app, &id);
        }
    } else if app == App::Api
        && status == StatusCode::SERVICE_UNAVAILABLE
        && !resp.headers().contains_key(header::CONTENT_TYPE)
    {
        // The time limit's answer has no body.
        tracing::warn!(request_id = %id, "request timed out");
        resp = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "detail": format!("The request took too long to answer (request id {id}).")
            })),
        )
            .into_response();
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    resp
}

fn internal_error_body(app: App, id: &str) -> Response {
    match app {
        App::Api => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "detail": format!("Internal server error (request id {id}).") })),
        )
            .into_response(),
        App::Content => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("500: Internal Server Error (request id {id})\n"),
        )
            .into_response(),
    }
}

/// A handler's panic, as a 500 whose cause is the panic message.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic payload".to_string());
    let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    resp.extensions_mut()
        .insert(InternalError(format!("handler panicked: {message}")));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_must_be_plain_tokens() {
        let req = |v: &str| {
            Request::builder()
                .header(REQUEST_ID_HEADER, v)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        assert_eq!(
            client_request_id(&req("abc-123")).as_deref(),
            Some("abc-123")
        );
        assert_eq!(client_request_id(&req("a b")), None);
        // Fresh ids pass the same check, and two are never equal.
        let (a, b) = (fresh_request_id(), fresh_request_id());
        assert_ne!(a, b);
        assert_eq!(client_request_id(&req(&a)).as_deref(), Some(a.as_str()));
        assert_eq!(client_request_id(&req(&"x".repeat(129))), None);
    }
}

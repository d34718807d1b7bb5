//! The API layer's one error type and how each variant answers over HTTP, with pulpcore's
//! (Django REST framework's) shapes: 400 `{field: [message]}`, 404/409/401/413
//! `{"detail": ...}`. A 500 ([`ApiError::Internal`], database failures) never shows its cause:
//! the body says only "Internal server error", and the cause travels in the response's
//! extensions ([`super::shell::InternalError`]) to the shell, which logs it with the request id
//! and names that id in the body.

use std::collections::BTreeMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::db::DbError;
use crate::tasking::TaskError;
use crate::validation::FieldErrors;

/// Errors a handler answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with a message per field (`non_field_errors` for the body as a whole).
    #[error("invalid request: {0:?}")]
    Validation(BTreeMap<String, Vec<String>>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// 401: no credentials sent.
    #[error("authentication required")]
    Unauthorized,
    /// 401: credentials sent, but no user has them.
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 413: a request body over [`super::MAX_BODY_BYTES`].
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 500; the message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A 400 naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> ApiError {
        let mut m = BTreeMap::new();
        m.insert(field.to_string(), vec![message.into()]);
        ApiError::Validation(m)
    }

    /// A 400 about the request as a whole.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::field("non_field_errors", message)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unauthorized | ApiError::InvalidCredentials => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        match e {
            DbError::NotFound(what) => ApiError::NotFound(format!("Not found: {what}.")),
            DbError::Conflict(what) => ApiError::Conflict(what),
            other => {
                tracing::error!(error = %other, "database error in an API request");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

impl From<FieldErrors> for ApiError {
    fn from(e: FieldErrors) -> ApiError {
        ApiError::Validation(e.0)
    }
}

impl From<TaskError> for ApiError {
    fn from(e: TaskError) -> ApiError {
        match e {
            TaskError::Db(db) => db.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            ApiError::Validation(fields) => json!(fields),
            ApiError::Unauthorized => {
                json!({"detail": "Authentication credentials were not provided."})
            }
            ApiError::InvalidCredentials => json!({"detail": "Invalid username/password."}),
            ApiError::Internal(_) => json!({"detail": "Internal server error."}),
            other => json!({ "detail": other.to_string() }),
        };
        let mut resp = (status, Json(body)).into_response();
        if let ApiError::Internal(cause) = self {
            resp.extensions_mut()
                .insert(super::shell::InternalError(cause));
            return resp;
        }
        if matches!(self, ApiError::Unauthorized | ApiError::InvalidCredentials) {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"api\""),
            );
        }
        resp
    }
}

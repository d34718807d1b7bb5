//! Basic authentication against the `users` table (argon2id hashes).
//!
//! Hashing is deliberately slow, so a verified `(user, sha256(password))` pair is remembered
//! together with the stored hash it matched: a password changed in the database (by any
//! process) no longer matches the remembered hash, so the cache never outlives the truth.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AppState;
use crate::db::{DbError, DynStore};

/// The one user the server creates.
pub const ADMIN: &str = "admin";

/// Hashes a password for the `users` table.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Sets `username`'s password.
pub async fn set_password(store: &DynStore, username: &str, password: &str) -> Result<(), DbError> {
    let hash = hash_password(password).map_err(DbError::Corrupt)?;
    store.set_user_password_hash(username, &hash).await
}

/// Verifies credentials, remembering successes.
#[derive(Default)]
pub struct Authenticator {
    /// `(username, sha256(password))` -> the stored hash it was verified against.
    verified: Mutex<HashMap<(String, [u8; 32]), String>>,
}

impl Authenticator {
    /// Whether `password` is `username`'s password now.
    pub async fn check(
        &self,
        store: &DynStore,
        username: &str,
        password: &str,
    ) -> Result<bool, DbError> {
        let Some(stored) = store.user_password_hash(username).await? else {
            return Ok(false);
        };
        let key = (
            username.to_string(),
            Sha256::digest(password.as_bytes()).into(),
        );
        if self.verified.lock().expect("auth cache").get(&key) == Some(&stored) {
            return Ok(true);
        }
        let (pw, st) = (password.to_string(), stored.clone());
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&st)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(pw.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if ok {
            self.verified
                .lock()
                .expect("auth cache")
                .insert(key, stored);
        }
        Ok(ok)
    }
}

/// Parses `Authorization: Basic base64(user:password)`.
pub fn basic_credentials(req: &Request) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Middleware: 401 unless the request carries valid Basic credentials, worded as Django REST
/// framework words it: "Authentication credentials were not provided." without an
/// `Authorization` header, "Invalid username/password." with a wrong (or unreadable) one.
pub async fn require_auth(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some((user, password)) = basic_credentials(&req) else {
        let basic = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.get(..6))
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "));
        if basic {
            return ApiError::InvalidCredentials.into_response();
        }
        return ApiError::Unauthorized.into_response();
    };
    match state.auth.check(&state.store, &user, &password).await {
        Ok(true) => next.run(req).await,
        Ok(false) => ApiError::InvalidCredentials.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

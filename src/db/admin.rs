//! [`AdminStore`]: API users and housekeeping (orphan cleanup, task deletion). Implemented in
//! `sqlite_admin.rs` and `pg_admin.rs`.

use async_trait::async_trait;

use super::DbResult;

/// Users and housekeeping.
#[async_trait]
pub trait AdminStore: Send + Sync + 'static {
    /// The PHC password hash of `username`, if the user exists.
    async fn user_password_hash(&self, username: &str) -> DbResult<Option<String>>;
    /// Creates the user or replaces its password hash.
    async fn set_user_password_hash(&self, username: &str, hash: &str) -> DbResult<()>;
}

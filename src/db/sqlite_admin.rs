//! [`AdminStore`] on SQLite.

use async_trait::async_trait;
use sqlx::Row;

use super::admin::AdminStore;
use super::shared;
use super::sqlite::SqliteStore;
use super::DbResult;

#[async_trait]
impl AdminStore for SqliteStore {
    async fn user_password_hash(&self, username: &str) -> DbResult<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    async fn set_user_password_hash(&self, username: &str, hash: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO users (username, password_hash, pulp_created) VALUES (?, ?, ?) \
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
        )
        .bind(username)
        .bind(hash)
        .bind(shared::now().timestamp_micros())
        .execute(&self.write)
        .await?;
        Ok(())
    }
}

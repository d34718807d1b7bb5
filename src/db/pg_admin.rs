//! [`AdminStore`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;

use super::admin::AdminStore;
use super::pg::PgStore;
use super::shared;
use super::DbResult;

#[async_trait]
impl AdminStore for PgStore {
    async fn user_password_hash(&self, username: &str) -> DbResult<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.get::<String, _>(0)))
    }

    async fn set_user_password_hash(&self, username: &str, hash: &str) -> DbResult<()> {
        sqlx::query(
            "INSERT INTO users (username, password_hash, pulp_created) VALUES ($1, $2, $3) \
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash",
        )
        .bind(username)
        .bind(hash)
        .bind(shared::now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

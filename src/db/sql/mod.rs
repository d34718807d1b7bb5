//! The store, written once: every method of the store traits in one implementation with one
//! SQL text per query, compiled twice, once inside each backend module (`db/sqlite.rs` and
//! `db/pg.rs` each declare `#[path = "sql/mod.rs"] mod sql;`). Here, `super` is that backend:
//! it provides the driver (`Db`), the store type (`Backend`), its pools (`reader`, `writer`)
//! and the dialect hooks, each documented where it is defined:
//!
//! - `Backend::begin_write`: the write transaction (`BEGIN IMMEDIATE` on SQLite, a plain
//!   transaction with row locks on PostgreSQL);
//! - `in_list_param` / `ids_param` / `strs_param`: a list bound as one parameter (a JSON array
//!   read with `json_each` on SQLite, an array with `= ANY(ARRAY(SELECT unnest(..)))` on
//!   PostgreSQL, estimated small whatever the statistics);
//! - `Backend::grew`: the pipeline's batch writes report the rows they added (PostgreSQL
//!   analyzes the tables a sync grows in the background; nothing on SQLite);
//! - `LOCK_REPOSITORY` / `FOR_UPDATE`: row locks of version-changing transactions (`FOR NO KEY
//!   UPDATE` / `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose write transaction already
//!   holds the one write lock);
//! - `with_rows`: a batch of rows read as the table `u` by one statement of `batch.rs` (one
//!   `UNNEST` of array parameters on PostgreSQL, chunked multi-row `VALUES` on SQLite);
//! - `push_json_member`: a JSON member as text (`json_extract` / `->>`);
//! - `Backend::begin_claim` / `for_update_skip_locked`: the transaction that claims tasks and
//!   reaps workers, and the row lock of a claimed task (`BEGIN IMMEDIATE` and nothing on
//!   SQLite; an advisory lock and `FOR UPDATE SKIP LOCKED` on PostgreSQL);
//! - `push_contains`, `push_json_has_any`, `json_array_append`: substring and JSON-array
//!   operations (`instr` / `json_each` / `json_insert` on SQLite, `strpos` / `?|` / `||` on
//!   PostgreSQL);
//! - `Backend::notify_workers` / `Backend::notified` (inside the transaction / after its commit),
//!   `Backend::forward_wakeups`, `HEARS_WAKEUPS`: telling other processes'
//!   workers a task may start (`NOTIFY` / `LISTEN` on PostgreSQL; on SQLite best-effort Unix
//!   datagrams between the processes of one machine, `db::wakeups`, and workers that poll);
//! - `Backend::beater`: the pool heartbeats go through (a connection of their own on
//!   PostgreSQL, the one writer on SQLite).
//!
//! Placeholders are `$N` on both (sqlx's SQLite driver takes them); rows are decoded by column
//! name; ids, times and JSON go through the newtypes of [`crate::db::types`].

mod admin;
mod batch;
mod catalog;
mod distribution;
pub(crate) mod rows;
mod store;
mod tasks;
mod upload;

pub(super) use super::{Backend, Db};

impl Backend {
    /// The key secrets are sealed with now.
    pub(crate) fn sealer(&self) -> std::sync::Arc<crate::secrets::SecretBox> {
        self.secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// A remote read from a row, its secrets opened.
    pub(crate) fn open_remote(
        &self,
        r: crate::models::Remote,
    ) -> crate::db::DbResult<crate::models::Remote> {
        self.sealer()
            .open_remote(r)
            .map_err(|e| crate::db::DbError::Corrupt(format!("remote secret: {e}")))
    }
}

/// A connection of this backend (what a transaction derefs to).
pub(crate) type Conn = <Db as sqlx::Database>::Connection;

/// A row of this backend.
pub(crate) type DbRow = <Db as sqlx::Database>::Row;

/// ` ORDER BY ...` of a list: `order`'s fields mapped to columns by `columns` (`(field,
/// column)`, both ours: a field comes from the API's declared list, never from request text;
/// one without a column is skipped), NULLs first ascending and last descending on both
/// backends, then `default`, which also breaks ties.
pub(crate) fn order_by(
    order: &[crate::models::SortKey],
    columns: &[(&str, &str)],
    default: &str,
) -> String {
    let mut out = String::from(" ORDER BY ");
    for key in order {
        if let Some((_, col)) = columns.iter().find(|(f, _)| *f == key.field) {
            out.push_str(col);
            out.push_str(if key.descending {
                " DESC NULLS LAST, "
            } else {
                " ASC NULLS FIRST, "
            });
        }
    }
    out.push_str(default);
    out
}

/// Deletes row `id` of `table` (one of ours, never input); [`crate::db::DbError::NotFound`]
/// naming `what` when there was none.
pub(crate) async fn delete_by_id(
    conn: &mut Conn,
    table: &'static str,
    what: &str,
    id: uuid::Uuid,
) -> crate::db::DbResult<()> {
    let sql = format!("DELETE FROM {table} WHERE id = $1");
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(crate::db::types::Id(id))
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(crate::db::DbError::NotFound(format!("{what} {id}")));
    }
    Ok(())
}

/// The one row of `sql`, a `SELECT` whose only parameter `$1` is the id `id`;
/// [`crate::db::DbError::NotFound`] naming `what` when there is none.
pub(crate) async fn row_by_id<'e, E>(
    ex: E,
    sql: String,
    what: &str,
    id: uuid::Uuid,
) -> crate::db::DbResult<DbRow>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(crate::db::types::Id(id))
        .fetch_optional(ex)
        .await?
        .ok_or_else(|| crate::db::DbError::NotFound(format!("{what} {id}")))
}

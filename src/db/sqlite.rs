//! The SQLite backend of [`Store`]: one WAL database file, embedded migrations
//! (`migrations/sqlite`), a single-connection write pool whose transactions start with
//! `BEGIN IMMEDIATE` (SQLite has one writer; taking the lock up front avoids upgrade deadlocks)
//! and a read pool of several connections.
//!
//! Storage conventions: ids are hyphenated UUID TEXT, times INTEGER microseconds since the Unix
//! epoch, JSON TEXT, booleans 0/1. Batches are written with multi-row `VALUES` statements of at
//! most [`CHUNK`] rows, far below SQLite's bound-parameter limit.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};
use uuid::Uuid;

use super::shared;
use super::types::Column;
use super::{DbResult, DynStore};

#[allow(clippy::zero_prefixed_literal)]
const MIGRATIONS: &[(i64, &str, &str)] = shared::migrations!("sqlite": 0001 initial, 0002 tasks, 0003 server, 0006 distribution,
        0007 parity, 0010 uploads, 0011 task_queue, 0012 app_status, 0016 content_cache, 0017 plugin_contract, 0018 secrets);

/// Rows per multi-row statement (at most 9 columns: 4,500 parameters).
const CHUNK: usize = 500;

/// The row counts of the multi-row statements, largest first: a batch is cut greedily into
/// statements of these sizes only, so each statement's text is one of a few, prepared once per
/// connection and cached. (Any size would make most batches a new text: parsed and planned again,
/// and evicting the cached ones.)
const CHUNK_SIZES: [usize; 5] = [CHUNK, 100, 20, 5, 1];

/// The row ranges of `rows` rows cut into statements of [`CHUNK_SIZES`] rows.
fn chunks(rows: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut start = 0;
    std::iter::from_fn(move || {
        let left = rows - start;
        let size = CHUNK_SIZES.into_iter().find(|&n| n <= left)?;
        start += size;
        Some(start - size..start)
    })
}

/// The SQLite [`Store`].
pub struct SqliteStore {
    pub(super) write: SqlitePool,
    pub(super) read: SqlitePool,
    /// Where the processes sharing this file hear each other's task wakeups (`db::wakeups`);
    /// none for an in-memory database.
    wakeups: Option<super::wakeups::Wakeups>,
    /// The key remote secrets are sealed with (`crate::secrets`).
    pub(super) secrets: std::sync::RwLock<Arc<crate::secrets::SecretBox>>,
}

/// Opens (creating if missing) the database file named by `url`, runs the migrations.
pub async fn connect(url: &str) -> DbResult<DynStore> {
    Ok(Arc::new(SqliteStore::connect(url).await?))
}

impl SqliteStore {
    /// Opens (creating if missing) the database file named by `url`, runs the migrations.
    pub async fn connect(url: &str) -> DbResult<SqliteStore> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut write_opts = SqlitePoolOptions::new().max_connections(1);
        if in_memory {
            // The database lives as long as its only connection.
            write_opts = write_opts
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let write = write_opts.connect_with(opts.clone()).await?;
        shared::migrator(MIGRATIONS).run(&write).await?;
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(opts)
                .await?
        };
        let wakeups = if in_memory {
            None
        } else {
            Some(super::wakeups::Wakeups::new(Path::new(
                &database_file(&write).await?,
            )))
        };
        Ok(SqliteStore {
            write,
            read,
            wakeups,
            secrets: Default::default(),
        })
    }

    pub(super) async fn begin_write(&self) -> DbResult<Transaction<'static, Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

// ---- the dialect: what the shared store code (`db/sql/`) is compiled against ----------------

/// The driver the shared code runs on here.
pub(super) type Db = Sqlite;
/// The store the shared code implements the traits for.
pub(super) type Backend = SqliteStore;

// Compiled once per backend by design (see `sql/mod.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

impl SqliteStore {
    /// The pool for reads (several connections; WAL lets them run beside the writer).
    pub(super) fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// The pool for single writes outside a transaction (the one writer connection).
    pub(super) fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// Dialect hook: the pool of the content app's hot lookups (resolution, the cache's
    /// generation): the readers.
    pub(super) fn lookups(&self) -> &SqlitePool {
        self.reader()
    }

    /// Dialect hook: the pipeline's batch writes added `rows` rows. Nothing to do: SQLite's
    /// planner takes an equality on an indexed column as selective without statistics.
    pub(super) fn grew(&self, _rows: usize) {}

    /// Dialect hook: the pool heartbeats are written through: the one writer (SQLite has no
    /// other way to write).
    pub(super) fn beater(&self) -> &SqlitePool {
        &self.write
    }

    /// Dialect hook: other processes' wakeups, heard on this store's socket beside the
    /// database file (`db::wakeups`). Workers still poll: a wakeup only comes sooner.
    pub(super) async fn forward_wakeups(
        &self,
        wake: &(dyn Fn() + Send + Sync),
        stop: &tokio_util::sync::CancellationToken,
    ) {
        let Some(wakeups) = &self.wakeups else {
            return;
        };
        match wakeups.listen() {
            Ok(listener) => listener.forward(wake, stop).await,
            Err(e) => tracing::warn!(
                error = %e,
                dir = %wakeups.dir().display(),
                "cannot listen for other processes' task wakeups; polling only"
            ),
        }
    }

    /// Dialect hook: inside a transaction that makes a task runnable. Nothing here: the
    /// wakeups go after the commit ([`SqliteStore::notified`]).
    pub(super) async fn notify_workers(&self, _conn: &mut SqliteConnection) -> DbResult<()> {
        Ok(())
    }

    /// Dialect hook: after the commit of a transaction that made a task runnable: a datagram
    /// to each store listening beside the database file but this one, whose own dispatches
    /// wake its workers in the process (`db::wakeups`). Not before the commit: an idle worker
    /// looks for runnable tasks without the write lock, and would find none.
    pub(super) fn notified(&self) {
        if let Some(wakeups) = &self.wakeups {
            wakeups.send();
        }
    }
}

/// The path of the database file behind `conn` (as SQLite names it; empty in memory).
async fn database_file<'e, E>(conn: E) -> DbResult<String>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    Ok(
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(conn)
            .await?,
    )
}

/// Dialect hook: `<column> IN <a list bound as parameter $n>`. SQLite binds the list as one JSON
/// array (see [`ids_param`], [`strs_param`]) and reads it with `json_each`.
pub(super) fn in_list_param(n: usize) -> String {
    format!("IN (SELECT value FROM json_each(${n}))")
}

/// Dialect hook: ids bound as one list parameter (a JSON array of hyphenated ids).
pub(super) fn ids_param(ids: &[Uuid]) -> String {
    serde_json::Value::from(ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()).to_string()
}

/// Dialect hook: strings bound as one list parameter (a JSON array).
pub(super) fn strs_param<S: AsRef<str>>(v: &[S]) -> String {
    serde_json::Value::from(v.iter().map(|s| s.as_ref()).collect::<Vec<_>>()).to_string()
}

/// Dialect hook: appends `<column> contains <needle>` (case-sensitive substring, the needle
/// bound) to a query being built: `instr` here, `strpos` on PostgreSQL.
pub(super) fn push_contains(qb: &mut QueryBuilder<Sqlite>, column: &str, needle: &str) {
    qb.push(format_args!("instr({column}, "))
        .push_bind(needle.to_string())
        .push(") > 0");
}

/// Dialect hook: appends `<JSON array column> holds any of <values>` (a string element equal to
/// one of them; none for an empty list) to a query being built. SQLite walks the array with
/// `json_each`; PostgreSQL uses `jsonb ?| text[]`.
pub(super) fn push_json_has_any(qb: &mut QueryBuilder<Sqlite>, column: &str, values: &[String]) {
    qb.push(format_args!(
        "EXISTS (SELECT 1 FROM json_each({column}) r \
         WHERE r.value IN (SELECT value FROM json_each("
    ))
    .push_bind(strs_param(values))
    .push(")))");
}

/// Dialect hook: the SQL value of JSON array `column` with the string parameter `$n` appended.
pub(super) fn json_array_append(column: &str, n: usize) -> String {
    format!("json_insert({column}, '$[#]', ${n})")
}

/// Dialect hook: the suffix of a `SELECT` that locks the rows it returns for the rest of the
/// transaction, skipping rows another transaction holds. Nothing here: inside the claim
/// transaction ([`SqliteStore::begin_claim`]) this connection is the only writer.
pub(super) fn for_update_skip_locked() -> &'static str {
    ""
}

impl SqliteStore {
    /// Dialect hook: the transaction that claims tasks and reaps workers, serialized against every
    /// other claimer and reaper. `BEGIN IMMEDIATE` on the single writer connection does it.
    pub(super) async fn begin_claim(&self) -> DbResult<Transaction<'static, Sqlite>> {
        self.begin_write().await
    }
}

/// Dialect hook: the clause that locks the rows a `SELECT` reads until the write transaction
/// ends. None on SQLite: the write transaction (`BEGIN IMMEDIATE`) already holds the one write
/// lock.
pub(super) const FOR_UPDATE: &str = "";

/// Dialect hook: pushes the value of member `key` of the JSON column `column` onto a query
/// being built, for comparing with text: `json_extract(column, '$.<key>')`, the path bound.
pub(super) fn push_json_member(qb: &mut sqlx::QueryBuilder<Sqlite>, column: &str, key: &str) {
    qb.push(format!("json_extract({column}, "))
        .push_bind(format!("$.{key}"))
        .push(")");
}

/// Dialect hook: the clause that locks the repository row a version-changing transaction reads.
/// None on SQLite: its write transaction (`BEGIN IMMEDIATE`) already holds the one write lock.
pub(super) const LOCK_REPOSITORY: &str = "";

/// Dialect hook: the comparison operators of a path-prefix range (`column >= low AND column <
/// high`), byte order either way. SQLite's default `BINARY` collation compares bytes, so the
/// plain operators use the path index.
pub(super) const PATH_RANGE: (&str, &str) = (">=", "<");

/// Whether workers may rely on other processes' wakeups ([`TaskStore::hears_wakeups`]): no,
/// the datagrams of `db::wakeups` are best-effort, so workers keep polling often.
pub(super) const HEARS_WAKEUPS: bool = false;

/// What [`Store::backend`] answers.
pub(super) const BACKEND: &str = "sqlite";

// ---- dialect hook: the batched writes of the sync pipeline ----------------------------------

/// Dialect hook: runs `sql`, a statement that reads the rows of `cols` as the table
/// `u(<names>)`, and returns the rows it affected (errors unmapped, for the caller to name).
/// SQLite gets them as a `WITH u(...) AS (VALUES (...), ...)` prefix, in statements of
/// [`CHUNK_SIZES`] rows.
pub(super) async fn with_rows(
    conn: &mut SqliteConnection,
    names: &str,
    cols: &[Column<'_>],
    sql: &str,
) -> Result<u64, sqlx::Error> {
    let rows = cols.first().map_or(0, Column::rows);
    let mut done = 0;
    for range in chunks(rows) {
        let mut qb = QueryBuilder::<Sqlite>::new(format!("WITH u({names}) AS ("));
        qb.push_values(range, |mut row, i| {
            for col in cols {
                match col {
                    Column::Id(v) => row.push_bind(v[i]),
                    Column::OptId(v) => row.push_bind(v[i]),
                    Column::Text(v) => row.push_bind(v[i]),
                    Column::OptText(v) => row.push_bind(v[i]),
                    Column::Int(v) => row.push_bind(v[i]),
                    Column::OptInt(v) => row.push_bind(v[i]),
                    Column::Time(v) => row.push_bind(v[i]),
                    Column::Json(v) => row.push_bind(&v[i]),
                };
            }
        });
        qb.push(") ").push(sql);
        done += qb.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_statements_of_a_few_sizes() {
        for rows in [0, 1, 4, 5, 99, 500, 501, 1234, 2000] {
            let cut: Vec<_> = chunks(rows).collect();
            let mut next = 0;
            for r in &cut {
                assert_eq!(r.start, next, "{rows}: contiguous");
                assert!(CHUNK_SIZES.contains(&r.len()), "{rows}: size {}", r.len());
                next = r.end;
            }
            assert_eq!(next, rows, "{rows}: every row once");
        }
        assert_eq!(
            chunks(1234).count(),
            2 + 2 + 1 + 2 + 4,
            "500 500 100 100 20 5 5 1 1 1 1"
        );
    }

    #[tokio::test]
    async fn in_memory_database_works() {
        let store = connect("sqlite::memory:").await.unwrap();
        let repo = store
            .create_repository("file.file", "mem", None)
            .await
            .unwrap();
        assert_eq!(store.latest_version(repo.id).await.unwrap().number, 0);
    }
}

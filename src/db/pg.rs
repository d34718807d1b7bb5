//! The PostgreSQL backend of [`Store`]: a pool of [`POOL_SIZE`] connections (plus, opened on
//! first use, one connection for heartbeats and a pool for the content app's lookups), embedded
//! migrations (`migrations/postgres`), batch writes reading `UNNEST(...)` of one array parameter
//! per column (no parameter limit), every batch sorted by its unique key so concurrent syncs
//! lock rows in the same order.
//!
//! Version-changing transactions lock the repository row (`FOR NO KEY UPDATE`) first, so two
//! of them on one repository serialize instead of deadlocking.
//!
//! Known issue: sqlx 0.9.0 does not set `TCP_NODELAY` (sqlx issue #4335, fixed upstream after
//! 0.9.0). Over TLS (the default `sslmode=prefer` against a server with `ssl = on`), a statement
//! larger than one TLS record (16 KiB, i.e. most batch statements) then waits ~40 ms for a
//! delayed ACK, which makes a sync several times slower. Until sqlx is upgraded, point the URL
//! at a Unix socket (`postgres:///pulp?host=/var/run/postgresql`) or use `sslmode=disable` on a
//! trusted local link.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgListener, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Transaction};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::shared;
use super::types::Column;
use super::{DbResult, DynStore};

#[allow(clippy::zero_prefixed_literal)]
const MIGRATIONS: &[(i64, &str, &str)] = shared::migrations!("postgres": 0001 initial, 0002 tasks, 0003 server, 0006 distribution,
        0007 parity, 0010 uploads, 0011 task_queue, 0012 app_status, 0016 content_cache, 0017 plugin_contract, 0018 secrets,
        0019 path_prefix);

/// Connections in the pool.
const POOL_SIZE: u32 = 10;

/// The channel dispatches and releases `NOTIFY` when a task may start.
const WAKEUP_CHANNEL: &str = "pulp_tasks";

/// The PostgreSQL [`Store`].
pub struct PgStore {
    pub(super) pool: PgPool,
    /// One connection of its own for heartbeats (opened on first use), so a busy pool never
    /// delays them.
    beat: PgPool,
    /// Connections of their own for the content app's lookups (opened on first use), which
    /// plan their statements once (`plan_cache_mode = force_generic_plan`): a lookup's custom
    /// plan cost 5-8 ms of planning for 0.3 ms of execution. Their SQL is written so that one
    /// plan fits every parameter (path first, by index).
    lookups: PgPool,
    /// The key remote secrets are sealed with (`crate::secrets`).
    pub(super) secrets: std::sync::RwLock<Arc<crate::secrets::SecretBox>>,
    /// Rows the pipeline's batch writes added since this process last analyzed (see
    /// [`PgStore::grew`]).
    growth: Arc<Growth>,
}

/// The tables a sync grows, analyzed together by [`PgStore::grew`].
const GROWN_TABLES: &str =
    "content, content_artifacts, artifacts, remote_artifacts, repository_content";

/// When [`PgStore::grew`] analyzes next: after `next` more rows (at least [`FIRST_ANALYZE`],
/// then half of what the tables held at the last analyze).
struct Growth {
    rows: std::sync::atomic::AtomicU64,
    next: std::sync::atomic::AtomicU64,
    running: std::sync::atomic::AtomicBool,
}

/// Rows written before the first `ANALYZE` of a process.
const FIRST_ANALYZE: u64 = 1000;

/// Connects to the database named by `url` and runs the migrations.
pub async fn connect(url: &str) -> DbResult<DynStore> {
    Ok(Arc::new(PgStore::connect(url).await?))
}

impl PgStore {
    /// Connects to the database named by `url` and runs the migrations.
    pub async fn connect(url: &str) -> DbResult<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect(url)
            .await?;
        shared::migrator(MIGRATIONS).run(&pool).await?;
        let beat = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*pool.connect_options()).clone());
        let lookups = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(conn, "SET plan_cache_mode = force_generic_plan")
                        .await
                        .map(|_| ())
                })
            })
            .connect_lazy_with((*pool.connect_options()).clone());
        Ok(PgStore {
            pool,
            beat,
            lookups,
            secrets: Default::default(),
            growth: Arc::new(Growth {
                rows: 0.into(),
                next: FIRST_ANALYZE.into(),
                running: false.into(),
            }),
        })
    }

    pub(super) async fn begin(&self) -> DbResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

// ---- the dialect: what the shared store code (`db/sql/`) is compiled against ----------------

/// The driver the shared code runs on here.
pub(super) type Db = Postgres;
/// The store the shared code implements the traits for.
pub(super) type Backend = PgStore;

// Compiled once per backend by design (see `sql/mod.rs`).
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

impl PgStore {
    /// The pool for reads (the one pool).
    pub(super) fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// The pool for single writes outside a transaction (the one pool).
    pub(super) fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// Dialect hook: the pool of the content app's hot lookups (resolution, the cache's
    /// generation): connections of their own, so a busy pool (a sync in this process) never
    /// queues a request or delays a cache check, with generic plans (see [`PgStore::lookups`]).
    pub(super) fn lookups(&self) -> &PgPool {
        &self.lookups
    }

    /// Dialect hook: the pipeline's batch writes added `rows` rows to [`GROWN_TABLES`].
    ///
    /// PostgreSQL plans by the statistics `ANALYZE` gathers, and until a table has them (its
    /// first large sync; autovacuum off, or a minute behind) it guesses: a batch lookup's join
    /// to `artifacts` becomes a hash join over the whole table, so every batch costs more the
    /// more the tables hold (a 60,000-unit re-sync took 54 s, 10,000 units 1.4 s). So the
    /// store analyzes the tables itself, in the background on one pooled connection, once the
    /// rows written since the last time reach half of what they held then (at least
    /// [`FIRST_ANALYZE`]): about twenty times over a sync of a million units. A failed analyze
    /// (two processes at once) is only logged; the next threshold retries.
    pub(super) fn grew(&self, rows: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        let g = &self.growth;
        let total = g.rows.fetch_add(rows as u64, SeqCst) + rows as u64;
        if total < g.next.load(SeqCst) || g.running.swap(true, SeqCst) {
            return;
        }
        let (pool, g) = (self.pool.clone(), self.growth.clone());
        g.rows.store(0, SeqCst);
        tokio::spawn(async move {
            let analyzed = sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {GROWN_TABLES}")))
                .execute(&pool)
                .await;
            let held: Result<i64, _> = sqlx::query_scalar(
                "SELECT COALESCE(sum(greatest(reltuples, 0)), 0)::bigint FROM pg_class \
                 WHERE relkind = 'r' AND relname = ANY(string_to_array($1, ', '))",
            )
            .bind(GROWN_TABLES)
            .fetch_one(&pool)
            .await;
            match (analyzed, held) {
                (Ok(_), Ok(held)) => {
                    g.next.store((held as u64 / 2).max(FIRST_ANALYZE), SeqCst);
                    tracing::debug!(rows = held, "analyzed the tables a sync grows");
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!(error = %e, "ANALYZE of the tables a sync grows failed")
                }
            }
            g.running.store(false, SeqCst);
        });
    }

    /// Dialect hook: the pool heartbeats are written through (a connection of their own).
    pub(super) fn beater(&self) -> &PgPool {
        &self.beat
    }

    /// Dialect hook: calls `wake` for every `NOTIFY` on [`WAKEUP_CHANNEL`] until `stop` fires,
    /// `LISTEN`ing on a connection of its own; when that connection drops it reconnects (every
    /// second until it can) and calls `wake` once, for what it may have missed meanwhile.
    pub(super) async fn forward_wakeups(
        &self,
        wake: &(dyn Fn() + Send + Sync),
        stop: &CancellationToken,
    ) {
        let mut lost = false;
        while !stop.is_cancelled() {
            let mut listener = match PgListener::connect_with(&self.pool).await {
                Ok(l) => l,
                Err(e) => {
                    if !lost {
                        tracing::warn!(error = %e, "cannot listen for task wakeups; retrying");
                        lost = true;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            if let Err(e) = listener.listen(WAKEUP_CHANNEL).await {
                tracing::warn!(error = %e, "LISTEN {WAKEUP_CHANNEL} failed; retrying");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            if lost {
                tracing::info!("listening for task wakeups again");
                lost = false;
            }
            wake();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    got = listener.try_recv() => match got {
                        Ok(Some(_)) => wake(),
                        // The connection dropped: listen again on a new one.
                        Ok(None) | Err(_) => break,
                    },
                }
            }
        }
    }

    /// Dialect hook: a write transaction. PostgreSQL locks rows as statements touch them (and
    /// `LOCK_REPOSITORY` takes the repository row up front where order matters).
    pub(super) async fn begin_write(&self) -> DbResult<Transaction<'static, Postgres>> {
        self.begin().await
    }
}

/// Dialect hook: `<column> IN <a list bound as parameter $n>`: `= ANY` over an array.
///
/// The array goes through `ARRAY(SELECT unnest($n))`, an init plan the planner cannot look
/// into, so it estimates a handful of keys and searches the column's index whatever the
/// table's statistics say. A bare `= ANY($n)` is costed per element: on a table never
/// analyzed (a first large sync, autovacuum off or behind) 500 keys "match" the whole table
/// and every batch lookup becomes a sequential scan, slower the more the table holds.
pub(super) fn in_list_param(n: usize) -> String {
    format!("= ANY(ARRAY(SELECT unnest(${n})))")
}

/// Dialect hook: ids bound as one list parameter (a `uuid[]`).
pub(super) fn ids_param(ids: &[Uuid]) -> Vec<Uuid> {
    ids.to_vec()
}

/// Dialect hook: strings bound as one list parameter (a `text[]`).
pub(super) fn strs_param<S: AsRef<str>>(v: &[S]) -> Vec<String> {
    v.iter().map(|s| s.as_ref().to_string()).collect()
}

/// The advisory lock key taken by claimers and reapers (`pulp` + `task` in ASCII).
const CLAIM_LOCK: i64 = 0x7075_6c70_7461_736b;

/// Dialect hook: appends `<column> contains <needle>` (case-sensitive substring, the needle
/// bound) to a query being built: `strpos` here, `instr` on SQLite.
pub(super) fn push_contains(qb: &mut QueryBuilder<Postgres>, column: &str, needle: &str) {
    qb.push(format_args!("strpos({column}, "))
        .push_bind(needle.to_string())
        .push(") > 0");
}

/// Dialect hook: appends `<JSON array column> holds any of <values>` (a string element equal to
/// one of them; none for an empty list) to a query being built: `jsonb ?| text[]` here,
/// `json_each` on SQLite.
pub(super) fn push_json_has_any(qb: &mut QueryBuilder<Postgres>, column: &str, values: &[String]) {
    qb.push(format_args!("{column} ?| "))
        .push_bind(strs_param(values));
}

/// Dialect hook: the SQL value of JSON array `column` with the string parameter `$n` appended.
pub(super) fn json_array_append(column: &str, n: usize) -> String {
    format!("{column} || jsonb_build_array(CAST(${n} AS TEXT))")
}

/// Dialect hook: the suffix of a `SELECT` that locks the rows it returns for the rest of the
/// transaction, skipping rows another transaction holds (a concurrent cancel of a task is then
/// never waited for nor overwritten by a claim).
pub(super) fn for_update_skip_locked() -> &'static str {
    " FOR UPDATE SKIP LOCKED"
}

impl PgStore {
    /// Dialect hook: the transaction that claims tasks and reaps workers, serialized against every
    /// other claimer and reaper (of every process sharing the database) by the transaction-scoped
    /// advisory lock [`CLAIM_LOCK`].
    pub(super) async fn begin_claim(&self) -> DbResult<Transaction<'static, Postgres>> {
        let mut tx = self.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

impl PgStore {
    /// Dialect hook: tells every process's workers, when the transaction commits, that a task
    /// may start (`NOTIFY`; delivered at commit, dropped on rollback).
    pub(super) async fn notify_workers(&self, conn: &mut PgConnection) -> DbResult<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!("NOTIFY {WAKEUP_CHANNEL}")))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Dialect hook: after the commit of a transaction that notified the workers. Nothing
    /// here: the commit itself delivers `NOTIFY`.
    pub(super) fn notified(&self) {}
}

/// Dialect hook: the clause that locks the rows a `SELECT` reads until the write transaction
/// ends.
pub(super) const FOR_UPDATE: &str = " FOR UPDATE";

/// Dialect hook: pushes the value of member `key` of the JSON column `column` onto a query
/// being built, for comparing with text: `column ->> '<key>'`, the key bound.
pub(super) fn push_json_member(qb: &mut sqlx::QueryBuilder<Postgres>, column: &str, key: &str) {
    qb.push(format!("{column} ->> ")).push_bind(key.to_string());
}

/// Dialect hook: the clause that locks the repository row a version-changing transaction reads
/// (`FOR NO KEY UPDATE`: concurrent writers of one repository queue there; a reference to the row
/// is not blocked).
pub(super) const LOCK_REPOSITORY: &str = " FOR NO KEY UPDATE";

/// Dialect hook: the comparison operators of a path-prefix range (`column >= low AND column <
/// high`), byte order either way. PostgreSQL's plain operators follow the database's collation
/// (not byte order outside "C"); the pattern operators compare bytes and use the
/// `text_pattern_ops` path index (`0019_path_prefix.sql`), with prepared statements' generic
/// plans too (a bound `LIKE` pattern does not).
pub(super) const PATH_RANGE: (&str, &str) = ("~>=~", "~<~");

/// Whether other processes' wakeups reach this process ([`TaskStore::hears_wakeups`]).
pub(super) const HEARS_WAKEUPS: bool = true;

/// What [`Store::backend`] answers.
pub(super) const BACKEND: &str = "postgres";

// ---- dialect hook: the batched writes of the sync pipeline ----------------------------------

/// Dialect hook: runs `sql`, a statement that reads the rows of `cols` as the table
/// `u(<names>)`, and returns the rows it affected (errors unmapped, for the caller to name).
/// PostgreSQL gets them as a `WITH u(...) AS (SELECT * FROM UNNEST($1, $2, ...))` prefix, one
/// array parameter per column: one statement whatever the batch's size.
pub(super) async fn with_rows(
    conn: &mut PgConnection,
    names: &str,
    cols: &[Column<'_>],
    sql: &str,
) -> Result<u64, sqlx::Error> {
    let mut qb =
        QueryBuilder::<Postgres>::new(format!("WITH u({names}) AS (SELECT * FROM UNNEST("));
    let mut arrays = qb.separated(", ");
    for col in cols {
        match col {
            Column::Id(v) => arrays.push_bind(v),
            Column::OptId(v) => arrays.push_bind(v),
            Column::Text(v) => arrays.push_bind(v),
            Column::OptText(v) => arrays.push_bind(v),
            Column::Int(v) => arrays.push_bind(v),
            Column::OptInt(v) => arrays.push_bind(v),
            Column::Time(v) => arrays.push_bind(v),
            Column::Json(v) => arrays.push_bind(v),
        };
    }
    qb.push(")) ").push(sql);
    Ok(qb.build().execute(conn).await?.rows_affected())
}

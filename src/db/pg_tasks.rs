//! The PostgreSQL half of [`TaskStore`]: tasks and workers. State changes are conditional
//! `UPDATE ... RETURNING` statements. Claimers (and reapers) serialize on a transaction-scoped
//! advisory lock ([`CLAIM_LOCK`]), read the incomplete tasks, and lock the chosen row with
//! `FOR UPDATE SKIP LOCKED` before moving it to `running`, so a concurrent cancel of that row
//! is never overwritten and several processes never claim one task twice.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::Row;
use uuid::Uuid;

use super::pg::PgStore;
use super::reservations::{self, Reservation};
use super::shared;
use super::{DbError, DbResult, TaskStore, WORKER_MISSING};
use crate::models::{NewTask, ProgressReport, Task, TaskFilter, TaskState, WorkerStatus};

/// The advisory lock key taken by claimers and reapers (`pulp` + `task` in ASCII).
const CLAIM_LOCK: i64 = 0x7075_6c70_7461_736b;

macro_rules! task_cols {
    () => {
        "id, name, state, args, logging_cid, pulp_created, started_at, finished_at, error, \
         progress_reports, created_resources, exclusive_resources, shared_resources, worker, \
         pulp_last_updated"
    };
}

/// The conditions of a [`TaskFilter`], parameters `$1` to `$14` (see [`FilterBinds`]).
macro_rules! task_where {
    () => {
        " FROM tasks WHERE ($1::text IS NULL OR state = $1) \
         AND ($2::text IS NULL OR name = $2) \
         AND ($3::text[] IS NULL OR state = ANY($3)) \
         AND ($4::text IS NULL OR strpos(name, $4) > 0) \
         AND ($5::text IS NULL OR strpos(logging_cid, $5) > 0) \
         AND ($6::text IS NULL OR worker = $6) \
         AND ($7::text IS NULL OR created_resources @> jsonb_build_array($7::text)) \
         AND ($8::text[] IS NULL OR exclusive_resources ?| $8 OR shared_resources ?| $8) \
         AND ($9::text[] IS NULL OR exclusive_resources ?| $9) \
         AND ($10::text[] IS NULL OR shared_resources ?| $10) \
         AND ($11::timestamptz IS NULL OR started_at >= $11) \
         AND ($12::timestamptz IS NULL OR started_at <= $12) \
         AND ($13::timestamptz IS NULL OR finished_at >= $13) \
         AND ($14::timestamptz IS NULL OR finished_at <= $14)"
    };
}

/// Binds a [`FilterBinds`] as parameters `$1` to `$14` of [`task_where`].
macro_rules! bind_filter {
    ($q:expr, $b:expr) => {
        $q.bind($b.state)
            .bind($b.name)
            .bind($b.states)
            .bind($b.name_contains)
            .bind($b.cid_contains)
            .bind($b.worker)
            .bind($b.created)
            .bind($b.reserved)
            .bind($b.exclusive)
            .bind($b.shared)
            .bind($b.started_after)
            .bind($b.started_before)
            .bind($b.finished_after)
            .bind($b.finished_before)
    };
}

/// A [`TaskFilter`] as PostgreSQL values.
struct FilterBinds {
    state: Option<&'static str>,
    name: Option<String>,
    states: Option<Vec<String>>,
    name_contains: Option<String>,
    cid_contains: Option<String>,
    worker: Option<String>,
    created: Option<String>,
    reserved: Option<Vec<String>>,
    exclusive: Option<Vec<String>>,
    shared: Option<Vec<String>>,
    started_after: Option<chrono::DateTime<chrono::Utc>>,
    started_before: Option<chrono::DateTime<chrono::Utc>>,
    finished_after: Option<chrono::DateTime<chrono::Utc>>,
    finished_before: Option<chrono::DateTime<chrono::Utc>>,
}

impl FilterBinds {
    fn new(f: &TaskFilter) -> FilterBinds {
        FilterBinds {
            state: f.state.map(TaskState::as_str),
            name: f.name.clone(),
            states: f
                .states
                .as_ref()
                .map(|v| v.iter().map(|s| s.as_str().to_string()).collect()),
            name_contains: f.name_contains.clone(),
            cid_contains: f.logging_cid_contains.clone(),
            worker: f.worker.clone(),
            created: f.created_resource.clone(),
            reserved: f.reserved_resources.clone(),
            exclusive: f.exclusive_resources.clone(),
            shared: f.shared_resources.clone(),
            started_after: f.started_after,
            started_before: f.started_before,
            finished_after: f.finished_after,
            finished_before: f.finished_before,
        }
    }
}

fn task_from(row: &PgRow) -> DbResult<Task> {
    let state: &str = row.try_get(2)?;
    Ok(Task {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        state: shared::task_state(state)?,
        args: row.try_get(3)?,
        logging_cid: row.try_get(4)?,
        pulp_created: row.try_get(5)?,
        started_at: row.try_get(6)?,
        finished_at: row.try_get(7)?,
        error: row.try_get(8)?,
        progress_reports: shared::progress_from_json(row.try_get(9)?)?,
        created_resources: shared::strings_from_json(row.try_get(10)?, "created_resources")?,
        exclusive_resources: shared::strings_from_json(row.try_get(11)?, "exclusive_resources")?,
        shared_resources: shared::strings_from_json(row.try_get(12)?, "shared_resources")?,
        worker: row.try_get(13)?,
        pulp_last_updated: row.try_get(14)?,
    })
}

fn tasks_from(rows: &[PgRow]) -> DbResult<Vec<Task>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(task_from(row)?);
    }
    Ok(out)
}

async fn get_task_in(conn: &mut PgConnection, id: Uuid) -> DbResult<Task> {
    let row = sqlx::query(concat!(
        "SELECT ",
        task_cols!(),
        " FROM tasks WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| DbError::NotFound(format!("task {id}")))?;
    task_from(&row)
}

async fn heartbeat_in(conn: &mut PgConnection, worker: &str) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO workers (name, last_heartbeat, started_at) VALUES ($1, $2, $2) \
         ON CONFLICT (name) DO UPDATE SET last_heartbeat = excluded.last_heartbeat",
    )
    .bind(worker)
    .bind(shared::now())
    .execute(conn)
    .await?;
    Ok(())
}

async fn lock_claims(conn: &mut PgConnection) -> DbResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CLAIM_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl TaskStore for PgStore {
    async fn insert_task(&self, task: &NewTask) -> DbResult<Task> {
        let now = shared::now();
        let row = sqlx::query(concat!(
            "INSERT INTO tasks (id, name, state, args, logging_cid, pulp_created, \
             exclusive_resources, shared_resources, pulp_last_updated) \
             VALUES ($1, $2, 'waiting', $3::jsonb, $4, $5, $6::jsonb, $7::jsonb, $5) RETURNING ",
            task_cols!()
        ))
        .bind(Uuid::now_v7())
        .bind(&task.name)
        .bind(task.args.to_string())
        .bind(&task.logging_cid)
        .bind(now)
        .bind(shared::strings_to_json(&task.exclusive_resources))
        .bind(shared::strings_to_json(&task.shared_resources))
        .fetch_one(&self.pool)
        .await?;
        task_from(&row)
    }

    async fn get_task(&self, id: Uuid) -> DbResult<Task> {
        let mut conn = self.pool.acquire().await?;
        get_task_in(&mut conn, id).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> DbResult<Vec<Task>> {
        let b = FilterBinds::new(filter);
        let rows = bind_filter!(
            sqlx::query(concat!(
                "SELECT ",
                task_cols!(),
                task_where!(),
                " ORDER BY pulp_created DESC, id DESC LIMIT $15 OFFSET $16"
            )),
            b
        )
        .bind(shared::opt_to_i64(filter.limit, "limit")?)
        .bind(shared::to_i64(filter.offset, "offset")?)
        .fetch_all(&self.pool)
        .await?;
        tasks_from(&rows)
    }

    async fn count_tasks(&self, filter: &TaskFilter) -> DbResult<u64> {
        let b = FilterBinds::new(filter);
        let n: i64 = bind_filter!(
            sqlx::query_scalar(concat!("SELECT COUNT(*)", task_where!())),
            b
        )
        .fetch_one(&self.pool)
        .await?;
        shared::to_u64(n, "count")
    }

    async fn task_counts(&self) -> DbResult<Vec<(String, String, i64)>> {
        let rows = sqlx::query("SELECT name, state, COUNT(*) FROM tasks GROUP BY name, state")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<String, _>(1),
                    r.get::<i64, _>(2),
                )
            })
            .collect())
    }

    async fn delete_task(&self, id: Uuid) -> DbResult<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "DELETE FROM tasks WHERE id = $1 \
             AND state IN ('skipped', 'completed', 'failed', 'canceled')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let current = get_task_in(&mut tx, id).await?;
            return Err(DbError::Conflict(format!(
                "task {id} is {} and cannot be deleted until it has finished",
                current.state
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_next_task(&self, worker: &str) -> DbResult<Option<Task>> {
        // Idle workers poll: answer "nothing waiting" without a write transaction.
        let any_waiting: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tasks WHERE state = 'waiting')")
                .fetch_one(&self.pool)
                .await?;
        if !any_waiting {
            return Ok(None);
        }
        let mut tx = self.begin().await?;
        lock_claims(&mut tx).await?;
        heartbeat_in(&mut tx, worker).await?;
        let rows = sqlx::query(
            "SELECT id, state, exclusive_resources, shared_resources FROM tasks \
             WHERE state IN ('waiting', 'running', 'canceling') ORDER BY pulp_created, id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut incomplete = Vec::with_capacity(rows.len());
        for row in &rows {
            let state: &str = row.try_get(1)?;
            incomplete.push(Reservation {
                id: row.try_get(0)?,
                state: shared::task_state(state)?,
                exclusive: shared::strings_from_json(row.try_get(2)?, "exclusive_resources")?,
                shared: shared::strings_from_json(row.try_get(3)?, "shared_resources")?,
            });
        }
        let now = shared::now();
        let mut claimed = None;
        for id in reservations::runnable(&incomplete) {
            let locked = sqlx::query(
                "SELECT id FROM tasks WHERE id = $1 AND state = 'waiting' \
                 FOR UPDATE SKIP LOCKED",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if locked.is_none() {
                continue;
            }
            let row = sqlx::query(concat!(
                "UPDATE tasks SET state = 'running', started_at = $1, worker = $2, \
                 pulp_last_updated = $1 WHERE id = $3 AND state = 'waiting' RETURNING ",
                task_cols!()
            ))
            .bind(now)
            .bind(worker)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                claimed = Some(task_from(&row)?);
                break;
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn finish_task(
        &self,
        id: Uuid,
        worker: &str,
        state: TaskState,
        error: Option<serde_json::Value>,
    ) -> DbResult<Task> {
        shared::check_final(state)?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(concat!(
            "UPDATE tasks SET \
             state = CASE WHEN state = 'canceling' AND $1 = 'completed' THEN 'canceled' \
             ELSE $1 END, \
             error = $2::jsonb, finished_at = $3, pulp_last_updated = $3 \
             WHERE id = $4 AND worker = $5 AND state IN ('running', 'canceling') RETURNING ",
            task_cols!()
        ))
        .bind(state.as_str())
        .bind(error.map(|e| e.to_string()))
        .bind(shared::now())
        .bind(id)
        .bind(worker)
        .fetch_optional(&mut *tx)
        .await?;
        let out = match row {
            Some(row) => task_from(&row)?,
            None => {
                let current = get_task_in(&mut tx, id).await?;
                return Err(DbError::Conflict(format!(
                    "task {id} is {} (worker {:?}), not running for worker {worker:?}",
                    current.state, current.worker
                )));
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    async fn request_cancel(&self, id: Uuid) -> DbResult<Task> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(concat!(
            "UPDATE tasks SET \
             state = CASE state WHEN 'waiting' THEN 'canceled' ELSE 'canceling' END, \
             finished_at = CASE state WHEN 'waiting' THEN $1 ELSE finished_at END, \
             pulp_last_updated = $1 \
             WHERE id = $2 AND state IN ('waiting', 'running') RETURNING ",
            task_cols!()
        ))
        .bind(shared::now())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let out = match row {
            Some(row) => task_from(&row)?,
            None => get_task_in(&mut tx, id).await?,
        };
        tx.commit().await?;
        match out.state {
            TaskState::Canceled | TaskState::Canceling => Ok(out),
            other => Err(DbError::Conflict(format!(
                "task {id} is already {other} and cannot be canceled"
            ))),
        }
    }

    async fn set_progress(&self, id: Uuid, reports: &[ProgressReport]) -> DbResult<()> {
        let done = sqlx::query(
            "UPDATE tasks SET progress_reports = $1::jsonb, pulp_last_updated = $2 WHERE id = $3",
        )
        .bind(shared::progress_to_json(reports)?)
        .bind(shared::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("task {id}")));
        }
        Ok(())
    }

    async fn add_created_resource(&self, id: Uuid, resource: &str) -> DbResult<()> {
        let done = sqlx::query(
            "UPDATE tasks SET created_resources = created_resources || jsonb_build_array($1::text), \
             pulp_last_updated = $2 WHERE id = $3",
        )
        .bind(resource)
        .bind(shared::now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("task {id}")));
        }
        Ok(())
    }

    async fn heartbeat(&self, worker: &str) -> DbResult<()> {
        let mut conn = self.pool.acquire().await?;
        heartbeat_in(&mut conn, worker).await
    }

    async fn list_workers(&self) -> DbResult<Vec<WorkerStatus>> {
        let rows =
            sqlx::query("SELECT name, last_heartbeat, started_at FROM workers ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(WorkerStatus {
                name: row.try_get(0)?,
                last_heartbeat: row.try_get(1)?,
                started_at: row.try_get(2)?,
            });
        }
        Ok(out)
    }

    async fn reap_dead_workers(&self, ttl: Duration) -> DbResult<Vec<Task>> {
        let cutoff = shared::heartbeat_cutoff(ttl)?;
        let mut tx = self.begin().await?;
        lock_claims(&mut tx).await?;
        sqlx::query("DELETE FROM workers WHERE last_heartbeat < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(concat!(
            "UPDATE tasks SET state = 'failed', error = $1::jsonb, finished_at = $2, \
             pulp_last_updated = $2 WHERE state IN ('running', 'canceling') \
             AND (worker IS NULL OR worker NOT IN (SELECT name FROM workers)) RETURNING ",
            task_cols!()
        ))
        .bind(shared::task_error(WORKER_MISSING).to_string())
        .bind(shared::now())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        tasks_from(&rows)
    }

    async fn remove_worker(&self, worker: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM workers WHERE name = $1")
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

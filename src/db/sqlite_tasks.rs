//! The SQLite half of [`TaskStore`]: tasks and workers. State changes are conditional
//! `UPDATE ... RETURNING` statements; claiming runs in one `BEGIN IMMEDIATE` transaction on the
//! single writer connection, which serializes claimers, so reading the incomplete tasks and
//! moving the chosen one to `running` is atomic.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::Row;
use uuid::Uuid;

use super::reservations::{self, Reservation};
use super::shared;
use super::sqlite::{hy, json_at, time_at, us, uuid_at, SqliteStore};
use super::{DbError, DbResult, TaskStore, WORKER_MISSING};
use crate::models::{NewTask, ProgressReport, Task, TaskFilter, TaskState, WorkerStatus};

macro_rules! task_cols {
    () => {
        "id, name, state, args, logging_cid, pulp_created, started_at, finished_at, error, \
         progress_reports, created_resources, exclusive_resources, shared_resources, worker, \
         pulp_last_updated"
    };
}

/// The conditions of a [`TaskFilter`], parameters `?1` to `?14` (see [`FilterBinds`]).
macro_rules! task_where {
    () => {
        " FROM tasks WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR name = ?2) \
         AND (?3 IS NULL OR state IN (SELECT value FROM json_each(?3))) \
         AND (?4 IS NULL OR instr(name, ?4) > 0) \
         AND (?5 IS NULL OR instr(logging_cid, ?5) > 0) \
         AND (?6 IS NULL OR worker = ?6) \
         AND (?7 IS NULL OR EXISTS (SELECT 1 FROM json_each(tasks.created_resources) c \
              WHERE c.value = ?7)) \
         AND (?8 IS NULL \
              OR EXISTS (SELECT 1 FROM json_each(tasks.exclusive_resources) r \
                         WHERE r.value IN (SELECT value FROM json_each(?8))) \
              OR EXISTS (SELECT 1 FROM json_each(tasks.shared_resources) r \
                         WHERE r.value IN (SELECT value FROM json_each(?8)))) \
         AND (?9 IS NULL OR EXISTS (SELECT 1 FROM json_each(tasks.exclusive_resources) r \
              WHERE r.value IN (SELECT value FROM json_each(?9)))) \
         AND (?10 IS NULL OR EXISTS (SELECT 1 FROM json_each(tasks.shared_resources) r \
              WHERE r.value IN (SELECT value FROM json_each(?10)))) \
         AND (?11 IS NULL OR started_at >= ?11) AND (?12 IS NULL OR started_at <= ?12) \
         AND (?13 IS NULL OR finished_at >= ?13) AND (?14 IS NULL OR finished_at <= ?14)"
    };
}

/// Binds a [`FilterBinds`] as parameters `?1` to `?14` of [`task_where`].
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

/// A [`TaskFilter`] as SQLite values: lists as JSON text, times as microseconds.
struct FilterBinds {
    state: Option<&'static str>,
    name: Option<String>,
    states: Option<String>,
    name_contains: Option<String>,
    cid_contains: Option<String>,
    worker: Option<String>,
    created: Option<String>,
    reserved: Option<String>,
    exclusive: Option<String>,
    shared: Option<String>,
    started_after: Option<i64>,
    started_before: Option<i64>,
    finished_after: Option<i64>,
    finished_before: Option<i64>,
}

impl FilterBinds {
    fn new(f: &TaskFilter) -> FilterBinds {
        let list = |v: &Option<Vec<String>>| v.as_deref().map(shared::strings_to_json);
        FilterBinds {
            state: f.state.map(TaskState::as_str),
            name: f.name.clone(),
            states: f.states.as_ref().map(|v| {
                let names: Vec<String> = v.iter().map(|s| s.as_str().to_string()).collect();
                shared::strings_to_json(&names)
            }),
            name_contains: f.name_contains.clone(),
            cid_contains: f.logging_cid_contains.clone(),
            worker: f.worker.clone(),
            created: f.created_resource.clone(),
            reserved: list(&f.reserved_resources),
            exclusive: list(&f.exclusive_resources),
            shared: list(&f.shared_resources),
            started_after: f.started_after.map(us),
            started_before: f.started_before.map(us),
            finished_after: f.finished_after.map(us),
            finished_before: f.finished_before.map(us),
        }
    }
}

fn opt_time_at(row: &SqliteRow, i: usize) -> DbResult<Option<chrono::DateTime<chrono::Utc>>> {
    match row.try_get::<Option<i64>, _>(i)? {
        None => Ok(None),
        Some(v) => shared::micros_to_time(v)
            .map(Some)
            .ok_or_else(|| DbError::Corrupt(format!("timestamp {v}"))),
    }
}

fn task_from(row: &SqliteRow) -> DbResult<Task> {
    let state: &str = row.try_get(2)?;
    let error = match row.try_get::<Option<&str>, _>(8)? {
        None => None,
        Some(s) => Some(
            serde_json::from_str(s).map_err(|e| DbError::Corrupt(format!("task error: {e}")))?,
        ),
    };
    Ok(Task {
        id: uuid_at(row, 0)?,
        name: row.try_get(1)?,
        state: shared::task_state(state)?,
        args: json_at(row, 3)?,
        logging_cid: row.try_get(4)?,
        pulp_created: time_at(row, 5)?,
        started_at: opt_time_at(row, 6)?,
        finished_at: opt_time_at(row, 7)?,
        error,
        progress_reports: shared::progress_from_json(json_at(row, 9)?)?,
        created_resources: shared::strings_from_json(json_at(row, 10)?, "created_resources")?,
        exclusive_resources: shared::strings_from_json(json_at(row, 11)?, "exclusive_resources")?,
        shared_resources: shared::strings_from_json(json_at(row, 12)?, "shared_resources")?,
        worker: row.try_get(13)?,
        pulp_last_updated: time_at(row, 14)?,
    })
}

async fn get_task_in(conn: &mut SqliteConnection, id: Uuid) -> DbResult<Task> {
    let row = sqlx::query(concat!("SELECT ", task_cols!(), " FROM tasks WHERE id = ?"))
        .bind(hy(id))
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| DbError::NotFound(format!("task {id}")))?;
    task_from(&row)
}

async fn heartbeat_in(conn: &mut SqliteConnection, worker: &str) -> DbResult<()> {
    let now = us(shared::now());
    sqlx::query(
        "INSERT INTO workers (name, last_heartbeat, started_at) VALUES (?, ?, ?) \
         ON CONFLICT (name) DO UPDATE SET last_heartbeat = excluded.last_heartbeat",
    )
    .bind(worker)
    .bind(now)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn insert_task(&self, task: &NewTask) -> DbResult<Task> {
        let id = Uuid::now_v7();
        let now = us(shared::now());
        let row = sqlx::query(concat!(
            "INSERT INTO tasks (id, name, state, args, logging_cid, pulp_created, \
             exclusive_resources, shared_resources, pulp_last_updated) \
             VALUES (?, ?, 'waiting', ?, ?, ?, ?, ?, ?) RETURNING ",
            task_cols!()
        ))
        .bind(hy(id))
        .bind(&task.name)
        .bind(task.args.to_string())
        .bind(&task.logging_cid)
        .bind(now)
        .bind(shared::strings_to_json(&task.exclusive_resources))
        .bind(shared::strings_to_json(&task.shared_resources))
        .bind(now)
        .fetch_one(&self.write)
        .await?;
        task_from(&row)
    }

    async fn get_task(&self, id: Uuid) -> DbResult<Task> {
        let mut conn = self.read.acquire().await?;
        get_task_in(&mut conn, id).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> DbResult<Vec<Task>> {
        let limit = match filter.limit {
            Some(l) => shared::to_i64(l, "limit")?,
            None => -1,
        };
        let b = FilterBinds::new(filter);
        let rows = bind_filter!(
            sqlx::query(concat!(
                "SELECT ",
                task_cols!(),
                task_where!(),
                " ORDER BY pulp_created DESC, id DESC LIMIT ?15 OFFSET ?16"
            )),
            b
        )
        .bind(limit)
        .bind(shared::to_i64(filter.offset, "offset")?)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(task_from(row)?);
        }
        Ok(out)
    }

    async fn count_tasks(&self, filter: &TaskFilter) -> DbResult<u64> {
        let b = FilterBinds::new(filter);
        let n: i64 = bind_filter!(
            sqlx::query_scalar(concat!("SELECT COUNT(*)", task_where!())),
            b
        )
        .fetch_one(&self.read)
        .await?;
        shared::to_u64(n, "count")
    }

    async fn task_counts(&self) -> DbResult<Vec<(String, String, i64)>> {
        let rows = sqlx::query("SELECT name, state, COUNT(*) FROM tasks GROUP BY name, state")
            .fetch_all(&self.read)
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
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "DELETE FROM tasks WHERE id = ? \
             AND state IN ('skipped', 'completed', 'failed', 'canceled')",
        )
        .bind(hy(id))
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
                .fetch_one(&self.read)
                .await?;
        if !any_waiting {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
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
                id: uuid_at(row, 0)?,
                state: shared::task_state(state)?,
                exclusive: shared::strings_from_json(json_at(row, 2)?, "exclusive_resources")?,
                shared: shared::strings_from_json(json_at(row, 3)?, "shared_resources")?,
            });
        }
        let now = us(shared::now());
        let mut claimed = None;
        for id in reservations::runnable(&incomplete) {
            let row = sqlx::query(concat!(
                "UPDATE tasks SET state = 'running', started_at = ?, worker = ?, \
                 pulp_last_updated = ? WHERE id = ? AND state = 'waiting' RETURNING ",
                task_cols!()
            ))
            .bind(now)
            .bind(worker)
            .bind(now)
            .bind(hy(id))
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
        let now = us(shared::now());
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "UPDATE tasks SET \
             state = CASE WHEN state = 'canceling' AND ?1 = 'completed' THEN 'canceled' \
             ELSE ?1 END, \
             error = ?2, finished_at = ?3, pulp_last_updated = ?3 \
             WHERE id = ?4 AND worker = ?5 AND state IN ('running', 'canceling') RETURNING ",
            task_cols!()
        ))
        .bind(state.as_str())
        .bind(error.map(|e| e.to_string()))
        .bind(now)
        .bind(hy(id))
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
        let now = us(shared::now());
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(concat!(
            "UPDATE tasks SET \
             state = CASE state WHEN 'waiting' THEN 'canceled' ELSE 'canceling' END, \
             finished_at = CASE state WHEN 'waiting' THEN ?1 ELSE finished_at END, \
             pulp_last_updated = ?1 \
             WHERE id = ?2 AND state IN ('waiting', 'running') RETURNING ",
            task_cols!()
        ))
        .bind(now)
        .bind(hy(id))
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
            "UPDATE tasks SET progress_reports = ?, pulp_last_updated = ? WHERE id = ?",
        )
        .bind(shared::progress_to_json(reports)?)
        .bind(us(shared::now()))
        .bind(hy(id))
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("task {id}")));
        }
        Ok(())
    }

    async fn add_created_resource(&self, id: Uuid, resource: &str) -> DbResult<()> {
        let done = sqlx::query(
            "UPDATE tasks SET created_resources = json_insert(created_resources, '$[#]', ?), \
             pulp_last_updated = ? WHERE id = ?",
        )
        .bind(resource)
        .bind(us(shared::now()))
        .bind(hy(id))
        .execute(&self.write)
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("task {id}")));
        }
        Ok(())
    }

    async fn heartbeat(&self, worker: &str) -> DbResult<()> {
        let mut conn = self.write.acquire().await?;
        heartbeat_in(&mut conn, worker).await
    }

    async fn list_workers(&self) -> DbResult<Vec<WorkerStatus>> {
        let rows =
            sqlx::query("SELECT name, last_heartbeat, started_at FROM workers ORDER BY name")
                .fetch_all(&self.read)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(WorkerStatus {
                name: row.try_get(0)?,
                last_heartbeat: time_at(row, 1)?,
                started_at: time_at(row, 2)?,
            });
        }
        Ok(out)
    }

    async fn reap_dead_workers(&self, ttl: Duration) -> DbResult<Vec<Task>> {
        let cutoff = us(shared::heartbeat_cutoff(ttl)?);
        let now = us(shared::now());
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM workers WHERE last_heartbeat < ?")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(concat!(
            "UPDATE tasks SET state = 'failed', error = ?1, finished_at = ?2, \
             pulp_last_updated = ?2 WHERE state IN ('running', 'canceling') \
             AND (worker IS NULL OR worker NOT IN (SELECT name FROM workers)) RETURNING ",
            task_cols!()
        ))
        .bind(shared::task_error(WORKER_MISSING).to_string())
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(task_from(row)?);
        }
        Ok(out)
    }

    async fn remove_worker(&self, worker: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM workers WHERE name = ?")
            .bind(worker)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

//! [`TaskStore`]: tasks and workers. State changes are conditional `UPDATE ... RETURNING`
//! statements, so a worker, a reaper and a canceling user never overwrite each other.
//!
//! Claiming (and reaping) runs in the claim transaction of the backend
//! ([`Backend::begin_claim`]): `BEGIN IMMEDIATE` on SQLite, whose single writer serializes
//! claimers; a transaction-scoped advisory lock on PostgreSQL. Inside it the incomplete tasks are
//! read, [`reservations::runnable`] names the waiting tasks that may start, and the first of them
//! is locked ([`for_update_skip_locked`]: a row lock skipping rows a concurrent cancel holds, on
//! PostgreSQL) and moved to `running`.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};
use uuid::Uuid;

use super::super::{for_update_skip_locked, json_array_append, push_contains, push_json_has_any};
use super::{row_by_id, Backend, Db, DbRow};
use crate::db::reservations::{self, Reservation};
use crate::db::shared;
use crate::db::types::{Id, Json, Time};
use crate::db::{DbError, DbResult, TaskStore, WORKER_MISSING};
use crate::models::{NewTask, ProgressReport, Task, TaskFilter, TaskState, WorkerStatus};

/// A connection of this backend.
type DbConn = <Db as sqlx::Database>::Connection;

const TASK_COLS: &str = "id, name, state, args, logging_cid, pulp_created, started_at, \
     finished_at, error, progress_reports, created_resources, exclusive_resources, \
     shared_resources, worker, pulp_last_updated";

fn task_from(row: &DbRow) -> DbResult<Task> {
    let state: String = row.try_get("state")?;
    Ok(Task {
        id: row.try_get::<Id, _>("id")?.0,
        name: row.try_get("name")?,
        state: shared::task_state(&state)?,
        args: row.try_get::<Json, _>("args")?.0,
        logging_cid: row.try_get("logging_cid")?,
        pulp_created: row.try_get::<Time, _>("pulp_created")?.0,
        started_at: row.try_get::<Option<Time>, _>("started_at")?.map(|t| t.0),
        finished_at: row.try_get::<Option<Time>, _>("finished_at")?.map(|t| t.0),
        error: row.try_get::<Option<Json>, _>("error")?.map(|j| j.0),
        progress_reports: shared::progress_from_json(
            row.try_get::<Json, _>("progress_reports")?.0,
        )?,
        created_resources: shared::strings_from_json(
            row.try_get::<Json, _>("created_resources")?.0,
            "created_resources",
        )?,
        exclusive_resources: shared::strings_from_json(
            row.try_get::<Json, _>("exclusive_resources")?.0,
            "exclusive_resources",
        )?,
        shared_resources: shared::strings_from_json(
            row.try_get::<Json, _>("shared_resources")?.0,
            "shared_resources",
        )?,
        worker: row.try_get("worker")?,
        pulp_last_updated: row.try_get::<Time, _>("pulp_last_updated")?.0,
    })
}

fn tasks_from(rows: &[DbRow]) -> DbResult<Vec<Task>> {
    rows.iter().map(task_from).collect()
}

/// Appends ` FROM tasks WHERE <the conditions of filter>` (its `limit` and `offset` aside).
fn push_filter(qb: &mut QueryBuilder<Db>, f: &TaskFilter) {
    qb.push(" FROM tasks WHERE 1 = 1");
    if let Some(state) = f.state {
        qb.push(" AND state = ").push_bind(state.as_str());
    }
    if let Some(name) = &f.name {
        qb.push(" AND name = ").push_bind(name.clone());
    }
    if let Some(states) = &f.states {
        if states.is_empty() {
            // An empty list matches nothing.
            qb.push(" AND 1 = 0");
        } else {
            qb.push(" AND state IN (");
            let mut list = qb.separated(", ");
            for s in states {
                list.push_bind(s.as_str());
            }
            qb.push(")");
        }
    }
    if let Some(needle) = &f.name_contains {
        qb.push(" AND ");
        push_contains(qb, "name", needle);
    }
    if let Some(needle) = &f.logging_cid_contains {
        qb.push(" AND ");
        push_contains(qb, "logging_cid", needle);
    }
    if let Some(worker) = &f.worker {
        qb.push(" AND worker = ").push_bind(worker.clone());
    }
    if let Some(created) = &f.created_resource {
        qb.push(" AND ");
        push_json_has_any(qb, "tasks.created_resources", std::slice::from_ref(created));
    }
    if let Some(any) = &f.reserved_resources {
        qb.push(" AND (");
        push_json_has_any(qb, "tasks.exclusive_resources", any);
        qb.push(" OR ");
        push_json_has_any(qb, "tasks.shared_resources", any);
        qb.push(")");
    }
    if let Some(any) = &f.exclusive_resources {
        qb.push(" AND ");
        push_json_has_any(qb, "tasks.exclusive_resources", any);
    }
    if let Some(any) = &f.shared_resources {
        qb.push(" AND ");
        push_json_has_any(qb, "tasks.shared_resources", any);
    }
    let times = [
        ("started_at >= ", f.started_after),
        ("started_at <= ", f.started_before),
        ("finished_at >= ", f.finished_after),
        ("finished_at <= ", f.finished_before),
    ];
    for (cond, t) in times {
        if let Some(t) = t {
            qb.push(" AND ").push(cond).push_bind(Time(t));
        }
    }
}

async fn get_task_in<'e, E>(ex: E, id: Uuid) -> DbResult<Task>
where
    E: sqlx::Executor<'e, Database = Db>,
{
    let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1");
    let row = row_by_id(ex, sql, "task", id).await?;
    task_from(&row)
}

async fn heartbeat_in(conn: &mut DbConn, worker: &str) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO workers (name, last_heartbeat, started_at) VALUES ($1, $2, $2) \
         ON CONFLICT (name) DO UPDATE SET last_heartbeat = excluded.last_heartbeat",
    )
    .bind(worker)
    .bind(Time(shared::now()))
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl TaskStore for Backend {
    async fn insert_task(&self, task: &NewTask) -> DbResult<Task> {
        let sql = format!(
            "INSERT INTO tasks (id, name, state, args, logging_cid, pulp_created, \
             exclusive_resources, shared_resources, pulp_last_updated) \
             VALUES ($1, $2, 'waiting', $3, $4, $5, $6, $7, $5) RETURNING {TASK_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Id(Uuid::now_v7()))
            .bind(&task.name)
            .bind(Json(task.args.clone()))
            .bind(&task.logging_cid)
            .bind(Time(shared::now()))
            .bind(Json(shared::strings_to_json(&task.exclusive_resources)))
            .bind(Json(shared::strings_to_json(&task.shared_resources)))
            .fetch_one(self.writer())
            .await?;
        task_from(&row)
    }

    async fn get_task(&self, id: Uuid) -> DbResult<Task> {
        get_task_in(self.reader(), id).await
    }

    async fn list_tasks(&self, filter: &TaskFilter) -> DbResult<Vec<Task>> {
        // No limit is the largest one: both dialects take `LIMIT n OFFSET m`, not every one
        // takes an OFFSET alone.
        let limit = match filter.limit {
            Some(l) => shared::to_i64(l, "limit")?,
            None => i64::MAX,
        };
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {TASK_COLS}"));
        push_filter(&mut qb, filter);
        qb.push(" ORDER BY pulp_created DESC, id DESC LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(shared::to_i64(filter.offset, "offset")?);
        let rows = qb.build().fetch_all(self.reader()).await?;
        tasks_from(&rows)
    }

    async fn count_tasks(&self, filter: &TaskFilter) -> DbResult<u64> {
        let mut qb = QueryBuilder::<Db>::new("SELECT COUNT(*)");
        push_filter(&mut qb, filter);
        let n: i64 = qb.build_query_scalar().fetch_one(self.reader()).await?;
        shared::to_u64(n, "count")
    }

    async fn task_counts(&self) -> DbResult<Vec<(String, String, i64)>> {
        let rows = sqlx::query("SELECT name, state, COUNT(*) AS n FROM tasks GROUP BY name, state")
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push((
                row.try_get("name")?,
                row.try_get("state")?,
                row.try_get("n")?,
            ));
        }
        Ok(out)
    }

    async fn delete_task(&self, id: Uuid) -> DbResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "DELETE FROM tasks WHERE id = $1 \
             AND state IN ('skipped', 'completed', 'failed', 'canceled')",
        )
        .bind(Id(id))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            let current = get_task_in(&mut *tx, id).await?;
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
                .fetch_one(self.reader())
                .await?;
        if !any_waiting {
            return Ok(None);
        }
        let mut tx = self.begin_claim().await?;
        heartbeat_in(&mut tx, worker).await?;
        let rows = sqlx::query(
            "SELECT id, state, exclusive_resources, shared_resources FROM tasks \
             WHERE state IN ('waiting', 'running', 'canceling') ORDER BY pulp_created, id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut incomplete = Vec::with_capacity(rows.len());
        for row in &rows {
            let state: String = row.try_get("state")?;
            incomplete.push(Reservation {
                id: row.try_get::<Id, _>("id")?.0,
                state: shared::task_state(&state)?,
                exclusive: shared::strings_from_json(
                    row.try_get::<Json, _>("exclusive_resources")?.0,
                    "exclusive_resources",
                )?,
                shared: shared::strings_from_json(
                    row.try_get::<Json, _>("shared_resources")?.0,
                    "shared_resources",
                )?,
            });
        }
        let now = Time(shared::now());
        let lock_sql = format!(
            "SELECT id FROM tasks WHERE id = $1 AND state = 'waiting'{}",
            for_update_skip_locked()
        );
        let claim_sql = format!(
            "UPDATE tasks SET state = 'running', started_at = $1, worker = $2, \
             pulp_last_updated = $1 WHERE id = $3 AND state = 'waiting' RETURNING {TASK_COLS}"
        );
        let mut claimed = None;
        for id in reservations::runnable(&incomplete) {
            let locked = sqlx::query(sqlx::AssertSqlSafe(lock_sql.as_str()))
                .bind(Id(id))
                .fetch_optional(&mut *tx)
                .await?;
            if locked.is_none() {
                continue;
            }
            let row = sqlx::query(sqlx::AssertSqlSafe(claim_sql.as_str()))
                .bind(now)
                .bind(worker)
                .bind(Id(id))
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
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE tasks SET \
             state = CASE WHEN state = 'canceling' AND $1 = 'completed' THEN 'canceled' \
             ELSE $1 END, \
             error = $2, finished_at = $3, pulp_last_updated = $3 \
             WHERE id = $4 AND worker = $5 AND state IN ('running', 'canceling') \
             RETURNING {TASK_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state.as_str())
            .bind(error.map(Json))
            .bind(Time(shared::now()))
            .bind(Id(id))
            .bind(worker)
            .fetch_optional(&mut *tx)
            .await?;
        let out = match row {
            Some(row) => task_from(&row)?,
            None => {
                let current = get_task_in(&mut *tx, id).await?;
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
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE tasks SET \
             state = CASE state WHEN 'waiting' THEN 'canceled' ELSE 'canceling' END, \
             finished_at = CASE state WHEN 'waiting' THEN $1 ELSE finished_at END, \
             pulp_last_updated = $1 \
             WHERE id = $2 AND state IN ('waiting', 'running') RETURNING {TASK_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Time(shared::now()))
            .bind(Id(id))
            .fetch_optional(&mut *tx)
            .await?;
        let out = match row {
            Some(row) => task_from(&row)?,
            None => get_task_in(&mut *tx, id).await?,
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
            "UPDATE tasks SET progress_reports = $1, pulp_last_updated = $2 WHERE id = $3",
        )
        .bind(Json(shared::progress_to_json(reports)?))
        .bind(Time(shared::now()))
        .bind(Id(id))
        .execute(self.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("task {id}")));
        }
        Ok(())
    }

    async fn add_created_resource(&self, id: Uuid, resource: &str) -> DbResult<()> {
        let sql = format!(
            "UPDATE tasks SET created_resources = {}, pulp_last_updated = $2 WHERE id = $3",
            json_array_append("created_resources", 1)
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource)
            .bind(Time(shared::now()))
            .bind(Id(id))
            .execute(self.writer())
            .await?;
        if done.rows_affected() == 0 {
            return Err(DbError::NotFound(format!("task {id}")));
        }
        Ok(())
    }

    async fn heartbeat(&self, worker: &str) -> DbResult<()> {
        let mut conn = self.writer().acquire().await?;
        heartbeat_in(&mut conn, worker).await
    }

    async fn list_workers(&self) -> DbResult<Vec<WorkerStatus>> {
        let rows =
            sqlx::query("SELECT name, last_heartbeat, started_at FROM workers ORDER BY name")
                .fetch_all(self.reader())
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(WorkerStatus {
                name: row.try_get("name")?,
                last_heartbeat: row.try_get::<Time, _>("last_heartbeat")?.0,
                started_at: row.try_get::<Time, _>("started_at")?.0,
            });
        }
        Ok(out)
    }

    async fn reap_dead_workers(&self, ttl: Duration) -> DbResult<Vec<Task>> {
        let cutoff = Time(shared::heartbeat_cutoff(ttl)?);
        let mut tx = self.begin_claim().await?;
        sqlx::query("DELETE FROM workers WHERE last_heartbeat < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "UPDATE tasks SET state = 'failed', error = $1, finished_at = $2, \
             pulp_last_updated = $2 WHERE state IN ('running', 'canceling') \
             AND (worker IS NULL OR worker NOT IN (SELECT name FROM workers)) \
             RETURNING {TASK_COLS}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Json(shared::task_error(WORKER_MISSING)))
            .bind(Time(shared::now()))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        tasks_from(&rows)
    }

    async fn remove_worker(&self, worker: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM workers WHERE name = $1")
            .bind(worker)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

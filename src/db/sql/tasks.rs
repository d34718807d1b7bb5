//! [`TaskStore`]: tasks and workers. State changes are conditional `UPDATE ... RETURNING`
//! statements, so a worker, a reaper and a canceling user never overwrite each other.
//!
//! The queue: every incomplete task has one `task_resources` row per resource it reserves, and a
//! waiting task that may start has `unblocked_at` set. A task may start when no earlier
//! incomplete task holds one of its resources in a conflicting way (exclusive against anything,
//! shared against exclusive): FIFO per resource, shared holders together, as pulpcore's
//! `_unblock_tasks` decides, but incrementally: a dispatch checks the new task against the rows
//! of its own resources, and a release (a task ending, a waiting task canceled, a dead worker's
//! task failed) deletes the task's rows and re-checks only the blocked tasks queued on those
//! resources, up to the first exclusive one (which blocks everything behind it). The unblocked
//! waiting tasks are also rows of `runnable_tasks`, and a claim takes the oldest of those: its
//! cost does not grow with the queue. [`reservations::runnable`] recomputes the same from scratch (`refresh_queue`, at
//! startup).
//!
//! Dispatches, claims and releases run in the claim transaction of the backend
//! ([`Backend::begin_claim`]): `BEGIN IMMEDIATE` on SQLite, a transaction-scoped advisory lock on
//! PostgreSQL, so a release never misses a task dispatched meanwhile. Inside it a new task's
//! `pulp_created` is made later than every other task's, so queue order holds across machines
//! whose clocks differ. A dispatch or release that unblocks a task notifies the workers
//! (`notify_workers` inside the transaction: `NOTIFY` on PostgreSQL; `notified` after its commit:
//! the datagrams of `db::wakeups` on SQLite, whose idle workers look before they lock).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::super::{
    for_update_skip_locked, ids_param, in_list_param, json_array_append, push_contains,
    push_json_has_any,
};
use super::{row_by_id, Backend, Db, DbRow};
use crate::db::reservations::{self, Reservation};
use crate::db::shared;
use crate::db::types::{Id, Json, Time};
use crate::db::{DbError, DbResult, TaskStore, WORKER_MISSING};
use crate::models::{NewTask, ProgressReport, Task, TaskFilter, TaskState, WorkerStatus};

/// A connection of this backend.
type DbConn = <Db as sqlx::Database>::Connection;

/// Columns of the fields a task list may be ordered by.
const TASK_ORDER: &[(&str, &str)] = &[
    ("pk", "id"),
    ("pulp_id", "id"),
    ("pulp_created", "pulp_created"),
    ("pulp_last_updated", "pulp_last_updated"),
    ("name", "name"),
    ("state", "state"),
    ("logging_cid", "logging_cid"),
    ("started_at", "started_at"),
    ("finished_at", "finished_at"),
];

const TASK_COLS: &str = "id, name, state, args, logging_cid, pulp_created, started_at, \
     finished_at, error, progress_reports, created_resources, exclusive_resources, \
     shared_resources, worker, pulp_last_updated, unblocked_at";

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
        unblocked_at: row.try_get::<Option<Time>, _>("unblocked_at")?.map(|t| t.0),
    })
}

/// A worker's or an app's heartbeat row (`name, last_heartbeat, started_at`).
fn status_from(row: &DbRow) -> DbResult<WorkerStatus> {
    Ok(WorkerStatus {
        name: row.try_get("name")?,
        last_heartbeat: row.try_get::<Time, _>("last_heartbeat")?.0,
        started_at: row.try_get::<Time, _>("started_at")?.0,
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

/// Writes the `task_resources` rows of a task queued at `created`: exclusive first, so a
/// resource named both ways is held exclusively.
async fn reserve(
    conn: &mut DbConn,
    id: Id,
    created: Time,
    exclusive: &[String],
    shared: &[String],
) -> DbResult<()> {
    let held = (exclusive.iter().map(|r| (r, true))).chain(shared.iter().map(|r| (r, false)));
    for (resource, exclusive) in held {
        sqlx::query(
            "INSERT INTO task_resources (task_id, resource, exclusive, pulp_created) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(resource)
        .bind(exclusive)
        .bind(created)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Whether an incomplete task other than `$4` that is queued before `($3, $4)` holds resource `$1`
/// exclusively (`$2` true) or shared (`$2` false): whether the first such holder in queue order
/// is earlier. Written as "the first holder" (`ORDER BY` the index's columns, `LIMIT 1`) so that
/// every plan reads one entry of `task_resources_hold_idx`: PostgreSQL's generic plan of a plain
/// `EXISTS (... WHERE resource = $1 AND ...)` is a sequential scan when one resource holds most
/// rows (10,000 tasks queued on one repository), which made every dispatch elsewhere read the
/// whole queue.
const HELD_BEFORE: &str = "SELECT EXISTS (SELECT 1 FROM (SELECT o.pulp_created, o.task_id \
     FROM task_resources o WHERE o.resource = $1 AND o.exclusive = $2 \
     ORDER BY o.pulp_created, o.task_id LIMIT 1) f WHERE (f.pulp_created, f.task_id) < ($3, $4))";

/// Whether waiting task `id` may start now (see the module doc).
async fn may_start(conn: &mut DbConn, id: Id) -> DbResult<bool> {
    let mine = sqlx::query(
        "SELECT resource, exclusive, pulp_created FROM task_resources WHERE task_id = $1",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    for row in &mine {
        let resource: String = row.try_get("resource")?;
        let exclusive: bool = row.try_get("exclusive")?;
        let created: Time = row.try_get("pulp_created")?;
        // An exclusive holder before it blocks anything; a shared one blocks an exclusive task.
        for other_exclusive in [true, false]
            .into_iter()
            .take(if exclusive { 2 } else { 1 })
        {
            let held: bool = sqlx::query_scalar(HELD_BEFORE)
                .bind(&resource)
                .bind(other_exclusive)
                .bind(created)
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
            if held {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Marks waiting task `id` unblocked if it may start; whether it did.
async fn unblock_if_free(conn: &mut DbConn, id: Id) -> DbResult<bool> {
    if !may_start(conn, id).await? {
        return Ok(false);
    }
    let done = sqlx::query(
        "UPDATE tasks SET unblocked_at = $1 \
         WHERE id = $2 AND state = 'waiting' AND unblocked_at IS NULL",
    )
    .bind(Time(shared::now()))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    queue_runnable(conn, id).await?;
    Ok(true)
}

/// Lists unblocked waiting task `id` among the runnable ones (what claims read).
async fn queue_runnable(conn: &mut DbConn, id: Id) -> DbResult<()> {
    sqlx::query(
        "INSERT INTO runnable_tasks (task_id, pulp_created) \
         SELECT id, pulp_created FROM tasks WHERE id = $1 ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl Backend {
    /// Commits a transaction that made `unblocked` tasks runnable (a dispatch, a release), and
    /// tells the workers of every process when there are any.
    async fn commit_unblocking(
        &self,
        mut tx: sqlx::Transaction<'static, Db>,
        unblocked: u64,
    ) -> DbResult<()> {
        if unblocked > 0 {
            self.notify_workers(&mut tx).await?;
        }
        tx.commit().await?;
        if unblocked > 0 {
            self.notified();
        }
        Ok(())
    }
}

/// Frees the reservations of task `id` (it ended, or never started) and unblocks the tasks
/// queued on them that may start now. Returns how many were unblocked: the caller notifies the
/// workers when there are any ([`Backend::notify_workers`], then [`Backend::notified`] after
/// its commit).
async fn release(conn: &mut DbConn, id: Id) -> DbResult<u64> {
    sqlx::query("DELETE FROM runnable_tasks WHERE task_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let freed: Vec<String> =
        sqlx::query_scalar("DELETE FROM task_resources WHERE task_id = $1 RETURNING resource")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    let mut unblocked = 0;
    for resource in freed {
        // The blocked tasks queued on this resource, in order, a page at a time, up to and
        // including the first exclusive one: everything behind it waits for it.
        let mut after: Option<(Time, Id)> = None;
        'queue: loop {
            // The resource's rows in queue order (its index, whatever the planner knows of
            // the tables), then which of those tasks are waiting and blocked (by id).
            let sql = format!(
                "SELECT task_id, exclusive, pulp_created FROM task_resources \
                 WHERE resource = $1{} ORDER BY pulp_created, task_id LIMIT 50",
                if after.is_some() {
                    " AND (pulp_created, task_id) > ($2, $3)"
                } else {
                    ""
                }
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&resource);
            if let Some((t, i)) = after {
                q = q.bind(t).bind(i);
            }
            let page = q.fetch_all(&mut *conn).await?;
            let ids = page
                .iter()
                .map(|r| Ok(r.try_get::<Id, _>("task_id")?.0))
                .collect::<DbResult<Vec<Uuid>>>()?;
            // Looked up by id only, the state tested here: with `state = 'waiting'` in the
            // query, SQLite walks every waiting task through the state index instead.
            let mut blocked: Vec<Id> = Vec::new();
            if !ids.is_empty() {
                let sql = format!(
                    "SELECT id, state, unblocked_at FROM tasks WHERE id {}",
                    in_list_param(1)
                );
                for row in sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(ids_param(&ids))
                    .fetch_all(&mut *conn)
                    .await?
                {
                    let waiting = row.try_get::<String, _>("state")? == "waiting";
                    if waiting && row.try_get::<Option<Time>, _>("unblocked_at")?.is_none() {
                        blocked.push(row.try_get("id")?);
                    }
                }
            }
            for row in &page {
                let task: Id = row.try_get("task_id")?;
                after = Some((row.try_get("pulp_created")?, task));
                if !blocked.contains(&task) {
                    continue;
                }
                if unblock_if_free(conn, task).await? {
                    unblocked += 1;
                }
                if row.try_get::<bool, _>("exclusive")? {
                    break 'queue;
                }
            }
            if page.len() < 50 {
                break;
            }
        }
    }
    Ok(unblocked)
}

#[async_trait]
impl TaskStore for Backend {
    async fn insert_task(&self, task: &NewTask) -> DbResult<Task> {
        let id = Id(Uuid::now_v7());
        let mut tx = self.begin_claim().await?;
        // Later than every task already queued, whatever this machine's clock says.
        let last: Option<Time> = sqlx::query_scalar("SELECT max(pulp_created) FROM tasks")
            .fetch_one(&mut *tx)
            .await?;
        let mut created = shared::now();
        if let Some(Time(last)) = last.filter(|l| l.0 >= created) {
            created = last + chrono::Duration::microseconds(1);
        }
        let sql = format!(
            "INSERT INTO tasks (id, name, state, args, logging_cid, pulp_created, \
             exclusive_resources, shared_resources, pulp_last_updated) \
             VALUES ($1, $2, 'waiting', $3, $4, $5, $6, $7, $5) RETURNING {TASK_COLS}"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(&task.name)
            .bind(Json(task.args.clone()))
            .bind(&task.logging_cid)
            .bind(Time(created))
            .bind(Json(shared::strings_to_json(&task.exclusive_resources)))
            .bind(Json(shared::strings_to_json(&task.shared_resources)))
            .execute(&mut *tx)
            .await?;
        reserve(
            &mut tx,
            id,
            Time(created),
            &task.exclusive_resources,
            &task.shared_resources,
        )
        .await?;
        let runnable = unblock_if_free(&mut tx, id).await?;
        let saved = get_task_in(&mut *tx, id.0).await?;
        self.commit_unblocking(tx, u64::from(runnable)).await?;
        Ok(saved)
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
        qb.push(super::order_by(
            &filter.order,
            TASK_ORDER,
            "pulp_created DESC, id DESC",
        ))
        .push(" LIMIT ")
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
        // Idle workers poll: answer "nothing runnable" without a write transaction.
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM runnable_tasks)")
            .fetch_one(self.reader())
            .await?;
        if !any {
            return Ok(None);
        }
        let mut tx = self.begin_claim().await?;
        heartbeat_in(&mut tx, worker).await?;
        let sql = format!(
            "SELECT task_id FROM runnable_tasks ORDER BY pulp_created, task_id LIMIT 1{}",
            for_update_skip_locked()
        );
        let Some(id) = sqlx::query_scalar::<_, Id>(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.commit().await?;
            return Ok(None);
        };
        sqlx::query("DELETE FROM runnable_tasks WHERE task_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let sql = format!(
            "UPDATE tasks SET state = 'running', started_at = $1, worker = $2, \
             pulp_last_updated = $1 WHERE id = $3 AND state = 'waiting' RETURNING {TASK_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Time(shared::now()))
            .bind(worker)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(task_from(&row)?))
    }

    async fn finish_task(
        &self,
        id: Uuid,
        worker: &str,
        state: TaskState,
        error: Option<serde_json::Value>,
    ) -> DbResult<Task> {
        shared::check_final(state)?;
        let mut tx = self.begin_claim().await?;
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
        let unblocked = release(&mut tx, Id(id)).await?;
        self.commit_unblocking(tx, unblocked).await?;
        Ok(out)
    }

    async fn request_cancel(&self, id: Uuid) -> DbResult<Task> {
        let mut tx = self.begin_claim().await?;
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
        let mut unblocked = 0;
        if out.state == TaskState::Canceled {
            // It never started: its place in the queue goes.
            unblocked = release(&mut tx, Id(id)).await?;
        }
        self.commit_unblocking(tx, unblocked).await?;
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

    async fn heartbeat(&self, workers: &[String]) -> DbResult<()> {
        if workers.is_empty() {
            return Ok(());
        }
        let mut qb =
            QueryBuilder::<Db>::new("INSERT INTO workers (name, last_heartbeat, started_at) ");
        let now = Time(shared::now());
        qb.push_values(workers, |mut row, name| {
            row.push_bind(name.as_str()).push_bind(now).push_bind(now);
        });
        qb.push(" ON CONFLICT (name) DO UPDATE SET last_heartbeat = excluded.last_heartbeat");
        qb.build().execute(self.beater()).await?;
        Ok(())
    }

    async fn list_workers(&self) -> DbResult<Vec<WorkerStatus>> {
        let rows =
            sqlx::query("SELECT name, last_heartbeat, started_at FROM workers ORDER BY name")
                .fetch_all(self.reader())
                .await?;
        rows.iter().map(status_from).collect()
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
        let reaped = tasks_from(&rows)?;
        let mut unblocked = 0;
        for task in &reaped {
            unblocked += release(&mut tx, Id(task.id)).await?;
        }
        self.commit_unblocking(tx, unblocked).await?;
        Ok(reaped)
    }

    fn hears_wakeups(&self) -> bool {
        super::super::HEARS_WAKEUPS
    }

    async fn forward_wakeups(&self, wake: Arc<dyn Fn() + Send + Sync>, stop: CancellationToken) {
        Backend::forward_wakeups(self, &*wake, &stop).await
    }

    async fn refresh_queue(&self) -> DbResult<u64> {
        let mut tx = self.begin_claim().await?;
        sqlx::query(
            "DELETE FROM task_resources WHERE task_id IN (SELECT id FROM tasks \
             WHERE state NOT IN ('waiting', 'running', 'canceling'))",
        )
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "SELECT id, state, exclusive_resources, shared_resources, pulp_created, \
             EXISTS (SELECT 1 FROM task_resources r WHERE r.task_id = tasks.id) AS reserved \
             FROM tasks WHERE state IN ('waiting', 'running', 'canceling') \
             ORDER BY pulp_created, id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut incomplete = Vec::with_capacity(rows.len());
        for row in &rows {
            let task = Reservation {
                id: row.try_get::<Id, _>("id")?.0,
                state: shared::task_state(&row.try_get::<String, _>("state")?)?,
                exclusive: shared::strings_from_json(
                    row.try_get::<Json, _>("exclusive_resources")?.0,
                    "exclusive_resources",
                )?,
                shared: shared::strings_from_json(
                    row.try_get::<Json, _>("shared_resources")?.0,
                    "shared_resources",
                )?,
            };
            if !row.try_get::<bool, _>("reserved")? {
                let created: Time = row.try_get("pulp_created")?;
                reserve(&mut tx, Id(task.id), created, &task.exclusive, &task.shared).await?;
            }
            incomplete.push(task);
        }
        // The runnable list: only waiting tasks; every unblocked one of them.
        sqlx::query(
            "DELETE FROM runnable_tasks WHERE task_id NOT IN \
             (SELECT id FROM tasks WHERE state = 'waiting')",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO runnable_tasks (task_id, pulp_created) SELECT id, pulp_created \
             FROM tasks WHERE state = 'waiting' AND unblocked_at IS NOT NULL \
             ON CONFLICT DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        let mut unblocked = 0;
        for id in reservations::runnable(&incomplete) {
            unblocked += sqlx::query(
                "UPDATE tasks SET unblocked_at = $1 \
                 WHERE id = $2 AND state = 'waiting' AND unblocked_at IS NULL",
            )
            .bind(Time(shared::now()))
            .bind(Id(id))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            queue_runnable(&mut tx, Id(id)).await?;
        }
        self.commit_unblocking(tx, unblocked).await?;
        Ok(unblocked)
    }

    async fn remove_worker(&self, worker: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM workers WHERE name = $1")
            .bind(worker)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn app_heartbeat(&self, app_type: &str, name: &str, ttl: Duration) -> DbResult<()> {
        let cutoff = Time(shared::heartbeat_cutoff(ttl)?);
        sqlx::query("DELETE FROM app_statuses WHERE app_type = $1 AND last_heartbeat < $2")
            .bind(app_type)
            .bind(cutoff)
            .execute(self.writer())
            .await?;
        sqlx::query(
            "INSERT INTO app_statuses (app_type, name, last_heartbeat, started_at) \
             VALUES ($1, $2, $3, $3) ON CONFLICT (app_type, name) \
             DO UPDATE SET last_heartbeat = excluded.last_heartbeat",
        )
        .bind(app_type)
        .bind(name)
        .bind(Time(shared::now()))
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn online_apps(&self, app_type: &str, ttl: Duration) -> DbResult<Vec<WorkerStatus>> {
        let cutoff = Time(shared::heartbeat_cutoff(ttl)?);
        let rows = sqlx::query(
            "SELECT name, last_heartbeat, started_at FROM app_statuses \
             WHERE app_type = $1 AND last_heartbeat >= $2 ORDER BY name",
        )
        .bind(app_type)
        .bind(cutoff)
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(status_from).collect()
    }

    async fn remove_app(&self, app_type: &str, name: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM app_statuses WHERE app_type = $1 AND name = $2")
            .bind(app_type)
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}

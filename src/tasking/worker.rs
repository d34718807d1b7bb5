//! [`Worker`]: one task at a time, pulpcore style, and the [`duties`] a process does for all its
//! workers.
//!
//! A worker claims the oldest runnable task; when there is none it sleeps until woken (a
//! dispatch or release in this process, a `NOTIFY` from another one on PostgreSQL), its poll
//! interval passes (short without notifications, a slow safety net with them), or shutdown. A
//! claimed task's function runs in its own tokio task while the worker supervises it: every
//! `cancel_poll_interval` it writes throttled progress and reads the task row, firing the task's
//! token when the row became `canceling`. If the function ignores its token for
//! `cancel_grace`, its future is aborted. A worker that cannot reach the database says so once,
//! keeps trying, and says when it claims again; it records a task's end until the database
//! takes it, and before claiming again fails any task the database says it runs (a claim that
//! committed as the connection dropped), so no task stays `running` across an outage.
//!
//! Heartbeats and the reaping of dead workers are [`duties`] of the process, on their own timer
//! (one statement for all its workers), so task work never delays them; they go on until the
//! last worker has stopped.
//!
//! Shutdown is explicit: when the shutdown token fires the worker stops claiming and lets its
//! running task finish for up to `shutdown_grace`; then (or at once when the hard-stop token
//! fires) it cancels the task, which ends `failed` ("Aborted during worker shutdown."); the
//! workers' rows go once the last of them has stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::ctx::{Progress, TaskCtx};
use super::{ReapHook, Registry, TaskError};
use crate::db::{DbError, DynStore};
use crate::models::{Task, TaskState};

/// Error description of a task stopped by its worker's shutdown (pulpcore's wording).
pub const SHUTDOWN_DESCRIPTION: &str = "Aborted during worker shutdown.";

/// Error description of a task whose claim committed while the worker lost its database
/// connection (the worker never got it, so never ran it).
pub const LOST_CLAIM_DESCRIPTION: &str =
    "The worker lost its database connection while claiming this task; it never ran.";

/// Timing of a worker. The defaults follow pulpcore (30 s TTL, heartbeat every TTL/3).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How often the worker writes its heartbeat.
    pub heartbeat_interval: Duration,
    /// A worker whose heartbeat is older than this is dead; its tasks fail.
    pub ttl: Duration,
    /// How often dead workers are looked for.
    pub reap_interval: Duration,
    /// How often an idle worker looks for a task when the database does not notify it of
    /// other processes' dispatches (SQLite); this process's own wake it at once.
    pub poll_interval: Duration,
    /// How often an idle worker looks for a task when the database notifies it (PostgreSQL
    /// `LISTEN`): only a safety net, the longest a lost notification can delay a task.
    pub notified_poll_interval: Duration,
    /// How long a running task may go on after shutdown starts before it is canceled.
    pub shutdown_grace: Duration,
    /// How often the running task's row is read for a cancel request.
    pub cancel_poll_interval: Duration,
    /// Minimum time between two progress writes of one task.
    pub progress_interval: Duration,
    /// How long a canceled task function may run on before its future is aborted.
    pub cancel_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            heartbeat_interval: Duration::from_secs(10),
            ttl: Duration::from_secs(30),
            reap_interval: Duration::from_secs(10),
            poll_interval: Duration::from_millis(250),
            notified_poll_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            cancel_poll_interval: Duration::from_millis(250),
            progress_interval: Duration::from_millis(500),
            cancel_grace: Duration::from_secs(10),
        }
    }
}

/// Why the worker stopped a running task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The task row became `canceling`.
    Canceled,
    /// The worker is shutting down.
    Shutdown,
    /// The row is no longer ours (reaped as dead, or finished by someone else).
    Lost,
}

/// A worker: claims and runs tasks until its shutdown token fires.
pub struct Worker {
    name: String,
    store: DynStore,
    registry: Arc<Registry>,
    wakeup: Arc<Notify>,
    config: WorkerConfig,
    /// Fires on a second shutdown signal: cancel the running task without grace.
    hard_stop: CancellationToken,
}

impl Worker {
    pub fn new(
        name: String,
        store: DynStore,
        registry: Arc<Registry>,
        wakeup: Arc<Notify>,
        config: WorkerConfig,
        hard_stop: CancellationToken,
    ) -> Worker {
        Worker {
            name,
            store,
            registry,
            wakeup,
            config,
            hard_stop,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until `shutdown` fires and its running task, if any, has ended (its row goes with
    /// the process's [`duties`]).
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(worker = %self.name, "worker started");
        let poll = match self.store.hears_wakeups() {
            true => self.config.notified_poll_interval,
            false => self.config.poll_interval,
        };
        let mut unreachable = false;
        while !shutdown.is_cancelled() {
            let notified = self.wakeup.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if unreachable {
                // Before claiming again: a claim whose answer the outage swallowed.
                if self.fail_lost_claims().await.is_err() {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(self.config.poll_interval) => continue,
                    }
                }
            }
            let claimed = self.store.claim_next_task(&self.name).await;
            if unreachable && claimed.is_ok() {
                tracing::info!(worker = %self.name, "the database answers again: claiming tasks");
                unreachable = false;
            }
            match claimed {
                Ok(Some(task)) => {
                    // More may be runnable: let another idle worker look.
                    self.wakeup.notify_one();
                    let span = tracing::info_span!(
                        "task",
                        task_id = %task.id,
                        task_name = %task.name,
                        worker = %self.name
                    );
                    self.run_task(task, &shutdown).instrument(span).await;
                }
                Ok(None) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = &mut notified => {}
                        _ = tokio::time::sleep(poll) => {}
                    }
                }
                Err(e) => {
                    if !unreachable {
                        tracing::warn!(
                            worker = %self.name,
                            error = %e,
                            "cannot claim tasks: not claiming until the database answers"
                        );
                        unreachable = true;
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
            }
        }
        tracing::info!(worker = %self.name, "worker stopped");
    }

    /// Runs one claimed task to its end and records the end.
    async fn run_task(&self, task: Task, shutdown: &CancellationToken) {
        tracing::info!("task started");
        let Some(f) = self.registry.get(&task.name) else {
            let err = TaskError::UnknownTask(task.name.clone());
            tracing::error!(task_id = %task.id, task_name = %task.name, error = %err, "task failed");
            self.record(&task, None, TaskState::Failed, Some(err.to_string()))
                .await;
            return;
        };
        let cancel = CancellationToken::new();
        let progress = Arc::new(Progress::new(
            self.config.progress_interval,
            task.progress_reports.clone(),
        ));
        let ctx = TaskCtx::new(&task, self.store.clone(), cancel.clone(), progress.clone());
        let mut handle = tokio::spawn(f(ctx).in_current_span());
        let mut tick = tokio::time::interval(self.config.cancel_poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop: Option<(Stop, Instant)> = None;
        let mut draining: Option<Instant> = None;
        let joined = loop {
            let grace_over = draining.is_some_and(|d| d.elapsed() >= self.config.shutdown_grace);
            if stop.is_none()
                && (grace_over || (draining.is_some() && self.hard_stop.is_cancelled()))
            {
                tracing::info!("worker shutting down: canceling its task");
                cancel.cancel();
                stop = Some((Stop::Shutdown, Instant::now()));
            }
            tokio::select! {
                biased;
                res = &mut handle => break res,
                _ = shutdown.cancelled(), if draining.is_none() => {
                    tracing::info!(
                        grace = ?self.config.shutdown_grace,
                        "worker shutting down: letting its task finish"
                    );
                    draining = Some(Instant::now());
                }
                _ = self.hard_stop.cancelled(), if draining.is_some() && stop.is_none() => {}
                _ = tick.tick() => {
                    if let Some((_, since)) = stop {
                        if since.elapsed() >= self.config.cancel_grace {
                            tracing::warn!("task ignored its cancellation: aborting it");
                            handle.abort();
                        }
                    }
                    if let Err(e) = progress.write_if_due(&self.store, task.id).await {
                        tracing::warn!(error = %e, "writing progress failed");
                    }
                    if stop.is_none() {
                        if let Some(s) = self.check_row(&task).await {
                            cancel.cancel();
                            stop = Some((s, Instant::now()));
                        }
                    }
                }
            }
        };
        let stop = stop.map(|(s, _)| s);
        if stop == Some(Stop::Lost) {
            tracing::warn!("task was taken from this worker (reaped?): its end is not recorded");
            return;
        }
        let (state, description) = outcome(stop, joined);
        match (&description, state) {
            // A failure is for the operator: logged at the default level, with its error and
            // its own fields (the task's span is below that level).
            (Some(d), TaskState::Failed) => tracing::error!(
                task_id = %task.id,
                task_name = %task.name,
                error = %d,
                "task failed"
            ),
            (Some(d), _) => tracing::info!(state = %state, error = %d, "task finished"),
            (None, _) => tracing::info!(state = %state, "task finished"),
        }
        self.record(&task, Some(&progress), state, description)
            .await;
    }

    /// Whether the task row asks the worker to stop the task.
    async fn check_row(&self, task: &Task) -> Option<Stop> {
        match self.store.get_task(task.id).await {
            Ok(row) if row.worker.as_deref() != Some(self.name.as_str()) => Some(Stop::Lost),
            Ok(row) if row.state.is_final() => Some(Stop::Lost),
            Ok(row) if row.state == TaskState::Canceling => {
                tracing::info!("cancel requested: canceling the task");
                Some(Stop::Canceled)
            }
            Ok(_) => None,
            Err(DbError::NotFound(_)) => Some(Stop::Lost),
            Err(e) => {
                tracing::warn!(error = %e, "reading the task row failed");
                None
            }
        }
    }

    /// Writes the final progress and the end state.
    async fn record(
        &self,
        task: &Task,
        progress: Option<&Progress>,
        state: TaskState,
        description: Option<String>,
    ) {
        if let Some(p) = progress {
            if let Err(e) = p.write_final(&self.store, task.id, state).await {
                tracing::warn!(error = %e, "writing final progress failed");
            }
        }
        let error = description.map(|d| serde_json::json!({ "description": d }));
        if let Some(started) = task.started_at {
            let took = (chrono::Utc::now() - started).to_std().unwrap_or_default();
            crate::telemetry::global().record_task(&task.name, took);
        }
        // Until the database takes it: a worker that is alive keeps heartbeating, so nobody
        // else would ever end a task whose end it failed to record.
        let mut warned = false;
        loop {
            match self
                .store
                .finish_task(task.id, &self.name, state, error.clone())
                .await
            {
                Ok(_) => break,
                // Reaped, or ended by a commit whose answer was lost: not ours to record.
                Err(e @ (DbError::Conflict(_) | DbError::NotFound(_))) => {
                    tracing::warn!(error = %e, "the task's end was recorded elsewhere");
                    break;
                }
                Err(e) if self.hard_stop.is_cancelled() => {
                    // Stopping now: the reaping by another process ends it after `ttl`.
                    tracing::warn!(error = %e, "recording the task's end failed; stopping");
                    return;
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(
                            error = %e,
                            "recording the task's end failed: retrying until the database answers"
                        );
                        warned = true;
                    }
                    tokio::select! {
                        _ = self.hard_stop.cancelled() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                    }
                }
            }
        }
        if warned {
            tracing::info!(state = %state, "the task's end is recorded");
        }
    }

    /// Fails the tasks the database says this worker runs, when it runs none (called between
    /// tasks, after the database was unreachable): a claim committed just before the connection
    /// dropped, whose answer never came. Without this they would stay `running` under a live
    /// worker that is never reaped.
    async fn fail_lost_claims(&self) -> Result<(), DbError> {
        let filter = crate::models::TaskFilter {
            worker: Some(self.name.clone()),
            states: Some(vec![TaskState::Running, TaskState::Canceling]),
            ..Default::default()
        };
        for task in self.store.list_tasks(&filter).await? {
            tracing::warn!(
                task_id = %task.id,
                task_name = %task.name,
                "failing a task claimed while the database connection dropped"
            );
            let error = serde_json::json!({ "description": LOST_CLAIM_DESCRIPTION });
            match self
                .store
                .finish_task(task.id, &self.name, TaskState::Failed, Some(error))
                .await
            {
                Ok(_) | Err(DbError::Conflict(_) | DbError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The duties of a process for its workers `names`, until `done` fires (after the last of them
/// stopped): heartbeats every `heartbeat_interval` in one statement, and, after a heartbeat that
/// went through, at most every `reap_interval`, declaring missing the workers silent past `ttl`
/// (their running tasks fail, their reservations go), then running `on_reap` to clean up what
/// they left. A process whose own heartbeats lapsed past `ttl` (a database outage) reaps nobody
/// for `ttl` after they resume, so the live workers of every process are back before anyone is
/// declared missing. At the end it deletes
/// the workers' rows (a clean shutdown).
pub async fn duties(
    store: DynStore,
    names: Vec<String>,
    config: WorkerConfig,
    on_reap: Option<ReapHook>,
    done: CancellationToken,
) {
    let mut beat = tokio::time::interval(config.heartbeat_interval);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beating = true;
    let mut last_beat = Instant::now();
    // Reaping follows a heartbeat that went through, so it never runs on a database it could
    // not reach a moment ago (a reaping stalled across an outage would find every process silent
    // once it is back). And after this process's own heartbeats lapsed past `ttl` (an outage, or
    // a stall), the others' probably did too: they get `ttl` to write theirs before any of them
    // is declared missing.
    let mut next_reap = Instant::now();
    loop {
        tokio::select! {
            _ = done.cancelled() => break,
            _ = beat.tick() => {}
        }
        match store.heartbeat(&names).await {
            Ok(()) => {
                if last_beat.elapsed() > config.ttl {
                    next_reap = next_reap.max(Instant::now() + config.ttl);
                }
                last_beat = Instant::now();
                if !beating {
                    tracing::info!("heartbeats written again");
                    beating = true;
                }
            }
            Err(e) => {
                if beating {
                    tracing::warn!(error = %e, "heartbeat failed: retrying every interval");
                    beating = false;
                }
                continue;
            }
        }
        if Instant::now() < next_reap {
            continue;
        }
        next_reap = Instant::now() + config.reap_interval;
        match store.reap_dead_workers(config.ttl).await {
            Ok(reaped) => {
                for t in &reaped {
                    tracing::warn!(
                        task_id = %t.id,
                        task_name = %t.name,
                        dead_worker = t.worker.as_deref().unwrap_or(""),
                        "task failed: its worker has gone missing"
                    );
                }
                if let (false, Some(hook)) = (reaped.is_empty(), &on_reap) {
                    hook().await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "reaping dead workers failed"),
        }
    }
    // Here, not in each worker: no heartbeat of this loop can bring a row back afterwards.
    for name in &names {
        if let Err(e) = store.remove_worker(name).await {
            tracing::warn!(worker = %name, error = %e, "removing the worker row failed");
        }
    }
}

/// The end state and error description of a task, from why the worker stopped it (if it did)
/// and what its function returned.
fn outcome(
    stop: Option<Stop>,
    joined: Result<Result<(), TaskError>, JoinError>,
) -> (TaskState, Option<String>) {
    match (stop, joined) {
        (Some(Stop::Shutdown), _) => (TaskState::Failed, Some(SHUTDOWN_DESCRIPTION.to_string())),
        (Some(Stop::Canceled | Stop::Lost), _) => (TaskState::Canceled, None),
        (None, Ok(Ok(()))) => (TaskState::Completed, None),
        (None, Ok(Err(TaskError::Canceled))) => (TaskState::Canceled, None),
        (None, Ok(Err(e))) => (TaskState::Failed, Some(e.to_string())),
        (None, Err(e)) if e.is_panic() => {
            let payload = e.into_panic();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            (TaskState::Failed, Some(format!("Task panicked: {msg}")))
        }
        (None, Err(_)) => (TaskState::Failed, Some("Task was aborted.".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasking_outcome_maps_results() {
        assert_eq!(outcome(None, Ok(Ok(()))).0, TaskState::Completed);
        assert_eq!(
            outcome(None, Ok(Err(TaskError::failed("boom")))),
            (TaskState::Failed, Some("boom".to_string()))
        );
        assert_eq!(
            outcome(Some(Stop::Canceled), Ok(Ok(()))),
            (TaskState::Canceled, None)
        );
        assert_eq!(
            outcome(Some(Stop::Shutdown), Ok(Err(TaskError::Canceled))),
            (TaskState::Failed, Some(SHUTDOWN_DESCRIPTION.to_string()))
        );
    }
}

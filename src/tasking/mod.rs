//! Tasking: dispatching work, running it on workers, reservations, cancellation and progress,
//! with pulpcore's semantics (`pulpcore/tasking/`).
//!
//! The database is the only truth. [`dispatch`] inserts a `waiting` task row with its
//! reservations; a [`Worker`] claims the oldest runnable one through
//! [`TaskStore::claim_next_task`] (FIFO per resource, shared holders run together; the queue
//! lives in the database, see `db::sql::tasks`), runs the registered [`TaskFn`] and records how
//! it ended. Workers in other processes see the same rows: local workers are woken through a
//! [`Notify`], other processes' by the database (`NOTIFY` on PostgreSQL, forwarded to the same
//! [`Notify`]), and every worker also polls, so no task depends on process memory or on a
//! notification arriving.
//!
//! - [`Registry`]: task functions by name.
//! - [`TaskCtx`] (`ctx`): what a running task function gets: id, args, store, cancellation
//!   token, throttled progress reports and created resources.
//! - [`Worker`] (`worker`): claims, supervises one task at a time (cancel polling), and shuts
//!   down explicitly on its token (finishing its task within a grace period); the process's
//!   heartbeats and reaping run beside the workers on their own timer.
//! - [`Tasking`]: the handle an application keeps: store, registry, wakeup, worker settings.
//!
//! [`TaskStore::claim_next_task`]: crate::db::TaskStore::claim_next_task

mod ctx;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::db::{DbError, DynStore};
use crate::models::{NewTask, Task};

pub use ctx::TaskCtx;
pub use worker::{Worker, WorkerConfig};

/// Errors of the tasking layer, and what a task function returns when it fails.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The task function failed; the message becomes the task's error description.
    #[error("{0}")]
    Failed(String),
    /// The task function stopped because its token fired.
    #[error("task canceled")]
    Canceled,
    /// No function is registered under the task's name.
    #[error("no task function registered as {0:?}")]
    UnknownTask(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl TaskError {
    /// A failure with this message (for task functions).
    pub fn failed(message: impl std::fmt::Display) -> TaskError {
        TaskError::Failed(message.to_string())
    }
}

/// A task function: takes its context, returns when done.
/// Run by a worker right after it declared other workers missing (the server's recovery of
/// what they left: incomplete versions, temp downloads). Tasking knows nothing of those.
pub type ReapHook = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

pub type TaskFn = Arc<dyn Fn(TaskCtx) -> BoxFuture<'static, Result<(), TaskError>> + Send + Sync>;

/// Task functions by name (the `name` of a task row).
#[derive(Default, Clone)]
pub struct Registry {
    fns: HashMap<String, TaskFn>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `f` under `name`, replacing any earlier one.
    pub fn register<F, Fut>(&mut self, name: &str, f: F) -> &mut Registry
    where
        F: Fn(TaskCtx) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), TaskError>> + Send + 'static,
    {
        let f: TaskFn = Arc::new(move |ctx| Box::pin(f(ctx)));
        self.fns.insert(name.to_string(), f);
        self
    }

    pub fn get(&self, name: &str) -> Option<TaskFn> {
        self.fns.get(name).cloned()
    }
}

/// The arguments of one task function: one serde struct, serialized by whoever dispatches the
/// task ([`Tasking::dispatch_args`]) and read back once by the function ([`TaskCtx::args_as`]).
/// `NAME` is the name the function is registered under, so a struct cannot be dispatched to
/// another task.
pub trait TaskArgs: serde::Serialize + serde::de::DeserializeOwned {
    /// The registered name of the task these are the arguments of.
    const NAME: &'static str;
}

/// Inserts a `waiting` task and wakes a local worker listening on `wakeup`, if any. Workers
/// in other processes hear of it through the store ([`crate::db::TaskStore::forward_wakeups`]).
pub async fn dispatch(
    store: &DynStore,
    wakeup: Option<&Notify>,
    task: &NewTask,
) -> Result<Task, TaskError> {
    let saved = store.insert_task(task).await?;
    tracing::debug!(task_id = %saved.id, task_name = %saved.name, "task dispatched");
    if let Some(w) = wakeup {
        w.notify_one();
    }
    Ok(saved)
}

/// What an application keeps to dispatch tasks and run workers in this process.
#[derive(Clone)]
pub struct Tasking {
    store: DynStore,
    registry: Arc<Registry>,
    wakeup: Arc<Notify>,
    config: WorkerConfig,
    on_reap: Option<ReapHook>,
    /// Fired by [`Tasking::stop_now`]: running tasks are canceled without grace.
    hard_stop: CancellationToken,
}

impl Tasking {
    pub fn new(store: DynStore, registry: Registry) -> Tasking {
        Tasking::with_config(store, registry, WorkerConfig::default())
    }

    pub fn with_config(store: DynStore, registry: Registry, config: WorkerConfig) -> Tasking {
        Tasking {
            store,
            registry: Arc::new(registry),
            wakeup: Arc::new(Notify::new()),
            config,
            on_reap: None,
            hard_stop: CancellationToken::new(),
        }
    }

    /// After the shutdown token of its workers fired: cancel their running tasks now instead
    /// of after the grace period (a second signal).
    pub fn stop_now(&self) {
        self.hard_stop.cancel();
    }

    /// Workers made from now on run `hook` after declaring other workers missing.
    pub fn with_reap_hook(mut self, hook: ReapHook) -> Tasking {
        self.on_reap = Some(hook);
        self
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Dispatches task `name` with `args`, holding `exclusive` and `shared` resources while it
    /// runs.
    pub async fn dispatch(
        &self,
        name: &str,
        args: serde_json::Value,
        exclusive: &[&str],
        shared: &[&str],
    ) -> Result<Task, TaskError> {
        let task = NewTask {
            name: name.to_string(),
            args,
            logging_cid: String::new(),
            exclusive_resources: exclusive.iter().map(|s| s.to_string()).collect(),
            shared_resources: shared.iter().map(|s| s.to_string()).collect(),
        };
        dispatch(&self.store, Some(&self.wakeup), &task).await
    }

    /// Dispatches the task `A` names with `args`, holding `exclusive` and `shared` resources
    /// while it runs.
    pub async fn dispatch_args<A: TaskArgs>(
        &self,
        args: &A,
        exclusive: &[&str],
        shared: &[&str],
    ) -> Result<Task, TaskError> {
        let value = serde_json::to_value(args).map_err(|e| {
            TaskError::failed(format!(
                "cannot serialize the arguments of {}: {e}",
                A::NAME
            ))
        })?;
        self.dispatch(A::NAME, value, exclusive, shared).await
    }

    /// A worker named `name` sharing this handle's store, registry and wakeup.
    fn worker(&self, name: &str) -> Worker {
        Worker::new(
            name.to_string(),
            self.store.clone(),
            self.registry.clone(),
            self.wakeup.clone(),
            self.config.clone(),
            self.hard_stop.clone(),
        )
    }

    /// Spawns `n` workers named `<pid>@<host>-<i>`; they stop when `shutdown` fires. Wait for
    /// them with `tracker.wait()`.
    pub fn spawn_workers(&self, n: usize, shutdown: &CancellationToken) -> TaskTracker {
        self.spawn_workers_named(&default_worker_prefix(), n, shutdown)
    }

    /// Like [`Tasking::spawn_workers`], with workers named `<prefix>-<i>`.
    pub fn spawn_workers_named(
        &self,
        prefix: &str,
        n: usize,
        shutdown: &CancellationToken,
    ) -> TaskTracker {
        let workers = TaskTracker::new();
        let mut names = Vec::with_capacity(n);
        for i in 0..n {
            let worker = self.worker(&format!("{prefix}-{i}"));
            names.push(worker.name().to_string());
            let span = tracing::info_span!("worker", worker = %worker.name());
            workers.spawn(worker.run(shutdown.clone()).instrument(span));
        }
        workers.close();
        // Heartbeats, reaping and other processes' wakeups go on until the last worker stopped.
        let done = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(worker::duties(
            self.store.clone(),
            names,
            self.config.clone(),
            self.on_reap.clone(),
            done.clone(),
        ));
        let (store, wakeup, stop) = (self.store.clone(), self.wakeup.clone(), done.clone());
        tracker.spawn(async move {
            store
                .forward_wakeups(Arc::new(move || wakeup.notify_one()), stop)
                .await
        });
        tracker.spawn(async move {
            workers.wait().await;
            done.cancel();
        });
        tracker.close();
        tracker
    }
}

/// `<pid>@<host>`, as pulpcore names its workers.
fn default_worker_prefix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{}@{host}", std::process::id())
}

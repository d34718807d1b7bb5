//! [`TaskCtx`]: what a running task function gets from its worker, and the progress buffer
//! that keeps report writes to the database at a bounded rate.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::TaskError;
use crate::db::DynStore;
use crate::models::{ProgressReport, Task, TaskState};

/// The context of one running task. Cheap to clone; clones share the token and the progress
/// buffer.
#[derive(Clone)]
pub struct TaskCtx {
    id: Uuid,
    name: String,
    args: serde_json::Value,
    store: DynStore,
    cancel: CancellationToken,
    progress: Arc<Progress>,
}

impl TaskCtx {
    pub(crate) fn new(
        task: &Task,
        store: DynStore,
        cancel: CancellationToken,
        progress: Arc<Progress>,
    ) -> TaskCtx {
        TaskCtx {
            id: task.id,
            name: task.name.clone(),
            args: task.args.clone(),
            store,
            cancel,
            progress,
        }
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The task's arguments as stored (JSON).
    pub fn args(&self) -> &serde_json::Value {
        &self.args
    }

    /// The task's arguments as their struct; a bad shape is a failure naming the task.
    pub fn args_as<A: super::TaskArgs>(&self) -> Result<A, TaskError> {
        A::deserialize(&self.args)
            .map_err(|e| TaskError::failed(format!("bad arguments for task {:?}: {e}", self.name)))
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Fires when the task is canceled (by a user, or by its worker shutting down). A task
    /// function should return soon after, typically with [`TaskError::Canceled`].
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn is_canceled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Sets the report with `report.code` (adding it if new). Written to the database at most
    /// once per throttle interval; the worker writes the last state when the task ends.
    pub async fn progress(&self, report: ProgressReport) -> Result<(), TaskError> {
        self.progress.update(report);
        self.progress.write_if_due(&self.store, self.id).await
    }

    /// Records a resource (a PRN or href) this task created.
    pub async fn created_resource(&self, resource: &str) -> Result<(), TaskError> {
        self.store.add_created_resource(self.id, resource).await?;
        Ok(())
    }
}

/// A task's progress reports as last set, and when they were last written.
pub(crate) struct Progress {
    min_interval: Duration,
    state: Mutex<ProgressState>,
    /// Held across a write, so snapshots reach the database in the order they were taken.
    writer: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct ProgressState {
    reports: Vec<ProgressReport>,
    dirty: bool,
    last_write: Option<Instant>,
}

impl Progress {
    pub(crate) fn new(min_interval: Duration, initial: Vec<ProgressReport>) -> Progress {
        Progress {
            min_interval,
            state: Mutex::new(ProgressState {
                reports: initial,
                ..ProgressState::default()
            }),
            writer: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProgressState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, report: ProgressReport) {
        let mut st = self.lock();
        match st.reports.iter_mut().find(|r| r.code == report.code) {
            Some(existing) => *existing = report,
            None => st.reports.push(report),
        }
        st.dirty = true;
    }

    /// Takes a snapshot to write when there are unwritten changes and (unless `force`) the
    /// throttle interval has passed since the last write.
    fn take(&self, force: bool) -> Option<Vec<ProgressReport>> {
        let mut st = self.lock();
        let due = match st.last_write {
            None => true,
            Some(t) => t.elapsed() >= self.min_interval,
        };
        if !st.dirty || !(due || force) {
            return None;
        }
        st.dirty = false;
        st.last_write = Some(Instant::now());
        Some(st.reports.clone())
    }

    /// Writes the reports if changed and the throttle interval has passed.
    pub(crate) async fn write_if_due(&self, store: &DynStore, id: Uuid) -> Result<(), TaskError> {
        let _w = self.writer.lock().await;
        if let Some(snapshot) = self.take(false) {
            store.set_progress(id, &snapshot).await?;
        }
        Ok(())
    }

    /// Moves unfinished reports (waiting, running) to the task's final state and writes
    /// whatever changed, regardless of the throttle.
    pub(crate) async fn write_final(
        &self,
        store: &DynStore,
        id: Uuid,
        final_state: TaskState,
    ) -> Result<(), TaskError> {
        let _w = self.writer.lock().await;
        {
            let mut st = self.lock();
            let mut changed = false;
            for r in st.reports.iter_mut() {
                if matches!(r.state, TaskState::Waiting | TaskState::Running) {
                    r.state = final_state;
                    changed = true;
                }
            }
            if changed {
                st.dirty = true;
            }
        }
        if let Some(snapshot) = self.take(true) {
            store.set_progress(id, &snapshot).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(code: &str, done: u64) -> ProgressReport {
        ProgressReport {
            message: code.to_string(),
            code: code.to_string(),
            state: TaskState::Running,
            total: None,
            done,
            suffix: None,
        }
    }

    #[test]
    fn tasking_progress_is_throttled_and_keyed_by_code() {
        let p = Progress::new(Duration::from_secs(3600), Vec::new());
        p.update(report("a", 1));
        assert_eq!(
            p.take(false).map(|r| r.len()),
            Some(1),
            "first write is due"
        );
        p.update(report("a", 2));
        p.update(report("b", 1));
        assert!(p.take(false).is_none(), "throttled");
        let forced = p.take(true).expect("forced write");
        assert_eq!(forced.len(), 2);
        assert_eq!(forced[0].done, 2);
        assert!(p.take(true).is_none(), "nothing new to write");
    }
}

//! Runs one of the server's task functions from the command line, in this process: the task is
//! dispatched into the database with the same resource reservations the REST API uses and run
//! by a worker started for it, so `repo delete` or `orphan cleanup` never races a server's
//! workers on the same database (whichever worker claims the task runs it).

use std::time::Duration;

use anyhow::bail;
use pulp_rs::db::DynStore;
use pulp_rs::models::{Task, TaskState};
use pulp_rs::plugins;
use pulp_rs::storage::ArtifactStorage;
use pulp_rs::sync::SyncContext;
use pulp_rs::tasking::{TaskArgs, Tasking};
use pulp_rs::tasks::{self, TaskEnv};
use tokio_util::sync::CancellationToken;

/// How often the task row is read while waiting for its end.
const POLL: Duration = Duration::from_millis(100);

/// Dispatches `args` holding `exclusive`, runs a worker until the task ends, and returns the
/// finished task; a failed or canceled task is an error naming its cause.
pub async fn run<A: TaskArgs>(
    store: &DynStore,
    storage: &ArtifactStorage,
    args: &A,
    exclusive: &[&str],
) -> anyhow::Result<Task> {
    let env = TaskEnv {
        store: store.clone(),
        storage: storage.clone(),
        plugins: plugins::registry(),
        sync: SyncContext::new(store.clone(), storage.clone()),
    };
    let tasking = Tasking::new(store.clone(), tasks::registry(&env));
    let shutdown = CancellationToken::new();
    let workers = tasking.spawn_workers_named(&format!("{}@cli", std::process::id()), 1, &shutdown);
    let waited = async {
        let task = tasking.dispatch_args(args, exclusive, &[]).await?;
        loop {
            let now = store.get_task(task.id).await?;
            if now.state.is_final() {
                return anyhow::Ok(now);
            }
            tokio::time::sleep(POLL).await;
        }
    }
    .await;
    shutdown.cancel();
    workers.wait().await;
    let task = waited?;
    match task.state {
        TaskState::Completed => Ok(task),
        state => {
            let cause = task
                .error
                .as_ref()
                .and_then(|e| e.get("description"))
                .and_then(|d| d.as_str())
                .unwrap_or("no cause recorded")
                .to_string();
            bail!("task {} {state}: {cause}", task.name)
        }
    }
}

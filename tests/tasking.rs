//! The tasking contract, written once and run against every backend: `sqlite::*` always,
//! `postgres::*` when `PULP_TEST_DATABASE_URL` is set (otherwise those tests return at once).
//!
//! Task functions record when they start and end; tests assert orderings and generous upper
//! bounds ("within 5 s"), never exact durations.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulp_rs::db::{DbError, DynStore, WORKER_MISSING};
use pulp_rs::models::{NewTask, ProgressReport, Task, TaskFilter, TaskState};
use pulp_rs::tasking::{Registry, TaskCtx, TaskError, Tasking, WorkerConfig};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

macro_rules! tasking_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = crate::common::db::sqlite_store(dir.path()).await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = crate::common::db::PgTestDb::create().await else { return };
                    super::$name(db.store.clone()).await;
                    db.drop_database().await;
                }
            )*
        }
    };
}

tasking_tests!(
    same_exclusive_resource_runs_in_dispatch_order,
    different_resources_overlap,
    shared_holders_run_together,
    exclusive_waits_for_shared_and_later_shared_waits_behind_it,
    cancel_waiting_task_never_runs,
    cancel_running_task_fires_its_token,
    cancel_finished_task_is_conflict,
    failing_task_records_its_error,
    dead_worker_is_reaped_and_its_resource_freed,
    progress_and_created_resources_are_readable,
    shutdown_stops_the_running_task_and_removes_the_worker,
    list_tasks_filters,
    concurrent_claimers_never_share_a_task,
    finish_task_rules,
    dispatch_elsewhere_is_found_by_polling,
    panicking_task_fails,
    task_ignoring_its_token_is_aborted_after_grace,
    queue_matches_a_recomputation_from_scratch,
    a_long_queue_on_one_resource_stays_in_order,
    shutdown_lets_the_running_task_finish_within_its_grace,
);

// ---- helpers -----------------------------------------------------------------------------------

/// Upper bound for anything that should happen "soon".
const SOON: Duration = Duration::from_secs(8);

fn fast_config() -> WorkerConfig {
    WorkerConfig {
        heartbeat_interval: Duration::from_millis(100),
        ttl: Duration::from_secs(2),
        reap_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        notified_poll_interval: Duration::from_millis(500),
        shutdown_grace: Duration::ZERO,
        cancel_poll_interval: Duration::from_millis(50),
        progress_interval: Duration::from_millis(100),
        cancel_grace: Duration::from_secs(5),
    }
}

/// Start and end instants of task runs by label, plus which runs saw their token fire.
#[derive(Default, Clone)]
struct Log(Arc<Mutex<LogInner>>);

#[derive(Default)]
struct LogInner {
    starts: HashMap<String, Instant>,
    ends: HashMap<String, Instant>,
    canceled: Vec<String>,
}

impl Log {
    fn start(&self, label: &str) {
        let mut l = self.0.lock().unwrap();
        assert!(
            l.starts.insert(label.to_string(), Instant::now()).is_none(),
            "{label} ran twice"
        );
    }
    fn end(&self, label: &str) {
        self.0
            .lock()
            .unwrap()
            .ends
            .insert(label.to_string(), Instant::now());
    }
    fn saw_cancel(&self, label: &str) {
        self.0.lock().unwrap().canceled.push(label.to_string());
    }
    fn span(&self, label: &str) -> (Instant, Instant) {
        let l = self.0.lock().unwrap();
        let s = *l
            .starts
            .get(label)
            .unwrap_or_else(|| panic!("{label} never started"));
        let e = *l
            .ends
            .get(label)
            .unwrap_or_else(|| panic!("{label} never ended"));
        (s, e)
    }
    fn started(&self, label: &str) -> bool {
        self.0.lock().unwrap().starts.contains_key(label)
    }
    fn canceled(&self) -> Vec<String> {
        self.0.lock().unwrap().canceled.clone()
    }
}

fn label(ctx: &TaskCtx) -> String {
    ctx.args()["label"].as_str().unwrap_or("?").to_string()
}

/// `sleep` (args: label, ms; ends early with Canceled when its token fires), `fail`,
/// `until_canceled`, `progress`.
fn registry(log: &Log) -> Registry {
    let mut reg = Registry::new();
    let l = log.clone();
    reg.register("sleep", move |ctx: TaskCtx| {
        let log = l.clone();
        async move {
            let name = label(&ctx);
            let ms = ctx.args()["ms"].as_u64().unwrap_or(100);
            log.start(&name);
            tokio::select! {
                _ = ctx.cancel_token().cancelled() => {
                    log.saw_cancel(&name);
                    log.end(&name);
                    return Err(TaskError::Canceled);
                }
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            }
            log.end(&name);
            Ok(())
        }
    });
    reg.register("fail", |_ctx: TaskCtx| async move {
        Err(TaskError::failed("boom: the remote said 404"))
    });
    let l = log.clone();
    reg.register("until_canceled", move |ctx: TaskCtx| {
        let log = l.clone();
        async move {
            let name = label(&ctx);
            log.start(&name);
            ctx.cancel_token().cancelled().await;
            log.saw_cancel(&name);
            log.end(&name);
            Err(TaskError::Canceled)
        }
    });
    reg.register("panic", |_ctx: TaskCtx| async move {
        if true {
            panic!("index out of bounds");
        }
        Ok(())
    });
    reg.register("stubborn", |_ctx: TaskCtx| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    });
    reg.register("progress", |ctx: TaskCtx| async move {
        for done in 1..=20u64 {
            ctx.progress(report("sync.downloading", done, Some(20)))
                .await?;
        }
        ctx.progress(report("sync.parsing", 3, None)).await?;
        ctx.created_resource("prn:file.filerepositoryversion:1")
            .await?;
        // Stay running long enough for the test to read progress mid-run.
        tokio::time::sleep(Duration::from_millis(600)).await;
        Ok(())
    });
    reg
}

fn report(code: &str, done: u64, total: Option<u64>) -> ProgressReport {
    ProgressReport {
        message: code.to_string(),
        code: code.to_string(),
        state: TaskState::Running,
        total,
        done,
        suffix: None,
    }
}

struct Env {
    tasking: Tasking,
    log: Log,
    shutdown: CancellationToken,
    workers: Option<TaskTracker>,
}

impl Env {
    fn new(store: &DynStore) -> Env {
        Env::with_config(store, fast_config())
    }

    fn with_config(store: &DynStore, config: WorkerConfig) -> Env {
        let log = Log::default();
        let tasking = Tasking::with_config(store.clone(), registry(&log), config);
        Env {
            tasking,
            log,
            shutdown: CancellationToken::new(),
            workers: None,
        }
    }

    fn start_workers(&mut self, n: usize) {
        assert!(self.workers.is_none());
        self.workers = Some(self.tasking.spawn_workers_named("w", n, &self.shutdown));
    }

    async fn dispatch(&self, name: &str, label: &str, ms: u64, x: &[&str], s: &[&str]) -> Task {
        self.tasking
            .dispatch(name, json!({ "label": label, "ms": ms }), x, s)
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.shutdown.cancel();
        if let Some(w) = self.workers {
            tokio::time::timeout(SOON, w.wait())
                .await
                .expect("workers stop in time");
        }
    }
}

/// Polls until the task is in a final state.
async fn wait_final(store: &DynStore, id: Uuid) -> Task {
    wait_for(store, id, |t| t.state.is_final()).await
}

async fn wait_for(store: &DynStore, id: Uuid, cond: impl Fn(&Task) -> bool) -> Task {
    let deadline = Instant::now() + SOON;
    loop {
        let t = store.get_task(id).await.unwrap();
        if cond(&t) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "task {} ({}) stuck in {}",
            t.name,
            t.id,
            t.state
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn overlap(a: (Instant, Instant), b: (Instant, Instant)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn description(t: &Task) -> Option<&str> {
    t.error.as_ref()?.get("description")?.as_str()
}

// ---- tests -------------------------------------------------------------------------------------

async fn same_exclusive_resource_runs_in_dispatch_order(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(2);
    let mut ids = Vec::new();
    for label in ["a", "b", "c"] {
        ids.push(env.dispatch("sleep", label, 200, &["repo"], &[]).await.id);
    }
    for id in &ids {
        assert_eq!(wait_final(&store, *id).await.state, TaskState::Completed);
    }
    let (a, b, c) = (env.log.span("a"), env.log.span("b"), env.log.span("c"));
    assert!(a.1 <= b.0, "b started before a ended");
    assert!(b.1 <= c.0, "c started before b ended");
    env.stop().await;
}

async fn different_resources_overlap(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(2);
    let a = env.dispatch("sleep", "a", 1000, &["repo1"], &[]).await;
    let b = env.dispatch("sleep", "b", 1000, &["repo2"], &[]).await;
    wait_final(&store, a.id).await;
    wait_final(&store, b.id).await;
    assert!(
        overlap(env.log.span("a"), env.log.span("b")),
        "tasks on different resources ran one after the other"
    );
    env.stop().await;
}

async fn shared_holders_run_together(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(2);
    let a = env.dispatch("sleep", "a", 1000, &[], &["remote"]).await;
    let b = env.dispatch("sleep", "b", 1000, &[], &["remote"]).await;
    assert_eq!(wait_final(&store, a.id).await.state, TaskState::Completed);
    assert_eq!(wait_final(&store, b.id).await.state, TaskState::Completed);
    assert!(overlap(env.log.span("a"), env.log.span("b")));
    env.stop().await;
}

async fn exclusive_waits_for_shared_and_later_shared_waits_behind_it(store: DynStore) {
    let mut env = Env::new(&store);
    // Dispatch before any worker exists, so the order is fixed in the table.
    let s1 = env.dispatch("sleep", "s1", 400, &[], &["repo"]).await;
    let x = env.dispatch("sleep", "x", 300, &["repo"], &[]).await;
    let s2 = env.dispatch("sleep", "s2", 100, &[], &["repo"]).await;
    let free = env
        .dispatch("sleep", "free", 100, &["elsewhere"], &[])
        .await;
    env.start_workers(3);
    for id in [s1.id, x.id, s2.id, free.id] {
        assert_eq!(wait_final(&store, id).await.state, TaskState::Completed);
    }
    let (s1, x, s2) = (env.log.span("s1"), env.log.span("x"), env.log.span("s2"));
    assert!(
        s1.1 <= x.0,
        "the exclusive task started while a shared holder ran"
    );
    assert!(
        x.1 <= s2.0,
        "a later shared task overtook the waiting exclusive one"
    );
    env.stop().await;
}

async fn cancel_waiting_task_never_runs(store: DynStore) {
    let mut env = Env::new(&store);
    let victim = env.dispatch("sleep", "victim", 100, &["repo"], &[]).await;
    let canceled = store.request_cancel(victim.id).await.unwrap();
    assert_eq!(canceled.state, TaskState::Canceled);
    assert!(canceled.finished_at.is_some());
    env.start_workers(1);
    let after = env.dispatch("sleep", "after", 50, &["repo"], &[]).await;
    assert_eq!(
        wait_final(&store, after.id).await.state,
        TaskState::Completed
    );
    assert!(!env.log.started("victim"));
    let victim = store.get_task(victim.id).await.unwrap();
    assert_eq!(victim.state, TaskState::Canceled);
    assert_eq!(victim.started_at, None);
    env.stop().await;
}

async fn cancel_running_task_fires_its_token(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(1);
    let t = env.dispatch("until_canceled", "t", 0, &["repo"], &[]).await;
    let next = env.dispatch("sleep", "next", 50, &["repo"], &[]).await;
    wait_for(&store, t.id, |t| t.state == TaskState::Running).await;
    let asked = Instant::now();
    let canceling = store.request_cancel(t.id).await.unwrap();
    assert_eq!(canceling.state, TaskState::Canceling);
    // Asking again is harmless.
    assert_eq!(
        store.request_cancel(t.id).await.unwrap().state,
        TaskState::Canceling
    );
    let done = wait_final(&store, t.id).await;
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "cancel took {:?}",
        asked.elapsed()
    );
    assert_eq!(done.state, TaskState::Canceled);
    assert_eq!(env.log.canceled(), vec!["t".to_string()]);
    // The resource is free again.
    assert_eq!(
        wait_final(&store, next.id).await.state,
        TaskState::Completed
    );
    env.stop().await;
}

async fn cancel_finished_task_is_conflict(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(1);
    let ok = env.dispatch("sleep", "ok", 10, &[], &[]).await;
    let bad = env.dispatch("fail", "bad", 0, &[], &[]).await;
    assert_eq!(wait_final(&store, ok.id).await.state, TaskState::Completed);
    assert_eq!(wait_final(&store, bad.id).await.state, TaskState::Failed);
    for id in [ok.id, bad.id] {
        assert!(matches!(
            store.request_cancel(id).await,
            Err(DbError::Conflict(_))
        ));
    }
    assert!(matches!(
        store.request_cancel(Uuid::now_v7()).await,
        Err(DbError::NotFound(_))
    ));
    env.stop().await;
}

async fn failing_task_records_its_error(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(1);
    let bad = env.dispatch("fail", "bad", 0, &["repo"], &[]).await;
    let unknown = env.dispatch("no.such.task", "u", 0, &["repo"], &[]).await;
    let bad = wait_final(&store, bad.id).await;
    assert_eq!(bad.state, TaskState::Failed);
    assert_eq!(description(&bad), Some("boom: the remote said 404"));
    assert!(bad.started_at.is_some() && bad.finished_at.is_some());
    let unknown = wait_final(&store, unknown.id).await;
    assert_eq!(unknown.state, TaskState::Failed);
    assert!(description(&unknown).unwrap().contains("no.such.task"));
    env.stop().await;
}

async fn dead_worker_is_reaped_and_its_resource_freed(store: DynStore) {
    let mut env = Env::new(&store);
    let orphan = env.dispatch("sleep", "orphan", 100, &["repo"], &[]).await;
    // A worker that claims the task and then dies without a word.
    let claimed = store.claim_next_task("ghost").await.unwrap().unwrap();
    assert_eq!(claimed.id, orphan.id);
    assert_eq!(claimed.worker.as_deref(), Some("ghost"));
    let next = env.dispatch("sleep", "next", 50, &["repo"], &[]).await;
    assert!(store.claim_next_task("ghost").await.unwrap().is_none());
    env.start_workers(1);
    let next = wait_final(&store, next.id).await;
    assert_eq!(next.state, TaskState::Completed);
    let orphan = store.get_task(orphan.id).await.unwrap();
    assert_eq!(orphan.state, TaskState::Failed);
    assert_eq!(description(&orphan), Some(WORKER_MISSING));
    assert!(!env.log.started("orphan"));
    let workers = store.list_workers().await.unwrap();
    assert!(workers.iter().all(|w| w.name != "ghost"), "{workers:?}");
    env.stop().await;
    assert!(store.list_workers().await.unwrap().is_empty());
}

async fn progress_and_created_resources_are_readable(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(1);
    let t = env.dispatch("progress", "p", 0, &[], &[]).await;
    let mid = wait_for(&store, t.id, |t| {
        !t.progress_reports.is_empty() || t.state.is_final()
    })
    .await;
    assert_eq!(
        mid.state,
        TaskState::Running,
        "progress visible while running"
    );
    let done = wait_final(&store, t.id).await;
    assert_eq!(done.state, TaskState::Completed);
    assert_eq!(done.progress_reports.len(), 2);
    let dl = &done.progress_reports[0];
    assert_eq!(
        (dl.code.as_str(), dl.done, dl.total),
        ("sync.downloading", 20, Some(20))
    );
    assert_eq!(dl.state, TaskState::Completed);
    assert_eq!(done.progress_reports[1].code, "sync.parsing");
    assert_eq!(
        done.created_resources,
        vec!["prn:file.filerepositoryversion:1".to_string()]
    );
    env.stop().await;
}

async fn shutdown_stops_the_running_task_and_removes_the_worker(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(1);
    let t = env.dispatch("until_canceled", "t", 0, &[], &[]).await;
    wait_for(&store, t.id, |t| t.state == TaskState::Running).await;
    assert_eq!(store.list_workers().await.unwrap().len(), 1);
    env.shutdown.cancel();
    let log = env.log.clone();
    env.stop().await;
    let t = store.get_task(t.id).await.unwrap();
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(description(&t), Some("Aborted during worker shutdown."));
    assert_eq!(log.canceled(), vec!["t".to_string()]);
    assert!(store.list_workers().await.unwrap().is_empty());
}

async fn list_tasks_filters(store: DynStore) {
    let env = Env::new(&store);
    let a = env.dispatch("sleep", "a", 0, &[], &[]).await;
    let b = env.dispatch("fail", "b", 0, &[], &[]).await;
    let c = env.dispatch("sleep", "c", 0, &[], &[]).await;
    store.request_cancel(c.id).await.unwrap();
    let all = store.list_tasks(&TaskFilter::default()).await.unwrap();
    let ids: Vec<Uuid> = all.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![c.id, b.id, a.id], "newest first");
    let sleeps = store
        .list_tasks(&TaskFilter {
            name: Some("sleep".into()),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(sleeps.len(), 2);
    let waiting = store
        .list_tasks(&TaskFilter {
            state: Some(TaskState::Waiting),
            limit: Some(1),
            offset: 1,
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(waiting.iter().map(|t| t.id).collect::<Vec<_>>(), vec![a.id]);
    assert_eq!(a.args, json!({ "label": "a", "ms": 0 }));
    assert_eq!(a.state, TaskState::Waiting);
    assert_eq!(a.exclusive_resources, Vec::<String>::new());
    env.stop().await;
}

async fn concurrent_claimers_never_share_a_task(store: DynStore) {
    let env = Env::new(&store);
    let mut free = Vec::new();
    for i in 0..20 {
        free.push(
            env.dispatch("sleep", &format!("f{i}"), 0, &[], &[])
                .await
                .id,
        );
    }
    let locked_a = env.dispatch("sleep", "la", 0, &["repo"], &[]).await.id;
    let _locked_b = env.dispatch("sleep", "lb", 0, &["repo"], &[]).await.id;
    let mut claimers = tokio::task::JoinSet::new();
    for c in 0..6 {
        let store = store.clone();
        claimers.spawn(async move {
            let mut got = Vec::new();
            while let Some(t) = store.claim_next_task(&format!("c{c}")).await.unwrap() {
                got.push(t.id);
            }
            got
        });
    }
    let mut claimed = Vec::new();
    while let Some(got) = claimers.join_next().await {
        claimed.extend(got.unwrap());
    }
    claimed.sort();
    let mut expected = free.clone();
    expected.push(locked_a);
    expected.sort();
    assert_eq!(
        claimed, expected,
        "each runnable task claimed exactly once; lb stays blocked"
    );
    env.stop().await;
}

async fn finish_task_rules(store: DynStore) {
    let env = Env::new(&store);
    let a = env.dispatch("sleep", "a", 0, &[], &[]).await;
    let b = env.dispatch("sleep", "b", 0, &[], &[]).await;
    let c = env.dispatch("sleep", "c", 0, &[], &[]).await;
    for id in [a.id, b.id, c.id] {
        let t = store.claim_next_task("w1").await.unwrap().unwrap();
        assert_eq!((t.id, t.state), (id, TaskState::Running));
        assert!(t.started_at.is_some());
    }
    // Only the claiming worker may finish, only in a final state.
    assert!(matches!(
        store
            .finish_task(a.id, "w2", TaskState::Completed, None)
            .await,
        Err(DbError::Conflict(_))
    ));
    assert!(matches!(
        store
            .finish_task(a.id, "w1", TaskState::Running, None)
            .await,
        Err(DbError::Conflict(_))
    ));
    let done = store
        .finish_task(a.id, "w1", TaskState::Completed, None)
        .await
        .unwrap();
    assert_eq!(done.state, TaskState::Completed);
    assert!(done.finished_at.is_some());
    // A cancel request that raced with the end wins: the task ends canceled.
    store.request_cancel(b.id).await.unwrap();
    let b = store
        .finish_task(b.id, "w1", TaskState::Completed, None)
        .await
        .unwrap();
    assert_eq!(b.state, TaskState::Canceled);
    // A reaped task cannot be finished by its (late) worker.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reaped = store
        .reap_dead_workers(Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(reaped.iter().map(|t| t.id).collect::<Vec<_>>(), vec![c.id]);
    assert_eq!(reaped[0].state, TaskState::Failed);
    assert_eq!(description(&reaped[0]), Some(WORKER_MISSING));
    assert!(matches!(
        store
            .finish_task(c.id, "w1", TaskState::Completed, None)
            .await,
        Err(DbError::Conflict(_))
    ));
    assert!(store.list_workers().await.unwrap().is_empty());
    env.stop().await;
}

async fn dispatch_elsewhere_is_found_by_polling(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(1);
    // As another process would: straight into the table, no local wakeup.
    let task = NewTask {
        name: "sleep".into(),
        args: json!({ "label": "remote", "ms": 10 }),
        logging_cid: "cid-1".into(),
        exclusive_resources: vec!["repo".into()],
        shared_resources: vec!["remote".into()],
    };
    let t = pulp_rs::tasking::dispatch(&store, None, &task)
        .await
        .unwrap();
    assert_eq!(t.logging_cid, "cid-1");
    assert_eq!(t.shared_resources, vec!["remote".to_string()]);
    assert_eq!(wait_final(&store, t.id).await.state, TaskState::Completed);
    assert!(env.log.started("remote"));
    env.stop().await;
}

async fn panicking_task_fails(store: DynStore) {
    let mut env = Env::new(&store);
    env.start_workers(1);
    let t = env.dispatch("panic", "p", 0, &["repo"], &[]).await;
    let after = env.dispatch("sleep", "after", 10, &["repo"], &[]).await;
    let t = wait_final(&store, t.id).await;
    assert_eq!(t.state, TaskState::Failed);
    assert!(description(&t).unwrap().contains("index out of bounds"));
    assert_eq!(
        wait_final(&store, after.id).await.state,
        TaskState::Completed
    );
    env.stop().await;
}

async fn task_ignoring_its_token_is_aborted_after_grace(store: DynStore) {
    let config = WorkerConfig {
        cancel_grace: Duration::from_millis(300),
        ..fast_config()
    };
    let mut env = Env::with_config(&store, config);
    env.start_workers(1);
    let t = env.dispatch("stubborn", "s", 0, &[], &[]).await;
    wait_for(&store, t.id, |t| t.state == TaskState::Running).await;
    let asked = Instant::now();
    store.request_cancel(t.id).await.unwrap();
    assert_eq!(wait_final(&store, t.id).await.state, TaskState::Canceled);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    env.stop().await;
}

/// pulpcore's rule, from scratch: walking the incomplete tasks oldest first, a waiting task may
/// start iff none of its exclusive resources is held (either way) by an earlier incomplete task
/// and none of its shared ones is held exclusively by one.
fn runnable_from_scratch(incomplete: &[Task]) -> Vec<Uuid> {
    let (mut exclusive, mut shared) = (Vec::<&str>::new(), Vec::<&str>::new());
    let mut out = Vec::new();
    for t in incomplete {
        let x_free = t
            .exclusive_resources
            .iter()
            .all(|r| !exclusive.contains(&r.as_str()) && !shared.contains(&r.as_str()));
        let s_free = t
            .shared_resources
            .iter()
            .all(|r| !exclusive.contains(&r.as_str()));
        if t.state == TaskState::Waiting && x_free && s_free {
            out.push(t.id);
        }
        exclusive.extend(t.exclusive_resources.iter().map(String::as_str));
        shared.extend(t.shared_resources.iter().map(String::as_str));
    }
    out
}

/// After every dispatch, claim, finish and cancel of a long random run, the tasks the store has
/// unblocked are exactly those the rule computed from scratch allows, and a claim takes the
/// oldest of them.
async fn queue_matches_a_recomputation_from_scratch(store: DynStore) {
    let resources = ["r1", "r2", "r3", "r4"];
    // A small deterministic generator: the run is the same every time.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut running: Vec<Uuid> = Vec::new();
    for step in 0..160 {
        match next(10) {
            0..=4 => {
                let mut x = Vec::new();
                let mut s = Vec::new();
                for r in resources {
                    match next(4) {
                        0 => x.push(r.to_string()),
                        1 => s.push(r.to_string()),
                        _ => {}
                    }
                }
                store
                    .insert_task(&NewTask {
                        name: "noop".into(),
                        args: json!({}),
                        logging_cid: String::new(),
                        exclusive_resources: x,
                        shared_resources: s,
                    })
                    .await
                    .unwrap();
            }
            5..=6 => {
                let before = incomplete(&store).await;
                let oldest = runnable_from_scratch(&before).first().copied();
                let claimed = store.claim_next_task("oracle").await.unwrap();
                assert_eq!(claimed.as_ref().map(|t| t.id), oldest, "step {step}");
                running.extend(claimed.map(|t| t.id));
            }
            7..=8 if !running.is_empty() => {
                let id = running.remove(next(running.len() as u64) as usize);
                store
                    .finish_task(id, "oracle", TaskState::Completed, None)
                    .await
                    .unwrap();
            }
            _ => {
                let waiting: Vec<Task> = incomplete(&store)
                    .await
                    .into_iter()
                    .filter(|t| t.state == TaskState::Waiting)
                    .collect();
                if !waiting.is_empty() {
                    let t = &waiting[next(waiting.len() as u64) as usize];
                    store.request_cancel(t.id).await.unwrap();
                }
            }
        }
        let now = incomplete(&store).await;
        let mut expected = runnable_from_scratch(&now);
        let mut unblocked: Vec<Uuid> = now
            .iter()
            .filter(|t| t.state == TaskState::Waiting && t.unblocked_at.is_some())
            .map(|t| t.id)
            .collect();
        expected.sort();
        unblocked.sort();
        assert_eq!(unblocked, expected, "step {step}");
    }
    // Rebuilding the queue from the tasks' own lists changes nothing.
    assert_eq!(store.refresh_queue().await.unwrap(), 0);
}

/// The incomplete tasks, oldest first.
async fn incomplete(store: &DynStore) -> Vec<Task> {
    let mut tasks = store
        .list_tasks(&TaskFilter {
            states: Some(vec![
                TaskState::Waiting,
                TaskState::Running,
                TaskState::Canceling,
            ]),
            ..TaskFilter::default()
        })
        .await
        .unwrap();
    tasks.reverse();
    tasks
}

/// 300 tasks queued on one repository, then one elsewhere: claims take them strictly in
/// dispatch order, one at a time per resource, and the one elsewhere is not held back.
async fn a_long_queue_on_one_resource_stays_in_order(store: DynStore) {
    let mut queued = Vec::new();
    for _ in 0..300 {
        let t = store
            .insert_task(&NewTask {
                name: "noop".into(),
                args: json!({}),
                logging_cid: String::new(),
                exclusive_resources: vec!["repo".into()],
                shared_resources: vec![],
            })
            .await
            .unwrap();
        queued.push(t.id);
    }
    let elsewhere = store
        .insert_task(&NewTask {
            name: "noop".into(),
            args: json!({}),
            logging_cid: String::new(),
            exclusive_resources: vec!["other".into()],
            shared_resources: vec![],
        })
        .await
        .unwrap();
    let first = store.claim_next_task("w").await.unwrap().unwrap();
    assert_eq!(first.id, queued[0]);
    let second = store.claim_next_task("w").await.unwrap().unwrap();
    assert_eq!(second.id, elsewhere.id, "a free task is not held back");
    assert!(store.claim_next_task("w").await.unwrap().is_none());
    let mut current = first.id;
    for expected in &queued[1..] {
        store
            .finish_task(current, "w", TaskState::Completed, None)
            .await
            .unwrap();
        let next = store.claim_next_task("w").await.unwrap().unwrap();
        assert_eq!(next.id, *expected);
        assert!(store.claim_next_task("w").await.unwrap().is_none());
        current = next.id;
    }
}

async fn shutdown_lets_the_running_task_finish_within_its_grace(store: DynStore) {
    let config = WorkerConfig {
        shutdown_grace: Duration::from_secs(10),
        ..fast_config()
    };
    let mut env = Env::with_config(&store, config);
    env.start_workers(1);
    let t = env.dispatch("sleep", "t", 800, &["repo"], &[]).await;
    let queued = env.dispatch("sleep", "queued", 10, &["repo"], &[]).await;
    wait_for(&store, t.id, |t| t.state == TaskState::Running).await;
    env.shutdown.cancel();
    let log = env.log.clone();
    env.stop().await;
    assert_eq!(
        store.get_task(t.id).await.unwrap().state,
        TaskState::Completed
    );
    assert!(log.canceled().is_empty());
    // Shutting down, the worker claimed nothing more.
    assert_eq!(
        store.get_task(queued.id).await.unwrap().state,
        TaskState::Waiting
    );
    assert!(store.list_workers().await.unwrap().is_empty());
}

/// Another process's dispatch wakes this process's workers once the task can be claimed:
/// `forward_wakeups` of one store hears a task inserted through a second store on the same
/// database (a second process), on SQLite (a datagram beside the database file) as on
/// PostgreSQL (`NOTIFY`), and the claim made on waking finds the task.
async fn another_process_dispatch_wakes_this_one(listening: DynStore, other: DynStore) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let forward = tokio::spawn({
        let (store, stop) = (listening.clone(), stop.clone());
        async move {
            let claimer = store.clone();
            // As a worker does: claim at once on waking.
            let wake = Arc::new(move || {
                let (store, tx) = (claimer.clone(), tx.clone());
                tokio::spawn(async move {
                    let got = store.claim_next_task("w").await.unwrap();
                    let _ = tx.send(got.map(|t| t.id));
                });
            });
            store.forward_wakeups(wake, stop).await
        }
    });
    let noop = |resource: String| NewTask {
        name: "noop".into(),
        args: json!({}),
        logging_cid: String::new(),
        exclusive_resources: vec![resource],
        shared_resources: vec![],
    };
    // The listener is up once it hears anything (PostgreSQL also wakes once when it starts
    // listening): dispatch until a wakeup comes.
    let mut heard = false;
    for i in 0..100 {
        other
            .insert_task(&noop(format!("setup-{i}")))
            .await
            .unwrap();
        if tokio::time::timeout(Duration::from_millis(100), rx.recv())
            .await
            .is_ok()
        {
            heard = true;
            break;
        }
    }
    assert!(heard, "no wakeup reached the listening store");
    // Drain what the setup caused: wakeups, and the tasks.
    while tokio::time::timeout(Duration::from_millis(300), rx.recv())
        .await
        .is_ok()
    {}
    while listening.claim_next_task("w").await.unwrap().is_some() {}
    for i in 0..5 {
        let task = other.insert_task(&noop(format!("r-{i}"))).await.unwrap();
        let claimed = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the dispatch woke nobody")
            .unwrap();
        assert_eq!(
            claimed,
            Some(task.id),
            "woken before the task could be claimed"
        );
    }
    stop.cancel();
    forward.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_another_process_dispatch_wakes_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let listening = common::db::sqlite_store(dir.path()).await;
    let other = common::db::sqlite_store(dir.path()).await;
    another_process_dispatch_wakes_this_one(listening.clone(), other).await;
    // The listener's socket went with it.
    let sockets = std::fs::read_dir(dir.path().join("pulp.db.wakeups"))
        .unwrap()
        .count();
    assert_eq!(sockets, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_another_process_dispatch_wakes_this_one() {
    let Some(db) = common::db::PgTestDb::create().await else {
        return;
    };
    let other = pulp_rs::db::connect(&db.url()).await.unwrap();
    another_process_dispatch_wakes_this_one(db.store.clone(), other).await;
    db.drop_database().await;
}

//! The task queue's claim cost against its length: one task dispatched, claimed and finished
//! while 0 or 10,000 tasks wait on one repository (held by a running task, so all of them are
//! blocked). pulpcore re-derives every reservation from all incomplete tasks on each pass; the
//! two figures side by side show whether a claim's cost grows with the queue. SQLite in a temp
//! file, and PostgreSQL when `PULP_BENCH_DATABASE_URL` names a server (a fresh database each).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pulp_rs::db::{self, DynStore};
use pulp_rs::models::{NewTask, TaskState};

fn task(exclusive: &str) -> NewTask {
    NewTask {
        name: "noop".into(),
        args: serde_json::json!({}),
        logging_cid: String::new(),
        exclusive_resources: vec![exclusive.to_string()],
        shared_resources: vec![],
    }
}

/// A store whose "repo" is held by a running task with `queued` more tasks waiting behind it.
async fn store_with_queue(url: &str, queued: usize) -> DynStore {
    let store = db::connect(url).await.expect("database");
    store.insert_task(&task("repo")).await.unwrap();
    let holder = store.claim_next_task("holder").await.unwrap().unwrap();
    assert_eq!(holder.state, TaskState::Running);
    for _ in 0..queued {
        store.insert_task(&task("repo")).await.unwrap();
    }
    store
}

fn claims(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut backends = vec![];
    for queued in [0usize, 10_000] {
        let path = dir.path().join(format!("q{queued}.db"));
        backends.push(("sqlite", queued, format!("sqlite://{}", path.display())));
    }
    let pg_admin = std::env::var("PULP_BENCH_DATABASE_URL").ok();
    if let Some(admin) = &pg_admin {
        for queued in [0usize, 10_000] {
            let url = rt
                .block_on(db::fresh_database(admin, "pulp_bench_tasking"))
                .unwrap();
            backends.push(("postgres", queued, url));
        }
    }
    let mut group = c.benchmark_group("claim");
    group.sample_size(30);
    for (backend, queued, url) in &backends {
        let store = rt.block_on(store_with_queue(url, *queued));
        group.bench_function(
            BenchmarkId::new(*backend, format!("{queued} queued")),
            |b| {
                b.to_async(&rt).iter(|| async {
                    let t = store.insert_task(&task("elsewhere")).await.unwrap();
                    let claimed = store.claim_next_task("w").await.unwrap().unwrap();
                    assert_eq!(claimed.id, t.id);
                    store
                        .finish_task(t.id, "w", TaskState::Completed, None)
                        .await
                        .unwrap();
                })
            },
        );
    }
    group.finish();
    if let Some(admin) = &pg_admin {
        for (backend, _, url) in &backends {
            if *backend == "postgres" {
                let _ = rt.block_on(db::drop_fresh_database(admin, url));
            }
        }
    }
}

criterion_group!(benches, claims);
criterion_main!(benches);

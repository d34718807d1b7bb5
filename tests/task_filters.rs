//! Every [`TaskFilter`] condition of `TaskStore::list_tasks` / `count_tasks`, on every backend
//! (SQLite always, PostgreSQL when `PULP_TEST_DATABASE_URL` is set).

mod common;

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use pulp_rs::db::DynStore;
use pulp_rs::models::{NewTask, TaskFilter, TaskState};
use serde_json::json;
use uuid::Uuid;

async fn insert(
    store: &DynStore,
    name: &str,
    cid: &str,
    exclusive: &[&str],
    shared: &[&str],
) -> Uuid {
    let task = NewTask {
        name: name.to_string(),
        args: json!({ "n": name }),
        logging_cid: cid.to_string(),
        exclusive_resources: exclusive.iter().map(|s| s.to_string()).collect(),
        shared_resources: shared.iter().map(|s| s.to_string()).collect(),
    };
    store.insert_task(&task).await.expect("insert task").id
}

/// The ids `filter` lists, after checking `count_tasks` agrees with `list_tasks`.
async fn ids(store: &DynStore, filter: TaskFilter) -> BTreeSet<Uuid> {
    let listed = store.list_tasks(&filter).await.expect("list tasks");
    let counted = store.count_tasks(&filter).await.expect("count tasks");
    if filter.limit.is_none() && filter.offset == 0 {
        assert_eq!(counted, listed.len() as u64, "count of {filter:?}");
    }
    listed.into_iter().map(|t| t.id).collect()
}

fn set(ids: &[Uuid]) -> BTreeSet<Uuid> {
    ids.iter().copied().collect()
}

async fn filters(store: DynStore) {
    let before = Utc::now() - Duration::seconds(1);
    let t1 = insert(&store, "pulp.sync", "abc-123", &["repo-a"], &["remote-x"]).await;
    let t2 = insert(&store, "pulp.publish", "zzz", &["repo-b"], &[]).await;
    let t3 = insert(&store, "other", "", &[], &["repo-a"]).await;
    let claimed = store.claim_next_task("w1").await.unwrap().expect("a task");
    assert_eq!(claimed.id, t1);
    store.add_created_resource(t1, "/made/1/").await.unwrap();
    store.add_created_resource(t1, "/made/2/").await.unwrap();
    store
        .finish_task(t1, "w1", TaskState::Completed, None)
        .await
        .unwrap();
    let f = TaskFilter::default;

    assert_eq!(ids(&store, f()).await, set(&[t1, t2, t3]));
    let s = |state| TaskFilter {
        state: Some(state),
        ..f()
    };
    assert_eq!(ids(&store, s(TaskState::Waiting)).await, set(&[t2, t3]));
    assert_eq!(ids(&store, s(TaskState::Completed)).await, set(&[t1]));
    let n = |name: &str| TaskFilter {
        name: Some(name.into()),
        ..f()
    };
    assert_eq!(ids(&store, n("other")).await, set(&[t3]));
    assert_eq!(ids(&store, n("pulp")).await, set(&[]));

    let states = |v: &[TaskState]| TaskFilter {
        states: Some(v.to_vec()),
        ..f()
    };
    assert_eq!(ids(&store, states(&[])).await, set(&[]));
    assert_eq!(
        ids(&store, states(&[TaskState::Completed])).await,
        set(&[t1])
    );
    let both = states(&[TaskState::Waiting, TaskState::Completed]);
    assert_eq!(ids(&store, both).await, set(&[t1, t2, t3]));

    let nc = |v: &str| TaskFilter {
        name_contains: Some(v.into()),
        ..f()
    };
    assert_eq!(ids(&store, nc("pulp.")).await, set(&[t1, t2]));
    assert_eq!(ids(&store, nc("Pulp")).await, set(&[]), "case-sensitive");
    assert_eq!(ids(&store, nc("%")).await, set(&[]), "no wildcards");
    let cc = |v: &str| TaskFilter {
        logging_cid_contains: Some(v.into()),
        ..f()
    };
    assert_eq!(ids(&store, cc("c-1")).await, set(&[t1]));
    let w = TaskFilter {
        worker: Some("w1".into()),
        ..f()
    };
    assert_eq!(ids(&store, w).await, set(&[t1]));

    let cr = |v: &str| TaskFilter {
        created_resource: Some(v.into()),
        ..f()
    };
    assert_eq!(ids(&store, cr("/made/2/")).await, set(&[t1]));
    assert_eq!(ids(&store, cr("/made/")).await, set(&[]));
    let task = store.get_task(t1).await.unwrap();
    assert_eq!(task.created_resources, vec!["/made/1/", "/made/2/"]);

    let list = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let rr = |v: &[&str]| TaskFilter {
        reserved_resources: list(v),
        ..f()
    };
    assert_eq!(ids(&store, rr(&["repo-a"])).await, set(&[t1, t3]));
    assert_eq!(
        ids(&store, rr(&["repo-b", "remote-x"])).await,
        set(&[t1, t2])
    );
    assert_eq!(ids(&store, rr(&[])).await, set(&[]));
    let er = |v: &[&str]| TaskFilter {
        exclusive_resources: list(v),
        ..f()
    };
    assert_eq!(ids(&store, er(&["repo-a", "nope"])).await, set(&[t1]));
    let sr = |v: &[&str]| TaskFilter {
        shared_resources: list(v),
        ..f()
    };
    assert_eq!(ids(&store, sr(&["repo-a"])).await, set(&[t3]));

    let after = Utc::now() + Duration::seconds(60);
    let started = TaskFilter {
        started_after: Some(before),
        ..f()
    };
    assert_eq!(ids(&store, started).await, set(&[t1]));
    let started = TaskFilter {
        started_before: Some(before),
        ..f()
    };
    assert_eq!(ids(&store, started).await, set(&[]));
    let finished = TaskFilter {
        finished_after: Some(before),
        finished_before: Some(after),
        ..f()
    };
    assert_eq!(ids(&store, finished).await, set(&[t1]));

    // Conditions combine; limit and offset page the newest-first list.
    let combined = TaskFilter {
        name_contains: Some("pulp".into()),
        state: Some(TaskState::Waiting),
        ..f()
    };
    assert_eq!(ids(&store, combined).await, set(&[t2]));
    let all = store.list_tasks(&f()).await.unwrap();
    let page = TaskFilter { offset: 1, ..f() };
    let rest: Vec<Uuid> = store
        .list_tasks(&page)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(rest, all[1..].iter().map(|t| t.id).collect::<Vec<_>>());
    let page = TaskFilter {
        limit: Some(1),
        offset: 2,
        ..f()
    };
    let last: Vec<Uuid> = store
        .list_tasks(&page)
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(last, vec![all[2].id]);
    assert_eq!(
        store.count_tasks(&page).await.unwrap(),
        3,
        "count ignores paging"
    );
}

#[tokio::test]
async fn sqlite_task_filters() {
    let dir = tempfile::tempdir().expect("temp dir");
    filters(common::db::sqlite_store(dir.path()).await).await;
}

#[tokio::test]
async fn postgres_task_filters() {
    let Some(db) = common::db::PgTestDb::create().await else {
        return;
    };
    filters(db.store.clone()).await;
    db.drop_database().await;
}

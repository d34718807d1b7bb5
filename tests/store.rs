//! The `Store` contract, written once and run against every backend: `sqlite::*` always,
//! `postgres::*` when `PULP_TEST_DATABASE_URL` is set (otherwise those tests return at once).

mod common;

use std::collections::HashSet;
use std::time::Instant;

use pulp_rs::db::{DbError, DynStore};
use pulp_rs::models::{
    ContentToSave, NewArtifact, NewRemoteArtifact, OtherDigests, Policy, Remote, Repository,
    RepositoryVersion, UnsavedContent, VersionCounts,
};
use uuid::Uuid;

macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let store = crate::common::db::sqlite_store(dir.path()).await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::common::db::PgTestDb::create().await else { return };
                    super::$name(db.store.clone()).await;
                    db.drop_database().await;
                }
            )*
        }
    };
}

store_tests!(
    repository_and_remote_basics,
    full_flow,
    noop_finalize_deletes_version,
    discard_restores_membership,
    replacement_by_repo_key,
    two_added_units_with_one_repo_key_conflict,
    unassociate_except_mirror,
    save_content_idempotent_and_concurrent,
    content_artifact_filled_later,
    remote_artifact_upsert,
    insert_artifacts_returns_existing,
    older_version_content_by_range_rule,
    leftover_incomplete_version_discarded,
    large_batches,
    timing_10k,
);

/// PostgreSQL plans the batch lookups by statistics that only `ANALYZE` gathers (autovacuum is
/// off on the CI cluster, and a minute behind elsewhere): a store that has written more than
/// 1,000 rows into the tables a sync grows analyzes them itself, in the background.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_analyzes_the_tables_a_sync_grows() {
    let Some(db) = crate::common::db::PgTestDb::create().await else {
        return;
    };
    let analyzed = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT relname::text FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL \
             AND relname IN ('artifacts', 'content', 'content_artifacts') ORDER BY relname",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let pool = sqlx::PgPool::connect(&db.url()).await.unwrap();
    // Below the first threshold: nothing is analyzed.
    let few: Vec<NewArtifact> = (0..10).map(artifact).collect();
    db.store.insert_artifacts(&few).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(analyzed(pool.clone()).await.is_empty());
    // Past it: the three tables get statistics within seconds.
    let many: Vec<NewArtifact> = (10..1_210).map(artifact).collect();
    db.store.insert_artifacts(&many).await.unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let done = analyzed(pool.clone()).await;
        if done == ["artifacts", "content", "content_artifacts"] {
            break;
        }
        assert!(Instant::now() < deadline, "analyzed only {done:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    pool.close().await;
    db.drop_database().await;
}

// ---- helpers -----------------------------------------------------------------------------------

const T: &str = "file.file";

fn unit(natural_key: &str, repo_key: &str) -> UnsavedContent {
    UnsavedContent {
        pulp_type: T.to_string(),
        natural_key: natural_key.to_string(),
        repo_key: repo_key.to_string(),
        data: serde_json::json!({ "relative_path": repo_key, "key": natural_key }),
    }
}

fn new_save(u: &UnsavedContent) -> ContentToSave {
    ContentToSave {
        existing_id: None,
        content: u.clone(),
        artifacts: vec![(u.repo_key.clone(), None)],
    }
}

async fn repo(store: &DynStore, name: &str) -> Repository {
    store
        .create_repository(T, name, None)
        .await
        .expect("create repository")
}

/// Saves units (unit i has natural key `names[i]`, repo key = its part before `@`).
async fn save(store: &DynStore, names: &[&str]) -> Vec<Uuid> {
    let batch: Vec<ContentToSave> = names
        .iter()
        .map(|n| new_save(&unit(n, n.split('@').next().unwrap_or(n))))
        .collect();
    store.save_content(&batch).await.expect("save content")
}

/// One sync: new version, associate `names` (saving them first), optionally mirror, finalize.
async fn sync(
    store: &DynStore,
    repo: &Repository,
    names: &[&str],
    mirror: bool,
) -> Option<RepositoryVersion> {
    let v = store
        .create_incomplete_version(repo.id)
        .await
        .expect("create version");
    let ids = save(store, names).await;
    store.associate(v.id, &ids).await.expect("associate");
    if mirror {
        let keep: HashSet<Uuid> = ids.iter().copied().collect();
        store
            .unassociate_except(v.id, &keep)
            .await
            .expect("unassociate");
    }
    store.finalize_version(v.id).await.expect("finalize")
}

async fn keys(store: &DynStore, version_id: Uuid) -> Vec<String> {
    store
        .version_content(version_id, 100_000, 0)
        .await
        .expect("version content")
        .into_iter()
        .map(|c| c.natural_key)
        .collect()
}

fn counts(added: u64, removed: u64, present: u64) -> VersionCounts {
    VersionCounts {
        added,
        removed,
        present,
    }
}

fn sha(i: usize) -> String {
    format!("{i:064x}")
}

fn artifact(i: usize) -> NewArtifact {
    let sha256 = sha(i);
    NewArtifact {
        file: format!("artifact/{}/{}", &sha256[..2], &sha256[2..]),
        sha256,
        size: i as u64,
        other: OtherDigests::default(),
    }
}

// ---- cases -------------------------------------------------------------------------------------

async fn repository_and_remote_basics(store: DynStore) {
    let r = repo(&store, "zeta").await;
    assert_eq!(r.next_version, 1);
    let v0 = store.latest_version(r.id).await.unwrap();
    assert_eq!(v0.number, 0);
    assert!(v0.complete);
    assert_eq!(v0.counts, counts(0, 0, 0));
    assert_eq!(store.list_versions(r.id).await.unwrap(), vec![v0.clone()]);
    assert_eq!(store.get_version(r.id, 0).await.unwrap(), Some(v0.clone()));
    assert!(keys(&store, v0.id).await.is_empty());
    assert_eq!(store.count_version(v0.id).await.unwrap(), counts(0, 0, 0));

    let dup = store.create_repository(T, "zeta", None).await;
    assert!(matches!(dup, Err(DbError::Conflict(_))), "{dup:?}");
    let missing = Uuid::now_v7();
    match store.get_repository(missing).await {
        Err(DbError::NotFound(m)) => assert_eq!(m, format!("repository {missing}")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.get_repository(r.id).await.unwrap(), r);
    assert_eq!(
        store.get_repository_by_name("zeta").await.unwrap(),
        Some(r.clone())
    );
    assert_eq!(store.get_repository_by_name("nope").await.unwrap(), None);
    let a = repo(&store, "alpha").await;
    let names: Vec<String> = store
        .list_repositories()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, vec!["alpha", "zeta"]);

    // Remotes.
    let mut remote = Remote::new(T, "origin", "https://example.com/repo/", Policy::OnDemand);
    remote.headers = vec![("X-A".into(), "1".into()), ("X-A".into(), "2".into())];
    remote.password = Some("secret".into());
    remote.connect_timeout = Some(2.5);
    remote.download_concurrency = Some(4);
    let saved = store.create_remote(&remote).await.unwrap();
    assert_eq!(saved.id, remote.id);
    assert_eq!(saved.headers, remote.headers);
    assert_eq!(saved.password.as_deref(), Some("secret"));
    assert_eq!(saved.connect_timeout, Some(2.5));
    assert_eq!(saved.download_concurrency, Some(4));
    assert_eq!(saved.policy, Policy::OnDemand);
    assert_eq!(store.get_remote(remote.id).await.unwrap(), saved);
    assert_eq!(
        store.get_remote_by_name("origin").await.unwrap(),
        Some(saved.clone())
    );
    let mut again = Remote::new(T, "origin", "https://other/", Policy::Immediate);
    again.id = Uuid::now_v7();
    assert!(matches!(
        store.create_remote(&again).await,
        Err(DbError::Conflict(_))
    ));
    let mut changed = saved.clone();
    changed.url = "https://example.org/".into();
    changed.headers.clear();
    changed.policy = Policy::Streamed;
    let updated = store.update_remote(&changed).await.unwrap();
    assert_eq!(updated.url, "https://example.org/");
    assert!(updated.headers.is_empty());
    assert_eq!(updated.policy, Policy::Streamed);
    assert!(updated.pulp_last_updated >= saved.pulp_last_updated);
    assert!(matches!(
        store.get_remote(Uuid::now_v7()).await,
        Err(DbError::NotFound(_))
    ));

    store
        .set_repository_remote(a.id, Some(remote.id))
        .await
        .unwrap();
    assert_eq!(
        store.get_repository(a.id).await.unwrap().remote_id,
        Some(remote.id)
    );
    store.set_repository_remote(a.id, None).await.unwrap();
    assert_eq!(store.get_repository(a.id).await.unwrap().remote_id, None);
    let with_remote = store
        .create_repository(T, "with-remote", Some(remote.id))
        .await
        .unwrap();
    assert_eq!(with_remote.remote_id, Some(remote.id));
}

async fn full_flow(store: DynStore) {
    let r = repo(&store, "flow").await;
    let v1 = store.create_incomplete_version(r.id).await.unwrap();
    assert_eq!(v1.number, 1);
    assert!(!v1.complete);
    assert_eq!(store.get_version(r.id, 1).await.unwrap(), None);
    assert_eq!(store.list_versions(r.id).await.unwrap().len(), 1);
    assert_eq!(store.latest_version(r.id).await.unwrap().number, 0);
    assert!(matches!(
        store.version_content(v1.id, 10, 0).await,
        Err(DbError::NotFound(_))
    ));

    let ids = save(&store, &["c", "a", "b"]).await;
    assert_eq!(store.associate(v1.id, &ids).await.unwrap(), 3);
    assert_eq!(store.associate(v1.id, &ids).await.unwrap(), 0);
    assert_eq!(store.count_version(v1.id).await.unwrap(), counts(3, 0, 3));
    let done = store
        .finalize_version(v1.id)
        .await
        .unwrap()
        .expect("a new version");
    assert_eq!(done.id, v1.id);
    assert_eq!(done.number, 1);
    assert!(done.complete);
    assert_eq!(done.counts, counts(3, 0, 3));
    assert_eq!(store.get_repository(r.id).await.unwrap().next_version, 2);
    assert_eq!(store.latest_version(r.id).await.unwrap(), done);
    assert_eq!(
        store.get_version(r.id, 1).await.unwrap(),
        Some(done.clone())
    );
    assert_eq!(keys(&store, v1.id).await, vec!["a", "b", "c"]);
    let page: Vec<String> = store
        .version_content(v1.id, 2, 1)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.natural_key)
        .collect();
    assert_eq!(page, vec!["b", "c"]);
    let content = store.version_content(v1.id, 1, 0).await.unwrap();
    assert_eq!(content[0].pulp_type, T);
    assert_eq!(content[0].repo_key, "a");
    assert_eq!(content[0].data["key"], "a");
    assert!(matches!(
        store.associate(v1.id, &ids).await,
        Err(DbError::Conflict(_))
    ));

    let v2 = sync(&store, &r, &["a", "b", "c", "d"], false)
        .await
        .unwrap();
    assert_eq!(v2.number, 2);
    assert_eq!(v2.counts, counts(1, 0, 4));
    assert_eq!(keys(&store, v2.id).await, vec!["a", "b", "c", "d"]);
    assert_eq!(store.count_version(v1.id).await.unwrap(), counts(3, 0, 3));
    assert_eq!(store.count_version(v2.id).await.unwrap(), counts(1, 0, 4));
    let numbers: Vec<i64> = store
        .list_versions(r.id)
        .await
        .unwrap()
        .iter()
        .map(|v| v.number)
        .collect();
    assert_eq!(numbers, vec![0, 1, 2]);
}

async fn noop_finalize_deletes_version(store: DynStore) {
    let r = repo(&store, "noop").await;
    let v1 = sync(&store, &r, &["a", "b"], true).await.unwrap();
    let v = store.create_incomplete_version(r.id).await.unwrap();
    assert_eq!(v.number, 2);
    let ids = save(&store, &["a", "b"]).await;
    assert_eq!(store.associate(v.id, &ids).await.unwrap(), 0);
    let keep: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(store.unassociate_except(v.id, &keep).await.unwrap(), 0);
    assert_eq!(store.finalize_version(v.id).await.unwrap(), None);
    assert!(matches!(
        store.count_version(v.id).await,
        Err(DbError::NotFound(_))
    ));
    assert_eq!(store.get_version(r.id, 2).await.unwrap(), None);
    assert_eq!(store.latest_version(r.id).await.unwrap(), v1);
    assert_eq!(store.get_repository(r.id).await.unwrap().next_version, 2);
    let next = store.create_incomplete_version(r.id).await.unwrap();
    assert_eq!(next.number, 2);
    // Finalizing twice / a missing version is an error, discarding it is not.
    store.discard_version(next.id).await.unwrap();
    assert!(matches!(
        store.finalize_version(next.id).await,
        Err(DbError::NotFound(_))
    ));
}

async fn discard_restores_membership(store: DynStore) {
    let r = repo(&store, "discard").await;
    let v1 = sync(&store, &r, &["a", "b"], false).await.unwrap();
    let v2 = store.create_incomplete_version(r.id).await.unwrap();
    let ids = save(&store, &["a", "c"]).await;
    assert_eq!(store.associate(v2.id, &ids).await.unwrap(), 1);
    let keep: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(store.unassociate_except(v2.id, &keep).await.unwrap(), 1);
    assert_eq!(store.count_version(v2.id).await.unwrap(), counts(1, 1, 2));
    store.discard_version(v2.id).await.unwrap();
    store.discard_version(v2.id).await.unwrap();
    assert_eq!(store.latest_version(r.id).await.unwrap(), v1);
    assert_eq!(keys(&store, v1.id).await, vec!["a", "b"]);
    assert_eq!(store.get_repository(r.id).await.unwrap().next_version, 2);
    // A complete version is never discarded.
    store.discard_version(v1.id).await.unwrap();
    assert_eq!(store.latest_version(r.id).await.unwrap(), v1);
    assert_eq!(keys(&store, v1.id).await, vec!["a", "b"]);
    let v3 = store.create_incomplete_version(r.id).await.unwrap();
    assert_eq!(v3.number, 2);
    assert_eq!(store.count_version(v3.id).await.unwrap(), counts(0, 0, 2));
}

async fn replacement_by_repo_key(store: DynStore) {
    let r = repo(&store, "replace").await;
    let v1 = sync(&store, &r, &["a@1", "b@1"], false).await.unwrap();
    assert_eq!(v1.counts, counts(2, 0, 2));
    let v2 = sync(&store, &r, &["a@2"], false).await.unwrap();
    assert_eq!(v2.counts, counts(1, 1, 2));
    assert_eq!(keys(&store, v2.id).await, vec!["a@2", "b@1"]);
    assert_eq!(keys(&store, v1.id).await, vec!["a@1", "b@1"]);
    // Bringing the old unit back replaces the new one in turn.
    let v3 = sync(&store, &r, &["a@1", "b@1"], false).await.unwrap();
    assert_eq!(v3.counts, counts(1, 1, 2));
    assert_eq!(keys(&store, v3.id).await, vec!["a@1", "b@1"]);
    assert_eq!(keys(&store, v2.id).await, vec!["a@2", "b@1"]);
    // The same repo key in another repository is not touched.
    let other = repo(&store, "replace-other").await;
    let o1 = sync(&store, &other, &["a@2"], false).await.unwrap();
    assert_eq!(o1.counts, counts(1, 0, 1));
    assert_eq!(keys(&store, v3.id).await, vec!["a@1", "b@1"]);
}

async fn two_added_units_with_one_repo_key_conflict(store: DynStore) {
    let r = repo(&store, "dupkey").await;
    let v = store.create_incomplete_version(r.id).await.unwrap();
    let ids = save(&store, &["a@1", "a@2", "b@1"]).await;
    store.associate(v.id, &ids).await.unwrap();
    match store.finalize_version(v.id).await {
        Err(DbError::Conflict(m)) => {
            assert_eq!(m, "two units added with the same repo key file.file \"a\"")
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    // Nothing half-done: the version is still incomplete and can be discarded.
    assert_eq!(store.count_version(v.id).await.unwrap(), counts(3, 0, 3));
    store.discard_version(v.id).await.unwrap();
    assert_eq!(store.latest_version(r.id).await.unwrap().number, 0);

    // Also when an older unit with the key is present.
    sync(&store, &r, &["a@0"], false).await.unwrap();
    let v = store.create_incomplete_version(r.id).await.unwrap();
    let ids = save(&store, &["a@1", "a@2"]).await;
    store.associate(v.id, &ids).await.unwrap();
    assert!(matches!(
        store.finalize_version(v.id).await,
        Err(DbError::Conflict(_))
    ));
    store.discard_version(v.id).await.unwrap();
    let latest = store.latest_version(r.id).await.unwrap();
    assert_eq!(latest.number, 1);
    assert_eq!(keys(&store, latest.id).await, vec!["a@0"]);
}

async fn unassociate_except_mirror(store: DynStore) {
    let r = repo(&store, "mirror").await;
    let v1 = sync(&store, &r, &["a", "b", "c"], false).await.unwrap();
    let v2 = store.create_incomplete_version(r.id).await.unwrap();
    let ids = save(&store, &["a", "d", "e"]).await;
    assert_eq!(store.associate(v2.id, &ids).await.unwrap(), 2);
    // Keep a and d: b and c are closed, e (added by this version) is dropped.
    let keep: HashSet<Uuid> = [ids[0], ids[1]].into_iter().collect();
    assert_eq!(store.unassociate_except(v2.id, &keep).await.unwrap(), 3);
    let v2 = store.finalize_version(v2.id).await.unwrap().unwrap();
    assert_eq!(v2.counts, counts(1, 2, 2));
    assert_eq!(keys(&store, v2.id).await, vec!["a", "d"]);
    assert_eq!(keys(&store, v1.id).await, vec!["a", "b", "c"]);

    // Removed and re-added within one version: the membership is reopened, not duplicated.
    let v3 = store.create_incomplete_version(r.id).await.unwrap();
    assert_eq!(
        store
            .unassociate_except(v3.id, &HashSet::new())
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.associate(v3.id, &ids[..1]).await.unwrap(), 1);
    assert_eq!(store.count_version(v3.id).await.unwrap(), counts(0, 1, 1));
    let v3 = store.finalize_version(v3.id).await.unwrap().unwrap();
    assert_eq!(v3.counts, counts(0, 1, 1));
    assert_eq!(keys(&store, v3.id).await, vec!["a"]);
    assert_eq!(keys(&store, v2.id).await, vec!["a", "d"]);
    assert_eq!(keys(&store, v1.id).await, vec!["a", "b", "c"]);
}

async fn save_content_idempotent_and_concurrent(store: DynStore) {
    let a = unit("a", "a");
    let b = unit("b", "b");
    let first = store
        .save_content(&[new_save(&a), new_save(&b), new_save(&a)])
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(first[0], first[2]);
    assert_ne!(first[0], first[1]);
    let second = store
        .save_content(&[new_save(&b), new_save(&a)])
        .await
        .unwrap();
    assert_eq!(second, vec![first[1], first[0]]);
    let existing = ContentToSave {
        existing_id: Some(first[0]),
        content: a.clone(),
        artifacts: vec![("a".into(), None)],
    };
    assert_eq!(
        store.save_content(&[existing]).await.unwrap(),
        vec![first[0]]
    );
    let found = store
        .find_content(T, &["a".into(), "b".into(), "zz".into(), "a".into()])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert!(store
        .find_content("other.type", &["a".into()])
        .await
        .unwrap()
        .is_empty());
    let cas = store
        .content_artifacts(&[first[0], first[1]])
        .await
        .unwrap();
    assert_eq!(cas.len(), 2);

    // The same new unit saved by two tasks at once: both succeed, with the same id.
    for i in 0..10 {
        let u = unit(&format!("race-{i}"), &format!("race-{i}"));
        let (s1, s2) = (store.clone(), store.clone());
        let (b1, b2) = (vec![new_save(&u)], vec![new_save(&u)]);
        let t1 = tokio::spawn(async move { s1.save_content(&b1).await });
        let t2 = tokio::spawn(async move { s2.save_content(&b2).await });
        let r1 = t1.await.unwrap().unwrap();
        let r2 = t2.await.unwrap().unwrap();
        assert_eq!(r1, r2);
        assert_eq!(store.content_artifacts(&r1).await.unwrap().len(), 1);
    }
}

async fn content_artifact_filled_later(store: DynStore) {
    let u = unit("lazy", "lazy.txt");
    let ids = store
        .save_content(&[ContentToSave {
            existing_id: None,
            content: u.clone(),
            artifacts: vec![("lazy.txt".into(), None)],
        }])
        .await
        .unwrap();
    let cas = store.content_artifacts(&ids).await.unwrap();
    assert_eq!(cas.len(), 1);
    assert_eq!(cas[0].0.artifact_id, None);
    assert!(cas[0].1.is_none());

    let art = store
        .insert_artifacts(&[artifact(7)])
        .await
        .unwrap()
        .remove(0);
    let again = store
        .save_content(&[ContentToSave {
            existing_id: Some(ids[0]),
            content: u.clone(),
            artifacts: vec![
                ("lazy.txt".into(), Some(art.id)),
                ("extra.sig".into(), None),
            ],
        }])
        .await
        .unwrap();
    assert_eq!(again, ids);
    let cas = store.content_artifacts(&ids).await.unwrap();
    assert_eq!(cas.len(), 2);
    let (ca, a) = cas
        .iter()
        .find(|(ca, _)| ca.relative_path == "lazy.txt")
        .unwrap();
    assert_eq!(ca.artifact_id, Some(art.id));
    assert_eq!(a.as_ref(), Some(&art));
    // A later on_demand save does not forget the artifact.
    store
        .save_content(&[ContentToSave {
            existing_id: Some(ids[0]),
            content: u,
            artifacts: vec![("lazy.txt".into(), None)],
        }])
        .await
        .unwrap();
    let cas = store.content_artifacts(&ids).await.unwrap();
    assert!(cas
        .iter()
        .any(|(ca, _)| ca.relative_path == "lazy.txt" && ca.artifact_id == Some(art.id)));
}

async fn remote_artifact_upsert(store: DynStore) {
    let r1 = store
        .create_remote(&Remote::new(T, "r1", "https://one/", Policy::OnDemand))
        .await
        .unwrap();
    let r2 = store
        .create_remote(&Remote::new(T, "r2", "https://two/", Policy::OnDemand))
        .await
        .unwrap();
    let ids = save(&store, &["f"]).await;
    let ca = store.content_artifacts(&ids).await.unwrap().remove(0).0;
    let ra = |remote: Uuid, url: &str, size: Option<u64>| NewRemoteArtifact {
        content_id: ids[0],
        relative_path: "f".into(),
        remote_id: remote,
        url: url.into(),
        size,
        sha256: None,
        other: OtherDigests::default(),
    };
    store
        .save_remote_artifacts(&[ra(r1.id, "https://one/f", None)])
        .await
        .unwrap();
    let got = store.remote_artifacts(ca.id).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].url, "https://one/f");
    assert_eq!(got[0].content_artifact_id, ca.id);
    let first_id = got[0].id;

    let mut moved = ra(r1.id, "https://one/moved/f", Some(12));
    moved.sha256 = Some(sha(12));
    moved.other.sha512 = Some("ab".repeat(64));
    store.save_remote_artifacts(&[moved.clone()]).await.unwrap();
    store.save_remote_artifacts(&[moved.clone()]).await.unwrap();
    let got = store.remote_artifacts(ca.id).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, first_id);
    assert_eq!(got[0].url, "https://one/moved/f");
    assert_eq!(got[0].size, Some(12));
    assert_eq!(got[0].sha256, Some(sha(12)));
    assert_eq!(got[0].other, moved.other);

    store
        .save_remote_artifacts(&[ra(r2.id, "https://two/f", None)])
        .await
        .unwrap();
    assert_eq!(store.remote_artifacts(ca.id).await.unwrap().len(), 2);

    let mut missing = ra(r1.id, "https://one/g", None);
    missing.relative_path = "g".into();
    match store.save_remote_artifacts(&[missing]).await {
        Err(DbError::NotFound(m)) => assert!(m.contains("\"g\""), "{m}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

async fn insert_artifacts_returns_existing(store: DynStore) {
    let first = store
        .insert_artifacts(&[artifact(1), artifact(2), artifact(1)])
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let one = first.iter().find(|a| a.sha256 == sha(1)).unwrap().clone();
    assert_eq!(one.size, 1);
    assert_eq!(one.file, artifact(1).file);

    let mut dup = artifact(1);
    dup.file = "somewhere/else".into();
    let second = store.insert_artifacts(&[artifact(3), dup]).await.unwrap();
    assert_eq!(second.len(), 2);
    let again = second.iter().find(|a| a.sha256 == sha(1)).unwrap();
    assert_eq!(again, &one);

    let found = store
        .find_artifacts_by_sha256(&[sha(1), sha(3), sha(99)])
        .await
        .unwrap();
    let mut shas: Vec<String> = found.into_iter().map(|a| a.sha256).collect();
    shas.sort();
    assert_eq!(shas, vec![sha(1), sha(3)]);
    assert!(store.insert_artifacts(&[]).await.unwrap().is_empty());
    assert!(store
        .find_artifacts_by_sha256(&[])
        .await
        .unwrap()
        .is_empty());
}

async fn older_version_content_by_range_rule(store: DynStore) {
    let r = repo(&store, "history").await;
    let v1 = sync(&store, &r, &["a", "b@1"], true).await.unwrap();
    let v2 = sync(&store, &r, &["b@1", "c"], true).await.unwrap();
    let v3 = sync(&store, &r, &["b@2", "c", "d"], false).await.unwrap();
    let v4 = sync(&store, &r, &["a"], true).await.unwrap();
    assert_eq!(v2.counts, counts(1, 1, 2));
    assert_eq!(v3.counts, counts(2, 1, 3));
    assert_eq!(v4.counts, counts(1, 3, 1));
    assert_eq!(keys(&store, v1.id).await, vec!["a", "b@1"]);
    assert_eq!(keys(&store, v2.id).await, vec!["b@1", "c"]);
    assert_eq!(keys(&store, v3.id).await, vec!["b@2", "c", "d"]);
    assert_eq!(keys(&store, v4.id).await, vec!["a"]);
    for v in [&v1, &v2, &v3, &v4] {
        assert_eq!(store.count_version(v.id).await.unwrap(), v.counts);
    }
    // An incomplete version in progress does not change what older versions hold.
    let v5 = store.create_incomplete_version(r.id).await.unwrap();
    store
        .unassociate_except(v5.id, &HashSet::new())
        .await
        .unwrap();
    let ids = save(&store, &["e"]).await;
    store.associate(v5.id, &ids).await.unwrap();
    assert_eq!(keys(&store, v4.id).await, vec!["a"]);
    assert_eq!(store.count_version(v4.id).await.unwrap(), v4.counts);
    assert_eq!(keys(&store, v3.id).await, vec!["b@2", "c", "d"]);
}

async fn leftover_incomplete_version_discarded(store: DynStore) {
    let r = repo(&store, "crash").await;
    let v1 = sync(&store, &r, &["a"], false).await.unwrap();
    let crashed = store.create_incomplete_version(r.id).await.unwrap();
    let ids = save(&store, &["b"]).await;
    store.associate(crashed.id, &ids).await.unwrap();
    store
        .unassociate_except(crashed.id, &ids.iter().copied().collect())
        .await
        .unwrap();
    // The sync died here; the next one starts over.
    let fresh = store.create_incomplete_version(r.id).await.unwrap();
    assert_ne!(fresh.id, crashed.id);
    assert_eq!(fresh.number, crashed.number);
    assert!(matches!(
        store.count_version(crashed.id).await,
        Err(DbError::NotFound(_))
    ));
    assert_eq!(
        store.count_version(fresh.id).await.unwrap(),
        counts(0, 0, 1)
    );
    assert_eq!(keys(&store, v1.id).await, vec!["a"]);
    assert_eq!(store.finalize_version(fresh.id).await.unwrap(), None);
    assert_eq!(store.latest_version(r.id).await.unwrap(), v1);
}

async fn large_batches(store: DynStore) {
    const N: usize = 1_200;
    let arts: Vec<NewArtifact> = (0..N).map(artifact).collect();
    let saved = store.insert_artifacts(&arts).await.unwrap();
    assert_eq!(saved.len(), N);
    let shas: Vec<String> = arts.iter().map(|a| a.sha256.clone()).collect();
    assert_eq!(
        store.find_artifacts_by_sha256(&shas).await.unwrap().len(),
        N
    );
    let by_sha: std::collections::HashMap<&str, Uuid> =
        saved.iter().map(|a| (a.sha256.as_str(), a.id)).collect();

    let units: Vec<UnsavedContent> = (0..N)
        .map(|i| unit(&format!("u{i:05}"), &format!("u{i:05}")))
        .collect();
    let batch: Vec<ContentToSave> = units
        .iter()
        .zip(&arts)
        .map(|(u, a)| ContentToSave {
            existing_id: None,
            content: u.clone(),
            artifacts: vec![(u.repo_key.clone(), Some(by_sha[a.sha256.as_str()]))],
        })
        .collect();
    let ids = store.save_content(&batch).await.unwrap();
    assert_eq!(ids.len(), N);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), N);
    assert_eq!(store.save_content(&batch).await.unwrap(), ids);
    let nks: Vec<String> = units.iter().map(|u| u.natural_key.clone()).collect();
    assert_eq!(store.find_content(T, &nks).await.unwrap().len(), N);
    let cas = store.content_artifacts(&ids).await.unwrap();
    assert_eq!(cas.len(), N);
    assert!(cas.iter().all(|(_, a)| a.is_some()));

    let remote = store
        .create_remote(&Remote::new(T, "big", "https://big/", Policy::Immediate))
        .await
        .unwrap();
    let ras: Vec<NewRemoteArtifact> = units
        .iter()
        .zip(&ids)
        .map(|(u, id)| NewRemoteArtifact {
            content_id: *id,
            relative_path: u.repo_key.clone(),
            remote_id: remote.id,
            url: format!("https://big/{}", u.repo_key),
            size: Some(1),
            sha256: None,
            other: OtherDigests::default(),
        })
        .collect();
    store.save_remote_artifacts(&ras).await.unwrap();
    store.save_remote_artifacts(&ras).await.unwrap();
    assert_eq!(store.remote_artifacts(cas[0].0.id).await.unwrap().len(), 1);

    let r = repo(&store, "big").await;
    let v = store.create_incomplete_version(r.id).await.unwrap();
    assert_eq!(store.associate(v.id, &ids).await.unwrap(), N as u64);
    let v = store.finalize_version(v.id).await.unwrap().unwrap();
    assert_eq!(v.counts, counts(N as u64, 0, N as u64));
    assert_eq!(keys(&store, v.id).await.len(), N);

    let v2 = store.create_incomplete_version(r.id).await.unwrap();
    let keep: HashSet<Uuid> = ids.iter().step_by(2).copied().collect();
    assert_eq!(
        store.unassociate_except(v2.id, &keep).await.unwrap(),
        (N / 2) as u64
    );
    let v2 = store.finalize_version(v2.id).await.unwrap().unwrap();
    assert_eq!(v2.counts, counts(0, (N / 2) as u64, (N / 2) as u64));
    assert_eq!(keys(&store, v.id).await.len(), N);
}

/// Not a benchmark (debug build, shared machine): prints how long a 10,000-unit sync and a
/// no-op re-sync take through the store, and checks their results.
async fn timing_10k(store: DynStore) {
    const N: usize = 10_000;
    let backend = store.backend();
    let r = repo(&store, "timing").await;
    let units: Vec<UnsavedContent> = (0..N)
        .map(|i| unit(&format!("t{i:06}"), &format!("t{i:06}")))
        .collect();
    let arts: Vec<NewArtifact> = (0..N).map(|i| artifact(1_000_000 + i)).collect();
    let remote = store
        .create_remote(&Remote::new(T, "timing", "https://t/", Policy::Immediate))
        .await
        .unwrap();

    let run = |first: bool| {
        let store = store.clone();
        let units = units.clone();
        let arts = arts.clone();
        async move {
            let start = Instant::now();
            let v = store.create_incomplete_version(r.id).await.unwrap();
            let mut ids = Vec::with_capacity(N);
            for (chunk, achunk) in units.chunks(500).zip(arts.chunks(500)) {
                let nks: Vec<String> = chunk.iter().map(|u| u.natural_key.clone()).collect();
                let existing = store.find_content(T, &nks).await.unwrap();
                let saved = if existing.len() == chunk.len() {
                    Vec::new()
                } else {
                    store.insert_artifacts(achunk).await.unwrap()
                };
                let known: std::collections::HashMap<&str, Uuid> = existing
                    .iter()
                    .map(|c| (c.natural_key.as_str(), c.id))
                    .collect();
                let batch: Vec<ContentToSave> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, u)| ContentToSave {
                        existing_id: known.get(u.natural_key.as_str()).copied(),
                        content: u.clone(),
                        artifacts: vec![(u.repo_key.clone(), saved.get(i).map(|a| a.id))],
                    })
                    .collect();
                let chunk_ids = store.save_content(&batch).await.unwrap();
                let ras: Vec<NewRemoteArtifact> = chunk
                    .iter()
                    .zip(&chunk_ids)
                    .map(|(u, id)| NewRemoteArtifact {
                        content_id: *id,
                        relative_path: u.repo_key.clone(),
                        remote_id: remote.id,
                        url: format!("https://t/{}", u.repo_key),
                        size: None,
                        sha256: None,
                        other: OtherDigests::default(),
                    })
                    .collect();
                store.save_remote_artifacts(&ras).await.unwrap();
                store.associate(v.id, &chunk_ids).await.unwrap();
                ids.extend(chunk_ids);
            }
            let keep: HashSet<Uuid> = ids.into_iter().collect();
            store.unassociate_except(v.id, &keep).await.unwrap();
            let done = store.finalize_version(v.id).await.unwrap();
            eprintln!(
                "{backend}: {} sync of {N} units through the store: {:?}",
                if first { "first" } else { "no-op" },
                start.elapsed()
            );
            done
        }
    };
    let v1 = run(true).await.expect("first sync makes a version");
    assert_eq!(v1.counts, counts(N as u64, 0, N as u64));
    assert_eq!(run(false).await, None);
}

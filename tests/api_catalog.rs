//! The catalog half of the REST API against a real server on both backends: remotes and
//! repositories (CRUD, validation, secrets), sync from a real fixture server, modify, versions,
//! content lists, task reservations and cancellation.
//!
//! Task states are read through the store (opened from the test server's settings) and
//! cancellation goes through `TaskStore::request_cancel`, so these tests depend only on the
//! catalog endpoints.

mod common;

use std::path::Path;
use std::time::Duration;

use common::app::{backends, TestApp};
use common::server::{write_file_repo, FixtureServer};
use pulp_rs::db::DynStore;
use pulp_rs::models::{Task, TaskState};
use serde_json::{json, Value};
use uuid::Uuid;

const REMOTES: &str = "/pulp/api/v3/remotes/file/file/";
const REPOS: &str = "/pulp/api/v3/repositories/file/file/";
const CONTENT: &str = "/pulp/api/v3/content/file/files/";

async fn store_of(app: &TestApp) -> DynStore {
    pulp_rs::db::connect(&app.settings.database_url())
        .await
        .expect("open the test server's store")
}

fn task_id(answer: &Value) -> Uuid {
    let href = answer["task"].as_str().expect("a task href");
    let id = href.trim_end_matches('/').rsplit('/').next().unwrap();
    Uuid::parse_str(id).expect("task uuid")
}

/// Waits until the task is final and returns it.
async fn wait(store: &DynStore, answer: &Value) -> Task {
    let id = task_id(answer);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let t = store.get_task(id).await.expect("task row");
        if t.state.is_final() {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task still {}: {t:?}",
            t.state
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Dispatches by POST/PATCH/PUT/DELETE answer (must be 202), waits, and expects `completed`.
async fn completed(store: &DynStore, (status, body): (u16, Value)) -> Task {
    assert_eq!(status, 202, "{body}");
    let t = wait(store, &body).await;
    assert_eq!(t.state, TaskState::Completed, "{t:?}");
    t
}

fn files(n: usize, tag: &str) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("dir/f{i}.txt"),
                format!("{tag} file {i}").into_bytes(),
            )
        })
        .collect()
}

fn write_repo(dir: &Path, files: &[(String, Vec<u8>)]) {
    let borrowed: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    write_file_repo(dir, &borrowed);
}

async fn create_remote(app: &TestApp, name: &str, url: &str) -> Value {
    let (status, body) = app.post(REMOTES, json!({"name": name, "url": url})).await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn create_repo(app: &TestApp, name: &str, remote: Option<&str>) -> Value {
    let (status, body) = app
        .post(REPOS, json!({"name": name, "remote": remote}))
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

fn href(v: &Value) -> String {
    v["pulp_href"].as_str().expect("pulp_href").to_string()
}

#[tokio::test]
async fn remotes_crud_validation_and_secrets() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let store = store_of(&app).await;
        let (status, r) = app
            .post(
                REMOTES,
                json!({"name": "r1", "url": "http://example.test/PULP_MANIFEST",
                       "password": "s3cret-pass", "client_key": "KEYDATA", "username": "u",
                       "policy": "on_demand", "pulp_labels": {"env": "prod"},
                       "download_concurrency": 3, "headers": [{"X-A": "1"}]}),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {r}");
        let text = r.to_string();
        assert!(
            !text.contains("s3cret-pass") && !text.contains("KEYDATA"),
            "{text}"
        );
        assert!(r.get("password").is_none() && r.get("username").is_none());
        assert_eq!(r["policy"], "on_demand");
        assert_eq!(r["download_concurrency"], 3);
        assert_eq!(r["headers"], json!([{"X-A": "1"}]));
        assert_eq!(r["tls_validation"], true);
        assert!(r["prn"]
            .as_str()
            .unwrap()
            .starts_with("prn:file.fileremote:"));
        let hidden = r["hidden_fields"].as_array().unwrap();
        let is_set = |n: &str| hidden.iter().find(|h| h["name"] == n).unwrap()["is_set"].clone();
        assert_eq!(is_set("password"), true);
        assert_eq!(is_set("proxy_password"), false);
        let r1 = href(&r);

        // Validation: field by field.
        let (status, e) = app.post(REMOTES, json!({"name": "r2"})).await;
        assert_eq!(
            (status, &e),
            (400, &json!({"url": ["This field is required."]}))
        );
        let (status, e) = app
            .post(
                REMOTES,
                json!({"name": "r2", "url": "http://x/", "download_concurrency": "many",
                                  "policy": "sometimes", "colour": "red"}),
            )
            .await;
        assert_eq!(status, 400, "{e}");
        assert!(e["download_concurrency"].is_array(), "{e}");
        assert_eq!(e["policy"], json!(["\"sometimes\" is not a valid choice."]));
        assert_eq!(e["colour"], json!(["Unexpected field."]));
        let (status, e) = app
            .post(REMOTES, json!({"name": "r1", "url": "http://x/"}))
            .await;
        assert_eq!(
            (status, &e),
            (400, &json!({"name": ["This field must be unique."]}))
        );

        // Read, 404, list filters.
        let (status, got) = app.get(&r1).await;
        assert_eq!((status, &got), (200, &r));
        let (status, e) = app.get(&format!("{REMOTES}{}/", Uuid::now_v7())).await;
        assert_eq!(status, 404);
        assert!(e["detail"].is_string(), "{e}");
        create_remote(&app, "other", "http://example.test/b/PULP_MANIFEST").await;
        let (_, l) = app.get(&format!("{REMOTES}?name__icontains=R1")).await;
        assert_eq!(l["count"], 1, "{l}");
        let (_, l) = app
            .get(&format!("{REMOTES}?pulp_label_select=env=prod"))
            .await;
        assert_eq!(l["count"], 1, "{l}");
        let (_, l) = app.get(&format!("{REMOTES}?limit=1&fields=name")).await;
        assert_eq!(l["count"], 2);
        assert_eq!(l["results"][0], json!({"name": "other"}));
        assert!(l["next"].is_string());
        let (_, l) = app.get("/pulp/api/v3/remotes/").await;
        assert_eq!(l["count"], 2);
        assert_eq!(l["results"][0]["pulp_type"], "file.file");

        // Update and partial update are tasks; a bad body is a 400 before any task.
        let (status, e) = app.patch(&r1, json!({"policy": "nope"})).await;
        assert_eq!(status, 400, "{e}");
        completed(
            &store,
            app.patch(
                &r1,
                json!({"url": "http://example.test/c/PULP_MANIFEST", "password": null}),
            )
            .await,
        )
        .await;
        let (_, got) = app.get(&r1).await;
        assert_eq!(got["url"], "http://example.test/c/PULP_MANIFEST");
        assert_eq!(got["policy"], "on_demand", "PATCH keeps other fields");
        let hidden = got["hidden_fields"].as_array().unwrap();
        assert_eq!(
            hidden.iter().find(|h| h["name"] == "password").unwrap()["is_set"],
            false
        );
        completed(
            &store,
            app.put(
                &r1,
                json!({"name": "r1-renamed", "url": "http://example.test/d/"}),
            )
            .await,
        )
        .await;
        let (_, got) = app.get(&r1).await;
        assert_eq!(got["name"], "r1-renamed");
        assert_eq!(
            got["policy"], "immediate",
            "PUT resets what it does not name"
        );
        assert_eq!(got["pulp_labels"], json!({}));
        completed(&store, app.delete(&r1).await).await;
        let (status, _) = app.get(&r1).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

#[tokio::test]
async fn repositories_crud() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let store = store_of(&app).await;
        let remote = create_remote(&app, "rem", "http://example.test/PULP_MANIFEST").await;
        let repo = create_repo(&app, "repo1", Some(&href(&remote))).await;
        assert_eq!(repo["manifest"], "PULP_MANIFEST");
        assert_eq!(repo["autopublish"], false);
        assert_eq!(repo["remote"], remote["pulp_href"]);
        assert_eq!(
            repo["latest_version_href"],
            format!("{}versions/0/", href(&repo))
        );
        assert_eq!(repo["versions_href"], format!("{}versions/", href(&repo)));
        let (status, e) = app
            .post(
                REPOS,
                json!({"name": "repo2", "remote": format!("{REMOTES}{}/", Uuid::now_v7())}),
            )
            .await;
        assert_eq!(status, 400, "{e}");
        assert!(e["remote"].is_array());
        let (status, e) = app
            .post(REPOS, json!({"name": "repo2", "autopublish": "yes"}))
            .await;
        assert_eq!(status, 400, "{e}");
        assert!(e["autopublish"].is_array());
        let (status, e) = app.post(REPOS, json!({"name": "repo1"})).await;
        assert_eq!(
            (status, &e),
            (400, &json!({"name": ["This field must be unique."]}))
        );
        let (status, e) = app.post(REPOS, json!({"description": "no name"})).await;
        assert_eq!(
            (status, &e),
            (400, &json!({"name": ["This field is required."]}))
        );
        create_repo(&app, "repo2", None).await;
        let (_, l) = app.get(&format!("{REPOS}?name=repo2")).await;
        assert_eq!(l["count"], 1);
        let (_, l) = app.get("/pulp/api/v3/repositories/").await;
        assert_eq!(l["count"], 2);

        completed(
            &store,
            app.patch(
                &href(&repo),
                json!({"description": "d", "manifest": "OTHER", "remote": null}),
            )
            .await,
        )
        .await;
        let (_, got) = app.get(&href(&repo)).await;
        assert_eq!(got["description"], "d");
        assert_eq!(got["manifest"], "OTHER");
        assert_eq!(got["remote"], Value::Null);
        assert_eq!(got["autopublish"], false);
        completed(&store, app.delete(&href(&repo)).await).await;
        let (status, e) = app.get(&href(&repo)).await;
        assert_eq!(status, 404, "{e}");
        app.stop().await;
    }
}

async fn versions(app: &TestApp, repo: &str) -> Vec<Value> {
    let (status, l) = app.get(&format!("{repo}versions/")).await;
    assert_eq!(status, 200, "{l}");
    l["results"].as_array().unwrap().clone()
}

async fn content_in(app: &TestApp, filter: &str, version: &str) -> Vec<String> {
    let (status, l) = app.get(&format!("{CONTENT}?{filter}={version}")).await;
    assert_eq!(status, 200, "{l}");
    let mut paths: Vec<String> = l["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["relative_path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn sync_modify_and_versions() {
    for backend in backends().await {
        let upstream = tempfile::tempdir().unwrap();
        let mut fx = files(5, "v1");
        write_repo(upstream.path(), &fx);
        let server = FixtureServer::start(upstream.path()).await;
        let mut app = TestApp::start(backend, 1).await;
        let store = store_of(&app).await;
        let remote = create_remote(&app, "rem", &server.url("PULP_MANIFEST")).await;
        let repo = href(&create_repo(&app, "repo", None).await);

        let (status, e) = app.post(&format!("{repo}sync/"), json!({})).await;
        assert_eq!(status, 400, "{e}");
        assert_eq!(
            e,
            json!({"remote": ["This field is required since a remote is not set on the repository."]})
        );

        let t = completed(
            &store,
            app.post(&format!("{repo}sync/"), json!({"remote": href(&remote)}))
                .await,
        )
        .await;
        let v1 = format!("{repo}versions/1/");
        assert_eq!(t.created_resources, vec![v1.clone()]);
        let codes: Vec<&str> = t.progress_reports.iter().map(|r| r.code.as_str()).collect();
        assert!(
            codes.contains(&"sync.downloading.artifacts") && codes.contains(&"associating.content"),
            "{codes:?}"
        );
        let (status, v) = app.get(&v1).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["number"], 1);
        assert_eq!(v["repository"], repo);
        assert_eq!(
            v["content_summary"]["present"]["file.file"]["count"], 5,
            "{v}"
        );
        assert_eq!(
            v["content_summary"]["added"]["file.file"]["count"], 5,
            "{v}"
        );
        assert_eq!(v["content_summary"]["removed"], json!({}));
        let present_href = v["content_summary"]["present"]["file.file"]["href"]
            .as_str()
            .unwrap();
        let (_, l) = app.get(present_href).await;
        assert_eq!(l["count"], 5, "{l}");
        assert!(l["results"][0]["artifact"]
            .as_str()
            .unwrap()
            .contains("/artifacts/"));
        assert_eq!(content_in(&app, "repository_version", &v1).await.len(), 5);
        let (_, got) = app.get(&repo).await;
        assert_eq!(got["latest_version_href"], v1);
        let sha = common::server::sha256_hex(&fx[1].1);
        let (_, l) = app.get(&format!("{CONTENT}?sha256={sha}")).await;
        assert_eq!(l["count"], 1, "{l}");
        assert_eq!(l["results"][0]["relative_path"], fx[1].0);
        assert_eq!(l["results"][0]["sha256"], sha);
        let unit1 = href(&l["results"][0]);
        let (status, one) = app.get(&unit1).await;
        assert_eq!((status, &one), (200, &l["results"][0]));
        let (_, l) = app.get(&format!("{CONTENT}?pulp_label_select=x")).await;
        assert_eq!(l["count"], 0, "{l}");
        let (status, e) = app.get(&format!("{CONTENT}?colour=red")).await;
        assert_eq!(status, 400, "{e}");

        // A no-op re-sync completes without a version.
        let t = completed(
            &store,
            app.post(&format!("{repo}sync/"), json!({"remote": href(&remote)}))
                .await,
        )
        .await;
        assert!(t.created_resources.is_empty(), "{t:?}");
        assert_eq!(versions(&app, &repo).await.len(), 2);

        // Mirror sync drops a unit no longer in the manifest; the repository's remote is used.
        completed(
            &store,
            app.patch(&repo, json!({"remote": href(&remote)})).await,
        )
        .await;
        let dropped = fx.remove(0);
        std::fs::remove_file(upstream.path().join("PULP_MANIFEST")).unwrap();
        write_repo(upstream.path(), &fx);
        completed(
            &store,
            app.post(&format!("{repo}sync/"), json!({"mirror": true}))
                .await,
        )
        .await;
        let v2 = format!("{repo}versions/2/");
        assert_eq!(content_in(&app, "repository_version", &v2).await.len(), 4);
        assert_eq!(
            content_in(&app, "repository_version_removed", &v2).await,
            vec![dropped.0.clone()]
        );
        let vs = versions(&app, &repo).await;
        assert_eq!(
            vs.iter()
                .map(|v| v["number"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![2, 1, 0]
        );

        // Modify: remove one unit, then add the dropped one back.
        let (_, l) = app
            .get(&format!("{CONTENT}?relative_path={}", fx[0].0))
            .await;
        assert_eq!(l["count"], 1, "{l}");
        let unit = href(&l["results"][0]);
        let (_, l) = app
            .get(&format!("{CONTENT}?repository_version_removed={v2}"))
            .await;
        let old = href(&l["results"][0]);
        let t = completed(
            &store,
            app.post(
                &format!("{repo}modify/"),
                json!({"remove_content_units": [unit]}),
            )
            .await,
        )
        .await;
        assert_eq!(t.created_resources, vec![format!("{repo}versions/3/")]);
        let t = completed(
            &store,
            app.post(
                &format!("{repo}modify/"),
                json!({"add_content_units": [old]}),
            )
            .await,
        )
        .await;
        let v4 = format!("{repo}versions/4/");
        assert_eq!(t.created_resources, vec![v4.clone()]);
        let v4_paths = content_in(&app, "repository_version", &v4).await;
        assert_eq!(v4_paths.len(), 4);
        assert!(v4_paths.contains(&dropped.0) && !v4_paths.contains(&fx[0].0));
        let bogus = format!("{CONTENT}{}/", Uuid::now_v7());
        let (status, e) = app
            .post(
                &format!("{repo}modify/"),
                json!({"add_content_units": [bogus]}),
            )
            .await;
        assert_eq!(status, 400, "{e}");
        assert!(e["add_content_units"].is_array(), "{e}");
        // Base version 1 with everything removed: an empty version 5.
        completed(
            &store,
            app.post(
                &format!("{repo}modify/"),
                json!({"base_version": v1, "remove_content_units": ["*"]}),
            )
            .await,
        )
        .await;
        let (_, v5) = app.get(&format!("{repo}versions/5/")).await;
        assert_eq!(v5["content_summary"]["present"], json!({}), "{v5}");

        // Deleting version 3 folds its removal into version 4: version 4's content is unchanged.
        completed(&store, app.delete(&format!("{repo}versions/3/")).await).await;
        let (status, _) = app.get(&format!("{repo}versions/3/")).await;
        assert_eq!(status, 404);
        assert_eq!(content_in(&app, "repository_version", &v4).await, v4_paths);
        let (_, v4v) = app.get(&v4).await;
        assert_eq!(
            v4v["content_summary"]["present"]["file.file"]["count"], 4,
            "{v4v}"
        );
        // Deleting the latest version makes the previous one latest.
        completed(&store, app.delete(&format!("{repo}versions/5/")).await).await;
        let (_, got) = app.get(&repo).await;
        assert_eq!(got["latest_version_href"], v4);
        assert_eq!(content_in(&app, "repository_version", &v4).await, v4_paths);
        let (_, l) = app
            .get(&format!("{repo}versions/?content__in={unit1}"))
            .await;
        let numbers: Vec<i64> = l["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["number"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, vec![2, 1], "{l}: modify removed this unit in 3");
        let (_, l) = app
            .get(&format!("{repo}versions/?number__gte=2&ordering=number"))
            .await;
        let numbers: Vec<i64> = l["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["number"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, vec![2, 4]);

        // Removed by one version and added back by the next: deleting the first leaves the
        // second with no change at all.
        completed(
            &store,
            app.post(
                &format!("{repo}modify/"),
                json!({"remove_content_units": [old]}),
            )
            .await,
        )
        .await;
        completed(
            &store,
            app.post(
                &format!("{repo}modify/"),
                json!({"add_content_units": [old]}),
            )
            .await,
        )
        .await;
        let v7 = format!("{repo}versions/7/");
        completed(&store, app.delete(&format!("{repo}versions/6/")).await).await;
        let (_, v7v) = app.get(&v7).await;
        assert_eq!(v7v["content_summary"]["added"], json!({}), "{v7v}");
        assert_eq!(v7v["content_summary"]["removed"], json!({}), "{v7v}");
        assert_eq!(content_in(&app, "repository_version", &v7).await, v4_paths);
        assert_eq!(content_in(&app, "repository_version", &v4).await, v4_paths);

        // retain_repo_versions keeps only the newest versions.
        let kept = href(&create_repo(&app, "kept", Some(&href(&remote))).await);
        completed(
            &store,
            app.patch(&kept, json!({"retain_repo_versions": 1})).await,
        )
        .await;
        completed(&store, app.post(&format!("{kept}sync/"), json!({})).await).await;
        let numbers: Vec<i64> = versions(&app, &kept)
            .await
            .iter()
            .map(|v| v["number"].as_i64().unwrap())
            .collect();
        assert_eq!(numbers, vec![1]);
        // The last remaining version cannot be deleted: the task fails, the version stays.
        let (status, a) = app.delete(&format!("{kept}versions/1/")).await;
        assert_eq!(status, 202);
        let t = wait(&store, &a).await;
        assert_eq!(t.state, TaskState::Failed, "{t:?}");
        assert_eq!(
            t.error.as_ref().unwrap()["description"],
            "Attempt to delete the last remaining version."
        );
        assert_eq!(versions(&app, &kept).await.len(), 1);

        // A failing upstream fails the task with a message and makes no version.
        let broken = create_remote(&app, "broken", &server.url("missing/PULP_MANIFEST")).await;
        let (status, a) = app
            .post(&format!("{repo}sync/"), json!({"remote": href(&broken)}))
            .await;
        assert_eq!(status, 202);
        let t = wait(&store, &a).await;
        assert_eq!(t.state, TaskState::Failed, "{t:?}");
        let msg = t.error.as_ref().unwrap()["description"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(msg.contains("404"), "{msg}");
        let (_, got) = app.get(&repo).await;
        assert_eq!(got["latest_version_href"], v7);
        app.stop().await;
        drop(dropped);
    }
}

fn overlap(a: &Task, b: &Task) -> bool {
    let (a0, a1) = (a.started_at.unwrap(), a.finished_at.unwrap());
    let (b0, b1) = (b.started_at.unwrap(), b.finished_at.unwrap());
    a0 < b1 && b0 < a1
}

#[tokio::test]
async fn syncs_serialize_per_repository_and_cancel() {
    for backend in backends().await {
        let upstream = tempfile::tempdir().unwrap();
        write_repo(upstream.path(), &files(4, "slow"));
        let server = FixtureServer::start(upstream.path()).await;
        server.set_delay_all(Some(Duration::from_millis(400)));
        let mut app = TestApp::start(backend, 2).await;
        let store = store_of(&app).await;
        let remote = href(&create_remote(&app, "rem", &server.url("PULP_MANIFEST")).await);
        let a = href(&create_repo(&app, "a", Some(&remote)).await);
        let b = href(&create_repo(&app, "b", Some(&remote)).await);

        // Two syncs of one repository never overlap (the second is a no-op or a new version).
        let (s1, t1) = app.post(&format!("{a}sync/"), json!({})).await;
        let (s2, t2) = app.post(&format!("{a}sync/"), json!({})).await;
        assert_eq!((s1, s2), (202, 202));
        let (t1, t2) = (wait(&store, &t1).await, wait(&store, &t2).await);
        assert_eq!(
            (t1.state, t2.state),
            (TaskState::Completed, TaskState::Completed)
        );
        assert!(!overlap(&t1, &t2), "{t1:?} {t2:?}");

        // Syncs of two repositories (sharing the remote) run side by side.
        let other = href(&create_repo(&app, "c", Some(&remote)).await);
        let (_, t3) = app.post(&format!("{b}sync/"), json!({})).await;
        let (_, t4) = app.post(&format!("{other}sync/"), json!({})).await;
        let (t3, t4) = (wait(&store, &t3).await, wait(&store, &t4).await);
        assert_eq!(
            (t3.state, t4.state),
            (TaskState::Completed, TaskState::Completed)
        );
        assert!(overlap(&t3, &t4), "{t3:?} {t4:?}");

        // Cancel mid-sync: the task ends canceled and no version is left behind.
        let fresh = tempfile::tempdir().unwrap();
        write_repo(fresh.path(), &files(3, "cancel"));
        let slow = FixtureServer::start(fresh.path()).await;
        slow.set_delay_all(Some(Duration::from_secs(3)));
        let slow_remote = href(&create_remote(&app, "slow", &slow.url("PULP_MANIFEST")).await);
        let d = href(&create_repo(&app, "d", Some(&slow_remote)).await);
        let (_, answer) = app.post(&format!("{d}sync/"), json!({})).await;
        let id = task_id(&answer);
        loop {
            let t = store.get_task(id).await.unwrap();
            if t.state == TaskState::Running {
                break;
            }
            assert!(!t.state.is_final(), "{t:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        store.request_cancel(id).await.unwrap();
        let t = wait(&store, &answer).await;
        assert_eq!(t.state, TaskState::Canceled, "{t:?}");
        let vs = versions(&app, &d).await;
        assert_eq!(vs.len(), 1, "{vs:?}");
        let (_, got) = app.get(&d).await;
        assert_eq!(got["latest_version_href"], format!("{d}versions/0/"));
        app.stop().await;
    }
}

/// How many tasks exist (a refused update dispatches none).
async fn task_count(app: &TestApp) -> u64 {
    let (status, l) = app.get("/pulp/api/v3/tasks/").await;
    assert_eq!(status, 200, "{l}");
    l["count"].as_u64().unwrap()
}

#[tokio::test]
async fn remote_urls_and_headers_are_checked_at_create_and_update() {
    const SECRET: &str = "hunter2-s3cret";
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let remote = create_remote(&app, "checked", "http://example.test/PULP_MANIFEST").await;
        let r = href(&remote);

        // Credentials in `url` or `proxy_url`, a username alone included: a 400 under the
        // field, pointing at the write-only fields, never repeating the secret.
        let bad_urls = [
            (
                "url",
                format!("http://user:{SECRET}@example.test/PULP_MANIFEST"),
            ),
            (
                "url",
                format!("https://{SECRET}@example.test/PULP_MANIFEST"),
            ),
            ("url", format!("http://:{SECRET}@example.test/")),
            ("proxy_url", format!("http://user:{SECRET}@proxy.test:3128")),
            ("proxy_url", format!("http://{SECRET}@proxy.test:3128")),
        ];
        for (field, value) in &bad_urls {
            let mut create = json!({"name": "leaky", "url": "http://example.test/"});
            create[*field] = json!(value);
            let mut put = json!({"name": "checked", "url": "http://example.test/"});
            put[*field] = json!(value);
            let answers = [
                ("POST", app.post(REMOTES, create).await),
                ("PATCH", app.patch(&r, json!({ *field: value })).await),
                ("PUT", app.put(&r, put).await),
            ];
            let (user_field, password_field) = if *field == "url" {
                ("username", "password")
            } else {
                ("proxy_username", "proxy_password")
            };
            for (method, (status, e)) in answers {
                assert_eq!(status, 400, "{backend}: {method} {field}: {e}");
                let text = e.to_string();
                assert!(
                    !text.contains(SECRET),
                    "{backend}: {method}: echoed: {text}"
                );
                assert!(!text.contains("user:"), "{backend}: {method}: {text}");
                let msg = e[*field][0].as_str().unwrap_or_else(|| panic!("{e}"));
                assert!(
                    msg.contains(user_field) && msg.contains(password_field),
                    "{backend}: {method}: {msg}"
                );
                assert_eq!(e.as_object().unwrap().len(), 1, "{backend}: {e}");
            }
        }
        // Schemes: http, https and file for `url`; http and https for `proxy_url`.
        for (field, value) in [
            ("url", "ftp://example.test/PULP_MANIFEST"),
            ("url", "gopher://example.test/"),
            ("url", "not a url"),
            ("proxy_url", "socks5://proxy.test:1080"),
            ("proxy_url", "file:///tmp/proxy"),
        ] {
            let (status, e) = app.patch(&r, json!({ field: value })).await;
            assert_eq!(status, 400, "{backend}: {field}={value}: {e}");
            assert!(e[field][0].is_string(), "{backend}: {e}");
        }

        // Headers: names must be header names, values free of CR, LF, NUL and other
        // control characters.
        for headers in [
            json!([{"X-Ok": "1"}, {"X-Injected": "a\r\nX-Evil: 1"}]),
            json!([{"X-Lf": "a\nb"}]),
            json!([{"X-Nul": "a\u{0}b"}]),
            json!([{"X-Esc": "a\u{1b}b"}]),
            json!([{"Bad Name": "v"}]),
            json!([{"X-Colon:": "v"}]),
            json!([{"": "v"}]),
            json!([{"X-A\r\n": "v"}]),
        ] {
            let create = json!({"name": "hdr", "url": "http://example.test/", "headers": headers});
            let put = json!({"name": "checked", "url": "http://example.test/", "headers": headers});
            for (method, (status, e)) in [
                ("POST", app.post(REMOTES, create).await),
                ("PATCH", app.patch(&r, json!({ "headers": headers })).await),
                ("PUT", app.put(&r, put).await),
            ] {
                assert_eq!(status, 400, "{backend}: {method} {headers}: {e}");
                assert!(e["headers"][0].is_string(), "{backend}: {method}: {e}");
                assert!(!e.to_string().contains("X-Evil"), "{backend}: {e}");
            }
        }
        assert_eq!(
            task_count(&app).await,
            0,
            "{backend}: no update was dispatched"
        );
        let (_, l) = app.get(REMOTES).await;
        assert_eq!(l["count"], 1, "{backend}: nothing was created: {l}");

        // What is fine still is: credentials in their fields, file URLs, a tab in a value,
        // an empty proxy URL (no proxy).
        let (status, created) = app
            .post(
                REMOTES,
                json!({"name": "fine", "url": "https://example.test/PULP_MANIFEST",
                       "username": "user", "password": SECRET,
                       "proxy_url": "http://proxy.test:3128", "proxy_username": "pu",
                       "proxy_password": SECRET, "headers": [{"Authorization": "Bearer\tx"}]}),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {created}");
        assert!(!created.to_string().contains(SECRET));
        let (status, created) = app
            .post(
                REMOTES,
                json!({"name": "local", "url": "https://repo.test/PULP_MANIFEST", "proxy_url": ""}),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {created}");
        let (status, answer) = app
            .patch(
                &r,
                json!({"headers": [{"X-Token": "abc"}], "proxy_url": null}),
            )
            .await;
        assert_eq!(status, 202, "{backend}: {answer}");
        app.stop().await;
    }
}

#[tokio::test]
async fn catalog_filters_refuse_malformed_values() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let remote = create_remote(&app, "rem", "http://example.test/PULP_MANIFEST").await;
        create_repo(&app, "with-remote", Some(&href(&remote))).await;
        create_repo(&app, "without-remote", None).await;
        for (path, query, field) in [
            // Not a remote href: it used to match the repositories without a remote.
            (REPOS, "remote=garbage", "remote"),
            (
                REPOS,
                "remote=%2Fpulp%2Fapi%2Fv3%2Fremotes%2Ffile%2Ffile%2Fnot-a-uuid%2F",
                "remote",
            ),
            (CONTENT, "pulp_href__in=garbage", "pulp_href__in"),
            (CONTENT, "repository_version=garbage", "repository_version"),
            (REPOS, "pulp_label_select=%3Dprod", "pulp_label_select"),
            (
                REMOTES,
                "pulp_label_select=!env%3Dprod",
                "pulp_label_select",
            ),
            (
                "/pulp/api/v3/remotes/",
                "pulp_type=file.nothing",
                "pulp_type",
            ),
            (
                "/pulp/api/v3/repositories/",
                "pulp_type=rpm.rpm",
                "pulp_type",
            ),
        ] {
            let (status, e) = app.get(&format!("{path}?{query}")).await;
            assert_eq!(status, 400, "{backend}: {path}?{query}: {e}");
            assert!(e[field][0].is_string(), "{backend}: {path}?{query}: {e}");
        }
        let repo = create_repo(&app, "versions", None).await;
        for query in [
            "pulp_created__gte=yesterday",
            "pulp_created__lte=-0001-01-01",
            "number=two",
            "number__gt=1.5",
            "content=garbage",
        ] {
            let (status, e) = app.get(&format!("{}versions/?{query}", href(&repo))).await;
            assert_eq!(status, 400, "{backend}: versions/?{query}: {e}");
        }
        // Well-formed values filter as before.
        let remote_href: String =
            url::form_urlencoded::byte_serialize(href(&remote).as_bytes()).collect();
        for (path, query, count) in [
            (REPOS, format!("remote={remote_href}"), 1),
            (REPOS, "remote=".to_string(), 3),
            (REPOS, "name__in=false".to_string(), 0),
            (REPOS, "pulp_label_select=env,!team,k~v".to_string(), 0),
            (
                "/pulp/api/v3/remotes/",
                "pulp_type=file.file".to_string(),
                1,
            ),
            (
                CONTENT,
                format!("pulp_href__in={CONTENT}{}/", Uuid::now_v7()),
                0,
            ),
        ] {
            let (status, l) = app.get(&format!("{path}?{query}")).await;
            assert_eq!(status, 200, "{backend}: {path}?{query}: {l}");
            assert_eq!(l["count"], count, "{backend}: {path}?{query}: {l}");
        }
        app.stop().await;
    }
}

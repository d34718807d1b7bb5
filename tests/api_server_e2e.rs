//! The server end to end over real HTTP, on both backends: reservations (two syncs of one
//! repository serialize, syncs of two repositories overlap), cancelling a running sync, and a
//! worker process killed mid-sync (its task fails once another worker notices, its
//! reservations are released, and no incomplete version remains).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::app::{backends, TestApp};
use common::server::{write_file_repo, FixtureServer};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);

/// A fixture of `n` small files served by a FixtureServer.
async fn fixture(n: usize) -> (tempfile::TempDir, FixtureServer) {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                format!("f{i}.txt"),
                format!("file number {i}\n").into_bytes(),
            )
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    write_file_repo(dir.path(), &refs);
    let server = FixtureServer::start(dir.path()).await;
    (dir, server)
}

async fn create_remote(app: &TestApp, name: &str, url: &str) -> String {
    let (s, body) = app
        .post(
            "/pulp/api/v3/remotes/file/file/",
            json!({"name": name, "url": url, "policy": "immediate"}),
        )
        .await;
    assert_eq!(s, 201, "create remote: {body}");
    body["pulp_href"].as_str().unwrap().to_string()
}

async fn create_repo(app: &TestApp, name: &str, remote: &str) -> Value {
    let (s, body) = app
        .post(
            "/pulp/api/v3/repositories/file/file/",
            json!({"name": name, "remote": remote}),
        )
        .await;
    assert_eq!(s, 201, "create repository: {body}");
    body
}

async fn sync(app: &TestApp, repo: &Value) -> String {
    let href = format!("{}sync/", repo["pulp_href"].as_str().unwrap());
    let (s, body) = app.post(&href, json!({})).await;
    assert_eq!(s, 202, "sync: {body}");
    body["task"].as_str().unwrap().to_string()
}

fn time(task: &Value, field: &str) -> DateTime<Utc> {
    task[field]
        .as_str()
        .unwrap_or_else(|| panic!("task has no {field}: {task}"))
        .parse()
        .unwrap()
}

/// Waits until the task is running (and returns it).
async fn wait_running(app: &TestApp, href: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, task) = app.get(href).await;
        match task["state"].as_str() {
            Some("running") => return task,
            Some("waiting") => {}
            other => panic!("task {href} went {other:?} before running: {task}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task never ran: {task}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn versions(app: &TestApp, repo: &Value) -> Vec<i64> {
    let (s, body) = app.get(repo["versions_href"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{body}");
    let mut n: Vec<i64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_i64().unwrap())
        .collect();
    n.sort();
    n
}

fn tmp_files(app: &TestApp) -> Vec<String> {
    walk(&app.settings.data_dir.join("media/tmp"))
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn syncs_of_one_repository_serialize_and_of_two_overlap() {
    for backend in backends().await {
        let (_dir, upstream) = fixture(4).await;
        upstream.set_delay_all(Some(Duration::from_millis(700)));
        let mut app = TestApp::start(backend, 2).await;
        let remote = create_remote(&app, "slow", &upstream.url("/PULP_MANIFEST")).await;
        let a = create_repo(&app, "a", &remote).await;
        let b = create_repo(&app, "b", &remote).await;
        let a1 = sync(&app, &a).await;
        let a2 = sync(&app, &a).await;
        let b1 = sync(&app, &b).await;
        let ta1 = app.wait_task(&a1, WAIT).await;
        let ta2 = app.wait_task(&a2, WAIT).await;
        let tb1 = app.wait_task(&b1, WAIT).await;
        for t in [&ta1, &ta2, &tb1] {
            assert_eq!(t["state"], "completed", "{backend}: {t}");
        }
        // Same repository: strictly one after the other, in dispatch order.
        assert!(
            time(&ta2, "started_at") >= time(&ta1, "finished_at"),
            "{backend}: second sync of a started before the first finished: {ta1} {ta2}"
        );
        // Different repositories sharing a remote: both ran at once on the two workers.
        assert!(
            time(&tb1, "started_at") < time(&ta1, "finished_at")
                && time(&ta1, "started_at") < time(&tb1, "finished_at"),
            "{backend}: syncs of a and b did not overlap: {ta1} {tb1}"
        );
        // The sync reserved the repository exclusively and the remote shared.
        let record: Vec<String> = ta1["reserved_resources_record"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(
            record
                .iter()
                .any(|r| r.contains(a["pulp_href"].as_str().unwrap())),
            "{record:?}"
        );
        assert!(
            record
                .iter()
                .any(|r| r.starts_with("shared:") && r.contains(&remote)),
            "{record:?}"
        );
        assert_eq!(
            versions(&app, &a).await,
            vec![0, 1],
            "{backend}: the re-sync was a no-op"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn cancelling_a_running_sync_leaves_no_version_and_no_temp_files() {
    for backend in backends().await {
        let (_dir, upstream) = fixture(6).await;
        upstream.set_delay_all(Some(Duration::from_secs(30)));
        let mut app = TestApp::start(backend, 1).await;
        let remote = create_remote(&app, "stalled", &upstream.url("/PULP_MANIFEST")).await;
        let repo = create_repo(&app, "r", &remote).await;
        let task = sync(&app, &repo).await;
        wait_running(&app, &task).await;
        // Let the downloads start, then cancel.
        let deadline = tokio::time::Instant::now() + WAIT;
        while upstream.in_flight() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no download started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let asked = tokio::time::Instant::now();
        let (s, body) = app.patch(&task, json!({"state": "canceled"})).await;
        assert_eq!(s, 200, "{backend}: cancel: {body}");
        let done = app.wait_task(&task, WAIT).await;
        assert_eq!(done["state"], "canceled", "{backend}: {done}");
        // The issue asks for about a second; the bound leaves room for a loaded CI machine but
        // not for waiting on the stalled download (30 s) or the worker's abort grace (10 s).
        assert!(
            asked.elapsed() < Duration::from_secs(8),
            "{backend}: the cancel waited for the stalled download ({:?})",
            asked.elapsed()
        );
        assert_eq!(versions(&app, &repo).await, vec![0], "{backend}");
        let (_, r) = app.get(repo["pulp_href"].as_str().unwrap()).await;
        assert!(
            r["latest_version_href"]
                .as_str()
                .unwrap()
                .ends_with("/versions/0/"),
            "{r}"
        );
        assert_eq!(
            tmp_files(&app),
            Vec::<String>::new(),
            "{backend}: temp files left"
        );
        // Cancelling it again answers the canceled task, as pulpcore does (409 is for tasks
        // that ended otherwise).
        let (s, body) = app.patch(&task, json!({"state": "canceled"})).await;
        assert_eq!(
            (s, body["state"].as_str()),
            (200, Some("canceled")),
            "{backend}: {body}"
        );
        app.stop().await;
    }
}

/// A `pulp-rs worker` process with one worker on the test app's database and data directory.
fn worker_process(app: &TestApp, ttl_secs: f64) -> Child {
    worker_processes(app, 1, &[("PULP_WORKER_TTL", ttl_secs)])
}

#[tokio::test]
async fn a_killed_worker_fails_its_task_and_releases_the_repository() {
    for backend in backends().await {
        let (_dir, upstream) = fixture(4).await;
        upstream.set_delay_all(Some(Duration::from_secs(60)));
        // The API and content app in this process; no worker here.
        let mut app = TestApp::start(backend, 0).await;
        let remote = create_remote(&app, "stalled", &upstream.url("/PULP_MANIFEST")).await;
        let repo = create_repo(&app, "r", &remote).await;
        let mut doomed = worker_process(&app, 2.0);
        let task = sync(&app, &repo).await;
        let running = wait_running(&app, &task).await;
        assert!(running["worker"].is_string(), "{running}");
        doomed.kill().expect("kill the worker");
        let _ = doomed.wait();

        // Another worker notices the silence and fails the task.
        let mut survivor = worker_process(&app, 2.0);
        let failed = app.wait_task(&task, WAIT).await;
        assert_eq!(failed["state"], "failed", "{backend}: {failed}");
        let reason = failed["error"]["description"].as_str().unwrap_or_default();
        assert!(
            reason.contains("Worker has gone missing"),
            "{backend}: {failed}"
        );
        // The worker that noticed also removed what the dead one left: its incomplete version
        // and its sync's temp directory (the recovery runs right after the reaping).
        let store = pulp_rs::db::connect(&app.settings.database_url())
            .await
            .expect("store");
        let tmp = app.settings.data_dir.join("media").join("tmp");
        let leftovers = || {
            std::fs::read_dir(&tmp)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .filter(|e| e.file_name().to_string_lossy().starts_with("sync-"))
                        .count()
                })
                .unwrap_or(0)
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        while !store.incomplete_versions().await.expect("list").is_empty() || leftovers() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{backend}: the dead worker's incomplete version or temp directory stayed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The repository is free again: a new sync runs and makes version 1.
        upstream.set_delay_all(None);
        let again = sync(&app, &repo).await;
        let done = app.wait_task(&again, WAIT).await;
        assert_eq!(done["state"], "completed", "{backend}: {done}");
        assert_eq!(versions(&app, &repo).await, vec![0, 1], "{backend}");
        let _ = survivor.kill();
        let _ = survivor.wait();
        app.stop().await;
    }
}

#[tokio::test]
async fn an_autopublish_repository_publishes_each_new_version_in_the_same_task() {
    for backend in backends().await {
        let (_dir, upstream) = fixture(3).await;
        let mut app = TestApp::start(backend, 1).await;
        let remote = create_remote(&app, "auto", &upstream.url("/PULP_MANIFEST")).await;
        let (s, repo) = app
            .post(
                "/pulp/api/v3/repositories/file/file/",
                json!({"name": "auto", "remote": remote, "autopublish": true}),
            )
            .await;
        assert_eq!(s, 201, "{repo}");
        let task = app.wait_task(&sync(&app, &repo).await, WAIT).await;
        assert_eq!(task["state"], "completed", "{backend}: {task}");
        let created: Vec<&str> = task["created_resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            created.iter().any(|h| h.ends_with("/versions/1/")),
            "{created:?}"
        );
        let publication = created
            .iter()
            .find(|h| h.starts_with("/pulp/api/v3/publications/file/file/"))
            .unwrap_or_else(|| panic!("{backend}: no publication in {created:?}"));
        let (_, p) = app.get(publication).await;
        assert!(
            p["repository_version"]
                .as_str()
                .unwrap()
                .ends_with("/versions/1/"),
            "{p}"
        );
        // A distribution of the repository serves the published manifest.
        let (s, d) = app
            .post(
                "/pulp/api/v3/distributions/file/file/",
                json!({"name": "auto", "base_path": "auto", "repository": repo["pulp_href"]}),
            )
            .await;
        assert!(s == 201 || s == 202, "{d}");
        if let Some(t) = d["task"].as_str() {
            app.wait_task(t, WAIT).await;
        }
        let manifest = app
            .client
            .get(format!("{}/pulp/content/auto/PULP_MANIFEST", app.content))
            .send()
            .await
            .unwrap();
        assert_eq!(manifest.status(), 200, "{backend}");
        assert_eq!(
            manifest.text().await.unwrap().lines().count(),
            3,
            "{backend}"
        );
        // Without autopublish, a sync makes no publication.
        let plain = create_repo(&app, "plain", &remote).await;
        let task = app.wait_task(&sync(&app, &plain).await, WAIT).await;
        assert!(
            !task["created_resources"]
                .to_string()
                .contains("/publications/"),
            "{task}"
        );
        app.stop().await;
    }
}

/// A `pulp-rs worker` process with `n` workers on the test app's database and data directory,
/// with these settings (`PULP_*` variables, in seconds).
fn worker_processes(app: &TestApp, n: usize, settings: &[(&str, f64)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulp-rs"));
    cmd.arg("--data-dir")
        .arg(&app.settings.data_dir)
        .args(["worker", "--workers", &n.to_string()])
        .env_remove("PULP_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in settings {
        cmd.env(key, value.to_string());
    }
    if let Some(url) = &app.settings.database_url {
        cmd.arg("--database-url").arg(url);
    }
    cmd.spawn().expect("start pulp-rs worker")
}

/// Three worker processes share one queue: 30 syncs over 10 repositories all finish, no two of
/// one repository overlap in time, unrelated ones do, and more than one process ran them.
#[tokio::test]
async fn worker_processes_share_the_queue_and_keep_reservations() {
    for backend in backends().await {
        let (_dir, upstream) = fixture(3).await;
        upstream.set_delay_all(Some(Duration::from_millis(150)));
        let mut app = TestApp::start(backend, 0).await;
        let mut workers: Vec<Child> = (0..3)
            .map(|_| worker_processes(&app, 1, &[("PULP_SHUTDOWN_GRACE", 5.0)]))
            .collect();
        let remote = create_remote(&app, "shared", &upstream.url("/PULP_MANIFEST")).await;
        let mut repos = Vec::new();
        for i in 0..10 {
            repos.push(create_repo(&app, &format!("r{i}"), &remote).await);
        }
        let mut tasks: Vec<(usize, String)> = Vec::new();
        for _round in 0..3 {
            for (i, repo) in repos.iter().enumerate() {
                tasks.push((i, sync(&app, repo).await));
            }
        }
        let mut done: Vec<(usize, Value)> = Vec::new();
        for (i, href) in &tasks {
            let t = app.wait_task(href, WAIT).await;
            assert_eq!(t["state"], "completed", "{backend}: {t}");
            done.push((*i, t));
        }
        let span = |t: &Value| (time(t, "started_at"), time(t, "finished_at"));
        let mut overlapped = false;
        for (a, (ra, ta)) in done.iter().enumerate() {
            for (rb, tb) in &done[a + 1..] {
                let ((sa, fa), (sb, fb)) = (span(ta), span(tb));
                let overlap = sa < fb && sb < fa;
                if ra == rb {
                    assert!(
                        !overlap,
                        "{backend}: two syncs of r{ra} overlapped: {ta} {tb}"
                    );
                } else {
                    overlapped |= overlap;
                }
            }
        }
        assert!(overlapped, "{backend}: no two unrelated syncs ran at once");
        let names: std::collections::HashSet<&str> = done
            .iter()
            .filter_map(|(_, t)| t["worker"].as_str())
            .collect();
        assert!(
            names.len() > 1,
            "{backend}: one worker ran everything: {names:?}"
        );
        for w in &mut workers {
            let _ = w.kill();
            let _ = w.wait();
        }
        app.stop().await;
    }
}

/// SIGTERM to a worker process mid-sync: the sync finishes (within the grace period), nothing
/// more is claimed, and the process exits 0.
#[tokio::test]
async fn sigterm_lets_the_running_sync_finish_and_exits_cleanly() {
    for backend in backends().await {
        let (_dir, upstream) = fixture(4).await;
        upstream.set_delay_all(Some(Duration::from_millis(700)));
        let mut app = TestApp::start(backend, 0).await;
        let remote = create_remote(&app, "slow", &upstream.url("/PULP_MANIFEST")).await;
        let first = create_repo(&app, "first", &remote).await;
        let second = create_repo(&app, "second", &remote).await;
        let mut worker = worker_processes(&app, 1, &[("PULP_SHUTDOWN_GRACE", 60.0)]);
        let task = sync(&app, &first).await;
        wait_running(&app, &task).await;
        let queued = sync(&app, &second).await;
        let term = Command::new("kill")
            .args(["-TERM", &worker.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(term.success());
        let status = tokio::task::spawn_blocking(move || worker.wait())
            .await
            .unwrap()
            .expect("wait for the worker");
        assert!(status.success(), "{backend}: worker exited {status:?}");
        let (_, t) = app.get(&task).await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");
        let (_, q) = app.get(&queued).await;
        assert_eq!(
            q["state"], "waiting",
            "{backend}: shutting down, it claimed {q}"
        );
        assert_eq!(versions(&app, &first).await, vec![0, 1], "{backend}");
        app.stop().await;
    }
}

//! Helpers of the distribution and content app tests: data set up through the library on the
//! test server's own database and storage (a remote, a repository, a sync from a fixture
//! server), tasks awaited through the store, and raw HTTP requests (paths a URL library would
//! normalise).
#![allow(dead_code)]

use std::time::Duration;

use pulp_rs::db::DynStore;
use pulp_rs::models::{Policy, Remote, Repository, RepositoryVersion, TaskState};
use pulp_rs::plugins::file::FilePlugin;
use pulp_rs::storage::ArtifactStorage;
use pulp_rs::sync::{self, SyncContext};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::common::app::TestApp;
use crate::common::server::{write_file_repo, FixtureServer};

/// The server's store and storage, opened a second time by the test.
pub struct Lib {
    pub store: DynStore,
    pub storage: ArtifactStorage,
}

pub async fn lib(app: &TestApp) -> Lib {
    let store = pulp_rs::db::connect(&app.settings.database_url())
        .await
        .expect("connect to the server's database");
    pulp_rs::server::attach_secrets(&store, &app.settings)
        .await
        .expect("the server's database encryption key");
    let storage = ArtifactStorage::open_with(
        app.settings.data_dir.join("media"),
        &app.settings.storage_settings().expect("storage settings"),
    )
    .expect("storage");
    Lib { store, storage }
}

/// An upstream file repository served over HTTP.
pub struct Upstream {
    pub server: FixtureServer,
    pub _dir: tempfile::TempDir,
}

pub async fn upstream(files: &[(&str, Vec<u8>)]) -> Upstream {
    let dir = tempfile::tempdir().expect("tempdir");
    write_file_repo(dir.path(), files);
    let server = FixtureServer::start(dir.path()).await;
    Upstream { server, _dir: dir }
}

/// Creates remote `name` and repository `name` and syncs them with `policy`.
pub async fn synced_repo(
    lib: &Lib,
    up: &Upstream,
    name: &str,
    policy: Policy,
) -> (Repository, RepositoryVersion) {
    let remote = Remote::new("file.file", name, &up.server.url("PULP_MANIFEST"), policy);
    let remote = lib.store.create_remote(&remote).await.expect("remote");
    let repo = lib
        .store
        .create_repository("file.file", name, Some(remote.id))
        .await
        .expect("repository");
    let ctx = SyncContext::new(lib.store.clone(), lib.storage.clone());
    sync::sync(
        &ctx,
        &FilePlugin,
        &repo,
        &remote,
        false,
        CancellationToken::new(),
    )
    .await
    .expect("sync");
    let version = lib.store.latest_version(repo.id).await.expect("latest");
    assert_eq!(version.number, 1);
    (repo, version)
}

pub fn repo_href(repo: &Repository) -> String {
    format!("/pulp/api/v3/repositories/file/file/{}/", repo.id)
}

pub fn version_href(repo: &Repository, number: i64) -> String {
    format!("{}versions/{number}/", repo_href(repo))
}

/// Waits (through the store) for the task of a 202 answer to end; returns its state and
/// created resources.
pub async fn wait(lib: &Lib, answer: &Value) -> (TaskState, Vec<String>, Option<Value>) {
    let href = answer["task"]
        .as_str()
        .unwrap_or_else(|| panic!("no task in {answer}"));
    let id = href
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("task id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let t = lib.store.get_task(id).await.expect("task");
        if t.state.is_final() {
            return (t.state, t.created_resources, t.error);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {href} not done"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POSTs and waits for the task; panics unless it completed. Returns created resources.
pub async fn post_task(app: &TestApp, lib: &Lib, path: &str, body: Value) -> Vec<String> {
    let (status, answer) = app.post(path, body.clone()).await;
    assert_eq!(status, 202, "POST {path} {body}: {answer}");
    let (state, created, error) = wait(lib, &answer).await;
    assert_eq!(state, TaskState::Completed, "{path}: {error:?}");
    created
}

/// Creates a file distribution and returns its href.
pub async fn distribution(app: &TestApp, lib: &Lib, body: Value) -> String {
    let created = post_task(app, lib, "/pulp/api/v3/distributions/file/file/", body).await;
    created.into_iter().next().expect("distribution href")
}

/// Sends `GET <raw path>` over a plain TCP connection and returns the status code.
pub async fn raw_get_status(base: &str, raw_path: &str) -> u16 {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {raw_path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Files of `dir` (recursively).
pub fn count_files(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                1
            }
        })
        .sum()
}

/// Publishes version `number` of `repo` without a manifest file (so listings show only the
/// version's files): a file distribution serves a repository or version only once published.
pub async fn publish(app: &TestApp, lib: &Lib, repo: &Repository, number: i64) -> String {
    let created = post_task(
        app,
        lib,
        "/pulp/api/v3/publications/file/file/",
        serde_json::json!({"repository_version": version_href(repo, number), "manifest": null}),
    )
    .await;
    created.into_iter().next().expect("publication href")
}

//! The holes found by probing, each closed and kept closed, over a real server on both backends:
//! `file://` remotes read only below `allowed_import_paths` (resolved, symlinks included) and no
//! local file's text reaches a response; orphan cleanup killed between its row and file phases
//! leaves no stray file once run again; a process that starts discards what a crashed one left.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::app::{backends, TestApp};
use common::server::{sha256_hex, write_file_repo};
use pulp_rs::models::{NewArtifact, OtherDigests};
use pulp_rs::storage::ArtifactStorage;
use serde_json::{json, Value};
use uuid::Uuid;

const SECRET: &str = "PULP_ADMIN_PASSWORD=topsecret-f00d";

const REMOTES: &str = "/pulp/api/v3/remotes/file/file/";
const REPOSITORIES: &str = "/pulp/api/v3/repositories/file/file/";

/// Sets a file's modification time `age` in the past.
fn backdate(path: &Path, age: Duration) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open to backdate");
    f.set_modified(SystemTime::now() - age).expect("set mtime");
}

/// Syncs `repo` from `remote` and returns the finished task.
async fn sync(app: &TestApp, repo: &str, remote: &str) -> Value {
    let (status, resp) = app
        .post(&format!("{repo}sync/"), json!({"remote": remote}))
        .await;
    assert_eq!(status, 202, "{resp}");
    app.wait_task(
        resp["task"].as_str().expect("task"),
        Duration::from_secs(60),
    )
    .await
}

#[tokio::test]
async fn file_remotes_read_only_below_allowed_import_paths() {
    for backend in backends().await {
        let allowed = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let secret = outside.path().join("environ");
        std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
        let repo_dir = allowed.path().join("repo");
        write_file_repo(&repo_dir, &[("a.txt", b"alpha".to_vec())]);
        std::os::unix::fs::symlink(outside.path(), allowed.path().join("link")).expect("symlink");

        let allowed_path = allowed.path().to_path_buf();
        let mut app = TestApp::start_configured(backend, 1, move |s| {
            s.allowed_import_paths = vec![allowed_path];
        })
        .await;

        // Refused at create: outside, through a symlinked directory, another scheme.
        for url in [
            "file:///proc/self/environ".to_string(),
            format!("file://{}", secret.display()),
            format!("file://{}/link/environ", allowed.path().display()),
            format!("file://{}/../environ", repo_dir.display()),
        ] {
            let (status, body) = app.post(REMOTES, json!({"name": "bad", "url": url})).await;
            assert_eq!(status, 400, "{backend} {url}: {body}");
            assert!(body["url"].is_array(), "{backend} {url}: {body}");
            assert!(!body.to_string().contains("topsecret"), "{body}");
        }
        let (_, listed) = app.get(REMOTES).await;
        assert_eq!(listed["count"], 0, "{backend}: nothing saved: {listed}");

        // Allowed below the setting; refused when an update leaves it.
        let manifest = format!("file://{}/PULP_MANIFEST", repo_dir.display());
        let (status, remote) = app
            .post(REMOTES, json!({"name": "local", "url": manifest}))
            .await;
        assert_eq!(status, 201, "{backend}: {remote}");
        let remote_href = remote["pulp_href"].as_str().expect("href").to_string();
        let (status, body) = app
            .patch(&remote_href, json!({"url": "file:///etc/shadow"}))
            .await;
        assert_eq!(status, 400, "{backend}: {body}");
        assert!(body["url"].is_array(), "{body}");

        let (status, repo) = app.post(REPOSITORIES, json!({"name": "r"})).await;
        assert_eq!(status, 201, "{repo}");
        let repo_href = repo["pulp_href"].as_str().expect("href").to_string();
        let task = sync(&app, &repo_href, &remote_href).await;
        assert_eq!(task["state"], "completed", "{backend}: {task}");

        // A file of the manifest that is a symlink leading outside is refused at sync time,
        // even though the manifest names its true digest; no version is made.
        let secret_bytes = std::fs::read(&secret).expect("secret");
        std::os::unix::fs::symlink(&secret, repo_dir.join("b.txt")).expect("symlink");
        std::fs::write(
            repo_dir.join("PULP_MANIFEST"),
            format!(
                "a.txt,{},5\nb.txt,{},{}\n",
                sha256_hex(b"alpha"),
                sha256_hex(&secret_bytes),
                secret_bytes.len()
            ),
        )
        .expect("manifest");
        let task = sync(&app, &repo_href, &remote_href).await;
        assert_eq!(task["state"], "failed", "{backend}: {task}");
        let error = task["error"].to_string();
        assert!(error.contains("symlink"), "{backend}: {error}");
        assert!(!task.to_string().contains("topsecret"), "{task}");
        let (_, versions) = app.get(&format!("{repo_href}versions/")).await;
        assert_eq!(
            versions["count"], 2,
            "{backend}: versions 0 and 1 only: {versions}"
        );

        // The manifest itself swapped for a symlink to a secret file (the check at create time
        // passed): refused at sync, and no line of the file is quoted.
        std::fs::remove_file(repo_dir.join("PULP_MANIFEST")).expect("rm");
        std::os::unix::fs::symlink(&secret, repo_dir.join("PULP_MANIFEST")).expect("symlink");
        let task = sync(&app, &repo_href, &remote_href).await;
        assert_eq!(task["state"], "failed", "{backend}: {task}");
        assert!(!task.to_string().contains("topsecret"), "{task}");
        assert!(!task.to_string().contains("PULP_ADMIN"), "{task}");
        app.stop().await;

        // With no setting at all, no file:// remote is accepted.
        let mut bare = TestApp::start(backend, 0).await;
        let (status, body) = app_post_remote(&bare, &manifest).await;
        assert_eq!(status, 400, "{backend}: {body}");
        assert!(
            body["url"][0]
                .as_str()
                .unwrap_or_default()
                .contains("allowed_import_paths"),
            "{body}"
        );
        bare.stop().await;
    }
}

async fn app_post_remote(app: &TestApp, url: &str) -> (u16, Value) {
    app.post(REMOTES, json!({"name": "n", "url": url})).await
}

/// Writes an artifact file into the server's storage, optionally with its row.
async fn stored_file(
    app: &TestApp,
    store: &pulp_rs::db::DynStore,
    body: &[u8],
    row: bool,
) -> std::path::PathBuf {
    let sha256 = sha256_hex(body);
    let file = ArtifactStorage::relative_path(&sha256).expect("path");
    let path = app.settings.data_dir.join("media").join(&file);
    std::fs::write(&path, body).expect("write");
    if row {
        store
            .insert_artifacts(&[NewArtifact {
                sha256,
                size: body.len() as u64,
                other: OtherDigests::default(),
                file,
            }])
            .await
            .expect("insert");
    }
    path
}

#[tokio::test]
async fn orphan_cleanup_killed_between_phases_leaves_no_stray_file() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let store = pulp_rs::db::connect(&app.settings.database_url())
            .await
            .expect("store");
        let day = Duration::from_secs(24 * 3600);
        // Orphan artifacts whose cleanup "dies" right after committing the row deletion.
        let mut orphans = Vec::new();
        for i in 0..3 {
            orphans.push(stored_file(&app, &store, format!("orphan {i}").as_bytes(), true).await);
        }
        let gone = store
            .delete_orphans(chrono::Utc::now() + chrono::Duration::hours(1), None)
            .await
            .expect("row phase");
        assert_eq!(gone.artifacts.len(), 3, "{backend}");
        // ... and was killed before removing the files: they stay, named by no row.
        for p in &orphans {
            assert!(p.exists());
            backdate(p, day);
        }
        // A file some row names, however old, and a young file without a row (a sync placing
        // it right now) must both stay.
        let tracked = stored_file(&app, &store, b"tracked", true).await;
        backdate(&tracked, day);
        let (_, unit) = app.get("/pulp/api/v3/artifacts/").await;
        assert_eq!(unit["count"], 1, "{backend}: {unit}");
        let young = stored_file(&app, &store, b"young, being placed", false).await;

        // The tracked artifact is an orphan too: a protection time of an hour spares its
        // row, while the stray files, a day old, are past it.
        let (status, resp) = app
            .post(
                "/pulp/api/v3/orphans/cleanup/",
                json!({"orphan_protection_time": 60}),
            )
            .await;
        assert_eq!(status, 202, "{resp}");
        let task = app
            .wait_task(
                resp["task"].as_str().expect("task"),
                Duration::from_secs(60),
            )
            .await;
        assert_eq!(task["state"], "completed", "{backend}: {task}");
        for p in &orphans {
            assert!(!p.exists(), "{backend}: stray file {} left", p.display());
        }
        assert!(
            tracked.exists(),
            "{backend}: a file a row names was removed"
        );
        assert!(
            young.exists(),
            "{backend}: a young untracked file was removed"
        );
        let (_, arts) = app.get("/pulp/api/v3/artifacts/").await;
        assert_eq!(arts["count"], 1, "{backend}: {arts}");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_starting_process_discards_what_a_crash_left() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let (status, repo) = app.post(REPOSITORIES, json!({"name": "crashed"})).await;
        assert_eq!(status, 201, "{repo}");
        let repo_id = Uuid::parse_str(
            repo["pulp_href"]
                .as_str()
                .expect("href")
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .expect("id"),
        )
        .expect("uuid");
        app.stop().await;

        // What a sync killed with its process leaves: an incomplete version, its temp
        // directory with a partial download, a stale loose download; and a fresh loose file
        // that some other process may be writing right now.
        let store = pulp_rs::db::connect(&app.settings.database_url())
            .await
            .expect("store");
        let v = store
            .create_incomplete_version(repo_id)
            .await
            .expect("incomplete version");
        assert_eq!(
            store.incomplete_versions().await.expect("list"),
            vec![(v.id, repo_id)]
        );
        let tmp = app.settings.data_dir.join("media").join("tmp");
        let sync_dir = tmp.join(format!("sync-{}", repo_id.simple()));
        std::fs::create_dir_all(&sync_dir).expect("mkdir");
        std::fs::write(sync_dir.join(".download-partial"), b"half").expect("partial");
        let stale = tmp.join(".download-stale");
        std::fs::write(&stale, b"old").expect("stale");
        backdate(&stale, Duration::from_secs(3 * 3600));
        let fresh = tmp.join(".download-fresh");
        std::fs::write(&fresh, b"new").expect("fresh");
        // An old directory that is no sync's (some other task's work area) is not ours to judge.
        let other = tmp.join("publish-work");
        std::fs::create_dir_all(&other).expect("mkdir");
        std::fs::File::open(&other)
            .expect("open dir")
            .set_modified(SystemTime::now() - Duration::from_secs(3 * 3600))
            .expect("backdate dir");
        drop(store);

        let mut settings = app.settings.clone();
        settings.api_bind.set_port(0);
        settings.content_bind.set_port(0);
        let mut again = TestApp::start_with(settings, backend, None).await;
        let store = pulp_rs::db::connect(&again.settings.database_url())
            .await
            .expect("store");
        assert!(
            store.incomplete_versions().await.expect("list").is_empty(),
            "{backend}: the incomplete version stays"
        );
        assert!(
            !sync_dir.exists(),
            "{backend}: the sync's temp directory stays"
        );
        assert!(!stale.exists(), "{backend}: the stale download stays");
        assert!(fresh.exists(), "{backend}: a fresh temp file was removed");
        assert!(
            other.exists(),
            "{backend}: another task's directory was removed"
        );
        let (_, versions) = again
            .get(&format!("{}versions/", repo["pulp_href"].as_str().unwrap()))
            .await;
        assert_eq!(versions["count"], 1, "{backend}: {versions}");
        again.stop().await;
    }
}

//! Artifact storage on a real S3-compatible server: `moto` in server mode, installed from PyPI
//! into a virtualenv under `~/.cache/pulp-rs/moto-venv` (made on first use, reused after) and
//! started by the test on a free 127.0.0.1 port, one bucket per test.
//!
//! Sync into the bucket (immediate, and on-demand saved by the content app), serve it by
//! streaming (whole file, a range, a multipart-sized file) and by a 302 to a pre-signed URL
//! (followed by the client, bytes compared), orphan cleanup deletes the objects (the bucket is
//! listed), and a failed upload leaves no object: a download failing its digest is never
//! uploaded, and an upload whose byte count disagrees with the validated size is aborted (one
//! `PUT` never sent, a multipart upload aborted before completion).
//!
//! Runs on SQLite, and on a fresh PostgreSQL database too when `PULP_TEST_DATABASE_URL` is
//! set. Skipped only when `PULP_SKIP_S3=1` (e.g. offline machines that cannot reach PyPI).

mod common;
mod content_app_support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::app::{backends, TestApp};
use common::server::sha256_hex;
use content_app_support as support;
use futures::TryStreamExt;
use object_store::ObjectStore;
use pulp_rs::models::Policy;
use pulp_rs::server::Settings;
use pulp_rs::storage::{ArtifactStorage, BackendKind, S3Backend, S3Config, StorageSettings};
use serde_json::json;

const PUBS: &str = "/pulp/api/v3/publications/file/file/";

fn skipped() -> bool {
    if std::env::var("PULP_SKIP_S3").as_deref() == Ok("1") {
        eprintln!("SKIPPED: S3 storage tests (PULP_SKIP_S3=1)");
        return true;
    }
    false
}

/// `moto_server` of the cached virtualenv, installing it on first use (one test at a time: the
/// tests of this binary run in parallel).
fn moto_server() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let home = std::env::var_os("HOME").expect("HOME");
    let venv = PathBuf::from(home).join(".cache/pulp-rs/moto-venv");
    let bin = venv.join("bin/moto_server");
    if bin.exists() {
        return bin;
    }
    std::fs::create_dir_all(venv.parent().unwrap()).expect("cache dir");
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv")
        .success();
    assert!(
        ok,
        "cannot make the moto virtualenv (python3-venv missing?)"
    );
    let ok = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "moto[server]==5.*",
        ])
        .status()
        .expect("pip install moto[server]")
        .success();
    assert!(
        ok,
        "cannot install moto[server] from PyPI (set PULP_SKIP_S3=1 offline)"
    );
    bin
}

/// A moto S3 server on a free loopback port, killed when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_moto() -> Moto {
    let bin = tokio::task::spawn_blocking(moto_server).await.unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if client.get(&moto.endpoint).send().await.is_ok() {
            return moto;
        }
        assert!(tokio::time::Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Moto {
    /// Creates a new bucket (moto takes an unsigned `PUT /<bucket>`); its config.
    async fn bucket(&self, name: &str) -> S3Config {
        let resp = reqwest::Client::new()
            .put(format!("{}/{name}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "create bucket: {}",
            resp.status()
        );
        S3Config {
            bucket: name.to_string(),
            endpoint_url: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing-secret".into()),
        }
    }
}

fn s3_settings(config: &S3Config, redirect: bool) -> impl FnOnce(&mut Settings) + '_ {
    move |s: &mut Settings| {
        s.storage_backend = BackendKind::S3;
        s.s3_bucket = Some(config.bucket.clone());
        s.s3_endpoint_url = config.endpoint_url.clone();
        s.s3_region = config.region.clone();
        s.s3_access_key_id = config.access_key_id.clone();
        s.s3_secret_access_key = config.secret_access_key.clone();
        s.s3_redirect = redirect;
    }
}

/// Every key in the bucket, sorted.
async fn keys(config: &S3Config) -> Vec<String> {
    let store: Arc<dyn ObjectStore> = S3Backend::new(config).unwrap().object_store();
    let mut out: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list the bucket");
    out.sort();
    out
}

fn key(data: &[u8]) -> String {
    ArtifactStorage::relative_path(&sha256_hex(data)).unwrap()
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_serve_and_clean_up_on_s3() {
    if skipped() {
        return;
    }
    let moto = start_moto().await;
    for backend in backends().await {
        for redirect in [false, true] {
            let bucket = format!(
                "pulp-{backend}-{}",
                if redirect { "redirect" } else { "stream" }
            );
            let config = moto.bucket(&bucket).await;
            let app = TestApp::start_configured(backend, 2, s3_settings(&config, redirect)).await;
            let lib = support::lib(&app).await;
            assert!(
                lib.storage.local_root().is_none(),
                "the s3 backend is in use"
            );
            let small = data(1000, 1);
            // Over one part: a multipart upload.
            let big = data(pulp_rs::storage::s3::PART_SIZE + 300_000, 2);
            let up =
                support::upstream(&[("a.txt", small.clone()), ("dir/big.bin", big.clone())]).await;
            let (repo, _) = support::synced_repo(&lib, &up, "s3", Policy::Immediate).await;
            let stored = keys(&config).await;
            assert!(stored.contains(&key(&small)), "{backend}: {stored:?}");
            assert!(stored.contains(&key(&big)), "{backend}: {stored:?}");
            assert!(
                !app.settings.data_dir.join("media/artifact").exists()
                    || support::count_files(&app.settings.data_dir.join("media/artifact")) == 0,
                "{backend}: nothing stored on the local disk"
            );
            assert_eq!(support::count_files(lib.storage.tmp_dir()), 0);
            let created = support::post_task(
                &app,
                &lib,
                PUBS,
                json!({"repository": support::repo_href(&repo)}),
            )
            .await;
            support::distribution(
                &app,
                &lib,
                json!({"name": "d", "base_path": "s3/one", "publication": created[0]}),
            )
            .await;
            let base = format!("{}/pulp/content/s3/one/", app.content);
            for (rel, want) in [("a.txt", &small), ("dir/big.bin", &big)] {
                let first = no_redirects()
                    .get(format!("{base}{rel}"))
                    .send()
                    .await
                    .unwrap();
                if redirect {
                    assert_eq!(first.status(), 302, "{backend} {rel}");
                    let location = first.headers()["location"].to_str().unwrap().to_string();
                    assert!(
                        location.starts_with(&moto.endpoint)
                            && location.contains("X-Amz-Signature"),
                        "{backend}: a pre-signed URL of the bucket: {location}"
                    );
                } else {
                    assert_eq!(first.status(), 200, "{backend} {rel}");
                    assert_eq!(
                        first.headers()["etag"].to_str().unwrap(),
                        format!("\"{}\"", sha256_hex(want))
                    );
                }
                // The default client follows the redirect to the object store.
                let got = reqwest::get(format!("{base}{rel}")).await.unwrap();
                assert_eq!(got.status(), 200, "{backend} {rel}");
                assert_eq!(
                    got.bytes().await.unwrap().as_ref(),
                    want.as_slice(),
                    "{rel}"
                );
            }
            if !redirect {
                // A range, streamed from the object's range.
                let part = reqwest::Client::new()
                    .get(format!("{base}dir/big.bin"))
                    .header("range", "bytes=8388600-8388700")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(part.status(), 206);
                assert_eq!(
                    part.headers()["content-range"].to_str().unwrap(),
                    format!("bytes 8388600-8388700/{}", big.len())
                );
                assert_eq!(
                    part.bytes().await.unwrap().as_ref(),
                    &big[8388600..=8388700]
                );
                let head = reqwest::Client::new()
                    .head(format!("{base}a.txt"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(head.status(), 200);
                assert_eq!(
                    head.headers()["content-length"],
                    small.len().to_string().as_str()
                );
            }

            // On demand: the content app fetches, saves into the bucket, serves.
            let lazy = data(5000, 9);
            let up2 = support::upstream(&[("lazy.bin", lazy.clone())]).await;
            let (repo2, _) = support::synced_repo(&lib, &up2, "lazy", Policy::OnDemand).await;
            assert!(!keys(&config).await.contains(&key(&lazy)));
            support::distribution(
                &app,
                &lib,
                json!({"name": "l", "base_path": "s3/lazy", "repository": support::repo_href(&repo2)}),
            )
            .await;
            // The file plugin serves a repository's publications: publish first.
            support::post_task(
                &app,
                &lib,
                PUBS,
                json!({"repository": support::repo_href(&repo2)}),
            )
            .await;
            let got = reqwest::get(format!("{}/pulp/content/s3/lazy/lazy.bin", app.content))
                .await
                .unwrap();
            assert_eq!(got.status(), 200);
            assert_eq!(got.bytes().await.unwrap().as_ref(), lazy.as_slice());
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while !keys(&config).await.contains(&key(&lazy)) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "on-demand save to S3"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }

            // Orphan cleanup deletes the objects of deleted repositories.
            for r in [&repo, &repo2] {
                let (status, answer) = app.delete(&support::repo_href(r)).await;
                assert_eq!(status, 202, "{answer}");
                support::wait(&lib, &answer).await;
            }
            support::post_task(
                &app,
                &lib,
                "/pulp/api/v3/orphans/cleanup/",
                json!({"orphan_protection_time": 0}),
            )
            .await;
            let left = keys(&config).await;
            assert!(
                left.is_empty(),
                "{backend}: objects left after orphan cleanup: {left:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_upload_leaves_no_object() {
    if skipped() {
        return;
    }
    let moto = start_moto().await;
    let config = moto.bucket("pulp-failures").await;
    let work = tempfile::tempdir().unwrap();
    let storage = ArtifactStorage::open_with(
        work.path(),
        &StorageSettings {
            s3: Some(config.clone()),
            redirect: None,
        },
    )
    .unwrap();
    // A byte count that disagrees with the validated size: a single PUT is never sent, a
    // multipart upload is aborted before it completes.
    for n in [10_000, pulp_rs::storage::s3::PART_SIZE * 2 + 10] {
        let bytes = data(n, 5);
        let mut f = storage.temp_file().unwrap();
        std::io::Write::write_all(&mut f, &bytes).unwrap();
        let err = storage
            .adopt_batch(vec![(f.into_temp_path(), sha256_hex(&bytes), n as u64 + 1)])
            .await
            .expect_err("a short file must not be stored");
        assert!(err.to_string().contains("expected"), "{err}");
        assert!(
            keys(&config).await.is_empty(),
            "no object after a failed upload of {n}"
        );
    }
    assert_eq!(
        support::count_files(storage.tmp_dir()),
        0,
        "temp files deleted"
    );

    // A download that fails its digest is never uploaded: the sync fails, the bucket holds
    // only the good file.
    for backend in backends().await {
        let bucket = format!("pulp-digest-{backend}");
        let config = moto.bucket(&bucket).await;
        let app = TestApp::start_configured(backend, 1, s3_settings(&config, false)).await;
        let lib = support::lib(&app).await;
        let good = data(2000, 3);
        let bad = data(3000, 4);
        let up = support::upstream(&[("good.bin", good.clone()), ("bad.bin", bad.clone())]).await;
        // Corrupt the served bytes after the manifest named their digest.
        let corrupted = data(3000, 7);
        std::fs::write(up._dir.path().join("bad.bin"), &corrupted).unwrap();
        let remote = pulp_rs::models::Remote::new(
            "file.file",
            "bad",
            &up.server.url("PULP_MANIFEST"),
            Policy::Immediate,
        );
        let remote = lib.store.create_remote(&remote).await.unwrap();
        let repo = lib
            .store
            .create_repository("file.file", "bad", Some(remote.id))
            .await
            .unwrap();
        let ctx = pulp_rs::sync::SyncContext::new(lib.store.clone(), lib.storage.clone());
        let result = pulp_rs::sync::sync(
            &ctx,
            &pulp_rs::plugins::file::FilePlugin,
            &repo,
            &remote,
            false,
            tokio_util::sync::CancellationToken::new(),
        )
        .await;
        assert!(
            result.is_err(),
            "{backend}: the sync must fail on the digest"
        );
        let stored = keys(&config).await;
        assert!(!stored.contains(&key(&bad)), "{backend}: {stored:?}");
        assert!(!stored.contains(&key(&corrupted)), "{backend}: {stored:?}");
        assert_eq!(support::count_files(lib.storage.tmp_dir()), 0, "{backend}");
        drop(app);
    }
}

/// A `pulp-rs worker` process (one worker) on the database `database_url`, with its own data
/// directory `data_dir` and, with `s3`, artifact storage in that bucket: "another machine" as
/// far as anything local goes. The encryption key is the API process's (one key everywhere).
fn worker_process(
    data_dir: &std::path::Path,
    database_url: &str,
    key: &std::path::Path,
    s3: Option<&S3Config>,
) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pulp-rs"));
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["worker", "--workers", "1", "--database-url", database_url])
        .env_remove("PULP_DATABASE_URL")
        .env("PULP_DB_ENCRYPTION_KEY", key)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(c) = s3 {
        cmd.env("PULP_STORAGE_BACKEND", "s3")
            .env("PULP_S3_BUCKET", &c.bucket)
            .env("PULP_S3_ENDPOINT_URL", c.endpoint_url.as_deref().unwrap())
            .env("PULP_S3_REGION", c.region.as_deref().unwrap())
            .env("PULP_S3_ACCESS_KEY_ID", c.access_key_id.as_deref().unwrap())
            .env(
                "PULP_S3_SECRET_ACCESS_KEY",
                c.secret_access_key.as_deref().unwrap(),
            );
    }
    cmd.spawn().expect("start pulp-rs worker")
}

/// Kills a child process when dropped (also on panic).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn put_chunk(app: &TestApp, upload: &str, start: usize, bytes: &[u8]) {
    let range = format!("bytes {start}-{}/*", start + bytes.len() - 1);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("chunk"),
    );
    let answer = app
        .req(reqwest::Method::PUT, upload)
        .header("Content-Range", range)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
}

async fn new_upload(app: &TestApp, size: usize) -> String {
    let (s, body) = app
        .post("/pulp/api/v3/uploads/", json!({ "size": size }))
        .await;
    assert_eq!(s, 201, "{body}");
    body["pulp_href"].as_str().unwrap().to_string()
}

/// The stored chunks of every upload: files under `media/upload` of the API's data directory
/// (the filesystem backend), or objects under `upload/` of the bucket.
async fn chunks_stored(app: &TestApp, s3: Option<&S3Config>) -> Vec<String> {
    match s3 {
        Some(c) => keys(c)
            .await
            .into_iter()
            .filter(|k| k.starts_with("upload/"))
            .collect(),
        None => {
            let dir = app.settings.data_dir.join("media/upload");
            let mut out = Vec::new();
            for upload in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                for chunk in std::fs::read_dir(upload.path()).unwrap().flatten() {
                    out.push(chunk.path().display().to_string());
                }
            }
            out
        }
    }
}

/// POSTs `body` to `path`, which dispatches a task, and waits for it to complete; the task.
async fn completed(
    app: &TestApp,
    path: &str,
    body: serde_json::Value,
    what: &str,
) -> serde_json::Value {
    let (s, answer) = app.post(path, body).await;
    assert_eq!(s, 202, "{what}: {answer}");
    let task = app
        .wait_task(answer["task"].as_str().unwrap(), Duration::from_secs(120))
        .await;
    assert_eq!(task["state"], "completed", "{what}: {task}");
    task
}

async fn no_chunks_left(app: &TestApp, s3: Option<&S3Config>, what: &str, after: &str) {
    let stored = chunks_stored(app, s3).await;
    assert!(
        stored.is_empty(),
        "{what}: chunks left after {after}: {stored:?}"
    );
}

/// Chunks PUT to the API process, the commit run by a worker process elsewhere: on S3 the
/// worker has a data directory of its own (nothing local is shared); on the filesystem it shares
/// the API's storage directory (a share every machine mounts). The upload's chunks live in the
/// artifact storage until the commit, a delete, or orphan cleanup removes every one of them.
async fn chunked_upload_across_processes(backend: &'static str, s3: Option<&S3Config>) {
    let app = match s3 {
        Some(c) => TestApp::start_configured(backend, 0, s3_settings(c, false)).await,
        None => TestApp::start(backend, 0).await,
    };
    let elsewhere = tempfile::tempdir().unwrap();
    let worker_dir = match s3 {
        Some(_) => elsewhere.path().to_path_buf(),
        None => app.settings.data_dir.clone(),
    };
    let worker = Killed(worker_process(
        &worker_dir,
        &app.settings.database_url(),
        &app.settings.data_dir.join("db_encryption.key"),
        s3,
    ));
    let what = format!("{backend}/{}", if s3.is_some() { "s3" } else { "fs" });

    // Committed: three chunks of a 3 MiB file, PUT out of order.
    let whole = data(3 * 1024 * 1024 + 77, 11);
    let cuts = [
        0,
        1000,
        1000 + pulp_rs::storage::s3::PART_SIZE / 4,
        whole.len(),
    ];
    let upload = new_upload(&app, whole.len()).await;
    for i in [2, 0, 1] {
        put_chunk(&app, &upload, cuts[i], &whole[cuts[i]..cuts[i + 1]]).await;
    }
    let stored = chunks_stored(&app, s3).await;
    assert_eq!(stored.len(), 3, "{what}: {stored:?}");
    if s3.is_some() {
        assert!(
            !app.settings.data_dir.join("media/upload").exists(),
            "{what}: chunks on the API's local disk"
        );
    }
    let task = completed(
        &app,
        &format!("{upload}commit/"),
        json!({"sha256": sha256_hex(&whole)}),
        &what,
    )
    .await;
    let (_, ran) = app.get(task["worker"].as_str().unwrap()).await;
    assert!(
        ran["name"]
            .as_str()
            .is_some_and(|w| w.starts_with(&format!("{}@", worker.0.id()))),
        "{what}: the worker process ran the commit: {ran}"
    );
    let artifact = task["created_resources"][0].as_str().unwrap().to_string();
    let (_, a) = app.get(&artifact).await;
    assert_eq!(a["sha256"], sha256_hex(&whole), "{what}: {a}");
    let lib = support::lib(&app).await;
    let file = ArtifactStorage::relative_path(&sha256_hex(&whole)).unwrap();
    let mut bytes = Vec::new();
    let mut read = lib.storage.read(&file, None).await.unwrap();
    while let Some(b) = futures::StreamExt::next(&mut read).await {
        bytes.extend_from_slice(&b.unwrap());
    }
    assert!(bytes == whole, "{what}: the stored artifact's bytes");
    assert_eq!(app.get(&upload).await.0, 404, "{what}");
    no_chunks_left(&app, s3, &what, "the commit").await;

    // Deleted: its chunks go.
    let deleted = new_upload(&app, 10).await;
    put_chunk(&app, &deleted, 0, b"01234").await;
    assert_eq!(chunks_stored(&app, s3).await.len(), 1, "{what}");
    assert_eq!(app.delete(&deleted).await.0, 204, "{what}");
    no_chunks_left(&app, s3, &what, "a delete").await;

    // Abandoned: orphan cleanup (run by the worker process) takes its chunks.
    let abandoned = new_upload(&app, 10).await;
    put_chunk(&app, &abandoned, 5, b"56789").await;
    assert_eq!(chunks_stored(&app, s3).await.len(), 1, "{what}");
    let cleanup = json!({"orphan_protection_time": 0});
    completed(&app, "/pulp/api/v3/orphans/cleanup/", cleanup, &what).await;
    assert_eq!(app.get(&abandoned).await.0, 404, "{what}");
    no_chunks_left(&app, s3, &what, "orphan cleanup").await;
    drop(worker);
    let mut app = app;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_uploads_commit_in_another_process_on_filesystem_and_s3() {
    for backend in backends().await {
        chunked_upload_across_processes(backend, None).await;
    }
    if skipped() {
        return;
    }
    let moto = start_moto().await;
    for backend in backends().await {
        let config = moto.bucket(&format!("pulp-uploads-{backend}")).await;
        chunked_upload_across_processes(backend, Some(&config)).await;
    }
}

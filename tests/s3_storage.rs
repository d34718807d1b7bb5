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

/// `moto_server` of the cached virtualenv, installing it on first use.
fn moto_server() -> PathBuf {
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

//! Uploads and content creation over real HTTP, on every backend: `POST artifacts/` (multipart:
//! 0 bytes, 1 byte, 64 MiB streamed, wrong digests and sizes, existing bytes), chunked
//! `uploads/` (chunks out of order, checked against the declared size and their own sha256,
//! commit with a wrong and a right sha256, gaps), content create from each source (`file`,
//! `artifact`, `upload`, `file_url` over http and `file://` below `allowed_import_paths`) with
//! and without a repository, `overwrite=false` conflicts in content create and `modify/`, the
//! generic `content/` list, and orphan cleanup of abandoned uploads. Every refusal is checked
//! to have stored nothing: no artifact row, no stored file, no temp file.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::app::{backends, send, TestApp};
use common::server::FixtureServer;
use reqwest::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ARTIFACTS: &str = "/pulp/api/v3/artifacts/";
const UPLOADS: &str = "/pulp/api/v3/uploads/";
const FILES: &str = "/pulp/api/v3/content/file/files/";
const REPOS: &str = "/pulp/api/v3/repositories/file/file/";
const MIB: usize = 1 << 20;

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic bytes `offset .. offset + len` of a generated file (no two MiB alike).
fn generated(offset: usize, len: usize) -> Vec<u8> {
    (offset..offset + len)
        .map(|i| {
            let x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((i / MIB) as u64);
            (x >> 29) as u8
        })
        .collect()
}

fn media(app: &TestApp) -> PathBuf {
    app.settings.data_dir.join("media")
}

/// Files under the storage's `tmp/` (left-over temp files).
fn temp_files(app: &TestApp) -> usize {
    std::fs::read_dir(media(app).join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn stored(app: &TestApp, sha: &str) -> bool {
    media(app)
        .join("artifact")
        .join(&sha[..2])
        .join(&sha[2..])
        .exists()
}

fn file_form(bytes: Vec<u8>, fields: &[(&str, &str)]) -> Form {
    let mut form = Form::new();
    for (k, v) in fields {
        form = form.text(k.to_string(), v.to_string());
    }
    form.part("file", Part::bytes(bytes).file_name("upload.bin"))
}

async fn post_form(app: &TestApp, path: &str, form: Form) -> (u16, Value) {
    send(app.req(Method::POST, path).multipart(form)).await
}

async fn artifact_count(app: &TestApp, sha: &str) -> u64 {
    let (s, body) = app.get(&format!("{ARTIFACTS}?sha256={sha}")).await;
    assert_eq!(s, 200, "{body}");
    body["count"].as_u64().expect("count")
}

async fn put_chunk(
    app: &TestApp,
    upload: &str,
    range: &str,
    bytes: Vec<u8>,
    sha: Option<&str>,
) -> (u16, Value) {
    let mut form = Form::new();
    if let Some(sha) = sha {
        form = form.text("sha256", sha.to_string());
    }
    let form = form.part("file", Part::bytes(bytes).file_name("chunk"));
    send(
        app.req(Method::PUT, upload)
            .header("Content-Range", range)
            .multipart(form),
    )
    .await
}

async fn task_of(app: &TestApp, answer: &(u16, Value)) -> Value {
    assert_eq!(answer.0, 202, "{}", answer.1);
    let href = answer.1["task"].as_str().expect("task href").to_string();
    app.wait_task(&href, Duration::from_secs(120)).await
}

async fn new_upload(app: &TestApp, size: usize) -> String {
    let (s, body) = app.post(UPLOADS, json!({ "size": size })).await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["size"], size);
    body["pulp_href"].as_str().expect("href").to_string()
}

async fn new_repository(app: &TestApp, name: &str) -> String {
    let (s, body) = app.post(REPOS, json!({ "name": name })).await;
    assert_eq!(s, 201, "{body}");
    body["pulp_href"].as_str().expect("href").to_string()
}

async fn latest_present(app: &TestApp, repo: &str) -> (String, u64) {
    let (_, r) = app.get(repo).await;
    let latest = r["latest_version_href"]
        .as_str()
        .expect("latest")
        .to_string();
    let (_, v) = app.get(&latest).await;
    let present = v["content_summary"]["present"]["file.file"]["count"]
        .as_u64()
        .unwrap_or(0);
    (latest, present)
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_are_created_from_one_multipart_request() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;

        // 0 bytes and 1 byte, with their digest.
        for bytes in [Vec::new(), b"x".to_vec()] {
            let sha = sha256(&bytes);
            let (s, a) = post_form(
                &app,
                ARTIFACTS,
                file_form(bytes.clone(), &[("sha256", &sha)]),
            )
            .await;
            assert_eq!(s, 201, "{backend}: {a}");
            assert_eq!(a["sha256"], sha.as_str(), "{backend}");
            assert_eq!(a["size"], bytes.len(), "{backend}");
            assert!(stored(&app, &sha), "{backend}: file in place");
            // The same bytes again: a 400 naming the existing artifact, nothing new.
            let (s, e) = post_form(&app, ARTIFACTS, file_form(bytes.clone(), &[])).await;
            assert_eq!(s, 400, "{backend}: {e}");
            let msg = e["non_field_errors"][0].as_str().unwrap_or_default();
            assert!(msg.contains("already exists"), "{backend}: {e}");
            assert!(
                msg.contains(a["pulp_href"].as_str().unwrap()),
                "{backend}: {e}"
            );
            assert_eq!(artifact_count(&app, &sha).await, 1, "{backend}");
        }

        // Wrong digests and sizes: a 400 on the field, nothing stored.
        let bytes = b"checked bytes".to_vec();
        let sha = sha256(&bytes);
        let wrong = sha256(b"other");
        for (fields, field) in [
            (vec![("sha256", wrong.as_str())], "sha256"),
            (vec![("size", "3")], "size"),
            (vec![("sha512", "00")], "sha512"),
            (vec![("sha224", "00")], "sha224"),
            (vec![("md5", "00")], "md5"),
        ] {
            let (s, e) = post_form(&app, ARTIFACTS, file_form(bytes.clone(), &fields)).await;
            assert_eq!(s, 400, "{backend} {field}: {e}");
            assert!(e[field].is_array(), "{backend} {field}: {e}");
            assert_eq!(artifact_count(&app, &sha).await, 0, "{backend} {field}");
            assert!(!stored(&app, &sha), "{backend} {field}: nothing stored");
        }
        // A digest field after the file is still checked (computed once the file is in).
        let form = Form::new()
            .part("file", Part::bytes(bytes.clone()).file_name("f"))
            .text("sha384", "00");
        let (s, e) = post_form(&app, ARTIFACTS, form).await;
        assert_eq!(s, 400, "{backend}: {e}");
        assert!(e["sha384"].is_array(), "{backend}: {e}");
        // No file at all.
        let (s, e) = post_form(&app, ARTIFACTS, Form::new().text("sha256", sha.clone())).await;
        assert_eq!(s, 400, "{backend}: {e}");
        assert!(e["file"].is_array(), "{backend}: {e}");
        // Right digests, all of them: stored with them.
        let sha512 = hex::encode(sha2::Sha512::digest(&bytes));
        let (s, a) = post_form(
            &app,
            ARTIFACTS,
            file_form(
                bytes.clone(),
                &[("sha256", &sha), ("sha512", &sha512), ("size", "13")],
            ),
        )
        .await;
        assert_eq!(s, 201, "{backend}: {a}");
        assert_eq!(a["sha512"], sha512.as_str(), "{backend}");

        // 64 MiB in one request, streamed by the client: beyond the JSON body limit.
        let total = 64 * MIB;
        let mut hasher = Sha256::new();
        for i in 0..64 {
            hasher.update(generated(i * MIB, MIB));
        }
        let big_sha = hex::encode(hasher.finalize());
        let stream = futures::stream::iter(
            (0..64).map(|i| Ok::<_, std::io::Error>(generated(i * MIB, MIB))),
        );
        let part = Part::stream_with_length(reqwest::Body::wrap_stream(stream), total as u64)
            .file_name("big.bin");
        let form = Form::new()
            .text("sha256", big_sha.clone())
            .part("file", part);
        let (s, a) = post_form(&app, ARTIFACTS, form).await;
        assert_eq!(s, 201, "{backend}: {a}");
        assert_eq!(a["size"], total, "{backend}");
        assert_eq!(a["sha256"], big_sha.as_str(), "{backend}");
        let on_disk = std::fs::metadata(
            media(&app)
                .join("artifact")
                .join(&big_sha[..2])
                .join(&big_sha[2..]),
        )
        .expect("stored file");
        assert_eq!(on_disk.len(), total as u64, "{backend}");

        assert_eq!(temp_files(&app), 0, "{backend}: no temp file left");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_uploads_assemble_out_of_order_and_refuse_bad_chunks() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let total = 64 * MIB;
        let chunk = 4 * MIB;
        let upload = new_upload(&app, total).await;

        // Refusals before any byte is kept.
        let one = generated(0, chunk);
        let one_sha = sha256(&one);
        let refused = [
            (
                format!("bytes 0-{}/{total}", chunk - 1),
                Some(sha256(b"no")),
                "Checksum",
            ),
            (
                format!("bytes 0-{}/{total}", chunk),
                Some(one_sha.clone()),
                "Chunk size",
            ),
            (
                format!("bytes {}-{}/{total}", total - 10, total + chunk - 11),
                None,
                "greater",
            ),
            (
                format!("bytes 0-{}/{}", chunk - 1, total + 1),
                None,
                "greater",
            ),
            ("bytes=0-1".to_string(), None, "Content-Range"),
        ];
        for (range, sha, says) in refused {
            let (s, e) = put_chunk(&app, &upload, &range, one.clone(), sha.as_deref()).await;
            assert_eq!(s, 400, "{backend} {range}: {e}");
            assert!(e.to_string().contains(says), "{backend} {range}: {e}");
        }
        let (_, shown) = app.get(&upload).await;
        assert_eq!(shown["chunks"], json!([]), "{backend}: nothing recorded");

        // Every chunk, in reverse order, each with its sha256.
        let mut whole = Sha256::new();
        for i in 0..total / chunk {
            whole.update(generated(i * chunk, chunk));
        }
        let whole = hex::encode(whole.finalize());
        for i in (0..total / chunk).rev() {
            let bytes = generated(i * chunk, chunk);
            let sha = sha256(&bytes);
            let range = format!("bytes {}-{}/{total}", i * chunk, (i + 1) * chunk - 1);
            let (s, body) = put_chunk(&app, &upload, &range, bytes, Some(&sha)).await;
            assert_eq!(s, 200, "{backend} chunk {i}: {body}");
            assert_eq!(body["pulp_href"], upload.as_str(), "{backend}");
        }
        let (s, shown) = app.get(&upload).await;
        assert_eq!(s, 200, "{backend}");
        let chunks = shown["chunks"].as_array().expect("chunks");
        assert_eq!(chunks.len(), total / chunk, "{backend}");
        assert_eq!(chunks[0], json!({"offset": 0, "size": chunk}), "{backend}");
        let (_, listed) = app.get(UPLOADS).await;
        assert_eq!(listed["count"], 1, "{backend}: {listed}");

        // A wrong sha256: the task fails, nothing is stored, the upload stays.
        let bad = task_of(
            &app,
            &app.post(
                &format!("{upload}commit/"),
                json!({"sha256": sha256(b"no")}),
            )
            .await,
        )
        .await;
        assert_eq!(bad["state"], "failed", "{backend}: {bad}");
        let why = bad["error"]["description"].as_str().unwrap_or_default();
        assert!(why.contains("does not match"), "{backend}: {bad}");
        assert_eq!(artifact_count(&app, &whole).await, 0, "{backend}");
        assert!(!stored(&app, &whole), "{backend}");
        assert_eq!(app.get(&upload).await.0, 200, "{backend}: upload kept");

        // The right one: the artifact, and the upload is gone with its chunks.
        let done = task_of(
            &app,
            &app.post(&format!("{upload}commit/"), json!({"sha256": whole}))
                .await,
        )
        .await;
        assert_eq!(done["state"], "completed", "{backend}: {done}");
        let href = done["created_resources"][0]
            .as_str()
            .expect("artifact href");
        let (_, a) = app.get(href).await;
        assert_eq!(a["sha256"], whole.as_str(), "{backend}");
        assert_eq!(a["size"], total, "{backend}");
        assert!(stored(&app, &whole), "{backend}");
        assert_eq!(app.get(&upload).await.0, 404, "{backend}: upload deleted");
        assert!(
            !media(&app).join("upload").exists()
                || std::fs::read_dir(media(&app).join("upload"))
                    .unwrap()
                    .count()
                    == 0,
            "{backend}: chunks removed"
        );

        // A gap: the commit fails naming it.
        let gap = new_upload(&app, 10).await;
        let (s, _) = put_chunk(&app, &gap, "bytes 5-9/10", b"56789".to_vec(), None).await;
        assert_eq!(s, 200, "{backend}");
        let t = task_of(
            &app,
            &app.post(
                &format!("{gap}commit/"),
                json!({"sha256": sha256(b"0123456789")}),
            )
            .await,
        )
        .await;
        assert_eq!(t["state"], "failed", "{backend}: {t}");
        assert!(
            t["error"]["description"]
                .as_str()
                .unwrap_or_default()
                .contains("All chunks"),
            "{backend}: {t}"
        );
        // Overlapping chunks, sent twice: fine. Then delete it.
        for (range, bytes) in [
            ("bytes 0-6/10", b"0123456".to_vec()),
            ("bytes 0-4/*", b"01234".to_vec()),
        ] {
            let (s, e) = put_chunk(&app, &gap, range, bytes, None).await;
            assert_eq!(s, 200, "{backend}: {e}");
        }
        let t = task_of(
            &app,
            &app.post(
                &format!("{gap}commit/"),
                json!({"sha256": sha256(b"0123456789")}),
            )
            .await,
        )
        .await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");

        // Create refuses a missing size; delete; unknown upload.
        let (s, e) = app.post(UPLOADS, json!({})).await;
        assert_eq!(s, 400, "{backend}: {e}");
        let doomed = new_upload(&app, 3).await;
        assert_eq!(app.delete(&doomed).await.0, 204, "{backend}");
        assert_eq!(app.get(&doomed).await.0, 404, "{backend}");
        let (s, _) = put_chunk(&app, &doomed, "bytes 0-2/3", b"abc".to_vec(), None).await;
        assert_eq!(s, 404, "{backend}");

        assert_eq!(temp_files(&app), 0, "{backend}: no temp file left");
        app.stop().await;
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn content_is_created_from_every_source() {
    for backend in backends().await {
        let import = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let import_path = import.path().to_path_buf();
        let mut app = TestApp::start_configured(backend, 1, move |s| {
            s.allowed_import_paths = vec![import_path];
        })
        .await;
        let repo = new_repository(&app, "uploads").await;

        // `file` with a repository: [version, content].
        let form = file_form(
            b"alpha".to_vec(),
            &[("relative_path", "a.txt"), ("repository", &repo)],
        );
        let t = task_of(&app, &post_form(&app, FILES, form).await).await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");
        let created = t["created_resources"].as_array().expect("created");
        assert_eq!(created.len(), 2, "{backend}: {t}");
        assert!(
            created[0].as_str().unwrap().contains("/versions/1/"),
            "{backend}: {t}"
        );
        let (_, unit) = app.get(created[1].as_str().unwrap()).await;
        assert_eq!(unit["relative_path"], "a.txt", "{backend}");
        assert_eq!(unit["sha256"], sha256(b"alpha").as_str(), "{backend}");
        assert!(unit["artifact"].is_string(), "{backend}: {unit}");
        assert_eq!(latest_present(&app, &repo).await.1, 1, "{backend}");

        // `artifact`, twice: the same unit.
        let (s, a) = post_form(&app, ARTIFACTS, file_form(b"beta".to_vec(), &[])).await;
        assert_eq!(s, 201, "{backend}: {a}");
        let body = json!({"relative_path": "b.txt", "artifact": a["pulp_href"]});
        let t1 = task_of(&app, &app.post(FILES, body.clone()).await).await;
        let t2 = task_of(&app, &app.post(FILES, body).await).await;
        assert_eq!(t1["state"], "completed", "{backend}: {t1}");
        assert_eq!(
            t1["created_resources"].as_array().unwrap().len(),
            1,
            "{backend}"
        );
        assert_eq!(
            t1["created_resources"], t2["created_resources"],
            "{backend}"
        );

        // `upload` (two chunks), into the repository.
        let up = new_upload(&app, 8).await;
        put_chunk(&app, &up, "bytes 4-7/8", b"mama".to_vec(), None).await;
        put_chunk(&app, &up, "bytes 0-3/8", b"gamm".to_vec(), None).await;
        let body = json!({"relative_path": "c/c.txt", "upload": up, "repository": repo});
        let t = task_of(&app, &app.post(FILES, body).await).await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");
        let (_, unit) = app.get(t["created_resources"][1].as_str().unwrap()).await;
        assert_eq!(unit["sha256"], sha256(b"gammmama").as_str(), "{backend}");
        assert_eq!(app.get(&up).await.0, 404, "{backend}: upload consumed");
        assert_eq!(latest_present(&app, &repo).await.1, 2, "{backend}");

        // `file_url` over http and file:// below allowed_import_paths.
        let served = tempfile::tempdir().expect("tempdir");
        write(served.path(), "d.txt", b"delta");
        let fixture = FixtureServer::start(served.path()).await;
        let local = write(import.path(), "e.txt", b"epsilon");
        for (url, path, bytes) in [
            (fixture.url("d.txt"), "d.txt", &b"delta"[..]),
            (
                format!("file://{}", local.display()),
                "e.txt",
                &b"epsilon"[..],
            ),
        ] {
            let body = json!({"relative_path": path, "file_url": url});
            let t = task_of(&app, &app.post(FILES, body).await).await;
            assert_eq!(t["state"], "completed", "{backend} {url}: {t}");
            let (_, unit) = app.get(t["created_resources"][0].as_str().unwrap()).await;
            assert_eq!(unit["sha256"], sha256(bytes).as_str(), "{backend} {url}");
        }
        // A URL that fails: the task fails, nothing is stored.
        let t = task_of(
            &app,
            &app.post(
                FILES,
                json!({"relative_path": "x", "file_url": fixture.url("missing")}),
            )
            .await,
        )
        .await;
        assert_eq!(t["state"], "failed", "{backend}: {t}");

        // Refused at request time.
        let secret = write(outside.path(), "secret", b"no");
        let (_, art) = app
            .get(&format!("{ARTIFACTS}?sha256={}", sha256(b"beta")))
            .await;
        let art = art["results"][0]["pulp_href"].clone();
        for (body, field) in [
            (
                json!({"relative_path": "s", "file_url": format!("file://{}", secret.display())}),
                "file_url",
            ),
            (
                json!({"relative_path": "s", "file_url": "ftp://h/x"}),
                "file_url",
            ),
            (json!({"relative_path": "s"}), "non_field_errors"),
            (
                json!({"relative_path": "s", "artifact": art, "file_url": "http://h/x"}),
                "non_field_errors",
            ),
            (
                json!({"relative_path": "/abs", "artifact": art}),
                "relative_path",
            ),
            (json!({"artifact": art}), "relative_path"),
            (
                json!({"relative_path": "s", "artifact": "/pulp/api/v3/artifacts/00000000-0000-0000-0000-000000000000/"}),
                "artifact",
            ),
            (
                json!({"relative_path": "s", "artifact": art, "repository": "/pulp/api/v3/repositories/file/file/00000000-0000-0000-0000-000000000000/"}),
                "repository",
            ),
            (
                json!({"relative_path": "s", "artifact": art, "bogus": 1}),
                "bogus",
            ),
        ] {
            let (s, e) = app.post(FILES, body.clone()).await;
            assert_eq!(s, 400, "{backend} {body}: {e}");
            assert!(e[field].is_array(), "{backend} {body}: {e}");
        }

        // The generic list names every unit with its type and artifacts.
        let (s, all) = app
            .get("/pulp/api/v3/content/?pulp_type=file.file&limit=100")
            .await;
        assert_eq!(s, 200, "{backend}: {all}");
        assert_eq!(all["count"], 5, "{backend}: {all}");
        for item in all["results"].as_array().unwrap() {
            assert_eq!(item["pulp_type"], "file.file", "{backend}");
            assert!(
                item["pulp_href"].as_str().unwrap().starts_with(FILES),
                "{backend}"
            );
            assert_eq!(
                item["artifacts"].as_object().unwrap().len(),
                1,
                "{backend}: {item}"
            );
        }
        let (latest, _) = latest_present(&app, &repo).await;
        let (_, in_repo) = app
            .get(&format!(
                "/pulp/api/v3/content/?repository_version={latest}"
            ))
            .await;
        assert_eq!(in_repo["count"], 2, "{backend}: {in_repo}");
        let (s, _) = app.get("/pulp/api/v3/content/?pulp_type=nope.nope").await;
        assert_eq!(s, 400, "{backend}");

        assert_eq!(temp_files(&app), 0, "{backend}: no temp file left");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn overwrite_false_refuses_path_conflicts() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let repo = new_repository(&app, "overwrite").await;
        let form = file_form(
            b"one".to_vec(),
            &[("relative_path", "same.txt"), ("repository", &repo)],
        );
        let t = task_of(&app, &post_form(&app, FILES, form).await).await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");
        let first = t["created_resources"][1].as_str().unwrap().to_string();

        // Content create into the repository with overwrite=false: fails, no version.
        let form = file_form(
            b"two".to_vec(),
            &[
                ("relative_path", "same.txt"),
                ("repository", &repo),
                ("overwrite", "false"),
            ],
        );
        let t = task_of(&app, &post_form(&app, FILES, form).await).await;
        assert_eq!(t["state"], "failed", "{backend}: {t}");
        let why = t["error"]["description"].as_str().unwrap_or_default();
        assert!(
            why.contains("PLP0023") && why.contains("same.txt"),
            "{backend}: {t}"
        );
        let (latest, present) = latest_present(&app, &repo).await;
        assert!(latest.ends_with("/versions/1/"), "{backend}: {latest}");
        assert_eq!(present, 1, "{backend}");

        // The unit exists now (made before the version failed): modify with overwrite=false.
        let (_, found) = app.get(&format!("{FILES}?sha256={}", sha256(b"two"))).await;
        let second = found["results"][0]["pulp_href"]
            .as_str()
            .expect("unit")
            .to_string();
        let modify = format!("{repo}modify/");
        let t = task_of(
            &app,
            &app.post(
                &modify,
                json!({"add_content_units": [second], "overwrite": false}),
            )
            .await,
        )
        .await;
        assert_eq!(t["state"], "failed", "{backend}: {t}");
        assert!(
            latest_present(&app, &repo)
                .await
                .0
                .ends_with("/versions/1/"),
            "{backend}"
        );
        // Re-adding what is there is no conflict; removing the old one in the same call is fine.
        let t = task_of(
            &app,
            &app.post(
                &modify,
                json!({"add_content_units": [first], "overwrite": false}),
            )
            .await,
        )
        .await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");
        let t = task_of(
            &app,
            &app.post(
                &modify,
                json!({"add_content_units": [second], "remove_content_units": [first], "overwrite": false}),
            )
            .await,
        )
        .await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");
        let (latest, present) = latest_present(&app, &repo).await;
        assert!(latest.ends_with("/versions/2/"), "{backend}: {latest}");
        assert_eq!(present, 1, "{backend}");
        // The default (overwrite=true) replaces.
        let t = task_of(
            &app,
            &app.post(&modify, json!({"add_content_units": [first]}))
                .await,
        )
        .await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");
        let (latest, present) = latest_present(&app, &repo).await;
        assert!(latest.ends_with("/versions/3/"), "{backend}: {latest}");
        assert_eq!(present, 1, "{backend}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn orphan_cleanup_removes_abandoned_uploads() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let up = new_upload(&app, 4).await;
        let (s, _) = put_chunk(&app, &up, "bytes 0-1/4", b"ab".to_vec(), None).await;
        assert_eq!(s, 200, "{backend}");
        let id = up
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        assert!(media(&app).join("upload").join(&id).is_dir(), "{backend}");
        // Protected by the default protection time.
        let t = task_of(
            &app,
            &app.post("/pulp/api/v3/orphans/cleanup/", json!({})).await,
        )
        .await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");
        assert_eq!(app.get(&up).await.0, 200, "{backend}");
        // Past a protection time of 0 minutes: gone, rows and bytes.
        let body = json!({"orphan_protection_time": 0});
        let t = task_of(&app, &app.post("/pulp/api/v3/orphans/cleanup/", body).await).await;
        assert_eq!(t["state"], "completed", "{backend}: {t}");
        assert_eq!(app.get(&up).await.0, 404, "{backend}");
        assert!(!media(&app).join("upload").join(&id).exists(), "{backend}");
        app.stop().await;
    }
}

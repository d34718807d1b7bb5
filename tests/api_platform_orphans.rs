//! `artifacts/` and `orphans/cleanup/` over real HTTP: artifacts listed, filtered, shown and
//! deleted only when unused; orphan cleanup honours the protection time and `content_hrefs`,
//! keeps what a repository version uses, and removes the files of the artifacts it deletes.

mod common;

use std::time::Duration;

use common::app::{backends, send, TestApp};
use pulp_rs::db::DynStore;
use pulp_rs::models::{Artifact, ContentToSave, NewArtifact, OtherDigests, UnsavedContent};
use pulp_rs::storage::ArtifactStorage;
use serde_json::{json, Value};
use sha2::Digest;
use uuid::Uuid;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `body` into the server's storage and inserts its artifact row.
async fn artifact(app: &TestApp, store: &DynStore, body: &[u8]) -> Artifact {
    let sha256 = hex(&sha2::Sha256::digest(body));
    let file = ArtifactStorage::relative_path(&sha256).unwrap();
    let path = app.settings.data_dir.join("media").join(&file);
    std::fs::write(&path, body).unwrap();
    store
        .insert_artifacts(&[NewArtifact {
            sha256,
            size: body.len() as u64,
            other: OtherDigests {
                sha224: Some(hex(&sha2::Sha224::digest(body))),
                ..OtherDigests::default()
            },
            file,
        }])
        .await
        .unwrap()
        .remove(0)
}

/// Saves a `file.file` unit with one content artifact.
async fn unit(store: &DynStore, key: &str, artifact: &Artifact) -> Uuid {
    store
        .save_content(&[ContentToSave {
            existing_id: None,
            content: UnsavedContent {
                pulp_type: "file.file".to_string(),
                natural_key: key.to_string(),
                repo_key: key.to_string(),
                data: json!({"relative_path": key}),
            },
            artifacts: vec![(key.to_string(), Some(artifact.id))],
        }])
        .await
        .unwrap()[0]
}

/// Publishes, with raw SQL (the publication API is not needed here), the content artifact
/// `content_artifact` and the metadata artifact `metadata` in a publication of `version`.
async fn publish_raw(url: &str, version: Uuid, content_artifact: Uuid, metadata: Uuid) {
    use sqlx::Connection;
    let (p, f1, f2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(
            "INSERT INTO publications (id, pulp_type, repository_version_id, complete, \
             pulp_created, pulp_last_updated) VALUES ($1, 'file.file', $2, true, now(), now())",
        )
        .bind(p)
        .bind(version)
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO published_files (id, publication_id, relative_path, \
             content_artifact_id, artifact_id) VALUES ($1, $3, 'published.txt', $4, NULL), \
             ($2, $3, 'PULP_MANIFEST', NULL, $5)",
        )
        .bind(f1)
        .bind(f2)
        .bind(p)
        .bind(content_artifact)
        .bind(metadata)
        .execute(&mut c)
        .await
        .unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(
            "INSERT INTO publications (id, pulp_type, repository_version_id, complete, \
             pulp_created, pulp_last_updated) VALUES (?, 'file.file', ?, 1, 0, 0)",
        )
        .bind(p.to_string())
        .bind(version.to_string())
        .execute(&mut c)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO published_files (id, publication_id, relative_path, \
             content_artifact_id, artifact_id) VALUES (?1, ?3, 'published.txt', ?4, NULL), \
             (?2, ?3, 'PULP_MANIFEST', NULL, ?5)",
        )
        .bind(f1.to_string())
        .bind(f2.to_string())
        .bind(p.to_string())
        .bind(content_artifact.to_string())
        .bind(metadata.to_string())
        .execute(&mut c)
        .await
        .unwrap();
    }
}

fn file_of(app: &TestApp, a: &Artifact) -> std::path::PathBuf {
    app.settings.data_dir.join("media").join(&a.file)
}

async fn content_keys(store: &DynStore, keys: &[&str]) -> Vec<String> {
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let mut found: Vec<String> = store
        .find_content("file.file", &keys)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.natural_key)
        .collect();
    found.sort();
    found
}

async fn artifact_count(app: &TestApp) -> u64 {
    let (status, body) = app.get("/pulp/api/v3/artifacts/").await;
    assert_eq!(status, 200, "{body}");
    body["count"].as_u64().unwrap()
}

/// POSTs a cleanup and waits for its task, which must complete.
async fn cleanup(app: &TestApp, body: Value) -> Value {
    let (status, resp) = app
        .post("/pulp/api/v3/orphans/cleanup/", body.clone())
        .await;
    assert_eq!(status, 202, "{body}: {resp}");
    let href = resp["task"].as_str().expect("task href").to_string();
    let task = app.wait_task(&href, Duration::from_secs(60)).await;
    assert_eq!(task["state"], "completed", "{task}");
    task
}

fn done_of(task: &Value, code: &str) -> u64 {
    task["progress_reports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == code)
        .unwrap_or_else(|| panic!("no {code} report in {task}"))["done"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn artifacts_and_orphan_cleanup() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let store = pulp_rs::db::connect(&app.settings.database_url())
            .await
            .unwrap();

        let kept = artifact(&app, &store, b"kept by a repository version").await;
        let orphan = artifact(&app, &store, b"orphan content's file").await;
        let alone = artifact(&app, &store, b"no content at all").await;
        let named = artifact(&app, &store, b"named in content_hrefs").await;
        let other = artifact(&app, &store, b"orphan, not named").await;
        let in_repo = unit(&store, "kept.txt", &kept).await;
        unit(&store, "orphan.txt", &orphan).await;
        let named_id = unit(&store, "named.txt", &named).await;
        unit(&store, "other.txt", &other).await;
        let repo = store
            .create_repository("file.file", "r", None)
            .await
            .unwrap();
        let v = store.create_incomplete_version(repo.id).await.unwrap();
        store.associate(v.id, &[in_repo]).await.unwrap();
        let v1 = store
            .finalize_version(v.id)
            .await
            .unwrap()
            .expect("version 1");

        // ---- artifacts/ -----------------------------------------------------------------
        assert_eq!(artifact_count(&app).await, 5);
        let (status, page) = app
            .get(&format!("/pulp/api/v3/artifacts/?sha256={}", kept.sha256))
            .await;
        assert_eq!(status, 200);
        assert_eq!(page["count"], 1, "{backend}: {page}");
        let a = &page["results"][0];
        let kept_href = format!("/pulp/api/v3/artifacts/{}/", kept.id);
        assert_eq!(a["pulp_href"], kept_href.as_str());
        assert_eq!(a["prn"], format!("prn:core.artifact:{}", kept.id).as_str());
        assert_eq!(a["file"], kept.file.as_str());
        assert_eq!(a["size"], kept.size);
        assert_eq!(a["sha224"], kept.other.sha224.as_deref().unwrap());
        assert!(
            a["md5"].is_null() && a["sha1"].is_null() && a["sha512"].is_null(),
            "{a}"
        );
        assert!(a["pulp_created"].is_string() && a["pulp_last_updated"].is_string());
        let (_, page) = app
            .get(&format!(
                "/pulp/api/v3/artifacts/?sha224={}",
                orphan.other.sha224.as_deref().unwrap()
            ))
            .await;
        assert_eq!(
            page["results"][0]["sha256"],
            orphan.sha256.as_str(),
            "{page}"
        );
        let (_, page) = app.get("/pulp/api/v3/artifacts/?sha256=00&limit=2").await;
        assert_eq!(page["count"], 0);
        let (_, page) = app.get("/pulp/api/v3/artifacts/?limit=2&offset=4").await;
        assert_eq!(
            (
                page["count"].as_u64(),
                page["results"].as_array().unwrap().len()
            ),
            (Some(5), 1)
        );
        let (status, a) = app.get(&format!("{kept_href}?fields=sha256")).await;
        assert_eq!(status, 200);
        assert_eq!(a, json!({"sha256": kept.sha256}));
        for path in [
            "/pulp/api/v3/artifacts/0190f6a4-0000-7000-8000-00000000000a/",
            "/pulp/api/v3/artifacts/nope/",
        ] {
            let (status, body) = app.get(path).await;
            assert_eq!(status, 404, "{backend}: {path}");
            assert!(body["detail"].is_string());
            assert_eq!(app.delete(path).await.0, 404);
        }
        // md5 / sha1 are never recorded: nothing matches; an unknown filter is a 400.
        assert_eq!(app.get("/pulp/api/v3/artifacts/?md5=x").await.1["count"], 0);
        assert_eq!(
            app.get("/pulp/api/v3/artifacts/?sha1=x").await.1["count"],
            0
        );
        assert_eq!(app.get("/pulp/api/v3/artifacts/?colour=x").await.0, 400);
        // In use: 409, row and file stay. Unused: 204, row and file gone.
        let (status, body) = app.delete(&kept_href).await;
        assert_eq!(status, 409, "{backend}: {body}");
        assert!(file_of(&app, &kept).exists());
        let (status, _) = app
            .delete(&format!("/pulp/api/v3/artifacts/{}/", alone.id))
            .await;
        assert_eq!(status, 204, "{backend}");
        assert!(!file_of(&app, &alone).exists());
        assert_eq!(artifact_count(&app).await, 4);

        // ---- orphans/cleanup/: bad input ----------------------------------------------
        let unknown = format!("/pulp/api/v3/content/file/files/{}/", Uuid::now_v7());
        let remote_href = format!("/pulp/api/v3/remotes/file/file/{}/", Uuid::now_v7());
        for (body, field) in [
            (json!({"content_hrefs": ["nope"]}), "content_hrefs"),
            (json!({"content_hrefs": [remote_href]}), "content_hrefs"),
            (json!({"content_hrefs": [unknown]}), "content_hrefs"),
            (json!({"content_hrefs": "x"}), "content_hrefs"),
            (
                json!({"orphan_protection_time": -1}),
                "orphan_protection_time",
            ),
            (
                json!({"orphan_protection_time": "soon"}),
                "orphan_protection_time",
            ),
            (
                json!({"orphan_protection_time": 4_294_967_296u64}),
                "orphan_protection_time",
            ),
            (json!({"surprise": 1}), "surprise"),
            (json!([1]), "non_field_errors"),
        ] {
            let (status, resp) = app
                .post("/pulp/api/v3/orphans/cleanup/", body.clone())
                .await;
            assert_eq!(status, 400, "{backend}: {body}: {resp}");
            assert!(resp[field].is_array(), "{backend}: {body}: {resp}");
        }
        let (status, _) = send(
            app.req(reqwest::Method::POST, "/pulp/api/v3/orphans/cleanup/")
                .header("content-type", "application/json")
                .body("{oops"),
        )
        .await;
        assert_eq!(status, 400, "{backend}: malformed JSON");

        // ---- content_hrefs: only the named orphan and its artifact ------------------------
        let named_href = format!("/pulp/api/v3/content/file/files/{named_id}/");
        let task = cleanup(
            &app,
            json!({"content_hrefs": [named_href], "orphan_protection_time": 0}),
        )
        .await;
        assert_eq!(task["name"], "orphan_cleanup");
        assert_eq!(
            task["reserved_resources_record"],
            json!(["/pulp/api/v3/orphans/cleanup/"])
        );
        assert_eq!(done_of(&task, "clean-up.content"), 1, "{task}");
        assert_eq!(done_of(&task, "clean-up.artifacts"), 1, "{task}");
        assert_eq!(
            content_keys(
                &store,
                &["kept.txt", "named.txt", "orphan.txt", "other.txt"]
            )
            .await,
            ["kept.txt", "orphan.txt", "other.txt"]
        );
        assert!(!file_of(&app, &named).exists());
        assert!(file_of(&app, &other).exists());
        assert_eq!(artifact_count(&app).await, 3);

        // ---- the default protection time keeps fresh orphans -----------------------------
        let task = cleanup(&app, json!({})).await;
        assert_eq!(done_of(&task, "clean-up.content"), 0, "{task}");
        assert_eq!(artifact_count(&app).await, 3);
        let task = cleanup(&app, json!({"orphan_protection_time": 60})).await;
        assert_eq!(done_of(&task, "clean-up.artifacts"), 0, "{task}");

        // Content in no version but served by a publication, and a publication's metadata
        // artifact, are not orphans.
        let published = artifact(&app, &store, b"published, in no version").await;
        let metadata = artifact(&app, &store, b"a publication's metadata").await;
        let published_id = unit(&store, "published.txt", &published).await;
        let (ca, _) = store
            .content_artifacts(&[published_id])
            .await
            .unwrap()
            .remove(0);
        publish_raw(&app.settings.database_url(), v1.id, ca.id, metadata.id).await;
        assert_eq!(artifact_count(&app).await, 5);

        // ---- everything orphaned goes; what versions and publications use stays -----------
        let task = cleanup(&app, json!({"orphan_protection_time": 0})).await;
        assert_eq!(done_of(&task, "clean-up.content"), 2, "{task}");
        assert_eq!(done_of(&task, "clean-up.artifacts"), 2, "{task}");
        assert_eq!(
            content_keys(
                &store,
                &["kept.txt", "orphan.txt", "other.txt", "published.txt"]
            )
            .await,
            ["kept.txt", "published.txt"]
        );
        assert!(!file_of(&app, &orphan).exists());
        assert!(!file_of(&app, &other).exists());
        for a in [&kept, &published, &metadata] {
            assert!(file_of(&app, a).exists(), "{backend}: {}", a.file);
        }
        let (_, page) = app.get("/pulp/api/v3/artifacts/").await;
        assert_eq!(page["count"], 3, "{backend}: {page}");
        assert_eq!(page["results"][0]["pulp_href"], kept_href.as_str());
        let (status, _) = app
            .delete(&format!("/pulp/api/v3/artifacts/{}/", metadata.id))
            .await;
        assert_eq!(status, 409, "{backend}: a publication's artifact is in use");
        // Idempotent.
        let task = cleanup(&app, json!({"orphan_protection_time": 0})).await;
        assert_eq!(done_of(&task, "clean-up.content"), 0, "{task}");
        assert_eq!(done_of(&task, "clean-up.artifacts"), 0, "{task}");
        assert!(file_of(&app, &kept).exists());
        app.stop().await;
    }
}

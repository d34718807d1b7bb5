//! The content app over real HTTP (both backends): a publication's PULP_MANIFEST, files of a
//! version with HEAD / Range / conditional GET, redirects and listings, traversal attempts, and
//! on-demand / streamed fetches from a fixture server (saved once under concurrency, never
//! saved when streamed, nothing stored on a bad digest or a failing remote).

mod common;
mod content_app_support;

use std::collections::BTreeSet;
use std::time::Duration;

use common::app::{backends, TestApp};
use common::server::{sha256_hex, Fault};
use content_app_support as support;
use pulp_rs::models::Policy;
use serde_json::json;

const PUBS: &str = "/pulp/api/v3/publications/file/file/";

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publication_serves_its_manifest_and_files() {
    for backend in backends().await {
        let app = TestApp::start(backend, 2).await;
        let lib = support::lib(&app).await;
        let a = data(1000, 1);
        let b = data(70_000, 2);
        let up = support::upstream(&[("a.txt", a.clone()), ("dir/b.bin", b.clone())]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "pub", Policy::Immediate).await;
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
            json!({"name": "p", "base_path": "pub/one", "publication": created[0]}),
        )
        .await;
        let base = format!("{}/pulp/content/pub/one/", app.content);
        let resp = reqwest::get(format!("{base}PULP_MANIFEST")).await.unwrap();
        assert_eq!(resp.status(), 200, "{backend}");
        let text = resp.text().await.unwrap();
        let lines: BTreeSet<&str> = text.lines().collect();
        let want_a = format!("a.txt,{},{}", sha256_hex(&a), a.len());
        let want_b = format!("dir/b.bin,{},{}", sha256_hex(&b), b.len());
        assert_eq!(lines, BTreeSet::from([want_a.as_str(), want_b.as_str()]));
        // Pass-through content of the published version.
        let got = reqwest::get(format!("{base}dir/b.bin")).await.unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().as_ref(), b.as_slice());
        // The same through a distribution on the repository (latest publication).
        support::distribution(
            &app,
            &lib,
            json!({"name": "r", "base_path": "byrepo", "repository": support::repo_href(&repo)}),
        )
        .await;
        let m = reqwest::get(format!("{}/pulp/content/byrepo/PULP_MANIFEST", app.content))
            .await
            .unwrap();
        assert_eq!(m.status(), 200);
        assert_eq!(m.text().await.unwrap(), text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_files_head_range_conditional_and_listings() {
    for backend in backends().await {
        let app = TestApp::start(backend, 2).await;
        let lib = support::lib(&app).await;
        let a = data(5000, 3);
        let b = data(10, 4);
        let up = support::upstream(&[("a.txt", a.clone()), ("dir/sub/b.bin", b.clone())]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "ver", Policy::Immediate).await;
        support::publish(&app, &lib, &repo, 1).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "v", "base_path": "ver/x",
                   "repository_version": support::version_href(&repo, 1)}),
        )
        .await;
        let base = format!("{}/pulp/content/ver/x/", app.content);
        let client = no_redirects();

        let resp = client.get(format!("{base}a.txt")).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{backend}");
        let h = resp.headers().clone();
        assert_eq!(h["content-length"], a.len().to_string().as_str());
        assert!(h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let etag = h["etag"].to_str().unwrap().to_string();
        assert_eq!(etag, format!("\"{}\"", sha256_hex(&a)));
        assert!(h.contains_key("last-modified"));
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(resp.bytes().await.unwrap().as_ref(), a.as_slice());

        let head = client.head(format!("{base}a.txt")).send().await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(
            head.headers()["content-length"],
            a.len().to_string().as_str()
        );
        assert!(head.bytes().await.unwrap().is_empty());

        let r = client
            .get(format!("{base}a.txt"))
            .header("range", "bytes=100-199")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes 100-199/{}", a.len()).as_str()
        );
        assert_eq!(r.headers()["content-length"], "100");
        assert_eq!(r.bytes().await.unwrap().as_ref(), &a[100..200]);
        let r = client
            .get(format!("{base}a.txt"))
            .header("range", "bytes=-10")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &a[a.len() - 10..]);
        let r = client
            .get(format!("{base}a.txt"))
            .header("range", format!("bytes={}-", a.len()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 416);
        assert_eq!(
            r.headers()["content-range"],
            format!("bytes */{}", a.len()).as_str()
        );

        let r = client
            .get(format!("{base}a.txt"))
            .header("if-none-match", etag.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);

        // Directories: 301 to add the slash, then a listing of the entries directly below.
        let r = client.get(format!("{base}dir")).send().await.unwrap();
        assert_eq!(r.status(), 301);
        assert!(r.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("/ver/x/dir/"));
        let r = client.get(format!("{base}dir/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(html.contains("href=\"sub/\""), "{html}");
        assert!(!html.contains("b.bin"), "{html}");
        let r = client.get(format!("{base}dir/sub/")).send().await.unwrap();
        assert!(r.text().await.unwrap().contains("b.bin"));
        let r = client
            .get(format!("{}/pulp/content/ver/x", app.content))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 301);
        let r = client.get(&base).send().await.unwrap();
        let html = r.text().await.unwrap();
        assert!(html.contains("a.txt") && html.contains("dir/"), "{html}");
        // Above the base path, and the root.
        let r = client
            .get(format!("{}/pulp/content/ver/", app.content))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("x/"));
        let r = client
            .get(format!("{}/pulp/content/", app.content))
            .send()
            .await
            .unwrap();
        assert!(r.text().await.unwrap().contains("ver/"));
        let r = client
            .get(format!("{base}missing.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = client
            .get(format!("{}/pulp/content/nothing/here", app.content))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);

        // Traversal attempts, sent raw (a URL library would resolve the dots).
        for raw in [
            "/pulp/content/ver/x/../../../etc/passwd",
            "/pulp/content/ver/x/%2e%2e/%2e%2e/etc/passwd",
            "/pulp/content/ver/x/%2F../a.txt",
            "/pulp/content/ver/x/..%2Fa.txt",
            "/pulp/content/ver/x\\..\\a.txt",
            "/pulp/content/ver/x/a.txt%00",
            "/pulp/content//etc/passwd",
        ] {
            let status = support::raw_get_status(&app.content, raw).await;
            assert!(status == 400 || status == 404, "{raw}: {status}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_demand_is_fetched_once_and_saved() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let big = data(3 * 1024 * 1024 + 7, 5);
        let up = support::upstream(&[("big.bin", big.clone())]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "od", Policy::OnDemand).await;
        assert!(lib
            .store
            .find_artifacts_by_sha256(&[sha256_hex(&big)])
            .await
            .unwrap()
            .is_empty());
        support::publish(&app, &lib, &repo, 1).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "od", "base_path": "od",
                   "repository_version": support::version_href(&repo, 1)}),
        )
        .await;
        // Slow the upstream answer so the clients overlap.
        up.server
            .push_faults("big.bin", [Fault::Delay(Duration::from_millis(500))]);
        let url = format!("{}/pulp/content/od/big.bin", app.content);
        let mut clients = Vec::new();
        for _ in 0..6 {
            let url = url.clone();
            clients.push(tokio::spawn(async move {
                let r = reqwest::get(url).await.unwrap();
                (r.status().as_u16(), r.bytes().await.unwrap())
            }));
        }
        for c in clients {
            let (status, body) = c.await.unwrap();
            assert_eq!(status, 200, "{backend}");
            assert_eq!(body.len(), big.len());
            assert!(body.as_ref() == big.as_slice());
        }
        assert_eq!(
            up.server.requests("big.bin"),
            1,
            "{backend}: one upstream fetch"
        );
        let saved = lib
            .store
            .find_artifacts_by_sha256(&[sha256_hex(&big)])
            .await
            .unwrap();
        assert_eq!(saved.len(), 1);
        assert!(lib.storage.contains(&sha256_hex(&big)).await);
        // Later requests are served from storage, with ranges.
        let r = no_redirects()
            .get(&url)
            .header("range", "bytes=0-9")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &big[..10]);
        assert_eq!(up.server.requests("big.bin"), 1);
        assert_eq!(support::count_files(lib.storage.tmp_dir()), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_is_never_saved() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let f = data(200_000, 6);
        let up = support::upstream(&[("s.bin", f.clone())]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "st", Policy::Streamed).await;
        support::publish(&app, &lib, &repo, 1).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "st", "base_path": "st",
                   "repository_version": support::version_href(&repo, 1)}),
        )
        .await;
        let url = format!("{}/pulp/content/st/s.bin", app.content);
        for _ in 0..2 {
            let r = reqwest::get(&url).await.unwrap();
            assert_eq!(r.status(), 200, "{backend}");
            assert_eq!(r.headers()["content-length"], f.len().to_string().as_str());
            assert!(r.bytes().await.unwrap().as_ref() == f.as_slice());
        }
        // HEAD answers from what the sync recorded, without fetching.
        let h = no_redirects().head(&url).send().await.unwrap();
        assert_eq!(h.status(), 200);
        assert_eq!(h.headers()["content-length"], f.len().to_string().as_str());
        assert_eq!(up.server.requests("s.bin"), 2);
        assert!(lib
            .store
            .find_artifacts_by_sha256(&[sha256_hex(&f)])
            .await
            .unwrap()
            .is_empty());
        assert!(!lib.storage.contains(&sha256_hex(&f)).await);
        assert_eq!(support::count_files(lib.storage.tmp_dir()), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_digest_or_failing_remote_stores_nothing() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let f = data(300_000, 7);
        let g = data(1000, 8);
        let up = support::upstream(&[("bad.bin", f.clone()), ("gone.bin", g.clone())]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "bad", Policy::OnDemand).await;
        support::publish(&app, &lib, &repo, 1).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "bad", "base_path": "bad",
                   "repository_version": support::version_href(&repo, 1)}),
        )
        .await;
        // Same length, some bytes changed: known only at the end, after bytes were sent.
        up.server.set_always("bad.bin", Some(Fault::Corrupt));
        let r = reqwest::get(format!("{}/pulp/content/bad/bad.bin", app.content))
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(status == 200 || status == 502, "{status}");
        if status == 200 {
            // Headers were sent: the body must break short of its Content-Length.
            assert!(
                r.bytes().await.is_err(),
                "{backend}: corrupt bytes looked complete"
            );
        }
        // A remote that fails before sending anything: a 502 with a reason.
        up.server.set_always("gone.bin", Some(Fault::Status(404)));
        let r = reqwest::get(format!("{}/pulp/content/bad/gone.bin", app.content))
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{backend}");
        assert!(r.text().await.unwrap().contains("404"));

        for sha in [sha256_hex(&f), sha256_hex(&g)] {
            assert!(lib
                .store
                .find_artifacts_by_sha256(std::slice::from_ref(&sha))
                .await
                .unwrap()
                .is_empty());
            assert!(!lib.storage.contains(&sha).await);
        }
        // Nothing left behind in the temp area (the fetch task may still be unwinding).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while support::count_files(lib.storage.tmp_dir()) != 0 {
            assert!(tokio::time::Instant::now() < deadline, "temp files left");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Once the upstream is fixed the same path works and is saved.
        up.server.set_always("bad.bin", None);
        let r = reqwest::get(format!("{}/pulp/content/bad/bad.bin", app.content))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.bytes().await.unwrap().as_ref() == f.as_slice());
        assert_eq!(
            lib.store
                .find_artifacts_by_sha256(&[sha256_hex(&f)])
                .await
                .unwrap()
                .len(),
            1
        );
    }
}

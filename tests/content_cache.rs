//! The content app at scale, for correctness (speed is measured by `scripts/server_figures.py`):
//! its resolution cache stays coherent across processes within its documented bound (a
//! publication made through one API process served by another content process, a deleted
//! distribution no longer served, a cached 404 turning into a 200), two content processes make
//! one upstream request for the same on_demand file (and a failed fetch frees the lease at
//! once), and memory-mapped files with ranges give the right bytes. Both backends; a second
//! content process is a second server instance on the same database and storage (its own
//! cache, in-flight map and lease holder name).

mod common;
mod content_app_support;

use std::time::Duration;

use common::app::{backends, TestApp};
use common::server::{sha256_hex, Fault};
use content_app_support as support;
use pulp_rs::models::Policy;
use pulp_rs::server::{Parts, Server};
use serde_json::json;

const PUBS: &str = "/pulp/api/v3/publications/file/file/";

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// A content-only server on the app's database and storage, with this cache bound.
async fn content_process(app: &TestApp, ttl: f64) -> (Server, String) {
    let mut settings = app.settings.clone();
    settings.api_bind = "127.0.0.1:0".parse().unwrap();
    settings.content_bind = "127.0.0.1:0".parse().unwrap();
    settings.workers = 0;
    settings.content_cache_ttl = ttl;
    let server = Server::start(
        &settings,
        Parts {
            api: false,
            content: true,
            workers: 0,
        },
    )
    .await
    .expect("content process starts");
    let url = format!("http://{}", server.content_addr.expect("content listening"));
    (server, url)
}

async fn status(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

/// Sleeps past a cache bound of `ttl` seconds.
async fn past_bound(ttl: f64) {
    tokio::time::sleep(Duration::from_secs_f64(ttl) + Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_sees_changes_within_the_bound() {
    const TTL: f64 = 0.5;
    for backend in backends().await {
        let app = TestApp::start_configured(backend, 1, |s| s.content_cache_ttl = TTL).await;
        let lib = support::lib(&app).await;
        let a = data(3000, 1);
        let up = support::upstream(&[("a.txt", a.clone())]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "coh", Policy::Immediate).await;
        // Another content process with the short bound, and one whose bound is an hour (its
        // answers show what it cached).
        let (short, short_url) = content_process(&app, TTL).await;
        let (long, long_url) = content_process(&app, 3600.0).await;

        // Cached 404s: no distribution at this base path yet.
        let file = |base: &str| format!("{base}/pulp/content/coh/a.txt");
        let manifest = |base: &str| format!("{base}/pulp/content/coh/PULP_MANIFEST");
        for base in [&short_url, &long_url] {
            assert_eq!(status(&file(base)).await, 404, "{backend}");
            assert_eq!(status(&manifest(base)).await, 404, "{backend}");
        }
        // A distribution on the repository: nothing served until it is published.
        let dist = support::distribution(
            &app,
            &lib,
            json!({"name": "coh", "base_path": "coh", "repository": support::repo_href(&repo)}),
        )
        .await;
        past_bound(TTL).await;
        assert_eq!(
            status(&file(&short_url)).await,
            404,
            "{backend}: unpublished"
        );

        // A publication made through the API process: served by the other process, and its
        // cached 404s become 200s.
        support::post_task(
            &app,
            &lib,
            PUBS,
            json!({"repository": support::repo_href(&repo)}),
        )
        .await;
        past_bound(TTL).await;
        let r = reqwest::get(manifest(&short_url)).await.unwrap();
        assert_eq!(r.status(), 200, "{backend}: the new publication is served");
        let text = r.text().await.unwrap();
        assert!(text.contains(&sha256_hex(&a)), "{text}");
        let r = reqwest::get(file(&short_url)).await.unwrap();
        assert_eq!(r.status(), 200, "{backend}: a cached 404 became a 200");
        assert_eq!(r.bytes().await.unwrap().as_ref(), a.as_slice());
        assert_eq!(status(&manifest(&long_url)).await, 404, "{backend}: cached");
        assert_eq!(status(&file(&long_url)).await, 404, "{backend}: cached");

        // A deleted distribution is no longer served.
        let (code, answer) = app.delete(&dist).await;
        assert_eq!(code, 202, "{answer}");
        support::wait(&lib, &answer).await;
        assert_eq!(
            status(&file(&long_url)).await,
            404,
            "{backend}: never cached"
        );
        past_bound(TTL).await;
        assert_eq!(status(&file(&short_url)).await, 404, "{backend}: deleted");
        assert_eq!(
            status(&manifest(&short_url)).await,
            404,
            "{backend}: deleted"
        );
        short.stop().await;
        long.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_content_processes_make_one_upstream_request() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let big = data(2 * 1024 * 1024 + 3, 2);
        let small = data(5000, 3);
        let up = support::upstream(&[("big.bin", big.clone()), ("fail.bin", small.clone())]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "two", Policy::OnDemand).await;
        support::publish(&app, &lib, &repo, 1).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "two", "base_path": "two",
                   "repository_version": support::version_href(&repo, 1)}),
        )
        .await;
        let (other, other_url) = content_process(&app, 1.0).await;
        up.server
            .push_faults("big.bin", [Fault::Delay(Duration::from_millis(700))]);
        let mut clients = Vec::new();
        for i in 0..6 {
            let base = if i % 2 == 0 { &app.content } else { &other_url };
            let url = format!("{base}/pulp/content/two/big.bin");
            clients.push(tokio::spawn(async move {
                let r = reqwest::get(url).await.unwrap();
                (r.status().as_u16(), r.bytes().await.unwrap())
            }));
        }
        for c in clients {
            let (code, body) = c.await.unwrap();
            assert_eq!(code, 200, "{backend}");
            assert!(body.as_ref() == big.as_slice(), "{backend}: bytes");
        }
        assert_eq!(
            up.server.requests("big.bin"),
            1,
            "{backend}: one upstream request across both processes"
        );

        // A failed fetch frees its lease at once: the other process fetches right after.
        up.server.set_always("fail.bin", Some(Fault::Status(404)));
        let r = reqwest::get(format!("{}/pulp/content/two/fail.bin", app.content))
            .await
            .unwrap();
        assert_eq!(r.status(), 502, "{backend}");
        up.server.set_always("fail.bin", None);
        let r = reqwest::get(format!("{other_url}/pulp/content/two/fail.bin"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{backend}: not waiting for a dead lease");
        assert_eq!(r.bytes().await.unwrap().as_ref(), small.as_slice());
        assert!(up.server.requests("fail.bin") >= 2);
        other.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapped_files_and_ranges_give_the_right_bytes() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let big = data(5 * 1024 * 1024 + 11, 4);
        let small = data(4096, 5);
        let up = support::upstream(&[
            ("big.bin", big.clone()),
            ("small.bin", small.clone()),
            ("empty.bin", Vec::new()),
        ])
        .await;
        let (repo, _) = support::synced_repo(&lib, &up, "map", Policy::Immediate).await;
        support::publish(&app, &lib, &repo, 1).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "map", "base_path": "map",
                   "repository_version": support::version_href(&repo, 1)}),
        )
        .await;
        let client = reqwest::Client::new();
        let base = format!("{}/pulp/content/map", app.content);
        // Twice each: the first resolves and maps, the second comes from the caches.
        for _ in 0..2 {
            for (name, want) in [("big.bin", &big), ("small.bin", &small)] {
                let r = client.get(format!("{base}/{name}")).send().await.unwrap();
                assert_eq!(r.status(), 200, "{backend} {name}");
                assert_eq!(
                    r.headers()["content-length"],
                    want.len().to_string().as_str()
                );
                assert!(r.bytes().await.unwrap().as_ref() == want.as_slice());
            }
            let r = client
                .get(format!("{base}/empty.bin"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.bytes().await.unwrap().is_empty());
            let n = big.len();
            for (range, lo, hi) in [
                ("bytes=0-0".to_string(), 0, 1),
                ("bytes=4095-4096".to_string(), 4095, 4097),
                (format!("bytes={}-", n - 100), n - 100, n),
                ("bytes=-7".to_string(), n - 7, n),
                ("bytes=1048575-3145728".to_string(), 1_048_575, 3_145_729),
                (format!("bytes=100-{}", n + 1000), 100, n),
            ] {
                let r = client
                    .get(format!("{base}/big.bin"))
                    .header("range", &range)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 206, "{backend} {range}");
                assert_eq!(
                    r.headers()["content-range"],
                    format!("bytes {lo}-{}/{n}", hi - 1).as_str()
                );
                assert!(r.bytes().await.unwrap().as_ref() == &big[lo..hi], "{range}");
            }
            let r = client
                .get(format!("{base}/small.bin"))
                .header("range", "bytes=4096-")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 416);
            let h = client.head(format!("{base}/big.bin")).send().await.unwrap();
            assert_eq!(h.status(), 200);
            assert_eq!(h.headers()["content-length"], n.to_string().as_str());
        }
        // Many concurrent downloads of one file share its mapping and all get every byte.
        let mut clients = Vec::new();
        for _ in 0..16 {
            let (client, url) = (client.clone(), format!("{base}/big.bin"));
            clients.push(tokio::spawn(async move {
                client.get(url).send().await.unwrap().bytes().await.unwrap()
            }));
        }
        for c in clients {
            assert!(c.await.unwrap().as_ref() == big.as_slice());
        }
        // The latency histogram is exported.
        let m = reqwest::get(format!("{}/metrics", app.content))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            m.contains("pulp_content_request_duration_seconds_bucket"),
            "{m}"
        );
    }
}

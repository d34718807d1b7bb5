//! `GET /metrics` on the API and the content app: parsed as Prometheus text (with a parser),
//! its counters equal the truth (requests and retries the fixture server saw, items synced,
//! content responses), and they move after a sync and a content request.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::app::{send, TestApp};
use common::server::{write_file_repo, Fault, FixtureServer};
use serde_json::json;

/// Parses the exposition and returns `name{labels}` -> value for every sample.
async fn scrape(client: &reqwest::Client, url: &str) -> HashMap<String, f64> {
    let resp = client.get(url).send().await.expect("scrape");
    assert_eq!(resp.status(), 200, "{url}");
    let ctype = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    let text = resp.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), value);
    }
    out
}

fn get(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_parse_and_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("m{i}.txt"), vec![b'a' + i as u8; 1000 + i]))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    write_file_repo(dir.path(), &refs);
    let upstream = FixtureServer::start(dir.path()).await;
    // One file fails twice, then succeeds: two retries caused by status.
    upstream.push_faults("/m2.txt", [Fault::Status(500), Fault::Status(503)]);

    let mut app = TestApp::start("sqlite", 1).await;
    let api_metrics = format!("{}/metrics", app.api);
    let content_metrics = format!("{}/metrics", app.content);
    let before = scrape(&app.client, &api_metrics).await;

    let (_, remote) = app
        .post(
            "/pulp/api/v3/remotes/file/file/",
            json!({"name": "metered", "url": upstream.url("/PULP_MANIFEST")}),
        )
        .await;
    let (_, repo) = app
        .post(
            "/pulp/api/v3/repositories/file/file/",
            json!({"name": "metered", "remote": remote["pulp_href"]}),
        )
        .await;
    let (s, t) = app
        .post(
            &format!("{}sync/", repo["pulp_href"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(s, 202, "{t}");
    let task = app
        .wait_task(t["task"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    assert_eq!(task["state"], "completed", "{task}");
    // pulpcore's usual reports, plus one per stage with its rate.
    let reports = task["progress_reports"].as_array().unwrap();
    let by_code = |code: &str| {
        reports
            .iter()
            .find(|r| r["code"] == code)
            .unwrap_or_else(|| panic!("no {code} report in {task}"))
    };
    assert_eq!(by_code("sync.downloading.metadata")["done"], 1);
    assert_eq!(by_code("sync.downloading.artifacts")["done"], 5);
    assert_eq!(by_code("associating.content")["done"], 5);
    for stage in ["FileFirstStage", "ArtifactDownloader", "ContentAssociation"] {
        let r = by_code(&format!("sync.stage.{stage}"));
        assert_eq!(r["done"], 5, "{r}");
        assert_eq!(r["state"], "completed", "{r}");
        assert!(r["suffix"].as_str().unwrap().contains("items/s"), "{r}");
    }

    let after = scrape(&app.client, &api_metrics).await;
    let remote_l = "remote=metered";
    assert_eq!(
        get(
            &after,
            &format!("pulp_download_requests_total{{{remote_l}}}")
        ),
        upstream.total_requests() as f64,
        "requests counted equal the requests the server saw"
    );
    assert_eq!(
        get(
            &after,
            &format!("pulp_download_retries_total{{cause=status,{remote_l}}}")
        ),
        2.0
    );
    let body_bytes: usize = files.iter().map(|(_, d)| d.len()).sum();
    assert!(
        get(&after, &format!("pulp_download_bytes_total{{{remote_l}}}")) >= body_bytes as f64,
        "{after:?}"
    );
    assert_eq!(
        get(
            &after,
            "pulp_stage_items_in_total{stage=ContentAssociation}"
        ) - get(
            &before,
            "pulp_stage_items_in_total{stage=ContentAssociation}"
        ),
        5.0
    );
    assert!(
        get(
            &after,
            "pulp_stage_seconds_total{stage=ArtifactDownloader,state=busy}"
        ) > 0.0
    );
    assert_eq!(get(&after, "pulp_tasks{name=sync,state=completed}"), 1.0);
    assert_eq!(
        get(&after, &format!("pulp_download_in_flight{{{remote_l}}}")),
        0.0
    );

    // A content request moves the content app's counters (a file distribution on a
    // repository serves its latest publication).
    let (s, p) = app
        .post(
            "/pulp/api/v3/publications/file/file/",
            json!({"repository": repo["pulp_href"]}),
        )
        .await;
    assert_eq!(s, 202, "{p}");
    app.wait_task(p["task"].as_str().unwrap(), Duration::from_secs(60))
        .await;
    let (s, d) = app
        .post(
            "/pulp/api/v3/distributions/file/file/",
            json!({"name": "metered", "base_path": "metered", "repository": repo["pulp_href"]}),
        )
        .await;
    assert!(s == 201 || s == 202, "{d}");
    if let Some(t) = d["task"].as_str() {
        app.wait_task(t, Duration::from_secs(60)).await;
    }
    let c0 = scrape(&app.client, &content_metrics).await;
    let (s, _) = send(
        app.client
            .get(format!("{}/pulp/content/metered/m3.txt", app.content)),
    )
    .await;
    assert_eq!(s, 200);
    let c_mid = scrape(&app.client, &content_metrics).await;
    assert_eq!(
        get(&c_mid, "pulp_content_bytes_served_total{}")
            - get(&c0, "pulp_content_bytes_served_total{}"),
        1003.0,
        "the body of m3.txt"
    );
    let (s, _) = send(
        app.client
            .get(format!("{}/pulp/content/metered/nope.txt", app.content)),
    )
    .await;
    assert_eq!(s, 404);
    let c1 = scrape(&app.client, &content_metrics).await;
    assert_eq!(
        get(&c1, "pulp_content_requests_total{status=200}")
            - get(&c0, "pulp_content_requests_total{status=200}"),
        1.0
    );
    assert_eq!(
        get(&c1, "pulp_content_requests_total{status=404}")
            - get(&c0, "pulp_content_requests_total{status=404}"),
        1.0
    );
    app.stop().await;
}

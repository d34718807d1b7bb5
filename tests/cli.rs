//! The `pulp-rs` binary: the README's sync of the bundled fixture, `repo list|show`, and a
//! failing sync's exit status and message.

use std::path::Path;
use std::process::Command;

fn pulp(data: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pulp-rs"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("PULP_DATABASE_URL")
        .output()
        .expect("run pulp-rs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sync_the_bundled_fixture_then_show_it() {
    let data = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/basic/PULP_MANIFEST");
    let url = format!("file://{}", fixture.display());
    let (ok, out, err) = pulp(data.path(), &["sync", &url, "--repository", "demo"]);
    assert!(ok, "sync failed: {err}");
    assert!(
        out.contains("demo: version 1; +4 -0 units, 4 present"),
        "{out}"
    );
    assert!(out.contains("units/s") && out.contains("MB/s"), "{out}");

    let (ok, out, _) = pulp(data.path(), &["sync", &url, "--repository", "demo"]);
    assert!(ok);
    assert!(out.contains("no change, no new version"), "{out}");

    let (ok, out, _) = pulp(data.path(), &["repo", "list"]);
    assert!(ok);
    assert!(
        out.contains("demo\tfile.file\tlatest version 1\t4 units"),
        "{out}"
    );

    let (ok, out, _) = pulp(data.path(), &["repo", "show", "demo", "--version", "0"]);
    assert!(ok);
    assert!(out.contains("content of version 0:"), "{out}");
    assert!(!out.contains("hello.txt"), "version 0 is empty: {out}");
    let (ok, out, _) = pulp(data.path(), &["repo", "show", "demo"]);
    assert!(ok);
    assert!(
        out.contains("docs/data,v1.csv") && out.contains("hello.txt"),
        "{out}"
    );
}

#[test]
fn a_failing_sync_exits_non_zero_with_a_clear_message() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("nowhere/PULP_MANIFEST");
    let url = format!("file://{}", missing.display());
    let (ok, _, err) = pulp(data.path(), &["sync", &url, "--repository", "broken"]);
    assert!(!ok);
    assert!(err.contains("sync of \"broken\""), "{err}");
    assert!(err.contains("nowhere/PULP_MANIFEST"), "{err}");
    let (ok, out, _) = pulp(data.path(), &["repo", "list"]);
    assert!(ok);
    assert!(
        out.contains("broken\tfile.file\tlatest version 0\t0 units"),
        "{out}"
    );
}

#[test]
fn bench_writes_a_chart_with_a_series_per_stage_and_json_that_matches_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("chart.svg");
    let json = dir.path().join("bench.json");
    let (ok, out, err) = pulp(
        dir.path(),
        &[
            "bench",
            "--fixture",
            "300,2K",
            "--sample-ms",
            "10",
            "--work-dir",
            dir.path().to_str().unwrap(),
            "--chart",
            chart.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(ok, "bench failed: {out}\n{err}");
    assert!(out.contains("bottleneck:"), "{out}");

    let runs: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let run = &runs[0];
    assert_eq!(run["units"], 300, "{run}");
    let downloader = run["report"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ArtifactDownloader")
        .unwrap();
    assert_eq!(downloader["bytes"], 300 * 2048, "{downloader}");
    // All bytes fetched: the files plus the manifest.
    assert!(run["bytes"].as_u64().unwrap() > 300 * 2048, "{run}");
    let stages: Vec<&str> = run["report"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(stages.contains(&"ArtifactDownloader"), "{stages:?}");
    for s in run["report"]["stages"].as_array().unwrap() {
        if s["name"] != "FileFirstStage" {
            assert_eq!(s["items_in"], 300, "{s}");
        }
    }
    let timeline = &run["timeline"];
    assert_eq!(timeline["stages"].as_array().unwrap().len(), stages.len());
    let last = timeline["samples"].as_array().unwrap().last().unwrap();
    assert_eq!(
        last["items_out"][0], 300,
        "the last sample sees the finished sync: {last}"
    );
    // Round trip: what was written parses back to the same value.
    let again: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&runs).unwrap()).unwrap();
    assert_eq!(again, runs);

    let svg = std::fs::read_to_string(&chart).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect();
    for stage in &stages {
        assert!(
            texts.iter().any(|t| t == stage),
            "no legend entry for stage {stage}: {texts:?}"
        );
    }
    // One line per stage and per link, each with more than one point.
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter(|n| {
            n.attribute("points")
                .is_some_and(|p| p.split(' ').count() > 2)
        })
        .count();
    let links = timeline["links"].as_array().unwrap().len();
    assert!(
        lines >= stages.len() + links,
        "{lines} series for {} stages and {links} links",
        stages.len()
    );
}

#[test]
fn bench_names_the_download_the_bottleneck_when_the_upstream_is_slow() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let (ok, out, err) = pulp(
        dir.path(),
        &[
            "bench",
            "--fixture",
            "30,1K",
            "--delay-ms",
            "100",
            "--concurrency",
            "2",
            "--work-dir",
            dir.path().to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(ok, "bench failed: {out}\n{err}");
    let runs: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(runs[0]["bottleneck"], "ArtifactDownloader", "{out}");
    assert!(out.contains("bottleneck: ArtifactDownloader"), "{out}");
    // The stages before it waited on it (blocked) or had nothing left to do; the ones after
    // it waited for it (starved more than busy).
    let stages = runs[0]["report"]["stages"].as_array().unwrap();
    let after = stages
        .iter()
        .skip_while(|s| s["name"] != "ArtifactDownloader")
        .skip(1);
    for s in after {
        assert!(
            s["starved_secs"].as_f64().unwrap() > s["busy_secs"].as_f64().unwrap(),
            "{s}"
        );
    }
}

/// The names of the `pulp_bench_*` databases on the test cluster.
fn bench_databases(admin: &str) -> std::collections::BTreeSet<String> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pulp\\_bench\\_%'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        names.into_iter().collect()
    })
}

#[test]
fn bench_on_postgres_drops_the_databases_it_made() {
    let Ok(admin) = std::env::var("PULP_TEST_DATABASE_URL") else {
        eprintln!("PULP_TEST_DATABASE_URL unset: PostgreSQL half skipped");
        return;
    };
    let before = bench_databases(&admin);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let (ok, out, err) = pulp(
        dir.path(),
        &[
            "bench",
            "--fixture",
            "20,1K",
            "--runs",
            "2",
            "--database-url",
            &admin,
            "--work-dir",
            dir.path().to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(ok, "bench failed: {out}\n{err}");
    let runs: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{out}");
    assert_eq!(runs[0]["backend"], "postgres", "{out}");
    let after = bench_databases(&admin);
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "bench left databases behind: {left:?}");
}

//! The `pulp-rs` binary: the README's sync of the bundled fixture, `repo list|show|delete`,
//! `orphan cleanup`, what a failing command says (each cause once, database failures
//! explained), how it behaves in a pipe and on Ctrl-C, its help, and `bench`.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

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
    // Each cause once: the OS error is not repeated by the errors that wrap it.
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The failed first sync took its empty repository (and remote) with it.
    let (ok, out, _) = pulp(data.path(), &["repo", "list"]);
    assert!(ok);
    assert_eq!(out.trim(), "no repositories", "{out}");
}

#[test]
fn a_plain_path_where_a_url_belongs_suggests_file_url() {
    let data = tempfile::tempdir().unwrap();
    let (ok, _, err) = pulp(
        data.path(),
        &[
            "sync",
            "fixtures/basic/PULP_MANIFEST",
            "--repository",
            "demo",
        ],
    );
    assert!(!ok);
    let expected = format!(
        "for a local file use file://{}",
        std::env::current_dir()
            .unwrap()
            .join("fixtures/basic/PULP_MANIFEST")
            .display()
    );
    assert!(err.contains(&expected), "{err}");
    let (_, out, _) = pulp(data.path(), &["repo", "list"]);
    assert_eq!(out.trim(), "no repositories", "{out}");
}

#[test]
fn a_closed_postgres_port_says_connection_refused() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data = tempfile::tempdir().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{port}/pulp");
    let (ok, _, err) = pulp(data.path(), &["repo", "list", "--database-url", &url]);
    assert!(!ok);
    assert!(
        err.contains(&format!(
            "cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused"
        )),
        "{err}"
    );
    assert!(!err.contains("timed out"), "{err}");
}

#[test]
fn a_missing_postgres_database_says_so_and_how_to_create_it() {
    let Ok(admin) = std::env::var("PULP_TEST_DATABASE_URL") else {
        eprintln!("PULP_TEST_DATABASE_URL unset: skipped");
        return;
    };
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path("/pulp_no_such_database");
    let data = tempfile::tempdir().unwrap();
    let (ok, _, err) = pulp(
        data.path(),
        &["repo", "list", "--database-url", url.as_str()],
    );
    assert!(!ok);
    assert!(
        err.contains("the database \"pulp_no_such_database\" does not exist"),
        "{err}"
    );
    assert!(err.contains("createdb "), "{err}");
    assert!(err.contains(" pulp_no_such_database"), "{err}");
    // Nothing of PostgreSQL's own sources (file, line, routine).
    for word in ["line", ".c\"", "routine", "postinit"] {
        assert!(!err.contains(word), "{word:?} in {err}");
    }
}

#[test]
fn help_lists_only_a_commands_own_flags_and_no_empty_env_value() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pulp-rs"))
            .args(args)
            .env_remove("PULP_DATA_DIR")
            .env_remove("PULP_DATABASE_URL")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let bench = help(&["bench", "--help"]);
    assert!(!bench.contains("--data-dir"), "{bench}");
    let sync = help(&["sync", "--help"]);
    assert!(sync.contains("--data-dir"), "{sync}");
    assert!(!sync.contains("--api-bind"), "{sync}");
    for text in [&sync, &help(&["serve", "--help"])] {
        assert!(!text.contains("PULP_DATA_DIR="), "{text}");
    }
    let top = help(&["--help"]);
    assert!(!top.contains("--data-dir"), "{top}");
}

/// `pulp-rs sync` (on_demand, nothing downloaded) of a generated fixture of `count` files.
fn sync_generated(data: &Path, count: usize) {
    let fixture = data.join("fixture");
    pulp_rs::fixture::write_fixture(&fixture, count, 1).unwrap();
    let url = format!("file://{}", fixture.join("PULP_MANIFEST").display());
    let (ok, _, err) = pulp(
        data,
        &[
            "sync",
            &url,
            "--repository",
            "big",
            "--policy",
            "on_demand",
            "-q",
        ],
    );
    assert!(ok, "sync failed: {err}");
}

#[test]
fn repo_show_piped_into_a_reader_that_stops_ends_quietly() {
    let data = tempfile::tempdir().unwrap();
    // Far more output than a pipe buffers, so the writer meets the closed pipe.
    sync_generated(data.path(), 3000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pulp-rs"))
        .args(["repo", "show", "big", "--limit", "0", "--data-dir"])
        .arg(data.path())
        .env_remove("PULP_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    assert_eq!(first, "repository big (file.file)\n");
    drop(reader);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
}

#[test]
fn repo_show_pages_through_a_large_version() {
    let data = tempfile::tempdir().unwrap();
    sync_generated(data.path(), 2500);
    let (ok, out, err) = pulp(data.path(), &["repo", "show", "big", "--limit", "0"]);
    assert!(ok, "{err}");
    let units = out.lines().filter(|l| l.starts_with("  file.file")).count();
    assert_eq!(units, 2500);
    let (ok, out, _) = pulp(
        data.path(),
        &["repo", "show", "big", "--limit", "10", "--offset", "1995"],
    );
    assert!(ok);
    let units = out.lines().filter(|l| l.starts_with("  file.file")).count();
    assert_eq!(units, 10, "{out}");
    assert!(out.contains("... 495 more (--offset 2005"), "{out}");
}

#[test]
fn repo_delete_then_orphan_cleanup_leave_an_empty_store() {
    let data = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/basic/PULP_MANIFEST");
    let url = format!("file://{}", fixture.display());
    assert!(pulp(data.path(), &["sync", &url, "--repository", "demo", "-q"]).0);
    let files = || {
        walk(&data.path().join("media/artifact"))
            .into_iter()
            .filter(|p| p.is_file())
            .count()
    };
    assert_eq!(files(), 4);
    let (ok, out, err) = pulp(data.path(), &["repo", "delete", "demo"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("deleted repository \"demo\" and its remote"),
        "{out}"
    );
    let (_, out, _) = pulp(data.path(), &["repo", "list"]);
    assert_eq!(out.trim(), "no repositories");
    // Protected for a day by default: nothing goes yet.
    let (ok, _, err) = pulp(data.path(), &["orphan", "cleanup"]);
    assert!(ok, "{err}");
    assert_eq!(files(), 4);
    let (ok, out, err) = pulp(
        data.path(),
        &["orphan", "cleanup", "--protection-time", "0"],
    );
    assert!(ok, "{err}");
    assert!(out.contains("Clean up orphan Artifacts: 4"), "{out}");
    assert_eq!(files(), 0);
    // The sync works again from scratch.
    let (ok, out, _) = pulp(data.path(), &["sync", &url, "--repository", "demo"]);
    assert!(ok);
    assert!(out.contains("demo: version 1; +4 -0 units"), "{out}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn the_content_apps_storage_sample_finds_missing_files() {
    let data = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/basic/PULP_MANIFEST");
    let url = format!("file://{}", fixture.display());
    assert!(pulp(data.path(), &["sync", &url, "--repository", "demo", "-q"]).0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = common::db::sqlite_store(data.path()).await;
        let storage = pulp_rs::storage::ArtifactStorage::open(data.path().join("media")).unwrap();
        use pulp_rs::content::storage_check::sample;
        let found = sample(&store, &storage, 16).await.unwrap();
        assert_eq!((found.sampled, found.missing.len()), (4, 0), "{found:?}");
        std::fs::remove_dir_all(data.path().join("media/artifact")).unwrap();
        let found = sample(&store, &storage, 16).await.unwrap();
        assert_eq!((found.sampled, found.missing.len()), (4, 4), "{found:?}");
    });
}

#[test]
fn ctrl_c_cancels_a_sync_and_exits_130() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("fixture");
    pulp_rs::fixture::write_fixture(&fixture, 5, 10).unwrap();
    let server = rt.block_on(common::server::FixtureServer::start(&fixture));
    // The manifest never comes: the sync is under way until interrupted.
    server.set_always(
        "PULP_MANIFEST",
        Some(common::server::Fault::Delay(
            std::time::Duration::from_secs(600),
        )),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_pulp-rs"))
        .args([
            "sync",
            &server.url("PULP_MANIFEST"),
            "--repository",
            "slow",
            "-q",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("PULP_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while server.requests("PULP_MANIFEST") == 0 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("cancelling"), "{err}");
    let (_, out, _) = pulp(&dir.path().join("data"), &["repo", "list"]);
    assert_eq!(out.trim(), "no repositories", "{out}");
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

#[test]
fn bench_warms_up_interleaves_its_runs_and_reports_a_true_median() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let (ok, out, err) = pulp(
        dir.path(),
        &[
            "bench",
            "--fixture",
            "20,1K",
            "--concurrency",
            "2,4",
            "--runs",
            "2",
            "--work-dir",
            dir.path().to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert!(ok, "bench failed: {out}\n{err}");
    let warm = out
        .find("warm-up (concurrency 2, untimed")
        .expect("a warm-up line");
    let first_run = out.find("run 1 (concurrency").expect("a run line");
    assert!(warm < first_run, "{out}");
    let runs: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let order: Vec<(u64, u64)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["concurrency"].as_u64().unwrap(),
                r["run"].as_u64().unwrap(),
            )
        })
        .collect();
    // Round 2 starts with the other value: neither always goes first.
    assert_eq!(order, vec![(2, 1), (4, 1), (4, 2), (2, 2)], "{out}");
    for conc in [2, 4] {
        let mut secs: Vec<f64> = runs
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["concurrency"] == conc)
            .map(|r| r["seconds"].as_f64().unwrap())
            .collect();
        secs.sort_by(|a, b| a.total_cmp(b));
        let line = format!(
            "{:<12} {:>9.3} {:>9.3} {:>9.3}",
            conc,
            secs[0],
            (secs[0] + secs[1]) / 2.0,
            secs[1]
        );
        assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
    }
    for r in runs.as_array().unwrap() {
        assert!(r["peak_rss_bytes"].as_u64().is_some_and(|b| b > 0), "{r}");
    }
}

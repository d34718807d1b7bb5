//! PostgreSQL restarted under running `pulp-rs worker` processes: idle workers take the next
//! task dispatched after the restart, a task running across the restart ends in a final state
//! (completed, or failed with its reason), a task whose end comes while the database is down for
//! longer than the pools wait ends failed with its reason once it is back, a later task
//! completes, and nothing is left `running`.
//!
//! The shared cluster of the other tests is never touched: this test makes a throwaway cluster
//! of its own (`initdb` in a temp dir, trust auth, a free 127.0.0.1 port, started and restarted
//! with `pg_ctl`), removed at the end, also when the test panics ([`Cluster`]'s `Drop`). As root
//! (here and on CI) the server runs as the `postgres` user, since `initdb` refuses root. The
//! test is skipped, saying so, only when the PostgreSQL server binaries are not installed.

mod common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::app::TestApp;
use common::server::{write_file_repo, FixtureServer};
use pulp_rs::server::Settings;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);

/// The server binaries' directory of the newest installed PostgreSQL (`PULP_PG_BINDIR` first).
fn server_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PULP_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A throwaway PostgreSQL cluster in a temp dir, stopped and removed when dropped.
struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl Cluster {
    /// initdb + start; `None` (after saying why) when the server binaries are absent.
    fn start() -> Option<Cluster> {
        let Some(bin) = server_bindir() else {
            eprintln!(
                "SKIPPED: PostgreSQL restart test: no PostgreSQL server binaries \
                 (/usr/lib/postgresql/*/bin/initdb; set PULP_PG_BINDIR to point at them)"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("pulp-pg-restart-")
            .tempdir()
            .expect("temp dir");
        if is_root() {
            // initdb refuses root: the cluster belongs to `postgres`.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown")
                .success();
            assert!(ok, "cannot chown the cluster's directory to postgres");
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Cluster { bin, dir, port };
        let ok = cluster
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(cluster.data())
            .stdout(Stdio::null())
            .status()
            .expect("initdb")
            .success();
        assert!(ok, "initdb failed");
        cluster.pg_ctl(&["start"]);
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` of the server binaries, as `postgres` when this process is root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// `pg_ctl <args>` on the cluster, waiting for it to finish.
    fn pg_ctl(&self, args: &[&str]) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let ok = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options])
            .args(args)
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl")
            .success();
        assert!(ok, "pg_ctl {args:?} failed: {}", self.log());
    }

    /// Stops the cluster (`-m fast`: every connection is cut), keeps it down two seconds, and
    /// starts it again.
    fn restart(&self) {
        self.stop_for(Duration::from_secs(2));
    }

    /// Stops the cluster (`-m fast`), keeps it down for `outage`, starts it again.
    fn stop_for(&self, outage: Duration) {
        self.pg_ctl(&["-m", "fast", "stop"]);
        std::thread::sleep(outage);
        self.pg_ctl(&["start"]);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // The temp dir goes with `self.dir`.
    }
}

/// A `pulp-rs worker` process with one worker, its log in `log`.
fn worker_process(data_dir: &Path, url: &str, log: &Path) -> Child {
    let log = std::fs::File::create(log).expect("worker log");
    Command::new(env!("CARGO_BIN_EXE_pulp-rs"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["worker", "--workers", "1", "--database-url", url])
        .env_remove("PULP_DATABASE_URL")
        .env("PULP_WORKER_TTL", "15")
        .env("PULP_SHUTDOWN_GRACE", "5")
        .env("PULP_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start pulp-rs worker")
}

/// Kills the worker processes when dropped (also on panic).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for w in &mut self.0 {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

async fn create(app: &TestApp, path: &str, body: Value) -> Value {
    let (s, answer) = app.post(path, body).await;
    assert_eq!(s, 201, "POST {path}: {answer}");
    answer
}

async fn sync(app: &TestApp, repo: &Value) -> String {
    let href = format!("{}sync/", repo["pulp_href"].as_str().unwrap());
    let (s, body) = app.post(&href, json!({})).await;
    assert_eq!(s, 202, "sync: {body}");
    body["task"].as_str().unwrap().to_string()
}

/// Task counts in `state`.
async fn count(app: &TestApp, state: &str) -> u64 {
    let (s, body) = app
        .get(&format!("/pulp/api/v3/tasks/?state={state}&limit=1"))
        .await;
    assert_eq!(s, 200, "{body}");
    body["count"].as_u64().unwrap()
}

/// Waits until the upstream serves a download (the sync is in its downloads).
async fn downloading(upstream: &FixtureServer) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while upstream.in_flight() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sync never downloaded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_online_workers(app: &TestApp, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, status) = app.get("/pulp/api/v3/status/").await;
        let online = status["online_workers"].as_array().map_or(0, Vec::len);
        if s == 200 && online >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} workers never came online: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_recover_from_a_postgresql_restart() {
    let Some(cluster) = tokio::task::spawn_blocking(Cluster::start).await.unwrap() else {
        return;
    };
    {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
            .await
            .expect("connect to the throwaway cluster");
        sqlx::raw_sql("CREATE DATABASE pulp")
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
    }
    let url = cluster.url("pulp");

    let files: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("f{i}.txt"), format!("file {i}\n").into_bytes()))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    let fixture_dir = tempfile::tempdir().unwrap();
    write_file_repo(fixture_dir.path(), &refs);
    let upstream = FixtureServer::start(fixture_dir.path()).await;

    // API and content app in this process, two worker processes beside it.
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: dir.path().to_path_buf(),
        database_url: Some(url.clone()),
        api_bind: ([127, 0, 0, 1], 0).into(),
        content_bind: ([127, 0, 0, 1], 0).into(),
        workers: 0,
        admin_password: Some(common::app::ADMIN_PASSWORD.to_string()),
        worker_ttl: 15.0,
        metrics_auth: false,
        ..Settings::default()
    };
    let data_dir = dir.path().to_path_buf();
    let mut app = TestApp::start_with(settings, "postgres", Some(dir)).await;
    let logs = tempfile::tempdir().unwrap();
    let workers = Workers(
        (0..2)
            .map(|i| worker_process(&data_dir, &url, &logs.path().join(format!("w{i}.log"))))
            .collect(),
    );
    let worker_logs = || {
        (0..2)
            .map(|i| std::fs::read_to_string(logs.path().join(format!("w{i}.log"))).unwrap())
            .collect::<Vec<_>>()
            .join("\n----\n")
    };
    wait_online_workers(&app, 2).await;

    let remote = create(
        &app,
        "/pulp/api/v3/remotes/file/file/",
        json!({"name": "up", "url": upstream.url("/PULP_MANIFEST"), "policy": "immediate"}),
    )
    .await;
    let mut repos = Vec::new();
    for name in ["idle", "across", "long", "after"] {
        repos.push(
            create(
                &app,
                "/pulp/api/v3/repositories/file/file/",
                json!({"name": name, "remote": remote["pulp_href"]}),
            )
            .await,
        );
    }

    // 1. Restart while both workers are idle (waiting on LISTEN and their slow poll): an idle
    // worker takes the task dispatched afterwards, well before the 30 s safety-net poll.
    tokio::task::block_in_place(|| cluster.restart());
    let dispatched = tokio::time::Instant::now();
    let task = sync(&app, &repos[0]).await;
    let done = app.wait_task(&task, WAIT).await;
    assert_eq!(done["state"], "completed", "{done}\n{}", worker_logs());
    assert!(
        dispatched.elapsed() < Duration::from_secs(20),
        "the task after the restart waited for the safety-net poll: {:?}",
        dispatched.elapsed()
    );

    // 2. Restart while a worker runs a sync (each download held 2 s by the upstream): the task
    // ends completed or failed with its reason, never stays running.
    upstream.set_delay_all(Some(Duration::from_secs(2)));
    let across = sync(&app, &repos[1]).await;
    downloading(&upstream).await;
    let (_, running) = app.get(&across).await;
    assert_eq!(running["state"], "running", "{running}");
    tokio::task::block_in_place(|| cluster.restart());
    let ended = app.wait_task(&across, WAIT).await;
    match ended["state"].as_str() {
        Some("completed") => {}
        Some("failed") => {
            let reason = ended["error"]["description"].as_str().unwrap_or_default();
            assert!(
                !reason.trim().is_empty(),
                "failed without a reason: {ended}"
            );
            eprintln!("the sync across the restart failed: {reason}");
        }
        other => panic!("the sync across the restart ended {other:?}: {ended}"),
    }

    // 3. An outage longer than the pools wait for a connection (30 s): the sync's writes, and
    // then the recording of its end, fail while the database is down. The worker keeps trying
    // to record the end (it is alive and heartbeating, so nobody would reap the task), and the
    // task ends failed, with the reason, once the database is back.
    let long = sync(&app, &repos[2]).await;
    downloading(&upstream).await;
    tokio::task::block_in_place(|| cluster.stop_for(Duration::from_secs(40)));
    let ended = app.wait_task(&long, WAIT).await;
    assert_eq!(ended["state"], "failed", "{ended}\n{}", worker_logs());
    let reason = ended["error"]["description"].as_str().unwrap_or_default();
    assert!(
        !reason.trim().is_empty(),
        "failed without a reason: {ended}"
    );
    eprintln!("the sync across the long outage failed: {reason}");

    // 4. A later task completes, and nothing is stuck.
    upstream.set_delay_all(None);
    let after = sync(&app, &repos[3]).await;
    let done = app.wait_task(&after, WAIT).await;
    assert_eq!(done["state"], "completed", "{done}\n{}", worker_logs());
    assert_eq!(count(&app, "running").await, 0, "{}", worker_logs());
    assert_eq!(count(&app, "canceling").await, 0);
    assert_eq!(count(&app, "waiting").await, 0);
    wait_online_workers(&app, 2).await;

    drop(workers);
    app.stop().await;
    drop(cluster);
}

//! The Debian plugin with the real clients: `scripts/deb-e2e.sh` builds a signed Debian
//! repository with Debian's own tools, installs the pinned pulp-cli-deb in a virtualenv
//! (reused between runs), starts this build's `pulp-rs serve`, drives remote, repository, sync,
//! verbatim and signed structured publications and distributions through pulp-cli-deb, and
//! fetches through the content app with the real `apt-get update` / `apt-get download`
//! (signatures checked against the keys, immediate and on_demand); the .deb fetched must equal
//! the fixture's.
//!
//! Runs on SQLite, and on a fresh PostgreSQL database when `PULP_TEST_DATABASE_URL` is set.
//! Skipped only when `PULP_SKIP_PULP_CLI=1` (machines that cannot reach PyPI).

use std::path::Path;
use std::process::Command;

fn run_script(database_url: Option<&str>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/deb-e2e.sh"))
        .env("PULP_RS_BIN", env!("CARGO_BIN_EXE_pulp-rs"))
        .env_remove("PULP_RS_DATABASE_URL")
        .current_dir(root);
    if let Some(url) = database_url {
        cmd.env("PULP_RS_DATABASE_URL", url);
    }
    let out = cmd.output().expect("run scripts/deb-e2e.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let backend = if database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert!(
        out.status.success(),
        "deb end-to-end on {backend} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("deb end-to-end: PASSED"),
        "{backend}: the script did not reach its end:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apt_and_pulp_cli_deb_workflow() {
    if std::env::var("PULP_SKIP_PULP_CLI").as_deref() == Ok("1") {
        eprintln!("SKIPPED: deb end-to-end test (PULP_SKIP_PULP_CLI=1)");
        return;
    }
    tokio::task::spawn_blocking(|| run_script(None))
        .await
        .expect("sqlite run");
    if let Ok(admin) = std::env::var("PULP_TEST_DATABASE_URL") {
        let url = pulp_rs::db::fresh_database(&admin, "pulp_test")
            .await
            .expect("fresh PostgreSQL database");
        let run = {
            let url = url.clone();
            tokio::task::spawn_blocking(move || run_script(Some(&url))).await
        };
        pulp_rs::db::drop_fresh_database(&admin, &url)
            .await
            .expect("drop the test database");
        run.expect("postgres run");
    }
}

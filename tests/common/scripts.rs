//! The end-to-end scripts with real clients (`scripts/*-e2e.sh`): run with this build's binary on
//! SQLite, then on a fresh PostgreSQL database when `PULP_TEST_DATABASE_URL` is set (dropped
//! whatever the outcome), each run passing only when the script reaches its `PASSED` line.
//! Skipped when `PULP_SKIP_PULP_CLI=1` (machines that cannot reach PyPI).

use std::path::Path;
use std::process::Command;

/// Runs `scripts/<script>` once with `database_url` (SQLite when `None`); it must exit 0 and
/// print `passed_line`.
fn run_once(script: &str, passed_line: &str, database_url: Option<&str>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts").join(script))
        .env("PULP_RS_BIN", env!("CARGO_BIN_EXE_pulp-rs"))
        .env_remove("PULP_RS_DATABASE_URL")
        .current_dir(root);
    if let Some(url) = database_url {
        cmd.env("PULP_RS_DATABASE_URL", url);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let backend = if database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert!(
        out.status.success(),
        "{script} on {backend} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(passed_line),
        "{script} on {backend} did not reach its end:\n{stdout}"
    );
}

/// Runs `scripts/<script>` on every configured backend (see the module docs).
pub async fn run_on_each_backend(script: &'static str, passed_line: &'static str) {
    if std::env::var("PULP_SKIP_PULP_CLI").as_deref() == Ok("1") {
        eprintln!("SKIPPED: {script} (PULP_SKIP_PULP_CLI=1)");
        return;
    }
    tokio::task::spawn_blocking(move || run_once(script, passed_line, None))
        .await
        .expect("sqlite run");
    if let Ok(admin) = std::env::var("PULP_TEST_DATABASE_URL") {
        let url = pulp_rs::db::fresh_database(&admin, "pulp_test")
            .await
            .expect("fresh PostgreSQL database");
        let run = {
            let url = url.clone();
            tokio::task::spawn_blocking(move || run_once(script, passed_line, Some(&url))).await
        };
        // Dropped whether the run passed or not: a test run leaves no database behind.
        pulp_rs::db::drop_fresh_database(&admin, &url)
            .await
            .expect("drop the test database");
        run.expect("postgres run");
    }
}

/// Builds the Debian fixture repository (`tests/fixtures/deb/make-repo.sh`) in `dir`.
pub fn make_deb_repo(dir: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/deb/make-repo.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .output()
        .expect("run make-repo.sh");
    assert!(
        out.status.success(),
        "make-repo.sh failed (apt-utils, dpkg and gpg are needed; .ci/run installs them): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

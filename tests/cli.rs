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

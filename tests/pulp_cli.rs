//! The acceptance test with the real client: `scripts/pulp-cli-e2e.sh` installs pinned
//! pulp-cli / pulp-glue in a virtualenv (reused between runs), starts this build's `pulp-rs
//! serve` and a fixture server on free loopback ports, and drives the whole file workflow
//! (status, remotes, repositories, sync with and without --mirror, versions, content,
//! publications, distributions serving the fixture bytes, tasks with a real cancel, destroy).
//!
//! Runs on SQLite, and on a fresh PostgreSQL database when `PULP_TEST_DATABASE_URL` is set.
//! Skipped only when `PULP_SKIP_PULP_CLI=1` (e.g. offline machines that cannot reach PyPI).

mod common;

#[tokio::test(flavor = "multi_thread")]
async fn pulp_cli_file_workflow() {
    common::scripts::run_on_each_backend("pulp-cli-e2e.sh", "pulp-cli end-to-end: PASSED").await;
}

//! The Debian plugin with the real clients: `scripts/deb-e2e.sh` builds a signed Debian
//! repository with Debian's own tools, installs the pinned pulp-cli-deb in a virtualenv
//! (reused between runs), starts this build's `pulp-rs serve`, drives remote, repository, sync,
//! verbatim and signed structured publications and distributions through pulp-cli-deb, and
//! fetches through the content app with the real `apt-get update` / `apt-get download`
//! (signatures checked against the keys, immediate and on_demand); the .deb fetched must equal
//! the fixture's. On SQLite and PostgreSQL ([`common::scripts`]).

mod common;

#[tokio::test(flavor = "multi_thread")]
async fn apt_and_pulp_cli_deb_workflow() {
    common::scripts::run_on_each_backend("deb-e2e.sh", "deb end-to-end: PASSED").await;
}

//! The Debian plugin end to end: a signed APT repository built by Debian's own tools
//! (`tests/fixtures/deb/make-repo.sh`: dpkg-deb, apt-ftparchive, gpg) served by a real HTTP
//! server on 127.0.0.1, synced through `pulp_rs::sync::sync` into real SQLite and, when
//! `PULP_TEST_DATABASE_URL` is set, PostgreSQL. Every test runs once per backend.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::server::{sha256_hex, FixtureServer};
use pulp_rs::db::DynStore;
use pulp_rs::models::{Content, Policy, Remote, Repository};
use pulp_rs::plugins::deb::content::{
    PACKAGE, PACKAGE_INDEX, PACKAGE_RELEASE_COMPONENT, RELEASE, RELEASE_ARCHITECTURE,
    RELEASE_COMPONENT, RELEASE_FILE,
};
use pulp_rs::plugins::deb::{DebPlugin, DEB_TYPE, REMOTE_TYPE};
use pulp_rs::storage::ArtifactStorage;
use pulp_rs::sync::{self, SyncContext, SyncError, SyncOptions, SyncOutcome};
use serde_json::json;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// One backend's world: a store, a storage root, a fixture repository and its server.
struct World {
    backend: &'static str,
    store: DynStore,
    storage: ArtifactStorage,
    upstream: TempDir,
    server: FixtureServer,
    _data: TempDir,
}

async fn worlds() -> Vec<World> {
    let mut out = Vec::new();
    let probe = tempfile::tempdir().unwrap();
    for (backend, store) in common::db::test_stores(probe.path()).await {
        let data = tempfile::tempdir().unwrap();
        let storage = ArtifactStorage::open(data.path().join("media")).unwrap();
        let upstream = tempfile::tempdir().unwrap();
        common::scripts::make_deb_repo(upstream.path());
        let server = FixtureServer::start(upstream.path()).await;
        out.push(World {
            backend,
            store,
            storage,
            upstream,
            server,
            _data: data,
        });
    }
    std::mem::forget(probe);
    out
}

impl World {
    fn ctx(&self) -> SyncContext {
        let mut ctx = SyncContext::new(self.store.clone(), self.storage.clone());
        ctx.download.retry_base_delay = Duration::from_millis(5);
        ctx.download.retry_max_delay = Duration::from_millis(20);
        ctx
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.upstream.path().join(rel)
    }

    fn key(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// The remote (its Debian options in its plugin data, as the REST API stores them) and
    /// the repository.
    async fn repo_and_remote(
        &self,
        policy: Policy,
        options: serde_json::Value,
    ) -> (Repository, Remote) {
        let remote = match self.store.get_remote_by_name("deb").await.unwrap() {
            Some(r) => r,
            None => {
                let mut r = Remote::new(REMOTE_TYPE, "deb", &self.server.url(""), policy);
                r.max_retries = Some(0);
                self.store.create_remote(&r).await.unwrap()
            }
        };
        let mut remote = remote;
        remote.policy = policy;
        remote.plugin_data = options;
        let remote = self.store.update_remote(&remote).await.unwrap();
        let repo = match self.store.get_repository_by_name("repo").await.unwrap() {
            Some(r) => r,
            None => self
                .store
                .create_repository(DEB_TYPE, "repo", Some(remote.id))
                .await
                .unwrap(),
        };
        (repo, remote)
    }

    async fn sync(
        &self,
        options: serde_json::Value,
        policy: Policy,
        mirror: bool,
        optimize: bool,
    ) -> Result<SyncOutcome, SyncError> {
        let options_echo = options["distributions"].clone();
        let (repo, remote) = self.repo_and_remote(policy, options).await;
        assert_eq!(
            remote.plugin_data["distributions"], options_echo,
            "the store keeps the remote's plugin data"
        );
        let how = SyncOptions {
            mirror,
            plugin: json!({ "optimize": optimize }),
        };
        sync::sync(
            &self.ctx(),
            &DebPlugin,
            &repo,
            &remote,
            how,
            CancellationToken::new(),
        )
        .await
    }

    async fn latest_number(&self) -> i64 {
        let repo = self
            .store
            .get_repository_by_name("repo")
            .await
            .unwrap()
            .unwrap();
        self.store.latest_version(repo.id).await.unwrap().number
    }

    /// The latest version's units by pulp_type.
    async fn units(&self) -> BTreeMap<String, Vec<Content>> {
        let repo = self
            .store
            .get_repository_by_name("repo")
            .await
            .unwrap()
            .unwrap();
        let v = self.store.latest_version(repo.id).await.unwrap();
        let mut out: BTreeMap<String, Vec<Content>> = BTreeMap::new();
        for c in self.store.version_content(v.id, 100_000, 0).await.unwrap() {
            out.entry(c.pulp_type.clone()).or_default().push(c);
        }
        out
    }

    /// A failed sync left nothing: the latest version is `number` and no temp files remain.
    async fn assert_clean_failure(&self, number: i64) {
        assert_eq!(
            self.latest_number().await,
            number,
            "[{}] latest version changed",
            self.backend
        );
        assert_eq!(
            std::fs::read_dir(self.storage.tmp_dir()).unwrap().count(),
            0,
            "[{}] temp files left behind",
            self.backend
        );
    }

    /// Makes `dists/<suite>/Release` list the files as they now are on disk and drops its
    /// signatures (for faults that edit an index but must get past the digest check).
    fn relist(&self, suite_dir: &str) {
        let dir = self.path(suite_dir);
        let text = std::fs::read_to_string(dir.join("Release")).unwrap();
        let mut out = String::new();
        let mut in_sha256 = false;
        for line in text.lines() {
            if !line.starts_with(' ') {
                in_sha256 = line.starts_with("SHA256:");
                out.push_str(line);
                out.push('\n');
                continue;
            }
            if in_sha256 {
                let path = line.split_whitespace().nth(2).unwrap();
                let bytes = std::fs::read(dir.join(path)).unwrap();
                out.push_str(&format!(
                    " {} {} {}\n",
                    sha256_hex(&bytes),
                    bytes.len(),
                    path
                ));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        std::fs::write(dir.join("Release"), out).unwrap();
        let _ = std::fs::remove_file(dir.join("InRelease"));
        let _ = std::fs::remove_file(dir.join("Release.gpg"));
    }

    /// Rewrites an index's Packages, Packages.gz and Packages.xz from `text`.
    fn rewrite_index(&self, index_dir: &str, text: &str) {
        let dir = self.path(index_dir);
        std::fs::write(dir.join("Packages"), text).unwrap();
        for (cmd, ext) in [("gzip", "gz"), ("xz", "xz")] {
            let out = std::process::Command::new(cmd)
                .arg("-c")
                .arg(dir.join("Packages"))
                .output()
                .unwrap();
            assert!(out.status.success());
            std::fs::write(dir.join(format!("Packages.{ext}")), out.stdout).unwrap();
        }
    }
}

fn count(units: &BTreeMap<String, Vec<Content>>, pulp_type: &str) -> usize {
    units.get(pulp_type).map_or(0, Vec::len)
}

fn field<'a>(c: &'a Content, key: &str) -> &'a str {
    c.data.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

fn both_suites(w: &World) -> serde_json::Value {
    json!({ "distributions": "stable testing", "gpgkey": w.key("key.asc") })
}

#[tokio::test]
async fn immediate_sync_of_two_signed_suites() {
    for w in worlds().await {
        let out = w
            .sync(both_suites(&w), Policy::Immediate, false, false)
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}", w.backend));
        assert_eq!(out.version.unwrap().number, 1, "[{}]", w.backend);
        let units = w.units().await;
        assert_eq!(count(&units, RELEASE_FILE), 2, "[{}]", w.backend);
        assert_eq!(count(&units, RELEASE), 2);
        // amd64 and all, per distribution.
        assert_eq!(count(&units, RELEASE_ARCHITECTURE), 4);
        assert_eq!(count(&units, RELEASE_COMPONENT), 4);
        // stable: main and contrib × (all, amd64); testing says No-Support-for-Architecture-all:
        // its binary-all indices are not read.
        let mut indices: Vec<&str> = units[PACKAGE_INDEX]
            .iter()
            .map(|c| field(c, "relative_path"))
            .collect();
        indices.sort();
        assert_eq!(
            indices,
            vec![
                "dists/stable/contrib/binary-all/Packages",
                "dists/stable/contrib/binary-amd64/Packages",
                "dists/stable/main/binary-all/Packages",
                "dists/stable/main/binary-amd64/Packages",
                "dists/testing/contrib/binary-amd64/Packages",
                "dists/testing/main/binary-amd64/Packages",
            ]
        );
        // hello 2.0 and 2.1, common-data (all: in binary-all and binary-amd64 of both suites,
        // one unit), extra.
        let mut packages: Vec<(String, String, String)> = units[PACKAGE]
            .iter()
            .map(|c| {
                (
                    field(c, "package").to_string(),
                    field(c, "version").to_string(),
                    field(c, "architecture").to_string(),
                )
            })
            .collect();
        packages.sort();
        assert_eq!(
            packages,
            vec![
                ("common-data".into(), "1.0-1".into(), "all".into()),
                ("extra".into(), "0.5-1".into(), "amd64".into()),
                ("hello".into(), "1:2.0-1".into(), "amd64".into()),
                ("hello".into(), "1:2.1-1".into(), "amd64".into()),
            ]
        );
        let hello = units[PACKAGE]
            .iter()
            .find(|c| field(c, "version") == "1:2.0-1")
            .unwrap();
        assert_eq!(
            field(hello, "relative_path"),
            "pool/main/h/hello/hello_2.0-1_amd64.deb"
        );
        assert_eq!(hello.data["stanza"][0], json!(["Package", "hello"]));
        let deb = std::fs::read(w.path("pool/main/h/hello/hello_2.0-1_amd64.deb")).unwrap();
        assert_eq!(field(hello, "sha256"), sha256_hex(&deb));
        // Every package and index has its file.
        for t in [PACKAGE, PACKAGE_INDEX, RELEASE_FILE] {
            let ids: Vec<_> = units[t].iter().map(|c| c.id).collect();
            for (ca, a) in w.store.content_artifacts(&ids).await.unwrap() {
                let a = a.unwrap_or_else(|| panic!("{t} {} has no artifact", ca.relative_path));
                assert!(w.storage.absolute(&a.file).exists());
            }
        }
        // Memberships: stable main {hello 2.0, common-data}, stable contrib {extra}, testing
        // main {hello 2.1, common-data}, testing contrib {extra}.
        let name_of: BTreeMap<_, _> = units[PACKAGE]
            .iter()
            .map(|c| {
                (
                    c.id.to_string(),
                    format!("{} {}", field(c, "package"), field(c, "version")),
                )
            })
            .collect();
        let component_of: BTreeMap<_, _> = units[RELEASE_COMPONENT]
            .iter()
            .map(|c| {
                (
                    c.id.to_string(),
                    format!("{}/{}", field(c, "distribution"), field(c, "component")),
                )
            })
            .collect();
        let mut rows: Vec<String> = units[PACKAGE_RELEASE_COMPONENT]
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    component_of[field(c, "release_component")],
                    name_of[field(c, "package")]
                )
            })
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                "stable/contrib extra 0.5-1",
                "stable/main common-data 1.0-1",
                "stable/main hello 1:2.0-1",
                "testing/contrib extra 0.5-1",
                "testing/main common-data 1.0-1",
                "testing/main hello 1:2.1-1",
            ]
        );

        // Nothing changed upstream: no new version, with or without optimize.
        let again = w
            .sync(both_suites(&w), Policy::Immediate, false, false)
            .await
            .unwrap();
        assert!(
            again.version.is_none(),
            "[{}] re-sync made a version",
            w.backend
        );
        let before = w.server.total_requests();
        let optimized = w
            .sync(both_suites(&w), Policy::Immediate, true, true)
            .await
            .unwrap();
        assert!(optimized.version.is_none(), "[{}]", w.backend);
        assert_eq!(
            w.server.total_requests() - before,
            6,
            "[{}] optimize fetches the three Release files per distribution only",
            w.backend
        );
        assert_eq!(w.latest_number().await, 1);
        assert_eq!(
            w.units().await,
            units,
            "[{}] optimize kept every unit",
            w.backend
        );
    }
}

#[tokio::test]
async fn on_demand_sync_fetches_indices_but_no_packages() {
    for w in worlds().await {
        let options = json!({ "distributions": "stable", "components": "main",
                              "architectures": "amd64" });
        w.sync(options, Policy::OnDemand, false, false)
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}", w.backend));
        let units = w.units().await;
        assert_eq!(count(&units, RELEASE_COMPONENT), 1);
        assert_eq!(count(&units, PACKAGE), 2, "[{}]", w.backend);
        assert_eq!(count(&units, PACKAGE_RELEASE_COMPONENT), 2);
        assert_eq!(
            count(&units, PACKAGE_INDEX),
            2,
            "binary-all and binary-amd64"
        );
        let ids: Vec<_> = units[PACKAGE].iter().map(|c| c.id).collect();
        for (ca, a) in w.store.content_artifacts(&ids).await.unwrap() {
            assert!(a.is_none(), "on_demand stored {}", ca.relative_path);
            let ras = w.store.remote_artifacts(ca.id).await.unwrap();
            assert_eq!(ras.len(), 1);
            assert_eq!(ras[0].url, w.server.url(&ca.relative_path));
            assert!(ras[0].size.is_some() && ras[0].sha256.is_some());
        }
        assert_eq!(
            w.server.requests("pool/main/h/hello/hello_2.0-1_amd64.deb"),
            0
        );
        let ids: Vec<_> = units[PACKAGE_INDEX].iter().map(|c| c.id).collect();
        for (_, a) in w.store.content_artifacts(&ids).await.unwrap() {
            assert!(a.is_some(), "indices are always downloaded");
        }
    }
}

#[tokio::test]
async fn a_flat_repository_syncs_into_one_component() {
    for w in worlds().await {
        let options = json!({ "distributions": "flat/", "gpgkey": w.key("key.asc") });
        w.sync(options, Policy::Immediate, false, false)
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}", w.backend));
        let units = w.units().await;
        let mut names: Vec<&str> = units[PACKAGE].iter().map(|c| field(c, "package")).collect();
        names.sort();
        assert_eq!(names, vec!["flat-doc", "flat-tool"]);
        assert_eq!(
            field(&units[PACKAGE_INDEX][0], "relative_path"),
            "flat/Packages"
        );
        assert_eq!(
            field(&units[RELEASE_FILE][0], "relative_path"),
            "flat/InRelease"
        );
        assert_eq!(
            field(&units[RELEASE_COMPONENT][0], "component"),
            "flat-repo-component"
        );
        assert_eq!(count(&units, PACKAGE_RELEASE_COMPONENT), 2);
    }
}

#[tokio::test]
async fn mirror_drops_what_upstream_no_longer_lists() {
    for w in worlds().await {
        w.sync(both_suites(&w), Policy::OnDemand, false, false)
            .await
            .unwrap();
        let out = w
            .sync(
                json!({ "distributions": "stable" }),
                Policy::OnDemand,
                true,
                false,
            )
            .await
            .unwrap();
        assert_eq!(out.version.unwrap().number, 2);
        let units = w.units().await;
        assert_eq!(count(&units, RELEASE_FILE), 1, "[{}]", w.backend);
        assert_eq!(count(&units, PACKAGE), 3, "hello 2.1 went with testing");
        assert_eq!(count(&units, PACKAGE_RELEASE_COMPONENT), 3);
    }
}

/// Runs a sync expected to fail, checking its message names `file` and nothing was made;
/// returns the message.
async fn fails_naming(w: &World, options: serde_json::Value, file: &str) -> String {
    let e = w
        .sync(options, Policy::Immediate, false, false)
        .await
        .expect_err("the sync must fail")
        .to_string();
    eprintln!("[{}] {e}", w.backend);
    assert!(
        e.contains(file),
        "[{}] {e:?} does not name {file}",
        w.backend
    );
    w.assert_clean_failure(0).await;
    e
}

#[tokio::test]
async fn an_index_not_matching_the_release_fails() {
    for w in worlds().await {
        let xz = w.path("dists/stable/main/binary-amd64/Packages.xz");
        let mut bytes = std::fs::read(&xz).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&xz, bytes).unwrap();
        fails_naming(
            &w,
            json!({ "distributions": "stable" }),
            "dists/stable/main/binary-amd64/Packages.xz",
        )
        .await;
    }
}

#[tokio::test]
async fn a_release_signed_by_another_key_fails() {
    for w in worlds().await {
        let options = json!({ "distributions": "stable", "gpgkey": w.key("other-key.asc") });
        fails_naming(&w, options.clone(), "dists/stable/InRelease").await;
        // Without InRelease, the detached signature is checked.
        std::fs::remove_file(w.path("dists/stable/InRelease")).unwrap();
        fails_naming(&w, options, "dists/stable/Release.gpg").await;
        // A Release with no signature at all, while a gpgkey is set.
        std::fs::remove_file(w.path("dists/stable/Release.gpg")).unwrap();
        let e = w
            .sync(
                json!({ "distributions": "stable", "gpgkey": w.key("key.asc") }),
                Policy::Immediate,
                false,
                false,
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("signature"), "{e}");
        w.assert_clean_failure(0).await;
    }
}

#[tokio::test]
async fn a_missing_index_fails_or_is_skipped_when_asked() {
    for w in worlds().await {
        for ext in ["", ".gz", ".xz"] {
            std::fs::remove_file(
                w.path(&format!("dists/stable/contrib/binary-amd64/Packages{ext}")),
            )
            .unwrap();
        }
        fails_naming(
            &w,
            json!({ "distributions": "stable" }),
            "dists/stable/contrib/binary-amd64/Packages",
        )
        .await;
        let out = w
            .sync(
                json!({ "distributions": "stable", "ignore_missing_package_indices": true }),
                Policy::OnDemand,
                false,
                false,
            )
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}", w.backend));
        assert_eq!(out.version.unwrap().number, 1);
        let units = w.units().await;
        assert_eq!(count(&units, PACKAGE_INDEX), 3, "[{}]", w.backend);
        assert_eq!(
            count(&units, PACKAGE),
            2,
            "extra was only in the missing index"
        );
    }
}

#[tokio::test]
async fn a_missing_xz_falls_back_to_gz() {
    for w in worlds().await {
        std::fs::remove_file(w.path("dists/stable/main/binary-amd64/Packages.xz")).unwrap();
        w.sync(
            json!({ "distributions": "stable" }),
            Policy::OnDemand,
            false,
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("[{}] {e}", w.backend));
        let units = w.units().await;
        assert_eq!(count(&units, PACKAGE), 3, "[{}]", w.backend);
    }
}

#[tokio::test]
async fn a_stanza_without_filename_fails() {
    for w in worlds().await {
        let index = "dists/stable/main/binary-amd64";
        let text = std::fs::read_to_string(w.path(&format!("{index}/Packages"))).unwrap();
        let edited: String = text
            .lines()
            .filter(|l| !l.starts_with("Filename: pool/main/h/hello"))
            .map(|l| format!("{l}\n"))
            .collect();
        w.rewrite_index(index, &edited);
        w.relist("dists/stable");
        let e = w
            .sync(
                json!({ "distributions": "stable" }),
                Policy::Immediate,
                false,
                false,
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{index}/Packages.xz")), "{e}");
        assert!(e.contains("hello") && e.contains("Filename"), "{e}");
        w.assert_clean_failure(0).await;
    }
}

#[tokio::test]
async fn a_cut_xz_fails_naming_the_file() {
    for w in worlds().await {
        let xz = w.path("dists/stable/main/binary-amd64/Packages.xz");
        let bytes = std::fs::read(&xz).unwrap();
        std::fs::write(&xz, &bytes[..bytes.len() / 2]).unwrap();
        w.relist("dists/stable");
        let e = fails_naming(
            &w,
            json!({ "distributions": "stable" }),
            "dists/stable/main/binary-amd64/Packages.xz",
        )
        .await;
        assert!(e.contains("ends early"), "{e}");
    }
}

#[tokio::test]
async fn one_package_version_with_two_digests_fails() {
    for w in worlds().await {
        // testing lists hello 2.1's file under 2.0's version: the same name, version and
        // architecture as stable's hello, with another sha256.
        let index = "dists/testing/main/binary-amd64";
        let text = std::fs::read_to_string(w.path(&format!("{index}/Packages"))).unwrap();
        w.rewrite_index(index, &text.replace("Version: 1:2.1-1", "Version: 1:2.0-1"));
        w.relist("dists/testing");
        let e = w
            .sync(
                json!({ "distributions": "stable testing" }),
                Policy::OnDemand,
                false,
                false,
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("hello") && e.contains("1:2.0-1"), "{e}");
        assert!(e.contains(&format!("{index}/Packages.xz")), "{e}");
        w.assert_clean_failure(0).await;
    }
}

/// Every unit of the latest version as `(pulp_type, natural key)`.
async fn unit_keys(w: &World) -> std::collections::BTreeSet<(String, String)> {
    w.units()
        .await
        .into_values()
        .flatten()
        .map(|c| (c.pulp_type, c.natural_key))
        .collect()
}

#[tokio::test]
async fn optimize_keeps_an_unchanged_component_without_reading_its_indices() {
    for w in worlds().await {
        let stable = || json!({ "distributions": "stable" });
        w.sync(stable(), Policy::OnDemand, true, true)
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}", w.backend));
        // stable's contrib index changes (`extra` gains a field), so its Release changes;
        // main's indices stay as they are.
        let dir = "dists/stable/contrib/binary-amd64";
        let text = std::fs::read_to_string(w.path(dir).join("Packages")).unwrap();
        w.rewrite_index(dir, &format!("{}\nX-Changed: yes\n", text.trim_end()));
        w.relist("dists/stable");
        // main's index files leave the storage: reading them again would fetch them upstream.
        let units = w.units().await;
        let main: Vec<_> = units[PACKAGE_INDEX]
            .iter()
            .filter(|c| field(c, "component") == "main")
            .map(|c| c.id)
            .collect();
        assert_eq!(main.len(), 2, "[{}] binary-all and binary-amd64", w.backend);
        for (_, a) in w.store.content_artifacts(&main).await.unwrap() {
            w.storage.remove(&a.unwrap().file).await.unwrap();
        }
        let main_requests = |w: &World| -> u64 {
            ["binary-amd64", "binary-all"]
                .iter()
                .flat_map(|a| {
                    ["Packages", "Packages.gz", "Packages.xz"]
                        .map(|f| format!("dists/stable/main/{a}/{f}"))
                })
                .map(|p| w.server.requests(&p))
                .sum()
        };
        let contrib = "dists/stable/contrib/binary-amd64/Packages.xz";
        let (main_before, contrib_before) = (main_requests(&w), w.server.requests(contrib));

        let out = w
            .sync(stable(), Policy::OnDemand, true, true)
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}", w.backend));
        assert_eq!(out.version.map(|v| v.number), Some(2), "[{}]", w.backend);
        assert_eq!(
            main_requests(&w),
            main_before,
            "[{}] main's unchanged indices were read",
            w.backend
        );
        assert_eq!(
            w.server.requests(contrib),
            contrib_before + 1,
            "[{}]",
            w.backend
        );
        let units = w.units().await;
        let mut names: Vec<&str> = units[PACKAGE].iter().map(|c| field(c, "package")).collect();
        names.sort();
        assert_eq!(
            names,
            vec!["common-data", "extra", "hello"],
            "[{}]",
            w.backend
        );
        let extra = units[PACKAGE]
            .iter()
            .find(|c| field(c, "package") == "extra");
        assert!(
            extra.unwrap().data["stanza"]
                .to_string()
                .contains("X-Changed"),
            "[{}] the old extra stays",
            w.backend
        );
        assert_eq!(
            count(&units, PACKAGE_RELEASE_COMPONENT),
            3,
            "[{}]",
            w.backend
        );
        assert_eq!(count(&units, PACKAGE_INDEX), 4, "[{}]", w.backend);
        let optimized = unit_keys(&w).await;

        // A full sync of the same upstream finds nothing to change.
        let out = w
            .sync(stable(), Policy::OnDemand, true, false)
            .await
            .unwrap_or_else(|e| panic!("[{}] {e}", w.backend));
        assert!(
            out.version.is_none(),
            "[{}] the full sync changed something",
            w.backend
        );
        assert_eq!(unit_keys(&w).await, optimized, "[{}]", w.backend);
        assert!(
            main_requests(&w) > main_before,
            "[{}] the full sync reads main's indices again",
            w.backend
        );
    }
}

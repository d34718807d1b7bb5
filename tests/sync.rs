//! End to end: file syncs from a real HTTP server on 127.0.0.1 into real SQLite files and, when
//! `PULP_TEST_DATABASE_URL` is set, real PostgreSQL databases (a fresh one per test). Every test
//! runs once per backend.

mod common;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use common::server::{sha256_hex, write_file_repo, Fault, FixtureServer};
use pulp_rs::db::DynStore;
use pulp_rs::declarative::DeclarativeContent;
use pulp_rs::models::{Expected, Policy, Remote, Repository, UnsavedContent};
use pulp_rs::plugins::file::{parse_line, unit_for, FilePlugin};
use pulp_rs::plugins::{Plugin, SyncEnv};
use pulp_rs::stages::artifact_stages::ArtifactDownloader;
use pulp_rs::stages::content_stages::ContentAssociation;
use pulp_rs::stages::{Stage, StageError, StageIo};
use pulp_rs::storage::ArtifactStorage;
use pulp_rs::sync::{self, SyncContext, SyncError, SyncOutcome};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// One backend's world: a store, a storage root, an upstream directory and its server.
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
    let stores = common::db::test_stores(probe.path()).await;
    for (backend, store) in stores {
        let data = tempfile::tempdir().unwrap();
        let storage = ArtifactStorage::open(data.path().join("media")).unwrap();
        let upstream = tempfile::tempdir().unwrap();
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
    // Keep the probe dir (it holds the SQLite file) alive for the test's duration.
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

    fn manifest_url(&self) -> String {
        self.server.url("PULP_MANIFEST")
    }

    async fn repo_and_remote(
        &self,
        policy: Policy,
        tweak: impl FnOnce(&mut Remote),
    ) -> (Repository, Remote) {
        let mut remote = match self.store.get_remote_by_name("r").await.unwrap() {
            Some(r) => r,
            None => {
                let r = Remote::new("file.file", "r", &self.manifest_url(), policy);
                self.store.create_remote(&r).await.unwrap()
            }
        };
        remote.policy = policy;
        tweak(&mut remote);
        let remote = self.store.update_remote(&remote).await.unwrap();
        let repo = match self.store.get_repository_by_name("repo").await.unwrap() {
            Some(r) => r,
            None => self
                .store
                .create_repository("file.file", "repo", Some(remote.id))
                .await
                .unwrap(),
        };
        (repo, remote)
    }

    async fn sync_with(
        &self,
        plugin: &dyn Plugin,
        policy: Policy,
        mirror: bool,
        tweak: impl FnOnce(&mut Remote),
    ) -> Result<SyncOutcome, SyncError> {
        let (repo, remote) = self.repo_and_remote(policy, tweak).await;
        sync::sync(
            &self.ctx(),
            plugin,
            &repo,
            &remote,
            mirror,
            CancellationToken::new(),
        )
        .await
    }

    async fn sync(&self, policy: Policy, mirror: bool) -> Result<SyncOutcome, SyncError> {
        self.sync_with(&FilePlugin, policy, mirror, |_| {}).await
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

    /// Relative paths present in the latest version.
    async fn latest_paths(&self) -> Vec<String> {
        let repo = self
            .store
            .get_repository_by_name("repo")
            .await
            .unwrap()
            .unwrap();
        let v = self.store.latest_version(repo.id).await.unwrap();
        let mut paths: Vec<String> = self
            .store
            .version_content(v.id, 100_000, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.data["relative_path"].as_str().unwrap().to_string())
            .collect();
        paths.sort();
        paths
    }

    fn stored_files(&self) -> usize {
        count_files(&self.storage.root().join("artifact"))
    }

    /// Every stored file's sha256 matches the digest its path names.
    fn assert_storage_intact(&self) {
        fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out)
                } else {
                    out.push(p)
                }
            }
        }
        let mut all = Vec::new();
        walk(&self.storage.root().join("artifact"), &mut all);
        for p in all {
            let name = format!(
                "{}{}",
                p.parent().unwrap().file_name().unwrap().to_string_lossy(),
                p.file_name().unwrap().to_string_lossy()
            );
            let actual = sha256_hex(&std::fs::read(&p).unwrap());
            assert_eq!(
                actual,
                name,
                "[{}] corrupt artifact {}",
                self.backend,
                p.display()
            );
        }
    }

    fn tmp_entries(&self) -> usize {
        std::fs::read_dir(self.storage.tmp_dir()).unwrap().count()
    }

    /// Nothing half-made: the latest version is `number`, no temp files remain.
    async fn assert_clean_failure(&self, number: i64) {
        assert_eq!(
            self.latest_number().await,
            number,
            "[{}] latest version changed",
            self.backend
        );
        assert_eq!(
            self.tmp_entries(),
            0,
            "[{}] temp files left behind",
            self.backend
        );
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { count_files(&p) } else { 1 })
        .sum()
}

fn files(n: usize, size: usize, tag: &str) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let mut data = format!("{tag}-{i}-").into_bytes();
            data.resize(size.max(data.len()), (i % 251) as u8);
            (format!("dir{}/file-{i}.txt", i % 7), data)
        })
        .collect()
}

fn write_repo(dir: &Path, entries: &[(String, Vec<u8>)]) {
    let refs: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(p, d)| (p.as_str(), d.clone()))
        .collect();
    write_file_repo(dir, &refs);
}

#[tokio::test]
async fn first_sync_creates_version_1_with_files_and_remote_artifacts() {
    for w in worlds().await {
        let entries = vec![
            ("a.txt".to_string(), b"alpha".to_vec()),
            ("sub/b,with,commas.txt".to_string(), b"beta".to_vec()),
            ("sub/deeper/c d.bin".to_string(), vec![7u8; 10_000]),
        ];
        write_repo(w.upstream.path(), &entries);
        let out = w.sync(Policy::Immediate, false).await.unwrap();
        let v = out.version.expect("a new version");
        assert_eq!(v.number, 1, "[{}]", w.backend);
        assert_eq!(
            (v.counts.added, v.counts.removed, v.counts.present),
            (3, 0, 3)
        );
        assert_eq!(
            w.latest_paths().await,
            vec!["a.txt", "sub/b,with,commas.txt", "sub/deeper/c d.bin"]
        );
        assert_eq!(w.stored_files(), 3);
        for (_, data) in &entries {
            let sha = sha256_hex(data);
            let rel = ArtifactStorage::relative_path(&sha).unwrap();
            assert_eq!(&std::fs::read(w.storage.absolute(&rel)).unwrap(), data);
        }
        let content = w.store.version_content(v.id, 100, 0).await.unwrap();
        let ids: Vec<_> = content.iter().map(|c| c.id).collect();
        let cas = w.store.content_artifacts(&ids).await.unwrap();
        assert_eq!(cas.len(), 3);
        for (ca, art) in &cas {
            assert!(art.is_some(), "immediate sync links the artifact");
            let ras = w.store.remote_artifacts(ca.id).await.unwrap();
            assert_eq!(ras.len(), 1, "one remote artifact per content artifact");
            assert!(ras[0].url.starts_with(&w.server.url("")), "{}", ras[0].url);
        }
        assert_eq!(w.tmp_entries(), 0);
        // Every file was fetched once, plus the manifest.
        assert_eq!(w.server.total_requests(), 4);
    }
}

#[tokio::test]
async fn a_no_op_resync_downloads_nothing_and_makes_no_version() {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(20, 100, "x"));
        w.sync(Policy::Immediate, false).await.unwrap();
        let before = w.server.total_requests();
        let out = w.sync(Policy::Immediate, false).await.unwrap();
        assert!(
            out.version.is_none(),
            "[{}] no-op sync made a version",
            w.backend
        );
        assert_eq!(out.counts.present, 20);
        assert_eq!(w.latest_number().await, 1);
        assert_eq!(
            w.server.total_requests() - before,
            1,
            "only the manifest is fetched"
        );
        assert_eq!(
            out.downloads
                .completed
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}

#[tokio::test]
async fn upstream_changes_additive_then_mirror_then_replaced_digest() {
    for w in worlds().await {
        let v1 = files(5, 50, "one");
        write_repo(w.upstream.path(), &v1);
        w.sync(Policy::Immediate, false).await.unwrap();

        // Upstream drops file 0 and adds a new one.
        let mut v2: Vec<_> = v1[1..].to_vec();
        v2.push(("new/added.txt".into(), b"added".to_vec()));
        std::fs::remove_dir_all(w.upstream.path()).ok();
        write_repo(w.upstream.path(), &v2);

        let additive = w
            .sync(Policy::Immediate, false)
            .await
            .unwrap()
            .version
            .unwrap();
        assert_eq!(
            (
                additive.number,
                additive.counts.added,
                additive.counts.removed
            ),
            (2, 1, 0)
        );
        assert_eq!(
            additive.counts.present, 6,
            "[{}] additive keeps the dropped file",
            w.backend
        );

        let mirrored = w
            .sync(Policy::Immediate, true)
            .await
            .unwrap()
            .version
            .unwrap();
        assert_eq!(
            (
                mirrored.number,
                mirrored.counts.added,
                mirrored.counts.removed
            ),
            (3, 0, 1)
        );
        assert_eq!(mirrored.counts.present, 5);
        assert!(!w.latest_paths().await.contains(&v1[0].0));

        // Same path, new bytes: the new unit replaces the old one even without mirror.
        let mut v3 = v2.clone();
        v3[0].1 = b"changed bytes".to_vec();
        write_repo(w.upstream.path(), &v3);
        let replaced = w
            .sync(Policy::Immediate, false)
            .await
            .unwrap()
            .version
            .unwrap();
        assert_eq!(
            (
                replaced.counts.added,
                replaced.counts.removed,
                replaced.counts.present
            ),
            (1, 1, 5)
        );

        // Older versions still answer with their own content.
        let repo = w
            .store
            .get_repository_by_name("repo")
            .await
            .unwrap()
            .unwrap();
        let old = w.store.get_version(repo.id, 1).await.unwrap().unwrap();
        assert_eq!(
            w.store.version_content(old.id, 100, 0).await.unwrap().len(),
            5
        );
    }
}

#[tokio::test]
async fn on_demand_records_remote_artifacts_and_downloads_nothing() {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(10, 64, "od"));
        let out = w.sync(Policy::OnDemand, false).await.unwrap();
        let v = out.version.unwrap();
        assert_eq!(v.counts.added, 10);
        assert_eq!(
            w.stored_files(),
            0,
            "[{}] on_demand stored files",
            w.backend
        );
        assert_eq!(w.server.total_requests(), 1, "only the manifest");
        let ids: Vec<_> = w
            .store
            .version_content(v.id, 100, 0)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        let cas = w.store.content_artifacts(&ids).await.unwrap();
        assert_eq!(cas.len(), 10);
        for (ca, art) in &cas {
            assert!(art.is_none());
            let ras = w.store.remote_artifacts(ca.id).await.unwrap();
            assert_eq!(ras.len(), 1);
            assert!(ras[0].sha256.is_some() && ras[0].size == Some(64));
        }
        // Switching the remote to immediate fills the artifacts in without a new version.
        let again = w.sync(Policy::Immediate, false).await.unwrap();
        assert!(again.version.is_none());
        assert_eq!(w.stored_files(), 10);
        let cas = w.store.content_artifacts(&ids).await.unwrap();
        assert!(
            cas.iter().all(|(_, a)| a.is_some()),
            "[{}] artifacts linked",
            w.backend
        );
    }
}

#[tokio::test]
async fn streamed_policy_downloads_nothing() {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(3, 10, "st"));
        w.sync(Policy::Streamed, false).await.unwrap();
        assert_eq!(w.stored_files(), 0);
        assert_eq!(w.server.total_requests(), 1);
    }
}

#[tokio::test]
async fn ten_mib_file_and_five_thousand_units() {
    for w in worlds().await {
        let mut entries = files(5_000, 16, "many");
        let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
        entries.push(("big/ten-mib.bin".into(), big.clone()));
        write_repo(w.upstream.path(), &entries);
        let v = w
            .sync(Policy::Immediate, false)
            .await
            .unwrap()
            .version
            .unwrap();
        assert_eq!(v.counts.present, 5_001, "[{}]", w.backend);
        let rel = ArtifactStorage::relative_path(&sha256_hex(&big)).unwrap();
        assert_eq!(
            std::fs::metadata(w.storage.absolute(&rel)).unwrap().len(),
            10 * 1024 * 1024
        );
        assert_eq!(w.stored_files(), 5_001);
    }
}

// ---- faults -----------------------------------------------------------------------------------

/// Syncs a good version 1, breaks file `f` upstream as `break_it` says, checks the next sync
/// fails with `expect` in its message and leaves nothing half-made, then repairs and re-syncs.
async fn fault_case(
    name: &str,
    break_it: impl Fn(&World, &str),
    tweak: impl Fn(&mut Remote) + Copy,
    expect: &[&str],
) {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(3, 100, "base"));
        w.sync(Policy::Immediate, false).await.unwrap();
        let mut next = files(3, 100, "base");
        next.push(("victim.bin".into(), b"the victim's bytes".to_vec()));
        write_repo(w.upstream.path(), &next);
        break_it(&w, "victim.bin");
        let err = w
            .sync_with(&FilePlugin, Policy::Immediate, false, tweak)
            .await
            .expect_err(name);
        let msg = format!("{err:#}");
        for e in expect {
            assert!(
                msg.contains(e),
                "[{}] {name}: {msg:?} lacks {e:?}",
                w.backend
            );
        }
        w.assert_clean_failure(1).await;
        // Good artifacts fetched before the failure may stay (the next sync reuses them), but
        // no stored file may hold other bytes than its digest says.
        w.assert_storage_intact();
        // Repair upstream and re-sync: succeeds with the next number.
        w.server.set_always("victim.bin", None);
        write_repo(w.upstream.path(), &next);
        let v = w
            .sync(Policy::Immediate, false)
            .await
            .unwrap()
            .version
            .unwrap();
        assert_eq!(
            (v.number, v.counts.added),
            (2, 1),
            "[{}] {name}: re-sync",
            w.backend
        );
    }
}

/// Appends raw lines to the upstream manifest.
fn append_to_manifest(w: &World, lines: &str) {
    let path = w.upstream.path().join("PULP_MANIFEST");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(lines);
    std::fs::write(&path, text).unwrap();
}

fn corrupt_manifest_sha(w: &World, victim: &str) {
    // The manifest promises other bytes than the server has.
    let path = w.upstream.path().join("PULP_MANIFEST");
    let text = std::fs::read_to_string(&path).unwrap();
    let real = sha256_hex(&std::fs::read(w.upstream.path().join(victim)).unwrap());
    let fake = sha256_hex(b"something else");
    std::fs::write(&path, text.replace(&real, &fake)).unwrap();
}

#[tokio::test]
async fn fault_wrong_sha256() {
    fault_case(
        "wrong sha256",
        corrupt_manifest_sha,
        |r| r.max_retries = Some(1),
        &[
            "victim.bin",
            "sha256",
            &sha256_hex(b"something else"),
            &sha256_hex(b"the victim's bytes"),
        ],
    )
    .await;
}

#[tokio::test]
async fn fault_wrong_size() {
    fault_case(
        "wrong size",
        |w, victim| {
            let path = w.upstream.path().join("PULP_MANIFEST");
            let text = std::fs::read_to_string(&path).unwrap();
            let real = sha256_hex(&std::fs::read(w.upstream.path().join(victim)).unwrap());
            let line = format!("{victim},{real},18");
            assert!(text.contains(&line), "{text}");
            std::fs::write(&path, text.replace(&line, &format!("{victim},{real},99"))).unwrap();
        },
        |r| r.max_retries = Some(1),
        &["victim.bin", "size", "99", "18"],
    )
    .await;
}

#[tokio::test]
async fn fault_404_fails_without_retry() {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(2, 10, "x"));
        std::fs::remove_file(w.upstream.path().join("dir1/file-1.txt")).unwrap();
        let err = w.sync(Policy::Immediate, false).await.unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("404") && msg.contains("dir1/file-1.txt"),
            "{msg}"
        );
        assert_eq!(w.server.requests("dir1/file-1.txt"), 1, "no retry on 404");
        w.assert_clean_failure(0).await;
    }
}

#[tokio::test]
async fn fault_500_twice_then_ok_succeeds() {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(2, 10, "x"));
        w.server
            .push_faults("dir0/file-0.txt", [Fault::Status(500), Fault::Status(500)]);
        let out = w.sync(Policy::Immediate, false).await.unwrap();
        assert_eq!(out.version.unwrap().counts.added, 2);
        assert_eq!(w.server.requests("dir0/file-0.txt"), 3);
        assert_eq!(out.downloads.retries(), 2);
    }
}

#[tokio::test]
async fn fault_always_500_fails_after_retries() {
    fault_case(
        "always 500",
        |w, victim| w.server.set_always(victim, Some(Fault::Status(500))),
        |_| {},
        &["victim.bin", "500", "4 attempts"],
    )
    .await;
}

#[tokio::test]
async fn fault_always_500_makes_exactly_four_requests() {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(1, 10, "x"));
        w.server
            .set_always("dir0/file-0.txt", Some(Fault::Status(500)));
        w.sync(Policy::Immediate, false).await.unwrap_err();
        assert_eq!(w.server.requests("dir0/file-0.txt"), 4, "[{}]", w.backend);
    }
}

#[tokio::test]
async fn fault_body_cut_short() {
    fault_case(
        "body cut short",
        |w, victim| w.server.set_always(victim, Some(Fault::Truncate)),
        |r| r.max_retries = Some(1),
        &["victim.bin"],
    )
    .await;
}

#[tokio::test]
async fn fault_server_stalls_until_timeout() {
    fault_case(
        "stall",
        |w, victim| {
            w.server
                .set_always(victim, Some(Fault::Stall(Duration::from_secs(30))))
        },
        |r| {
            r.max_retries = Some(0);
            r.sock_read_timeout = Some(0.3);
        },
        &["victim.bin", "timed out"],
    )
    .await;
}

#[tokio::test]
async fn truncated_corrupt_429_then_ok_makes_exactly_five_requests() {
    for w in worlds().await {
        write_repo(
            w.upstream.path(),
            &[("one.bin".to_string(), vec![42u8; 4096])],
        );
        w.server.push_faults(
            "one.bin",
            [Fault::Truncate, Fault::Corrupt, Fault::Status(429)],
        );
        let out = w.sync(Policy::Immediate, false).await.unwrap();
        assert_eq!(out.version.unwrap().counts.added, 1);
        assert_eq!(
            w.server.total_requests(),
            5,
            "[{}] manifest once + 4",
            w.backend
        );
        assert_eq!(w.server.requests("PULP_MANIFEST"), 1);
    }
}

#[tokio::test]
async fn fault_malformed_manifest_names_the_line() {
    fault_case(
        "malformed manifest",
        |w, _| {
            append_to_manifest(w, "# a comment\n\nnot,a valid line\n");
        },
        |_| {},
        &["line 7", "malformed manifest"],
    )
    .await;
}

#[tokio::test]
async fn fault_path_traversal_in_manifest_is_rejected() {
    fault_case(
        "path traversal",
        |w, _| {
            append_to_manifest(w, &format!("../../etc/passwd,{},5\n", sha256_hex(b"xxxxx")));
        },
        |_| {},
        &["escapes the repository", "line 5"],
    )
    .await;
}

#[tokio::test]
async fn cancelling_a_sync_leaves_nothing_half_made() {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(50, 1000, "c"));
        w.server.set_delay_all(Some(Duration::from_millis(200)));
        let (repo, remote) = w.repo_and_remote(Policy::Immediate, |_| {}).await;
        let cancel = CancellationToken::new();
        let ctx = w.ctx();
        let run = {
            let cancel = cancel.clone();
            async move { sync::sync(&ctx, &FilePlugin, &repo, &remote, false, cancel).await }
        };
        let handle = tokio::spawn(run);
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
        let err = tokio::time::timeout(Duration::from_secs(10), handle)
            .await
            .expect("cancellation is prompt")
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, SyncError::Cancelled), "{err}");
        w.assert_clean_failure(0).await;
        w.server.set_delay_all(None);
        let v = w
            .sync(Policy::Immediate, false)
            .await
            .unwrap()
            .version
            .unwrap();
        assert_eq!((v.number, v.counts.added), (1, 50));
    }
}

// ---- multi-level discovery ---------------------------------------------------------------------

/// A test plugin: its remote URL points at an index file (manifest lines); the first stage
/// emits the index as a unit, awaits it, reads the saved index artifact, and emits the files it
/// lists.
struct IndexPlugin;

impl Plugin for IndexPlugin {
    fn name(&self) -> &'static str {
        "index"
    }
    fn repository_type(&self) -> &'static str {
        "file.file"
    }
    fn first_stage(&self, env: &SyncEnv) -> Box<dyn Stage> {
        Box::new(IndexFirstStage { env: env.clone() })
    }

    fn api_names(&self) -> pulp_rs::plugins::ApiNames {
        pulp_rs::plugins::ApiNames {
            app_label: "index",
            kind: "index",
            content_kind: "units",
        }
    }

    fn model_names(&self) -> pulp_rs::plugins::ModelNames {
        pulp_rs::plugins::ModelNames {
            remote: "IndexRemote",
            repository: "IndexRepository",
            distribution: "IndexDistribution",
        }
    }

    fn content_types(&self) -> Vec<std::sync::Arc<dyn pulp_rs::plugins::ContentType>> {
        vec![std::sync::Arc::new(pulp_rs::plugins::file::FileContentType)]
    }
}

struct IndexFirstStage {
    env: SyncEnv,
}

#[async_trait]
impl Stage for IndexFirstStage {
    fn name(&self) -> String {
        "IndexFirstStage".into()
    }
    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        let url = self.env.remote.remote.url.clone();
        let index = DeclarativeContent::new(
            UnsavedContent {
                pulp_type: "test.index".into(),
                natural_key: url.clone(),
                repo_key: "index".into(),
                data: serde_json::json!({ "relative_path": "INDEX" }),
            },
            vec![pulp_rs::declarative::DeclarativeArtifact {
                artifact: pulp_rs::declarative::ArtifactState::Unsaved(Expected::default()),
                url: url.clone(),
                relative_path: "INDEX".into(),
                remote: self.env.remote.clone(),
                deferred_download: false,
            }],
        );
        let (index, resolution) = index.with_future();
        io.output.put(index).await?;
        let resolved = resolution
            .await
            .map_err(|e| StageError::Plugin(e.to_string()))?;
        let artifact = resolved.artifacts[0]
            .1
            .clone()
            .expect("index was downloaded");
        let text = std::fs::read_to_string(self.env.stages.storage.absolute(&artifact.file))
            .map_err(|e| StageError::Plugin(e.to_string()))?;
        for (i, line) in text.lines().enumerate() {
            if let Some(entry) =
                parse_line(i + 1, line).map_err(|e| StageError::Plugin(e.to_string()))?
            {
                io.output
                    .put(unit_for(&self.env, entry).map_err(StageError::Plugin)?)
                    .await?;
            }
        }
        Ok(())
    }
}

#[tokio::test]
async fn multi_level_discovery_awaits_the_index_then_syncs_what_it_lists() {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(30, 20, "ml"));
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            w.sync_with(&IndexPlugin, Policy::Immediate, false, |_| {}),
        )
        .await
        .expect("multi-level discovery must not deadlock");
        let v = out.unwrap().version.unwrap();
        assert_eq!(
            v.counts.added, 31,
            "[{}] the index and its 30 files",
            w.backend
        );
        assert_eq!(w.stored_files(), 31);
        let report = w
            .store
            .list_versions(
                w.store
                    .get_repository_by_name("repo")
                    .await
                    .unwrap()
                    .unwrap()
                    .id,
            )
            .await
            .unwrap();
        assert_eq!(report.len(), 2);
    }
}

#[tokio::test]
async fn the_file_first_stage_is_measured_like_every_stage() {
    for w in worlds().await {
        write_repo(w.upstream.path(), &files(40, 10, "m"));
        let out = w.sync(Policy::Immediate, false).await.unwrap();
        let first = out.report.stage("FileFirstStage").unwrap();
        assert_eq!(first.items_out, 40);
        let dl = out.report.stage(ArtifactDownloader::NAME).unwrap();
        assert_eq!((dl.items_in, dl.bytes), (40, 400));
        assert_eq!(
            out.report.stage(ContentAssociation::NAME).unwrap().items_in,
            40
        );
        assert!(out.report.bottleneck().is_some());
    }
}

#[tokio::test]
async fn the_same_path_twice_with_different_digests_fails_cleanly() {
    fault_case(
        "duplicate path",
        |w, _| {
            std::fs::write(w.upstream.path().join("twin.txt"), b"first").unwrap();
            append_to_manifest(
                w,
                &format!(
                    "twin.txt,{},5\ntwin.txt,{},6\n",
                    sha256_hex(b"first"),
                    sha256_hex(b"second")
                ),
            );
        },
        |r| r.max_retries = Some(0),
        &["twin.txt"],
    )
    .await;
}

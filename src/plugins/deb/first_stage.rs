//! The Debian first stage: discovers a repository level by level with declarative futures.
//!
//! Per distribution of [`DebRemoteOptions::distributions`] (`stable`, or `flat/` for a flat
//! repository whose files sit under `<url>/flat/` with no `dists/`):
//!
//! 1. fetch `InRelease`, `Release` and `Release.gpg` (a missing one is fine, as long as
//!    `InRelease` or `Release` exists); with a `gpgkey`, check `InRelease`'s signature, else
//!    `Release` against `Release.gpg`; parse the Release text. All distributions are fetched
//!    before anything is emitted, so a bad signature anywhere stores nothing.
//! 2. emit the `deb.release_file` unit (its files already downloaded) and await it, then
//!    `deb.release`, `deb.release_architecture`s and the `deb.release_component`s (awaited:
//!    their ids are needed for membership rows).
//! 3. per selected component and architecture (the remote's lists intersected with the
//!    Release's, empty = all; plus `all`, whose separate `binary-all` index is skipped when the
//!    Release says `No-Support-for-Architecture-all: Packages` because those packages are then
//!    in every `binary-<arch>` index) take the best listed index (`.xz`, `.gz`, plain),
//!    download it checked against the Release's size and SHA256 (whatever the policy), emit
//!    the `deb.package_index` unit and await it, then stream its stanzas from storage
//!    (decompressing on the fly, checking the uncompressed SHA256 when the Release lists it)
//!    and emit one `deb.package` per stanza with its `.deb` (deferred unless the policy is
//!    immediate).
//! 4. membership: every package unit carries a future; the stage keeps at most
//!    [`WINDOW`] outstanding and awaits the oldest when the window is full (units batch
//!    normally until awaited), then emits `deb.package_release_component(package, component)`.
//!    A package already resolved earlier in the sync (an `all` package listed by several
//!    indices) is not emitted again: its id is remembered.
//!
//! **Duplicates**: one name, version and architecture with two different SHA256 digests in a
//! sync fails; the same `.deb` at two pool paths is two units.
//!
//! **Optimize** (whole-sync skip): when `optimize` is on, every distribution's
//! `artifact_set_sha256` matches a release file of the repository's latest version, the latest
//! version holds exactly the release files of these distributions, and the package indices the
//! options select are exactly those of the latest version, no index is downloaded: the stage
//! raises [`crate::plugins::SyncEnv::skip`] and stops, and the sync makes no new version
//! (`mirror` or not). A change of policy alone is not seen by this check.
//!
//! **Optimize** (per component): otherwise, a component of a distribution whose package
//! indices are exactly those of the latest version (same paths, each with the compressed and
//! uncompressed SHA256 the Release lists now) is not read at all: its index units, its
//! memberships and the packages they name are declared again as the latest version holds them
//! (read a page at a time), so the version is what a full sync makes, `mirror` included. The
//! unit is the component rather than each index because an `all` package may be listed by
//! several of a component's indices: once one of them changed, which of its `all` packages the
//! unchanged ones still list is known only by reading them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::compression::{self, Compression};
use super::content::{
    artifact_set_sha256, PackageData, PackageIndexData, PackageReleaseComponentData,
    ReleaseArchitectureData, ReleaseComponentData, ReleaseData, ReleaseFileData,
    FLAT_REPO_COMPONENT, PACKAGE, PACKAGE_INDEX, PACKAGE_RELEASE_COMPONENT, RELEASE_FILE,
};
use super::deb822::{ReadError, StanzaReader};
use super::release::{signed_body, ListedFile, Release};
use super::verify::Keyring;
use super::DebError;
use crate::declarative::{
    ArtifactState, ContentFuture, ContentState, DeclarativeArtifact, DeclarativeContent,
};
use crate::downloader::{DownloadError, DownloadResult};
use crate::models::{Content, ContentQuery, Expected, Policy, UnsavedContent};
use crate::plugins::file::{artifact_url, check_relative_path};
use crate::plugins::SyncEnv;
use crate::stages::{Stage, StageError, StageIo};

/// Package units awaited at most at once (the oldest is awaited when the window is full).
pub const WINDOW: usize = 1000;

/// The Debian remote's sync options (pulp_deb's `AptRemote` fields), read from the remote's
/// plugin data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DebRemoteOptions {
    /// Whitespace-separated distributions; a trailing `/` marks a flat repository.
    pub distributions: String,
    /// Whitespace-separated components to sync; empty or null: every listed one.
    pub components: Option<String>,
    /// Whitespace-separated architectures to sync; empty or null: every listed one.
    pub architectures: Option<String>,
    /// ASCII-armored public key(s) the Release files must be signed with.
    pub gpgkey: Option<String>,
    pub ignore_missing_package_indices: bool,
    pub sync_sources: bool,
    pub sync_udebs: bool,
    pub sync_installer: bool,
}

fn words(v: &Option<String>) -> Vec<String> {
    v.as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

impl DebRemoteOptions {
    /// Reads the options from a JSON object (unknown keys are ignored).
    pub fn from_json(value: &serde_json::Value) -> Result<DebRemoteOptions, DebError> {
        if value.is_null() {
            return Err(DebError::Options("no Debian remote options".into()));
        }
        serde_json::from_value(value.clone()).map_err(|e| DebError::Options(e.to_string()))
    }

    /// Checks what a sync cannot work with.
    pub fn check(&self) -> Result<(), DebError> {
        if self.sync_sources {
            return Err(DebError::NotImplemented("sync_sources"));
        }
        if self.sync_udebs {
            return Err(DebError::NotImplemented("sync_udebs"));
        }
        if self.sync_installer {
            return Err(DebError::NotImplemented("sync_installer"));
        }
        let dists = self.distribution_list();
        if dists.is_empty() {
            return Err(DebError::Options("distributions may not be empty".into()));
        }
        for d in &dists {
            release_dir(d)?;
        }
        Ok(())
    }

    pub fn distribution_list(&self) -> Vec<String> {
        words(&Some(self.distributions.clone()))
    }

    pub fn component_list(&self) -> Vec<String> {
        words(&self.components)
    }

    pub fn architecture_list(&self) -> Vec<String> {
        words(&self.architectures)
    }
}

/// The directory of a distribution's Release files under the remote's URL (`dists/stable/`,
/// `flat/`, or `` for `./`), checked to stay inside the repository.
fn release_dir(distribution: &str) -> Result<String, DebError> {
    let bad = |reason: String| DebError::Options(format!("distribution: {reason}"));
    if let Some(flat) = distribution.strip_suffix('/') {
        let dir = flat.trim_start_matches("./").trim_end_matches('/');
        if dir.is_empty() || dir == "." {
            return Ok(String::new());
        }
        check_relative_path(dir).map_err(bad)?;
        return Ok(format!("{dir}/"));
    }
    check_relative_path(distribution).map_err(bad)?;
    Ok(format!("dists/{distribution}/"))
}

/// Whether a download failed because the file is not there.
fn is_not_found(e: &DownloadError) -> bool {
    match e {
        DownloadError::Status { status, .. } => *status == 404 || *status == 410,
        DownloadError::RetriesExhausted { last, .. } => is_not_found(last),
        DownloadError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

/// The first stage of a Debian sync. See the module docs.
pub struct DebFirstStage {
    env: SyncEnv,
    options: Result<DebRemoteOptions, String>,
    optimize: bool,
}

impl DebFirstStage {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "DebFirstStage";

    pub fn new(env: SyncEnv, options: DebRemoteOptions, optimize: bool) -> Self {
        DebFirstStage {
            env,
            options: Ok(options),
            optimize,
        }
    }

    /// The stage with options read from JSON; unusable options fail the stage when it runs.
    pub fn from_json(env: SyncEnv, options: &serde_json::Value, optimize: bool) -> Self {
        DebFirstStage {
            env,
            options: DebRemoteOptions::from_json(options).map_err(|e| e.to_string()),
            optimize,
        }
    }
}

#[async_trait]
impl Stage for DebFirstStage {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        let DebFirstStage {
            env,
            options,
            optimize,
        } = *self;
        let options = options.map_err(StageError::Plugin)?;
        options.check()?;
        let keyring = match options.gpgkey.as_deref().map(str::trim) {
            Some(k) if !k.is_empty() => {
                Some(Keyring::parse(k).map_err(|reason| DebError::Signature {
                    file: "gpgkey".into(),
                    reason,
                })?)
            }
            _ => None,
        };
        let mut base_url = env.remote.remote.url.clone();
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        let mut sync = DebSync {
            env,
            options,
            keyring,
            base_url,
            window: VecDeque::new(),
            resolved: HashMap::new(),
            memberships: HashSet::new(),
            nva: HashMap::new(),
            previous: None,
        };
        let mut dists = Vec::new();
        for d in sync.options.distribution_list() {
            dists.push(sync.fetch_release(&d, &mut io).await?);
        }
        if optimize {
            sync.previous = sync.load_previous().await?;
        }
        if sync.unchanged(&dists) {
            tracing::info!("release files and selected indices unchanged: skipping the sync");
            sync.env.skip.raise();
            return Ok(());
        }
        for d in dists {
            sync.distribution(d, &mut io).await?;
        }
        sync.drain(&mut io).await?;
        Ok(())
    }
}

/// A distribution's Release files, fetched, checked and parsed.
struct FetchedRelease {
    distribution: String,
    /// `dists/<dist>/` or the flat directory.
    dir: String,
    flat: bool,
    /// `(relative path, download)` of InRelease, Release, Release.gpg (those that exist).
    files: Vec<(String, DownloadResult)>,
    /// InRelease, else Release.
    main: usize,
    release: Release,
    artifact_set_sha256: String,
}

/// One package index the selection wants.
struct PlannedIndex {
    component: String,
    /// `None` for a flat repository's index.
    architecture: Option<String>,
    /// Relative to the Release directory, without compression suffix.
    base: String,
}

/// A package unit whose id is awaited.
struct Pending {
    future: ContentFuture,
    key: [u8; 16],
    component: Uuid,
    what: String,
}

/// The state of one Debian sync's first stage.
struct DebSync {
    env: SyncEnv,
    options: DebRemoteOptions,
    keyring: Option<Keyring>,
    /// The remote's URL, ending in `/`.
    base_url: String,
    window: VecDeque<Pending>,
    /// Package natural key digest → saved id, for packages already resolved.
    resolved: HashMap<[u8; 16], Uuid>,
    /// `(package, component)` rows already emitted.
    memberships: HashSet<(Uuid, Uuid)>,
    /// Digest of name/version/architecture → sha256 of its `.deb` (duplicate check).
    nva: HashMap<[u8; 16], [u8; 32]>,
    /// With `optimize`: the repository's latest version, to skip what it already holds.
    previous: Option<Previous>,
}

/// What the latest version holds that an optimized sync compares with.
struct Previous {
    version_id: Uuid,
    /// Its `deb.release_file` units.
    release_files: Vec<Content>,
    /// Its `deb.package_index` units.
    indices: Vec<Content>,
}

/// Units of the latest version read per query when kept without reading their index.
const KEEP_PAGE: u64 = 2_000;

/// A text field of a unit's data (empty when missing).
fn text<'a>(c: &'a Content, key: &str) -> &'a str {
    c.data.get(key).and_then(|v| v.as_str()).unwrap_or_default()
}

/// Declares a unit the latest version holds, as it is saved (no artifact to fetch or record).
async fn keep(unit: Content, io: &mut StageIo) -> Result<(), StageError> {
    let mut dc = DeclarativeContent::new(
        UnsavedContent {
            pulp_type: String::new(),
            natural_key: String::new(),
            repo_key: String::new(),
            data: serde_json::Value::Null,
        },
        vec![],
    );
    dc.content = ContentState::Saved(unit);
    io.output.put(dc).await
}

fn digest16(parts: &[&str]) -> [u8; 16] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

impl DebSync {
    fn url(&self, relative_path: &str) -> Result<String, DebError> {
        artifact_url(&self.base_url, relative_path).map_err(DebError::Options)
    }

    fn artifact(
        &self,
        url: String,
        relative_path: String,
        state: ArtifactState,
    ) -> DeclarativeArtifact {
        DeclarativeArtifact {
            artifact: state,
            url,
            relative_path,
            remote: self.env.remote.clone(),
            deferred_download: false,
        }
    }

    /// Downloads a metadata file; `None` when it does not exist upstream.
    async fn fetch_optional(
        &self,
        relative_path: &str,
    ) -> Result<Option<DownloadResult>, DebError> {
        let url = self.url(relative_path)?;
        match self.env.remote.downloader.download_metadata(&url).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Fetches, checks and parses a distribution's Release files.
    async fn fetch_release(
        &self,
        distribution: &str,
        io: &mut StageIo,
    ) -> Result<FetchedRelease, DebError> {
        let dir = release_dir(distribution)?;
        let names = ["InRelease", "Release", "Release.gpg"];
        let paths: Vec<String> = names.iter().map(|n| format!("{dir}{n}")).collect();
        let (inrelease, release, gpg) = futures::try_join!(
            self.fetch_optional(&paths[0]),
            self.fetch_optional(&paths[1]),
            self.fetch_optional(&paths[2]),
        )?;
        let read = |d: &DownloadResult, file: &str| -> Result<Vec<u8>, DebError> {
            std::fs::read(&d.temp).map_err(|e| DebError::Release {
                file: file.to_string(),
                reason: format!("cannot read the download: {e}"),
            })
        };
        let (main_path, body) = match (&inrelease, &release) {
            (Some(d), _) => {
                let bytes = read(d, &paths[0])?;
                let text = String::from_utf8_lossy(&bytes).into_owned();
                if let Some(keys) = &self.keyring {
                    keys.verify_clearsigned(&text)
                        .map_err(|reason| DebError::Signature {
                            file: paths[0].clone(),
                            reason,
                        })?;
                }
                let body = signed_body(&text).map_err(|reason| DebError::Release {
                    file: paths[0].clone(),
                    reason,
                })?;
                (paths[0].clone(), body)
            }
            (None, Some(d)) => {
                let bytes = read(d, &paths[1])?;
                if let Some(keys) = &self.keyring {
                    let Some(sig) = &gpg else {
                        return Err(DebError::Signature {
                            file: paths[1].clone(),
                            reason: format!("no InRelease and no {} upstream", paths[2]),
                        });
                    };
                    let sig_bytes = read(sig, &paths[2])?;
                    keys.verify_detached(&bytes, &sig_bytes).map_err(|reason| {
                        DebError::Signature {
                            file: paths[2].clone(),
                            reason,
                        }
                    })?;
                }
                (
                    paths[1].clone(),
                    String::from_utf8_lossy(&bytes).into_owned(),
                )
            }
            (None, None) => {
                return Err(DebError::NoRelease {
                    file: format!("{dir}InRelease"),
                })
            }
        };
        let parsed = Release::parse(&body).map_err(|reason| DebError::Release {
            file: main_path.clone(),
            reason,
        })?;
        let mut files = Vec::new();
        for (path, d) in paths.into_iter().zip([inrelease, release, gpg]) {
            if let Some(d) = d {
                io.ctx.metrics.add_bytes(d.size);
                files.push((path, d));
            }
        }
        let main = files.iter().position(|(p, _)| *p == main_path).unwrap_or(0);
        let set = artifact_set_sha256(files.iter().map(|(p, d)| (p.as_str(), d.sha256.as_str())));
        Ok(FetchedRelease {
            distribution: distribution.to_string(),
            flat: distribution.ends_with('/'),
            dir,
            files,
            main,
            release: parsed,
            artifact_set_sha256: set,
        })
    }

    /// The architectures to sync (without `all`): the Release's, filtered by the remote's.
    fn architectures(&self, release: &Release) -> Vec<String> {
        let wanted = self.options.architecture_list();
        release
            .architectures
            .iter()
            .filter(|a| *a != "all")
            .filter(|a| wanted.is_empty() || wanted.contains(a))
            .cloned()
            .collect()
    }

    /// The components to sync: the Release's, filtered by the remote's (`main` selects
    /// `updates/main` too).
    fn components(&self, release: &Release) -> Vec<String> {
        let wanted = self.options.component_list();
        release
            .components
            .iter()
            .filter(|c| {
                let plain = c.rsplit('/').next().unwrap_or(c);
                wanted.is_empty() || wanted.iter().any(|w| w == *c || w == plain)
            })
            .cloned()
            .collect()
    }

    /// The package indices to read for a distribution.
    fn plan(&self, d: &FetchedRelease) -> Vec<PlannedIndex> {
        if d.flat {
            return vec![PlannedIndex {
                component: FLAT_REPO_COMPONENT.to_string(),
                architecture: None,
                base: "Packages".to_string(),
            }];
        }
        let archs = self.architectures(&d.release);
        let mut out = Vec::new();
        for component in self.components(&d.release) {
            let all_base = format!("{component}/binary-all/Packages");
            // With `No-Support-for-Architecture-all: Packages` the `all` packages are in the
            // binary-<arch> indices read anyway.
            let all_elsewhere = d.release.all_in_arch_indices && !archs.is_empty();
            let read_all = !all_elsewhere && d.release.best_index(&all_base).is_some();
            if read_all {
                out.push(PlannedIndex {
                    component: component.clone(),
                    architecture: Some("all".to_string()),
                    base: all_base,
                });
            }
            for arch in &archs {
                out.push(PlannedIndex {
                    component: component.clone(),
                    architecture: Some(arch.clone()),
                    base: format!("{component}/binary-{arch}/Packages"),
                });
            }
        }
        out
    }

    /// The latest version's release files and package indices, when there is one.
    async fn load_previous(&self) -> Result<Option<Previous>, DebError> {
        let store = &self.env.stages.store;
        let version_id = self.env.stages.version_id;
        let Some((_, repository_id)) = store
            .incomplete_versions()
            .await?
            .into_iter()
            .find(|(v, _)| *v == version_id)
        else {
            return Ok(None);
        };
        let latest = store.latest_version(repository_id).await?;
        if latest.number == 0 {
            return Ok(None);
        }
        let of_type = |pulp_type: &str| ContentQuery {
            pulp_type: Some(pulp_type.to_string()),
            in_version: Some((repository_id, latest.number)),
            limit: 100_000,
            ..ContentQuery::default()
        };
        let (_, release_files) = store.list_content(&of_type(RELEASE_FILE)).await?;
        let (_, indices) = store.list_content(&of_type(PACKAGE_INDEX)).await?;
        Ok(Some(Previous {
            version_id: latest.id,
            release_files,
            indices,
        }))
    }

    /// Whether the latest version already holds exactly what these Release files and the
    /// options select (see the module docs).
    fn unchanged(&self, dists: &[FetchedRelease]) -> bool {
        let Some(previous) = &self.previous else {
            return false;
        };
        let before: BTreeSet<(&str, &str)> = previous
            .release_files
            .iter()
            .map(|c| (text(c, "distribution"), text(c, "artifact_set_sha256")))
            .collect();
        let now: BTreeSet<(&str, &str)> = dists
            .iter()
            .map(|d| (d.distribution.as_str(), d.artifact_set_sha256.as_str()))
            .collect();
        if before != now {
            return false;
        }
        let before: BTreeSet<&str> = previous
            .indices
            .iter()
            .map(|c| text(c, "relative_path"))
            .collect();
        let mut wanted = BTreeSet::new();
        for d in dists {
            for planned in self.plan(d) {
                if d.release.best_index(&planned.base).is_some() {
                    wanted.insert(format!("{}{}", d.dir, planned.base));
                }
            }
        }
        before == wanted.iter().map(String::as_str).collect()
    }

    /// The latest version's index units of each component of `plan` whose indices are all
    /// unchanged (see the module docs): component -> its indices, to keep without reading.
    fn unchanged_components(
        &self,
        dir: &str,
        release: &Release,
        plan: &[PlannedIndex],
    ) -> HashMap<String, Vec<Content>> {
        let mut out = HashMap::new();
        let Some(previous) = &self.previous else {
            return out;
        };
        let mut by_component: BTreeMap<&str, Vec<&PlannedIndex>> = BTreeMap::new();
        for p in plan {
            by_component.entry(&p.component).or_default().push(p);
        }
        'components: for (component, planned) in by_component {
            // The latest version's indices of this distribution and component...
            let before: Vec<&Content> = previous
                .indices
                .iter()
                .filter(|c| {
                    text(c, "component") == component && text(c, "relative_path").starts_with(dir)
                })
                .collect();
            if before.len() != planned.len() {
                continue;
            }
            // ...are exactly the planned ones, each with the digests the Release lists now.
            let mut kept = Vec::new();
            for p in planned {
                let path = format!("{dir}{}", p.base);
                let Some((listed_path, listed)) = release.best_index(&p.base) else {
                    continue 'components;
                };
                let file = format!("{dir}{listed_path}");
                let set = artifact_set_sha256([(file.as_str(), listed.sha256.as_str())]);
                let sha256 = release
                    .sha256
                    .get(&p.base)
                    .map_or(listed.sha256.as_str(), |l| l.sha256.as_str());
                let Some(same) = before.iter().find(|c| {
                    text(c, "relative_path") == path
                        && text(c, "artifact_set_sha256") == set
                        && text(c, "sha256") == sha256
                }) else {
                    continue 'components;
                };
                kept.push((*same).clone());
            }
            out.insert(component.to_string(), kept);
        }
        out
    }

    /// Keeps what the latest version holds of `components` (release component id -> its index
    /// units) without reading their indices: the index units, every membership of those
    /// components and the packages they name are declared again as they are saved.
    async fn keep_components(
        &mut self,
        components: HashMap<Uuid, Vec<Content>>,
        io: &mut StageIo,
    ) -> Result<(), StageError> {
        let Some(version_id) = self.previous.as_ref().map(|p| p.version_id) else {
            return Ok(());
        };
        for indices in components.values() {
            for index in indices {
                tracing::info!(index = %text(index, "relative_path"), "package index unchanged: kept without reading it");
                keep(index.clone(), io).await?;
            }
        }
        let store = self.env.stages.store.clone();
        let mut packages: HashSet<Uuid> = HashSet::new();
        let mut after = None;
        loop {
            let page = store
                .version_units(version_id, PACKAGE_RELEASE_COMPONENT, after, KEEP_PAGE)
                .await
                .map_err(DebError::from)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.id);
            for (unit, _) in page {
                let prc = serde_json::from_value::<PackageReleaseComponentData>(unit.data.clone())
                    .map_err(|e| {
                        DebError::Keep(format!(
                            "the stored membership {} is malformed: {e}",
                            unit.id
                        ))
                    })?;
                if components.contains_key(&prc.release_component)
                    && self
                        .memberships
                        .insert((prc.package, prc.release_component))
                {
                    packages.insert(prc.package);
                    keep(unit, io).await?;
                }
            }
        }
        let mut after = None;
        while !packages.is_empty() {
            let page = store
                .version_units(version_id, PACKAGE, after, KEEP_PAGE)
                .await
                .map_err(DebError::from)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.id);
            for (unit, _) in page {
                if !packages.remove(&unit.id) {
                    continue;
                }
                let key = digest16(&[&unit.natural_key]);
                if self.resolved.insert(key, unit.id).is_none() {
                    let nva = digest16(&[
                        text(&unit, "package"),
                        text(&unit, "version"),
                        text(&unit, "architecture"),
                    ]);
                    let mut sha = [0u8; 32];
                    if hex::decode_to_slice(text(&unit, "sha256"), &mut sha).is_ok() {
                        self.nva.entry(nva).or_insert(sha);
                    }
                    keep(unit, io).await?;
                }
            }
        }
        if !packages.is_empty() {
            // Memberships without their package: keeping them would make a version whose
            // memberships name packages it does not hold.
            return Err(DebError::Keep(format!(
                "{} packages named by its memberships are not in it",
                packages.len()
            ))
            .into());
        }
        Ok(())
    }

    /// Emits `unit` with a future and waits until it is saved.
    async fn emit_and_await(
        &self,
        unit: UnsavedContent,
        artifacts: Vec<DeclarativeArtifact>,
        io: &mut StageIo,
    ) -> Result<crate::declarative::ResolvedContent, StageError> {
        let what = format!("{} {}", unit.pulp_type, unit.natural_key);
        let (dc, future) = DeclarativeContent::new(unit, artifacts).with_future();
        io.output.put(dc).await?;
        future.await.map_err(|e| {
            DebError::Resolve {
                what,
                reason: e.to_string(),
            }
            .into()
        })
    }

    async fn emit(&self, unit: UnsavedContent, io: &mut StageIo) -> Result<(), StageError> {
        io.output.put(DeclarativeContent::new(unit, vec![])).await
    }

    /// Syncs one distribution whose Release files are fetched.
    async fn distribution(
        &mut self,
        d: FetchedRelease,
        io: &mut StageIo,
    ) -> Result<(), StageError> {
        let plan = self.plan(&d);
        let FetchedRelease {
            distribution,
            dir,
            flat,
            files,
            main,
            release,
            artifact_set_sha256,
        } = d;
        let main_path = files[main].0.clone();
        let main_sha = files[main].1.sha256.clone();
        let mut artifacts = Vec::new();
        for (path, download) in files {
            let url = self.url(&path)?;
            artifacts.push(self.artifact(url, path, ArtifactState::Downloaded(download)));
        }
        let release_file = ReleaseFileData {
            codename: release.codename.clone().unwrap_or_default(),
            suite: release.suite.clone().unwrap_or_default(),
            distribution: distribution.clone(),
            components: release.components.join(" "),
            architectures: release.architectures.join(" "),
            relative_path: main_path,
            sha256: main_sha,
            artifact_set_sha256,
        };
        self.emit_and_await(release_file.unit(), artifacts, io)
            .await?;
        let release_unit = ReleaseData {
            codename: release.codename.clone(),
            suite: release.suite.clone(),
            distribution: distribution.clone(),
            version: release.version.clone(),
            origin: release.origin.clone(),
            label: release.label.clone(),
            description: release.description.clone(),
        };
        self.emit(release_unit.unit(), io).await?;
        let mut architectures: BTreeSet<String> = match flat {
            true => self.options.architecture_list().into_iter().collect(),
            false => self.architectures(&release).into_iter().collect(),
        };
        architectures.insert("all".to_string());
        for architecture in architectures {
            let unit = ReleaseArchitectureData {
                distribution: distribution.clone(),
                architecture,
            };
            self.emit(unit.unit(), io).await?;
        }
        // Components first, all in flight at once: their ids are needed for memberships.
        let mut components: Vec<String> = Vec::new();
        for p in &plan {
            if !components.contains(&p.component) {
                components.push(p.component.clone());
            }
        }
        let mut futures = Vec::new();
        for component in &components {
            let unit = ReleaseComponentData {
                distribution: distribution.clone(),
                component: component.clone(),
            }
            .unit();
            let what = format!("{} {}", unit.pulp_type, unit.natural_key);
            let (dc, future) = DeclarativeContent::new(unit, vec![]).with_future();
            io.output.put(dc).await?;
            futures.push((what, future));
        }
        let mut component_ids = HashMap::new();
        for (component, (what, future)) in components.iter().zip(futures) {
            let resolved = future.await.map_err(|e| DebError::Resolve {
                what,
                reason: e.to_string(),
            })?;
            component_ids.insert(component.clone(), resolved.content.id);
        }
        let unchanged = self.unchanged_components(&dir, &release, &plan);
        let mut kept = HashMap::new();
        for (component, indices) in unchanged {
            if let Some(id) = component_ids.get(&component) {
                kept.insert(*id, indices);
            }
        }
        let skip: HashSet<Uuid> = kept.keys().copied().collect();
        self.keep_components(kept, io).await?;
        for planned in plan {
            let Some(component_id) = component_ids.get(&planned.component).copied() else {
                continue;
            };
            if skip.contains(&component_id) {
                continue;
            }
            self.index(&dir, &release, planned, component_id, io)
                .await?;
        }
        Ok(())
    }

    /// Fetches one package index, emits it, and emits its packages.
    async fn index(
        &mut self,
        dir: &str,
        release: &Release,
        planned: PlannedIndex,
        component_id: Uuid,
        io: &mut StageIo,
    ) -> Result<(), StageError> {
        let index_path = format!("{dir}{}", planned.base);
        let candidates = release.listed_indices(&planned.base);
        if candidates.is_empty() {
            if self.options.ignore_missing_package_indices {
                tracing::warn!(index = %index_path, "package index not listed in the Release file: skipped");
                return Ok(());
            }
            return Err(DebError::UnlistedIndex { file: index_path }.into());
        }
        // The best compression first; one missing upstream falls back to the next listed.
        let mut fetched = None;
        for (listed_path, listed) in candidates {
            let file = format!("{dir}{listed_path}");
            let url = self.url(&file)?;
            if let Some(state) = self.fetch_index(&url, listed).await? {
                fetched = Some((file, url, listed.clone(), state));
                break;
            }
        }
        let Some((file, url, listed, state)) = fetched else {
            if self.options.ignore_missing_package_indices {
                tracing::warn!(index = %index_path, "package index missing upstream: skipped");
                return Ok(());
            }
            return Err(DebError::MissingIndex { file: index_path }.into());
        };
        if let ArtifactState::Downloaded(d) = &state {
            io.ctx.metrics.add_bytes(d.size);
        }
        let uncompressed = release.sha256.get(&planned.base).cloned();
        let data = PackageIndexData {
            component: planned.component.clone(),
            architecture: planned.architecture.clone().unwrap_or_default(),
            relative_path: index_path,
            sha256: uncompressed
                .as_ref()
                .map(|l| l.sha256.clone())
                .unwrap_or_else(|| listed.sha256.clone()),
            artifact_set_sha256: artifact_set_sha256([(file.as_str(), listed.sha256.as_str())]),
        };
        let artifact = self.artifact(url, file.clone(), state);
        let resolved = self.emit_and_await(data.unit(), vec![artifact], io).await?;
        let stored = resolved
            .artifacts
            .iter()
            .find(|(ca, _)| ca.relative_path == file)
            .and_then(|(_, a)| a.clone())
            .ok_or_else(|| DebError::Resolve {
                what: file.clone(),
                reason: "the index has no stored file".into(),
            })?;
        // The stored file itself on the filesystem, a temp copy (kept while read) on S3.
        let local = self
            .env
            .stages
            .storage
            .local_copy(&stored.file)
            .await
            .map_err(|e| DebError::Decompress {
                file: file.clone(),
                reason: e.to_string(),
            })?;
        let reader = compression::open(local.path(), Compression::of_path(&file))
            .await
            .map_err(|e| DebError::Decompress {
                file: file.clone(),
                reason: e.to_string(),
            })?;
        let mut stanzas = StanzaReader::new(reader).with_sha256();
        loop {
            let stanza = match stanzas.next_stanza().await {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(ReadError::Syntax(e)) => {
                    return Err(DebError::Syntax {
                        file: file.clone(),
                        reason: e.to_string(),
                    }
                    .into())
                }
                Err(ReadError::Io(e)) => {
                    return Err(DebError::Decompress {
                        file: file.clone(),
                        reason: compression::describe(&e, Compression::of_path(&file)),
                    }
                    .into())
                }
            };
            let package = PackageData::from_stanza(stanza, &file)?;
            let accepted = match &planned.architecture {
                Some(arch) => package.architecture == *arch || package.architecture == "all",
                None => {
                    let wanted = self.options.architecture_list();
                    wanted.is_empty()
                        || package.architecture == "all"
                        || wanted.contains(&package.architecture)
                }
            };
            if !accepted {
                tracing::debug!(index = %file, package = %package.package, architecture = %package.architecture, "package of another architecture: skipped");
                continue;
            }
            self.package(package, &file, component_id, io).await?;
        }
        if let Some(expected) = uncompressed {
            let actual = stanzas.sha256().unwrap_or_default();
            if actual != expected.sha256 {
                return Err(DebError::IndexDigest {
                    file,
                    listed: expected.sha256,
                    actual,
                }
                .into());
            }
        }
        Ok(())
    }

    /// The index file as an artifact state: already stored, or downloaded now (checked against
    /// the Release's size and digest); `None` when it is missing upstream.
    async fn fetch_index(
        &self,
        url: &str,
        listed: &ListedFile,
    ) -> Result<Option<ArtifactState>, DebError> {
        let known = self
            .env
            .stages
            .store
            .find_artifacts_by_sha256(std::slice::from_ref(&listed.sha256))
            .await?;
        if let Some(a) = known.into_iter().find(|a| a.sha256 == listed.sha256) {
            if self.env.stages.storage.contains(&a.sha256).await {
                return Ok(Some(ArtifactState::Saved(a)));
            }
        }
        let expected = Expected {
            size: Some(listed.size),
            sha256: Some(listed.sha256.clone()),
            other: Default::default(),
        };
        match self.env.remote.downloader.download(url, &expected).await {
            Ok(d) => Ok(Some(ArtifactState::Downloaded(d))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Emits one package (unless already resolved) and its membership of `component`.
    async fn package(
        &mut self,
        package: PackageData,
        file: &str,
        component: Uuid,
        io: &mut StageIo,
    ) -> Result<(), StageError> {
        let nva = digest16(&[&package.package, &package.version, &package.architecture]);
        let mut sha = [0u8; 32];
        hex::decode_to_slice(&package.sha256, &mut sha).map_err(|e| DebError::BadField {
            file: file.to_string(),
            package: package.package.clone(),
            line: 0,
            field: "SHA256",
            reason: e.to_string(),
        })?;
        match self.nva.get(&nva) {
            Some(first) if *first != sha => {
                return Err(DebError::Duplicate {
                    file: file.to_string(),
                    package: format!(
                        "{} {} {}",
                        crate::plugins::excerpt(&package.package),
                        crate::plugins::excerpt(&package.version),
                        crate::plugins::excerpt(&package.architecture)
                    ),
                    first: hex::encode(first),
                    second: package.sha256.clone(),
                }
                .into())
            }
            Some(_) => {}
            None => {
                self.nva.insert(nva, sha);
            }
        }
        let unit = package.unit();
        let key = digest16(&[&unit.natural_key]);
        if let Some(id) = self.resolved.get(&key).copied() {
            return self.membership(id, component, io).await;
        }
        let url = self.url(&package.relative_path)?;
        let artifact = DeclarativeArtifact {
            artifact: ArtifactState::Unsaved(Expected {
                size: Some(package.size),
                sha256: Some(package.sha256.clone()),
                other: Default::default(),
            }),
            url,
            relative_path: package.relative_path.clone(),
            remote: self.env.remote.clone(),
            deferred_download: self.env.remote.remote.policy != Policy::Immediate,
        };
        let what = format!(
            "package {} from {file}",
            crate::plugins::excerpt(&package.package)
        );
        let (dc, future) = DeclarativeContent::new(unit, vec![artifact]).with_future();
        io.output.put(dc).await?;
        self.window.push_back(Pending {
            future,
            key,
            component,
            what,
        });
        if self.window.len() >= WINDOW {
            self.await_oldest(io).await?;
        }
        Ok(())
    }

    /// Awaits the oldest outstanding package and emits its membership.
    async fn await_oldest(&mut self, io: &mut StageIo) -> Result<(), StageError> {
        let Some(p) = self.window.pop_front() else {
            return Ok(());
        };
        let resolved = p.future.await.map_err(|e| DebError::Resolve {
            what: p.what,
            reason: e.to_string(),
        })?;
        let id = resolved.content.id;
        self.resolved.insert(p.key, id);
        self.membership(id, p.component, io).await
    }

    async fn membership(
        &mut self,
        package: Uuid,
        component: Uuid,
        io: &mut StageIo,
    ) -> Result<(), StageError> {
        if !self.memberships.insert((package, component)) {
            return Ok(());
        }
        let unit = PackageReleaseComponentData {
            package,
            release_component: component,
        };
        self.emit(unit.unit(), io).await
    }

    /// Awaits every outstanding package.
    async fn drain(&mut self, io: &mut StageIo) -> Result<(), StageError> {
        while !self.window.is_empty() {
            self.await_oldest(io).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_directories_stay_inside_the_repository() {
        assert_eq!(release_dir("stable").unwrap(), "dists/stable/");
        assert_eq!(
            release_dir("stable/updates").unwrap(),
            "dists/stable/updates/"
        );
        assert_eq!(release_dir("flat/").unwrap(), "flat/");
        assert_eq!(release_dir("./").unwrap(), "");
        assert_eq!(release_dir("/").unwrap(), "");
        assert!(release_dir("../x").is_err());
        assert!(release_dir("a/../../x/").is_err());
    }

    #[test]
    fn options_read_from_json_and_refuse_what_is_not_implemented() {
        let o = DebRemoteOptions::from_json(&serde_json::json!({
            "distributions": "stable testing",
            "components": "main",
            "architectures": null,
            "other": 1
        }))
        .unwrap();
        assert_eq!(o.distribution_list(), vec!["stable", "testing"]);
        assert_eq!(o.component_list(), vec!["main"]);
        assert!(o.architecture_list().is_empty());
        o.check().unwrap();
        let src = DebRemoteOptions {
            sync_sources: true,
            ..o.clone()
        };
        assert!(src
            .check()
            .unwrap_err()
            .to_string()
            .contains("sync_sources"));
        let none = DebRemoteOptions::default();
        assert!(none.check().is_err());
        assert!(DebRemoteOptions::from_json(&serde_json::json!({"distributions": 3})).is_err());
    }
}

//! Task functions of publications and distributions.
//!
//! - `publish` (shared reservation on the repository): creates an incomplete publication of a
//!   version, asks the plugin for its metadata files (file: `PULP_MANIFEST`), stores each as an
//!   artifact (temp file -> sha256 -> adopt -> row) published at its path, then marks the
//!   publication complete. A failed or canceled publish deletes its publication: none remains
//!   incomplete. Metadata artifacts stay in storage (orphan cleanup's business).
//! - `distribution_create` / `distribution_update` / `distribution_delete`: the writes behind the
//!   asynchronous distribution endpoints. The API validated the request; the task checks the
//!   rules again (name, base path overlap) because another write may have run in between.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::TaskEnv;
use crate::href;
use crate::models::DistributionFields;
use crate::models::{NewArtifact, PublishedFile};
use crate::plugins::{Plugin, PublicationType, PublishError, PublishUnit, Publisher};
use crate::storage::ArtifactStorage;
use crate::tasking::{Registry, TaskArgs, TaskCtx, TaskError};

/// Task names.
pub const PUBLISH: &str = "publish";
pub const DISTRIBUTION_CREATE: &str = "distribution_create";
pub const DISTRIBUTION_UPDATE: &str = "distribution_update";
pub const DISTRIBUTION_DELETE: &str = "distribution_delete";

/// Registers `publish` and the distribution tasks.
pub fn register(reg: &mut Registry, env: &TaskEnv) {
    let e = env.clone();
    reg.register(PUBLISH, move |ctx| publish(ctx, e.clone()));
    let e = env.clone();
    reg.register(DISTRIBUTION_CREATE, move |ctx| {
        distribution_create(ctx, e.clone())
    });
    let e = env.clone();
    reg.register(DISTRIBUTION_UPDATE, move |ctx| {
        distribution_update(ctx, e.clone())
    });
    reg.register(DISTRIBUTION_DELETE, distribution_delete);
}

/// `publish`: a publication of `repository_version` by `plugin` (its name), with the
/// plugin's publication fields `plugin_data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishArgs {
    pub plugin: String,
    /// The publication type's kind (`file`, `apt`, `verbatim`); the plugin's first when empty.
    #[serde(default)]
    pub kind: String,
    pub repository_version: Uuid,
    #[serde(default)]
    pub plugin_data: serde_json::Value,
}

impl TaskArgs for PublishArgs {
    const NAME: &'static str = PUBLISH;
}

/// `distribution_create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionCreateArgs {
    pub fields: DistributionFields,
}

impl TaskArgs for DistributionCreateArgs {
    const NAME: &'static str = DISTRIBUTION_CREATE;
}

/// `distribution_update`: every field of distribution `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionUpdateArgs {
    pub id: Uuid,
    pub fields: DistributionFields,
}

impl TaskArgs for DistributionUpdateArgs {
    const NAME: &'static str = DISTRIBUTION_UPDATE;
}

/// `distribution_delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionDeleteArgs {
    pub id: Uuid,
}

impl TaskArgs for DistributionDeleteArgs {
    const NAME: &'static str = DISTRIBUTION_DELETE;
}

fn plugin_named(env: &TaskEnv, name: &str) -> Result<Arc<dyn Plugin>, TaskError> {
    env.plugins
        .iter()
        .find(|p| p.name() == name)
        .cloned()
        .ok_or_else(|| TaskError::failed(format!("no plugin {name:?}")))
}

fn plugin_of_type(env: &TaskEnv, pulp_type: &str) -> Result<Arc<dyn Plugin>, TaskError> {
    env.plugins
        .iter()
        .find(|p| p.distribution_type() == pulp_type)
        .cloned()
        .ok_or_else(|| TaskError::failed(format!("no plugin for {pulp_type:?}")))
}

/// Args: [`PublishArgs`].
async fn publish(ctx: TaskCtx, env: TaskEnv) -> Result<(), TaskError> {
    let args: PublishArgs = ctx.args_as()?;
    let plugin = plugin_named(&env, &args.plugin)?;
    publish_version(
        &ctx,
        &env,
        plugin.as_ref(),
        &args.kind,
        args.repository_version,
        &args.plugin_data,
    )
    .await
}

/// Publishes `version_id` as the plugin's publication type `kind` (its first when empty) with
/// the type's fields `plugin_data`: the publication is complete and recorded as a created
/// resource, or (failed, canceled) gone.
pub async fn publish_version(
    ctx: &TaskCtx,
    env: &TaskEnv,
    plugin: &dyn Plugin,
    kind: &str,
    version_id: Uuid,
    plugin_data: &serde_json::Value,
) -> Result<(), TaskError> {
    let pt = match kind {
        "" => plugin.publication_types().into_iter().next(),
        k => plugin.publication_type(k),
    }
    .ok_or_else(|| {
        TaskError::failed(format!(
            "{} has no publication type {kind:?}",
            plugin.name()
        ))
    })?;
    let store = ctx.store().clone();
    let publication = store
        .create_publication(pt.pulp_type(), version_id, pt.pass_through(), plugin_data)
        .await?;
    let result = tokio::select! {
        r = fill_publication(env, pt.as_ref(), publication.id, version_id, plugin_data) => r,
        _ = ctx.cancel_token().cancelled() => Err(TaskError::Canceled),
    };
    if let Err(e) = result {
        if let Err(de) = store.delete_publication(publication.id).await {
            tracing::error!(error = %de, "cannot delete an unfinished publication");
        }
        return Err(e);
    }
    store.complete_publication(publication.id).await?;
    ctx.created_resource(&href::publication(
        &plugin.names_of_publication(pt.kind()),
        publication.id,
    ))
    .await?;
    Ok(())
}

/// Runs the publication type's hook over the version, into the (incomplete) publication.
async fn fill_publication(
    env: &TaskEnv,
    pt: &dyn PublicationType,
    publication_id: Uuid,
    version_id: Uuid,
    plugin_data: &serde_json::Value,
) -> Result<(), TaskError> {
    let scratch = tempfile::Builder::new()
        .prefix("publish-")
        .tempdir_in(env.storage.tmp_dir())
        .map_err(|e| TaskError::failed(format!("cannot make a scratch directory: {e}")))?;
    let mut publisher = TaskPublisher {
        env,
        version_id,
        publication_id,
        pending: Vec::new(),
        scratch,
    };
    pt.publish(&mut publisher, plugin_data)
        .await
        .map_err(|e| TaskError::failed(format!("publication failed: {e}")))?;
    publisher
        .flush()
        .await
        .map_err(|e| TaskError::failed(format!("publication failed: {e}")))?;
    Ok(())
}

/// Published files written in one transaction at a time.
const PUBLISH_BATCH: usize = 2_000;

/// The core's side of a publication hook ([`Publisher`]): reads the version from the store,
/// writes metadata files into the artifact store, and records published files in batches.
struct TaskPublisher<'a> {
    env: &'a TaskEnv,
    version_id: Uuid,
    publication_id: Uuid,
    pending: Vec<PublishedFile>,
    scratch: tempfile::TempDir,
}

impl TaskPublisher<'_> {
    async fn push(&mut self, f: PublishedFile) -> Result<(), PublishError> {
        self.pending.push(f);
        if self.pending.len() >= PUBLISH_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), PublishError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.env
            .store
            .add_published_files(self.publication_id, &batch)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Publisher for TaskPublisher<'_> {
    async fn units(
        &mut self,
        pulp_type: &str,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<PublishUnit>, PublishError> {
        Ok(self
            .env
            .store
            .version_units(self.version_id, pulp_type, after, limit)
            .await?
            .into_iter()
            .map(|(content, files)| PublishUnit { content, files })
            .collect())
    }

    fn temp_file(&self) -> Result<tempfile::NamedTempFile, PublishError> {
        Ok(self.env.storage.temp_file()?)
    }

    async fn add_metadata_file(
        &mut self,
        relative_path: &str,
        path: tempfile::TempPath,
    ) -> Result<(String, u64), PublishError> {
        safe_path(relative_path)?;
        let (artifact_id, sha256, size) = store_file(self.env, path)
            .await
            .map_err(|e| PublishError::Plugin(e.to_string()))?;
        self.push(PublishedFile {
            relative_path: relative_path.to_string(),
            artifact_id: Some(artifact_id),
            content_artifact_id: None,
        })
        .await?;
        Ok((sha256, size))
    }

    async fn add_content_file(
        &mut self,
        relative_path: &str,
        content_artifact_id: Uuid,
    ) -> Result<(), PublishError> {
        safe_path(relative_path)?;
        self.push(PublishedFile {
            relative_path: relative_path.to_string(),
            artifact_id: None,
            content_artifact_id: Some(content_artifact_id),
        })
        .await
    }

    fn scratch_dir(&self) -> &std::path::Path {
        self.scratch.path()
    }

    async fn sign(
        &mut self,
        service: Uuid,
        file: &std::path::Path,
    ) -> Result<serde_json::Value, PublishError> {
        let s = match self.env.store.get_signing_service(service).await {
            Ok(s) => s,
            Err(crate::db::DbError::NotFound(_)) => {
                return Err(PublishError::Plugin(format!(
                    "signing service {service} does not exist"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        run_signing_script(&s, file, self.scratch.path()).await
    }
}

/// A publication path a hook handed us, refused unless it stays inside the publication.
fn safe_path(relative_path: &str) -> Result<(), PublishError> {
    crate::plugins::check_relative_path(relative_path).map_err(PublishError::UnsafePath)
}

/// The longest a signing script may run.
const SIGNING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs the script of signing service `s` on `file` in `dir`; the JSON it printed.
pub async fn run_signing_script(
    s: &crate::models::SigningService,
    file: &std::path::Path,
    dir: &std::path::Path,
) -> Result<serde_json::Value, PublishError> {
    let failed = |m: String| PublishError::Plugin(format!("signing service {:?}: {m}", s.name));
    let child = tokio::process::Command::new(&s.script)
        .arg(file)
        .current_dir(dir)
        .env("PULP_SIGNING_KEY_FINGERPRINT", &s.pubkey_fingerprint)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot run its script: {e}")))?;
    let out = tokio::time::timeout(SIGNING_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| failed(format!("its script ran longer than {SIGNING_TIMEOUT:?}")))?
        .map_err(|e| failed(format!("its script failed: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(failed(format!(
            "its script exited with {}: {tail}",
            out.status
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| failed(format!("its script printed no JSON: {e}")))
}

/// Stores the file at `path` as an artifact (or finds the existing one with its digest):
/// `(artifact id, sha256, size)`.
async fn store_file(
    env: &TaskEnv,
    path: tempfile::TempPath,
) -> Result<(Uuid, String, u64), TaskError> {
    let storage: ArtifactStorage = env.storage.clone();
    let (temp, sha256, size) = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut hasher = Sha256::new();
        let mut f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let sha256 = hex::encode(hasher.finalize());
        Ok::<_, String>((path, sha256, size))
    })
    .await
    .map_err(TaskError::failed)?
    .map_err(|e| TaskError::failed(format!("cannot store publication metadata: {e}")))?;
    let rel = storage
        .adopt_batch(vec![(temp, sha256.clone(), size)])
        .await
        .map_err(|e| TaskError::failed(format!("cannot store publication metadata: {e}")))?
        .into_iter()
        .next()
        .unwrap_or_default();
    let rows = env
        .store
        .insert_artifacts(&[NewArtifact {
            sha256: sha256.clone(),
            size,
            other: Default::default(),
            file: rel,
        }])
        .await?;
    let id = rows
        .into_iter()
        .next()
        .map(|a| a.id)
        .ok_or_else(|| TaskError::failed("artifact insert returned nothing"))?;
    Ok((id, sha256, size))
}

/// Fails when another distribution (not `exclude`) overlaps `d.base_path`.
async fn check_overlap(
    env: &TaskEnv,
    d: &DistributionFields,
    exclude: Option<Uuid>,
) -> Result<(), TaskError> {
    let prefixes = path_prefixes(&d.base_path);
    if let Some(other) = env
        .store
        .overlapping_distribution(&d.base_path, &prefixes, exclude)
        .await?
    {
        return Err(TaskError::failed(format!(
            "base_path: Overlaps with existing distribution '{}'",
            other.name
        )));
    }
    Ok(())
}

/// Every path-component prefix of `path`, itself included (`a`, `a/b`, `a/b/c`).
pub fn path_prefixes(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut end = 0;
    for (i, seg) in path.split('/').enumerate() {
        end += seg.len() + usize::from(i > 0);
        out.push(path[..end].to_string());
    }
    out
}

/// Args: [`DistributionCreateArgs`].
async fn distribution_create(ctx: TaskCtx, env: TaskEnv) -> Result<(), TaskError> {
    let DistributionCreateArgs { fields } = ctx.args_as()?;
    check_overlap(&env, &fields, None).await?;
    let plugin = plugin_of_type(&env, &fields.pulp_type)?;
    let d = env
        .store
        .create_distribution(&fields)
        .await
        .map_err(|e| TaskError::failed(e.to_string()))?;
    ctx.created_resource(&href::distribution(&plugin.api_names(), d.id))
        .await?;
    Ok(())
}

/// Args: [`DistributionUpdateArgs`].
async fn distribution_update(ctx: TaskCtx, env: TaskEnv) -> Result<(), TaskError> {
    let DistributionUpdateArgs { id, fields } = ctx.args_as()?;
    check_overlap(&env, &fields, Some(id)).await?;
    env.store
        .update_distribution(id, &fields)
        .await
        .map_err(|e| TaskError::failed(e.to_string()))?;
    Ok(())
}

/// Args: [`DistributionDeleteArgs`].
async fn distribution_delete(ctx: TaskCtx) -> Result<(), TaskError> {
    let DistributionDeleteArgs { id } = ctx.args_as()?;
    ctx.store().delete_distribution(id).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A publisher on a real SQLite file and artifact store; no publication row is needed
    /// until a batch is flushed.
    async fn env(dir: &std::path::Path) -> TaskEnv {
        let url = format!("sqlite://{}", dir.join("pulp.db").display());
        let store = crate::db::connect(&url).await.unwrap();
        let storage = ArtifactStorage::open(dir.join("media")).unwrap();
        TaskEnv {
            store: store.clone(),
            storage: storage.clone(),
            plugins: Vec::new(),
            sync: crate::sync::SyncContext::new(store, storage),
        }
    }

    #[tokio::test]
    async fn the_publisher_refuses_paths_that_leave_the_publication() {
        let dir = tempfile::tempdir().unwrap();
        let env = env(dir.path()).await;
        let mut publisher = TaskPublisher {
            env: &env,
            version_id: Uuid::nil(),
            publication_id: Uuid::nil(),
            pending: Vec::new(),
            scratch: tempfile::tempdir().unwrap(),
        };
        for bad in [
            "",
            "../escape",
            "dists/../../escape",
            "/etc/passwd",
            "dists\\..\\escape",
            "dists/a\0b",
            "%2e%2e/escape",
            "dists/%2E%2e/escape",
            "dists/%252e%252e/escape",
            "dists//Release",
            "./Release",
        ] {
            let e = publisher
                .add_metadata(bad, b"metadata".to_vec())
                .await
                .unwrap_err();
            assert!(matches!(e, PublishError::UnsafePath(_)), "{bad:?}: {e}");
            let e = publisher
                .add_content_file(bad, Uuid::nil())
                .await
                .unwrap_err();
            assert!(matches!(e, PublishError::UnsafePath(_)), "{bad:?}: {e}");
        }
        assert!(publisher.pending.is_empty(), "nothing was recorded");
        assert_eq!(
            env.store
                .find_artifacts_by_sha256(&[hex::encode(Sha256::digest(b"metadata"))])
                .await
                .unwrap()
                .len(),
            0,
            "nothing was stored"
        );
        assert_eq!(std::fs::read_dir(env.storage.tmp_dir()).unwrap().count(), 0);
        publisher
            .add_content_file("pool/main/h/hello/hello_2.0-1_amd64.deb", Uuid::nil())
            .await
            .unwrap();
        assert_eq!(publisher.pending.len(), 1, "a safe path is recorded");
    }

    #[test]
    fn prefixes_by_component() {
        assert_eq!(path_prefixes("a/bc/d"), vec!["a", "a/bc", "a/bc/d"]);
        assert_eq!(path_prefixes("x"), vec!["x"]);
    }
}

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

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::TaskEnv;
use crate::href;
use crate::models::DistributionFields;
use crate::models::NewArtifact;
use crate::plugins::Plugin;
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
        .find(|p| p.repository_type() == pulp_type)
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
        args.repository_version,
        &args.plugin_data,
    )
    .await
}

/// Publishes `version_id` with the plugin's publication fields `plugin_data`: the publication
/// is complete and recorded as a created resource, or (failed, canceled) gone.
pub async fn publish_version(
    ctx: &TaskCtx,
    env: &TaskEnv,
    plugin: &dyn Plugin,
    version_id: Uuid,
    plugin_data: &serde_json::Value,
) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let publication = store
        .create_publication(
            plugin.repository_type(),
            version_id,
            plugin.publication_pass_through(),
            plugin_data,
        )
        .await?;
    let result = tokio::select! {
        r = fill_publication(env, plugin, publication.id, version_id, plugin_data) => r,
        _ = ctx.cancel_token().cancelled() => Err(TaskError::Canceled),
    };
    if let Err(e) = result {
        if let Err(de) = store.delete_publication(publication.id).await {
            tracing::error!(error = %de, "cannot delete an unfinished publication");
        }
        return Err(e);
    }
    store.complete_publication(publication.id).await?;
    ctx.created_resource(&href::publication(&plugin.api_names(), publication.id))
        .await?;
    Ok(())
}

/// Writes the plugin's metadata files of the version into the (incomplete) publication.
async fn fill_publication(
    env: &TaskEnv,
    plugin: &dyn Plugin,
    publication_id: Uuid,
    version_id: Uuid,
    plugin_data: &serde_json::Value,
) -> Result<(), TaskError> {
    let files = env.store.version_files(version_id, "").await?;
    let metadata = plugin
        .publication_metadata(plugin_data, &files)
        .map_err(TaskError::failed)?;
    if metadata.is_empty() {
        return Ok(());
    }
    let mut published = Vec::with_capacity(metadata.len());
    for (path, bytes) in metadata {
        let artifact_id = store_bytes(env, bytes).await?;
        published.push((path, artifact_id));
    }
    env.store
        .add_published_artifacts(publication_id, &published)
        .await?;
    Ok(())
}

/// Stores `bytes` as an artifact (or finds the existing one with that digest); its id.
pub async fn store_bytes(env: &TaskEnv, bytes: Vec<u8>) -> Result<Uuid, TaskError> {
    let storage: ArtifactStorage = env.storage.clone();
    let (rel, sha256, size) = tokio::task::spawn_blocking(move || {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        let mut tmp = storage.temp_file().map_err(|e| e.to_string())?;
        tmp.write_all(&bytes).map_err(|e| e.to_string())?;
        let rel = storage
            .adopt_batch(vec![(tmp.into_temp_path(), sha256.clone(), size)])
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((rel.into_iter().next().unwrap_or_default(), sha256, size))
    })
    .await
    .map_err(TaskError::failed)?
    .map_err(|e| TaskError::failed(format!("cannot store publication metadata: {e}")))?;
    let rows = env
        .store
        .insert_artifacts(&[NewArtifact {
            sha256,
            size,
            other: Default::default(),
            file: rel,
        }])
        .await?;
    rows.into_iter()
        .next()
        .map(|a| a.id)
        .ok_or_else(|| TaskError::failed("artifact insert returned nothing"))
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
    use super::path_prefixes;

    #[test]
    fn prefixes_by_component() {
        assert_eq!(path_prefixes("a/bc/d"), vec!["a", "a/bc", "a/bc/d"]);
        assert_eq!(path_prefixes("x"), vec!["x"]);
    }
}

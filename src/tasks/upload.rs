//! Task functions of uploads: `upload_commit` (assemble an upload's chunks into an artifact,
//! checking its sha256) and `content_create` (a unit from an artifact, an upload or a URL, made
//! by the plugin's [`crate::plugins::ContentType::unit_from_artifact`] hook, optionally added to a repository in
//! a new version), plus what orphan cleanup does for abandoned uploads and what `modify` and
//! content create share for `overwrite=false`.
//!
//! Bytes are always adopted into the artifact storage before the row naming them is written
//! ([`save_artifact`]); a failed check leaves only a temp file, which is dropped.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tempfile::TempPath;
use uuid::Uuid;

use super::TaskEnv;
use crate::db::{DbError, DynStore};
use crate::downloader::DownloaderFactory;
use crate::href;
use crate::models::{Artifact, ContentToSave, Expected, NewArtifact, OtherDigests, Policy, Remote};
use crate::plugins::Plugin;
use crate::storage::{covering, ArtifactStorage};
use crate::tasking::{Registry, TaskArgs, TaskCtx, TaskError};

/// Task names.
pub const UPLOAD_COMMIT: &str = "upload_commit";
pub const CONTENT_CREATE: &str = "content_create";

/// `upload_commit`: the chunks of `upload` become an artifact whose sha256 must be `sha256`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadCommitArgs {
    pub upload: Uuid,
    pub sha256: String,
}

impl TaskArgs for UploadCommitArgs {
    const NAME: &'static str = UPLOAD_COMMIT;
}

/// Where the bytes of a new unit come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentSource {
    /// A saved artifact (an `artifact` href, or a `file` the API already saved).
    Artifact(Uuid),
    /// An uncommitted upload, committed by the task (and then deleted).
    Upload(Uuid),
    /// A URL fetched through the downloader (`file://` only below `allowed_import_paths`).
    Url(String),
}

/// `content_create`: a unit of plugin `plugin` from `source` with the plugin's `fields`; with
/// `repository`, added to it in a new version (`overwrite` false: a repo-key conflict with a
/// present unit fails the task instead of replacing it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentCreateArgs {
    pub plugin: String,
    /// The content type to make (the plugin's main one when empty).
    #[serde(default)]
    pub pulp_type: String,
    pub fields: Map<String, Value>,
    pub source: ContentSource,
    #[serde(default)]
    pub repository: Option<Uuid>,
    #[serde(default = "yes")]
    pub overwrite: bool,
}

fn yes() -> bool {
    true
}

impl TaskArgs for ContentCreateArgs {
    const NAME: &'static str = CONTENT_CREATE;
}

/// Registers the upload task functions.
pub fn register(reg: &mut Registry, env: &TaskEnv) {
    let e = env.clone();
    reg.register(UPLOAD_COMMIT, move |ctx| run_commit(e.clone(), ctx));
    let e = env.clone();
    reg.register(CONTENT_CREATE, move |ctx| {
        run_content_create(e.clone(), ctx)
    });
}

/// Saves the file at `temp` (exactly the bytes of `sha256`, `size` long) as an artifact: the
/// file is moved into place and made durable, then the row is inserted. An artifact with the
/// same sha256 is returned as it is (its file kept, the temp file dropped).
pub async fn save_artifact(
    store: &DynStore,
    storage: &ArtifactStorage,
    temp: TempPath,
    sha256: String,
    size: u64,
    other: OtherDigests,
) -> Result<Artifact, TaskError> {
    let file = storage
        .adopt_batch(vec![(temp, sha256.clone(), size)])
        .await
        .map_err(TaskError::failed)?
        .pop()
        .ok_or_else(|| TaskError::failed("storage adopted nothing"))?;
    let mut saved = store
        .insert_artifacts(&[NewArtifact {
            sha256,
            size,
            other,
            file,
        }])
        .await?;
    saved
        .pop()
        .ok_or_else(|| TaskError::failed("no artifact row returned"))
}

/// Assembles upload `id` into an artifact (checking `sha256` when given), then deletes the
/// upload and its chunks. A gap or a digest mismatch fails and stores nothing.
async fn commit_upload(
    env: &TaskEnv,
    store: &DynStore,
    id: Uuid,
    sha256: Option<&str>,
) -> Result<Artifact, TaskError> {
    let upload = match store.get_upload(id).await {
        Ok(u) => u,
        Err(DbError::NotFound(_)) => {
            return Err(TaskError::failed(format!("upload {id} does not exist")))
        }
        Err(e) => return Err(e.into()),
    };
    let chunks = store.upload_chunks(id).await?;
    let plan = covering(upload.size, &chunks).map_err(|missing| {
        TaskError::failed(format!(
            "All chunks have not been uploaded: byte {missing} of {} is missing.",
            upload.size
        ))
    })?;
    let assembled = env
        .storage
        .assemble_upload(id, &plan)
        .await
        .map_err(TaskError::failed)?;
    if let Some(want) = sha256 {
        let want = want.trim().to_ascii_lowercase();
        if want != assembled.sha256 {
            return Err(TaskError::failed(format!(
                "The provided sha256 value does not match the sha256 of the uploaded file \
                 (expected {want}, got {}).",
                assembled.sha256
            )));
        }
    }
    let artifact = save_artifact(
        store,
        &env.storage,
        assembled.temp,
        assembled.sha256,
        assembled.size,
        OtherDigests::default(),
    )
    .await?;
    match store.delete_upload(id).await {
        Ok(()) | Err(DbError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    if let Err(e) = env.storage.remove_upload(id).await {
        tracing::warn!(error = %e, upload = %id, "cannot remove a committed upload's chunks");
    }
    Ok(artifact)
}

async fn run_commit(env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let args: UploadCommitArgs = ctx.args_as()?;
    let store = ctx.store().clone();
    let artifact = commit_upload(&env, &store, args.upload, Some(&args.sha256)).await?;
    ctx.created_resource(&href::artifact(artifact.id)).await
}

/// Downloads `url` (a one-off remote with default options) and saves it as an artifact.
async fn download_url(
    env: &TaskEnv,
    plugin: &dyn Plugin,
    url: &str,
) -> Result<Artifact, TaskError> {
    let remote = Remote::new(plugin.remote_type(), "file_url", url, Policy::Immediate);
    let mut settings = env.sync.download.clone();
    settings.tmp_dir = env.storage.tmp_dir().to_path_buf();
    let factory = DownloaderFactory::new(&remote, settings).map_err(TaskError::failed)?;
    let got = factory
        .download(url, &Expected::default())
        .await
        .map_err(TaskError::failed)?;
    save_artifact(
        &env.sync.store,
        &env.storage,
        got.temp,
        got.sha256,
        got.size,
        got.other,
    )
    .await
}

/// Fails with pulpcore's `PLP0023` when the incomplete version `version_id` adds a unit whose
/// repo key a unit it keeps from before has (what `overwrite=false` refuses).
pub async fn refuse_overwrite(store: &DynStore, version_id: Uuid) -> Result<(), TaskError> {
    let conflicts = store.repo_key_conflicts(version_id, 10).await?;
    if conflicts.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = conflicts
        .iter()
        .map(|(t, k)| format!("{t} {k:?}"))
        .collect();
    Err(TaskError::failed(format!(
        "[PLP0023] Cannot create repository version since there are newly added content units \
         that would overwrite existing content at {}. Use overwrite=true to replace it.",
        keys.join(", ")
    )))
}

async fn run_content_create(env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let args: ContentCreateArgs = ctx.args_as()?;
    let store = ctx.store().clone();
    let plugin: Arc<dyn Plugin> = env
        .plugins
        .iter()
        .find(|p| p.name() == args.plugin)
        .cloned()
        .ok_or_else(|| TaskError::failed(format!("no plugin named {}", args.plugin)))?;
    let artifact = match &args.source {
        ContentSource::Artifact(id) => match store.get_artifact(*id).await {
            Ok(a) => a,
            Err(DbError::NotFound(_)) => {
                return Err(TaskError::failed(format!("artifact {id} does not exist")))
            }
            Err(e) => return Err(e.into()),
        },
        ContentSource::Upload(id) => commit_upload(&env, &store, *id, None).await?,
        ContentSource::Url(url) => download_url(&env, plugin.as_ref(), url).await?,
    };
    let ct = match args.pulp_type.as_str() {
        "" => plugin.content_types().into_iter().next(),
        t => plugin.content_type(t),
    }
    .ok_or_else(|| TaskError::failed(format!("no content type {:?}", args.pulp_type)))?;
    let local = env
        .storage
        .local_copy(&artifact.file)
        .await
        .map_err(TaskError::failed)?;
    let unit = ct
        .unit_from_artifact(&artifact, local.path(), &args.fields)
        .map_err(TaskError::failed)?;
    let existing = store
        .find_content(
            &unit.content.pulp_type,
            std::slice::from_ref(&unit.content.natural_key),
        )
        .await?;
    let ids = store
        .save_content(&[ContentToSave {
            existing_id: existing.first().map(|c| c.id),
            content: unit.content,
            artifacts: vec![(unit.relative_path, Some(artifact.id))],
        }])
        .await?;
    let content_id = *ids
        .first()
        .ok_or_else(|| TaskError::failed("no content id returned"))?;
    let names = plugin.content_names(ct.as_ref());
    if let Some(repository_id) = args.repository {
        let repository = store.get_repository(repository_id).await?;
        let version = store.create_incomplete_version(repository.id).await?;
        let work = async {
            store.associate(version.id, &[content_id]).await?;
            if !args.overwrite {
                refuse_overwrite(&store, version.id).await?;
            }
            Ok::<_, TaskError>(store.finalize_version(version.id).await?)
        };
        match work.await {
            Ok(Some(v)) => {
                ctx.created_resource(&href::version(&names, repository.id, v.number))
                    .await?;
                super::repository::autopublish(&ctx, &env, plugin.as_ref(), &repository, v.id)
                    .await?;
                super::repository::apply_retention(&store, repository.id).await?;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = store.discard_version(version.id).await;
                return Err(e);
            }
        }
    }
    ctx.created_resource(&href::content(&names, content_id))
        .await
}

/// Orphan cleanup's share for uploads: deletes the uploads untouched since `cutoff` with their
/// chunks, then the stored chunks of uploads no row names whose newest chunk is older than
/// `protection` and `min_age` (what a crash between a row's deletion and its chunks' left). Returns how many
/// uploads went.
pub async fn cleanup_uploads(
    store: &DynStore,
    storage: &ArtifactStorage,
    cutoff: DateTime<Utc>,
    protection: Duration,
    min_age: Duration,
) -> Result<u64, TaskError> {
    let gone = store.delete_uploads_before(cutoff).await?;
    let before = SystemTime::now()
        .checked_sub(protection.max(min_age))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let known: std::collections::HashSet<Uuid> = store.upload_ids().await?.into_iter().collect();
    let n = gone.len() as u64;
    for id in &gone {
        if let Err(e) = storage.remove_upload(*id).await {
            tracing::warn!(error = %e, upload = %id, "cannot remove an orphan upload's chunks");
        }
    }
    match storage.uploads_before(before).await {
        Ok(stray) => {
            for id in stray.iter().filter(|id| !known.contains(id)) {
                if let Err(e) = storage.remove_upload(*id).await {
                    tracing::warn!(error = %e, upload = %id, "cannot remove stray upload chunks");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot list the stored upload chunks"),
    }
    Ok(n)
}

//! Task functions of the catalog: `sync`, `modify`, `repository_version_delete`, and the
//! asynchronous updates and deletes of remotes and repositories (pulpcore's `general_update` /
//! `general_delete`). The updates apply the field rules of [`crate::validation`] at run time,
//! the same rules the REST API checked at request time.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::TaskEnv;
use crate::db::DbError;
use crate::href;
use crate::models::ContentQuery;
use crate::models::{ProgressReport, Repository, TaskState};
use crate::plugins::Plugin;
use crate::stages::artifact_stages::ArtifactDownloader;
use crate::stages::content_stages::ContentAssociation;
use crate::stages::PipelineReport;
use crate::sync::{self, SyncError};
use crate::tasking::{Registry, TaskArgs, TaskCtx, TaskError};
use crate::validation::{apply_remote, apply_repository, plugin_for};

/// Task names.
pub const SYNC: &str = "sync";
pub const MODIFY: &str = "modify";
pub const VERSION_DELETE: &str = "repository_version_delete";
pub const REMOTE_UPDATE: &str = "remote_update";
pub const REMOTE_DELETE: &str = "remote_delete";
pub const REPOSITORY_UPDATE: &str = "repository_update";
pub const REPOSITORY_DELETE: &str = "repository_delete";

/// Registers the catalog's task functions.
pub fn register(reg: &mut Registry, env: &TaskEnv) {
    let e = env.clone();
    reg.register(SYNC, move |ctx| run_sync(e.clone(), ctx));
    let e = env.clone();
    reg.register(MODIFY, move |ctx| run_modify(e.clone(), ctx));
    let e = env.clone();
    reg.register(VERSION_DELETE, move |ctx| {
        run_version_delete(e.clone(), ctx)
    });
    let e = env.clone();
    reg.register(REMOTE_UPDATE, move |ctx| run_remote_update(e.clone(), ctx));
    let e = env.clone();
    reg.register(REMOTE_DELETE, move |ctx| run_remote_delete(e.clone(), ctx));
    let e = env.clone();
    reg.register(REPOSITORY_UPDATE, move |ctx| {
        run_repository_update(e.clone(), ctx)
    });
    let e = env.clone();
    reg.register(REPOSITORY_DELETE, move |ctx| {
        run_repository_delete(e.clone(), ctx)
    });
}

// ---- arguments --------------------------------------------------------------------------------

/// `sync`: mirror `remote` into a new version of `repository` (`mirror` also removes what the
/// remote no longer lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncArgs {
    pub repository: Uuid,
    pub remote: Uuid,
    #[serde(default)]
    pub mirror: bool,
    /// The plugin's own sync options ([`crate::plugins::Plugin::sync_options`]), defaults
    /// filled in by the API.
    #[serde(default = "empty_object")]
    pub options: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

impl TaskArgs for SyncArgs {
    const NAME: &'static str = SYNC;
}

/// `modify`: a new version of `repository` from `base_version` (or the latest) with
/// `remove_content_units` (or everything, `remove_all`) removed, then `add_content_units` added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModifyArgs {
    pub repository: Uuid,
    #[serde(default)]
    pub add_content_units: Vec<Uuid>,
    #[serde(default)]
    pub remove_content_units: Vec<Uuid>,
    #[serde(default)]
    pub remove_all: bool,
    #[serde(default)]
    pub base_version: Option<i64>,
    /// `false`: an added unit whose repo key a kept unit has fails the task (`PLP0023`)
    /// instead of replacing it.
    #[serde(default = "overwrite_default")]
    pub overwrite: bool,
}

fn overwrite_default() -> bool {
    true
}

impl TaskArgs for ModifyArgs {
    const NAME: &'static str = MODIFY;
}

/// `repository_version_delete`: version `number` of `repository`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionDeleteArgs {
    pub repository: Uuid,
    pub number: i64,
}

impl TaskArgs for VersionDeleteArgs {
    const NAME: &'static str = VERSION_DELETE;
}

/// `remote_update`: the request body `patch`, applied to the remote as it is when the task runs
/// (`partial`: PATCH; otherwise PUT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteUpdateArgs {
    pub remote: Uuid,
    pub patch: Map<String, Value>,
    pub partial: bool,
}

impl TaskArgs for RemoteUpdateArgs {
    const NAME: &'static str = REMOTE_UPDATE;
}

/// `remote_delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteDeleteArgs {
    pub remote: Uuid,
}

impl TaskArgs for RemoteDeleteArgs {
    const NAME: &'static str = REMOTE_DELETE;
}

/// `repository_update`: as [`RemoteUpdateArgs`], for a repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryUpdateArgs {
    pub repository: Uuid,
    pub patch: Map<String, Value>,
    pub partial: bool,
}

impl TaskArgs for RepositoryUpdateArgs {
    const NAME: &'static str = REPOSITORY_UPDATE;
}

/// `repository_delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryDeleteArgs {
    pub repository: Uuid,
}

impl TaskArgs for RepositoryDeleteArgs {
    const NAME: &'static str = REPOSITORY_DELETE;
}

fn plugin_of(env: &TaskEnv, pulp_type: &str) -> Result<Arc<dyn Plugin>, TaskError> {
    plugin_for(&env.plugins, pulp_type)
        .ok_or_else(|| TaskError::failed(format!("no plugin handles {pulp_type}")))
}

fn report(
    code: &str,
    message: &str,
    total: Option<u64>,
    done: u64,
    state: TaskState,
) -> ProgressReport {
    ProgressReport {
        message: message.to_string(),
        code: code.to_string(),
        state,
        total,
        done,
        suffix: None,
    }
}

const METADATA: (&str, &str) = ("sync.downloading.metadata", "Downloading Metadata");
const DOWNLOADING: (&str, &str) = ("sync.downloading.artifacts", "Downloading Artifacts");
const ASSOCIATING: (&str, &str) = ("associating.content", "Associating Content");
const UNASSOCIATING: (&str, &str) = ("unassociating.content", "Un-Associating Content");
const SKIPPED: (&str, &str) = (
    "sync.complete_skip.was_skipped",
    "Skipping Sync (no change from previous sync)",
);

/// One report per pipeline stage (code `sync.stage.<Stage>`): items out so far as `done`, and in
/// `suffix` its current rate (over the last interval, or the whole run once finished) and how
/// its time split between busy, starved (waiting for input) and blocked (waiting downstream).
fn stage_reports(
    prev: Option<&PipelineReport>,
    now: &PipelineReport,
    dt: f64,
    state: TaskState,
) -> Vec<ProgressReport> {
    now.stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = prev.and_then(|p| p.stages.get(i));
            let (items, busy, starved, blocked, secs) = match p {
                Some(p) => (
                    s.items_out.saturating_sub(p.items_out),
                    (s.busy_secs - p.busy_secs).max(0.0),
                    (s.starved_secs - p.starved_secs).max(0.0),
                    (s.blocked_secs - p.blocked_secs).max(0.0),
                    dt,
                ),
                None => (
                    s.items_out,
                    s.busy_secs,
                    s.starved_secs,
                    s.blocked_secs,
                    s.wall_secs,
                ),
            };
            let total = (busy + starved + blocked).max(1e-9);
            let pct = |x: f64| (x / total * 100.0).round();
            ProgressReport {
                message: format!("Stage {}", s.name),
                code: format!("sync.stage.{}", s.name),
                state,
                total: None,
                done: s.items_out,
                suffix: Some(format!(
                    "{:.0} items/s, busy {}%, starved {}%, blocked {}%",
                    items as f64 / secs.max(1e-3),
                    pct(busy),
                    pct(starved),
                    pct(blocked)
                )),
            }
        })
        .collect()
}

/// Publishes a new version when the repository asks for it (pulp_file's `autopublish`), in the
/// same task, as pulpcore does.
pub(super) async fn autopublish(
    ctx: &TaskCtx,
    env: &TaskEnv,
    plugin: &dyn Plugin,
    repository: &Repository,
    version_id: Uuid,
) -> Result<(), TaskError> {
    publish_with(
        ctx,
        env,
        plugin,
        version_id,
        plugin.autopublish(&repository.plugin_data),
    )
    .await
}

/// Publishes `version_id` as publication type `kind` with the fields `data`, if any.
async fn publish_with(
    ctx: &TaskCtx,
    env: &TaskEnv,
    plugin: &dyn Plugin,
    version_id: Uuid,
    publication: Option<(&str, serde_json::Value)>,
) -> Result<(), TaskError> {
    match publication {
        Some((kind, data)) => {
            super::publish::publish_version(ctx, env, plugin, kind, version_id, &data).await
        }
        None => Ok(()),
    }
}

// ---- sync -------------------------------------------------------------------------------------

async fn run_sync(env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let args: SyncArgs = ctx.args_as()?;
    let mirror = args.mirror;
    let repository = store.get_repository(args.repository).await?;
    let remote = store.get_remote(args.remote).await?;
    let plugin = plugin_of(&env, &repository.pulp_type)?;
    let options = sync::SyncOptions {
        mirror,
        plugin: args.options.clone(),
    };
    let prepared = sync::prepare(&env.sync, plugin.as_ref(), &repository, &remote, options)
        .await
        .map_err(TaskError::failed)?;
    let metrics = prepared.metrics();
    let running = TaskState::Running;
    ctx.progress(report(METADATA.0, METADATA.1, None, 0, running))
        .await?;
    ctx.progress(report(DOWNLOADING.0, DOWNLOADING.1, None, 0, running))
        .await?;
    ctx.progress(report(ASSOCIATING.0, ASSOCIATING.1, None, 0, running))
        .await?;
    // Progress while the pipeline runs (the tasking layer throttles the writes).
    let ticker_ctx = ctx.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_ticker = stop.clone();
    let ticker = tokio::spawn(async move {
        let mut prev = metrics.snapshot();
        let mut at = std::time::Instant::now();
        let mut metadata_done = false;
        loop {
            tokio::select! {
                _ = stop_ticker.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let now = metrics.snapshot();
            let dt = at.elapsed().as_secs_f64();
            // The first stage emits units only once it has read the metadata.
            if !metadata_done && now.stages.first().is_some_and(|s| s.items_out > 0) {
                metadata_done = true;
                let _ = ticker_ctx
                    .progress(report(
                        METADATA.0,
                        METADATA.1,
                        Some(1),
                        1,
                        TaskState::Completed,
                    ))
                    .await;
            }
            for r in stage_reports(Some(&prev), &now, dt, running) {
                let _ = ticker_ctx.progress(r).await;
            }
            let downloaded = now
                .stage(ArtifactDownloader::NAME)
                .map(|s| s.artifacts)
                .unwrap_or(0);
            prev = now;
            at = std::time::Instant::now();
            let associated = metrics
                .stage(ContentAssociation::NAME)
                .map(|s| s.items_out())
                .unwrap_or(0);
            let _ = ticker_ctx
                .progress(report(
                    DOWNLOADING.0,
                    DOWNLOADING.1,
                    None,
                    downloaded,
                    running,
                ))
                .await;
            let _ = ticker_ctx
                .progress(report(
                    ASSOCIATING.0,
                    ASSOCIATING.1,
                    None,
                    associated,
                    running,
                ))
                .await;
        }
    });
    let result = prepared.run(ctx.cancel_token().clone()).await;
    stop.cancel();
    let _ = ticker.await;
    match result {
        Ok(outcome) => {
            let done = TaskState::Completed;
            ctx.progress(report(METADATA.0, METADATA.1, Some(1), 1, done))
                .await?;
            for r in stage_reports(None, &outcome.report, 0.0, done) {
                ctx.progress(r).await?;
            }
            let downloaded = outcome
                .report
                .stage(ArtifactDownloader::NAME)
                .map(|s| s.artifacts)
                .unwrap_or(0);
            ctx.progress(report(DOWNLOADING.0, DOWNLOADING.1, None, downloaded, done))
                .await?;
            ctx.progress(report(
                ASSOCIATING.0,
                ASSOCIATING.1,
                Some(outcome.counts.added),
                outcome.counts.added,
                done,
            ))
            .await?;
            if outcome.skipped {
                ctx.progress(report(SKIPPED.0, SKIPPED.1, Some(1), 1, done))
                    .await?;
            }
            if mirror {
                ctx.progress(report(
                    UNASSOCIATING.0,
                    UNASSOCIATING.1,
                    Some(outcome.counts.removed),
                    outcome.counts.removed,
                    done,
                ))
                .await?;
            }
            if let Some(v) = outcome.version {
                let names = plugin.api_names();
                ctx.created_resource(&href::version(&names, repository.id, v.number))
                    .await?;
                // A mirror sync publishes what it mirrored (for plugins that say so, as
                // pulp_file does); the API refuses mirror on an autopublished repository.
                let mirrored = if mirror {
                    plugin.mirror_publication(&remote)
                } else {
                    None
                };
                match mirrored {
                    Some(data) => {
                        publish_with(&ctx, &env, plugin.as_ref(), v.id, Some(data)).await?
                    }
                    None => autopublish(&ctx, &env, plugin.as_ref(), &repository, v.id).await?,
                }
                apply_retention(&store, repository.id).await?;
            }
            Ok(())
        }
        Err(SyncError::Cancelled) => Err(TaskError::Canceled),
        Err(e) => Err(TaskError::failed(e)),
    }
}

// ---- modify -----------------------------------------------------------------------------------

async fn run_modify(env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let ModifyArgs {
        repository,
        add_content_units: add,
        remove_content_units: remove,
        remove_all,
        base_version: base,
        overwrite,
    } = ctx.args_as()?;
    let repository = store.get_repository(repository).await?;
    let plugin = plugin_of(&env, &repository.pulp_type)?;
    let version = store.create_incomplete_version(repository.id).await?;
    let work = async {
        let latest = store.latest_version(repository.id).await?;
        if let Some(base) = base.filter(|b| *b != latest.number) {
            let (_, units) = store
                .list_content(&ContentQuery {
                    in_version: Some((repository.id, base)),
                    limit: u64::MAX >> 1,
                    ..ContentQuery::default()
                })
                .await?;
            let ids: Vec<Uuid> = units.iter().map(|c| c.id).collect();
            let keep: HashSet<Uuid> = ids.iter().copied().collect();
            store.unassociate_except(version.id, &keep).await?;
            store.associate(version.id, &ids).await?;
        }
        if remove_all {
            store
                .unassociate_except(version.id, &HashSet::new())
                .await?;
        } else if !remove.is_empty() {
            store.unassociate(version.id, &remove).await?;
        }
        if !add.is_empty() {
            store.associate(version.id, &add).await?;
        }
        if !overwrite {
            super::upload::refuse_overwrite(&store, version.id).await?;
        }
        Ok::<_, TaskError>(store.finalize_version(version.id).await?)
    };
    match work.await {
        Ok(Some(v)) => {
            let names = plugin.api_names();
            ctx.created_resource(&href::version(&names, repository.id, v.number))
                .await?;
            autopublish(&ctx, &env, plugin.as_ref(), &repository, v.id).await?;
            apply_retention(&store, repository.id).await
        }
        Ok(None) => Ok(()),
        Err(e) => {
            let _ = store.discard_version(version.id).await;
            Err(match e {
                TaskError::Db(db) => TaskError::failed(db),
                other => other,
            })
        }
    }
}

/// Deletes the oldest complete versions beyond the repository's `retain_repo_versions`.
/// (pulpcore also keeps versions a distribution serves; distributions are not considered here.)
pub(super) async fn apply_retention(
    store: &crate::db::DynStore,
    repository_id: Uuid,
) -> Result<(), TaskError> {
    let repo = store.get_repository(repository_id).await?;
    let Some(keep) = repo.retain_repo_versions else {
        return Ok(());
    };
    let versions = store.list_versions(repository_id).await?;
    let excess = versions
        .len()
        .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    for v in versions.iter().take(excess) {
        store.delete_version(v.id).await?;
    }
    Ok(())
}

// ---- deletes and updates ----------------------------------------------------------------------

async fn run_version_delete(_env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let VersionDeleteArgs { repository, number } = ctx.args_as()?;
    let version = store
        .get_version(repository, number)
        .await?
        .ok_or_else(|| TaskError::failed(format!("repository version {number} not found")))?;
    match store.delete_version(version.id).await {
        Ok(()) => Ok(()),
        Err(DbError::Conflict(m)) => Err(TaskError::failed(m)),
        Err(e) => Err(e.into()),
    }
}

async fn run_remote_delete(_env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let args: RemoteDeleteArgs = ctx.args_as()?;
    ctx.store().delete_remote(args.remote).await?;
    Ok(())
}

async fn run_repository_delete(_env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let args: RepositoryDeleteArgs = ctx.args_as()?;
    ctx.store().delete_repository(args.repository).await?;
    Ok(())
}

async fn run_remote_update(env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let mut args: RemoteUpdateArgs = ctx.args_as()?;
    store
        .secrets()
        .decrypt_members(&mut args.patch)
        .map_err(|e| TaskError::failed(format!("remote update arguments: {e}")))?;
    let current = store.get_remote(args.remote).await?;
    let plugin = plugin_of(&env, &current.pulp_type)?;
    let updated = apply_remote(plugin.as_ref(), &current, args.patch, args.partial)
        .map_err(TaskError::failed)?;
    store.update_remote(&updated).await.map_err(db_failure)?;
    Ok(())
}

async fn run_repository_update(env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let args: RepositoryUpdateArgs = ctx.args_as()?;
    let current = store.get_repository(args.repository).await?;
    let plugin = plugin_of(&env, &current.pulp_type)?;
    let updated = apply_repository(plugin.as_ref(), &current, args.patch, args.partial)
        .map_err(TaskError::failed)?;
    store
        .update_repository(&updated)
        .await
        .map_err(db_failure)?;
    Ok(())
}

fn db_failure(e: DbError) -> TaskError {
    match e {
        DbError::Conflict(m) => TaskError::failed(m),
        other => other.into(),
    }
}

//! `pulp-rs sync`: create the remote and repository if new, run the pipeline, print a summary.
//! A plain path where the URL belongs is refused with the `file://` URL it probably meant; a
//! first sync that fails takes the repository and remote it made with it, so a typo leaves
//! nothing behind; Ctrl-C cancels the sync (nothing half-made is kept) and exits 130.

use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use pulp_rs::db::DynStore;
use pulp_rs::models::{Policy, Remote, Repository};
use pulp_rs::plugins;
use pulp_rs::stages::artifact_stages::ArtifactDownloader;
use pulp_rs::sync::{self, SyncContext, SyncOutcome};
use tokio_util::sync::CancellationToken;

use super::out::outln;
use super::progress::Progress;
use super::Location;

#[derive(Args, Debug, Clone)]
pub struct SyncArgs {
    /// The URL of the repository's manifest (http://, https:// or file://).
    pub url: String,
    /// The repository to sync into (created if new).
    #[arg(long)]
    pub repository: String,
    /// Remove content that upstream no longer lists.
    #[arg(long)]
    pub mirror: bool,
    /// immediate, on_demand or streamed.
    #[arg(long, default_value = "immediate")]
    pub policy: Policy,
    /// The content type's plugin.
    #[arg(long = "type", default_value = "file")]
    pub plugin: String,
    /// Simultaneous downloads from the remote (default 10).
    #[arg(long)]
    pub download_concurrency: Option<u32>,
    /// Retries of a failed download (default 3).
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Seconds without a byte from the server before an attempt fails.
    #[arg(long)]
    pub read_timeout: Option<f64>,
    /// No progress display, summary only.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub at: Location,
}

/// The remote and repository a sync uses, and whether this sync made them.
pub struct SyncTarget {
    pub remote: Remote,
    pub repo: Repository,
    pub made_remote: bool,
    pub made_repo: bool,
}

/// Creates or updates the remote named after the repository.
pub async fn ensure_remote_and_repo(
    store: &DynStore,
    plugin: &dyn plugins::Plugin,
    args: &SyncArgs,
) -> anyhow::Result<SyncTarget> {
    let rtype = plugin.repository_type();
    let existing_remote = store.get_remote_by_name(&args.repository).await?;
    let made_remote = existing_remote.is_none();
    let remote = match existing_remote {
        Some(mut r) => {
            r.url = args.url.clone();
            r.policy = args.policy;
            r.download_concurrency = args.download_concurrency.or(r.download_concurrency);
            r.max_retries = args.max_retries.or(r.max_retries);
            r.sock_read_timeout = args.read_timeout.or(r.sock_read_timeout);
            store.update_remote(&r).await?
        }
        None => {
            let mut r = Remote::new(rtype, &args.repository, &args.url, args.policy);
            r.download_concurrency = args.download_concurrency;
            r.max_retries = args.max_retries;
            r.sock_read_timeout = args.read_timeout;
            store.create_remote(&r).await?
        }
    };
    let existing_repo = store.get_repository_by_name(&args.repository).await?;
    let made_repo = existing_repo.is_none();
    let repo = match existing_repo {
        Some(r) if r.pulp_type != rtype => bail!(
            "repository {:?} is of type {}, not {rtype}",
            r.name,
            r.pulp_type
        ),
        Some(r) => r,
        None => {
            store
                .create_repository(rtype, &args.repository, Some(remote.id))
                .await?
        }
    };
    Ok(SyncTarget {
        remote,
        repo,
        made_remote,
        made_repo,
    })
}

/// Deletes what a failed first sync made (a repository with only its empty version 0, and
/// its new remote), so the next attempt starts clean.
async fn forget(store: &DynStore, target: &SyncTarget) {
    if target.made_repo {
        if let Err(e) = store.delete_repository(target.repo.id).await {
            tracing::warn!(error = %e, "cannot delete the repository of a failed first sync");
            return;
        }
    }
    if target.made_remote {
        if let Err(e) = store.delete_remote(target.remote.id).await {
            tracing::warn!(error = %e, "cannot delete the remote of a failed first sync");
        }
    }
}

pub async fn run(args: SyncArgs) -> anyhow::Result<()> {
    if let Some(hint) = super::errors::file_url_hint(&args.url) {
        bail!(hint);
    }
    let plugin = plugins::by_name(&args.plugin)
        .with_context(|| format!("no plugin named {:?}", args.plugin))?;
    let (store, storage) = args.at.open().await?;
    let target = ensure_remote_and_repo(&store, plugin.as_ref(), &args).await?;
    let result = sync_into(&store, storage, plugin.as_ref(), &args, &target).await;
    if result.is_err() && target.made_repo {
        forget(&store, &target).await;
    }
    result
}

async fn sync_into(
    store: &DynStore,
    storage: pulp_rs::storage::ArtifactStorage,
    plugin: &dyn plugins::Plugin,
    args: &SyncArgs,
    target: &SyncTarget,
) -> anyhow::Result<()> {
    let (remote, repo) = (&target.remote, &target.repo);
    let fail = || format!("sync of {:?} from {} failed", repo.name, remote.url);
    let mut ctx = SyncContext::new(store.clone(), storage);
    ctx.download.import_paths = super::local_import_paths(&args.url)?;
    let started = Instant::now();
    let prepared = sync::prepare(&ctx, plugin, repo, remote, args.mirror)
        .await
        .with_context(fail)?;
    let progress = Progress::start(prepared.metrics(), args.quiet);
    let cancel = CancellationToken::new();
    // Listening from here on (not from the spawned task's first poll): a Ctrl-C once the
    // pipeline runs always cancels it.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")?;
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if interrupt.recv().await.is_some() {
                super::interrupted();
                eprintln!("cancelling...");
                cancel.cancel();
            }
        })
    };
    let result = prepared.run(cancel).await;
    ctrl_c.abort();
    progress.finish();
    let outcome = result.with_context(fail)?;
    outln!(
        "{}",
        summary(repo, &outcome, started.elapsed().as_secs_f64())
    );
    Ok(())
}

/// The one-line summary of a finished sync.
pub fn summary(repo: &Repository, outcome: &SyncOutcome, secs: f64) -> String {
    let units = outcome
        .report
        .stages
        .first()
        .map(|s| s.items_out)
        .unwrap_or(0);
    let bytes = outcome
        .report
        .stage(ArtifactDownloader::NAME)
        .map(|s| s.bytes)
        .unwrap_or(0);
    let version = match &outcome.version {
        Some(v) => format!("version {}", v.number),
        None => "no change, no new version".to_string(),
    };
    format!(
        "{}: {version}; +{} -{} units, {} present; {} units, {:.1} MiB downloaded in {:.2} s ({:.0} units/s, {:.1} MB/s)",
        repo.name,
        outcome.counts.added,
        outcome.counts.removed,
        outcome.counts.present,
        units,
        bytes as f64 / (1024.0 * 1024.0),
        secs,
        units as f64 / secs.max(1e-9),
        bytes as f64 / 1e6 / secs.max(1e-9),
    )
}

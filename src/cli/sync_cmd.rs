//! `pulp-rs sync`: create the remote and repository if new, run the pipeline, print a summary.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use pulp_rs::db::DynStore;
use pulp_rs::models::{Policy, Remote, Repository};
use pulp_rs::plugins;
use pulp_rs::stages::artifact_stages::ArtifactDownloader;
use pulp_rs::sync::{self, SyncContext, SyncOutcome};
use tokio_util::sync::CancellationToken;

use super::progress::Progress;

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
}

/// Creates or updates the remote named after the repository.
pub async fn ensure_remote_and_repo(
    store: &DynStore,
    plugin: &dyn plugins::Plugin,
    args: &SyncArgs,
) -> anyhow::Result<(Remote, Repository)> {
    let rtype = plugin.repository_type();
    let remote = match store.get_remote_by_name(&args.repository).await? {
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
    let repo = match store.get_repository_by_name(&args.repository).await? {
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
    Ok((remote, repo))
}

pub async fn run(data_dir: &Path, db_url: Option<&str>, args: SyncArgs) -> anyhow::Result<()> {
    let plugin = plugins::by_name(&args.plugin)
        .with_context(|| format!("no plugin named {:?}", args.plugin))?;
    let (store, storage) = super::open(data_dir, db_url).await?;
    let (remote, repo) = ensure_remote_and_repo(&store, plugin.as_ref(), &args).await?;
    let mut ctx = SyncContext::new(store.clone(), storage);
    ctx.download.import_paths = super::local_import_paths(&args.url)?;
    let started = Instant::now();
    let prepared = sync::prepare(&ctx, plugin.as_ref(), &repo, &remote, args.mirror).await?;
    let progress = Progress::start(prepared.metrics(), args.quiet);
    let cancel = CancellationToken::new();
    let ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("cancelling...");
                cancel.cancel();
            }
        })
    };
    let result = prepared.run(cancel).await;
    ctrl_c.abort();
    progress.finish();
    let outcome =
        result.with_context(|| format!("sync of {:?} from {} failed", repo.name, remote.url))?;
    println!(
        "{}",
        summary(&repo, &outcome, started.elapsed().as_secs_f64())
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

//! `pulp-rs repo list`, `repo show NAME [--version N] [--limit N] [--offset N]` (content read
//! and printed a page at a time, so a repository of a million units starts printing at once and
//! stops as soon as a pipe's reader has gone) and `repo delete NAME` (the server's
//! `repository_delete` task, run here, with the remote the command line made for it).

use anyhow::Context;
use clap::Subcommand;
use pulp_rs::tasks::repository::{RemoteDeleteArgs, RepositoryDeleteArgs};

use super::out::{self, outln};
use super::Location;

/// Content units read from the database per query by `repo show`.
const PAGE: u64 = 1000;

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// List repositories with their latest version.
    List {
        #[command(flatten)]
        at: Location,
    },
    /// Show a repository's versions and the content of one version (default: the latest).
    Show {
        name: String,
        #[arg(long)]
        version: Option<i64>,
        /// At most this many content units are listed (0: all of them).
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Skip this many content units first.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[command(flatten)]
        at: Location,
    },
    /// Delete a repository with its versions (and the remote `sync` made for it); its content
    /// stays until `orphan cleanup`.
    Delete {
        name: String,
        #[command(flatten)]
        at: Location,
    },
}

impl RepoCommand {
    pub fn location_mut(&mut self) -> &mut Location {
        match self {
            RepoCommand::List { at }
            | RepoCommand::Show { at, .. }
            | RepoCommand::Delete { at, .. } => at,
        }
    }
}

pub async fn run(cmd: RepoCommand) -> anyhow::Result<()> {
    match cmd {
        RepoCommand::List { at } => list(&at).await,
        RepoCommand::Show {
            name,
            version,
            limit,
            offset,
            at,
        } => show(&at, &name, version, limit, offset).await,
        RepoCommand::Delete { name, at } => delete(&at, &name).await,
    }
}

async fn list(at: &Location) -> anyhow::Result<()> {
    let (store, _) = at.open().await?;
    let repos = store.list_repositories().await?;
    if repos.is_empty() {
        outln!("no repositories");
    }
    for r in repos {
        let latest = store.latest_version(r.id).await?;
        outln!(
            "{}\t{}\tlatest version {}\t{} units",
            r.name,
            r.pulp_type,
            latest.number,
            latest.counts.present
        );
        if out::closed() {
            break;
        }
    }
    Ok(())
}

async fn show(
    at: &Location,
    name: &str,
    version: Option<i64>,
    limit: u64,
    offset: u64,
) -> anyhow::Result<()> {
    let (store, _) = at.open().await?;
    let repo = store
        .get_repository_by_name(name)
        .await?
        .with_context(|| format!("no repository named {name:?}"))?;
    outln!("repository {} ({})", repo.name, repo.pulp_type);
    let versions = store.list_versions(repo.id).await?;
    outln!("versions:");
    for v in &versions {
        outln!(
            "  {}\t{}\t+{} -{} ={}",
            v.number,
            v.pulp_created.format("%Y-%m-%d %H:%M:%S"),
            v.counts.added,
            v.counts.removed,
            v.counts.present
        );
    }
    let shown = match version {
        Some(n) => store
            .get_version(repo.id, n)
            .await?
            .with_context(|| format!("repository {name:?} has no version {n}"))?,
        None => store.latest_version(repo.id).await?,
    };
    outln!("content of version {}:", shown.number);
    let present = shown.counts.present;
    let end = match limit {
        0 => present,
        n => offset.saturating_add(n).min(present),
    };
    let mut at_unit = offset;
    while at_unit < end && !out::closed() {
        let page = store
            .version_content(shown.id, PAGE.min(end - at_unit), at_unit)
            .await?;
        if page.is_empty() {
            break;
        }
        for c in &page {
            outln!("  {}\t{}", c.pulp_type, c.data);
        }
        at_unit += page.len() as u64;
    }
    if at_unit < present {
        outln!(
            "  ... {} more (--offset {at_unit} for the next ones, --limit 0 for all)",
            present - at_unit
        );
    }
    Ok(())
}

async fn delete(at: &Location, name: &str) -> anyhow::Result<()> {
    let (store, storage) = at.open().await?;
    let repo = store
        .get_repository_by_name(name)
        .await?
        .with_context(|| format!("no repository named {name:?}"))?;
    let plugin = pulp_rs::plugins::registry()
        .into_iter()
        .find(|p| p.repository_type() == repo.pulp_type)
        .with_context(|| format!("no plugin handles repositories of type {}", repo.pulp_type))?;
    let names = plugin.api_names();
    let own = pulp_rs::href::repository(&names, repo.id);
    super::local_task::run(
        &store,
        &storage,
        &RepositoryDeleteArgs {
            repository: repo.id,
        },
        &[&own],
    )
    .await?;
    // `sync` names the remote it makes after the repository: it goes with it.
    let mut removed_remote = false;
    if let Some(remote) = store.get_remote_by_name(name).await? {
        if repo.remote_id == Some(remote.id) {
            let own = pulp_rs::href::remote(&names, remote.id);
            super::local_task::run(
                &store,
                &storage,
                &RemoteDeleteArgs { remote: remote.id },
                &[&own],
            )
            .await?;
            removed_remote = true;
        }
    }
    outln!(
        "deleted repository {name:?}{}; its content stays until `pulp-rs orphan cleanup`",
        if removed_remote {
            " and its remote"
        } else {
            ""
        }
    );
    Ok(())
}

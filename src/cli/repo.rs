//! `pulp-rs repo list` and `pulp-rs repo show NAME [--version N]`.

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// List repositories with their latest version.
    List,
    /// Show a repository's versions and the content of one version (default: the latest).
    Show {
        name: String,
        #[arg(long)]
        version: Option<i64>,
        /// At most this many content units are listed.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

pub async fn run(data_dir: &Path, db_url: Option<&str>, cmd: RepoCommand) -> anyhow::Result<()> {
    let (store, _) = super::open(data_dir, db_url).await?;
    match cmd {
        RepoCommand::List => {
            let repos = store.list_repositories().await?;
            if repos.is_empty() {
                println!("no repositories");
            }
            for r in repos {
                let latest = store.latest_version(r.id).await?;
                println!(
                    "{}\t{}\tlatest version {}\t{} units",
                    r.name, r.pulp_type, latest.number, latest.counts.present
                );
            }
        }
        RepoCommand::Show {
            name,
            version,
            limit,
        } => {
            let repo = store
                .get_repository_by_name(&name)
                .await?
                .with_context(|| format!("no repository named {name:?}"))?;
            println!("repository {} ({})", repo.name, repo.pulp_type);
            let versions = store.list_versions(repo.id).await?;
            println!("versions:");
            for v in &versions {
                println!(
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
            println!("content of version {}:", shown.number);
            let content = store.version_content(shown.id, limit, 0).await?;
            for c in &content {
                println!("  {}\t{}", c.pulp_type, c.data);
            }
            if shown.counts.present > content.len() as u64 {
                println!("  ... {} more", shown.counts.present - content.len() as u64);
            }
        }
    }
    Ok(())
}

//! `pulp-rs orphan cleanup [--protection-time MINUTES]`: the server's orphan cleanup task, run
//! here. Content in no repository version and artifacts no content uses go, with their files,
//! once older than the protection time (pulpcore's `ORPHAN_PROTECTION_TIME`).

use clap::Subcommand;
use pulp_rs::tasks::admin::{
    OrphanCleanupArgs, DEFAULT_ORPHAN_PROTECTION_MINUTES, ORPHAN_CLEANUP_RESOURCE,
};

use super::out::outln;
use super::Location;

#[derive(Subcommand, Debug)]
pub enum OrphanCommand {
    /// Delete orphan content and artifacts (and their files).
    Cleanup {
        /// Minutes an orphan is kept after it was last used (0: remove all orphans now).
        #[arg(long, value_name = "MINUTES", default_value_t = DEFAULT_ORPHAN_PROTECTION_MINUTES)]
        protection_time: u64,
        #[command(flatten)]
        at: Location,
    },
}

impl OrphanCommand {
    pub fn location_mut(&mut self) -> &mut Location {
        let OrphanCommand::Cleanup { at, .. } = self;
        at
    }
}

pub async fn run(cmd: OrphanCommand) -> anyhow::Result<()> {
    let OrphanCommand::Cleanup {
        protection_time,
        at,
    } = cmd;
    let (store, storage) = at.open().await?;
    let args = OrphanCleanupArgs {
        orphan_protection_time: Some(protection_time),
        content_ids: None,
    };
    let task = super::local_task::run(&store, &storage, &args, &[ORPHAN_CLEANUP_RESOURCE]).await?;
    for r in &task.progress_reports {
        outln!("{}: {}", r.message, r.done);
    }
    Ok(())
}

//! The task functions the server's workers run, registered by name (pulpcore's `app/tasks/`).
//!
//! Each task's arguments are one serde struct implementing [`crate::tasking::TaskArgs`]
//! (`SyncArgs`, `PublishArgs`, `OrphanCleanupArgs`...): the REST API builds it and dispatches it
//! with the resources it reserves ([`crate::tasking::Tasking::dispatch_args`]); the function
//! reads it once ([`crate::tasking::TaskCtx::args_as`], a bad shape fails the task), does its
//! work through the store and the artifact storage, and records created resources.
//!
//! What this layer knows: tasking, the store, storage, plugins, sync (and its stages' names for
//! progress), the shared field rules ([`crate::validation`]) and hrefs ([`crate::href`]).
//! Nothing here imports the REST layer (`api`) or knows about HTTP.
//!
//! - `repository`: sync, modify, delete a repository version, update / delete remotes and
//!   repositories.
//! - `publish`: publications (the plugin's metadata files stored as artifacts).
//! - `admin`: orphan cleanup.
//! - `upload`: upload commit and content create (from an artifact, an upload or a URL).

pub mod admin;
pub mod publish;
pub mod repository;
pub mod upload;

use std::sync::Arc;

use crate::db::DynStore;
use crate::plugins::Plugin;
use crate::storage::ArtifactStorage;
use crate::sync::SyncContext;
use crate::tasking::Registry;

/// What task functions share.
#[derive(Clone)]
pub struct TaskEnv {
    pub store: DynStore,
    pub storage: ArtifactStorage,
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// Pipeline and download settings for syncs.
    pub sync: SyncContext,
}

/// Every task function of the server: the core's, then each plugin's own.
pub fn registry(env: &TaskEnv) -> Registry {
    let mut registry = Registry::new();
    let storage = env.storage.clone();
    registry.register(admin::ORPHAN_CLEANUP, move |ctx| {
        admin::orphan_cleanup(ctx, storage.clone())
    });
    repository::register(&mut registry, env);
    publish::register(&mut registry, env);
    upload::register(&mut registry, env);
    for p in &env.plugins {
        p.register_tasks(&mut registry, env);
    }
    registry
}

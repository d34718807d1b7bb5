//! The task functions the server's workers run, registered by name (pulpcore's `app/tasks/`).
//!
//! Each function reads its arguments from the task row, does its work through the store and
//! the artifact storage, and records created resources. The REST API dispatches them with
//! the resources they reserve; nothing here knows about HTTP.
//!
//! - `repository`: sync, modify, delete a repository version, update / delete remotes and
//!   repositories.
//! - `publish`: publications (the plugin's metadata files stored as artifacts).
//! - `admin`: orphan cleanup.

pub mod admin;
pub mod publish;
pub mod repository;

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

/// Every task function of the server.
pub fn registry(env: &TaskEnv) -> Registry {
    let mut registry = Registry::new();
    let storage = env.storage.clone();
    registry.register(admin::ORPHAN_CLEANUP, move |ctx| {
        admin::orphan_cleanup(ctx, storage.clone())
    });
    repository::register(&mut registry, env);
    publish::register(&mut registry, env);
    registry
}

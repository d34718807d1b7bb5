//! Content-type plugins. The core knows a plugin only through the [`Plugin`] trait: it asks
//! for a first stage (and optionally a whole custom pipeline) and never names a content type.
//! [`registry`] is the one list of compiled-in plugins.

pub mod file;

use std::sync::Arc;

use crate::declarative::RemoteHandle;
use crate::stages::{default_stages, Stage, StageEnv};

/// What a plugin's first stage may use besides its remote.
#[derive(Clone)]
pub struct SyncEnv {
    pub remote: Arc<RemoteHandle>,
    pub stages: StageEnv,
}

/// How a plugin's objects are named in the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiNames {
    /// First URL segment after the collection: `remotes/<app_label>/<kind>/` (`file`).
    pub app_label: &'static str,
    /// Second segment for remotes, repositories, publications, distributions (`file`).
    pub kind: &'static str,
    /// Second segment for content: `content/<app_label>/<content_kind>/` (`files`).
    pub content_kind: &'static str,
}

/// A content-type plugin.
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name, the first half of its `pulp_type`s (`file` for `file.file`).
    fn name(&self) -> &'static str;

    /// The repository / remote type it syncs (`file.file`).
    fn repository_type(&self) -> &'static str;

    /// The first stage of a sync from `env.remote`.
    fn first_stage(&self, env: &SyncEnv) -> Box<dyn Stage>;

    /// The stages after the first. Override to insert custom stages.
    fn stages(&self, env: &SyncEnv, mirror: bool) -> Vec<Box<dyn Stage>> {
        default_stages(&env.stages, mirror)
    }

    /// How this plugin's objects are named in the REST API.
    fn api_names(&self) -> ApiNames;

    // ---- REST API: catalog (remotes, repositories, content) ------------------------------

    // ---- REST API: publications and distributions --------------------------------------

    /// Takes the plugin's own publication fields out of a publication create body and returns
    /// them as the publication's `plugin_data` (shown as fields of the publication), or
    /// `(field, message)` for a bad value.
    fn publication_options(
        &self,
        body: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, (String, String)> {
        let _ = body;
        Ok(serde_json::json!({}))
    }

    /// OpenAPI properties of the plugin's publication fields (`{"manifest": {...}}`).
    fn publication_schema(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    /// Whether a publication also serves every content artifact of its version at its own
    /// relative path (pulpcore's `pass_through`).
    fn publication_pass_through(&self) -> bool {
        true
    }

    /// Whether a distribution on a repository (or a version) serves the latest publication
    /// (pulpcore's `SERVE_FROM_PUBLICATION`) rather than the version itself.
    fn serves_publications(&self) -> bool {
        false
    }

    /// The metadata files a publication of a version whose files are `files` carries:
    /// `(relative path, bytes)`.
    fn publication_metadata(
        &self,
        plugin_data: &serde_json::Value,
        files: &[crate::db::distribution::ServedFile],
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let _ = (plugin_data, files);
        Ok(Vec::new())
    }
}

/// Every compiled-in plugin.
pub fn registry() -> Vec<Arc<dyn Plugin>> {
    vec![Arc::new(file::FilePlugin)]
}

/// The plugin called `name`, if compiled in.
pub fn by_name(name: &str) -> Option<Arc<dyn Plugin>> {
    registry().into_iter().find(|p| p.name() == name)
}

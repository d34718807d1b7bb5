//! Content-type plugins. The core knows a plugin only through the [`Plugin`] trait: it asks
//! for a first stage (and optionally a whole custom pipeline), for REST names and fields, and
//! for the unit an uploaded artifact makes ([`Plugin::content_from_artifact`]); it never names
//! a content type.
//! [`registry`] is the one list of compiled-in plugins.

pub mod file;

use std::sync::Arc;

use crate::declarative::RemoteHandle;
use crate::models::{Artifact, Content, UnsavedContent};
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

/// Class names of a plugin's REST models (pulpcore's serializer `ref_name`s without the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelNames {
    /// `FileRemote`.
    pub remote: &'static str,
    /// `FileRepository`.
    pub repository: &'static str,
    /// `FileContent`.
    pub content: &'static str,
}

/// One plugin-specific repository field.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginField {
    pub name: &'static str,
    /// JSON schema; its `type` (`string`, `boolean`, `integer`) is what the API validates.
    pub schema: serde_json::Value,
    pub default: serde_json::Value,
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

    /// Class names of the plugin's REST models, for schema names (`file.FileRemote`) and PRNs
    /// (`prn:file.fileremote:<id>`).
    fn model_names(&self) -> ModelNames {
        ModelNames {
            remote: "Remote",
            repository: "Repository",
            content: "Content",
        }
    }

    /// The `pulp_type` of the plugin's content units (`file.file`).
    fn content_type(&self) -> &'static str {
        self.repository_type()
    }

    /// The plugin's own repository fields, stored in the repository's plugin data.
    fn repository_fields(&self) -> Vec<PluginField> {
        Vec::new()
    }

    /// Content list filters that compare a key of a unit's data with the parameter's value:
    /// `(query parameter, data key)`.
    fn content_filters(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// The REST fields of a unit besides the core's (`pulp_href`, `artifact`...), with their
    /// JSON schemas in [`Plugin::content_schema`].
    fn content_fields(&self, content: &Content) -> serde_json::Map<String, serde_json::Value> {
        let _ = content;
        serde_json::Map::new()
    }

    /// JSON schemas of the fields of [`Plugin::content_fields`], by name.
    fn content_schema(&self) -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }

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
        files: &[crate::models::ServedFile],
    ) -> Result<Vec<(String, Vec<u8>)>, String> {
        let _ = (plugin_data, files);
        Ok(Vec::new())
    }

    /// The publication fields of the publication a `mirror` sync makes of the version it
    /// creates, in the same task (pulp_file publishes every mirrored version, its manifest named
    /// as the remote's); `None`: a mirror sync publishes nothing.
    fn mirror_publication(&self, remote: &crate::models::Remote) -> Option<serde_json::Value> {
        let _ = remote;
        None
    }

    /// Whether a repository with these plugin fields publishes each new version by itself,
    /// and with which publication fields (`None`: it does not).
    fn autopublish(&self, repository_data: &serde_json::Value) -> Option<serde_json::Value> {
        let _ = repository_data;
        None
    }

    // ---- content creation from bytes (uploads, artifacts, URLs) --------------------------

    /// The plugin's own fields of a content create (`POST content/<app>/<kind>/`, e.g.
    /// `relative_path`), besides the core's (`artifact`, `file`, `upload`, `file_url`,
    /// `repository`, `overwrite`). `None` (the default): the plugin's units cannot be made from
    /// an uploaded file, and the endpoint does not exist.
    fn content_create_fields(&self) -> Option<Vec<CreateField>> {
        None
    }

    /// Checks the fields of a content create before a task is dispatched: `(field, message)`
    /// for a bad value. The bytes are not known yet.
    fn check_content_fields(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), (String, String)> {
        let _ = fields;
        Ok(())
    }

    /// The unit that the saved `artifact` (its file at `path`, to read when the unit's fields
    /// come from the bytes, as a `.deb`'s control file does) makes with the create `fields`, and
    /// the relative path of its one content artifact. Run by the content create task.
    fn content_from_artifact(
        &self,
        artifact: &Artifact,
        path: &std::path::Path,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ArtifactUnit, String> {
        let _ = (artifact, path, fields);
        Err(format!(
            "{} content cannot be created from a file",
            self.content_type()
        ))
    }
}

/// One plugin field of a content create.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateField {
    pub name: &'static str,
    /// JSON schema (`{"type": "string"}`), for the OpenAPI document.
    pub schema: serde_json::Value,
    pub required: bool,
}

/// A unit made from one artifact by [`Plugin::content_from_artifact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactUnit {
    pub content: UnsavedContent,
    /// Where the artifact sits in the unit (and in a publication).
    pub relative_path: String,
}

/// Every compiled-in plugin.
pub fn registry() -> Vec<Arc<dyn Plugin>> {
    vec![Arc::new(file::FilePlugin)]
}

/// The plugin called `name`, if compiled in.
pub fn by_name(name: &str) -> Option<Arc<dyn Plugin>> {
    registry().into_iter().find(|p| p.name() == name)
}

/// The most characters of outside input an error message quotes.
pub const EXCERPT_CHARS: usize = 24;

/// A short, escaped excerpt of `input` for an error message: at most [`EXCERPT_CHARS`]
/// characters, control characters and quotes escaped, `…` when cut. A metadata line may come
/// from any file a remote names, and messages reach the API and the logs, so no message quotes
/// a whole line.
pub fn excerpt(input: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = input.chars();
    for c in chars.by_ref().take(EXCERPT_CHARS) {
        out.extend(c.escape_debug());
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push('"');
    out
}

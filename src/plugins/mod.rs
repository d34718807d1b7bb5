//! Plugins. The core knows a plugin only through this contract and never names one:
//! - [`Plugin`]: the plugin's remote, repository and distribution types (REST names, its own
//!   fields of any JSON type, stored generically as plugin data), its sync options, the first
//!   stage of its sync (and optionally a whole custom pipeline), its version in `status/`, and
//!   any REST routes and task functions of its own, which the core registers beside its own;
//! - [`ContentType`]: each of its content types (`pulp_type`, REST names, fields and schemas,
//!   list filters, several artifacts per unit or one, the unit an uploaded file makes);
//! - [`PublicationType`]: each of its publication types, whose async hook streams over a
//!   version's units through a [`Publisher`] and writes metadata files and content at paths of
//!   its choosing, without holding the version in memory.
//!
//! [`registry`] is the one list of compiled-in plugins; [`path::check_relative_path`] the one
//! check of a relative path named by outside input.

pub mod deb;
pub mod file;
pub mod path;

pub use path::check_relative_path;

use std::sync::Arc;

use crate::declarative::RemoteHandle;
use crate::models::{Artifact, Content, UnsavedContent};
use crate::stages::{default_stages, Stage, StageEnv};

/// What a plugin's first stage may use besides its remote.
#[derive(Clone)]
pub struct SyncEnv {
    pub remote: Arc<RemoteHandle>,
    pub stages: StageEnv,
    /// The sync's options beyond `mirror`, as the plugin declares them
    /// ([`Plugin::sync_options`]; e.g. deb's `optimize`), defaults filled in: a JSON object.
    pub options: serde_json::Value,
    /// Raised by a first stage that finds upstream unchanged since the latest version: it then
    /// emits nothing more, and the sync makes no version, whatever `mirror` says (pulpcore's
    /// `sync.complete_skip.was_skipped`).
    pub skip: SkipSignal,
}

/// See [`SyncEnv::skip`].
#[derive(Clone, Debug, Default)]
pub struct SkipSignal(Arc<std::sync::atomic::AtomicBool>);

impl SkipSignal {
    /// The sync has nothing to do past what the first stage read.
    pub fn raise(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// How a plugin's objects are named in the REST API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiNames {
    /// First URL segment after the collection: `remotes/<app_label>/<kind>/` (`file`, `deb`).
    pub app_label: &'static str,
    /// Second segment for remotes, repositories, publications, distributions (`file`, `apt`).
    pub kind: &'static str,
    /// Second segment for content: `content/<app_label>/<content_kind>/` (`files`,
    /// `packages`); set per content type ([`Plugin::content_names`]).
    pub content_kind: &'static str,
}

/// Class names of a plugin's REST models (pulpcore's serializer `ref_name`s without the app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelNames {
    /// `FileRemote`, `AptRemote`.
    pub remote: &'static str,
    /// `FileRepository`, `AptRepository`.
    pub repository: &'static str,
    /// `FileDistribution`, `AptDistribution`.
    pub distribution: &'static str,
}

/// One plugin-specific field of a remote, a repository, or a sync request.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginField {
    pub name: &'static str,
    /// JSON schema; its `type` (`string`, `boolean`, `integer`, `array` of strings, `object`)
    /// and `nullable` are what the API validates.
    pub schema: serde_json::Value,
    pub default: serde_json::Value,
    /// A create (or full update) must give it.
    pub required: bool,
}

/// Why a publication could not be made: the message the task fails with.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The plugin's own failure (a path that would hide another, a signing script that failed).
    #[error("{0}")]
    Plugin(String),
    /// A path handed to the [`Publisher`] that is not relative or leaves the publication.
    #[error("unsafe publication path: {0}")]
    UnsafePath(String),
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("publication I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// One unit of a version as a publication reads it: the unit and its files.
#[derive(Debug, Clone)]
pub struct PublishUnit {
    pub content: Content,
    /// The unit's content artifacts (downloaded or not), by relative path.
    pub files: Vec<crate::models::ServedFile>,
}

/// What a publication hook works with (implemented by the core's publish task): it reads the
/// version's content page by page and writes the publication's files. Nothing requires the
/// whole version in memory.
#[async_trait::async_trait]
pub trait Publisher: Send {
    /// Up to `limit` units of `pulp_type` in the version with ids after `after`, by id; an
    /// empty page is the end.
    async fn units(
        &mut self,
        pulp_type: &str,
        after: Option<uuid::Uuid>,
        limit: u64,
    ) -> Result<Vec<PublishUnit>, PublishError>;

    /// A new temp file in the artifact store's file system, to write a metadata file into.
    fn temp_file(&self) -> Result<tempfile::NamedTempFile, PublishError>;

    /// Publishes the file at `path` (a temp file from [`Publisher::temp_file`], written and
    /// flushed) as a metadata file at `relative_path`; returns its sha256 and size. Like every
    /// path a hook hands the publisher, `relative_path` must pass [`check_relative_path`]
    /// (relative, no `.` / `..` segment even percent-encoded, no backslash or control
    /// character), else [`PublishError::UnsafePath`]: the core does not trust plugins with it.
    async fn add_metadata_file(
        &mut self,
        relative_path: &str,
        path: tempfile::TempPath,
    ) -> Result<(String, u64), PublishError>;

    /// Publishes `bytes` as a metadata file at `relative_path`.
    async fn add_metadata(
        &mut self,
        relative_path: &str,
        bytes: Vec<u8>,
    ) -> Result<(String, u64), PublishError> {
        use std::io::Write;
        let mut tmp = self.temp_file()?;
        tmp.write_all(&bytes)?;
        tmp.flush()?;
        self.add_metadata_file(relative_path, tmp.into_temp_path())
            .await
    }

    /// Serves the content artifact `content_artifact_id` (downloaded or on_demand) at
    /// `relative_path` of the publication (checked as in [`Publisher::add_metadata_file`]).
    async fn add_content_file(
        &mut self,
        relative_path: &str,
        content_artifact_id: uuid::Uuid,
    ) -> Result<(), PublishError>;

    /// A directory of the task's own for scratch files (files to sign...), removed after.
    fn scratch_dir(&self) -> &std::path::Path;

    /// Signs `file` with the signing service `service`: runs its script with the file's path
    /// (in [`Publisher::scratch_dir`], `PULP_SIGNING_KEY_FINGERPRINT` set) and returns the JSON
    /// it printed (for an APT release: `{"signatures": {"inline": path, "detached": path}}`).
    async fn sign(
        &mut self,
        service: uuid::Uuid,
        file: &std::path::Path,
    ) -> Result<serde_json::Value, PublishError>;
}

/// One kind of publication a plugin makes (file: `file`; deb: `apt` and `verbatim`).
#[async_trait::async_trait]
pub trait PublicationType: Send + Sync + 'static {
    /// The URL segment: `publications/<app_label>/<kind>/`.
    fn kind(&self) -> &'static str;

    /// The REST model's class name (`FilePublication`, `AptPublication`).
    fn model(&self) -> &'static str;

    /// The publications' `pulp_type` (`file.file`, `deb.apt-publication`).
    fn pulp_type(&self) -> &'static str;

    /// Takes this type's own fields out of a create body and returns them as the publication's
    /// `plugin_data` (shown as fields of the publication), or `(field, message)` for a bad
    /// value.
    fn options(
        &self,
        body: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, (String, String)> {
        let _ = body;
        Ok(serde_json::json!({}))
    }

    /// OpenAPI properties of the fields of [`PublicationType::options`].
    fn schema(&self) -> serde_json::Value {
        serde_json::json!({})
    }

    /// Whether a publication also serves every content artifact of its version at its own
    /// relative path (pulpcore's `pass_through`).
    fn pass_through(&self) -> bool {
        false
    }

    /// Writes the publication: metadata files, and content artifacts at paths of its choosing.
    async fn publish(
        &self,
        publisher: &mut dyn Publisher,
        plugin_data: &serde_json::Value,
    ) -> Result<(), PublishError>;
}

/// One content type of a plugin (file: `file.file`; deb: packages, release files...).
pub trait ContentType: Send + Sync + 'static {
    /// `<plugin>.<type>` (`file.file`, `deb.package`).
    fn pulp_type(&self) -> &'static str;

    /// The URL segment: `content/<app_label>/<content_kind>/` (`files`, `packages`).
    fn content_kind(&self) -> &'static str;

    /// The REST model's class name (`FileContent`, `Package`).
    fn model(&self) -> &'static str;

    /// The path parameter of a unit's href in the OpenAPI document (pulp-glue's `HREF`), when
    /// not `<app_label>_<kind>_content_href` (deb: `deb_package_href`).
    fn href_param(&self) -> Option<&'static str> {
        None
    }

    /// List filters that compare a key of a unit's data with the parameter's value:
    /// `(query parameter, data key)`.
    fn filters(&self) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// The stored text that the value of list filter `param` stands for (default: the value
    /// itself). A filter on a related unit takes that unit's href, as pulpcore's do, while the
    /// data keeps its id. `Err`: the 400 message for `param`.
    fn filter_value(&self, param: &str, value: &str) -> Result<String, String> {
        let _ = param;
        Ok(value.to_string())
    }

    /// The REST fields of a unit besides the core's (`pulp_href`, `artifact`...), with their
    /// JSON schemas in [`ContentType::schema`].
    fn fields(&self, content: &Content) -> serde_json::Map<String, serde_json::Value> {
        let _ = content;
        serde_json::Map::new()
    }

    /// JSON schemas of the fields of [`ContentType::fields`], by name.
    fn schema(&self) -> Vec<(&'static str, serde_json::Value)> {
        Vec::new()
    }

    /// Whether a unit has several artifacts: the API shows `artifacts` (relative path ->
    /// artifact href) instead of one `artifact`, as pulpcore does.
    fn multiple_artifacts(&self) -> bool {
        false
    }

    /// The fields of a content create (`POST content/<app>/<kind>/`, e.g. `relative_path`),
    /// besides the core's (`artifact`, `file`, `upload`, `file_url`, `repository`,
    /// `overwrite`). `None` (the default): units of this type cannot be made from an uploaded
    /// file, and the endpoint does not exist.
    fn create_fields(&self) -> Option<Vec<CreateField>> {
        None
    }

    /// Checks the fields of a content create before a task is dispatched: `(field, message)`
    /// for a bad value. The bytes are not known yet.
    fn check_create_fields(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), (String, String)> {
        let _ = fields;
        Ok(())
    }

    /// The unit that the saved `artifact` (its file at `path`, to read when the unit's fields
    /// come from the bytes, as a `.deb`'s control file does) makes with the create `fields`, and
    /// the relative path of its one content artifact. Run by the content create task.
    fn unit_from_artifact(
        &self,
        artifact: &Artifact,
        path: &std::path::Path,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ArtifactUnit, String> {
        let _ = (artifact, path, fields);
        Err(format!(
            "{} content cannot be created from a file",
            self.pulp_type()
        ))
    }
}

/// A plugin: its content types, its remote / repository / publication / distribution types,
/// and its sync's first stage.
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name, the first half of its `pulp_type`s (`file` for `file.file`), and its
    /// component in `status/` `versions[]`.
    fn name(&self) -> &'static str;

    /// The version `status/` reports for the plugin's component (pulp-glue enables features by
    /// it, so a compatible plugin reports the version of the Python plugin whose API it
    /// follows); `None`: the pulpcore version the core follows.
    fn version(&self) -> Option<&'static str> {
        None
    }

    /// The repository type it syncs into (`file.file`, `deb.deb`).
    fn repository_type(&self) -> &'static str;

    /// The remote type (`file.file`, `deb.apt-remote`).
    fn remote_type(&self) -> &'static str {
        self.repository_type()
    }

    /// The distribution type (`file.file`, `deb.apt-distribution`).
    fn distribution_type(&self) -> &'static str {
        self.repository_type()
    }

    /// The first stage of a sync from `env.remote`.
    fn first_stage(&self, env: &SyncEnv) -> Box<dyn Stage>;

    /// The stages after the first. Override to insert custom stages.
    fn stages(&self, env: &SyncEnv, mirror: bool) -> Vec<Box<dyn Stage>> {
        default_stages(&env.stages, mirror)
    }

    /// How this plugin's remotes, repositories, publications and distributions are named in
    /// the REST API (`content_kind`: its first content type's).
    fn api_names(&self) -> ApiNames;

    /// Class names of the plugin's REST models, for schema names (`file.FileRemote`) and PRNs
    /// (`prn:file.fileremote:<id>`).
    fn model_names(&self) -> ModelNames;

    /// Every content type of the plugin; the first is its main one.
    fn content_types(&self) -> Vec<Arc<dyn ContentType>>;

    /// The REST names of content type `ct`'s units.
    fn content_names(&self, ct: &dyn ContentType) -> ApiNames {
        ApiNames {
            content_kind: ct.content_kind(),
            ..self.api_names()
        }
    }

    /// The plugin's own remote fields, stored in the remote's plugin data.
    fn remote_fields(&self) -> Vec<PluginField> {
        Vec::new()
    }

    /// Checks a remote's plugin data (its [`Plugin::remote_fields`], types already checked)
    /// as a whole: `(field, message)` for a value the plugin refuses.
    fn check_remote_fields(&self, data: &serde_json::Value) -> Result<(), (String, String)> {
        let _ = data;
        Ok(())
    }

    /// The plugin's own repository fields, stored in the repository's plugin data.
    fn repository_fields(&self) -> Vec<PluginField> {
        Vec::new()
    }

    /// Options of a sync request besides `remote` and `mirror` (deb: `optimize`), handed to
    /// the first stage as [`SyncEnv::options`].
    fn sync_options(&self) -> Vec<PluginField> {
        Vec::new()
    }

    /// The publication types; none: the plugin's repositories are served as versions.
    fn publication_types(&self) -> Vec<Arc<dyn PublicationType>> {
        Vec::new()
    }

    /// Whether a distribution on a repository (or a version) serves the latest publication
    /// (pulpcore's `SERVE_FROM_PUBLICATION`) rather than the version itself.
    fn serves_publications(&self) -> bool {
        false
    }

    /// The publication (type kind, fields) a `mirror` sync makes of the version it creates, in
    /// the same task (pulp_file publishes every mirrored version, its manifest named as the
    /// remote's); `None`: a mirror sync publishes nothing.
    fn mirror_publication(
        &self,
        remote: &crate::models::Remote,
    ) -> Option<(&'static str, serde_json::Value)> {
        let _ = remote;
        None
    }

    /// The plugin's own REST endpoints, beyond the remotes, repositories, content,
    /// publications and distributions the core makes from this contract (pulp_deb's
    /// `deb/copy/`...): added to the API's one route table, so they are served, authenticated
    /// unless documented public, and described in the OpenAPI document like the core's. A
    /// handler that starts work dispatches one of [`Plugin::register_tasks`]' task functions.
    fn register_routes(&self, api: &mut crate::api::ApiBuilder) {
        let _ = api;
    }

    /// The plugin's own task functions, registered by name beside the core's (a name must not
    /// be one of the core's; prefix it with the plugin's name). Every worker runs them.
    fn register_tasks(&self, registry: &mut crate::tasking::Registry, env: &crate::tasks::TaskEnv) {
        let _ = (registry, env);
    }

    /// Whether a repository with these plugin fields publishes each new version by itself,
    /// and as which publication (type kind, fields); `None`: it does not.
    fn autopublish(
        &self,
        repository_data: &serde_json::Value,
    ) -> Option<(&'static str, serde_json::Value)> {
        let _ = repository_data;
        None
    }
}

impl dyn Plugin {
    /// The content type `pulp_type`, if the plugin has it.
    pub fn content_type(&self, pulp_type: &str) -> Option<Arc<dyn ContentType>> {
        self.content_types()
            .into_iter()
            .find(|c| c.pulp_type() == pulp_type)
    }

    /// The publication type of `kind` (or of `pulp_type`), if the plugin has it.
    pub fn publication_type(&self, kind_or_type: &str) -> Option<Arc<dyn PublicationType>> {
        self.publication_types()
            .into_iter()
            .find(|p| p.kind() == kind_or_type || p.pulp_type() == kind_or_type)
    }

    /// The REST names of the units of `pulp_type` (the main type's when unknown).
    pub fn names_of_content(&self, pulp_type: &str) -> ApiNames {
        match self.content_type(pulp_type) {
            Some(ct) => self.content_names(ct.as_ref()),
            None => self.api_names(),
        }
    }

    /// The REST names of publications of `kind_or_type`.
    pub fn names_of_publication(&self, kind_or_type: &str) -> ApiNames {
        match self.publication_type(kind_or_type) {
            Some(pt) => ApiNames {
                kind: pt.kind(),
                ..self.api_names()
            },
            None => self.api_names(),
        }
    }

    /// Whether the plugin owns `pulp_type` (of any of its objects).
    pub fn owns_type(&self, pulp_type: &str) -> bool {
        pulp_type == self.repository_type()
            || pulp_type == self.remote_type()
            || pulp_type == self.distribution_type()
            || self.content_type(pulp_type).is_some()
            || self.publication_type(pulp_type).is_some()
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

/// A unit made from one artifact by [`ContentType::unit_from_artifact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactUnit {
    pub content: UnsavedContent,
    /// Where the artifact sits in the unit (and in a publication).
    pub relative_path: String,
}

/// Every compiled-in plugin.
pub fn registry() -> Vec<Arc<dyn Plugin>> {
    vec![Arc::new(file::FilePlugin), Arc::new(deb::DebPlugin)]
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

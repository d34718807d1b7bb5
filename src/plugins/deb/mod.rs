//! The Debian plugin (pulp_deb's format): APT repositories synced level by level.
//!
//! - [`deb822`]: the control-data format (stanzas of fields), parsed whole or streamed.
//! - [`release`]: Release / InRelease files (suite, components, architectures, SHA256 list).
//! - [`verify`]: OpenPGP checks of Release files with the remote's `gpgkey`.
//! - [`compression`]: `.xz` / `.gz` indices as a stream of uncompressed bytes.
//! - [`content`]: the seven `deb.*` content types, their data and keys, and
//!   [`content::content_types`] for the REST side.
//! - [`first_stage`]: [`DebFirstStage`], which fetches Release files, then indices, then
//!   declares packages and their component memberships, awaiting units in a bounded window;
//!   configured by [`DebRemoteOptions`].
//! - [`error`]: [`DebError`], the plugin's one error type.
//!
//! - [`publish`]: the verbatim and the APT (structured, signed) publication types.
//!
//! [`DebPlugin`] ties them to the [`Plugin`] contract.

pub mod compression;
pub mod content;
pub mod deb822;
pub mod error;
pub mod first_stage;
pub mod publish;
pub mod release;
pub mod verify;

pub use error::DebError;
pub use first_stage::{DebFirstStage, DebRemoteOptions};

use std::sync::Arc;

use crate::models::Content;
use crate::plugins::{
    ApiNames, ContentType, ModelNames, Plugin, PluginField, PublicationType, SyncEnv,
};
use crate::stages::Stage;

/// The `pulp_type` of Debian repositories (pulp_deb's `deb.deb`).
pub const DEB_TYPE: &str = "deb.deb";
/// The `pulp_type` of Debian remotes.
pub const REMOTE_TYPE: &str = "deb.apt-remote";
/// The `pulp_type` of Debian distributions.
pub const DISTRIBUTION_TYPE: &str = "deb.apt-distribution";

/// The Debian plugin. A sync reads its [`DebRemoteOptions`] from the remote's plugin data and
/// `optimize` (default true, as pulp_deb) from the sync options.
#[derive(Debug, Clone, Copy, Default)]
pub struct DebPlugin;

/// One of the Debian content types, described by its [`content::ContentTypeInfo`].
#[derive(Debug, Clone)]
pub struct DebContentType(pub content::ContentTypeInfo);

impl ContentType for DebContentType {
    fn pulp_type(&self) -> &'static str {
        self.0.pulp_type
    }

    fn content_kind(&self) -> &'static str {
        self.0.kind
    }

    fn model(&self) -> &'static str {
        self.0.model
    }

    fn href_param(&self) -> Option<&'static str> {
        Some(self.0.href_param)
    }

    fn filters(&self) -> Vec<(&'static str, &'static str)> {
        self.0.filters.to_vec()
    }

    /// The unit's data fields as stored (a package's `stanza` too, as `[field, value]` pairs);
    /// a package release component's `package` and `release_component` as hrefs.
    fn fields(&self, content: &Content) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for name in self.0.fields {
            let mut value = content.data.get(*name).cloned().unwrap_or_default();
            if let Some(kind) = self.related_kind(name) {
                let id = value.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok());
                value = id.map_or(serde_json::Value::Null, |id| {
                    serde_json::Value::String(crate::href::content(&related_names(kind), id))
                });
            }
            m.insert((*name).to_string(), value);
        }
        m
    }

    /// `package=<href>` and `release_component=<href>` filter by the related unit's id.
    fn filter_value(&self, param: &str, value: &str) -> Result<String, String> {
        let Some(kind) = self.related_kind(param) else {
            return Ok(value.to_string());
        };
        match crate::href::parse(value) {
            Some(p) if p.collection == ["content", "deb", kind] && p.rest.is_empty() => {
                Ok(p.id.to_string())
            }
            _ => Err("Invalid hyperlink - No URL match.".into()),
        }
    }

    fn schema(&self) -> Vec<(&'static str, serde_json::Value)> {
        self.0
            .fields
            .iter()
            .map(|name| {
                let schema = match *name {
                    "size" => serde_json::json!({"type": "integer", "readOnly": true}),
                    "stanza" => serde_json::json!({"type": "array", "readOnly": true,
                        "items": {"type": "array", "items": {"type": "string"}}}),
                    name if self.related_kind(name).is_some() => {
                        serde_json::json!({"type": "string", "format": "uri"})
                    }
                    _ => serde_json::json!({"type": "string", "nullable": true}),
                };
                (*name, schema)
            })
            .collect()
    }

    fn multiple_artifacts(&self) -> bool {
        self.0.multiple_artifacts
    }
}

impl DebContentType {
    /// The content kind a field of this type refers to by id (a package release component's
    /// `package` and `release_component`), shown and filtered as that unit's href.
    fn related_kind(&self, field: &str) -> Option<&'static str> {
        if self.0.pulp_type != content::PACKAGE_RELEASE_COMPONENT {
            return None;
        }
        match field {
            "package" => Some("packages"),
            "release_component" => Some("release_components"),
            _ => None,
        }
    }
}

/// The REST names of Debian content of `kind`.
fn related_names(kind: &'static str) -> ApiNames {
    ApiNames {
        content_kind: kind,
        ..DebPlugin.api_names()
    }
}

fn field(name: &'static str, schema: serde_json::Value, required: bool) -> PluginField {
    let default = schema
        .get("default")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    PluginField {
        name,
        schema,
        default,
        required,
    }
}

impl Plugin for DebPlugin {
    fn name(&self) -> &'static str {
        "deb"
    }

    fn repository_type(&self) -> &'static str {
        DEB_TYPE
    }

    fn remote_type(&self) -> &'static str {
        REMOTE_TYPE
    }

    fn distribution_type(&self) -> &'static str {
        DISTRIBUTION_TYPE
    }

    fn first_stage(&self, env: &SyncEnv) -> Box<dyn Stage> {
        let optimize = env
            .options
            .get("optimize")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        Box::new(DebFirstStage::from_json(
            env.clone(),
            &env.remote.remote.plugin_data,
            optimize,
        ))
    }

    fn api_names(&self) -> ApiNames {
        ApiNames {
            app_label: "deb",
            kind: "apt",
            content_kind: "packages",
        }
    }

    fn model_names(&self) -> ModelNames {
        ModelNames {
            remote: "AptRemote",
            repository: "AptRepository",
            distribution: "AptDistribution",
        }
    }

    /// Packages first (the main type), then the metadata and structure types.
    fn content_types(&self) -> Vec<Arc<dyn ContentType>> {
        let mut types = content::content_types();
        types.sort_by_key(|t| t.pulp_type != content::PACKAGE);
        types
            .into_iter()
            .map(|t| Arc::new(DebContentType(t)) as Arc<dyn ContentType>)
            .collect()
    }

    fn remote_fields(&self) -> Vec<PluginField> {
        let text = |description: &str| serde_json::json!({"type": "string", "nullable": true, "description": description});
        let flag = |description: &str| serde_json::json!({"type": "boolean", "default": false, "description": description});
        vec![
            field(
                "distributions",
                serde_json::json!({"type": "string",
                    "description": "Whitespace separated list of distributions to sync; a trailing '/' marks a flat repository."}),
                true,
            ),
            field(
                "components",
                text("Whitespace separated list of components to sync (all listed when empty)."),
                false,
            ),
            field(
                "architectures",
                text("Whitespace separated list of architectures to sync (all listed when empty)."),
                false,
            ),
            field(
                "gpgkey",
                text("ASCII-armored public key(s) the Release files must be signed with."),
                false,
            ),
            field(
                "ignore_missing_package_indices",
                flag("Skip package indices listed in a Release file but missing upstream."),
                false,
            ),
            field(
                "sync_sources",
                flag("Sync source packages (not implemented)."),
                false,
            ),
            field(
                "sync_udebs",
                flag("Sync installer packages (not implemented)."),
                false,
            ),
            field(
                "sync_installer",
                flag("Sync installer files (not implemented)."),
                false,
            ),
        ]
    }

    /// pulp_deb's version whose REST API this plugin follows (pulp-glue-deb enables
    /// `--optimize`, checkpoints... by it).
    fn version(&self) -> Option<&'static str> {
        Some("3.7.0")
    }

    fn repository_fields(&self) -> Vec<PluginField> {
        let href = |description: &str| serde_json::json!({"type": "string", "format": "uri", "nullable": true, "description": description});
        let overrides = serde_json::json!({"type": "object", "default": {},
            "additionalProperties": {"type": "string"}});
        vec![
            field(
                "autopublish",
                serde_json::json!({"type": "boolean", "default": false,
                    "description": "Whether to automatically create publications for new repository versions, and update any distributions pointing to this repository."}),
                false,
            ),
            field(
                "publish_upstream_release_fields",
                serde_json::json!({"type": "boolean", "default": true,
                    "description": "Publish the upstream Release fields (Origin, Label...) of synced releases."}),
                false,
            ),
            field(
                "signing_service",
                href("The signing service of this repository's APT publications."),
                false,
            ),
            field(
                "signing_service_release_overrides",
                overrides.clone(),
                false,
            ),
            field(
                "package_signing_service",
                href("Package signing (not implemented)."),
                false,
            ),
            field(
                "package_signing_fingerprint",
                serde_json::json!({"type": "string", "nullable": true}),
                false,
            ),
            field(
                "package_signing_fingerprint_release_overrides",
                overrides,
                false,
            ),
        ]
    }

    fn publication_types(&self) -> Vec<Arc<dyn PublicationType>> {
        vec![
            Arc::new(publish::AptPublicationType),
            Arc::new(publish::VerbatimPublicationType),
        ]
    }

    fn serves_publications(&self) -> bool {
        true
    }

    /// An autopublished repository gets a structured APT publication, signed by the
    /// repository's signing service when it names one.
    fn autopublish(
        &self,
        repository_data: &serde_json::Value,
    ) -> Option<(&'static str, serde_json::Value)> {
        if repository_data.get("autopublish") != Some(&serde_json::Value::Bool(true)) {
            return None;
        }
        let signing = repository_data
            .get("signing_service")
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        Some((
            "apt",
            serde_json::json!({"simple": false, "structured": true,
                "publish_upstream_release_fields": true, "signing_service": signing}),
        ))
    }

    /// A remote names at least one distribution; the source, udeb and installer syncs that are
    /// not implemented are refused when asked for, not ignored.
    fn check_remote_fields(&self, data: &serde_json::Value) -> Result<(), (String, String)> {
        // A missing one is already "This field is required.".
        let blank = data
            .get("distributions")
            .and_then(|v| v.as_str())
            .is_some_and(|d| d.trim().is_empty());
        if blank {
            return Err((
                "distributions".into(),
                "This field may not be blank.".into(),
            ));
        }
        for (flag, what) in [
            ("sync_sources", "source packages"),
            ("sync_udebs", "installer packages (udebs)"),
            ("sync_installer", "installer files"),
        ] {
            if data.get(flag) == Some(&serde_json::Value::Bool(true)) {
                return Err((
                    flag.into(),
                    format!("Syncing {what} is not implemented by pulp-rs; set {flag} to false."),
                ));
            }
        }
        Ok(())
    }

    fn sync_options(&self) -> Vec<PluginField> {
        vec![field(
            "optimize",
            serde_json::json!({"type": "boolean", "default": true,
                "description": "Skip the indices when the Release files and the selection are unchanged since the latest version."}),
            false,
        )]
    }
}

//! The file plugin (pulp_file's format): a repository is a `PULP_MANIFEST` listing files.
//!
//! The first stage fetches the manifest once from the remote's URL, then streams it line by line
//! (memory stays flat whatever its length), emitting one `file.file` unit per line with one
//! artifact at the line's relative path, fetched from the manifest's directory. Natural key:
//! relative path + sha256; repo key: relative path (a new digest at a path replaces the old unit
//! in the new version).

pub mod manifest;
pub mod publish;

use async_trait::async_trait;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::io::AsyncBufReadExt;

use crate::declarative::{ArtifactState, DeclarativeArtifact, DeclarativeContent};
use crate::models::{Content, Expected, Policy, UnsavedContent};
use std::sync::Arc;

use crate::plugins::{
    ApiNames, ArtifactUnit, ContentType, CreateField, ModelNames, Plugin, PluginField,
    PublicationType, PublishError, Publisher, SyncEnv,
};
use crate::stages::{Stage, StageError, StageIo};
pub use manifest::{check_relative_path, parse_line, ManifestEntry, ManifestError};

/// The `pulp_type` of a file unit, repository and remote.
pub const FILE_TYPE: &str = "file.file";

/// Units read per page when publishing.
const PUBLISH_PAGE: u64 = 1000;

/// The file plugin.
pub struct FilePlugin;

/// The file plugin's one content type, `file.file`.
pub struct FileContentType;

/// The file plugin's one publication type: the files of a version plus a manifest.
pub struct FilePublicationType;

impl Plugin for FilePlugin {
    fn name(&self) -> &'static str {
        "file"
    }

    fn repository_type(&self) -> &'static str {
        FILE_TYPE
    }

    fn first_stage(&self, env: &SyncEnv) -> Box<dyn Stage> {
        Box::new(FileFirstStage { env: env.clone() })
    }

    fn api_names(&self) -> ApiNames {
        ApiNames {
            app_label: "file",
            kind: "file",
            content_kind: "files",
        }
    }

    fn model_names(&self) -> ModelNames {
        ModelNames {
            remote: "FileRemote",
            repository: "FileRepository",
            distribution: "FileDistribution",
        }
    }

    fn content_types(&self) -> Vec<Arc<dyn ContentType>> {
        vec![Arc::new(FileContentType)]
    }

    fn repository_fields(&self) -> Vec<PluginField> {
        vec![
            PluginField {
                name: "manifest",
                schema: serde_json::json!({"type": "string", "nullable": true,
                    "description": "Filename to use for manifest file containing metadata for all the files.",
                    "default": "PULP_MANIFEST"}),
                default: serde_json::json!("PULP_MANIFEST"),
                required: false,
            },
            PluginField {
                name: "autopublish",
                schema: serde_json::json!({"type": "boolean", "default": false,
                    "description": "Whether to automatically create publications for new repository versions, and update any distributions pointing to this repository."}),
                default: serde_json::json!(false),
                required: false,
            },
        ]
    }

    fn publication_types(&self) -> Vec<Arc<dyn PublicationType>> {
        vec![Arc::new(FilePublicationType)]
    }

    fn serves_publications(&self) -> bool {
        true
    }

    fn mirror_publication(
        &self,
        remote: &crate::models::Remote,
    ) -> Option<(&'static str, serde_json::Value)> {
        Some((
            "file",
            serde_json::json!({ "manifest": publish::mirror_manifest_name(&remote.url) }),
        ))
    }

    fn autopublish(
        &self,
        repository_data: &serde_json::Value,
    ) -> Option<(&'static str, serde_json::Value)> {
        if repository_data.get("autopublish") != Some(&serde_json::Value::Bool(true)) {
            return None;
        }
        let manifest = repository_data
            .get("manifest")
            .cloned()
            .unwrap_or_else(|| serde_json::json!(publish::DEFAULT_MANIFEST));
        Some(("file", serde_json::json!({ "manifest": manifest })))
    }
}

#[async_trait]
impl PublicationType for FilePublicationType {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn model(&self) -> &'static str {
        "FilePublication"
    }

    fn pulp_type(&self) -> &'static str {
        FILE_TYPE
    }

    fn options(
        &self,
        body: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Value, (String, String)> {
        publish::options(body)
    }

    fn schema(&self) -> serde_json::Value {
        publish::schema()
    }

    fn pass_through(&self) -> bool {
        true
    }

    async fn publish(
        &self,
        publisher: &mut dyn Publisher,
        plugin_data: &serde_json::Value,
    ) -> Result<(), PublishError> {
        use std::io::Write;
        let Some(name) = publish::manifest_name(plugin_data) else {
            return Ok(());
        };
        // Page by page into a temp file: memory flat in the version's size.
        let mut out = std::io::BufWriter::new(publisher.temp_file()?);
        let mut after = None;
        loop {
            let page = publisher.units(FILE_TYPE, after, PUBLISH_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.content.id);
            for file in page.iter().flat_map(|u| &u.files) {
                let line = publish::manifest_line(name, file).map_err(PublishError::Plugin)?;
                out.write_all(line.as_bytes())?;
            }
        }
        let tmp = out
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        publisher
            .add_metadata_file(name, tmp.into_temp_path())
            .await?;
        Ok(())
    }
}

impl ContentType for FileContentType {
    fn pulp_type(&self) -> &'static str {
        FILE_TYPE
    }

    fn content_kind(&self) -> &'static str {
        "files"
    }

    fn model(&self) -> &'static str {
        "FileContent"
    }

    fn filters(&self) -> Vec<(&'static str, &'static str)> {
        vec![
            ("relative_path", "relative_path"),
            ("sha256", "digest"),
            ("digest", "digest"),
        ]
    }

    fn fields(&self, content: &Content) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert(
            "relative_path".into(),
            content
                .data
                .get("relative_path")
                .cloned()
                .unwrap_or_default(),
        );
        m.insert(
            "sha256".into(),
            content.data.get("digest").cloned().unwrap_or_default(),
        );
        m
    }

    fn schema(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            (
                "relative_path",
                serde_json::json!({"type": "string",
                    "description": "Path where the artifact is located relative to distributions base_path"}),
            ),
            (
                "sha256",
                serde_json::json!({"type": "string", "readOnly": true,
                    "description": "The SHA-256 checksum if available."}),
            ),
        ]
    }

    fn create_fields(&self) -> Option<Vec<CreateField>> {
        Some(vec![CreateField {
            name: "relative_path",
            schema: serde_json::json!({"type": "string", "minLength": 1,
                "description": "Path where the artifact is located relative to distributions base_path"}),
            required: true,
        }])
    }

    fn check_create_fields(
        &self,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), (String, String)> {
        relative_path_of(fields).map(|_| ())
    }

    fn unit_from_artifact(
        &self,
        artifact: &crate::models::Artifact,
        _path: &std::path::Path,
        fields: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ArtifactUnit, String> {
        let relative_path = relative_path_of(fields).map_err(|(_, m)| m)?;
        let natural_key = serde_json::to_string(&(&relative_path, &artifact.sha256))
            .map_err(|e| e.to_string())?;
        Ok(ArtifactUnit {
            content: UnsavedContent {
                pulp_type: FILE_TYPE.to_string(),
                natural_key,
                repo_key: relative_path.clone(),
                data: serde_json::json!({
                    "relative_path": relative_path,
                    "digest": artifact.sha256,
                }),
            },
            relative_path,
        })
    }
}

/// The `relative_path` of a content create: a string the manifest rules accept.
fn relative_path_of(
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, (String, String)> {
    let bad = |m: &str| ("relative_path".to_string(), m.to_string());
    match fields.get("relative_path") {
        None | Some(serde_json::Value::Null) => Err(bad("This field is required.")),
        Some(serde_json::Value::String(p)) if p.is_empty() => {
            Err(bad("This field may not be blank."))
        }
        Some(serde_json::Value::String(p)) => {
            check_relative_path(p).map_err(|e| bad(&e))?;
            Ok(p.clone())
        }
        Some(_) => Err(bad("Not a valid string.")),
    }
}

/// Characters kept as they are in a URL path segment; everything else is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URL of `relative_path` next to the manifest at `manifest_url`.
pub fn artifact_url(manifest_url: &str, relative_path: &str) -> Result<String, String> {
    let mut base = url::Url::parse(manifest_url).map_err(|e| format!("bad manifest URL: {e}"))?;
    base.set_query(None);
    base.set_fragment(None);
    let dir = base
        .join("./")
        .map_err(|e| format!("bad manifest URL: {e}"))?;
    let encoded: Vec<String> = relative_path
        .split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect();
    let full = dir
        .join(&encoded.join("/"))
        .map_err(|e| format!("cannot join {relative_path:?} onto {dir}: {e}"))?;
    if !full.as_str().starts_with(dir.as_str()) {
        return Err(format!("{relative_path:?} escapes {dir}"));
    }
    Ok(full.into())
}

/// The unit and artifact for one manifest entry.
pub fn unit_for(env: &SyncEnv, entry: ManifestEntry) -> Result<DeclarativeContent, String> {
    let remote = &env.remote.remote;
    let url = artifact_url(&remote.url, &entry.relative_path)?;
    let natural_key =
        serde_json::to_string(&(&entry.relative_path, &entry.sha256)).map_err(|e| e.to_string())?;
    let content = UnsavedContent {
        pulp_type: FILE_TYPE.to_string(),
        natural_key,
        repo_key: entry.relative_path.clone(),
        data: serde_json::json!({
            "relative_path": entry.relative_path,
            "digest": entry.sha256,
        }),
    };
    let artifact = DeclarativeArtifact {
        artifact: ArtifactState::Unsaved(Expected {
            size: Some(entry.size),
            sha256: Some(entry.sha256),
            other: Default::default(),
        }),
        url,
        relative_path: entry.relative_path,
        remote: env.remote.clone(),
        deferred_download: remote.policy != Policy::Immediate,
    };
    Ok(DeclarativeContent::new(content, vec![artifact]))
}

/// Fetches the manifest and emits its units.
pub struct FileFirstStage {
    env: SyncEnv,
}

impl FileFirstStage {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "FileFirstStage";
}

#[async_trait]
impl Stage for FileFirstStage {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        let remote = &self.env.remote;
        let manifest = remote
            .downloader
            .download_metadata(&remote.remote.url)
            .await?;
        io.ctx.metrics.add_bytes(manifest.size);
        let file = tokio::fs::File::open(&manifest.temp)
            .await
            .map_err(|e| StageError::Plugin(format!("cannot read the downloaded manifest: {e}")))?;
        let mut lines = tokio::io::BufReader::with_capacity(256 * 1024, file).lines();
        let mut line_no = 0usize;
        loop {
            let line = lines.next_line().await.map_err(|e| {
                StageError::Plugin(format!(
                    "malformed manifest {}, line {}: {e}",
                    remote.remote.url,
                    line_no + 1
                ))
            })?;
            let Some(line) = line else { break };
            line_no += 1;
            let entry = parse_line(line_no, &line)
                .map_err(|e| StageError::Plugin(format!("{} ({})", e, remote.remote.url)))?;
            if let Some(entry) = entry {
                let dc = unit_for(&self.env, entry).map_err(StageError::Plugin)?;
                io.output.put(dc).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_urls_sit_next_to_the_manifest() {
        let m = "http://h:1/repo/sub/PULP_MANIFEST?x=1";
        assert_eq!(
            artifact_url(m, "a/b c,d.txt").unwrap(),
            "http://h:1/repo/sub/a/b%20c%2Cd.txt"
        );
        assert_eq!(
            artifact_url("file:///srv/r/PULP_MANIFEST", "x:y/z").unwrap(),
            "file:///srv/r/x%3Ay/z"
        );
    }
}

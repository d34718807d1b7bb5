//! The sync pipeline: stages joined by bounded links.
//!
//! - [`api`]: the [`Stage`] trait, the [`Input`] / [`Output`] link ends with their batching and
//!   backpressure, and [`StageError`].
//! - [`pipeline`]: [`create_pipeline`], the only place that builds links; it runs every stage
//!   as its own task, cancels the rest on the first failure, and reports which stage failed.
//! - [`metrics`]: what every stage and link did (items, bytes, busy / starved / blocked time),
//!   recorded by the link ends so no stage measures itself.
//! - [`artifact_stages`] and [`content_stages`]: the default stages, in pipeline order:
//!   QueryExistingContents, QueryExistingArtifacts, ArtifactDownloader, ArtifactSaver,
//!   ContentSaver, RemoteArtifactSaver, ResolveContentFutures, ContentAssociation, and
//!   ContentUnassociation when mirroring. [`default_stages`] builds that list; a plugin can
//!   build its own list with custom stages in between and hand it to [`create_pipeline`].
//!
//! A stage type's identity is its `NAME` constant (`ArtifactDownloader::NAME`): `Stage::name`
//! returns it, and whoever looks a stage up in a report (task progress, the CLI) uses the same
//! constant, never a copy of the string. Finished pipelines push their totals into
//! [`crate::telemetry`] ([`PipelineReport::record`]); telemetry knows nothing of stages.

pub mod api;
pub mod artifact_stages;
pub mod content_stages;
pub mod metrics;
pub mod pipeline;

use uuid::Uuid;

pub use api::{Input, Output, Stage, StageCtx, StageError, StageIo};
pub use metrics::{PipelineMetrics, PipelineReport, Sample, StageReport, Timeline};
pub use pipeline::{create_pipeline, Pipeline, PipelineConfig, PipelineError};

use crate::db::DynStore;
use crate::storage::ArtifactStorage;

/// What the default stages need.
#[derive(Clone)]
pub struct StageEnv {
    pub store: DynStore,
    pub storage: ArtifactStorage,
    /// The incomplete version the sync builds.
    pub version_id: Uuid,
    /// Content units downloaded concurrently by ArtifactDownloader (pulpcore: 200).
    pub max_concurrent_content: usize,
}

/// The default stages after a first stage, in order; ContentUnassociation only with `mirror`.
pub fn default_stages(env: &StageEnv, mirror: bool) -> Vec<Box<dyn Stage>> {
    let mut stages: Vec<Box<dyn Stage>> = vec![
        Box::new(content_stages::QueryExistingContents::new(
            env.store.clone(),
        )),
        Box::new(artifact_stages::QueryExistingArtifacts::new(
            env.store.clone(),
        )),
        Box::new(artifact_stages::ArtifactDownloader::new(
            env.max_concurrent_content,
        )),
        Box::new(artifact_stages::ArtifactSaver::new(
            env.store.clone(),
            env.storage.clone(),
        )),
        Box::new(content_stages::ContentSaver::new(env.store.clone())),
        Box::new(content_stages::RemoteArtifactSaver::new(env.store.clone())),
        Box::new(content_stages::ResolveContentFutures::new(
            env.store.clone(),
        )),
        Box::new(content_stages::ContentAssociation::new(
            env.store.clone(),
            env.version_id,
        )),
    ];
    if mirror {
        stages.push(Box::new(content_stages::ContentUnassociation::new(
            env.store.clone(),
            env.version_id,
        )));
    }
    stages
}

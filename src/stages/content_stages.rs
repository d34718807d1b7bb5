//! The content half of the default pipeline: find units we already have, save new ones with
//! their content artifacts, record where each artifact can be fetched, resolve the futures of
//! awaited units, and add the units to (or, mirroring, remove others from) the new version.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use chrono::Utc;
use uuid::Uuid;

use super::api::{Stage, StageError, StageIo};
use crate::db::DynStore;
use crate::declarative::{ContentState, DeclarativeContent, ResolveError, ResolvedContent};
use crate::models::{Content, ContentToSave, NewRemoteArtifact};

/// Swaps unsaved units whose natural key is already stored for the saved unit. One query per
/// content type per batch.
pub struct QueryExistingContents {
    store: DynStore,
}

impl QueryExistingContents {
    pub fn new(store: DynStore) -> Self {
        QueryExistingContents { store }
    }
}

impl QueryExistingContents {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "QueryExistingContents";
}

#[async_trait]
impl Stage for QueryExistingContents {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        while let Some(mut batch) = io.input.batch(io.ctx.batch_size).await? {
            let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for dc in &batch {
                if let ContentState::Unsaved(c) = &dc.content {
                    by_type
                        .entry(c.pulp_type.clone())
                        .or_default()
                        .push(c.natural_key.clone());
                }
            }
            for (pulp_type, keys) in by_type {
                let found = self.store.find_content(&pulp_type, &keys).await?;
                if found.is_empty() {
                    continue;
                }
                let mut by_key: HashMap<String, Content> = found
                    .into_iter()
                    .map(|c| (c.natural_key.clone(), c))
                    .collect();
                for dc in &mut batch {
                    let hit = match &dc.content {
                        ContentState::Unsaved(c) if c.pulp_type == pulp_type => {
                            by_key.get(&c.natural_key).cloned()
                        }
                        _ => None,
                    };
                    if let Some(saved) = hit {
                        dc.content = ContentState::Saved(saved);
                    }
                }
                by_key.clear();
            }
            io.output.put_all(batch).await?;
        }
        Ok(())
    }
}

/// Saves a batch of units in one transaction: new units with their content artifacts; for units
/// that exist, content artifacts gain the artifact downloaded now (null before, e.g. synced
/// on_demand earlier). A concurrent insert of the same unit is tolerated by the store.
pub struct ContentSaver {
    store: DynStore,
}

impl ContentSaver {
    pub fn new(store: DynStore) -> Self {
        ContentSaver { store }
    }
}

impl ContentSaver {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "ContentSaver";
}

#[async_trait]
impl Stage for ContentSaver {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        while let Some(mut batch) = io.input.batch(io.ctx.batch_size).await? {
            let mut to_save = Vec::with_capacity(batch.len());
            for dc in &mut batch {
                let (existing_id, content) = match &mut dc.content {
                    // Moved, not copied (a unit's data may be kilobytes): the saved unit below
                    // takes it back from `to_save`.
                    ContentState::Unsaved(c) => (
                        None,
                        std::mem::replace(
                            c,
                            crate::models::UnsavedContent {
                                pulp_type: String::new(),
                                natural_key: String::new(),
                                repo_key: String::new(),
                                data: serde_json::Value::Null,
                            },
                        ),
                    ),
                    ContentState::Saved(c) => (
                        Some(c.id),
                        crate::models::UnsavedContent {
                            pulp_type: c.pulp_type.clone(),
                            natural_key: c.natural_key.clone(),
                            repo_key: c.repo_key.clone(),
                            data: serde_json::Value::Null,
                        },
                    ),
                };
                let artifacts = dc
                    .d_artifacts
                    .iter()
                    .map(|da| (da.relative_path.clone(), da.saved().map(|a| a.id)))
                    .collect();
                to_save.push(ContentToSave {
                    existing_id,
                    content,
                    artifacts,
                });
            }
            let ids = self.store.save_content(&to_save).await?;
            if ids.len() != batch.len() {
                return Err(StageError::Plugin(format!(
                    "the store saved {} units of a batch of {}",
                    ids.len(),
                    batch.len()
                )));
            }
            let now = Utc::now();
            for (dc, (id, saved)) in batch.iter_mut().zip(ids.into_iter().zip(to_save)) {
                if let ContentState::Unsaved(_) = dc.content {
                    let c = saved.content;
                    dc.content = ContentState::Saved(Content {
                        id,
                        pulp_type: c.pulp_type,
                        natural_key: c.natural_key,
                        repo_key: c.repo_key,
                        data: c.data,
                        pulp_created: now,
                    });
                }
            }
            io.output.put_all(batch).await?;
        }
        Ok(())
    }
}

/// Records, for every declared artifact (immediate ones too), where it can be fetched again:
/// one remote artifact per (content artifact, remote), its URL updated when it moved.
pub struct RemoteArtifactSaver {
    store: DynStore,
}

impl RemoteArtifactSaver {
    pub fn new(store: DynStore) -> Self {
        RemoteArtifactSaver { store }
    }
}

impl RemoteArtifactSaver {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "RemoteArtifactSaver";
}

#[async_trait]
impl Stage for RemoteArtifactSaver {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        while let Some(batch) = io.input.batch(io.ctx.batch_size).await? {
            let mut rows = Vec::new();
            for dc in &batch {
                let content_id = saved_id(dc)?;
                for da in &dc.d_artifacts {
                    let exp = da.expected();
                    rows.push(NewRemoteArtifact {
                        content_id,
                        relative_path: da.relative_path.clone(),
                        remote_id: da.remote.remote.id,
                        url: da.url.clone(),
                        size: exp.size,
                        sha256: exp.sha256,
                        other: exp.other,
                    });
                }
            }
            if !rows.is_empty() {
                self.store.save_remote_artifacts(&rows).await?;
            }
            io.output.put_all(batch).await?;
        }
        Ok(())
    }
}

fn saved_id(dc: &DeclarativeContent) -> Result<Uuid, StageError> {
    dc.content.id().ok_or_else(|| {
        StageError::Plugin(format!(
            "content {} {} reached a stage after ContentSaver unsaved",
            dc.content.pulp_type(),
            dc.content.natural_key()
        ))
    })
}

/// Resolves the future of every awaited unit with the saved unit and its artifacts.
pub struct ResolveContentFutures {
    store: DynStore,
}

impl ResolveContentFutures {
    pub fn new(store: DynStore) -> Self {
        ResolveContentFutures { store }
    }
}

impl ResolveContentFutures {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "ResolveContentFutures";
}

#[async_trait]
impl Stage for ResolveContentFutures {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    /// One query for the artifacts of every awaited unit of a batch (a first stage may put a
    /// future on every unit), then each future resolved in order.
    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        let max = io.ctx.batch_size;
        while let Some(batch) = io.input.batch(max).await? {
            let ids: Vec<Uuid> = batch
                .iter()
                .filter(|dc| dc.has_future())
                .filter_map(|dc| match &dc.content {
                    ContentState::Saved(c) => Some(c.id),
                    ContentState::Unsaved(_) => None,
                })
                .collect();
            let mut found: HashMap<Uuid, Vec<_>> = HashMap::new();
            let lookup = if ids.is_empty() {
                Ok(())
            } else {
                self.store.content_artifacts(&ids).await.map(|rows| {
                    for (ca, a) in rows {
                        found.entry(ca.content_id).or_default().push((ca, a));
                    }
                })
            };
            for mut dc in batch {
                if dc.has_future() {
                    let resolution = match (&dc.content, &lookup) {
                        (ContentState::Saved(c), Ok(())) => Ok(ResolvedContent {
                            content: c.clone(),
                            artifacts: found.remove(&c.id).unwrap_or_default(),
                        }),
                        (ContentState::Saved(_), Err(e)) => {
                            Err(ResolveError::Failed(e.to_string()))
                        }
                        (ContentState::Unsaved(_), _) => {
                            Err(ResolveError::Failed("the unit was not saved".into()))
                        }
                    };
                    dc.resolve(resolution);
                }
                io.output.put(dc).await?;
            }
        }
        Ok(())
    }
}

/// Adds every declared unit to the new version (units already present stay as they are), one
/// batch at a time. Forwards every unit, so ContentUnassociation can see what was declared.
pub struct ContentAssociation {
    store: DynStore,
    version_id: Uuid,
}

impl ContentAssociation {
    pub fn new(store: DynStore, version_id: Uuid) -> Self {
        ContentAssociation { store, version_id }
    }
}

impl ContentAssociation {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "ContentAssociation";
}

#[async_trait]
impl Stage for ContentAssociation {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        while let Some(batch) = io.input.batch(io.ctx.batch_size).await? {
            let mut ids = Vec::with_capacity(batch.len());
            for dc in &batch {
                ids.push(saved_id(dc)?);
            }
            self.store.associate(self.version_id, &ids).await?;
            io.output.put_all(batch).await?;
        }
        Ok(())
    }
}

/// Mirror mode: once the stream ends, removes from the new version every unit that was present
/// and not declared by this sync. Holds the ids of the declared units (16 bytes each).
pub struct ContentUnassociation {
    store: DynStore,
    version_id: Uuid,
}

impl ContentUnassociation {
    pub fn new(store: DynStore, version_id: Uuid) -> Self {
        ContentUnassociation { store, version_id }
    }
}

impl ContentUnassociation {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "ContentUnassociation";
}

#[async_trait]
impl Stage for ContentUnassociation {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        let mut keep: HashSet<Uuid> = HashSet::new();
        while let Some(batch) = io.input.batch(io.ctx.batch_size).await? {
            for dc in &batch {
                keep.insert(saved_id(dc)?);
            }
            io.output.put_all(batch).await?;
        }
        if io.ctx.cancel.is_cancelled() {
            return Err(StageError::Cancelled);
        }
        self.store
            .unassociate_except(self.version_id, &keep)
            .await?;
        Ok(())
    }
}

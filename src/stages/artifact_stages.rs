//! The artifact half of the default pipeline: find artifacts we already have, download the
//! rest, and move downloads into storage with their rows.

use std::collections::HashMap;

use async_trait::async_trait;
use tokio::task::JoinSet;

use super::api::{Stage, StageError, StageIo};
use crate::db::DynStore;
use crate::declarative::{ArtifactState, DeclarativeContent};
use crate::models::NewArtifact;
use crate::storage::ArtifactStorage;

/// Swaps every unsaved artifact whose sha256 we already store for the saved one, so it is
/// neither downloaded nor written again (deferred ones too: a unit synced on_demand is served
/// from the local file when another sync already fetched it). One query per batch.
pub struct QueryExistingArtifacts {
    store: DynStore,
}

impl QueryExistingArtifacts {
    pub fn new(store: DynStore) -> Self {
        QueryExistingArtifacts { store }
    }
}

impl QueryExistingArtifacts {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "QueryExistingArtifacts";
}

#[async_trait]
impl Stage for QueryExistingArtifacts {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        while let Some(mut batch) = io.input.batch(io.ctx.batch_size).await? {
            let mut wanted: Vec<String> = Vec::new();
            for dc in &batch {
                for da in &dc.d_artifacts {
                    if let ArtifactState::Unsaved(exp) = &da.artifact {
                        if let Some(sha) = &exp.sha256 {
                            wanted.push(sha.clone());
                        }
                    }
                }
            }
            if !wanted.is_empty() {
                wanted.sort_unstable();
                wanted.dedup();
                let found = self.store.find_artifacts_by_sha256(&wanted).await?;
                if !found.is_empty() {
                    let by_sha: HashMap<&str, _> =
                        found.iter().map(|a| (a.sha256.as_str(), a)).collect();
                    for dc in &mut batch {
                        for da in &mut dc.d_artifacts {
                            let hit = match &da.artifact {
                                ArtifactState::Unsaved(exp) => exp
                                    .sha256
                                    .as_deref()
                                    .and_then(|s| by_sha.get(s))
                                    .map(|a| (*a).clone()),
                                _ => None,
                            };
                            if let Some(a) = hit {
                                da.artifact = ArtifactState::Saved(a);
                            }
                        }
                    }
                }
            }
            io.output.put_all(batch).await?;
        }
        Ok(())
    }
}

/// Downloads the artifacts that are neither saved nor deferred. Up to `max_concurrent_content`
/// units are in flight, each in its own task (the network concurrency is bounded separately,
/// per remote, by its downloader factory). Units leave in completion order.
pub struct ArtifactDownloader {
    max_concurrent_content: usize,
}

impl ArtifactDownloader {
    pub fn new(max_concurrent_content: usize) -> Self {
        ArtifactDownloader {
            max_concurrent_content: max_concurrent_content.max(1),
        }
    }
}

async fn download_unit(mut dc: DeclarativeContent) -> Result<DeclarativeContent, StageError> {
    let mut jobs = Vec::new();
    for (i, da) in dc.d_artifacts.iter().enumerate() {
        if da.needs_download() {
            let factory = da.remote.downloader.clone();
            let url = da.url.clone();
            let expected = da.expected();
            jobs.push(async move { (i, factory.download(&url, &expected).await) });
        }
    }
    for (i, result) in futures::future::join_all(jobs).await {
        dc.d_artifacts[i].artifact = ArtifactState::Downloaded(result?);
    }
    Ok(dc)
}

impl ArtifactDownloader {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "ArtifactDownloader";
}

#[async_trait]
impl Stage for ArtifactDownloader {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        // Downloads run in their own tasks so that none is left unpolled while we wait on the
        // output link; the JoinSet aborts them (and their temp files go) if we return early.
        let mut tasks: JoinSet<Result<DeclarativeContent, StageError>> = JoinSet::new();
        let mut input_done = false;
        loop {
            if tasks.is_empty() {
                if input_done {
                    break;
                }
                // Nothing in flight: waiting here is starvation, and the link end records it.
                match io.input.next().await? {
                    Some(dc) => self.admit(dc, &mut tasks, &mut io).await?,
                    None => input_done = true,
                }
                continue;
            }
            let can_take = !input_done && tasks.len() < self.max_concurrent_content;
            tokio::select! {
                biased;
                // Dropping the JoinSet aborts the downloads in flight.
                _ = io.ctx.cancel.cancelled() => return Err(StageError::Cancelled),
                joined = tasks.join_next() => {
                    let dc = joined
                        .expect("set is not empty")
                        .map_err(|e| StageError::Panicked(e.to_string()))??;
                    io.ctx.metrics.add_bytes(dc.downloaded_bytes());
                    io.ctx.metrics.add_artifacts(dc.downloaded_count());
                    io.output.put(dc).await?;
                }
                next = io.input.next_while_busy(), if can_take => match next? {
                    Some(dc) => self.admit(dc, &mut tasks, &mut io).await?,
                    None => input_done = true,
                },
            }
        }
        Ok(())
    }
}

impl ArtifactDownloader {
    async fn admit(
        &self,
        dc: DeclarativeContent,
        tasks: &mut JoinSet<Result<DeclarativeContent, StageError>>,
        io: &mut StageIo,
    ) -> Result<(), StageError> {
        if dc.d_artifacts.iter().any(|da| da.needs_download()) {
            tasks.spawn(download_unit(dc));
            Ok(())
        } else {
            io.output.put(dc).await
        }
    }
}

/// Moves a batch of downloads into content-addressed storage, makes them durable with one
/// `syncfs`, then inserts their rows (sorted by sha256; a row inserted meanwhile by another sync
/// is reused). A row is therefore never committed before its file is on disk.
pub struct ArtifactSaver {
    store: DynStore,
    storage: ArtifactStorage,
}

impl ArtifactSaver {
    pub fn new(store: DynStore, storage: ArtifactStorage) -> Self {
        ArtifactSaver { store, storage }
    }
}

impl ArtifactSaver {
    /// The stage's identity: its name in reports, metrics and progress.
    pub const NAME: &'static str = "ArtifactSaver";
}

#[async_trait]
impl Stage for ArtifactSaver {
    fn name(&self) -> String {
        Self::NAME.into()
    }

    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        while let Some(mut batch) = io.input.batch(io.ctx.batch_size).await? {
            // Take the downloads out of the batch, remembering where each came from.
            let mut files = Vec::new();
            let mut slots = Vec::new();
            let mut new_rows = Vec::new();
            for (i, dc) in batch.iter_mut().enumerate() {
                for (j, da) in dc.d_artifacts.iter_mut().enumerate() {
                    if !matches!(da.artifact, ArtifactState::Downloaded(_)) {
                        continue;
                    }
                    let placeholder = ArtifactState::Unsaved(da.expected());
                    let ArtifactState::Downloaded(d) =
                        std::mem::replace(&mut da.artifact, placeholder)
                    else {
                        unreachable!("checked above")
                    };
                    new_rows.push(NewArtifact {
                        sha256: d.sha256.clone(),
                        size: d.size,
                        other: d.other.clone(),
                        file: String::new(),
                    });
                    files.push((d.temp, d.sha256, d.size));
                    slots.push((i, j));
                }
            }
            if !files.is_empty() {
                let paths = self.storage.adopt_batch(files).await?;
                for (row, path) in new_rows.iter_mut().zip(paths) {
                    row.file = path;
                }
                new_rows.sort_by(|a, b| a.sha256.cmp(&b.sha256));
                let saved = self.store.insert_artifacts(&new_rows).await?;
                let by_sha: HashMap<&str, _> =
                    saved.iter().map(|a| (a.sha256.as_str(), a)).collect();
                for (i, j) in slots {
                    let da = &mut batch[i].d_artifacts[j];
                    let sha = da.expected().sha256.unwrap_or_default();
                    let artifact = by_sha.get(sha.as_str()).ok_or_else(|| {
                        StageError::Plugin(format!("artifact {sha} was not saved"))
                    })?;
                    da.artifact = ArtifactState::Saved((*artifact).clone());
                }
            }
            io.output.put_all(batch).await?;
        }
        Ok(())
    }
}

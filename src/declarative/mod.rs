//! Declarative content: what a first stage says the repository should contain.
//!
//! A [`DeclarativeContent`] is one content unit (unsaved at first) with its
//! [`DeclarativeArtifact`]s (each an expected file, the URL to fetch it from, its relative path,
//! the remote, and whether its download is deferred). The default stages turn it into saved rows
//! step by step: they swap [`ContentState::Unsaved`] for [`ContentState::Saved`] and
//! [`ArtifactState::Unsaved`] for `Downloaded` then `Saved`.
//!
//! A unit may carry a resolver ([`DeclarativeContent::with_future`]): the first stage keeps the
//! [`ContentFuture`] and awaits it to read what was saved (multi-level discovery: an index that
//! lists more content). Such a unit batches like any other until its future is first polled
//! (someone now waits for it); from then on it does not batch (`does_batch() == false`), so a
//! batching stage cuts its batch after it instead of holding it back. A first stage may therefore
//! put thousands of units with futures and await them in a window (the oldest first) without
//! shrinking every batch to one unit. If the unit is dropped (a stage failed, the sync was
//! cancelled) the future resolves to [`ResolveError::Dropped`]; it never hangs.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::downloader::{DownloadResult, DownloaderFactory};
use crate::models::{Artifact, Content, ContentArtifact, Expected, Remote, UnsavedContent};

/// A remote as a sync uses it: its row and its downloader factory (one per remote per sync).
#[derive(Clone)]
pub struct RemoteHandle {
    pub remote: Remote,
    pub downloader: Arc<DownloaderFactory>,
}

impl std::fmt::Debug for RemoteHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteHandle")
            .field("remote", &self.remote.name)
            .finish()
    }
}

/// Where an artifact is on its way to being saved.
#[derive(Debug)]
pub enum ArtifactState {
    /// Not on disk yet: what we expect of it.
    Unsaved(Expected),
    /// Downloaded and validated into a temp file, not yet in storage.
    Downloaded(DownloadResult),
    /// In storage with its row.
    Saved(Artifact),
}

/// One file of a content unit: expected artifact, where to fetch it, where it goes.
#[derive(Debug)]
pub struct DeclarativeArtifact {
    pub artifact: ArtifactState,
    pub url: String,
    pub relative_path: String,
    pub remote: Arc<RemoteHandle>,
    /// `true` for on_demand / streamed: record where it is, do not download now.
    pub deferred_download: bool,
}

impl DeclarativeArtifact {
    /// What is known of the file's size and digests, whatever the state.
    pub fn expected(&self) -> Expected {
        match &self.artifact {
            ArtifactState::Unsaved(e) => e.clone(),
            ArtifactState::Downloaded(d) => Expected {
                size: Some(d.size),
                sha256: Some(d.sha256.clone()),
                other: d.other.clone(),
            },
            ArtifactState::Saved(a) => Expected {
                size: Some(a.size),
                sha256: Some(a.sha256.clone()),
                other: a.other.clone(),
            },
        }
    }

    /// Must the downloader fetch this now?
    pub fn needs_download(&self) -> bool {
        !self.deferred_download && matches!(self.artifact, ArtifactState::Unsaved(_))
    }

    /// The saved artifact, if it is saved.
    pub fn saved(&self) -> Option<&Artifact> {
        match &self.artifact {
            ArtifactState::Saved(a) => Some(a),
            _ => None,
        }
    }
}

/// A content unit before or after it was saved.
#[derive(Debug, Clone)]
pub enum ContentState {
    Unsaved(UnsavedContent),
    Saved(Content),
}

impl ContentState {
    pub fn pulp_type(&self) -> &str {
        match self {
            ContentState::Unsaved(c) => &c.pulp_type,
            ContentState::Saved(c) => &c.pulp_type,
        }
    }

    pub fn natural_key(&self) -> &str {
        match self {
            ContentState::Unsaved(c) => &c.natural_key,
            ContentState::Saved(c) => &c.natural_key,
        }
    }

    /// The saved id, once saved.
    pub fn id(&self) -> Option<uuid::Uuid> {
        match self {
            ContentState::Unsaved(_) => None,
            ContentState::Saved(c) => Some(c.id),
        }
    }
}

/// What a [`ContentFuture`] resolves to: the saved unit and its content artifacts.
#[derive(Debug, Clone)]
pub struct ResolvedContent {
    pub content: Content,
    pub artifacts: Vec<(ContentArtifact, Option<Artifact>)>,
}

/// Why a [`ContentFuture`] did not get its content.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("the content unit was dropped before it was saved (the sync failed or was cancelled)")]
    Dropped,
    #[error("could not resolve the content unit: {0}")]
    Failed(String),
}

type Resolution = Result<ResolvedContent, ResolveError>;

/// Resolves when the unit reaches ResolveContentFutures (or fails if it never will). Its first
/// poll marks the unit as awaited (see [`DeclarativeContent::does_batch`]).
#[derive(Debug)]
pub struct ContentFuture {
    rx: oneshot::Receiver<Resolution>,
    awaited: Arc<AtomicBool>,
}

impl Future for ContentFuture {
    type Output = Resolution;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.awaited.store(true, Ordering::Release);
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ResolveError::Dropped)))
    }
}

/// The unit's end of a [`ContentFuture`].
#[derive(Debug)]
struct Resolver {
    tx: oneshot::Sender<Resolution>,
    awaited: Arc<AtomicBool>,
}

/// One content unit flowing through the pipeline.
#[derive(Debug)]
pub struct DeclarativeContent {
    pub content: ContentState,
    pub d_artifacts: Vec<DeclarativeArtifact>,
    resolver: Option<Resolver>,
}

impl DeclarativeContent {
    pub fn new(content: UnsavedContent, d_artifacts: Vec<DeclarativeArtifact>) -> Self {
        DeclarativeContent {
            content: ContentState::Unsaved(content),
            d_artifacts,
            resolver: None,
        }
    }

    /// Attaches a resolver and returns the future the first stage can await.
    pub fn with_future(mut self) -> (Self, ContentFuture) {
        let (tx, rx) = oneshot::channel();
        let awaited = Arc::new(AtomicBool::new(false));
        self.resolver = Some(Resolver {
            tx,
            awaited: awaited.clone(),
        });
        (self, ContentFuture { rx, awaited })
    }

    /// `false` once someone awaits this unit's future: batching stages must not hold it back.
    /// A unit whose future is not awaited yet batches like any other.
    pub fn does_batch(&self) -> bool {
        match &self.resolver {
            None => true,
            Some(r) => !r.awaited.load(Ordering::Acquire),
        }
    }

    /// Whether a resolver is attached and not yet used.
    pub fn has_future(&self) -> bool {
        self.resolver.is_some()
    }

    /// Resolves the unit's future (if any). Called once, by ResolveContentFutures.
    pub fn resolve(&mut self, resolution: Resolution) {
        if let Some(r) = self.resolver.take() {
            // The waiter may have given up; that is not our error.
            let _ = r.tx.send(resolution);
        }
    }

    /// Bytes of the artifacts downloaded for this unit in this sync.
    /// How many of its artifacts were downloaded (not found already saved).
    pub fn downloaded_count(&self) -> u64 {
        self.d_artifacts
            .iter()
            .filter(|da| matches!(da.artifact, ArtifactState::Downloaded(_)))
            .count() as u64
    }

    pub fn downloaded_bytes(&self) -> u64 {
        self.d_artifacts
            .iter()
            .map(|da| match &da.artifact {
                ArtifactState::Downloaded(d) => d.size,
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit() -> DeclarativeContent {
        DeclarativeContent::new(
            UnsavedContent {
                pulp_type: "test.unit".into(),
                natural_key: "k".into(),
                repo_key: "k".into(),
                data: serde_json::json!({}),
            },
            vec![],
        )
    }

    #[tokio::test]
    async fn dropped_unit_fails_its_future() {
        let (dc, fut) = unit().with_future();
        drop(dc);
        assert_eq!(fut.await.unwrap_err(), ResolveError::Dropped);
    }

    #[tokio::test]
    async fn a_unit_stops_batching_once_its_future_is_polled() {
        let (dc, mut fut) = unit().with_future();
        assert!(dc.does_batch(), "not awaited yet: batches normally");
        let polled = futures::poll!(&mut fut);
        assert!(polled.is_pending());
        assert!(!dc.does_batch(), "awaited: cut the batch after it");
    }

    #[test]
    fn plain_unit_batches() {
        assert!(unit().does_batch());
    }
}

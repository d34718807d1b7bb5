//! The Stage trait and the link ends a stage reads from and writes to.
//!
//! A stage is a value that consumes itself: `run(self: Box<Self>, io)` reads from
//! [`Input`] (one item at a time with [`Input::next`], or what is ready with [`Input::batch`])
//! and writes with [`Output::put`]. Returning `Ok(())` means "done with my input"; dropping the
//! output is how downstream learns the stream ended. Both ends watch the pipeline's
//! cancellation token, so a stage waiting on a link stops as soon as another stage fails.
//! Both ends also keep the stage's [`StageMetrics`], so a stage never measures itself.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::{TryRecvError, TrySendError};
use tokio_util::sync::CancellationToken;

use super::metrics::{LinkMetrics, StageMetrics};
use crate::db::DbError;
use crate::declarative::DeclarativeContent;
use crate::downloader::DownloadError;
use crate::storage::StorageError;

/// Why a stage stopped without finishing its input.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A plugin's own failure (a malformed manifest, an unsafe path...), with its message.
    #[error("{0}")]
    Plugin(String),
    #[error("cancelled")]
    Cancelled,
    #[error("the next stage stopped reading")]
    DownstreamClosed,
    #[error("panicked: {0}")]
    Panicked(String),
    #[error("{0}")]
    Other(#[from] Box<dyn std::error::Error + Send + Sync>),
}

impl StageError {
    /// Errors that are only a consequence of another stage's failure or of cancellation.
    pub fn is_secondary(&self) -> bool {
        matches!(self, StageError::Cancelled | StageError::DownstreamClosed)
    }
}

/// What a running stage knows about itself.
#[derive(Debug, Clone)]
pub struct StageCtx {
    pub name: String,
    pub cancel: CancellationToken,
    pub metrics: Arc<StageMetrics>,
    /// The most items a batching stage should take at once.
    pub batch_size: usize,
}

/// A pipeline stage. See the module docs.
#[async_trait]
pub trait Stage: Send + 'static {
    /// A short, stable name, e.g. `ArtifactDownloader`; used in errors, logs and reports.
    fn name(&self) -> String;

    async fn run(self: Box<Self>, io: StageIo) -> Result<(), StageError>;
}

/// The ends and context handed to a running stage.
pub struct StageIo {
    pub input: Input,
    pub output: Output,
    pub ctx: StageCtx,
}

/// The receiving end of a stage's input link (empty for the first stage).
pub struct Input {
    rx: Option<mpsc::Receiver<DeclarativeContent>>,
    link: Option<Arc<LinkMetrics>>,
    metrics: Arc<StageMetrics>,
    cancel: CancellationToken,
    measure: bool,
}

impl Input {
    pub(crate) fn new(
        rx: Option<mpsc::Receiver<DeclarativeContent>>,
        link: Option<Arc<LinkMetrics>>,
        metrics: Arc<StageMetrics>,
        cancel: CancellationToken,
        measure: bool,
    ) -> Input {
        Input {
            rx,
            link,
            metrics,
            cancel,
            measure,
        }
    }

    fn took(&self, n: usize) {
        if let Some(link) = &self.link {
            link.popped(n);
        }
        self.metrics.add_in(n as u64);
    }

    /// Waits for the next item; `Ok(None)` at end of stream.
    pub async fn next(&mut self) -> Result<Option<DeclarativeContent>, StageError> {
        let Some(rx) = self.rx.as_mut() else {
            return Ok(None);
        };
        match rx.try_recv() {
            Ok(item) => {
                self.took(1);
                return Ok(Some(item));
            }
            Err(TryRecvError::Disconnected) => return Ok(None),
            Err(TryRecvError::Empty) => {}
        }
        let waited = self.measure.then(Instant::now);
        let got = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(StageError::Cancelled),
            got = rx.recv() => got,
        };
        if let Some(start) = waited {
            self.metrics.add_starved(start.elapsed());
        }
        if got.is_some() {
            self.took(1);
        }
        Ok(got)
    }

    /// Waits for one item, then takes whatever else is ready, up to `max` items; never waits
    /// for a fuller batch. Stops early after a unit that does not batch (someone awaits it).
    /// `Ok(None)` at end of stream.
    pub async fn batch(
        &mut self,
        max: usize,
    ) -> Result<Option<Vec<DeclarativeContent>>, StageError> {
        let Some(first) = self.next().await? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(max.clamp(1, 1024));
        let mut urgent = !first.does_batch();
        out.push(first);
        let Some(rx) = self.rx.as_mut() else {
            return Ok(Some(out));
        };
        let mut taken = 0;
        while !urgent && out.len() < max {
            match rx.try_recv() {
                Ok(item) => {
                    urgent = !item.does_batch();
                    out.push(item);
                    taken += 1;
                }
                Err(_) => break,
            }
        }
        self.took(taken);
        Ok(Some(out))
    }

    /// Receives without recording starved time: for stages that wait on input *and* on work
    /// in flight at once (their waiting is busy time, not starvation).
    pub async fn next_while_busy(&mut self) -> Result<Option<DeclarativeContent>, StageError> {
        let Some(rx) = self.rx.as_mut() else {
            return Ok(None);
        };
        let got = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(StageError::Cancelled),
            got = rx.recv() => got,
        };
        if got.is_some() {
            self.took(1);
        }
        Ok(got)
    }
}

/// The sending end of a stage's output link (a sink that drops items for the last stage).
pub struct Output {
    tx: Option<mpsc::Sender<DeclarativeContent>>,
    link: Option<Arc<LinkMetrics>>,
    metrics: Arc<StageMetrics>,
    cancel: CancellationToken,
    measure: bool,
}

impl Output {
    pub(crate) fn new(
        tx: Option<mpsc::Sender<DeclarativeContent>>,
        link: Option<Arc<LinkMetrics>>,
        metrics: Arc<StageMetrics>,
        cancel: CancellationToken,
        measure: bool,
    ) -> Output {
        Output {
            tx,
            link,
            metrics,
            cancel,
            measure,
        }
    }

    /// Puts one item on the link, waiting for room (backpressure).
    pub async fn put(&mut self, item: DeclarativeContent) -> Result<(), StageError> {
        self.metrics.add_out(1);
        let Some(tx) = self.tx.as_ref() else {
            return Ok(()); // the last stage: the pipeline's end drains by dropping
        };
        if let Some(link) = &self.link {
            link.pushed();
        }
        let item = match tx.try_send(item) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Closed(_)) => return Err(StageError::DownstreamClosed),
            Err(TrySendError::Full(item)) => item,
        };
        let waited = self.measure.then(Instant::now);
        let sent = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Err(StageError::Cancelled),
            sent = tx.send(item) => sent,
        };
        if let Some(start) = waited {
            self.metrics.add_blocked(start.elapsed());
        }
        sent.map_err(|_| StageError::DownstreamClosed)
    }

    /// Puts every item of a batch, in order.
    pub async fn put_all(
        &mut self,
        items: impl IntoIterator<Item = DeclarativeContent>,
    ) -> Result<(), StageError> {
        for item in items {
            self.put(item).await?;
        }
        Ok(())
    }
}

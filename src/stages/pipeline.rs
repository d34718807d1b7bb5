//! `create_pipeline`: the one place that links stages and runs them.
//!
//! Links are bounded `tokio::sync::mpsc` channels (single producer, single consumer per link,
//! and `try_recv` lets a batching stage take what is ready: we need nothing of an MPMC channel).
//! Every stage runs as its own tokio task in a `JoinSet`, inside a span naming it, with a child
//! of the caller's cancellation token. The run ends when every stage has returned. The first
//! real failure cancels all the others (they stop at their next link operation) and is returned
//! with the failing stage's name; stages that do not stop within the drain deadline are aborted.
//! Success means *every* stage returned Ok: an upstream crash closes links downstream, but the
//! run still fails, so a half-synced version is never committed.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::api::{Input, Output, Stage, StageCtx, StageError, StageIo};
use super::metrics::{LinkMetrics, PipelineMetrics, PipelineReport, StageMetrics};

/// Tunables of a pipeline run.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Items each link holds. Near the batch size so DB stages see full batches when busy.
    pub link_capacity: usize,
    /// Most items a batching stage takes at once (one DB round trip per batch).
    pub batch_size: usize,
    /// Record starved / blocked time (clock reads on the slow path only).
    pub measure: bool,
    /// How long stages get to stop after a failure before they are aborted.
    pub drain_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            link_capacity: 256,
            batch_size: 500,
            measure: true,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a pipeline run failed: the first stage that really failed, and how.
#[derive(Debug, thiserror::Error)]
#[error("stage {stage} failed: {source}")]
pub struct PipelineError {
    pub stage: String,
    #[source]
    pub source: StageError,
    /// The numbers up to the failure.
    pub report: Box<PipelineReport>,
}

impl PipelineError {
    pub fn is_cancelled(&self) -> bool {
        matches!(self.source, StageError::Cancelled)
    }
}

/// Linked stages, ready to run.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    config: PipelineConfig,
    metrics: PipelineMetrics,
}

/// Links `first_stage` and `stages` in order with bounded channels.
///
/// # Panics
/// If two stages share a name (their numbers would be indistinguishable).
pub fn create_pipeline(
    first_stage: Box<dyn Stage>,
    stages: Vec<Box<dyn Stage>>,
    config: PipelineConfig,
) -> Pipeline {
    let mut all = Vec::with_capacity(stages.len() + 1);
    all.push(first_stage);
    all.extend(stages);
    let names: Vec<String> = all.iter().map(|s| s.name()).collect();
    for (i, n) in names.iter().enumerate() {
        assert!(
            !names[..i].contains(n),
            "each stage of a pipeline needs a unique name; {n:?} appears twice"
        );
    }
    let stage_metrics = names
        .iter()
        .map(|n| Arc::new(StageMetrics::new(n)))
        .collect();
    let links = names
        .windows(2)
        .map(|w| {
            Arc::new(LinkMetrics::new(
                format!("{} -> {}", w[0], w[1]),
                config.link_capacity,
            ))
        })
        .collect();
    Pipeline {
        stages: all,
        config,
        metrics: PipelineMetrics {
            stages: stage_metrics,
            links,
        },
    }
}

impl Pipeline {
    /// The live counters, to watch while it runs.
    pub fn metrics(&self) -> PipelineMetrics {
        self.metrics.clone()
    }

    /// Runs every stage to completion. See the module docs for the failure rules.
    pub async fn run(self, cancel: CancellationToken) -> Result<PipelineReport, PipelineError> {
        let Pipeline {
            stages,
            config,
            metrics,
        } = self;
        let token = cancel.child_token();
        let n = stages.len();
        let cap = config.link_capacity.max(1);

        // Channels: link i goes from stage i to stage i + 1.
        let mut senders = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        receivers.push(None);
        for _ in 0..n - 1 {
            let (tx, rx) = mpsc::channel(cap);
            senders.push(Some(tx));
            receivers.push(Some(rx));
        }
        senders.push(None);

        let mut set = JoinSet::new();
        for (i, ((stage, rx), tx)) in stages.into_iter().zip(receivers).zip(senders).enumerate() {
            let m = metrics.stages[i].clone();
            let in_link = i.checked_sub(1).map(|j| metrics.links[j].clone());
            let out_link = metrics.links.get(i).cloned();
            let ctx = StageCtx {
                name: m.name.clone(),
                cancel: token.clone(),
                metrics: m.clone(),
                batch_size: config.batch_size.max(1),
            };
            let io = StageIo {
                input: Input::new(rx, in_link, m.clone(), token.clone(), config.measure),
                output: Output::new(tx, out_link, m.clone(), token.clone(), config.measure),
                ctx,
            };
            let span = tracing::info_span!("stage", stage = %m.name);
            set.spawn(
                async move {
                    m.start();
                    let result = AssertUnwindSafe(stage.run(io))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|p| Err(StageError::Panicked(panic_message(p))));
                    m.finish();
                    (i, result)
                }
                .instrument(span),
            );
        }

        let mut first_error: Option<(usize, StageError)> = None;
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let joined = match deadline {
                None => tokio::select! {
                    j = set.join_next() => j,
                    // Cancelled from outside: stages that watch their token stop at once; give
                    // the others (a download waiting on a silent server) a moment, then abort.
                    _ = cancel.cancelled() => {
                        deadline = Some(tokio::time::Instant::now() + CANCEL_DRAIN);
                        continue;
                    }
                },
                Some(d) => match tokio::time::timeout_at(d, set.join_next()).await {
                    Ok(j) => j,
                    Err(_) => {
                        tracing::warn!("stages did not stop in time; aborting them");
                        set.abort_all();
                        while set.join_next().await.is_some() {}
                        break;
                    }
                },
            };
            let Some(joined) = joined else { break };
            let (idx, result) = match joined {
                Ok(r) => r,
                // Panics are caught inside the task; only an abort lands here.
                Err(_) => (usize::MAX, Err(StageError::Cancelled)),
            };
            if let Err(err) = result {
                let replace = match &first_error {
                    None => true,
                    // A real failure beats a consequence of one (cancelled, downstream closed).
                    Some((_, prev)) => prev.is_secondary() && !err.is_secondary(),
                };
                if first_error.is_none() {
                    token.cancel();
                    let drain = if cancel.is_cancelled() {
                        CANCEL_DRAIN
                    } else {
                        config.drain_timeout
                    };
                    deadline = Some(tokio::time::Instant::now() + drain);
                }
                if replace {
                    first_error = Some((idx, err));
                }
            }
        }

        let report = metrics.snapshot();
        match first_error {
            None if cancel.is_cancelled() => Err(PipelineError {
                stage: "pipeline".into(),
                source: StageError::Cancelled,
                report: Box::new(report),
            }),
            None => Ok(report),
            Some((idx, source)) => {
                let stage = metrics
                    .stages
                    .get(idx)
                    .map(|m| m.name.clone())
                    .unwrap_or_else(|| "unknown".into());
                let source = if cancel.is_cancelled() {
                    StageError::Cancelled
                } else {
                    source
                };
                Err(PipelineError {
                    stage,
                    source,
                    report: Box::new(report),
                })
            }
        }
    }
}

/// How long stages get to stop once the pipeline is cancelled from outside, before they are
/// aborted (their spawned downloads with them; temp files go with their handles).
const CANCEL_DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

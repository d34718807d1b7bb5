//! Measuring from inside: per-stage and per-link counters, kept by the stages API itself.
//!
//! [`Input`](super::Input) and [`Output`](super::Output) update these as items pass, so every
//! stage (a plugin's first stage and custom stages included) is measured without code of its own.
//! Counters are relaxed atomics bumped per item or per batch; clocks are read only on the slow
//! path (when a stage actually has to wait), so measuring costs almost nothing on a busy
//! pipeline. Wall time splits into *starved* (waiting for input), *blocked* (waiting for room
//! downstream) and *busy* (the rest).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// Counters of one stage.
#[derive(Debug)]
pub struct StageMetrics {
    pub name: String,
    items_in: AtomicU64,
    items_out: AtomicU64,
    bytes: AtomicU64,
    artifacts: AtomicU64,
    starved_ns: AtomicU64,
    blocked_ns: AtomicU64,
    started: OnceLock<Instant>,
    finished: OnceLock<Instant>,
}

impl StageMetrics {
    pub fn new(name: &str) -> StageMetrics {
        StageMetrics {
            name: name.to_string(),
            items_in: AtomicU64::new(0),
            items_out: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            artifacts: AtomicU64::new(0),
            starved_ns: AtomicU64::new(0),
            blocked_ns: AtomicU64::new(0),
            started: OnceLock::new(),
            finished: OnceLock::new(),
        }
    }

    pub(crate) fn start(&self) {
        let _ = self.started.set(Instant::now());
    }

    pub(crate) fn finish(&self) {
        let _ = self.finished.set(Instant::now());
    }

    pub(crate) fn add_in(&self, n: u64) {
        self.items_in.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_out(&self, n: u64) {
        self.items_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Records bytes this stage moved (downloaded, written, served).
    pub fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Records artifacts this stage fetched or stored (e.g. downloads, not found ones).
    pub fn add_artifacts(&self, n: u64) {
        self.artifacts.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_starved(&self, d: Duration) {
        self.starved_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_blocked(&self, d: Duration) {
        self.blocked_ns
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn items_in(&self) -> u64 {
        self.items_in.load(Ordering::Relaxed)
    }

    pub fn items_out(&self) -> u64 {
        self.items_out.load(Ordering::Relaxed)
    }

    /// A consistent-enough view of the counters now.
    pub fn snapshot(&self) -> StageReport {
        let now = Instant::now();
        let wall = match self.started.get() {
            Some(s) => self.finished.get().copied().unwrap_or(now) - *s,
            None => Duration::ZERO,
        };
        let starved = Duration::from_nanos(self.starved_ns.load(Ordering::Relaxed));
        let blocked = Duration::from_nanos(self.blocked_ns.load(Ordering::Relaxed));
        let busy = wall.saturating_sub(starved + blocked);
        StageReport {
            name: self.name.clone(),
            items_in: self.items_in(),
            items_out: self.items_out(),
            bytes: self.bytes.load(Ordering::Relaxed),
            artifacts: self.artifacts.load(Ordering::Relaxed),
            wall_secs: wall.as_secs_f64(),
            busy_secs: busy.as_secs_f64(),
            starved_secs: starved.as_secs_f64(),
            blocked_secs: blocked.as_secs_f64(),
        }
    }
}

/// Occupancy of one link (the bounded channel into a stage).
#[derive(Debug)]
pub struct LinkMetrics {
    /// `"<upstream> -> <downstream>"`.
    pub name: String,
    pub capacity: usize,
    queued: AtomicI64,
    peak: AtomicI64,
}

impl LinkMetrics {
    pub fn new(name: String, capacity: usize) -> LinkMetrics {
        LinkMetrics {
            name,
            capacity,
            queued: AtomicI64::new(0),
            peak: AtomicI64::new(0),
        }
    }

    pub(crate) fn pushed(&self) {
        let now = self.queued.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn popped(&self, n: usize) {
        self.queued.fetch_sub(n as i64, Ordering::Relaxed);
    }

    /// Items waiting in the link now, never more than it holds: the count goes up as a send
    /// starts, so a sender waiting on a full link would otherwise show as one more.
    pub fn queued(&self) -> usize {
        self.clamped(self.queued.load(Ordering::Relaxed))
    }

    /// The most items ever waiting in the link at once (at most its capacity).
    pub fn peak(&self) -> usize {
        self.clamped(self.peak.load(Ordering::Relaxed))
    }

    fn clamped(&self, n: i64) -> usize {
        (n.max(0) as usize).min(self.capacity)
    }
}

/// What one stage did, as numbers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageReport {
    pub name: String,
    pub items_in: u64,
    pub items_out: u64,
    pub bytes: u64,
    /// Artifacts the stage fetched or stored (0 for stages that handle none).
    pub artifacts: u64,
    pub wall_secs: f64,
    pub busy_secs: f64,
    pub starved_secs: f64,
    pub blocked_secs: f64,
}

impl StageReport {
    /// Share of wall time spent busy, 0..=1.
    pub fn busy_share(&self) -> f64 {
        share(self.busy_secs, self.wall_secs)
    }
    pub fn starved_share(&self) -> f64 {
        share(self.starved_secs, self.wall_secs)
    }
    pub fn blocked_share(&self) -> f64 {
        share(self.blocked_secs, self.wall_secs)
    }
}

fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        (part / whole).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// A link's occupancy as numbers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkReport {
    pub name: String,
    pub capacity: usize,
    pub queued: usize,
    pub peak: usize,
}

/// The live counters of a whole pipeline; cheap to clone (`Arc`) and read while it runs.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    pub stages: Vec<Arc<StageMetrics>>,
    pub links: Vec<Arc<LinkMetrics>>,
}

impl PipelineMetrics {
    pub fn snapshot(&self) -> PipelineReport {
        PipelineReport {
            stages: self.stages.iter().map(|s| s.snapshot()).collect(),
            links: self
                .links
                .iter()
                .map(|l| LinkReport {
                    name: l.name.clone(),
                    capacity: l.capacity,
                    queued: l.queued(),
                    peak: l.peak(),
                })
                .collect(),
        }
    }

    pub fn stage(&self, name: &str) -> Option<&Arc<StageMetrics>> {
        self.stages.iter().find(|s| s.name == name)
    }
}

/// Every stage's and link's numbers, and which stage held the sync back.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PipelineReport {
    pub stages: Vec<StageReport>,
    pub links: Vec<LinkReport>,
}

impl PipelineReport {
    /// The stage that held the pipeline back: the one busy for the longest time. A stage that
    /// is busy while those before it are blocked and those after it are starved is exactly the
    /// one whose busy time stands out. Busy *time*, not share: a stage that finished at once
    /// (a first stage whose whole output fit in its link) has a large share of a tiny wall time.
    /// Ties go to the earlier stage.
    pub fn bottleneck(&self) -> Option<&StageReport> {
        let mut best: Option<&StageReport> = None;
        for s in &self.stages {
            if best.is_none_or(|b| s.busy_secs > b.busy_secs) {
                best = Some(s);
            }
        }
        best
    }

    pub fn stage(&self, name: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Adds the per-stage totals to the process's metrics ([`crate::telemetry`]).
    pub fn record(&self) {
        crate::telemetry::global().record_pipeline(self.stages.iter().map(|s| {
            crate::telemetry::StageTotals {
                stage: &s.name,
                items_in: s.items_in,
                items_out: s.items_out,
                bytes: s.bytes,
                busy_secs: s.busy_secs,
                starved_secs: s.starved_secs,
                blocked_secs: s.blocked_secs,
            }
        }));
    }
}

/// One sample of a running pipeline: seconds since sampling began, each stage's items out and
/// bytes so far, and each link's queued items.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    pub t: f64,
    pub items_out: Vec<u64>,
    pub bytes: Vec<u64>,
    pub queued: Vec<usize>,
}

/// The pipeline over time: what `bench --chart` draws and `--json` writes.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Timeline {
    pub stages: Vec<String>,
    pub links: Vec<String>,
    pub link_capacity: Vec<usize>,
    pub samples: Vec<Sample>,
}

impl Timeline {
    /// Items per second of stage `i` between consecutive samples: `(t, rate)` at each interval's
    /// end.
    pub fn stage_rates(&self, i: usize) -> Vec<(f64, f64)> {
        self.samples
            .windows(2)
            .map(|w| {
                let dt = (w[1].t - w[0].t).max(1e-9);
                let d = w[1].items_out[i].saturating_sub(w[0].items_out[i]);
                (w[1].t, d as f64 / dt)
            })
            .collect()
    }

    /// Keeps every other sample (the first and the last always): counters are cumulative, so
    /// the rates between the kept ones stay true, over twice the interval.
    pub fn thin(&mut self) {
        let last = self.samples.len().saturating_sub(1);
        let mut i = 0;
        self.samples.retain(|_| {
            let keep = i % 2 == 0 || i == last;
            i += 1;
            keep
        });
    }

    /// Occupancy of link `i` (queued / capacity, 0..=1) at each sample.
    pub fn link_occupancy(&self, i: usize) -> Vec<(f64, f64)> {
        let cap = self.link_capacity[i].max(1) as f64;
        self.samples
            .iter()
            .map(|s| (s.t, s.queued[i] as f64 / cap))
            .collect()
    }
}

impl PipelineMetrics {
    /// Samples the counters every `interval` until `stop` fires, then returns the timeline
    /// (with a last sample taken at the stop). Reading atomics only: the pipeline never waits.
    pub async fn sample(&self, interval: Duration, stop: CancellationToken) -> Timeline {
        self.sample_with(interval, None, stop).await
    }

    /// Like [`PipelineMetrics::sample`], starting every `first` and doubling the interval (and
    /// keeping every other sample) whenever `max_samples` are taken: a short run still gets
    /// many samples, a long one no more than `max_samples`.
    pub async fn sample_adaptive(
        &self,
        first: Duration,
        max_samples: usize,
        stop: CancellationToken,
    ) -> Timeline {
        self.sample_with(first, Some(max_samples.max(4)), stop)
            .await
    }

    async fn sample_with(
        &self,
        first: Duration,
        max_samples: Option<usize>,
        stop: CancellationToken,
    ) -> Timeline {
        let mut interval = first;
        let mut timeline = Timeline {
            stages: self.stages.iter().map(|s| s.name.clone()).collect(),
            links: self.links.iter().map(|l| l.name.clone()).collect(),
            link_capacity: self.links.iter().map(|l| l.capacity).collect(),
            samples: Vec::new(),
        };
        let start = Instant::now();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if max_samples.is_some_and(|max| timeline.samples.len() >= max) {
                timeline.thin();
                interval *= 2;
                tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            let stopping = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.cancelled() => true,
            };
            timeline.samples.push(Sample {
                t: start.elapsed().as_secs_f64(),
                items_out: self.stages.iter().map(|s| s.items_out()).collect(),
                bytes: self
                    .stages
                    .iter()
                    .map(|s| s.bytes.load(Ordering::Relaxed))
                    .collect(),
                queued: self.links.iter().map(|l| l.queued()).collect(),
            });
            if stopping {
                return timeline;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_never_shows_more_queued_than_it_holds() {
        let link = LinkMetrics::new("a -> b".into(), 2);
        for _ in 0..3 {
            link.pushed();
        }
        assert_eq!(link.queued(), 2);
        assert_eq!(link.peak(), 2);
        link.popped(2);
        assert_eq!(link.queued(), 1);
    }

    #[test]
    fn thinning_keeps_every_other_sample_and_the_last() {
        let sample = |t: f64| Sample {
            t,
            items_out: vec![t as u64],
            bytes: vec![0],
            queued: vec![0],
        };
        let mut timeline = Timeline {
            stages: vec!["s".into()],
            links: vec![],
            link_capacity: vec![],
            samples: (0..6).map(|i| sample(i as f64)).collect(),
        };
        timeline.thin();
        let ts: Vec<f64> = timeline.samples.iter().map(|s| s.t).collect();
        assert_eq!(ts, vec![0.0, 2.0, 4.0, 5.0]);
        assert_eq!(timeline.stage_rates(0)[0], (2.0, 1.0));
    }
}

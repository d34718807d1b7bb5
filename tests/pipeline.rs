//! The stages API on its own: batching, failure propagation, backpressure, futures, metrics.
//! No database or network: synthetic units through test stages.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pulp_rs::declarative::{ContentState, DeclarativeContent, ResolvedContent};
use pulp_rs::models::{Content, UnsavedContent};
use pulp_rs::stages::{create_pipeline, PipelineConfig, Stage, StageError, StageIo};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

fn unit(i: u64) -> DeclarativeContent {
    DeclarativeContent::new(
        UnsavedContent {
            pulp_type: "test.unit".into(),
            natural_key: i.to_string(),
            repo_key: i.to_string(),
            data: serde_json::Value::Null,
        },
        vec![],
    )
}

fn config(cap: usize) -> PipelineConfig {
    PipelineConfig {
        link_capacity: cap,
        batch_size: 500,
        measure: true,
        drain_timeout: Duration::from_secs(5),
    }
}

/// Emits `n` units, counting them; optionally pauses after `pause_after` until notified.
struct Source {
    n: u64,
    emitted: Arc<AtomicU64>,
    pause_after: Option<(u64, Arc<Notify>)>,
}

#[async_trait]
impl Stage for Source {
    fn name(&self) -> String {
        "Source".into()
    }
    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        for i in 0..self.n {
            if let Some((at, gate)) = &self.pause_after {
                if i == *at {
                    gate.notified().await;
                }
            }
            io.output.put(unit(i)).await?;
            self.emitted.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Forwards in batches and reports each batch's size.
struct Batcher {
    name: &'static str,
    sizes: mpsc::UnboundedSender<usize>,
}

#[async_trait]
impl Stage for Batcher {
    fn name(&self) -> String {
        self.name.into()
    }
    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        while let Some(batch) = io.input.batch(io.ctx.batch_size).await? {
            let _ = self.sizes.send(batch.len());
            io.output.put_all(batch).await?;
        }
        Ok(())
    }
}

/// Passes items on one by one, optionally sleeping per item, failing at item `fail_at`,
/// panicking at `panic_at`, or not reading at all until `gate` is notified.
#[derive(Default)]
struct Pass {
    name: &'static str,
    per_item: Option<Duration>,
    fail_at: Option<u64>,
    panic_at: Option<u64>,
    gate: Option<Arc<Notify>>,
    seen: Option<Arc<AtomicU64>>,
}

#[async_trait]
impl Stage for Pass {
    fn name(&self) -> String {
        self.name.into()
    }
    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        if let Some(g) = &self.gate {
            g.notified().await;
        }
        let mut i = 0;
        while let Some(item) = io.input.next().await? {
            if Some(i) == self.fail_at {
                return Err(StageError::Plugin(format!("broken at item {i}")));
            }
            if Some(i) == self.panic_at {
                panic!("stage exploded at item {i}");
            }
            if let Some(d) = self.per_item {
                tokio::time::sleep(d).await;
            }
            if let Some(s) = &self.seen {
                s.fetch_add(1, Ordering::SeqCst);
            }
            io.output.put(item).await?;
            i += 1;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_batch_is_cut_when_upstream_is_idle() {
    let gate = Arc::new(Notify::new());
    let emitted = Arc::new(AtomicU64::new(0));
    let (tx, mut sizes) = mpsc::unbounded_channel();
    let p = create_pipeline(
        Box::new(Source {
            n: 10,
            emitted: emitted.clone(),
            pause_after: Some((3, gate.clone())),
        }),
        vec![Box::new(Batcher {
            name: "Batcher",
            sizes: tx,
        })],
        config(16),
    );
    let run = tokio::spawn(p.run(CancellationToken::new()));
    // The source emitted 3 units and now waits: the batcher must not wait for 500.
    let first = tokio::time::timeout(Duration::from_secs(5), sizes.recv())
        .await
        .expect("a batch arrives while upstream is idle")
        .unwrap();
    assert!((1..=3).contains(&first), "first batch had {first} items");
    let mut total = first;
    while total < 3 {
        total += tokio::time::timeout(Duration::from_secs(5), sizes.recv())
            .await
            .expect("the rest of the first 3 arrives")
            .unwrap();
    }
    assert_eq!(total, 3, "only what was ready was taken");
    gate.notify_one();
    run.await.unwrap().unwrap();
    while let Ok(n) = sizes.try_recv() {
        total += n;
    }
    assert_eq!(total, 10);
}

#[tokio::test]
async fn a_failing_middle_stage_cancels_the_others_and_is_named() {
    let emitted = Arc::new(AtomicU64::new(0));
    let p = create_pipeline(
        // Would emit forever if nothing stopped it.
        Box::new(Source {
            n: u64::MAX,
            emitted: emitted.clone(),
            pause_after: None,
        }),
        vec![
            Box::new(Pass {
                name: "Middle",
                fail_at: Some(50),
                ..Default::default()
            }),
            Box::new(Pass {
                name: "Last",
                per_item: Some(Duration::from_millis(1)),
                ..Default::default()
            }),
        ],
        config(4),
    );
    let err = tokio::time::timeout(Duration::from_secs(10), p.run(CancellationToken::new()))
        .await
        .expect("no stage hangs after another failed")
        .unwrap_err();
    assert_eq!(err.stage, "Middle");
    assert!(err.to_string().contains("broken at item 50"), "{err}");
    assert!(!err.is_cancelled());
}

#[tokio::test]
async fn a_panicking_stage_fails_the_run_with_its_name() {
    let p = create_pipeline(
        Box::new(Source {
            n: 100,
            emitted: Arc::new(AtomicU64::new(0)),
            pause_after: None,
        }),
        vec![Box::new(Pass {
            name: "Boom",
            panic_at: Some(3),
            ..Default::default()
        })],
        config(4),
    );
    let err = tokio::time::timeout(Duration::from_secs(10), p.run(CancellationToken::new()))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.stage, "Boom");
    assert!(
        err.to_string().contains("stage exploded at item 3"),
        "{err}"
    );
}

#[tokio::test]
async fn an_upstream_failure_is_not_success_even_though_downstream_drained() {
    // The first stage fails after emitting a few units; every later stage sees a clean end of
    // stream and returns Ok. The run must still fail.
    struct FailingSource;
    #[async_trait]
    impl Stage for FailingSource {
        fn name(&self) -> String {
            "FailingSource".into()
        }
        async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
            for i in 0..5 {
                io.output.put(unit(i)).await?;
            }
            Err(StageError::Plugin("upstream went away".into()))
        }
    }
    let p = create_pipeline(
        Box::new(FailingSource),
        vec![Box::new(Pass {
            name: "Pass",
            ..Default::default()
        })],
        config(8),
    );
    let err = p.run(CancellationToken::new()).await.unwrap_err();
    assert_eq!(err.stage, "FailingSource");
}

#[tokio::test]
async fn cancelling_stops_a_blocked_pipeline() {
    let gate = Arc::new(Notify::new()); // never notified: the last stage never reads
    let p = create_pipeline(
        Box::new(Source {
            n: u64::MAX,
            emitted: Arc::new(AtomicU64::new(0)),
            pause_after: None,
        }),
        vec![Box::new(Pass {
            name: "Stuck",
            gate: Some(gate),
            ..Default::default()
        })],
        config(4),
    );
    let cancel = CancellationToken::new();
    let run = tokio::spawn(p.run(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    cancel.cancel();
    let err = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("cancellation stops the run")
        .unwrap()
        .unwrap_err();
    assert!(err.is_cancelled(), "{err}");
}

#[tokio::test]
async fn memory_is_bounded_by_the_links_for_100k_units() {
    const N: u64 = 100_000;
    const CAP: usize = 8;
    let gate = Arc::new(Notify::new());
    let emitted = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(AtomicU64::new(0));
    let (tx, _sizes) = mpsc::unbounded_channel();
    let stages: Vec<Box<dyn Stage>> = vec![
        Box::new(Pass {
            name: "A",
            ..Default::default()
        }),
        Box::new(Batcher {
            name: "B",
            sizes: tx,
        }),
        Box::new(Pass {
            name: "C",
            ..Default::default()
        }),
        Box::new(Pass {
            name: "Stalled",
            gate: Some(gate.clone()),
            seen: Some(seen.clone()),
            ..Default::default()
        }),
    ];
    let n_links = stages.len();
    let p = create_pipeline(
        Box::new(Source {
            n: N,
            emitted: emitted.clone(),
            pause_after: None,
        }),
        stages,
        PipelineConfig {
            batch_size: 500,
            ..config(CAP)
        },
    );
    let metrics = p.metrics();
    let run = tokio::spawn(p.run(CancellationToken::new()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Items in flight: each link's capacity, plus one item held by each stage, plus one
    // batch held by the batching stage.
    let bound = (n_links * CAP + (n_links + 1) + 500) as u64;
    let e = emitted.load(Ordering::SeqCst);
    assert!(
        e <= bound,
        "first stage emitted {e} items with the end stalled (bound {bound})"
    );
    assert!(
        e >= (n_links * CAP) as u64,
        "links should have filled, only {e} emitted"
    );
    gate.notify_one();
    let report = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), N);
    for link in &metrics.links {
        assert!(
            link.peak() <= CAP + 1,
            "{} peaked at {}",
            link.name,
            link.peak()
        );
    }
    assert_eq!(report.stage("Stalled").unwrap().items_in, N);
    assert_eq!(report.stage("Source").unwrap().items_out, N);
}

#[tokio::test]
async fn the_slow_stage_is_named_bottleneck_with_blocked_before_and_starved_after() {
    let p = create_pipeline(
        Box::new(Source {
            n: 200,
            emitted: Arc::new(AtomicU64::new(0)),
            pause_after: None,
        }),
        vec![
            Box::new(Pass {
                name: "Before",
                ..Default::default()
            }),
            Box::new(Pass {
                name: "Slow",
                per_item: Some(Duration::from_millis(2)),
                ..Default::default()
            }),
            Box::new(Pass {
                name: "After",
                ..Default::default()
            }),
        ],
        config(4),
    );
    let report = p.run(CancellationToken::new()).await.unwrap();
    assert_eq!(report.bottleneck().unwrap().name, "Slow");
    let before = report.stage("Before").unwrap();
    let after = report.stage("After").unwrap();
    assert!(before.blocked_share() > 0.5, "Before: {before:?}");
    assert!(after.starved_share() > 0.5, "After: {after:?}");
    assert_eq!(report.stage("After").unwrap().items_in, 200);
}

#[tokio::test]
async fn an_awaited_unit_is_not_held_in_a_batch() {
    // A first stage puts one awaited unit and waits for its resolution before emitting more;
    // a batching stage in between must let it through at once.
    struct Discoverer {
        got: oneshot::Sender<String>,
    }
    #[async_trait]
    impl Stage for Discoverer {
        fn name(&self) -> String {
            "Discoverer".into()
        }
        async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
            let (dc, fut) = unit(1).with_future();
            io.output.put(dc).await?;
            let resolved = fut.await.map_err(|e| StageError::Plugin(e.to_string()))?;
            let _ = self.got.send(resolved.content.natural_key.clone());
            for i in 2..5 {
                io.output.put(unit(i)).await?;
            }
            Ok(())
        }
    }
    struct Resolver;
    #[async_trait]
    impl Stage for Resolver {
        fn name(&self) -> String {
            "Resolver".into()
        }
        async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
            while let Some(batch) = io.input.batch(500).await? {
                for mut dc in batch {
                    let key = dc.content.natural_key().to_string();
                    dc.content = ContentState::Saved(Content {
                        id: uuid::Uuid::now_v7(),
                        pulp_type: "test.unit".into(),
                        natural_key: key,
                        repo_key: String::new(),
                        data: serde_json::Value::Null,
                        pulp_created: chrono::Utc::now(),
                    });
                    if let ContentState::Saved(c) = &dc.content {
                        let c = c.clone();
                        dc.resolve(Ok(ResolvedContent {
                            content: c,
                            artifacts: vec![],
                        }));
                    }
                    io.output.put(dc).await?;
                }
            }
            Ok(())
        }
    }
    let (tx, rx) = oneshot::channel();
    let (sizes, _) = mpsc::unbounded_channel();
    let p = create_pipeline(
        Box::new(Discoverer { got: tx }),
        vec![
            Box::new(Batcher {
                name: "Batcher",
                sizes,
            }),
            Box::new(Resolver),
        ],
        config(1),
    );
    let report = tokio::time::timeout(Duration::from_secs(5), p.run(CancellationToken::new()))
        .await
        .expect("no deadlock")
        .unwrap();
    assert_eq!(rx.await.unwrap(), "1");
    assert_eq!(report.stage("Resolver").unwrap().items_in, 4);
}

#[tokio::test]
async fn units_with_futures_awaited_in_a_window_keep_batches_large() {
    // The Debian first stage's pattern: every unit carries a future, and the first stage awaits
    // the oldest one only once 1,000 are outstanding. A unit batches normally until its future
    // is awaited, so batches stay large (before, each of the 5,000 units cut its own batch).
    const UNITS: u64 = 5_000;
    const WINDOW: usize = 1_000;
    struct WindowedSource {
        resolved: Arc<AtomicU64>,
    }
    #[async_trait]
    impl Stage for WindowedSource {
        fn name(&self) -> String {
            "WindowedSource".into()
        }
        async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
            let mut window = std::collections::VecDeque::new();
            for i in 0..UNITS {
                let (dc, fut) = unit(i).with_future();
                io.output.put(dc).await?;
                window.push_back(fut);
                if window.len() >= WINDOW {
                    if let Some(oldest) = window.pop_front() {
                        oldest
                            .await
                            .map_err(|e| StageError::Plugin(e.to_string()))?;
                        self.resolved.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            while let Some(fut) = window.pop_front() {
                fut.await.map_err(|e| StageError::Plugin(e.to_string()))?;
                self.resolved.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        }
    }
    /// Takes batches, spending a little time on each (a database round trip), then resolves.
    struct SlowBatchResolver {
        sizes: mpsc::UnboundedSender<usize>,
    }
    #[async_trait]
    impl Stage for SlowBatchResolver {
        fn name(&self) -> String {
            "SlowBatchResolver".into()
        }
        async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
            while let Some(batch) = io.input.batch(io.ctx.batch_size).await? {
                let _ = self.sizes.send(batch.len());
                tokio::time::sleep(Duration::from_millis(2)).await;
                for mut dc in batch {
                    let content = Content {
                        id: uuid::Uuid::now_v7(),
                        pulp_type: "test.unit".into(),
                        natural_key: dc.content.natural_key().to_string(),
                        repo_key: String::new(),
                        data: serde_json::Value::Null,
                        pulp_created: chrono::Utc::now(),
                    };
                    dc.content = ContentState::Saved(content.clone());
                    dc.resolve(Ok(ResolvedContent {
                        content,
                        artifacts: vec![],
                    }));
                    io.output.put(dc).await?;
                }
            }
            Ok(())
        }
    }
    let resolved = Arc::new(AtomicU64::new(0));
    let (sizes_tx, mut sizes_rx) = mpsc::unbounded_channel();
    let p = create_pipeline(
        Box::new(WindowedSource {
            resolved: resolved.clone(),
        }),
        vec![Box::new(SlowBatchResolver { sizes: sizes_tx })],
        config(WINDOW),
    );
    tokio::time::timeout(Duration::from_secs(60), p.run(CancellationToken::new()))
        .await
        .expect("no deadlock")
        .unwrap();
    assert_eq!(resolved.load(Ordering::SeqCst), UNITS);
    let mut sizes = Vec::new();
    while let Ok(s) = sizes_rx.try_recv() {
        sizes.push(s);
    }
    assert_eq!(sizes.iter().sum::<usize>() as u64, UNITS);
    let batches = sizes.len();
    assert!(
        batches <= (UNITS as usize) / 20,
        "{batches} batches for {UNITS} units: awaited futures shrank the batches ({sizes:?})"
    );
    assert!(
        sizes.iter().max().copied().unwrap_or(0) >= 100,
        "no large batch at all: {sizes:?}"
    );
}

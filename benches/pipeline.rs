//! Pipeline overhead: 10,000 synthetic units through eight pass-through stages (half of them
//! batching), with the per-stage time measuring on and off. The two figures side by side give
//! the cost of measuring.

use std::time::Duration;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pulp_rs::declarative::DeclarativeContent;
use pulp_rs::models::UnsavedContent;
use pulp_rs::stages::{create_pipeline, PipelineConfig, Stage, StageError, StageIo};
use tokio_util::sync::CancellationToken;

const UNITS: u64 = 10_000;

struct Source(u64);

#[async_trait]
impl Stage for Source {
    fn name(&self) -> String {
        "Source".into()
    }
    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        for i in 0..self.0 {
            io.output
                .put(DeclarativeContent::new(
                    UnsavedContent {
                        pulp_type: "bench.unit".into(),
                        natural_key: i.to_string(),
                        repo_key: i.to_string(),
                        data: serde_json::Value::Null,
                    },
                    vec![],
                ))
                .await?;
        }
        Ok(())
    }
}

struct Pass {
    name: String,
    batching: bool,
}

#[async_trait]
impl Stage for Pass {
    fn name(&self) -> String {
        self.name.clone()
    }
    async fn run(self: Box<Self>, mut io: StageIo) -> Result<(), StageError> {
        if self.batching {
            while let Some(batch) = io.input.batch(io.ctx.batch_size).await? {
                io.output.put_all(batch).await?;
            }
        } else {
            while let Some(item) = io.input.next().await? {
                io.output.put(item).await?;
            }
        }
        Ok(())
    }
}

fn stages() -> Vec<Box<dyn Stage>> {
    (0..8)
        .map(|i| {
            Box::new(Pass {
                name: format!("Pass{i}"),
                batching: i % 2 == 0,
            }) as Box<dyn Stage>
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(UNITS));
    group.measurement_time(Duration::from_secs(8));
    for measure in [false, true] {
        let label = if measure { "measured" } else { "unmeasured" };
        group.bench_with_input(
            BenchmarkId::new("10k_units_8_stages", label),
            &measure,
            |b, &m| {
                b.to_async(&rt).iter(|| async move {
                    let config = PipelineConfig {
                        measure: m,
                        ..PipelineConfig::default()
                    };
                    create_pipeline(Box::new(Source(UNITS)), stages(), config)
                        .run(CancellationToken::new())
                        .await
                        .expect("pipeline runs")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

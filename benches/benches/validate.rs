//! Validation and static scheduling of million-task DAGs: a 1,000,000-task chain and a
//! tree reduction over 2^19 leaves (1,048,575 tasks).
//!
//! The DagSpec is built once, outside the timed loop; `iter_batched` with
//! `BatchSize::LargeInput` hands each iteration a fresh clone (validation consumes it), and
//! drops the compiled DAG outside the timed region.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rukong_client::workloads::Workload;
use rukong_core::dag::{Limits, validate};
use rukong_core::schedule::{DEFAULT_PROXY_FANOUT, schedule};
use rukong_executor::Registry;
use std::hint::black_box;
use std::time::Duration;

fn workloads() -> [(&'static str, Workload); 2] {
    [
        ("chain-1M", Workload::Chain { length: 1_000_000 }),
        ("tree-1M", Workload::TreeReduction { leaves: 1 << 19 }),
    ]
}

fn bench_validate(c: &mut Criterion) {
    let registry = Registry::with_builtins();
    let known = |f: &str| registry.contains(f);
    let limits = Limits::default();

    let mut group = c.benchmark_group("validate+schedule");
    for (label, w) in workloads() {
        let spec = w.generate();
        group.throughput(Throughput::Elements(spec.tasks.len() as u64));
        group.bench_function(label, |b| {
            b.iter_batched(
                || spec.clone(),
                |spec| {
                    let dag = validate(spec, &limits, &known).expect("valid DAG");
                    let sched = schedule(&dag, DEFAULT_PROXY_FANOUT);
                    (dag, sched)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    // The two halves apart: validation alone, and scheduling of an already compiled DAG.
    let mut group = c.benchmark_group("validate");
    for (label, w) in workloads() {
        let spec = w.generate();
        group.throughput(Throughput::Elements(spec.tasks.len() as u64));
        group.bench_function(label, |b| {
            b.iter_batched(
                || spec.clone(),
                |spec| validate(spec, &limits, &known).expect("valid DAG"),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    let mut group = c.benchmark_group("schedule");
    for (label, w) in workloads() {
        let dag = validate(w.generate(), &limits, &known).expect("valid DAG");
        group.throughput(Throughput::Elements(dag.len() as u64));
        group.bench_function(label, |b| {
            b.iter(|| schedule(black_box(&dag), DEFAULT_PROXY_FANOUT))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_validate
}
criterion_main!(benches);

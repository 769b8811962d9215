//! MessagePack encoding and decoding: [`Value`]s of three sizes (an int, a 1 KiB string, a
//! 64 KiB bytes value) and the [`JobPlan`] of a 65,536-leaf tree reduction (131,071 tasks),
//! which every executor fetches once per job.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rukong_client::workloads::Workload;
use rukong_core::dag::{Limits, validate};
use rukong_core::schedule::schedule;
use rukong_core::{JobConfig, JobId, JobPlan, Value};
use rukong_executor::Registry;
use std::hint::black_box;
use std::time::Duration;

fn bench_values(c: &mut Criterion) {
    let values = [
        ("int", Value::Int(1_234_567_890)),
        ("str-1KiB", Value::Str("x".repeat(1024))),
        (
            "bytes-64KiB",
            Value::Bytes(bytes::Bytes::from(
                (0..64 * 1024)
                    .map(|i| (i * 31 % 256) as u8)
                    .collect::<Vec<u8>>(),
            )),
        ),
    ];
    let mut group = c.benchmark_group("value");
    for (label, v) in &values {
        let encoded = v.to_msgpack();
        assert_eq!(&Value::from_msgpack(&encoded).expect("decodes"), v);
        group.throughput(Throughput::Bytes(encoded.len() as u64));
        group.bench_function(format!("encode/{label}"), |b| {
            b.iter(|| black_box(v).to_msgpack())
        });
        group.bench_function(format!("decode/{label}"), |b| {
            b.iter(|| Value::from_msgpack(black_box(&encoded)).expect("decodes"))
        });
    }
    group.finish();
}

fn bench_plan(c: &mut Criterion) {
    let registry = Registry::with_builtins();
    let config = JobConfig::default();
    let dag = validate(
        Workload::TreeReduction { leaves: 65_536 }.generate(),
        &Limits::default(),
        &|f| registry.contains(f),
    )
    .expect("valid DAG");
    let plan = JobPlan {
        job: JobId::generate(),
        schedule: schedule(&dag, config.proxy_fanout),
        dag,
        config,
    };
    let encoded = plan.to_msgpack();
    assert!(!encoded.is_empty());
    let back = JobPlan::from_msgpack(&encoded).expect("decodes");
    assert_eq!(back.dag.len(), plan.dag.len());

    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    group.bench_function("encode/tree-65536", |b| {
        b.iter(|| black_box(&plan).to_msgpack())
    });
    group.bench_function("decode/tree-65536", |b| {
        b.iter(|| JobPlan::from_msgpack(black_box(&encoded)).expect("decodes"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_values, bench_plan
}
criterion_main!(benches);

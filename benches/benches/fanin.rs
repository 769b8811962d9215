//! In-memory fan-in records: `MemoryStore::record_arrivals` throughput on a stored plan whose
//! sink waits for 100,000 parents (fan-out/fan-in W = 100,000).
//!
//! - `first/single`: one first-time arrival per call (the path that counts a new parent);
//! - `first/batch-64`: 64 first-time arrivals per call;
//! - `duplicate/single`: one repeated arrival per call (the idempotent retry path).
//!
//! First-time arrivals run out after W of them, so the job's records are recreated (delete +
//! put) outside the timed region whenever a pass over the parents ends. Each sample runs in
//! one `block_on`: the store's futures complete without suspending, so the awaits cost no
//! scheduler round trip.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rukong_client::workloads::Workload;
use rukong_core::dag::{Limits, validate};
use rukong_core::schedule::schedule;
use rukong_core::store::memory::MemoryStore;
use rukong_core::store::{ArrivalReq, FanInStore, JobStore};
use rukong_core::{JobConfig, JobId, JobPlan, TaskIdx};
use rukong_executor::Registry;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const WIDTH: usize = 100_000;
const BATCH: usize = 64;

struct Fixture {
    rt: tokio::runtime::Runtime,
    store: MemoryStore,
    plan: Arc<JobPlan>,
    /// Every parent's arrival at the sink, in position order.
    reqs: Vec<ArrivalReq>,
}

impl Fixture {
    fn new() -> Fixture {
        let registry = Registry::with_builtins();
        let config = JobConfig::default();
        let dag = validate(
            Workload::FanoutFanin { width: WIDTH }.generate(),
            &Limits::default(),
            &|f| registry.contains(f),
        )
        .expect("valid DAG");
        let sink: TaskIdx = dag.lookup("sink").expect("the DAG has a sink");
        let needed = dag.needed(sink);
        assert_eq!(needed as usize, WIDTH);
        let reqs = (0..needed)
            .map(|pos| ArrivalReq {
                child: sink,
                pos,
                needed,
            })
            .collect();
        let plan = Arc::new(JobPlan {
            job: JobId::generate(),
            schedule: schedule(&dag, config.proxy_fanout),
            dag,
            config,
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let f = Fixture {
            rt,
            store: MemoryStore::new(),
            plan,
            reqs,
        };
        // Sanity: a full pass completes the fan-in exactly once, on the last arrival.
        f.rt.block_on(async {
            f.reset().await;
            let job = &f.plan.job;
            let mut completions = 0;
            for r in &f.reqs {
                let a = f.store.record_arrivals(job, std::slice::from_ref(r)).await;
                completions += a
                    .expect("recorded")
                    .iter()
                    .filter(|a| a.completes())
                    .count();
            }
            assert_eq!(completions, 1);
        });
        f
    }

    /// Recreates the job's fan-in records, all empty.
    async fn reset(&self) {
        let job = &self.plan.job;
        self.store.delete_job(job).await.expect("delete");
        self.store.put_job(self.plan.clone()).await.expect("put");
    }

    /// Times `iters` calls, each recording `per_call` first-time arrivals; records are
    /// recreated, untimed, whenever a pass over all parents ends.
    fn time_first_arrivals(&self, iters: u64, per_call: usize) -> Duration {
        let job = &self.plan.job;
        let calls: Vec<&[ArrivalReq]> = self.reqs.chunks_exact(per_call).collect();
        self.rt.block_on(async {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                self.reset().await;
                let n = left.min(calls.len());
                let start = Instant::now();
                for reqs in &calls[..n] {
                    let a = self.store.record_arrivals(job, reqs).await;
                    black_box(a.expect("recorded"));
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    }

    /// Times `iters` calls of one arrival each, all of parents that already arrived.
    fn time_duplicate_arrivals(&self, iters: u64) -> Duration {
        let job = &self.plan.job;
        self.rt.block_on(async {
            self.reset().await;
            for reqs in self.reqs.chunks(BATCH) {
                self.store
                    .record_arrivals(job, reqs)
                    .await
                    .expect("recorded");
            }
            let mut cycle = self.reqs.iter().cycle();
            let start = Instant::now();
            for _ in 0..iters {
                let r = cycle.next().expect("non-empty");
                let a = self
                    .store
                    .record_arrivals(job, std::slice::from_ref(r))
                    .await;
                black_box(a.expect("recorded"));
            }
            start.elapsed()
        })
    }
}

fn bench_fanin(c: &mut Criterion) {
    let f = Fixture::new();
    let mut group = c.benchmark_group("record_arrivals");
    group.throughput(Throughput::Elements(1));
    group.bench_function("first/single", |b| {
        b.iter_custom(|iters| f.time_first_arrivals(iters, 1))
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("first/batch-64", |b| {
        b.iter_custom(|iters| f.time_first_arrivals(iters, BATCH))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("duplicate/single", |b| {
        b.iter_custom(|iters| f.time_duplicate_arrivals(iters))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_fanin
}
criterion_main!(benches);

//! No job waits for ever: the engine notices a job with nothing moving and nothing queued,
//! replays it from its sources (exact, since every effect is idempotent), and past its
//! replays fails it with an error that names what it waits on. A slow task is never taken
//! for a stall: its invocation stays pending while it runs.
//!
//! The lost work is made by hand: the test takes one source invocation off the queue and
//! acknowledges it without running it, as if its executor had lost every effect.

use rukong_client::JobBuilder;
use rukong_core::messages::JobState;
use rukong_core::store::memory::MemoryStore;
use rukong_core::store::{InvocationQueue, Store};
use rukong_core::{DagSpec, ExecClass, ExecutorId, Value};
use rukong_engine::{Engine, EngineConfig, JobReport, StallConfig};
use rukong_executor::{ExecutorConfig, ExecutorHandle, Registry};
use rukong_kvstore_proxy::LocalProxy;
use std::sync::Arc;
use std::time::{Duration, Instant};

type TestEngine = Engine<MemoryStore, LocalProxy<MemoryStore>>;

fn engine(store: &Arc<MemoryStore>, stall: StallConfig) -> TestEngine {
    let config = EngineConfig {
        stall,
        ..EngineConfig::default()
    };
    let names = Registry::with_builtins()
        .names()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    Engine::new(
        store.clone(),
        Arc::new(LocalProxy::new(store.clone())),
        config,
        names,
    )
}

fn executor(store: &Arc<MemoryStore>) -> ExecutorHandle {
    let mut c = ExecutorConfig::new(2);
    c.visibility_timeout = Some(Duration::from_millis(300));
    c.reclaim_every = Duration::from_millis(100);
    rukong_executor::start(
        c,
        store.clone(),
        Arc::new(LocalProxy::new(store.clone())),
        Arc::new(Registry::with_builtins()),
    )
    .expect("executor starts")
}

/// `leaves` constants 1..=leaves summed by a binary tree of `add`s (the root is `root`).
fn tree(leaves: i64) -> DagSpec {
    let mut b = JobBuilder::new("stall-tree");
    let mut level: Vec<String> = Vec::new();
    for i in 1..=leaves {
        b.task(format!("c{i}"), "const").arg(i);
        level.push(format!("c{i}"));
    }
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        level = level
            .chunks(2)
            .enumerate()
            .map(|(j, p)| {
                let id = if p.len() == 2 && level.len() == 2 {
                    "root".to_owned()
                } else {
                    format!("a{depth}_{j}")
                };
                b.task(id.as_str(), "add")
                    .deps(p.iter().map(String::as_str));
                id
            })
            .collect();
    }
    b.build()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Takes one invocation off the queue and acknowledges it unrun: its work is lost.
async fn lose_one(store: &MemoryStore) {
    let thief = ExecutorId::new("thief");
    let got = store
        .pull(ExecClass::Cpu, &thief, 1, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "a source invocation is queued");
    store.ack(ExecClass::Cpu, &[got[0].id]).await.unwrap();
}

async fn submit_and_wait<S: Store>(
    engine: &Engine<S, LocalProxy<S>>,
    spec: DagSpec,
    before_executor: impl std::future::Future<Output = ()>,
    start_executor: impl FnOnce() -> ExecutorHandle,
) -> (JobReport, ExecutorHandle) {
    let t0 = Instant::now();
    let job = engine.submit(spec).await.unwrap();
    before_executor.await;
    let exec = start_executor();
    let report = tokio::time::timeout(Duration::from_secs(30), engine.wait(&job, t0, None, |_| {}))
        .await
        .expect("the job ended within 30 s")
        .unwrap();
    (report, exec)
}

#[test]
fn a_job_whose_invocation_was_lost_is_replayed_from_its_sources_and_finishes_exactly() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let e = engine(
        &store,
        StallConfig {
            after: Duration::from_millis(500),
            max_redrives: 2,
        },
    );
    let (report, exec) = rt.block_on(submit_and_wait(&e, tree(16), lose_one(&store), || {
        executor(&store)
    }));
    assert_eq!(report.state, JobState::Succeeded, "{report:?}");
    assert_eq!(report.output("root"), Some(&Value::Int(16 * 17 / 2)));
    assert_eq!(report.stats.redrives, 1, "one replay: {:?}", report.stats);
    exec.stop();
}

#[test]
fn a_stalled_job_past_its_replays_fails_naming_what_it_waits_on() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let e = engine(
        &store,
        StallConfig {
            after: Duration::from_millis(500),
            max_redrives: 0,
        },
    );
    let t0 = Instant::now();
    let (report, exec) = rt.block_on(submit_and_wait(&e, tree(16), lose_one(&store), || {
        executor(&store)
    }));
    let JobState::Failed { task, error } = &report.state else {
        panic!("the stalled job fails: {report:?}");
    };
    assert!(
        error.starts_with("stalled: no progress for 0.5 s"),
        "{error}"
    );
    // The lost invocation held the first leaf (16 sources over 2 slots go in invocations
    // of one), so a1_0 waits on it, and the fan-ins above on a1_0.
    assert!(
        error.contains("waiting fan-ins: a1_0 (1 of 2 dependencies), a2_0 (1 of 2 dependencies)"),
        "{error}"
    );
    assert!(error.contains("unfinished sinks: root"), "{error}");
    assert_eq!(task.as_str(), "a1_0");
    assert!(t0.elapsed() < Duration::from_secs(10));
    exec.stop();
}

#[test]
fn a_slow_task_is_not_a_stall() {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let e = engine(
        &store,
        StallConfig {
            after: Duration::from_millis(200),
            max_redrives: 0,
        },
    );
    let mut b = JobBuilder::new("slow");
    b.task("s", "sleep").arg(1500);
    let (report, exec) = rt.block_on(submit_and_wait(&e, b.build(), async {}, || {
        executor(&store)
    }));
    assert_eq!(report.state, JobState::Succeeded, "{report:?}");
    assert_eq!(report.stats.redrives, 0);
    exec.stop();
}

//! Property test: random DAGs over the built-in functions, run embedded with [`Local`], checked
//! against a plain sequential reference evaluator written here (it shares no code with the
//! executor's functions).
//!
//! Every generated DAG runs under two deployments:
//! - `default`: slots 2, the default inline limit (64 KiB) and proxy fan-out (F = 10);
//! - `stress`: slots 3, inline limit 16 bytes (nearly every output goes through the object
//!   store) and F = 2 (every fan-out goes through the proxy).
//!
//! The generator makes 1 to 60 tasks over const, identity, add, mul, concat, len, blob and
//! sha256; task i depends only on earlier tasks, so generation order is topological, and the
//! file order is then shuffled. Tasks are mostly well-typed (int / string / bytes); some DAGs
//! carry ill-typed tasks and some add/mul chains may overflow, so failures are exercised too.
//! Blobs are mostly tiny, some straddle the 64 KiB inline limit, a few reach 300 KB. Hubs and
//! wide layers make fan-outs and fan-ins of 10 or more.
//!
//! A third test runs the same DAGs through a store that loses requests and replies (see
//! [`Faulty`]), over the in-memory store and over a real Redis: the results must be the
//! same as without faults, and no job may hang.
//!
//! Cases: 64 by default; set `PROPTEST_CASES` to change it (a quarter of them for the
//! fault test).

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use rukong_client::{DagSpec, JobReport, Local, LocalConfig};
use rukong_core::dag::TaskSpec;
use rukong_core::messages::JobState;
use rukong_core::store::Store;
use rukong_core::testing::{FaultRates, Faulty, RedisServer};
use rukong_core::{TaskId, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A job that takes longer than this is reported as hung.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

#[path = "proptest_random/generator.rs"]
mod generator;
#[path = "proptest_random/reference.rs"]
mod reference;

use generator::*;
use reference::*;

/// Checks a job's report against the reference. `Ok(true)` when the job was expected to
/// succeed.
fn check_report(
    label: &str,
    spec: &DagSpec,
    reference: &HashMap<TaskId, Outcome>,
    report: &JobReport,
) -> Result<bool, TestCaseError> {
    let direct: Vec<&TaskId> = spec
        .tasks
        .iter()
        .filter(|t| matches!(reference[&t.id], Outcome::Failed(_)))
        .map(|t| &t.id)
        .collect();
    if direct.is_empty() {
        prop_assert_eq!(
            &report.state,
            &JobState::Succeeded,
            "[{}] the reference says every task succeeds\nDAG:\n{}",
            label,
            spec.to_yaml()
        );
        let want = expected_output_ids(spec);
        let got: Vec<TaskId> = report.outputs.iter().map(|(t, _)| t.clone()).collect();
        prop_assert_eq!(
            &got,
            &want,
            "[{}] output ids (in order) differ\nDAG:\n{}",
            label,
            spec.to_yaml()
        );
        for (id, v) in &report.outputs {
            let Outcome::Ok(expected) = &reference[id] else {
                unreachable!("no task failed")
            };
            prop_assert!(
                expected.matches(v),
                "[{}] output of {} differs: expected {}, got {}\nDAG:\n{}",
                label,
                id,
                expected.show(),
                show_value(v),
                spec.to_yaml()
            );
        }
        Ok(true)
    } else {
        match &report.state {
            JobState::Failed { task, error } => {
                prop_assert!(
                    direct.contains(&task),
                    "[{}] the job failed at {} ({}), but the reference says the failing \
                     tasks are {:?}\nDAG:\n{}",
                    label,
                    task,
                    error,
                    direct,
                    spec.to_yaml()
                );
            }
            other => {
                let why: Vec<String> = direct
                    .iter()
                    .map(|id| match &reference[*id] {
                        Outcome::Failed(e) => format!("{id}: {e}"),
                        _ => String::new(),
                    })
                    .collect();
                let outputs: Vec<String> = report
                    .outputs
                    .iter()
                    .map(|(t, v)| format!("{t}={}", show_value(v)))
                    .collect();
                return Err(TestCaseError::fail(format!(
                    "[{label}] expected the job to fail (reference: {why:?}), got {other:?} \
                     with outputs {outputs:?}\nDAG:\n{}",
                    spec.to_yaml()
                )));
            }
        }
        Ok(false)
    }
}

fn run_and_check<S: Store>(
    local: &Local<S>,
    label: &str,
    spec: &DagSpec,
    reference: &HashMap<TaskId, Outcome>,
) -> Result<bool, TestCaseError> {
    let report = local.run_with(spec.clone(), Some(JOB_TIMEOUT), |_| {});
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "[{label}] the run did not produce a report: {e}\nDAG:\n{}",
                spec.to_yaml()
            )));
        }
    };
    DUPLICATES.fetch_add(u64::from(report.stats.duplicates), Ordering::Relaxed);
    check_report(label, spec, reference, &report)
}

/// Tasks that walks dropped as duplicates (an input already released by all its readers),
/// over every run of this test binary.
static DUPLICATES: AtomicU64 = AtomicU64::new(0);

// ----------------------------------------------------------------------------------------
// Deployments
// ----------------------------------------------------------------------------------------

fn default_local() -> Local {
    let config = LocalConfig {
        slots: 2,
        ..LocalConfig::default()
    };
    Local::start(config).expect("start the default deployment")
}

/// Inline limit 16 bytes (almost everything goes through the object store) and F = 2 (every
/// fan-out goes through the proxy).
fn stress_local() -> Local {
    let mut config = LocalConfig {
        slots: 3,
        ..LocalConfig::default()
    };
    config.engine.job.inline_limit = 16;
    config.engine.job.proxy_fanout = 2;
    Local::start(config).expect("start the stress deployment")
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

#[test]
fn random_dags_match_the_reference() {
    let default = default_local();
    let stress = stress_local();
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 400,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let succeeded = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let wide_out = AtomicUsize::new(0);
    let wide_in = AtomicUsize::new(0);
    let large_out = AtomicUsize::new(0);
    let started = Instant::now();
    let result = runner.run(&dag_gene(), |g| {
        let case = build(&g);
        let reference = evaluate(&case.topo);
        let (max_out, max_in) = widest(&case.topo);
        if max_out >= 10 {
            wide_out.fetch_add(1, Ordering::Relaxed);
        }
        if max_in >= 10 {
            wide_in.fetch_add(1, Ordering::Relaxed);
        }
        let large = case
            .topo
            .iter()
            .any(|t| matches!(&reference[&t.id], Outcome::Ok(R::Bytes(b)) if b.len() > 64 * 1024));
        if large {
            large_out.fetch_add(1, Ordering::Relaxed);
        }
        let ok_a = run_and_check(&default, "default", &case.spec, &reference)?;
        let ok_b = run_and_check(&stress, "stress", &case.spec, &reference)?;
        prop_assert_eq!(ok_a, ok_b);
        if ok_a {
            succeeded.fetch_add(1, Ordering::Relaxed);
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    eprintln!(
        "random DAGs: {} succeeded, {} failed as predicted ({} with a fan-out >= 10, {} with a \
         fan-in >= 10, {} with bytes over 64 KiB), in {:.1?}",
        succeeded.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        wide_out.load(Ordering::Relaxed),
        wide_in.load(Ordering::Relaxed),
        large_out.load(Ordering::Relaxed),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ----------------------------------------------------------------------------------------
// Lost requests and lost replies
// ----------------------------------------------------------------------------------------

/// One store call in 40 fails before it is made, one in 40 after (its reply lost); a
/// failed invocation is redelivered after 300 ms.
fn faulty_config(seed: u64) -> (LocalConfig, FaultRates) {
    let mut config = LocalConfig {
        slots: 3,
        visibility_timeout: Some(Duration::from_millis(300)),
        max_deliveries: 1000,
        ..LocalConfig::default()
    };
    config.engine.job.inline_limit = 64;
    config.engine.job.proxy_fanout = 4;
    // A stall fails the job at once: with completer-stable fan-ins nothing may stall, and
    // a replay would hide it.
    config.engine.stall.after = Duration::from_secs(5);
    config.engine.stall.max_redrives = 0;
    let rates = FaultRates {
        seed,
        before_one_in: 40,
        after_one_in: 40,
    };
    (config, rates)
}

fn fault_totals<S: Store>(label: &str, f: &Faulty<S>) -> (u64, u64, u64) {
    let t = f.totals();
    eprintln!(
        "{label}: {} store calls, {} failed before, {} replies lost",
        t.0, t.1, t.2
    );
    t
}

#[test]
fn random_dags_match_the_reference_when_requests_and_replies_are_lost() {
    let (config, rates) = faulty_config(11);
    let memory = Arc::new(Faulty::new(
        Arc::new(rukong_core::store::memory::MemoryStore::new()),
        rates,
    ));
    let on_memory = Local::with_store(config, memory.clone()).expect("start on memory");

    // The Redis store's connection tasks run on a runtime of their own, which lives as long
    // as the test.
    let server = RedisServer::start();
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let redis = io
        .block_on(rukong_core::store::redis::RedisStore::connect(
            rukong_core::store::redis::RedisConfig {
                url: server.url(),
                ..Default::default()
            },
        ))
        .expect("connect to the test Redis");
    let (config, rates) = faulty_config(12);
    let redis = Arc::new(Faulty::new(Arc::new(redis), rates));
    let on_redis = Local::with_store(config, redis.clone()).expect("start on Redis");

    let mut runner = TestRunner::new(ProptestConfig {
        cases: (cases() / 4).max(4),
        failure_persistence: None,
        max_shrink_iters: 50,
        ..ProptestConfig::default()
    });
    let started = Instant::now();
    let result = runner.run(&dag_gene(), |g| {
        let case = build(&g);
        let reference = evaluate(&case.topo);
        let ok_a = run_and_check(&on_memory, "faulty memory", &case.spec, &reference)?;
        let ok_b = run_and_check(&on_redis, "faulty redis", &case.spec, &reference)?;
        prop_assert_eq!(ok_a, ok_b);
        Ok(())
    });
    eprintln!("lost-reply cases in {:.1?}", started.elapsed());
    let m = fault_totals("faulty memory", &memory);
    let r = fault_totals("faulty redis", &redis);
    eprintln!(
        "duplicate walks of tasks dropped on released inputs: {}",
        DUPLICATES.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        m.1 > 0 && m.2 > 0 && r.1 > 0 && r.2 > 0,
        "faults were injected"
    );
    drop(on_redis);
    drop(io);
}

// ----------------------------------------------------------------------------------------
// A fixed DAG
// ----------------------------------------------------------------------------------------

/// Fan-out of 12 (crosses F = 10), a fan-in of those 12, a chain of 5, and a 100 KB blob
/// feeding sha256 and len (and a fan-out of 12 of its own).
fn fixed_dag() -> Vec<TaskSpec> {
    let task = |id: &str, func: &str, deps: &[&str], args: Vec<Value>| TaskSpec {
        id: TaskId::from(id),
        func: func.to_owned(),
        deps: deps.iter().map(|&d| TaskId::from(d)).collect(),
        args,
        ..TaskSpec::default()
    };
    let mut tasks = vec![task("src", "const", &[], vec![Value::Int(3)])];
    let kids: Vec<String> = (0..12).map(|i| format!("kid{i}")).collect();
    for (i, k) in kids.iter().enumerate() {
        tasks.push(task(k, "add", &["src"], vec![Value::Int(i as i64)]));
    }
    let kid_refs: Vec<&str> = kids.iter().map(String::as_str).collect();
    tasks.push(task("sum", "add", &kid_refs, vec![]));
    tasks.push(task("ch1", "mul", &["sum"], vec![Value::Int(2)]));
    tasks.push(task("ch2", "add", &["ch1"], vec![Value::Int(-1)]));
    tasks.push(task("ch3", "identity", &["ch2"], vec![]));
    tasks.push(task("ch4", "mul", &["ch3"], vec![Value::Int(3)]));
    tasks.push(task("ch5", "add", &["ch4"], vec![Value::Int(7)]));
    tasks.push(task(
        "big",
        "blob",
        &[],
        vec![Value::Int(100_000), Value::Int(7)],
    ));
    tasks.push(task("big_sha", "sha256", &["big"], vec![]));
    tasks.push(task("big_len", "len", &["big"], vec![]));
    let hashes: Vec<String> = (0..12).map(|i| format!("h{i}")).collect();
    for (i, h) in hashes.iter().enumerate() {
        tasks.push(task(
            h,
            "sha256",
            &["big"],
            vec![Value::Str(format!("salt{i}"))],
        ));
    }
    let hash_refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
    tasks.push(task("all_hashes", "concat", &hash_refs, vec![]));
    tasks.push(task("all_len", "len", &["all_hashes"], vec![]));
    tasks.push(task("twice", "concat", &["big", "big"], vec![]));
    tasks.push(task("twice_len", "len", &["twice"], vec![]));
    tasks
}

#[test]
fn fixed_dag_matches_the_reference() {
    let topo = fixed_dag();
    let reference = evaluate(&topo);
    // The reference itself, checked by hand.
    let big: Vec<u8> = (0..100_000u64)
        .map(|i| ((i * 31 + 7) % 256) as u8)
        .collect();
    let expect = |id: &str| match &reference[&TaskId::from(id)] {
        Outcome::Ok(v) => v.clone(),
        other => panic!("reference: {id} did not succeed: {other:?}"),
    };
    // sum = sum of (3 + i) for i in 0..12 = 102; chain: 204, 203, 203, 609, 616.
    assert_eq!(expect("sum"), R::Int(102));
    assert_eq!(expect("ch5"), R::Int(616));
    assert_eq!(expect("big_len"), R::Int(100_000));
    let hex: String = Sha256::digest(&big)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(expect("big_sha"), R::Str(hex));
    assert_eq!(expect("all_len"), R::Int(12 * 64));
    assert_eq!(expect("twice_len"), R::Int(200_000));

    let spec = DagSpec {
        name: "fixed".into(),
        tasks: topo.clone(),
        outputs: None,
    };
    let sinks: Vec<&str> = vec!["ch5", "big_sha", "big_len", "all_len", "twice_len"];
    for (label, local) in [("default", default_local()), ("stress", stress_local())] {
        let report = local
            .run_with(spec.clone(), Some(JOB_TIMEOUT), |_| {})
            .unwrap_or_else(|e| panic!("[{label}] run failed: {e}"));
        assert_eq!(report.state, JobState::Succeeded, "[{label}]");
        let ids: Vec<&str> = report.outputs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(ids, sinks, "[{label}] outputs");
        for id in &sinks {
            let got = report.output(id).expect("output present");
            let want = expect(id);
            assert!(
                want.matches(got),
                "[{label}] {id}: expected {}, got {}",
                want.show(),
                show_value(got)
            );
        }
        // Also ask for inner tasks explicitly, large ones included.
        let mut spec2 = spec.clone();
        let wanted = ["big", "sum", "kid11", "all_hashes", "twice", "ch3"];
        spec2.outputs = Some(wanted.iter().map(|&s| TaskId::from(s)).collect());
        let report = local
            .run_with(spec2, Some(JOB_TIMEOUT), |_| {})
            .unwrap_or_else(|e| panic!("[{label}] run failed: {e}"));
        assert_eq!(report.state, JobState::Succeeded, "[{label}]");
        let ids: Vec<&str> = report.outputs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(ids, wanted, "[{label}] explicit outputs");
        for id in wanted {
            let got = report.output(id).expect("output present");
            let want = expect(id);
            assert!(
                want.matches(got),
                "[{label}] {id}: expected {}, got {}",
                want.show(),
                show_value(got)
            );
        }
    }
}

//! Task failures, panics, retries, timeouts, and heavy work off the slot threads.

use rukong_client::{JobBuilder, Local, LocalConfig};
use rukong_core::Value;
use rukong_core::messages::JobState;
use rukong_executor::Registry;
use rukong_executor::functions::{FnError, Function, WarmState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

fn local_with(registry: Registry, slots: usize, threads: Option<usize>) -> Local {
    Local::start(LocalConfig {
        slots,
        executor_threads: threads,
        registry,
        ..LocalConfig::default()
    })
    .unwrap()
}

fn failed(state: &JobState) -> (&str, &str) {
    match state {
        JobState::Failed { task, error } => (task.as_str(), error.as_str()),
        s => panic!("expected a failure, got {s:?}"),
    }
}

#[test]
fn a_failing_task_fails_the_job_with_its_id_and_message() {
    let local = Local::start(LocalConfig::default()).unwrap();
    let mut b = JobBuilder::new("f");
    b.task("a", "const").arg(1);
    b.task("boom", "fail").dep("a").arg("kaboom");
    b.task("after", "identity").dep("boom");
    let r = local.run(b.build()).unwrap();
    assert_eq!(failed(&r.state), ("boom", "kaboom"));
    assert!(r.outputs.is_empty());

    // Integer overflow is a task error too.
    let mut b = JobBuilder::new("overflow");
    b.task("big", "const").arg(i64::MAX);
    b.task("sum", "add").dep("big").arg(1);
    let r = local.run(b.build()).unwrap();
    let (task, error) = failed(&r.state);
    assert_eq!(task, "sum");
    assert!(error.contains("overflow"), "{error}");
}

#[test]
fn a_panicking_function_fails_the_job_and_the_deployment_keeps_working() {
    let mut registry = Registry::with_builtins();
    registry.register_fn("explode", |_| panic!("wires crossed"));
    let local = local_with(registry, 2, None);
    let mut b = JobBuilder::new("p");
    b.task("x", "explode");
    for _ in 0..3 {
        let r = local.run(b.clone().build()).unwrap();
        let (task, error) = failed(&r.state);
        assert_eq!(task, "x");
        assert!(error.contains("panicked: wires crossed"), "{error}");
    }
    let mut ok = JobBuilder::new("ok");
    ok.task("c", "const").arg(5);
    assert_eq!(
        local.run(ok.build()).unwrap().output("c"),
        Some(&Value::Int(5))
    );
}

#[test]
fn retries_rerun_a_failing_task() {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::with_builtins();
    let c = calls.clone();
    // Fails on its first two calls, then succeeds.
    registry.register_fn("flaky", move |_| {
        if c.fetch_add(1, Ordering::SeqCst) < 2 {
            Err(FnError::new("transient"))
        } else {
            Ok(Value::Int(42))
        }
    });
    let local = local_with(registry, 1, None);
    let mut b = JobBuilder::new("r");
    b.task("f", "flaky").retries(2);
    assert_eq!(
        local.run(b.build()).unwrap().output("f"),
        Some(&Value::Int(42))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    calls.store(0, Ordering::SeqCst);
    let mut b = JobBuilder::new("r1");
    b.task("f", "flaky").retries(1);
    let r = local.run(b.build()).unwrap();
    assert_eq!(failed(&r.state), ("f", "transient"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_heavy_task_over_its_timeout_fails() {
    let local = Local::start(LocalConfig::default()).unwrap();
    let mut b = JobBuilder::new("t");
    b.task("nap", "sleep").arg(5_000).timeout_ms(100);
    let t0 = std::time::Instant::now();
    let r = local.run(b.build()).unwrap();
    assert_eq!(failed(&r.state), ("nap", "timed out after 100 ms"));
    assert!(
        t0.elapsed() < Duration::from_secs(4),
        "the job did not wait for the sleep"
    );
}

/// A latch: `Wait` (heavy) blocks until `Signal` (light) opens it, or fails after 10 s.
#[derive(Clone, Default)]
struct Latch(Arc<(Mutex<bool>, Condvar)>);

struct Wait(Latch);
struct Signal(Latch);

impl Function for Wait {
    fn call(&self, _: Option<&WarmState>, _: Vec<Value>) -> Result<Value, FnError> {
        let (lock, cv) = &*(self.0).0;
        let open = lock.lock().unwrap();
        let (open, _) = cv
            .wait_timeout_while(open, Duration::from_secs(10), |o| !*o)
            .unwrap();
        if *open {
            Ok(Value::Str("released".into()))
        } else {
            Err(FnError::new("never released"))
        }
    }
    fn is_heavy(&self, _: &[Value]) -> bool {
        true
    }
}

impl Function for Signal {
    fn call(&self, _: Option<&WarmState>, _: Vec<Value>) -> Result<Value, FnError> {
        let (lock, cv) = &*(self.0).0;
        *lock.lock().unwrap() = true;
        cv.notify_all();
        Ok(Value::Str("signalled".into()))
    }
}

/// Two slots share ONE thread. The heavy task blocks until a light task at the end of a
/// sibling chain signals it: that only works if heavy work leaves the slot's thread.
#[test]
fn heavy_work_runs_off_the_slot_thread() {
    let latch = Latch::default();
    let mut registry = Registry::with_builtins();
    registry.register("wait", Wait(latch.clone()));
    registry.register("signal", Signal(latch));
    let local = local_with(registry, 2, Some(1));
    let mut b = JobBuilder::new("latch");
    b.task("src", "const").arg(0);
    b.task("w", "wait").dep("src");
    b.task("c0", "add").dep("src").arg(1);
    for i in 1..200 {
        b.task(format!("c{i}"), "add")
            .dep(format!("c{}", i - 1))
            .arg(1);
    }
    b.task("sig", "signal").dep("c199");
    let r = local.run(b.build()).unwrap();
    assert_eq!(r.state, JobState::Succeeded, "{:?}", r.state);
    assert_eq!(r.output("w"), Some(&Value::Str("released".into())));
}

#[test]
fn warm_state_is_built_once_per_slot_and_counted_as_a_cold_start() {
    struct Model(Arc<AtomicUsize>);
    impl Function for Model {
        fn init(
            &self,
            _: &rukong_executor::functions::InitCtx,
        ) -> Result<Option<WarmState>, FnError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Arc::new(100i64)))
        }
        fn call(&self, state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
            let w = state
                .and_then(|s| s.downcast_ref::<i64>())
                .ok_or_else(|| FnError::new("no weights"))?;
            match inputs.as_slice() {
                [Value::Int(x)] => Ok(Value::Int(x + w)),
                _ => Err(FnError::new("one int")),
            }
        }
    }
    let inits = Arc::new(AtomicUsize::new(0));
    let mut registry = Registry::with_builtins();
    registry.register("model", Model(inits.clone()));
    let local = local_with(registry, 1, None);
    let mut b = JobBuilder::new("warm");
    b.task("x", "const").arg(1);
    for i in 0..50 {
        b.task(format!("m{i}"), "model").dep("x");
    }
    let r = local.run(b.clone().build()).unwrap();
    assert_eq!(r.state, JobState::Succeeded);
    assert_eq!(r.output("m7"), Some(&Value::Int(101)));
    assert_eq!(inits.load(Ordering::SeqCst), 1, "one slot, one init");
    let again = local.run(b.build()).unwrap();
    assert_eq!(
        inits.load(Ordering::SeqCst),
        1,
        "still warm for the next job"
    );
    assert_eq!(again.stats.cold_starts, 0);
}

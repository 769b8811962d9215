//! The template's functions through a whole engine, in embedded mode (one process, no
//! Redis): the example DAGs give their exact results, `init` runs once per slot, and on a
//! (simulated) GPU executor `weighted_sum`'s calls arrive in bundles.

use custom_executor::weighted_sum::WeightedSum;
use rukong_client::{DagSpec, JobReport, Local, LocalConfig};
use rukong_core::Value;
use rukong_core::messages::JobState;
use rukong_executor::bundling::BundleSettings;
use rukong_executor::device::bundle::{BundleConfig, BundleSize};
use rukong_executor::device::{DiscoverOptions, SimulatedConfig, discover};
use rukong_executor::functions::{InitCtx, WarmState};
use rukong_executor::{FnError, Function, GpuConfig};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn spec(file: &str) -> DagSpec {
    DagSpec::from_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
}

fn ok(r: &JobReport) {
    assert_eq!(r.state, JobState::Succeeded, "{r:?}");
}

#[test]
fn the_example_dag_gives_its_exact_outputs() {
    let local = Local::start(LocalConfig {
        slots: 2,
        registry: custom_executor::registry(),
        ..LocalConfig::default()
    })
    .unwrap();
    let r = local.run(spec("dag.yaml")).unwrap();
    ok(&r);
    assert_eq!(r.output("loud"), Some(&Value::Str("HELLO, RUKONG!".into())));
    assert_eq!(r.output("primes"), Some(&Value::Int(7919 + 104_729)));
    assert_eq!(r.output("score"), Some(&Value::Int(14)));
    assert_eq!(
        r.output("total"),
        Some(&Value::Int(14 + 7919 + 104_729 + 14))
    );
    assert!(
        r.stats.cold_starts >= 2,
        "nth_prime and weighted_sum ran init: {:?}",
        r.stats
    );
    // The slots are warm now: the same DAG again runs no init at all.
    let again = local.run(spec("dag.yaml")).unwrap();
    ok(&again);
    assert_eq!(again.output("total"), r.output("total"));
    // At most one init per function (two have state) and slot (two), over both jobs.
    assert!(
        r.stats.cold_starts + again.stats.cold_starts <= 4,
        "warm state is kept across jobs: {:?} then {:?}",
        r.stats,
        again.stats
    );
}

#[test]
fn a_task_error_names_the_task_and_the_problem() {
    let local = Local::start(LocalConfig {
        slots: 1,
        registry: custom_executor::registry(),
        ..LocalConfig::default()
    })
    .unwrap();
    let bad = DagSpec::from_yaml_str("name: bad\ntasks:\n  - {id: p, fn: nth_prime, args: [0]}\n")
        .unwrap();
    let r = local.run(bad).unwrap();
    match &r.state {
        JobState::Failed { task, error } => {
            assert_eq!(task.as_str(), "p");
            assert!(error.contains("n must be 1 to 148933, got 0"), "{error}");
        }
        s => panic!("expected a failure, got {s:?}"),
    }
}

/// `weighted_sum`, recording the largest bundle it was given.
struct Counting(Arc<AtomicUsize>);

impl Function for Counting {
    fn init(&self, ctx: &InitCtx) -> Result<Option<WarmState>, FnError> {
        WeightedSum.init(ctx)
    }
    fn call(&self, state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        WeightedSum.call(state, inputs)
    }
    fn call_batch(
        &self,
        state: Option<&WarmState>,
        batch: Vec<Vec<Value>>,
    ) -> Vec<Result<Value, FnError>> {
        self.0.fetch_max(batch.len(), Ordering::Relaxed);
        WeightedSum.call_batch(state, batch)
    }
}

#[test]
fn gpu_calls_are_bundled_and_give_what_single_calls_give() {
    let largest = Arc::new(AtomicUsize::new(0));
    let mut registry = custom_executor::registry();
    registry.register("weighted_sum", Counting(largest.clone()));
    let devices = discover(&DiscoverOptions {
        cuda: false,
        simulate: Some(SimulatedConfig::instant()),
    });
    let local = Local::start(LocalConfig {
        slots: 2,
        registry,
        gpu: GpuConfig {
            devices,
            lanes: 16,
            bundle: BundleSettings {
                default: BundleConfig {
                    size: BundleSize::Fixed(16),
                    linger: Duration::from_millis(100),
                    ..BundleConfig::default()
                },
                ..BundleSettings::default()
            },
            ..GpuConfig::default()
        },
        ..LocalConfig::default()
    })
    .unwrap();
    let r = local.run(spec("bundled.yaml")).unwrap();
    ok(&r);
    assert_eq!(r.output("s0"), Some(&Value::Int(2)));
    assert_eq!(r.output("s15"), Some(&Value::Int(47)));
    assert_eq!(r.output("sum"), Some(&Value::Int(392)));
    assert_eq!(
        r.stats.bundled, 16,
        "every GPU task went through the bundler"
    );
    let largest = largest.load(Ordering::Relaxed);
    assert!(
        largest > 1,
        "some calls ran as one call_batch (largest bundle: {largest})"
    );
}

//! The template's functions through a whole engine, in embedded mode (one process, no
//! Redis): the example DAGs give their exact results, `init` runs once per slot, and on a
//! (simulated) GPU executor `weighted_sum`'s calls arrive in bundles.

use custom_executor::nth_prime::NthPrime;
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
fn the_example_dag_gives_its_exact_outputs_and_keeps_warm_state() {
    let (nth_prime, inits, _) = Counted::new(NthPrime);
    let mut registry = custom_executor::registry();
    registry.register("nth_prime", nth_prime);
    let local = Local::start(LocalConfig {
        slots: 2,
        registry,
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
    assert!(r.stats.cold_starts >= 1, "{:?}", r.stats);
    // The same DAG twice more: the prime table is built at most once per slot, ever.
    for _ in 0..2 {
        let again = local.run(spec("dag.yaml")).unwrap();
        ok(&again);
        assert_eq!(again.output("total"), r.output("total"));
    }
    let inits = inits.load(Ordering::Relaxed);
    assert!(
        (1..=2).contains(&inits),
        "nth_prime's init ran {inits} times on 2 slots"
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

/// A function of the template that counts its `init` runs and records its largest
/// bundle.
struct Counted<F> {
    f: F,
    inits: Arc<AtomicUsize>,
    largest: Arc<AtomicUsize>,
}

impl<F: Function> Counted<F> {
    fn new(f: F) -> (Self, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (inits, largest) = (Arc::default(), Arc::<AtomicUsize>::default());
        let c = Counted {
            f,
            inits: Arc::clone(&inits),
            largest: Arc::clone(&largest),
        };
        (c, inits, largest)
    }
}

impl<F: Function> Function for Counted<F> {
    fn init(&self, ctx: &InitCtx) -> Result<Option<WarmState>, FnError> {
        self.inits.fetch_add(1, Ordering::Relaxed);
        self.f.init(ctx)
    }
    fn call(&self, state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        self.f.call(state, inputs)
    }
    fn call_batch(
        &self,
        state: Option<&WarmState>,
        batch: Vec<Vec<Value>>,
    ) -> Vec<Result<Value, FnError>> {
        self.largest.fetch_max(batch.len(), Ordering::Relaxed);
        self.f.call_batch(state, batch)
    }
    fn is_heavy(&self, inputs: &[Value]) -> bool {
        self.f.is_heavy(inputs)
    }
}

#[test]
fn gpu_calls_are_bundled_and_give_what_single_calls_give() {
    let (weighted_sum, inits, largest) = Counted::new(WeightedSum);
    let mut registry = custom_executor::registry();
    registry.register("weighted_sum", weighted_sum);
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
    let inits = inits.load(Ordering::Relaxed);
    assert_eq!(
        inits, 1,
        "the weights are loaded once for the device, not once per slot"
    );
    let largest = largest.load(Ordering::Relaxed);
    assert!(
        largest > 1,
        "some calls ran as one call_batch (largest bundle: {largest})"
    );
}

//! The bundler on a single-threaded runtime: concurrent calls become one launch, each gets
//! its own result, a partial bundle waits no longer than the linger time, and `auto`
//! explores sizes before it settles on one.

use super::*;
use std::sync::Mutex as StdMutex;

/// Doubles an integer; records the size of every `call_batch`.
#[derive(Default)]
struct Doubler {
    batches: StdMutex<Vec<usize>>,
}

impl Function for Doubler {
    fn call(&self, _: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        match inputs.as_slice() {
            [Value::Int(x)] => Ok(Value::Int(x * 2)),
            _ => Err(FnError::new("doubler takes one int")),
        }
    }

    fn call_batch(
        &self,
        state: Option<&WarmState>,
        batch: Vec<Vec<Value>>,
    ) -> Vec<Result<Value, FnError>> {
        self.batches.lock().unwrap().push(batch.len());
        batch.into_iter().map(|i| self.call(state, i)).collect()
    }
}

fn settings(size: BundleSize, linger_ms: u64) -> BundleSettings {
    BundleSettings {
        default: BundleConfig {
            size,
            max_size: 8,
            linger: Duration::from_millis(linger_ms),
            ..BundleConfig::default()
        },
        per_function: HashMap::new(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn calls(b: &Bundler, f: &Arc<dyn Function>, xs: &[i64]) -> Vec<Result<Value, FnError>> {
    futures_util::future::join_all(
        xs.iter()
            .map(|&x| b.call("double", f, None, vec![Value::Int(x)])),
    )
    .await
}

#[test]
fn concurrent_calls_become_one_launch_with_results_in_order() {
    let d = Arc::new(Doubler::default());
    let f: Arc<dyn Function> = d.clone();
    let b = Bundler::new(settings(BundleSize::Fixed(4), 10_000));
    let out = rt().block_on(calls(&b, &f, &[1, 2, 3, 4, 5, 6, 7, 8]));
    let want: Vec<_> = [2, 4, 6, 8, 10, 12, 14, 16]
        .iter()
        .map(|&v| Ok(Value::Int(v)))
        .collect();
    assert_eq!(out, want);
    assert_eq!(
        *d.batches.lock().unwrap(),
        [4, 4],
        "full bundles launch at once"
    );
    let c = b.counters();
    assert_eq!((c.launches, c.calls, c.largest), (2, 8, 4));
}

#[test]
fn a_partial_bundle_launches_after_the_linger_time() {
    let d = Arc::new(Doubler::default());
    let f: Arc<dyn Function> = d.clone();
    let b = Bundler::new(settings(BundleSize::Fixed(8), 20));
    let t0 = Instant::now();
    let out = rt().block_on(calls(&b, &f, &[1, 2, 3]));
    let took = t0.elapsed();
    assert_eq!(
        out,
        [Ok(Value::Int(2)), Ok(Value::Int(4)), Ok(Value::Int(6))]
    );
    assert_eq!(*d.batches.lock().unwrap(), [3]);
    assert!(took >= Duration::from_millis(20), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn errors_stay_with_their_own_call() {
    let d = Arc::new(Doubler::default());
    let f: Arc<dyn Function> = d.clone();
    let b = Bundler::new(settings(BundleSize::Fixed(3), 10_000));
    let out = rt().block_on(futures_util::future::join_all([
        b.call("double", &f, None, vec![Value::Int(1)]),
        b.call("double", &f, None, vec![Value::Str("x".into())]),
        b.call("double", &f, None, vec![Value::Int(3)]),
    ]));
    assert_eq!(out[0], Ok(Value::Int(2)));
    assert_eq!(out[1], Err(FnError::new("doubler takes one int")));
    assert_eq!(out[2], Ok(Value::Int(6)));
}

#[test]
fn auto_explores_every_size_then_settles() {
    let d = Arc::new(Doubler::default());
    let f: Arc<dyn Function> = d.clone();
    let b = Bundler::new(settings(BundleSize::Auto, 5));
    assert_eq!(b.size_for("double"), 8, "explores up to max_size first");
    let rt = rt();
    for size in [1usize, 2, 4, 8] {
        for _ in 0..AUTO_SAMPLES {
            let xs: Vec<i64> = (0..size as i64).collect();
            let out = rt.block_on(calls(&b, &f, &xs));
            assert!(out.iter().all(Result::is_ok));
        }
    }
    let p = b.profile("double");
    assert_eq!(p.len(), 4 * AUTO_SAMPLES);
    let chosen = b.size_for("double");
    assert!([1, 2, 4, 8].contains(&chosen), "{chosen}");
}

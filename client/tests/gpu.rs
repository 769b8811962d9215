//! GPU executors end to end, on the simulated device (CI has no GPU): tasks that ask for a
//! GPU run on the GPU executor, whether they are sources, fan-out children or reached by a
//! chain or a fan-in from CPU tasks; their calls are bundled; results equal the CPU
//! reference; and a deployment without a device rejects GPU jobs at submission.

use rukong_client::{DagSpec, Local, LocalConfig};
use rukong_core::Value;
use rukong_core::messages::JobState;
use rukong_executor::GpuConfig;
use rukong_executor::bundling::BundleSettings;
use rukong_executor::device::bundle::{BundleConfig, BundleSize};
use rukong_executor::device::{Backend, Device, DiscoverOptions, SimulatedConfig, discover};
use std::sync::Arc;
use std::time::Duration;

fn local_with_gpu(bundle: BundleSize, lanes: usize) -> (Local, Arc<dyn Device>) {
    let devices = discover(&DiscoverOptions {
        cuda: false,
        simulate: Some(SimulatedConfig::instant()),
    });
    assert_eq!(devices.len(), 1);
    let device = devices[0].clone();
    let local = Local::start(LocalConfig {
        slots: 2,
        gpu: GpuConfig {
            devices,
            lanes,
            bundle: BundleSettings {
                default: BundleConfig {
                    size: bundle,
                    linger: Duration::from_millis(20),
                    ..BundleConfig::default()
                },
                ..BundleSettings::default()
            },
            cache_budget: None,
            policy: rukong_executor::gpu_sched::GpuPolicy::Srtf,
        },
        ..LocalConfig::default()
    })
    .unwrap();
    (local, device)
}

/// (launches, items) on the simulated device so far.
fn launches(d: &Arc<dyn Device>) -> (u64, u64) {
    match d.backend() {
        Backend::Simulated(s) => {
            let c = s.counters();
            (c.launches, c.items)
        }
        _ => panic!("not the simulated device"),
    }
}

/// W products: `a_i = block(8, 8, i)`, `p_i = gpu_matmul(a_i, b)` (GPU), `n_i =
/// frobenius(p_i)` (CPU, a chain after the GPU task), and the same with `matmul` as the
/// CPU reference.
fn products(w: usize) -> DagSpec {
    let mut yaml =
        String::from("name: gpu-products\ntasks:\n  - {id: b, fn: matrix, args: [8, 8, 99]}\n");
    for i in 0..w {
        yaml += &format!(
            "  - {{id: a{i}, fn: matrix, args: [8, 8, {i}]}}\n  - {{id: p{i}, fn: gpu_matmul, deps: [a{i}, b], resources: {{gpu: 1}}}}\n  - {{id: n{i}, fn: frobenius, deps: [p{i}]}}\n  - {{id: r{i}, fn: matmul, deps: [a{i}, b]}}\n  - {{id: d{i}, fn: max_abs_diff, deps: [p{i}, r{i}]}}\n  - {{id: rn{i}, fn: frobenius, deps: [r{i}]}}\n"
        );
    }
    DagSpec::from_yaml_str(&yaml).unwrap()
}

fn float(r: &rukong_client::JobReport, id: &str) -> f64 {
    match r.output(id) {
        Some(Value::Float(f)) => *f,
        other => panic!("{id}: {other:?}"),
    }
}

#[test]
fn gpu_tasks_run_bundled_on_the_gpu_executor_and_match_the_cpu_reference() {
    let (local, device) = local_with_gpu(BundleSize::Fixed(8), 16);
    let w = 24;
    let r = local.run(products(w)).unwrap();
    assert_eq!(r.state, JobState::Succeeded, "{r:?}");
    for i in 0..w {
        let diff = float(&r, &format!("d{i}"));
        let norm = float(&r, &format!("rn{i}"));
        assert!(diff <= 1e-5 * norm.max(1.0), "p{i}: |gpu - cpu| = {diff}");
        let n = float(&r, &format!("n{i}"));
        assert!(
            (n - norm).abs() <= 1e-5 * norm,
            "n{i} = {n}, reference {norm}"
        );
    }
    assert_eq!(
        r.stats.bundled as usize, w,
        "every GPU task went through the bundler"
    );
    let (n, items) = launches(&device);
    assert_eq!(items, w as u64, "each GPU task ran once on the device");
    assert!(n < w as u64, "bundles formed: {n} launches for {w} tasks");
}

#[test]
fn bundled_and_unbundled_runs_give_the_same_outputs() {
    let spec = products(12);
    let (one, d1) = local_with_gpu(BundleSize::Fixed(1), 1);
    let a = one.run(spec.clone()).unwrap();
    let (many, d12) = local_with_gpu(BundleSize::Fixed(12), 12);
    let b = many.run(spec).unwrap();
    assert_eq!(
        launches(&d1),
        (12, 12),
        "bundle size 1: one launch per task"
    );
    assert!(launches(&d12).0 < 12, "{:?}", launches(&d12));
    assert_eq!(a.state, JobState::Succeeded);
    assert_eq!(a.outputs, b.outputs);
}

#[test]
fn a_gpu_job_without_a_gpu_is_rejected_at_submission() {
    let local = Local::start(LocalConfig::default()).unwrap();
    let err = local.run(products(1)).unwrap_err().to_string();
    assert!(err.contains("p0") && err.contains("GPU"), "{err}");
}

/// `x → spin(1 s) → gpu_mlp → frobenius`, on a simulated GPU whose cold start takes ~0.2 s.
fn late_gpu_task() -> DagSpec {
    DagSpec::from_yaml_str(
        "name: late-gpu\ntasks:\n  - {id: x, fn: matrix, args: [1, 256, 0]}\n  - {id: s, fn: spin, deps: [x], args: [1000]}\n  - {id: y, fn: gpu_mlp, deps: [s], resources: {gpu: 1}}\n  - {id: n, fn: frobenius, deps: [y]}\n",
    )
    .unwrap()
}

fn local_with_warmup(mode: rukong_engine::warmup::WarmupMode) -> Local {
    let devices = discover(&DiscoverOptions {
        cuda: false,
        simulate: Some(SimulatedConfig::default()),
    });
    let mut config = LocalConfig {
        slots: 2,
        gpu: GpuConfig {
            devices,
            lanes: 2,
            ..GpuConfig::default()
        },
        ..LocalConfig::default()
    };
    config.engine.warmup = mode;
    Local::start(config).unwrap()
}

#[test]
fn a_speculative_hint_warms_the_gpu_function_before_its_task() {
    use rukong_engine::warmup::WarmupMode;
    // Reactive: the GPU task pays its cold start; no hints.
    let r = local_with_warmup(WarmupMode::Reactive)
        .run(late_gpu_task())
        .unwrap();
    assert_eq!(r.state, JobState::Succeeded, "{r:?}");
    assert_eq!(r.stats.hints_issued, 0);
    assert_eq!(r.stats.warm_hits, 0, "{:?}", r.stats);
    // Speculative: the engine sends a hint for every function on the path at job start;
    // the GPU executor builds gpu_mlp's state while `spin` runs, so the task finds it warm.
    let local = local_with_warmup(WarmupMode::Speculative);
    let s = local.run(late_gpu_task()).unwrap();
    assert_eq!(s.state, JobState::Succeeded, "{s:?}");
    assert_eq!(r.output("n"), s.output("n"));
    assert!(s.stats.hints_issued >= 1, "{:?}", s.stats);
    assert!(s.stats.hints_warmed >= 1, "{:?}", s.stats);
    assert_eq!(s.stats.warm_hits, 1, "the GPU task ran warm: {:?}", s.stats);
    assert_eq!(s.stats.hints_used, 1, "{:?}", s.stats);
    // C_r: the hinted state waited, warm, for the spin to end; C_d: the GPU task paid no
    // cold start, where the reactive run paid the device's whole ladder.
    assert!(s.stats.warm_idle_us > 0, "{:?}", s.stats);
    assert!(
        s.stats.init_us < r.stats.init_us,
        "{:?} vs {:?}",
        s.stats,
        r.stats
    );
}

/// Two guarded branches off `flag`: `flag = 1` runs `ga → a = gpu_mlp`, `flag = 2` runs
/// `gb → b = gpu_matmul`; each branch first spins 600 ms on the CPU.
fn branchy(flag: i64) -> DagSpec {
    DagSpec::from_yaml_str(&format!(
        "name: branchy\ntasks:\n  - {{id: x, fn: matrix, args: [1, 256, 0]}}\n  - {{id: w, fn: matrix, args: [256, 8, 1]}}\n  - {{id: flag, fn: const, args: [{flag}]}}\n  - {{id: ga, fn: spin, deps: [x, flag], args: [600], guard: {{dep: flag, equals: 1}}}}\n  - {{id: a, fn: gpu_mlp, deps: [ga], resources: {{gpu: 1}}}}\n  - {{id: gb, fn: spin, deps: [x, flag], args: [600], guard: {{dep: flag, equals: 2}}}}\n  - {{id: b, fn: gpu_matmul, deps: [gb, w], resources: {{gpu: 1}}}}\n"
    ))
    .unwrap()
}

#[test]
fn a_branch_against_the_prediction_re_plans_the_hints() {
    use rukong_engine::warmup::WarmupMode;
    let local = local_with_warmup(WarmupMode::Jit);
    // Teach the profile that branch a is taken.
    for _ in 0..4 {
        let r = local.run(branchy(1)).unwrap();
        assert_eq!(r.state, JobState::Succeeded, "{r:?}");
        assert!(r.is_skipped("b"));
    }
    // Now branch b: the outcomes contradict the prediction (ga not taken, then gb taken:
    // one re-plan each at most), and b's function is warm by the time its task arrives.
    let r = local.run(branchy(2)).unwrap();
    assert_eq!(r.state, JobState::Succeeded, "{r:?}");
    assert!(r.is_skipped("a") && !r.is_skipped("b"));
    assert!((1..=2).contains(&r.stats.replans), "{:?}", r.stats);
    assert_eq!(r.stats.warm_hits, 1, "b ran warm: {:?}", r.stats);
    assert!(r.stats.cold_starts <= 1, "{:?}", r.stats);
    // The reactive mode never re-plans.
    let reactive = local_with_warmup(WarmupMode::Reactive);
    let r = reactive.run(branchy(2)).unwrap();
    assert_eq!((r.stats.replans, r.stats.hints_issued), (0, 0));
}

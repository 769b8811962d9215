//! GPU built-ins benchmark (`cargo bench -p rukong-executor --bench gpu`; add
//! `--features cuda` on a GPU machine to measure the real device too).
//!
//! (a) `gpu_matmul` of 256×256 matrices: invocations per second through `call_batch` at
//!     bundle sizes 1, 2, 4, …, 64, and the bundle size the WiseFuse chooser picks from
//!     that profile.
//! (b) first-invocation latency, cold (a fresh device: the whole warm-up ladder) against
//!     warm, per GPU built-in, with the cold start broken down by stage.
//!
//! Without a GPU this runs on the simulated device with its default model, and says so.
//! There every launch takes max(modelled time, CPU-reference time): the outputs are
//! computed for real on the CPU. The table therefore shows the wall rate, the rate the
//! model alone would give, and the CPU reference's own rate.

use rukong_core::Value;
use rukong_executor::device::bundle::{BundleConfig, choose, profile_sizes};
use rukong_executor::device::{Cpu, Device, DeviceCache, Simulated, SimulatedConfig};
use rukong_executor::functions::gpu::{GpuMatmul, GpuMlp, GpuSaxpy, MLP_WIDTH, VecForm};
use rukong_executor::functions::linalg::generate;
use rukong_executor::functions::{Function, InitCtx, WarmState};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn init(f: &dyn Function, device: &Arc<dyn Device>) -> Option<WarmState> {
    let ctx = InitCtx::new("bench", 0).with_device(Some(device.clone()));
    f.init(&ctx).expect("init")
}

fn matmul_inputs(n: usize) -> Vec<Vec<Value>> {
    (0..n as u64)
        .map(|i| {
            vec![
                generate(256, 256, i, 0, 0).to_value(),
                generate(256, 256, i + 1000, 0, 0).to_value(),
            ]
        })
        .collect()
}

/// Invocations per second of `call_batch` with bundles of `b`, over at least `min` time.
fn rate(
    f: &dyn Function,
    st: Option<&WarmState>,
    pool: &[Vec<Value>],
    b: usize,
) -> (f64, Duration) {
    let min = Duration::from_millis(600);
    let bundle: Vec<Vec<Value>> = pool.iter().cycle().take(b).cloned().collect();
    // One bundle to warm caches.
    for r in f.call_batch(st, bundle.clone()) {
        r.expect("matmul");
    }
    let t0 = Instant::now();
    let mut done = 0usize;
    let mut launches = 0u32;
    while t0.elapsed() < min || launches < 3 {
        for r in f.call_batch(st, bundle.clone()) {
            r.expect("matmul");
        }
        done += b;
        launches += 1;
    }
    let el = t0.elapsed();
    (done as f64 / el.as_secs_f64(), el / launches)
}

mod gpu_plot;

/// `--plot DIR` on the command line: where to write the SVG charts.
fn plot_dir() -> Option<std::path::PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--plot")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
}

fn write_plot(name: &str, svg: String) {
    if let Some(dir) = plot_dir() {
        let path = dir.join(name);
        match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, svg)) {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
}

fn bench_matmul(device: &Arc<dyn Device>, sim: Option<&Simulated>) {
    println!(
        "\n(a) gpu_matmul 256x256 through call_batch on {}",
        device.label()
    );
    let pool = matmul_inputs(8);
    let st = init(&GpuMatmul, device);
    let cpu: Arc<dyn Device> = Arc::new(Cpu::new());
    let cpu_st = init(&GpuMatmul, &cpu);
    println!(
        "{:>6} {:>14} {:>14} {:>16} {:>14}",
        "bundle", "wall inv/s", "launch ms", "model-only inv/s", "CPU-ref inv/s"
    );
    let mut profile = Vec::new();
    let (mut wall_pts, mut model_pts) = (Vec::new(), Vec::new());
    for b in profile_sizes(64) {
        let before = sim.map(Simulated::counters);
        let (r, per_launch) = rate(&GpuMatmul, st.as_ref(), &pool, b);
        let model = match (sim, before) {
            (Some(s), Some(c0)) => {
                let c1 = s.counters();
                let us = (c1.modelled_exec_us - c0.modelled_exec_us).max(1) as f64;
                let m = (c1.items - c0.items) as f64 / us * 1e6;
                model_pts.push((b as f64, m));
                format!("{m:.0}")
            }
            _ => "-".to_owned(),
        };
        let cpu_rate = if sim.is_some() {
            format!("{:.0}", rate(&GpuMatmul, cpu_st.as_ref(), &pool, b).0)
        } else {
            "-".to_owned()
        };
        println!(
            "{b:>6} {r:>14.0} {:>14.3} {model:>16} {cpu_rate:>14}",
            per_launch.as_secs_f64() * 1e3
        );
        profile.push((b, per_launch));
        wall_pts.push((b as f64, r));
    }
    let mut series = vec![("measured (wall)", wall_pts)];
    if !model_pts.is_empty() {
        series.push(("model only", model_pts));
    }
    write_plot(
        "gpu-bundling.svg",
        gpu_plot::lines(
            &format!("gpu_matmul 256×256 on {}", device.label()),
            "bundle size",
            "invocations / s",
            &series,
        ),
    );
    match choose(&profile, &BundleConfig::default()) {
        Some(c) => println!(
            "chooser (auto, tolerance 5%): bundle {} at {:.0} inv/s (best {:.0})",
            c.size, c.throughput, c.best_throughput
        ),
        None => println!("chooser: no admissible size"),
    }
}

/// (name, function, one invocation's inputs).
fn builtins() -> Vec<(&'static str, Box<dyn Function>, Vec<Value>)> {
    let x: Vec<f32> = (0..MLP_WIDTH).map(|i| i as f32 / 256.0).collect();
    let v =
        |n: usize| rukong_executor::functions::gpu::vector_value(&vec![1.5f32; n], VecForm::Bytes);
    vec![
        (
            "gpu_matmul",
            Box::new(GpuMatmul) as Box<dyn Function>,
            matmul_inputs(1).remove(0),
        ),
        (
            "gpu_saxpy",
            Box::new(GpuSaxpy),
            vec![v(1 << 20), v(1 << 20), Value::Float(2.0)],
        ),
        (
            "gpu_mlp",
            Box::new(GpuMlp),
            vec![rukong_executor::functions::gpu::vector_value(
                &x,
                VecForm::Bytes,
            )],
        ),
    ]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Cold (fresh device) and warm first-invocation latency per built-in.
fn bench_cold_warm(make: &dyn Fn() -> Arc<dyn Device>) {
    println!("\n(b) first invocation, cold vs warm (a fresh device per built-in)");
    println!(
        "{:<11} {:>10} {:>10} {:>10} {:>10}  stages of the cold start (ms)",
        "function", "cold ms", "init ms", "call ms", "warm ms"
    );
    let mut groups = Vec::new();
    let mut label = String::new();
    for (name, f, inputs) in builtins() {
        let device = make();
        label = device.label();
        let cache = DeviceCache::for_device(device.as_ref(), None);
        let t0 = Instant::now();
        let (st, cold) = cache
            .get_or_init(name, |log| {
                let ctx = InitCtx {
                    name: name.to_owned(),
                    slot: 0,
                    device: Some(device.clone()),
                    log: log.clone(),
                };
                f.init(&ctx)
            })
            .expect("init");
        let t_call = Instant::now();
        f.call(st.as_ref(), inputs.clone()).expect("call");
        let call = t_call.elapsed();
        let cold_total = t0.elapsed();
        let t1 = Instant::now();
        let (st, again) = cache
            .get_or_init(name, |_| panic!("{name} should be warm"))
            .expect("warm");
        f.call(st.as_ref(), inputs).expect("call");
        let warm = t1.elapsed();
        assert!(!again.happened);
        let stages: Vec<String> = cold
            .stages
            .iter()
            .map(|s| format!("{} {}", s.name, ms(s.duration)))
            .collect();
        println!(
            "{name:<11} {:>10} {:>10} {:>10} {:>10}  {}",
            ms(cold_total),
            ms(cold.init),
            ms(call),
            ms(warm),
            stages.join(", ")
        );
        let mut parts: Vec<(String, f64)> = cold
            .stages
            .iter()
            .map(|s| (s.name.clone(), s.duration.as_secs_f64() * 1e3))
            .collect();
        parts.push(("first call".to_owned(), call.as_secs_f64() * 1e3));
        groups.push((name.to_owned(), parts, warm.as_secs_f64() * 1e3));
    }
    write_plot(
        "gpu-cold-warm.svg",
        gpu_plot::stacked(
            &format!("first invocation: cold (stages) vs warm, {label}"),
            "ms",
            &groups,
        ),
    );
}

fn main() {
    let cfg = SimulatedConfig::default();
    println!("rukong GPU built-ins benchmark");
    #[cfg(feature = "cuda")]
    {
        let gpus = rukong_executor::device::discover(&rukong_executor::device::DiscoverOptions {
            cuda: true,
            simulate: None,
        });
        if let Some(gpu) = gpus.first() {
            println!("device: {} ({:?})", gpu.label(), gpu.info());
            bench_matmul(gpu, None);
            bench_cold_warm(&|| {
                // A real context cannot be torn down here: only the first function pays it.
                gpu.clone()
            });
        } else {
            println!("cuda feature on, but no usable GPU here: simulated device only");
        }
    }
    println!(
        "\ndevice: SIMULATED (no GPU measured): model {}",
        serde_json::to_string(&cfg).unwrap_or_default()
    );
    let sim = Arc::new(Simulated::new(cfg.clone()));
    let dev: Arc<dyn Device> = sim.clone();
    bench_matmul(&dev, Some(&sim));
    bench_cold_warm(&|| Arc::new(Simulated::new(cfg.clone())) as Arc<dyn Device>);
}

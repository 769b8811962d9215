//! `warmup-real`: the warm-up modes on the real engine (embedded mode), not the simulator.
//! A chain of n distinct GPU functions `f1 → … → fn` runs on a GPU executor with a
//! simulated device and 32 slots. Each function's `init` takes the cold start (it sleeps,
//! like a model load; its state is bound to the device) and each call the exec time. Every
//! run starts on a fresh deployment (cold device) whose store holds the functions' profile
//! (exec and cold-start times), as after earlier runs. Reports the end-to-end wall time per
//! mode and chain length, and the hint counts.
//!
//! ```text
//! cargo run --release -p rukong-benches --bin warmup-real -- [--lengths 1,2,5,10,20]
//!     [--cold-ms 500] [--exec-ms 50] [--json FILE]
//! ```

use anyhow::{Context, Result, bail};
use rukong_client::{JobBuilder, Local, LocalConfig};
use rukong_core::Value;
use rukong_core::profile::{DagProfile, FnProfile};
use rukong_core::store::ProfileStore;
use rukong_engine::warmup::WarmupMode;
use rukong_executor::GpuConfig;
use rukong_executor::device::{DiscoverOptions, SimulatedConfig, discover};
use rukong_executor::functions::{FnError, Function, InitCtx, Registry, WarmState};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A function whose `init` takes `cold` (bound to the device) and each call `exec`; it
/// passes its first input on.
struct Model {
    cold: Duration,
    exec: Duration,
}

impl Function for Model {
    fn init(&self, ctx: &InitCtx) -> Result<Option<WarmState>, FnError> {
        std::thread::sleep(self.cold);
        ctx.log.bind_to_device();
        Ok(Some(Arc::new(())))
    }

    fn call(&self, _: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        std::thread::sleep(self.exec);
        Ok(inputs.into_iter().next().unwrap_or_default())
    }

    fn is_heavy(&self, _: &[Value]) -> bool {
        true
    }
}

struct Args {
    lengths: Vec<usize>,
    cold: Duration,
    exec: Duration,
    json: Option<String>,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        lengths: vec![1, 2, 5, 10, 20],
        cold: Duration::from_millis(500),
        exec: Duration::from_millis(50),
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut v = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--lengths" => {
                a.lengths = v()?
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--lengths: comma-separated chain lengths")?;
                if a.lengths.iter().any(|&n| n == 0 || n > 64) {
                    bail!("--lengths: each length must be 1 to 64");
                }
            }
            "--cold-ms" => a.cold = Duration::from_millis(v()?.parse().context("--cold-ms")?),
            "--exec-ms" => a.exec = Duration::from_millis(v()?.parse().context("--exec-ms")?),
            "--json" => a.json = Some(v()?),
            "-h" | "--help" => {
                println!(
                    "usage: warmup-real [--lengths 1,2,5,10,20] [--cold-ms 500] [--exec-ms 50] [--json FILE]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

/// One run on a fresh deployment: (wall, stats as JSON).
fn run(a: &Args, n: usize, mode: WarmupMode) -> Result<(Duration, serde_json::Value)> {
    let mut registry = Registry::with_builtins();
    for i in 1..=n {
        registry.register(
            format!("f{i}"),
            Model {
                cold: a.cold,
                exec: a.exec,
            },
        );
    }
    let devices = discover(&DiscoverOptions {
        cuda: false,
        simulate: Some(SimulatedConfig::instant()),
    });
    let mut config = LocalConfig {
        slots: 2,
        registry,
        gpu: GpuConfig {
            devices,
            lanes: 32,
            ..GpuConfig::default()
        },
        ..LocalConfig::default()
    };
    config.engine.warmup = mode;
    let local = Local::start(config).context("starting the deployment")?;
    let name = format!("chain-{n}");
    // The profile earlier runs would have left: every function's exec and cold start.
    let mut profile = DagProfile::default();
    for i in 1..=n {
        let mut p = FnProfile::default();
        for _ in 0..5 {
            p.exec_us.record(a.exec.as_micros() as u64);
            p.cold_start_us.record(a.cold.as_micros() as u64);
        }
        profile.functions.insert(format!("f{i}"), p);
    }
    local
        .block_on(local.store().record_profile(&name, profile))
        .context("seeding the profile")?;
    let mut b = JobBuilder::new(&name);
    b.task("t1", "f1").arg(1).gpu(1);
    for i in 2..=n {
        b.task(format!("t{i}"), format!("f{i}"))
            .dep(format!("t{}", i - 1))
            .gpu(1);
    }
    let t0 = Instant::now();
    let r = local.run(b.build()).context("running")?;
    let wall = t0.elapsed();
    if r.output(&format!("t{n}")) != Some(&Value::Int(1)) {
        bail!(
            "chain-{n} in {mode}: wrong output {:?}",
            r.output(&format!("t{n}"))
        );
    }
    let s = &r.stats;
    Ok((
        wall,
        serde_json::json!({
            "cold_starts": s.cold_starts, "warm_hits": s.warm_hits,
            "hints_issued": s.hints_issued, "hints_warmed": s.hints_warmed,
            "hints_used": s.hints_used, "hints_noop": s.hints_noop,
        }),
    ))
}

fn main() -> Result<()> {
    let a = parse()?;
    let modes = [
        WarmupMode::Reactive,
        WarmupMode::Speculative,
        WarmupMode::Jit,
    ];
    println!(
        "warm-up on the real engine (embedded, simulated GPU, 32 slots): chain of n distinct functions, cold start {} ms, exec {} ms\n",
        a.cold.as_millis(),
        a.exec.as_millis()
    );
    println!(
        "| n | ideal reactive n·(c+e) | ideal jit c+n·e | reactive | speculative | jit | jit / ideal | hints used (spec / jit) |"
    );
    println!("|--:|--:|--:|--:|--:|--:|--:|--:|");
    let mut rows = Vec::new();
    for &n in &a.lengths {
        let mut walls = Vec::new();
        let mut stats = Vec::new();
        for m in modes {
            let (w, s) = run(&a, n, m)?;
            walls.push(w);
            stats.push(s);
        }
        let c = a.cold.as_secs_f64();
        let e = a.exec.as_secs_f64();
        let ideal_jit = c + n as f64 * e;
        println!(
            "| {n} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2}× | {} / {} |",
            n as f64 * (c + e),
            ideal_jit,
            walls[0].as_secs_f64(),
            walls[1].as_secs_f64(),
            walls[2].as_secs_f64(),
            walls[2].as_secs_f64() / ideal_jit,
            stats[1]["hints_used"],
            stats[2]["hints_used"],
        );
        rows.push(serde_json::json!({
            "n": n,
            "reactive_s": walls[0].as_secs_f64(), "speculative_s": walls[1].as_secs_f64(),
            "jit_s": walls[2].as_secs_f64(),
            "reactive": stats[0], "speculative": stats[1], "jit": stats[2],
        }));
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)? + "\n")
            .with_context(|| format!("writing {path}"))?;
        println!("\nwrote {path}");
    }
    Ok(())
}

//! `gpu-policies`: the GPU scheduling policies (`fifo`, `exclusive`, `srtf`, `mlfq`) on a
//! seeded two-model trace, in the deterministic simulator of
//! [`rukong_executor::gpu_sched::sim`] (virtual time: the run takes milliseconds and needs
//! no GPU). Prints one Markdown table per seed, and with `--json FILE` writes every number.
//!
//! ```text
//! cargo run --release -p rukong-benches --bin gpu-policies -- \
//!     [--seed N] [--seeds K] [--slots N] [--arrivals N] [--models-per-slot 1|2]
//!     [--rate-a R] [--rate-b R] [--cold-a-ms MS] [--cold-b-ms MS]
//!     [--exec-a-ms MS] [--exec-b-ms MS] [--jitter J] [--handover-ms MS]
//!     [--mlfq-quantum-ms MS] [--mlfq-boost-ms MS] [--json FILE]
//! ```

use anyhow::{Context, Result, bail};
use rukong_benches::flags;
use rukong_executor::gpu_sched::sim::{self, SimConfig, SimReport, Stats, TraceSpec};
use serde_json::{Value, json};

const USAGE: &str = "usage: gpu-policies [--seed N] [--seeds K] [--slots N] [--arrivals N] \
[--models-per-slot 1|2] [--rate-a R] [--rate-b R] [--cold-a-ms MS] [--cold-b-ms MS] \
[--exec-a-ms MS] [--exec-b-ms MS] [--jitter J] [--handover-ms MS] [--mlfq-quantum-ms MS] \
[--mlfq-boost-ms MS] [--json FILE]";

struct Args {
    seed: u64,
    seeds: u64,
    trace: TraceSpec,
    sim: SimConfig,
    json: Option<String>,
}

fn parse_args() -> Result<Args> {
    let (mut trace, mut sim) = sim::two_model_default(1);
    let (mut seed, mut seeds, mut json) = (1u64, 1u64, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let v = args.next();
        match flag.as_str() {
            "--seed" => seed = flags::value(&flag, v, USAGE)?,
            "--seeds" => seeds = flags::value(&flag, v, USAGE)?,
            "--slots" => sim.slots = flags::value(&flag, v, USAGE)?,
            "--arrivals" => trace.arrivals = flags::value(&flag, v, USAGE)?,
            "--models-per-slot" => {
                let n: u64 = flags::value(&flag, v, USAGE)?;
                // A is 10 GiB and B 6 GiB: 12 GiB holds one, 16 GiB both.
                sim.slot_mem = match n {
                    1 => 12 << 30,
                    2 => 16 << 30,
                    _ => bail!("--models-per-slot must be 1 or 2, got {n}"),
                };
            }
            "--rate-a" => trace.models[0].rate_per_s = flags::value(&flag, v, USAGE)?,
            "--rate-b" => trace.models[1].rate_per_s = flags::value(&flag, v, USAGE)?,
            "--cold-a-ms" => trace.models[0].cold_start = flags::ms(&flag, v, USAGE)?,
            "--cold-b-ms" => trace.models[1].cold_start = flags::ms(&flag, v, USAGE)?,
            "--exec-a-ms" => trace.models[0].exec = flags::ms(&flag, v, USAGE)?,
            "--exec-b-ms" => trace.models[1].exec = flags::ms(&flag, v, USAGE)?,
            "--jitter" => trace.exec_jitter = flags::value(&flag, v, USAGE)?,
            "--handover-ms" => sim.sched.handover = flags::ms(&flag, v, USAGE)?,
            "--mlfq-quantum-ms" => sim.sched.mlfq_quantum = flags::ms(&flag, v, USAGE)?,
            "--mlfq-boost-ms" => sim.sched.mlfq_boost_every = flags::ms(&flag, v, USAGE)?,
            "--json" => json = Some(v.with_context(|| format!("--json needs a file\n{USAGE}"))?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    if sim.slots == 0 {
        bail!("--slots must be at least 1");
    }
    if !(1..=10_000_000).contains(&trace.arrivals) {
        bail!("--arrivals must be in 1..=10000000, got {}", trace.arrivals);
    }
    // Reject a bad workload before printing anything.
    sim::generate(&TraceSpec {
        arrivals: 1,
        ..trace.clone()
    })?;
    Ok(Args {
        seed,
        seeds,
        trace,
        sim,
        json,
    })
}

fn f(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn table(reports: &[SimReport]) -> String {
    let names: Vec<&str> = reports[0].per_fn.iter().map(|s| s.name.as_str()).collect();
    let mut head = String::from("| policy | cold starts | hit rate | mean wait ms | p95 wait ms |");
    let mut rule = String::from("|---|---:|---:|---:|---:|");
    for n in &names {
        head += &format!(" {n} cold | {n} mean wait ms | {n} p95 wait ms | {n} slowdown |");
        rule += "---:|---:|---:|---:|";
    }
    head += " Jain (slowdown) | makespan s | served/s | unserved |";
    rule += "---:|---:|---:|---:|";
    let mut out = format!("{head}\n{rule}\n");
    for r in reports {
        let o = &r.overall;
        out += &format!(
            "| {} | {} | {:.3} | {} | {} |",
            r.policy,
            o.cold_starts,
            o.hit_rate,
            f(o.mean_wait_ms),
            f(o.p95_wait_ms)
        );
        for s in &r.per_fn {
            out += &format!(
                " {} | {} | {} | {} |",
                s.cold_starts,
                f(s.mean_wait_ms),
                f(s.p95_wait_ms),
                f(s.mean_slowdown)
            );
        }
        out += &format!(
            " {:.3} | {:.1} | {:.1} | {} |\n",
            r.jain_slowdown, r.makespan_s, r.throughput_per_s, r.unserved
        );
    }
    out
}

fn stats_json(s: &Stats) -> Value {
    json!({
        "name": s.name, "served": s.served, "cold_starts": s.cold_starts,
        "hit_rate": s.hit_rate, "mean_wait_ms": s.mean_wait_ms, "p95_wait_ms": s.p95_wait_ms,
        "mean_response_ms": s.mean_response_ms, "mean_slowdown": s.mean_slowdown,
    })
}

fn report_json(r: &SimReport) -> Value {
    json!({
        "policy": r.policy.as_str(), "arrivals": r.arrivals, "unserved": r.unserved,
        "overall": stats_json(&r.overall),
        "per_fn": r.per_fn.iter().map(stats_json).collect::<Vec<_>>(),
        "makespan_s": r.makespan_s, "throughput_per_s": r.throughput_per_s,
        "jain_slowdown": r.jain_slowdown, "load_s": r.load_s,
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let mut runs = Vec::new();
    let m = &args.trace.models;
    println!(
        "# GPU scheduling policies (simulated)\n\n{} slots, {} GiB warm cache per slot, {} arrivals, \
         exec jitter ±{:.0}%, exclusive hand-over {} ms, MLFQ quantum {} ms / boost {} ms",
        args.sim.slots,
        args.sim.slot_mem >> 30,
        args.trace.arrivals,
        args.trace.exec_jitter * 100.0,
        args.sim.sched.handover / 1000,
        args.sim.sched.mlfq_quantum / 1000,
        args.sim.sched.mlfq_boost_every / 1000,
    );
    for model in m {
        println!(
            "- model {}: cold start {} ms, exec {} ms, {} GiB, {}/s Poisson",
            model.name,
            model.cold_start as f64 / 1e3,
            model.exec as f64 / 1e3,
            model.mem >> 30,
            model.rate_per_s
        );
    }
    for k in 0..args.seeds {
        let seed = args.seed.wrapping_add(k);
        let trace = TraceSpec {
            seed,
            ..args.trace.clone()
        };
        let reports = sim::run_all(&trace, &args.sim)?;
        println!("\n## seed {seed}\n\n{}", table(&reports));
        runs.push(json!({
            "seed": seed,
            "policies": reports.iter().map(report_json).collect::<Vec<_>>(),
        }));
    }
    if let Some(path) = &args.json {
        let doc = json!({
            "slots": args.sim.slots, "slot_mem": args.sim.slot_mem,
            "arrivals": args.trace.arrivals, "exec_jitter": args.trace.exec_jitter,
            "handover_us": args.sim.sched.handover,
            "mlfq": { "levels": args.sim.sched.mlfq_levels, "quantum_us": args.sim.sched.mlfq_quantum,
                      "boost_every_us": args.sim.sched.mlfq_boost_every },
            "models": m.iter().map(|x| json!({ "name": x.name, "cold_start_us": x.cold_start,
                "exec_us": x.exec, "mem": x.mem, "rate_per_s": x.rate_per_s })).collect::<Vec<_>>(),
            "runs": runs,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

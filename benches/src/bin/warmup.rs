//! `warmup`: the warm-up modes (`reactive`, `speculative`, `jit`, `oracle`) in the
//! deterministic simulator of [`rukong_engine::warmup::sim`] (virtual time: no executor, no
//! clock; the whole run takes milliseconds). Reproduces the Xanadu-style figure: end-to-end
//! latency and C_r against chain length, then a branching DAG at two odds, averaged over
//! seeded branch draws. Prints Markdown tables and checks the targets; `--json FILE` writes
//! every number, `--plot DIR` two SVGs.
//!
//! ```text
//! cargo run --release -p rukong-benches --bin warmup -- \
//!     [--max-len N] [--cold-ms MS] [--exec-ms MS] [--margin-ms MS] [--ttl-ms MS]
//!     [--stages N] [--branch-len K] [--draws N] [--seed N] [--json FILE] [--plot DIR]
//! ```

use anyhow::{Context, Result, bail};
use rukong_benches::flags;
use rukong_benches::plot::{Point, scaling_svg};
use rukong_core::value::Value;
use rukong_engine::warmup::sim::{SimFn, SimSpec, SplitMix64, exact_profile, simulate, workloads};
use rukong_engine::warmup::{Accounting, WarmupConfig, WarmupMode};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;

const USAGE: &str = "usage: warmup [--max-len N] [--cold-ms MS] [--exec-ms MS] [--margin-ms MS] \
[--ttl-ms MS] [--stages N] [--branch-len K] [--draws N] [--seed N] [--json FILE] [--plot DIR]";

struct Args {
    max_len: usize,
    cold_us: u64,
    exec_us: u64,
    cfg: WarmupConfig,
    stages: usize,
    branch_len: usize,
    draws: u64,
    seed: u64,
    json: Option<String>,
    plot: Option<String>,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        max_len: 20,
        cold_us: 500_000,
        exec_us: 50_000,
        cfg: WarmupConfig::default(),
        stages: 2,
        branch_len: 4,
        draws: 1000,
        seed: 1,
        json: None,
        plot: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if matches!(flag.as_str(), "-h" | "--help") {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = args.next();
        match flag.as_str() {
            "--max-len" => a.max_len = flags::value(&flag, v, USAGE)?,
            "--cold-ms" => a.cold_us = flags::ms(&flag, v, USAGE)?,
            "--exec-ms" => a.exec_us = flags::ms(&flag, v, USAGE)?,
            "--margin-ms" => a.cfg.margin_us = flags::ms(&flag, v, USAGE)?,
            "--ttl-ms" => a.cfg.ttl_us = flags::ms(&flag, v, USAGE)?,
            "--stages" => a.stages = flags::value(&flag, v, USAGE)?,
            "--branch-len" => a.branch_len = flags::value(&flag, v, USAGE)?,
            "--draws" => a.draws = flags::value(&flag, v, USAGE)?,
            "--seed" => a.seed = flags::value(&flag, v, USAGE)?,
            "--json" => a.json = Some(v.with_context(|| format!("--json needs a file\n{USAGE}"))?),
            "--plot" => {
                a.plot = Some(v.with_context(|| format!("--plot needs a directory\n{USAGE}"))?)
            }
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    if a.max_len == 0 || a.stages == 0 || a.branch_len == 0 || a.draws == 0 {
        bail!("--max-len, --stages, --branch-len and --draws must be at least 1");
    }
    Ok(a)
}

fn timings(dag: &rukong_core::Dag, a: &Args) -> BTreeMap<String, SimFn> {
    dag.funcs()
        .iter()
        .map(|f| {
            let t = SimFn {
                exec_us: a.exec_us,
                cold_start_us: a.cold_us,
            };
            (f.clone(), t)
        })
        .collect()
}

fn s(us: u64) -> f64 {
    us as f64 / 1e6
}

fn within(x: u64, reference: u64, tol: f64) -> bool {
    (x as f64 - reference as f64).abs() <= tol * reference as f64
}

/// Mean of the accounting over runs, as floats (seconds for times).
#[derive(Default, Clone, Copy)]
struct Mean {
    latency_s: f64,
    c_d_s: f64,
    c_r_s: f64,
    cold_starts: f64,
    wasted: f64,
    replans: f64,
}

impl Mean {
    fn add(&mut self, a: &Accounting, n: f64) {
        self.latency_s += s(a.latency_us) / n;
        self.c_d_s += s(a.c_d_us) / n;
        self.c_r_s += s(a.c_r_us) / n;
        self.cold_starts += a.cold_starts as f64 / n;
        self.wasted += a.hints_wasted as f64 / n;
        self.replans += a.replans as f64 / n;
    }
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let modes = WarmupMode::ALL;
    println!(
        "# Speculative warm-up in simulation\n\ncold start {} ms, exec {} ms, JIT margin {} ms, hint TTL {} ms\n",
        a.cold_us / 1000,
        a.exec_us / 1000,
        a.cfg.margin_us / 1000,
        a.cfg.ttl_us / 1000
    );

    // 1. Chains of length 1..=max_len.
    let mut chain_rows: Vec<(usize, BTreeMap<WarmupMode, Accounting>)> = Vec::new();
    for n in 1..=a.max_len {
        let dag = workloads::chain(n);
        let fns = timings(&dag, &a);
        let profile = exact_profile(&fns, &[]);
        let spec = SimSpec {
            dag: &dag,
            fns,
            default: SimFn {
                exec_us: a.exec_us,
                cold_start_us: a.cold_us,
            },
            outputs: BTreeMap::new(),
            profile: &profile,
        };
        let row = modes
            .iter()
            .map(|&m| (m, simulate(&spec, m, &a.cfg).accounting))
            .collect();
        chain_rows.push((n, row));
    }
    println!("## Chain: end-to-end latency (s) and C_r (warm-instance seconds held before use)\n");
    println!(
        "| n | reactive | speculative | jit | oracle | jit / oracle | C_r reactive | C_r speculative | C_r jit | C_r oracle | C_r jit / reactive |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut latency_ok = true;
    let mut cr_ok = true;
    let mut spec_grows = true;
    let mut prev_spec_excess = 0.0;
    for (n, row) in &chain_rows {
        let g = |m: WarmupMode| &row[&m];
        let (r, sp, j, o) = (
            g(WarmupMode::Reactive),
            g(WarmupMode::Speculative),
            g(WarmupMode::Jit),
            g(WarmupMode::Oracle),
        );
        latency_ok &= within(j.latency_us, o.latency_us, 0.10);
        cr_ok &= within(j.c_r_us, r.c_r_us, 0.10);
        let excess = s(sp.c_r_us) - s(r.c_r_us);
        if *n > 1 {
            spec_grows &= excess > prev_spec_excess;
        }
        prev_spec_excess = excess;
        println!(
            "| {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} |",
            s(r.latency_us),
            s(sp.latency_us),
            s(j.latency_us),
            s(o.latency_us),
            j.latency_us as f64 / o.latency_us as f64,
            s(r.c_r_us),
            s(sp.c_r_us),
            s(j.c_r_us),
            s(o.c_r_us),
            j.c_r_us as f64 / r.c_r_us as f64,
        );
    }
    println!();

    // 2. Branching DAG at two odds, averaged over seeded draws.
    let dag = workloads::branching(a.stages, a.branch_len);
    let fns = timings(&dag, &a);
    let mut branch_rows: Vec<(u32, BTreeMap<WarmupMode, Mean>)> = Vec::new();
    for odds in [90u32, 50] {
        let counts: Vec<(String, u64, u64)> = (0..a.stages)
            .flat_map(|st| {
                [
                    (format!("s{st}a0"), odds as u64, 100 - odds as u64),
                    (format!("s{st}b0"), 100 - odds as u64, odds as u64),
                ]
            })
            .collect();
        let refs: Vec<(&str, u64, u64)> = counts
            .iter()
            .map(|(t, x, y)| (t.as_str(), *x, *y))
            .collect();
        let profile = exact_profile(&fns, &refs);
        let mut rng = SplitMix64::new(a.seed);
        let mut means: BTreeMap<WarmupMode, Mean> = BTreeMap::new();
        for _ in 0..a.draws {
            let outputs: BTreeMap<_, _> = (0..a.stages)
                .map(|st| {
                    let dep = if st == 0 {
                        "root".to_string()
                    } else {
                        format!("m{}", st - 1)
                    };
                    let side = i64::from(rng.next_f64() >= odds as f64 / 100.0);
                    (dag.lookup(&dep).expect("branch point"), Value::Int(side))
                })
                .collect();
            let spec = SimSpec {
                dag: &dag,
                fns: fns.clone(),
                default: SimFn {
                    exec_us: a.exec_us,
                    cold_start_us: a.cold_us,
                },
                outputs,
                profile: &profile,
            };
            for m in modes {
                let acc = simulate(&spec, m, &a.cfg).accounting;
                means.entry(m).or_default().add(&acc, a.draws as f64);
            }
        }
        branch_rows.push((odds, means));
    }
    println!(
        "## Branching: {} if/else stages of {} tasks per side, means over {} seeded draws (seed {})\n",
        a.stages, a.branch_len, a.draws, a.seed
    );
    println!(
        "| odds | mode | latency (s) | C_d (s) | C_r (s) | cold starts | hints wasted | re-plans |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for (odds, means) in &branch_rows {
        for (m, x) in means {
            println!(
                "| {odds}/{} | {m} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} |",
                100 - odds,
                x.latency_s,
                x.c_d_s,
                x.c_r_s,
                x.cold_starts,
                x.wasted,
                x.replans
            );
        }
    }
    println!();
    println!("## Targets\n");
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "- JIT latency within 10% of oracle at every chain length: {}",
        verdict(latency_ok)
    );
    println!(
        "- JIT C_r within 10% of reactive's at every chain length: {}",
        verdict(cr_ok)
    );
    println!(
        "- speculative C_r in excess of reactive's grows with chain length: {}",
        verdict(spec_grows)
    );

    if let Some(path) = &a.json {
        let acc = |x: &Accounting| serde_json::to_value(x).unwrap_or(Json::Null);
        let doc = json!({
            "cold_start_ms": a.cold_us as f64 / 1e3,
            "exec_ms": a.exec_us as f64 / 1e3,
            "config": serde_json::to_value(&a.cfg)?,
            "chain": chain_rows.iter().map(|(n, row)| json!({
                "n": n,
                "modes": row.iter().map(|(m, x)| (m.to_string(), acc(x))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "branching": {
                "stages": a.stages, "branch_len": a.branch_len, "draws": a.draws, "seed": a.seed,
                "rows": branch_rows.iter().map(|(odds, means)| json!({
                    "odds": format!("{odds}/{}", 100 - odds),
                    "modes": means.iter().map(|(m, x)| (m.to_string(), json!({
                        "latency_s": x.latency_s, "c_d_s": x.c_d_s, "c_r_s": x.c_r_s,
                        "cold_starts": x.cold_starts, "hints_wasted": x.wasted, "replans": x.replans,
                    }))).collect::<serde_json::Map<_, _>>(),
                })).collect::<Vec<_>>(),
            },
            "targets": {
                "jit_latency_within_10pct_of_oracle": latency_ok,
                "jit_cr_within_10pct_of_reactive": cr_ok,
                "speculative_cr_excess_grows": spec_grows,
            },
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("write {path}"))?;
        eprintln!("wrote {path}");
    }
    if let Some(dir) = &a.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("create {dir}"))?;
        let points = |f: &dyn Fn(&Accounting) -> u64| -> Vec<Point> {
            chain_rows
                .iter()
                .flat_map(|(n, row)| {
                    row.iter()
                        .map(move |(m, x)| (*n, *m, x))
                        .collect::<Vec<_>>()
                })
                .map(|(n, m, x)| Point {
                    family: m.to_string(),
                    tasks: n,
                    wall_ms: f(x) as f64 / 1e3,
                })
                .collect()
        };
        let lat = scaling_svg(
            &points(&|x| x.latency_us),
            "Chain: end-to-end latency (ms) vs chain length",
        );
        let cr = scaling_svg(
            &points(&|x| x.c_r_us),
            "Chain: C_r (warm ms held before use) vs chain length",
        );
        for (name, svg) in [("warmup-latency.svg", lat), ("warmup-cr.svg", cr)] {
            let p = std::path::Path::new(dir).join(name);
            std::fs::write(&p, svg).with_context(|| format!("write {}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}

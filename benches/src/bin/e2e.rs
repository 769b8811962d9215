//! `rukong-e2e`: end-to-end throughput of the embedded deployment, or (`--mode cluster`) of
//! a loopback cluster; cluster mode lives in [`rukong_benches::cluster`].
//!
//! Embedded mode:
//! One [`Local`] is started and reused for every run (a warm executor). Each workload's DAG
//! is generated once; every run gets a clone, made outside the timed region. A run is timed
//! two ways: the report's `wall` (submission — validation and scheduling included — to the
//! job's end) and an outer clock around `local.run`, which also covers freeing the job. Every
//! run's outputs are checked against the workload's closed-form expectation.
//!
//! ```text
//! cargo run --release -p rukong-benches --bin rukong-e2e -- \
//!     [--mode embedded|cluster] [--workload NAME]... [--repeats N] [--warmup N] [--slots N]
//!     [--json FILE] [--executors N] [--rukong PATH] [--poll-ms MS]
//! ```

use anyhow::{Context, Result, bail};
use rukong_benches::{
    Args, Mode, Summary, TARGET_TASKS_PER_SEC, USAGE, check_outputs, ms, parse_args, thousands,
};
use rukong_client::workloads::Workload;
use rukong_client::{DagSpec, Local, LocalConfig};
use rukong_core::messages::JobState;
use rukong_core::{TaskId, Value};
use serde_json::json;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The timings of one workload.
struct Measured {
    workload: Workload,
    tasks: usize,
    /// `report.wall` of each timed run, in ms.
    wall_ms: Vec<f64>,
    /// The outer clock around `local.run` of each timed run, in ms.
    outer_ms: Vec<f64>,
}

impl Measured {
    fn wall(&self) -> Summary {
        Summary::of(&self.wall_ms).expect("at least one timed run")
    }

    fn outer(&self) -> Summary {
        Summary::of(&self.outer_ms).expect("at least one timed run")
    }

    /// Tasks per second at the median `wall`.
    fn tasks_per_sec(&self) -> f64 {
        self.tasks as f64 / (self.wall().median / 1e3)
    }

    /// Microseconds per task at the median `wall`.
    fn us_per_task(&self) -> f64 {
        self.wall().median * 1e3 / self.tasks as f64
    }
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("rukong-e2e: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let args = parse_args(std::env::args().skip(1))?;
    if args.help {
        print!("{USAGE}");
        return Ok(());
    }
    if args.mode == Mode::Cluster {
        return rukong_benches::cluster::main(&args);
    }

    let mut config = LocalConfig::default();
    if let Some(slots) = args.slots {
        config.slots = slots;
    }
    let local = Local::start(config).context("starting the embedded deployment")?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    println!("rukong-e2e: embedded mode (engine + executor + proxy in-process, in-memory store)");
    println!(
        "machine: {} cores (available_parallelism), {}/{}; executor slots: {}",
        cores,
        std::env::consts::OS,
        std::env::consts::ARCH,
        local.slots()
    );
    println!(
        "runs: {} warmup + {} timed per workload, one warm deployment for all",
        args.warmup, args.repeats
    );
    if cfg!(debug_assertions) {
        println!("WARNING: debug build; numbers are meaningless (use --release)");
    }
    println!();

    let mut results = Vec::with_capacity(args.workloads.len());
    for &w in &args.workloads {
        results.push(measure(&local, w, &args)?);
    }

    print_table(&results);
    println!();
    if let Some(path) = &args.plot {
        let points: Vec<rukong_benches::plot::Point> = results
            .iter()
            .map(|m| rukong_benches::plot::Point {
                family: rukong_benches::family(&m.workload),
                tasks: m.tasks,
                wall_ms: m.wall().median,
            })
            .collect();
        let title = format!(
            "rukong embedded, {} slots, median of {} runs",
            local.slots(),
            args.repeats
        );
        std::fs::write(path, rukong_benches::plot::scaling_svg(&points, &title))
            .with_context(|| format!("writing {path}"))?;
        println!("scaling curves: {path}");
    }
    let target = target_check(&results);
    println!("{}", target.line);

    if let Some(path) = &args.json {
        let doc = to_json(&args, cores, local.slots(), &results, &target);
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {path}"))?;
        println!("wrote {path}");
    }
    Ok(())
}

/// Runs one workload `warmup + repeats` times, checking every run.
fn measure(local: &Local, w: Workload, args: &Args) -> Result<Measured> {
    let name = w.name();
    let spec = w.generate();
    let expected = w.expected();
    let tasks = w.task_count();
    if spec.tasks.len() != tasks {
        bail!(
            "{name}: generator made {} tasks, expected {tasks}",
            spec.tasks.len()
        );
    }
    eprintln!(
        "running {name} ({} tasks): {} warmup + {} timed",
        thousands(tasks as u64),
        args.warmup,
        args.repeats
    );

    let mut wall_ms = Vec::with_capacity(args.repeats);
    let mut outer_ms = Vec::with_capacity(args.repeats);
    for i in 0..args.warmup + args.repeats {
        let warm = i < args.warmup;
        let run = if warm {
            format!("warmup run {}", i + 1)
        } else {
            format!("run {}", i - args.warmup + 1)
        };
        let (wall, outer) =
            run_once(local, &spec, &expected, tasks).with_context(|| format!("{name}, {run}"))?;
        if !warm {
            wall_ms.push(wall);
            outer_ms.push(outer);
        }
    }
    Ok(Measured {
        workload: w,
        tasks,
        wall_ms,
        outer_ms,
    })
}

/// One checked run: `(report.wall, outer)` in ms.
fn run_once(
    local: &Local,
    spec: &DagSpec,
    expected: &[(TaskId, Value)],
    tasks: usize,
) -> Result<(f64, f64)> {
    let spec = spec.clone();
    let start = Instant::now();
    let report = local.run(spec);
    let outer = start.elapsed();
    let report = report.context("the job did not run")?;
    if report.state != JobState::Succeeded {
        bail!("the job ended {:?}, not Succeeded", report.state);
    }
    check_outputs(&report.outputs, expected).context("wrong outputs")?;
    if report.tasks != tasks as u64 {
        bail!("the job ran {} tasks, expected {tasks}", report.tasks);
    }
    Ok((ms(report.wall), ms(outer)))
}

fn print_table(results: &[Measured]) {
    println!(
        "{:<26} {:>10} {:>11} {:>11} {:>11} {:>12} {:>9} {:>13}",
        "workload", "tasks", "median ms", "min ms", "max ms", "tasks/s", "µs/task", "outer med ms"
    );
    println!("{}", "-".repeat(26 + 10 + 11 * 3 + 12 + 9 + 13 + 7));
    for m in results {
        let wall = m.wall();
        println!(
            "{:<26} {:>10} {:>11.3} {:>11.3} {:>11.3} {:>12} {:>9.3} {:>13.3}",
            m.workload.name(),
            thousands(m.tasks as u64),
            wall.median,
            wall.min,
            wall.max,
            thousands(m.tasks_per_sec().round() as u64),
            m.us_per_task(),
            m.outer().median
        );
    }
    println!(
        "wall = report.wall (submission incl. validation + scheduling, to the job's end); \
         outer = clock around local.run (also frees the job); tasks/s and µs/task at the median wall"
    );
}

struct Target {
    line: String,
    /// `None` when tree reduction N = 65,536 was not run.
    met: Option<bool>,
    tasks_per_sec: Option<f64>,
    us_per_task: Option<f64>,
}

fn target_check(results: &[Measured]) -> Target {
    let tree = results
        .iter()
        .find(|m| m.workload == Workload::TreeReduction { leaves: 65_536 });
    let Some(m) = tree else {
        return Target {
            line: "target check: skipped (tree:65536 was not run)".into(),
            met: None,
            tasks_per_sec: None,
            us_per_task: None,
        };
    };
    let tps = m.tasks_per_sec();
    let us = m.us_per_task();
    let met = tps >= TARGET_TASKS_PER_SEC;
    let line = format!(
        "target check: tree reduction N=65,536 in embedded mode runs {} tasks/s ({:.3} µs/task) \
         at the median wall: {} the target of >= {} tasks/s (<= {:.0} µs/task)",
        thousands(tps.round() as u64),
        us,
        if met { "MEETS" } else { "DOES NOT MEET" },
        thousands(TARGET_TASKS_PER_SEC as u64),
        1e6 / TARGET_TASKS_PER_SEC
    );
    Target {
        line,
        met: Some(met),
        tasks_per_sec: Some(tps),
        us_per_task: Some(us),
    }
}

fn summary_json(s: Summary) -> serde_json::Value {
    json!({ "median": s.median, "min": s.min, "max": s.max, "mean": s.mean })
}

fn to_json(
    args: &Args,
    cores: usize,
    slots: usize,
    results: &[Measured],
    target: &Target,
) -> serde_json::Value {
    let unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "tool": "rukong-e2e",
        "mode": "embedded",
        "unix_time": unix_secs,
        "machine": rukong_benches::machine_json(cores),
        "slots": slots,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "workloads": results.iter().map(|m| json!({
            "name": m.workload.name(),
            "tasks": m.tasks,
            "wall_ms": summary_json(m.wall()),
            "outer_ms": summary_json(m.outer()),
            "tasks_per_sec": m.tasks_per_sec(),
            "us_per_task": m.us_per_task(),
            "samples": { "wall_ms": m.wall_ms, "outer_ms": m.outer_ms },
        })).collect::<Vec<_>>(),
        "target": {
            "workload": "tree-reduction-65536",
            "tasks_per_sec_required": TARGET_TASKS_PER_SEC,
            "tasks_per_sec": target.tasks_per_sec,
            "us_per_task": target.us_per_task,
            "met": target.met,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_workloads_run_and_check_on_one_deployment() {
        let local = Local::start(LocalConfig::default()).unwrap();
        let args =
            parse_args(["--workload", "diamond", "--repeats", "2", "--warmup", "1"]).unwrap();
        for w in [
            Workload::Diamond,
            Workload::TreeReduction { leaves: 9 },
            Workload::FanoutFanin { width: 12 },
            Workload::Chain { length: 7 },
        ] {
            let m = measure(&local, w, &args).unwrap();
            assert_eq!(m.tasks, w.task_count());
            assert_eq!((m.wall_ms.len(), m.outer_ms.len()), (2, 2));
            assert!(m.tasks_per_sec() > 0.0);
        }
    }

    #[test]
    fn wrong_outputs_are_an_error() {
        let local = Local::start(LocalConfig::default()).unwrap();
        let w = Workload::Diamond;
        let wrong = vec![(TaskId::from("d"), Value::Int(11))];
        let err = run_once(&local, &w.generate(), &wrong, w.task_count()).unwrap_err();
        assert!(format!("{err:#}").contains("wrong outputs"), "{err:#}");
    }
}

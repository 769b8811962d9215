//! What `rukong-e2e --mode cluster` prints and writes: the table, the busiest Redis
//! commands, the target checks and the JSON document.

use super::*;

pub(super) fn print_table(results: &[Measured]) {
    println!(
        "{:<26} {:>10} {:>11} {:>11} {:>11} {:>12} {:>9} {:>13} {:>13} {:>15} {:>16} {:>12}",
        "workload",
        "tasks",
        "median ms",
        "min ms",
        "max ms",
        "tasks/s",
        "µs/task",
        "engine med ms",
        "submit med ms",
        "redis cmds/task",
        "round trips/task",
        "redis B/task"
    );
    println!(
        "{}",
        "-".repeat(26 + 10 + 11 * 3 + 12 + 9 + 13 * 2 + 15 + 17 + 13 + 10)
    );
    for m in results {
        let wall = m.wall();
        println!(
            "{:<26} {:>10} {:>11.3} {:>11.3} {:>11.3} {:>12} {:>9.3} {:>13.3} {:>13.3} {:>15.3} {:>16.4} {:>12.0}",
            m.workload.name(),
            thousands(m.tasks as u64),
            wall.median,
            wall.min,
            wall.max,
            thousands(m.tasks_per_sec().round() as u64),
            m.us_per_task(),
            m.engine().median,
            m.submit().median,
            m.redis_per_task(),
            m.round_trips_per_task(),
            m.redis_bytes_per_task()
        );
    }
    println!(
        "wall = submission start to the status poll that saw the job's end (HTTP submit, engine \
         parse + validate + schedule, run, <= 1 poll interval); engine = the engine's elapsed_ms; \
         submit = POST /jobs round trip; tasks/s and µs/task at the median wall; redis cmds/task \
         = INFO commandstats calls over the timed runs / (tasks x repeats), commands inside Lua \
         scripts included; round trips/task = client round trips Redis served (INFO stats \
         total_reads_processed, the harness's own calls excluded) / (tasks x repeats); redis \
         B/task = the median run's peak Redis used_memory (sampled every 20 ms) above its level \
         at submission, per task"
    );
}

pub(super) fn print_commands(results: &[Measured]) {
    println!(
        "top {TOP_COMMANDS} redis commands per workload: calls per task (calls) over the timed \
         runs; commands that Lua scripts (EVALSHA) run are counted too"
    );
    for m in results {
        let runs = (m.tasks * m.samples.len()) as f64;
        let top: Vec<String> = redis_stats::top(&m.redis, TOP_COMMANDS)
            .into_iter()
            .map(|(name, s)| {
                format!(
                    "{name} {:.3} ({})",
                    s.calls as f64 / runs,
                    thousands(s.calls)
                )
            })
            .collect();
        println!(
            "  {:<26} {}",
            m.workload.name(),
            if top.is_empty() {
                "(none)".to_owned()
            } else {
                top.join(", ")
            }
        );
    }
}

/// One cluster-mode target line.
pub struct Target {
    pub name: &'static str,
    pub workload: Workload,
    pub line: String,
    /// `None` when the workload was not run.
    pub met: Option<bool>,
    pub measured: Option<f64>,
    pub required: f64,
    pub unit: &'static str,
}

pub fn target_checks(results: &[Measured]) -> Vec<Target> {
    let find = |w: Workload| results.iter().find(|m| m.workload == w);
    let mut out = Vec::new();
    for w in [
        Workload::TreeReduction { leaves: 65_536 },
        Workload::FanoutFanin { width: 100_000 },
    ] {
        let name = w.name();
        out.push(match find(w) {
            None => Target {
                name: "us_per_task",
                workload: w,
                line: format!("target check: {name}: skipped (not run)"),
                met: None,
                measured: None,
                required: CLUSTER_TARGET_US_PER_TASK,
                unit: "µs/task",
            },
            Some(m) => {
                let us = m.us_per_task();
                let met = us <= CLUSTER_TARGET_US_PER_TASK;
                Target {
                    name: "us_per_task",
                    workload: w,
                    line: format!(
                        "target check: {name} in cluster mode: {:.3} µs/task ({} tasks/s) at the \
                         median wall; target <= {CLUSTER_TARGET_US_PER_TASK:.0} µs/task \
                         (>= {} tasks/s): {}",
                        us,
                        thousands(m.tasks_per_sec().round() as u64),
                        thousands((1e6 / CLUSTER_TARGET_US_PER_TASK).floor() as u64),
                        if met { "PASS" } else { "MISS" }
                    ),
                    met: Some(met),
                    measured: Some(us),
                    required: CLUSTER_TARGET_US_PER_TASK,
                    unit: "µs/task",
                }
            }
        });
    }
    let w = Workload::Chain { length: 10_000 };
    let name = w.name();
    out.push(match find(w) {
        None => Target {
            name: "wall_ms",
            workload: w,
            line: format!("target check: {name}: skipped (not run)"),
            met: None,
            measured: None,
            required: CLUSTER_TARGET_CHAIN_MS,
            unit: "ms",
        },
        Some(m) => {
            let wall = m.wall().median;
            let met = wall < CLUSTER_TARGET_CHAIN_MS;
            Target {
                name: "wall_ms",
                workload: w,
                line: format!(
                    "target check: {name} in cluster mode: {:.3} s median wall (engine {:.3} s); \
                     target < {:.1} s: {}",
                    wall / 1e3,
                    m.engine().median / 1e3,
                    CLUSTER_TARGET_CHAIN_MS / 1e3,
                    if met { "PASS" } else { "MISS" }
                ),
                met: Some(met),
                measured: Some(wall),
                required: CLUSTER_TARGET_CHAIN_MS,
                unit: "ms",
            }
        }
    });
    out
}

fn summary_json(s: Summary) -> serde_json::Value {
    json!({ "median": s.median, "min": s.min, "max": s.max, "mean": s.mean })
}

fn stat_json(s: &CmdStat, per: f64) -> serde_json::Value {
    json!({ "calls": s.calls, "usec": s.usec, "calls_per_task": s.calls as f64 / per })
}

pub(super) fn to_json(
    args: &Args,
    cores: usize,
    slots: usize,
    rukong: &Path,
    engine_url: &str,
    results: &[Measured],
    targets: &[Target],
) -> serde_json::Value {
    let unix_secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "tool": "rukong-e2e",
        "mode": "cluster",
        "unix_time": unix_secs,
        "machine": crate::machine_json(cores),
        "executors": args.executors,
        "slots": slots,
        "slots_per_executor": slots,
        "poll_ms": args.poll_ms,
        "rukong": rukong.display().to_string(),
        "engine_url": engine_url,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "workloads": results.iter().map(|m| {
            let per = (m.tasks * m.samples.len()) as f64;
            json!({
                "name": m.workload.name(),
                "tasks": m.tasks,
                "wall_ms": summary_json(m.wall()),
                "engine_ms": summary_json(m.engine()),
                "submit_ms": summary_json(m.submit()),
                "tasks_per_sec": m.tasks_per_sec(),
                "us_per_task": m.us_per_task(),
                "redis_bytes_per_task": m.redis_bytes_per_task(),
                "redis_round_trips_per_task": m.round_trips_per_task(),
                "samples": {
                    "wall_ms": m.samples.iter().map(|s| s.wall).collect::<Vec<_>>(),
                    "engine_ms": m.samples.iter().map(|s| s.engine).collect::<Vec<_>>(),
                    "submit_ms": m.samples.iter().map(|s| s.submit).collect::<Vec<_>>(),
                },
                "redis": {
                    "calls": redis_stats::total_calls(&m.redis),
                    "calls_per_task": m.redis_per_task(),
                    "top": redis_stats::top(&m.redis, TOP_COMMANDS).iter().map(|(name, s)| {
                        let mut j = stat_json(s, per);
                        j["command"] = json!(name);
                        j
                    }).collect::<Vec<_>>(),
                    "commands": m.redis.iter()
                        .map(|(name, s)| (name.clone(), stat_json(s, per)))
                        .collect::<serde_json::Map<_, _>>(),
                },
            })
        }).collect::<Vec<_>>(),
        "targets": targets.iter().map(|t| json!({
            "workload": t.workload.name(),
            "metric": t.name,
            "unit": t.unit,
            "required": t.required,
            "measured": t.measured,
            "met": t.met,
        })).collect::<Vec<_>>(),
    })
}

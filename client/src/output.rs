//! The CLI's output contract (DESIGN §3): one JSON object
//! `{"job": id, "outputs": {task: value}, "stats": {...}}`; bytes render as
//! `{"bytes": N, "sha256": hex}`.

use rukong_core::messages::JobState;
use rukong_engine::JobReport;
use serde_json::{Map, Value as J, json};

/// The `stats` object.
pub fn stats_json(r: &JobReport, slots: usize) -> J {
    let secs = r.wall.as_secs_f64();
    let s = &r.stats;
    json!({
        "state": state_name(&r.state),
        "tasks": r.tasks,
        "wall_ms": round3(secs * 1e3),
        "tasks_per_sec": if secs > 0.0 { (r.tasks as f64 / secs).round() } else { 0.0 },
        "us_per_task": if r.tasks > 0 { round3(secs * 1e6 / r.tasks as f64) } else { 0.0 },
        "slots": slots,
        "cold_starts": s.cold_starts,
        "init_us": s.init_us,
        "objects_put": s.objects_put,
        "object_bytes": s.object_bytes,
        "invocations_sent": s.invocations_sent,
        "proxy_fanouts": s.proxy_fanouts,
        "warm_hits": s.warm_hits,
        "bundled": s.bundled,
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn state_name(s: &JobState) -> &'static str {
    match s {
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed { .. } => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// The whole report as the CLI's JSON object. A failed job carries
/// `"error": {"task": id, "message": text}`.
pub fn report_json(r: &JobReport, slots: usize) -> J {
    let outputs: Map<String, J> = r
        .outputs
        .iter()
        .map(|(id, v)| (id.to_string(), v.to_output_json()))
        .collect();
    let mut o = json!({
        "job": r.job.as_str(),
        "outputs": outputs,
        "stats": stats_json(r, slots),
    });
    if let JobState::Failed { task, error } = &r.state {
        o["error"] = json!({"task": task.as_str(), "message": error});
    }
    o
}

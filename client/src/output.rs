//! The CLI's output contract (`docs/dag-format.md`): one JSON object
//! `{"job": id, "outputs": {task: value}, "skipped": [task], "stats": {...}}`; bytes render
//! as `{"bytes": N, "sha256": hex}`. A skipped output (`docs/conditional-branches.md`) has no
//! value: it is not in `outputs` but in `skipped` (always present, often empty), and the plain text
//! form prints it as `task: (skipped)`.

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
        "skipped": s.skipped,
        "hints_issued": s.hints_issued,
        "hints_warmed": s.hints_warmed,
        "hints_noop": s.hints_noop,
        "hints_used": s.hints_used,
        "hints_wasted": s.hints_wasted,
        "hints_cancelled": s.hints_cancelled,
        "replans": s.replans,
        "hint_init_us": s.hint_init_us,
        "warm_idle_us": s.warm_idle_us,
        "redrives": s.redrives,
        "duplicates": s.duplicates,
        "kept_local": s.kept_local,
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
    let skipped: Vec<&str> = r.skipped.iter().map(|t| t.as_str()).collect();
    let mut o = json!({
        "job": r.job.as_str(),
        "outputs": outputs,
        "skipped": skipped,
        "stats": stats_json(r, slots),
    });
    if let JobState::Failed { task, error } = &r.state {
        o["error"] = json!({"task": task.as_str(), "message": error});
    }
    o
}

/// The plain text form of a job's outputs: one `task: value` line per output that ran, in
/// the DAG's order, then one `task: (skipped)` line per skipped output.
pub fn output_lines(r: &JobReport) -> Vec<String> {
    let mut lines: Vec<String> = r
        .outputs
        .iter()
        .map(|(id, v)| format!("{id}: {}", v.to_output_json()))
        .collect();
    lines.extend(r.skipped.iter().map(|id| format!("{id}: (skipped)")));
    lines
}

/// [`output_lines`] for a cluster engine's answer `{"outputs": {...}, "skipped": [...]}`.
pub fn output_lines_json(o: &J) -> Vec<String> {
    let mut lines: Vec<String> = o["outputs"]
        .as_object()
        .map(|m| m.iter().map(|(id, v)| format!("{id}: {v}")).collect())
        .unwrap_or_default();
    if let Some(skipped) = o["skipped"].as_array() {
        lines.extend(
            skipped
                .iter()
                .filter_map(J::as_str)
                .map(|id| format!("{id}: (skipped)")),
        );
    }
    lines
}

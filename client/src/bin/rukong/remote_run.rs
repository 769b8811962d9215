//! `rukong run FILE --engine URL`: submit to a cluster, follow the job, print the same
//! output contract as embedded mode.

use super::*;

/// Text DAGs larger than this are sent in the compact form.
const COMPACT_ABOVE: usize = 1 << 20;

/// `rukong run FILE --engine URL`: submit to a cluster, follow it, print the same output
/// contract as embedded mode.
pub(crate) fn run_remote(args: &RunArgs, engine: &str) -> ExitCode {
    let body = if args.file.as_os_str() == "-" {
        let mut b = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut b) {
            eprintln!("error: standard input: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
        b
    } else {
        match std::fs::read(&args.file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", args.file.display());
                return ExitCode::from(EXIT_INVALID);
            }
        }
    };
    let ctype = match args
        .file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => "application/json",
        Some("yaml" | "yml") => "application/yaml",
        Some("msgpack" | "mpk") => "application/msgpack",
        _ if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') => "application/json",
        _ => "application/yaml",
    };
    // A large text DAG is parsed here and sent in the compact form: a fraction of the
    // bytes, and no text parsing in the engine. A parse error is reported as locally.
    let spec = if body.len() > COMPACT_ABOVE && ctype != "application/msgpack" {
        let parsed = std::str::from_utf8(&body)
            .map_err(|e| DagError::Parse {
                format: "text",
                line: 0,
                column: 0,
                message: format!("not UTF-8: {e}"),
            })
            .and_then(|text| {
                let format = if ctype == "application/json" {
                    DagFormat::Json
                } else {
                    DagFormat::Yaml
                };
                DagSpec::parse(text, format)
            });
        match parsed {
            Ok(spec) => Some(spec),
            Err(e) => return invalid(&args.file, &e),
        }
    } else {
        None
    };
    let client = EngineClient::new(engine, args.token.clone(), Duration::from_secs(60));
    let started = Instant::now();
    let trace = args.timeline.is_some();
    let submitted = match &spec {
        Some(spec) => client.submit_spec_traced(spec, trace),
        None => client.submit_bytes_traced(&body, ctype, trace),
    };
    drop(spec);
    let job = match submitted {
        Ok(j) => j,
        Err(e) if e.is_invalid_dag() => return invalid_remote(&args.file, &e),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_TASK_FAILED);
        }
    };
    let timeout = args
        .timeout
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(Duration::from_secs_f64);
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} tasks ({per_sec})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut shown = args.no_progress;
    let waited = client.wait(&job, timeout, Duration::from_secs(5), |done, total| {
        if !shown && started.elapsed() > Duration::from_secs(1) {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let st = match waited {
        Ok(s) => s,
        Err(e) => {
            if matches!(e, RemoteError::Timeout { .. }) {
                let _ = client.cancel(&job);
            }
            eprintln!("error: job {job}: {e}");
            return ExitCode::from(EXIT_TASK_FAILED);
        }
    };
    let wall = started.elapsed().as_secs_f64();
    // Tasks run (`done` also counts skipped tasks, for progress).
    let tasks = st.json["stats"]["tasks"]
        .as_u64()
        .unwrap_or_else(|| st.done());
    let mut out = serde_json::json!({
        "job": job.as_str(),
        "outputs": {},
        "skipped": [],
        "stats": {
            "state": st.state(),
            "tasks": tasks,
            "wall_ms": (wall * 1e6).round() / 1e3,
            "tasks_per_sec": if wall > 0.0 { (tasks as f64 / wall).round() } else { 0.0 },
            "us_per_task": if tasks > 0 { (wall * 1e9 / tasks as f64).round() / 1e3 } else { 0.0 },
            "engine": engine,
        },
    });
    if let Some(st_stats) = st.json.get("stats").and_then(|v| v.as_object()) {
        for (k, v) in st_stats {
            if k != "tasks" {
                out["stats"][k] = v.clone();
            }
        }
    }
    match st.state() {
        "succeeded" => match client.outputs_and_skipped(&job) {
            Ok(mut o) => {
                out["outputs"] = o["outputs"].take();
                out["skipped"] = match o["skipped"].take() {
                    serde_json::Value::Null => serde_json::json!([]),
                    s => s,
                };
            }
            Err(e) => {
                eprintln!("error: job {job} succeeded but its outputs could not be fetched: {e}");
                return ExitCode::from(EXIT_TASK_FAILED);
            }
        },
        "failed" => out["error"] = st.json["error"].clone(),
        _ => {}
    }
    if let Some(path) = &args.timeline {
        match client.trace(&job) {
            Ok(trace) => write_timeline(path, &trace, &format!("{} on {engine}", job)),
            Err(e) => eprintln!("error: could not fetch the trace for the timeline: {e}"),
        }
    }
    if args.json {
        println!("{out}");
    } else {
        for line in rukong_client::output::output_lines_json(&out) {
            println!("{line}");
        }
    }
    match st.state() {
        "succeeded" => {
            eprintln!("ok: job {job} ran {tasks} tasks in {wall:.3} s on {engine}");
            ExitCode::SUCCESS
        }
        "failed" => {
            eprintln!(
                "error: task {} failed: {}",
                st.json["error"]["task"].as_str().unwrap_or("-"),
                st.json["error"]["message"].as_str().unwrap_or("")
            );
            ExitCode::from(EXIT_TASK_FAILED)
        }
        other => {
            eprintln!("error: job {job} ended {other}");
            ExitCode::from(EXIT_TASK_FAILED)
        }
    }
}

pub(crate) fn invalid_remote(file: &Path, e: &RemoteError) -> ExitCode {
    match e {
        RemoteError::Http { message, .. } => eprintln!("error: {}: {message}", file.display()),
        e => eprintln!("error: {}: {e}", file.display()),
    }
    ExitCode::from(EXIT_INVALID)
}

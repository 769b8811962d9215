//! The file tools: `validate`, `gen`, `graph`, `import`, `bench`, and timelines.

use super::*;
use rukong_executor::functions::builtins::process::NAME as PROCESS;

pub(crate) fn validate_file(file: &Path) -> ExitCode {
    let spec = match read_spec(file) {
        Ok(s) => s,
        Err(e) => return invalid(file, &e),
    };
    let registry = Registry::with_builtins();
    // `process` is a built-in that executors turn on with an allow-list: a DAG may use it.
    let known = |f: &str| registry.contains(f) || f == PROCESS;
    let t0 = Instant::now();
    match validate(spec, &Limits::default(), &known) {
        Ok(dag) => {
            println!(
                "ok: {} tasks, {} edges, {} sources, {} sinks (validated in {:.1} ms)",
                dag.len(),
                dag.edge_count(),
                dag.sources().len(),
                dag.sink_count(),
                t0.elapsed().as_secs_f64() * 1e3
            );
            ExitCode::SUCCESS
        }
        Err(e) => invalid(file, &e),
    }
}

pub(crate) fn generate(spec: DagSpec, format: Format) -> ExitCode {
    let text = match format {
        Format::Yaml => to_yaml(&spec),
        Format::Json => spec.to_json() + "\n",
    };
    let mut out = std::io::stdout().lock();
    if out.write_all(text.as_bytes()).is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

pub(crate) fn graph(file: &Path, format: GraphFormat, proxy_fanout: u32) -> ExitCode {
    let spec = match read_spec(file) {
        Ok(s) => s,
        Err(e) => return invalid(file, &e),
    };
    let registry = Registry::with_builtins();
    // `process` is a built-in that executors turn on with an allow-list: a DAG may use it.
    let known = |f: &str| registry.contains(f) || f == PROCESS;
    let dag = match validate(spec, &Limits::default(), &known) {
        Ok(d) => d,
        Err(e) => return invalid(file, &e),
    };
    let schedule = rukong_core::schedule::schedule(&dag, proxy_fanout);
    let dot = rukong_client::graph::to_dot(&dag, &schedule);
    let bytes = match format {
        GraphFormat::Dot => dot.into_bytes(),
        GraphFormat::Svg => match rukong_client::graph::dot_to_svg(&dot) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    if std::io::stdout().lock().write_all(&bytes).is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

pub(crate) fn import_wfformat(
    file: &Path,
    time_scale: f64,
    size_scale: f64,
    spin: bool,
    max_blob: usize,
) -> ExitCode {
    use rukong_client::wfformat::{ImportOptions, Mode, import};
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let opts = ImportOptions {
        time_scale,
        size_scale,
        mode: if spin { Mode::Spin } else { Mode::Sleep },
        max_blob,
    };
    match import(&text, &opts) {
        Ok(spec) => {
            if std::io::stdout()
                .lock()
                .write_all(to_yaml(&spec).as_bytes())
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::from(EXIT_INVALID)
        }
    }
}

/// Hands `rukong bench …` to the harness binary next to this one.
pub(crate) fn bench(args: &[String]) -> ExitCode {
    let harness = std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name("rukong-e2e"))
        .filter(|p| p.is_file());
    let Some(harness) = harness else {
        eprintln!(
            "error: the benchmark harness rukong-e2e is not built next to this binary; build it with `cargo build --release -p rukong-client -p rukong-benches`"
        );
        return ExitCode::from(EXIT_INVALID);
    };
    match std::process::Command::new(&harness).args(args).status() {
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", harness.display());
            ExitCode::FAILURE
        }
    }
}

/// Draws a timeline (SVG, or HTML for a `.html`/`.htm` path) and reports where it went.
pub(crate) fn write_timeline(path: &Path, trace: &[rukong_engine::TracedTask], title: &str) {
    let html = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    let doc = if html {
        rukong_client::timeline::render_html(trace, title)
    } else {
        rukong_client::timeline::render_svg(trace, title)
    };
    match std::fs::write(path, doc) {
        Ok(()) => eprintln!("timeline: {} ({} task runs)", path.display(), trace.len()),
        Err(e) => eprintln!(
            "error: cannot write the timeline to {}: {e}",
            path.display()
        ),
    }
}

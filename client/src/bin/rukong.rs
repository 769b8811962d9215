//! The `rukong` command line.
//!
//! Exit codes: 0 success, 1 a task failed, 2 the DAG or the usage is invalid.

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rukong_client::output::{report_json, state_name};
use rukong_client::workloads::{Workload, to_yaml};
use rukong_client::{Local, LocalConfig, RunError};
use rukong_core::dag::{DagFormat, DagSpec, validate};
use rukong_core::messages::JobState;
use rukong_core::{DagError, Limits};
use rukong_executor::Registry;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "rukong",
    version,
    about = "A decentralized, actor-based DAG engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a DAG file (YAML or JSON; `-` reads standard input) in embedded mode.
    Run(RunArgs),
    /// Check a DAG file without running it.
    Validate { file: PathBuf },
    /// Print a generated workload DAG (YAML, or JSON with --format json).
    Gen {
        #[command(subcommand)]
        workload: GenWorkload,
        #[arg(long, value_enum, default_value_t = Format::Yaml, global = true)]
        format: Format,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    file: PathBuf,
    /// Print one JSON object {"job", "outputs", "stats"} on stdout.
    #[arg(long)]
    json: bool,
    /// Executor slots (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    slots: Option<u32>,
    /// Outputs up to this many bytes travel inline; larger ones go through the object store.
    #[arg(long, default_value_t = 64 * 1024)]
    inline_limit: usize,
    /// Fan-outs of at least this out-degree are handed to the KV-store proxy.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..))]
    proxy_fanout: u32,
    /// Give up (exit 1) when the job has not finished after this many seconds.
    #[arg(long)]
    timeout: Option<f64>,
    /// Never show the progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Subcommand, Debug, Clone, Copy)]
enum GenWorkload {
    /// N `const` leaves summed pairwise by `add`.
    TreeReduction {
        #[arg(long, default_value_t = 1024)]
        leaves: usize,
    },
    /// One source, W children, one sink over them all.
    FanoutFanin {
        #[arg(long, default_value_t = 1000)]
        width: usize,
    },
    /// A chain of L `add` tasks.
    Chain {
        #[arg(long, default_value_t = 1000)]
        length: usize,
    },
    /// Four tasks in a diamond.
    Diamond,
    /// K blobs of SIZE bytes: digested, concatenated, measured.
    BlobDigest {
        #[arg(long, default_value_t = 4)]
        producers: usize,
        #[arg(long, default_value_t = 100_000)]
        size: usize,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

impl From<GenWorkload> for Workload {
    fn from(g: GenWorkload) -> Self {
        match g {
            GenWorkload::TreeReduction { leaves } => Workload::TreeReduction { leaves },
            GenWorkload::FanoutFanin { width } => Workload::FanoutFanin { width },
            GenWorkload::Chain { length } => Workload::Chain { length },
            GenWorkload::Diamond => Workload::Diamond,
            GenWorkload::BlobDigest { producers, size } => Workload::BlobDigest { producers, size },
        }
    }
}

const EXIT_TASK_FAILED: u8 = 1;
const EXIT_INVALID: u8 = 2;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Validate { file } => validate_file(&file),
        Command::Gen { workload, format } => generate(workload.into(), format),
    }
}

fn read_spec(file: &Path) -> Result<DagSpec, DagError> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| DagError::Io {
                path: "standard input".into(),
                message: e.to_string(),
            })?;
        return DagSpec::parse(&text, DagFormat::sniff(&text));
    }
    DagSpec::from_path(file)
}

fn invalid(file: &Path, e: &DagError) -> ExitCode {
    eprintln!("error: {}: {e}", file.display());
    ExitCode::from(EXIT_INVALID)
}

fn validate_file(file: &Path) -> ExitCode {
    let spec = match read_spec(file) {
        Ok(s) => s,
        Err(e) => return invalid(file, &e),
    };
    let registry = Registry::with_builtins();
    let t0 = Instant::now();
    match validate(spec, &Limits::default(), &|f| registry.contains(f)) {
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

fn generate(w: Workload, format: Format) -> ExitCode {
    let spec = w.generate();
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

fn run(args: RunArgs) -> ExitCode {
    let spec = match read_spec(&args.file) {
        Ok(s) => s,
        Err(e) => return invalid(&args.file, &e),
    };
    let mut config = LocalConfig::default();
    if let Some(s) = args.slots {
        config.slots = s as usize;
    }
    config.engine.job.inline_limit = args.inline_limit;
    config.engine.job.proxy_fanout = args.proxy_fanout;
    let timeout = match args.timeout {
        Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
        Some(t) => {
            eprintln!("error: --timeout must be a positive number of seconds, got {t}");
            return ExitCode::from(EXIT_INVALID);
        }
        None => None,
    };
    let local = match Local::start(config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bar =
        ProgressBar::with_draw_target(Some(spec.tasks.len() as u64), ProgressDrawTarget::hidden());
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} tasks ({per_sec})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let started = Instant::now();
    let mut shown = args.no_progress;
    let result = local.run_with(spec, timeout, |p| {
        if !shown && started.elapsed() > Duration::from_secs(1) {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            shown = true;
        }
        bar.set_position(p.done);
    });
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(RunError::Invalid(e)) => return invalid(&args.file, &e),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_TASK_FAILED);
        }
    };
    let slots = local.slots();
    drop(local);
    if args.json {
        println!("{}", report_json(&report, slots));
    } else {
        for (id, v) in &report.outputs {
            println!("{id}: {}", v.to_output_json());
        }
    }
    let secs = report.wall.as_secs_f64();
    match &report.state {
        JobState::Succeeded => {
            eprintln!(
                "ok: job {} ran {} tasks in {:.3} s ({:.0} tasks/s, {:.2} µs/task, {} slots)",
                report.job,
                report.tasks,
                secs,
                report.tasks as f64 / secs.max(1e-9),
                secs * 1e6 / (report.tasks.max(1) as f64),
                slots
            );
            ExitCode::SUCCESS
        }
        JobState::Failed { task, error } => {
            eprintln!("error: task {task} failed: {error}");
            ExitCode::from(EXIT_TASK_FAILED)
        }
        s => {
            eprintln!("error: job {} ended {}", report.job, state_name(s));
            ExitCode::from(EXIT_TASK_FAILED)
        }
    }
}

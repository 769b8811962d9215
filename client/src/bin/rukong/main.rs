//! The `rukong` command line.
//!
//! Exit codes: 0 success, 1 a task failed, 2 the DAG or the usage is invalid.

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rukong_client::cli::command::{Common, push, serve_with};
use rukong_client::cli::executor::{self, ExecutorArgs};
use rukong_client::cli::settings::Overrides;
use rukong_client::cli::{serve, up};
use rukong_client::output::{report_json, state_name};
use rukong_client::remote::{EngineClient, RemoteError};
use rukong_client::workloads::{Workload, to_yaml};
use rukong_client::{Local, LocalConfig, RunError};
use rukong_core::JobId;
use rukong_core::dag::{DagFormat, DagSpec, validate};
use rukong_core::messages::JobState;
use rukong_core::{DagError, Limits};
use rukong_executor::Registry;
use rukong_executor::functions::builtins::process::AllowList;
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
    /// Run the end-to-end benchmark harness (`rukong-e2e`, built beside this binary by
    /// `cargo build --release -p rukong-benches`); arguments pass through, e.g.
    /// `rukong bench --workload tree:65536 --mode cluster --json out.json`.
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Draw a DAG (Graphviz DOT, or SVG through Graphviz), coloured by static schedule.
    Graph {
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Out-degree at which fan-outs go through the proxy (drawn with a double border).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..))]
        proxy_fanout: u32,
    },
    /// Convert a workflow from another system into a rukong DAG (YAML on stdout).
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Show a cluster job's state (`GET /jobs/{id}`).
    Status {
        job: String,
        #[arg(long, env = "RUKONG_ENGINE", default_value = "http://127.0.0.1:8080")]
        engine: String,
        #[arg(long, env = "RUKONG_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// Profiles kept across jobs, per DAG name (cluster mode: read from Redis).
    Profile {
        #[command(subcommand)]
        cmd: profile::ProfileCmd,
    },
    /// Serve the engine's HTTP API over Redis.
    Engine {
        #[command(flatten)]
        common: Common,
        /// Address to bind (host:port).
        #[arg(long)]
        listen: Option<String>,
        /// URL clients use to reach the engine.
        #[arg(long)]
        advertise: Option<String>,
        /// The KV-store proxy's address.
        #[arg(long)]
        proxy: Option<String>,
    },
    /// Serve the KV-store proxy over Redis.
    Kvproxy {
        #[command(flatten)]
        common: Common,
        /// Address to bind (host:port).
        #[arg(long)]
        listen: Option<String>,
        /// Address others use to reach the proxy.
        #[arg(long)]
        advertise: Option<String>,
        /// Where objects live: `shared` (files in --shared-dir, read and written directly
        /// by executors on this host), `store` (Redis) or `memory` (this process).
        #[arg(long)]
        objects: Option<String>,
        /// The directory of `--objects shared` (default /dev/shm/rukong-proxy-<port>).
        #[arg(long)]
        shared_dir: Option<String>,
    },
    /// Run an executor: slots pulling invocations from Redis.
    Executor(ExecutorArgs),
    /// Start Redis (unless --redis), the proxy, the engine and N executors on loopback, in
    /// the foreground; Ctrl-C stops them all.
    Up {
        #[command(flatten)]
        common: Common,
        /// Executor processes.
        #[arg(long, default_value_t = 2)]
        executors: usize,
        /// Slots per executor (default: one per core).
        #[arg(long, default_value_t = 0)]
        slots: usize,
        /// The engine's HTTP address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Let the executors' `process` tasks run PROGRAM: a name looked up in PATH, or an
        /// absolute path. Repeatable. Without it, `process` is off (docs/process-tasks.md).
        #[arg(long, value_name = "PROGRAM")]
        allow_process: Vec<String>,
        /// Run this executor binary (one built with your own functions through
        /// `rukong_client::executor_main`) instead of `rukong executor`, for every executor
        /// (docs/custom-functions.md).
        #[arg(long, value_name = "PATH")]
        executor_bin: Option<PathBuf>,
    },
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
    /// Submit to a cluster engine at this URL instead of running embedded.
    #[arg(long, env = "RUKONG_ENGINE")]
    engine: Option<String>,
    /// The cluster's token (with --engine).
    #[arg(long, env = "RUKONG_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print one JSON object {"job", "outputs", "stats"} on stdout.
    #[arg(long)]
    json: bool,
    /// Executor slots (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    slots: Option<u32>,
    /// Speculative warm-up of the functions on the most likely path (embedded mode; a
    /// cluster uses engine.warmup): reactive (default), speculative or jit. (`oracle`
    /// runs only in the warm-up simulator, and is refused here.)
    #[arg(long, default_value = "reactive", value_parser = rukong_engine::warmup::WarmupMode::parse_for_engine)]
    warmup: rukong_engine::warmup::WarmupMode,
    /// Embedded mode's GPU: off (default), simulated (a simulated GPU, the default model),
    /// cuda (every NVIDIA GPU; needs the cuda build) or auto (CUDA when found).
    #[arg(long, default_value = "off")]
    gpu: String,
    /// Outputs up to this many bytes travel inline; larger ones go through the object store
    /// (default: 64 KiB in a cluster; in embedded mode every output under the object limit
    /// travels by reference).
    #[arg(long)]
    inline_limit: Option<usize>,
    /// Fan-outs of at least this out-degree are handed to the KV-store proxy.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(2..))]
    proxy_fanout: u32,
    /// Keep every large intermediate output until the job ends (embedded mode; by default
    /// one is freed as soon as all its readers are done with it).
    #[arg(long, conflicts_with = "engine")]
    keep_intermediates: bool,
    /// Give up (exit 1) when the job has not finished after this many seconds.
    #[arg(long)]
    timeout: Option<f64>,
    /// Never show the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Trace the run and draw its timeline to this file (.svg, or .html for a page).
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// Let `process` tasks run PROGRAM (embedded mode): a name looked up in PATH, or an
    /// absolute path. Repeatable. Without it, `process` is off (docs/process-tasks.md).
    #[arg(long, value_name = "PROGRAM", conflicts_with = "engine")]
    allow_process: Vec<String>,
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
    /// W sleeps of MS milliseconds into one sink (parallel efficiency).
    SleepFanout {
        #[arg(long, default_value_t = 1000)]
        width: usize,
        #[arg(long, default_value_t = 10)]
        ms: u64,
    },
    /// K blobs of M MiB into one sha256 reducer.
    BigData {
        #[arg(long, default_value_t = 16)]
        producers: usize,
        #[arg(long, default_value_t = 8)]
        mib: usize,
    },
    /// Blocked n×n matrix multiply (linear-algebra built-ins).
    Gemm {
        #[arg(long, default_value_t = 4096)]
        n: usize,
        #[arg(long, default_value_t = 512)]
        block: usize,
        /// Bounded memory: tiles made layer by layer, each C block a running sum
        #[arg(long)]
        streaming: bool,
    },
    /// Tall-skinny SVD through a TSQR reduction.
    Tsqr {
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        #[arg(long, default_value_t = 100)]
        cols: usize,
        #[arg(long, default_value_t = 10_000)]
        block_rows: usize,
    },
}

#[derive(Subcommand, Debug)]
enum ImportFrom {
    /// A WfCommons (WfFormat JSON) workflow instance: each task becomes a `sleep` (or `spin`)
    /// of its scaled runtime that passes on a blob of its scaled output size.
    Wfformat {
        file: PathBuf,
        /// Milliseconds of sleep per millisecond of the instance's runtime.
        #[arg(long, default_value_t = 0.001)]
        time_scale: f64,
        /// Blob bytes per byte of a task's output files.
        #[arg(long, default_value_t = 0.001)]
        size_scale: f64,
        /// Burn CPU (`spin`) instead of sleeping.
        #[arg(long)]
        spin: bool,
        /// Largest blob per task, in bytes.
        #[arg(long, default_value_t = 16 << 20)]
        max_blob: usize,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum GraphFormat {
    Dot,
    Svg,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

impl GenWorkload {
    fn spec(self) -> DagSpec {
        use rukong_client::linalg_workloads::{gemm, tsqr};
        let w = match self {
            GenWorkload::TreeReduction { leaves } => Workload::TreeReduction { leaves },
            GenWorkload::FanoutFanin { width } => Workload::FanoutFanin { width },
            GenWorkload::Chain { length } => Workload::Chain { length },
            GenWorkload::Diamond => Workload::Diamond,
            GenWorkload::BlobDigest { producers, size } => Workload::BlobDigest { producers, size },
            GenWorkload::SleepFanout { width, ms } => Workload::SleepFanout { width, ms },
            GenWorkload::BigData { producers, mib } => Workload::BigData { producers, mib },
            GenWorkload::Gemm {
                n,
                block,
                streaming,
            } => {
                return if streaming {
                    rukong_client::linalg_workloads::gemm_streaming(n.max(1), block.max(1))
                } else {
                    gemm(n.max(1), block.max(1))
                };
            }
            GenWorkload::Tsqr {
                rows,
                cols,
                block_rows,
            } => return tsqr(rows.max(1), cols.max(1), block_rows.max(1)),
        };
        w.generate()
    }
}

mod profile;
mod remote_run;
mod tools;

use remote_run::run_remote;
use tools::{bench, generate, graph, import_wfformat, validate_file, write_timeline};

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
        Command::Gen { workload, format } => generate(workload.spec(), format),
        Command::Status { job, engine, token } => status(&job, &engine, token),
        Command::Bench { args } => bench(&args),
        Command::Profile { cmd } => profile::run(cmd),
        Command::Import {
            from:
                ImportFrom::Wfformat {
                    file,
                    time_scale,
                    size_scale,
                    spin,
                    max_blob,
                },
        } => import_wfformat(&file, time_scale, size_scale, spin, max_blob),
        Command::Graph {
            file,
            format,
            proxy_fanout,
        } => graph(&file, format, proxy_fanout),
        Command::Engine {
            common,
            listen,
            advertise,
            proxy,
        } => {
            let mut o = common.overrides();
            push(&mut o, "engine.listen", listen);
            push(&mut o, "engine.advertise", advertise);
            push(&mut o, "proxy.advertise", proxy);
            serve_with(&common, o, |s| Box::pin(serve::run_engine(s)))
        }
        Command::Kvproxy {
            common,
            listen,
            advertise,
            objects,
            shared_dir,
        } => {
            let mut o = common.overrides();
            push(&mut o, "proxy.listen", listen);
            push(&mut o, "proxy.advertise", advertise);
            push(&mut o, "proxy.objects", objects);
            push(&mut o, "proxy.shared_dir", shared_dir);
            serve_with(&common, o, |s| Box::pin(serve::run_proxy(s)))
        }
        Command::Executor(args) => executor::run(args, Registry::with_builtins()),
        Command::Up {
            common,
            executors,
            slots,
            listen,
            allow_process,
            executor_bin,
        } => {
            if let Some(Err(e)) = executor_bin.as_deref().map(up::check_executor_bin) {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
            let args = up::UpArgs {
                redis: common.redis.clone(),
                executors,
                slots,
                listen,
                executor_bin,
            };
            let mut o = common.overrides();
            push_programs(&mut o, &allow_process);
            if common.token.is_none()
                && !common.insecure
                && std::env::var_os("RUKONG_TOKEN").is_none()
            {
                // A private cluster gets a fresh token, said once so that you can submit.
                let token = random_token();
                eprintln!(
                    "rukong up: no token given; this cluster's token is {token} \
                     (export RUKONG_TOKEN={token} where you submit)"
                );
                o.push(("token", token));
            }
            serve_with(&common, o, move |s| Box::pin(up::up(args, s)))
        }
    }
}

/// `--allow-process` values as `executor.allow_process` (a flag replaces the file's and
/// the environment's list).
fn push_programs(o: &mut Overrides, programs: &[String]) {
    if !programs.is_empty() {
        o.push(("executor.allow_process", programs.join(",")));
    }
}

fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let a = h.finish();
    let mut h2 = std::collections::hash_map::RandomState::new().build_hasher();
    h2.write_u64(a ^ u64::from(std::process::id()));
    format!("{a:016x}{:016x}", h2.finish())
}

fn status(job: &str, engine: &str, token: Option<String>) -> ExitCode {
    let client = EngineClient::new(engine, token, Duration::from_secs(30));
    match client.status(&JobId::new(job)) {
        Ok(s) => {
            println!("{}", s.json);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(
                if matches!(
                    e,
                    RemoteError::Http {
                        status: 404 | 400,
                        ..
                    }
                ) {
                    EXIT_INVALID
                } else {
                    EXIT_TASK_FAILED
                },
            )
        }
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

fn run(args: RunArgs) -> ExitCode {
    if let Some(engine) = args.engine.clone() {
        return run_remote(&args, &engine);
    }
    let spec = match read_spec(&args.file) {
        Ok(s) => s,
        Err(e) => return invalid(&args.file, &e),
    };
    let mut config = LocalConfig::default();
    if let Some(s) = args.slots {
        config.slots = s as usize;
    }
    if let Some(limit) = args.inline_limit {
        config.engine.job.inline_limit = limit;
    }
    config.engine.warmup = args.warmup;
    match AllowList::resolve(&args.allow_process) {
        Ok(allow) => {
            config.registry.allow_process(allow);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    }
    let gpu = rukong_client::cli::gpu::GpuSettings {
        device: args.gpu.clone(),
        ..Default::default()
    };
    match gpu.config() {
        Ok(Some(g)) => config.gpu = g,
        Ok(None) => {}
        Err(e) => {
            eprintln!("error: --gpu: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    }
    config.engine.job.proxy_fanout = args.proxy_fanout;
    config.engine.job.keep_intermediates = args.keep_intermediates;
    config.engine.job.trace = args.timeline.is_some();
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
    if let Some(path) = &args.timeline {
        write_timeline(
            path,
            &report.trace,
            &format!("{} ({})", report.name, report.job),
        );
    }
    if args.json {
        println!("{}", report_json(&report, slots));
    } else {
        for line in rukong_client::output::output_lines(&report) {
            println!("{line}");
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

//! The executor process's command line, shared by `rukong executor` and by executor
//! binaries built with your own functions ([`executor_main`]): the same flags, `RUKONG_*`
//! variables and settings file, run through [`rukong_executor::serve`].
//!
//! ```no_run
//! use rukong_executor::{FnError, Registry};
//! use rukong_core::Value;
//!
//! fn main() -> std::process::ExitCode {
//!     let mut registry = Registry::with_builtins();
//!     registry.register_fn("negate", |inputs: Vec<Value>| match inputs.as_slice() {
//!         [Value::Int(x)] => x.checked_neg().map(Value::Int).ok_or_else(|| FnError::new("overflow")),
//!         _ => Err(FnError::new("negate takes one integer")),
//!     });
//!     rukong_client::executor_main(registry)
//! }
//! ```

use super::command::{Common, push, serve_with};
use super::serve;
use clap::Parser;
use rukong_executor::Registry;
use rukong_executor::functions::Crash;
use std::path::PathBuf;
use std::process::ExitCode;

/// `rukong executor`'s flags (beside the [`Common`] ones).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ExecutorArgs {
    #[command(flatten)]
    pub common: Common,
    /// The KV-store proxy's address.
    #[arg(long)]
    pub proxy: Option<String>,
    /// Slots (default: one per core).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Executor id (default: host-pid).
    #[arg(long)]
    pub id: Option<String>,
    /// Let `process` tasks run PROGRAM: a name looked up in PATH, or an absolute path.
    /// Repeatable. Without it, `process` is off (docs/process-tasks.md).
    #[arg(long, value_name = "PROGRAM")]
    pub allow_process: Vec<String>,
    /// Also register fault-injection functions (`crash`). For tests only.
    #[arg(long, hide = true)]
    pub test_functions: bool,
    /// Fault injection, for tests only: abort right after an arrival that completes a
    /// fan-in, once across every executor given the same marker file.
    #[arg(long, hide = true, value_name = "MARKER", requires = "test_functions")]
    pub test_crash_after_fan_in: Option<PathBuf>,
}

/// A stand-alone executor binary's command line: exactly `rukong executor`'s flags.
#[derive(Parser, Debug)]
#[command(about = "A rukong executor: slots pulling invocations from Redis")]
struct ExecutorCli {
    #[command(flatten)]
    args: ExecutorArgs,
}

/// Runs an executor with `registry`'s functions until SIGINT or SIGTERM, configured as
/// `rukong executor` is (`--redis`, `--token`, `--slots`, `RUKONG_*`, `--config FILE`).
/// Exit codes: 0 after a clean stop, 1 when it fails (Redis or the proxy unreachable),
/// 2 for an invalid command line or configuration. Logs go to stderr, filtered by
/// `RUST_LOG` (default `warn`).
pub fn executor_main(registry: Registry) -> ExitCode {
    init_tracing();
    let cli = ExecutorCli::parse();
    run(cli.args, registry)
}

/// Runs an executor with `registry`'s functions as `args` ask (what `rukong executor`
/// does with the built-ins).
pub fn run(args: ExecutorArgs, mut registry: Registry) -> ExitCode {
    let mut o = args.common.overrides();
    push(&mut o, "proxy.advertise", args.proxy);
    push(&mut o, "executor.slots", args.slots.map(|s| s.to_string()));
    push(&mut o, "executor.id", args.id);
    if !args.allow_process.is_empty() {
        // A flag replaces the file's and the environment's list.
        o.push(("executor.allow_process", args.allow_process.join(",")));
    }
    if args.test_functions {
        registry.register("crash", Crash);
    }
    let crash_after_fan_in = args.test_crash_after_fan_in;
    serve_with(&args.common, o, move |s| {
        Box::pin(serve::run_executor(s, registry, crash_after_fan_in))
    })
}

/// Logs to stderr through `RUST_LOG` (default `warn`); a no-op when a subscriber is set.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

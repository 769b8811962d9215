//! What every long-running cluster command shares: the common flags ([`Common`]), and
//! loading the settings then running the command on a multi-threaded runtime
//! ([`serve_with`]).

use super::serve::BoxError;
use super::settings::{Overrides, Settings};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;

/// The exit code of an invalid configuration or command line.
pub const EXIT_INVALID: u8 = 2;

/// Flags every cluster command shares. Precedence: --config file < RUKONG_* < flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// A TOML configuration file (also RUKONG_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Redis URL (redis://[:password@]host:port[/db]).
    #[arg(long)]
    pub redis: Option<String>,
    /// The shared token (also RUKONG_TOKEN).
    #[arg(long)]
    pub token: Option<String>,
    /// Run without a token.
    #[arg(long)]
    pub insecure: bool,
    /// The executors' GPU: off, cuda, simulated or auto (also gpu.device, RUKONG_GPU__DEVICE).
    #[arg(long)]
    pub gpu: Option<String>,
}

impl Common {
    /// These flags as settings overrides.
    pub fn overrides(&self) -> Overrides {
        let mut o = Overrides::new();
        push(&mut o, "redis.url", self.redis.clone());
        push(&mut o, "token", self.token.clone());
        if self.insecure {
            o.push(("insecure", "true".into()));
        }
        push(&mut o, "gpu.device", self.gpu.clone());
        o
    }
}

/// Adds `key = v` to `o` when the flag was given.
pub fn push(o: &mut Overrides, key: &'static str, v: Option<String>) {
    if let Some(v) = v {
        o.push((key, v));
    }
}

/// Loads settings (the `--config` file, `RUKONG_*`, then `overrides`) and runs `f` on a
/// multi-threaded runtime. Exit codes: 2 for an invalid configuration, 1 when `f` fails.
pub fn serve_with(
    common: &Common,
    overrides: Overrides,
    f: impl FnOnce(Settings) -> Pin<Box<dyn Future<Output = Result<(), BoxError>>>>,
) -> ExitCode {
    let settings = match Settings::load(common.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

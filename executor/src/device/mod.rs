//! Devices that functions run on (`docs/warmup.md`): one [`Device`] trait, three implementations.
//!
//! - [`Cpu`]: host memory; GPU built-ins run their CPU reference path.
//! - `Cuda` (feature `cuda`): a real GPU through cudarc (context, stream, NVRTC modules,
//!   cuBLAS) with discovery, memory, utilization and MIG mode from NVML. CUDA is loaded at
//!   run time: the feature builds without a toolkit, and a machine without a GPU gets a
//!   clear error (never a panic).
//! - [`Simulated`]: a configurable model of a GPU ([`SimulatedConfig`]): cold-start stages
//!   (context, compile, module load, cuBLAS handle, weight upload) and exec time as a
//!   function of batch size. It really sleeps for the modelled time, and computes results
//!   with the CPU reference, so end-to-end tests see both the timing and real outputs.
//!
//! A function learns its device from [`InitCtx::device`](crate::functions::InitCtx) and
//! branches on [`Device::backend`]. What `init` builds (modules, weights) is warm state,
//! cached per device by [`cache::DeviceCache`] under a memory budget (LRU). While warming
//! up, `init` reports its stages and resident bytes through an [`InitLog`].
//!
//! ## Layout
//! - [`cpu`], [`simulated`], `cuda`: the three devices.
//! - [`cache`]: the per-device warm cache, its counters and [`ColdStart`] records.
//! - [`bundle`]: choosing a bundle size from measured latency per batch size.
//! - [`discover`]: the devices an executor should offer.

pub mod bundle;
pub mod cache;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod simulated;

#[cfg(test)]
mod tests;

pub use cache::{CacheSnapshot, ColdStart, DeviceCache};
pub use cpu::Cpu;
#[cfg(feature = "cuda")]
pub use cuda::Cuda;
pub use simulated::{ExecModel, Simulated, SimulatedConfig};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What kind of device: `"cpu"`, `"cuda"` or `"simulated"` in serde form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Cpu,
    Cuda,
    Simulated,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Simulated => "simulated",
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device as an executor registers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    /// "NVIDIA H100 80GB HBM3", "simulated-gpu", "cpu".
    pub name: String,
    /// Total device memory in bytes (0 when unknown).
    pub memory_bytes: u64,
    /// Whether MIG mode is on (CUDA only; each MIG instance is its own device).
    pub mig: bool,
}

/// Utilization over the last sample period, in percent (NVML's `utilization_rates`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Utilization {
    pub gpu_percent: u32,
    pub memory_percent: u32,
}

/// Which implementation a device is, for functions that branch on it.
#[derive(Clone, Copy, Debug)]
pub enum Backend<'a> {
    /// Run the CPU reference path (also what a user-defined device should return unless
    /// it is one of the others).
    Cpu,
    /// Run the CPU reference path and let the model account the time.
    Simulated(&'a Simulated),
    /// Run on the GPU.
    #[cfg(feature = "cuda")]
    Cuda(&'a Cuda),
}

/// Why a device could not be found, opened or used. None of these is retryable by
/// running the same call again on the same machine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// A CUDA library (driver, NVRTC, cuBLAS) or NVML is not installed.
    #[error("{library} is not available on this machine ({detail})")]
    LibraryMissing { library: String, detail: String },
    /// No GPU with this ordinal.
    #[error("no CUDA device with ordinal {0}")]
    NoSuchDevice(usize),
    /// The driver, NVRTC or cuBLAS returned an error.
    #[error("{stage} failed: {detail}")]
    Driver { stage: String, detail: String },
}

/// A device functions can run on. Implementations are cheap to share (`Arc<dyn Device>`)
/// and safe to use from several slots at once.
pub trait Device: Send + Sync + fmt::Debug {
    /// Kind, name, memory and MIG mode, for registration.
    fn info(&self) -> DeviceInfo;

    /// The implementation behind this device (functions branch on it).
    fn backend(&self) -> Backend<'_>;

    /// The bytes of warm state this device should hold: NVML's free memory (less a margin)
    /// on a GPU, the configured memory on the simulated device, unlimited on the CPU.
    fn memory_budget(&self) -> u64;

    /// Current utilization, where the device can tell (a GPU, not in MIG mode).
    fn utilization(&self) -> Option<Utilization> {
        None
    }

    /// A short label for logs and cache snapshots: `"cuda:0"`, `"simulated:sim-gpu"`.
    fn label(&self) -> String {
        let i = self.info();
        format!("{}:{}", i.kind, i.name)
    }
}

/// One step of a cold start, measured ("context", "compile", "module_load",
/// "cublas_handle", "weight_upload").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub duration: Duration,
}

/// Where `init` reports what it did: the stages it went through and the bytes it left
/// resident on the device. Cloning shares the log.
#[derive(Clone, Debug, Default)]
pub struct InitLog {
    inner: Arc<Mutex<InitRecord>>,
}

/// What an [`InitLog`] collected.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitRecord {
    pub stages: Vec<Stage>,
    /// Bytes of device memory the warm state holds.
    pub resident_bytes: u64,
    /// Whether the warm state belongs to the device (and should be cached per device
    /// rather than per slot).
    pub device_bound: bool,
}

impl InitLog {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, InitRecord> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a stage that took `duration`.
    pub fn stage(&self, name: &str, duration: Duration) {
        self.lock().stages.push(Stage {
            name: name.to_owned(),
            duration,
        });
    }

    /// Runs `f` and records it as a stage.
    pub fn time<R>(&self, name: &str, f: impl FnOnce() -> R) -> R {
        let t0 = Instant::now();
        let r = f();
        self.stage(name, t0.elapsed());
        r
    }

    /// Adds `bytes` to the warm state's resident size, and marks the state device-bound.
    pub fn resident(&self, bytes: u64) {
        let mut r = self.lock();
        r.resident_bytes = r.resident_bytes.saturating_add(bytes);
        r.device_bound = true;
    }

    /// Marks the warm state as belonging to the device (even with no resident bytes).
    pub fn bind_to_device(&self) {
        self.lock().device_bound = true;
    }

    /// A copy of what was recorded so far.
    pub fn record(&self) -> InitRecord {
        self.lock().clone()
    }
}

/// What [`discover`] should look for.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoverOptions {
    /// Look for CUDA GPUs (only with the `cuda` feature; ignored without it).
    pub cuda: bool,
    /// Offer a simulated GPU with this model (in addition to any real ones).
    pub simulate: Option<SimulatedConfig>,
}

/// The devices an executor should offer: every CUDA GPU (feature `cuda`, `opts.cuda`, and
/// a driver with at least one GPU), then the simulated device when `opts.simulate` is
/// set. Nothing otherwise (the executor then runs GPU built-ins on the CPU). A CUDA
/// probe that fails is logged and skipped, never a panic.
pub fn discover(opts: &DiscoverOptions) -> Vec<Arc<dyn Device>> {
    let mut out: Vec<Arc<dyn Device>> = Vec::new();
    #[cfg(feature = "cuda")]
    if opts.cuda {
        match cuda::discover() {
            Ok(gpus) => out.extend(gpus.into_iter().map(|g| Arc::new(g) as Arc<dyn Device>)),
            Err(e) => tracing::info!(error = %e, "no CUDA devices"),
        }
    }
    #[cfg(not(feature = "cuda"))]
    if opts.cuda {
        tracing::info!("CUDA requested, but this executor was built without the cuda feature");
    }
    if let Some(cfg) = &opts.simulate {
        out.push(Arc::new(Simulated::new(cfg.clone())));
    }
    out
}

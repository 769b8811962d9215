//! Executor settings.

use crate::bundling::BundleSettings;
use crate::device::Device;
use crate::gpu_sched::GpuPolicy;
use rukong_core::{ExecClass, ExecutorId};
use std::sync::Arc;
use std::time::Duration;

/// What a GPU executor (class `gpu`) runs on.
#[derive(Clone, Debug)]
pub struct GpuConfig {
    /// The devices it offers ([`crate::device::discover`]). A `gpu` executor needs one.
    pub devices: Vec<Arc<dyn Device>>,
    /// Slots per device: invocations walked at once on it, whose GPU calls are bundled.
    pub lanes: usize,
    pub bundle: BundleSettings,
    /// The warm cache's memory budget per device, in bytes (default: the device's own).
    pub cache_budget: Option<u64>,
    /// The order in which ready launches take the device.
    pub policy: GpuPolicy,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            devices: Vec::new(),
            lanes: 16,
            bundle: BundleSettings::default(),
            cache_budget: None,
            policy: GpuPolicy::default(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    pub id: ExecutorId,
    /// Slot actors: how many invocations run at once.
    pub slots: usize,
    /// Threads (actix arbiters) the slots are spread over; default: one per core, at most
    /// one per slot.
    pub threads: usize,
    /// Which queue the slots pull from.
    pub class: ExecClass,
    /// Most invocations one slot takes per pull.
    pub pull_batch: usize,
    /// How long an idle slot waits in one pull before checking for shutdown.
    pub pull_wait: Duration,
    /// Deliveries of one invocation before the job fails: a backend failure that keeps
    /// recurring, or a poison task that kills its executor every time.
    pub max_deliveries: u32,
    /// Cluster mode: invocations pending longer than this on a silent consumer are taken
    /// over (their executor is presumed dead); a live slot refreshes its claim at a third of
    /// it. `None` (embedded mode) never reclaims.
    pub visibility_timeout: Option<Duration>,
    /// How often an idle slot looks for invocations to reclaim.
    pub reclaim_every: Duration,
    /// How often the executor refreshes its registration (it lapses after three periods).
    pub heartbeat_every: Duration,
    /// What the registration says about where this executor runs.
    pub host: String,
    /// Devices, lanes and bundling (class `gpu` only).
    pub gpu: GpuConfig,
    /// Fault injection, for tests only: abort the process right after an arrival that
    /// completes a fan-in, before anything is handed off or pushed, once across every
    /// executor given the same path (the first to create the file there crashes).
    pub crash_after_fan_in: Option<std::path::PathBuf>,
}

impl ExecutorConfig {
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ExecutorConfig {
            id: ExecutorId::new(format!("exec-{}", std::process::id())),
            slots,
            threads: cores.min(slots),
            class: ExecClass::Cpu,
            pull_batch: 1,
            pull_wait: Duration::from_millis(200),
            max_deliveries: 5,
            visibility_timeout: None,
            reclaim_every: Duration::from_secs(2),
            heartbeat_every: Duration::from_secs(2),
            host: format!("pid {}", std::process::id()),
            gpu: GpuConfig::default(),
            crash_after_fan_in: None,
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

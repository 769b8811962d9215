//! GPU settings for `rukong executor`, `rukong up` and embedded `rukong run`: which device
//! to offer, how many slots share it, bundling and the warm cache.

use rukong_executor::GpuConfig;
use rukong_executor::bundling::BundleSettings;
use rukong_executor::device::bundle::BundleConfig;
use rukong_executor::device::{DiscoverOptions, SimulatedConfig, discover};
use rukong_executor::gpu_sched::GpuPolicy;
use serde::Deserialize;
use std::collections::HashMap;

/// `[gpu]` in the settings file, `RUKONG_GPU__*` in the environment.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GpuSettings {
    /// `off` (no GPU executor), `cuda` (every NVIDIA GPU; needs a build with the `cuda`
    /// feature), `simulated` (one simulated GPU, modelled by `simulated`), or `auto` (CUDA
    /// GPUs when there are any, else none).
    pub device: String,
    /// Slots per device: invocations walked on it at once, whose GPU calls are bundled.
    pub lanes: usize,
    /// Bundling for every GPU function...
    pub bundle: BundleConfig,
    /// ...except these (by function name).
    pub bundle_per_function: HashMap<String, BundleConfig>,
    /// Warm-cache budget per device, MiB (default: the device's free memory).
    pub cache_budget_mib: Option<u64>,
    /// The simulated device's model (`device = "simulated"`).
    pub simulated: SimulatedConfig,
    /// The order in which ready launches take a device: fifo (alias balance), exclusive,
    /// srtf or mlfq.
    pub policy: GpuPolicy,
}

impl Default for GpuSettings {
    fn default() -> Self {
        GpuSettings {
            device: "off".into(),
            lanes: GpuConfig::default().lanes,
            bundle: BundleConfig::default(),
            bundle_per_function: HashMap::new(),
            cache_budget_mib: None,
            simulated: SimulatedConfig::default(),
            policy: GpuPolicy::default(),
        }
    }
}

impl GpuSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !matches!(self.device.as_str(), "off" | "cuda" | "simulated" | "auto") {
            return Err(format!(
                "gpu.device must be off, cuda, simulated or auto, got {:?}",
                self.device
            ));
        }
        if self.lanes == 0 || self.lanes > 4096 {
            return Err(format!("gpu.lanes must be 1 to 4096, got {}", self.lanes));
        }
        self.bundle_settings()
            .validate()
            .map_err(|e| format!("gpu.{e}"))?;
        if self.device == "simulated" {
            self.simulated
                .validate()
                .map_err(|e| format!("gpu.simulated: {e}"))?;
        }
        Ok(())
    }

    fn bundle_settings(&self) -> BundleSettings {
        BundleSettings {
            default: self.bundle.clone(),
            per_function: self.bundle_per_function.clone(),
        }
    }

    /// The executor's GPU configuration: `None` when the GPU is off. An error when a device
    /// was asked for (`cuda` or `simulated`) but none can be offered.
    pub fn config(&self) -> Result<Option<GpuConfig>, String> {
        self.validate()?;
        let opts = match self.device.as_str() {
            "off" => return Ok(None),
            "simulated" => DiscoverOptions {
                cuda: false,
                simulate: Some(self.simulated.clone()),
            },
            _ => DiscoverOptions {
                cuda: true,
                simulate: None,
            },
        };
        let devices = discover(&opts);
        if devices.is_empty() {
            return match self.device.as_str() {
                "auto" => Ok(None),
                _ if cfg!(feature = "cuda") => {
                    Err("gpu.device = cuda, but no NVIDIA GPU was found (no driver, no device, or NVML failed: see the log)".into())
                }
                _ => Err("gpu.device = cuda, but this rukong was built without the cuda feature (cargo build --release --features cuda)".into()),
            };
        }
        Ok(Some(GpuConfig {
            devices,
            lanes: self.lanes,
            bundle: self.bundle_settings(),
            cache_budget: self.cache_budget_mib.map(|m| m << 20),
            policy: self.policy,
        }))
    }
}

//! A real GPU (feature `cuda`): discovery, memory, utilization and MIG mode from NVML;
//! context, stream, NVRTC modules and cuBLAS from cudarc.
//!
//! CUDA is loaded at run time (cudarc `dynamic-loading`). cudarc *panics* when a library is
//! missing, so every path first checks [`libraries`] (which probes the driver, NVRTC and
//! cuBLAS once with `is_culib_present`) and returns [`DeviceError::LibraryMissing`]
//! instead. NVML's `Nvml::init` returns an error, never a panic, when it is absent.
//!
//! The warm-up ladder is per device: the context and stream ([`Cuda::runtime`], stage
//! `context`) and the cuBLAS handle ([`Cuda::blas`], stage `cublas_handle`) are created by
//! the first function that needs them; modules ([`Cuda::compile`], [`Cuda::load_module`])
//! and weights belong to each function's warm state. Launches go one at a time
//! ([`Cuda::exec_lock`]), Clockwork-style, which keeps the one stream and cuBLAS handle
//! safe to share between slots.
//!
//! CUDA ordinals are taken to be NVML indices: true on one-GPU machines and with
//! `CUDA_DEVICE_ORDER=PCI_BUS_ID`. MIG mode is reported, never changed.

#![allow(unsafe_code)]

use super::{Backend, Device, DeviceError, DeviceInfo, DeviceKind, InitLog, Utilization};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaModule, CudaStream};
use cudarc::nvrtc::Ptx;
use nvml_wrapper::Nvml;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Which CUDA libraries can be loaded here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Libraries {
    pub driver: bool,
    pub nvrtc: bool,
    pub cublas: bool,
}

/// Probes the CUDA driver, NVRTC and cuBLAS libraries, once per process.
pub fn libraries() -> Libraries {
    static PROBE: OnceLock<Libraries> = OnceLock::new();
    *PROBE.get_or_init(|| {
        // SAFETY: these only try to dlopen the library by its usual names and report
        // whether that worked; they call nothing inside it.
        let (driver, nvrtc, cublas) = unsafe {
            (
                cudarc::driver::sys::is_culib_present(),
                cudarc::nvrtc::sys::is_culib_present(),
                cudarc::cublas::sys::is_culib_present(),
            )
        };
        Libraries {
            driver,
            nvrtc,
            cublas,
        }
    })
}

fn missing(library: &str, detail: &str) -> DeviceError {
    DeviceError::LibraryMissing {
        library: library.to_owned(),
        detail: detail.to_owned(),
    }
}

fn driver_err(stage: &str, e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Driver {
        stage: stage.to_owned(),
        detail: e.to_string(),
    }
}

/// Every GPU NVML sees, as devices. Errors when the CUDA driver or NVML is missing, or
/// NVML fails; an empty list when there is no GPU.
pub fn discover() -> Result<Vec<Cuda>, DeviceError> {
    if !libraries().driver {
        return Err(missing(
            "the CUDA driver (libcuda.so)",
            "no NVIDIA driver is installed",
        ));
    }
    let nvml = Nvml::init().map_err(|e| missing("NVML (libnvidia-ml.so.1)", &e.to_string()))?;
    let nvml = Arc::new(nvml);
    let count = nvml
        .device_count()
        .map_err(|e| driver_err("NVML device count", e))?;
    let mut out = Vec::new();
    for i in 0..count {
        match Cuda::from_nvml(nvml.clone(), i) {
            Ok(d) => out.push(d),
            Err(e) => {
                tracing::warn!(index = i, error = %e, "skipping a GPU NVML could not describe")
            }
        }
    }
    Ok(out)
}

/// A context and the stream every launch on this device goes through.
#[derive(Debug)]
pub struct CudaRuntime {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
}

/// One CUDA GPU.
pub struct Cuda {
    ordinal: usize,
    name: String,
    total: u64,
    mig: bool,
    nvml: Arc<Nvml>,
    runtime: Mutex<Option<Arc<CudaRuntime>>>,
    blas: Mutex<Option<Arc<CudaBlas>>>,
    exec: Mutex<()>,
}

impl std::fmt::Debug for Cuda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cuda")
            .field("ordinal", &self.ordinal)
            .field("name", &self.name)
            .field("total", &self.total)
            .field("mig", &self.mig)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cuda {
    /// The GPU with NVML index (and CUDA ordinal) `index`.
    pub fn from_nvml(nvml: Arc<Nvml>, index: u32) -> Result<Cuda, DeviceError> {
        let dev = nvml
            .device_by_index(index)
            .map_err(|e| driver_err("NVML device lookup", e))?;
        let name = dev.name().map_err(|e| driver_err("NVML device name", e))?;
        let total = dev
            .memory_info()
            .map_err(|e| driver_err("NVML memory info", e))?
            .total;
        // NVML_DEVICE_MIG_ENABLE is 1. "Not supported" (a GPU without MIG) means off.
        let mig = dev.mig_mode().map(|m| m.current == 1).unwrap_or(false);
        if mig {
            tracing::warn!(index, %name, "MIG mode is on: CUDA sees MIG instances, not this GPU, unless CUDA_VISIBLE_DEVICES names one");
        }
        Ok(Cuda {
            ordinal: index as usize,
            name,
            total,
            mig,
            nvml,
            runtime: Mutex::new(None),
            blas: Mutex::new(None),
            exec: Mutex::new(()),
        })
    }

    /// The GPU with this CUDA ordinal (NVML index), or an error saying why not.
    pub fn open(ordinal: usize) -> Result<Cuda, DeviceError> {
        discover()?
            .into_iter()
            .find(|d| d.ordinal == ordinal)
            .ok_or(DeviceError::NoSuchDevice(ordinal))
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The context and stream, created by the first caller (stage `context`).
    pub fn runtime(&self, log: &InitLog) -> Result<Arc<CudaRuntime>, DeviceError> {
        let mut rt = lock(&self.runtime);
        if let Some(r) = rt.as_ref() {
            return Ok(r.clone());
        }
        if !libraries().driver {
            return Err(missing(
                "the CUDA driver (libcuda.so)",
                "no NVIDIA driver is installed",
            ));
        }
        let created = log.time("context", || {
            let ctx =
                CudaContext::new(self.ordinal).map_err(|e| driver_err("context creation", e))?;
            let stream = ctx.default_stream();
            Ok::<_, DeviceError>(Arc::new(CudaRuntime { ctx, stream }))
        })?;
        *rt = Some(created.clone());
        Ok(created)
    }

    /// The device's cuBLAS handle, created by the first caller (stage `cublas_handle`).
    pub fn blas(&self, log: &InitLog) -> Result<Arc<CudaBlas>, DeviceError> {
        let rt = self.runtime(log)?;
        let mut blas = lock(&self.blas);
        if let Some(b) = blas.as_ref() {
            return Ok(b.clone());
        }
        if !libraries().cublas {
            return Err(missing(
                "cuBLAS (libcublas.so)",
                "the CUDA toolkit's cuBLAS is not installed",
            ));
        }
        let created = log.time("cublas_handle", || {
            CudaBlas::new(rt.stream.clone()).map_err(|e| driver_err("cuBLAS handle creation", e))
        })?;
        let created = Arc::new(created);
        *blas = Some(created.clone());
        Ok(created)
    }

    /// Compiles CUDA C source to PTX with NVRTC (stage `compile`).
    pub fn compile(&self, src: &str, log: &InitLog) -> Result<Ptx, DeviceError> {
        if !libraries().nvrtc {
            return Err(missing(
                "NVRTC (libnvrtc.so)",
                "the CUDA toolkit's NVRTC is not installed",
            ));
        }
        log.time("compile", || {
            cudarc::nvrtc::compile_ptx(src).map_err(|e| driver_err("NVRTC compile", e))
        })
    }

    /// Loads PTX into the device's context (stage `module_load`).
    pub fn load_module(&self, ptx: Ptx, log: &InitLog) -> Result<Arc<CudaModule>, DeviceError> {
        let rt = self.runtime(log)?;
        log.time("module_load", || {
            rt.ctx
                .load_module(ptx)
                .map_err(|e| driver_err("module load", e))
        })
    }

    /// Held for the length of one launch (with its copies): one at a time per device.
    pub fn exec_lock(&self) -> MutexGuard<'_, ()> {
        lock(&self.exec)
    }

    /// Free device memory in bytes, from NVML.
    pub fn free_memory(&self) -> Option<u64> {
        self.nvml
            .device_by_index(self.ordinal as u32)
            .ok()?
            .memory_info()
            .ok()
            .map(|m| m.free)
    }
}

impl Device for Cuda {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            kind: DeviceKind::Cuda,
            name: self.name.clone(),
            memory_bytes: self.total,
            mig: self.mig,
        }
    }

    fn backend(&self) -> Backend<'_> {
        Backend::Cuda(self)
    }

    /// 90% of the free memory NVML reports (the rest is headroom for launches' buffers).
    fn memory_budget(&self) -> u64 {
        self.free_memory().unwrap_or(self.total / 2) / 10 * 9
    }

    fn utilization(&self) -> Option<Utilization> {
        let u = self
            .nvml
            .device_by_index(self.ordinal as u32)
            .ok()?
            .utilization_rates()
            .ok()?;
        Some(Utilization {
            gpu_percent: u.gpu,
            memory_percent: u.memory,
        })
    }

    fn label(&self) -> String {
        format!("cuda:{}", self.ordinal)
    }
}

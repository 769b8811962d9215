//! A simulated GPU: a configurable model of cold-start stages and of exec time against
//! batch size, for tests and benchmarks on machines without a GPU.
//!
//! The device really waits for the modelled time (sleeping, then spinning for the last
//! fraction of a millisecond so that short times are accurate), and functions compute their
//! results with the CPU reference, so outputs are real and checkable. An exec call takes
//! `max(modelled time, CPU time)`: the CPU reference runs first and the device then waits
//! out whatever the model says is left. [`Simulated::counters`] reports both.
//!
//! ## The model ([`SimulatedConfig`], every field optional in serde form)
//!
//! | stage           | when                                  | cost                                    |
//! |-----------------|---------------------------------------|-----------------------------------------|
//! | `context`       | first warm-up on this device           | `context_ms`                             |
//! | `cublas_handle` | first cuBLAS user on this device       | `cublas_handle_ms`                       |
//! | `compile`       | per function (NVRTC)                   | `compile_ms`                             |
//! | `module_load`   | per function                           | `module_load_ms`                         |
//! | `weight_upload` | per function with weights              | `upload_fixed_ms + bytes / (upload_gb_per_s · 10⁹)` s |
//!
//! Exec time of one launch of `b` items each of `w` work units ([`ExecModel`]):
//! `fixed_us + per_item_us · (b·w)^alpha` µs, or, when `table` is given, linear
//! interpolation in the table of `(items, µs)` rows (extrapolated from the last two rows).
//! `alpha < 1` models a GPU that batches well. A function defines its work unit (a 256×256
//! matmul, 2^20 saxpy elements, one MLP row).
//!
//! The defaults are rough guesses for a PCIe data-centre GPU driven through cudarc, not
//! measurements: calibrate them from a real run (`benches/gpu.rs` on a GPU machine).

use super::{Backend, Device, DeviceInfo, DeviceKind, InitLog};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Exec time as a function of the work in one launch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecModel {
    /// Launch and transfer overhead per launch, µs.
    pub fixed_us: f64,
    /// Time of one work unit alone, µs.
    pub per_item_us: f64,
    /// How time grows with work: 1 = linear, < 1 = sublinear (batching pays).
    pub alpha: f64,
    /// Measured `(items, µs)` rows; when non-empty they replace the formula.
    pub table: Vec<(f64, f64)>,
}

impl Default for ExecModel {
    fn default() -> Self {
        ExecModel {
            fixed_us: 20.0,
            per_item_us: 12.0,
            alpha: 0.6,
            table: Vec::new(),
        }
    }
}

impl ExecModel {
    /// The modelled time of one launch of `batch` items of `work` units each.
    pub fn time(&self, batch: usize, work: f64) -> Duration {
        let items = batch as f64 * finite_non_negative(work);
        let us = if self.table.is_empty() {
            finite_non_negative(self.fixed_us)
                + finite_non_negative(self.per_item_us)
                    * items.powf(finite_non_negative(self.alpha))
        } else {
            interpolate(&self.table, items)
        };
        Duration::from_secs_f64(finite_non_negative(us) / 1e6)
    }
}

/// Linear interpolation in `(x, y)` rows sorted by x (unsorted rows are sorted first).
fn interpolate(table: &[(f64, f64)], x: f64) -> f64 {
    let mut rows: Vec<(f64, f64)> = table
        .iter()
        .copied()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    match rows.as_slice() {
        [] => 0.0,
        [(_, y)] => *y,
        _ => {
            let i = rows.partition_point(|r| r.0 < x).clamp(1, rows.len() - 1);
            let (x0, y0) = rows[i - 1];
            let (x1, y1) = rows[i];
            if x1 == x0 {
                y1
            } else {
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            }
        }
    }
}

fn finite_non_negative(x: f64) -> f64 {
    if x.is_finite() && x > 0.0 { x } else { 0.0 }
}

/// The simulated GPU's model. Every field has a default (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatedConfig {
    pub name: String,
    /// Device memory: the default warm-cache budget.
    pub memory_bytes: u64,
    pub context_ms: f64,
    pub cublas_handle_ms: f64,
    pub compile_ms: f64,
    pub module_load_ms: f64,
    pub upload_fixed_ms: f64,
    pub upload_gb_per_s: f64,
    pub exec: ExecModel,
    /// Run one launch at a time (one GPU); `false` lets launches overlap.
    pub serialize: bool,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        SimulatedConfig {
            name: "sim-gpu".to_owned(),
            memory_bytes: 16 << 30,
            context_ms: 120.0,
            cublas_handle_ms: 40.0,
            compile_ms: 30.0,
            module_load_ms: 2.0,
            upload_fixed_ms: 0.02,
            upload_gb_per_s: 12.0,
            exec: ExecModel::default(),
            serialize: true,
        }
    }
}

impl SimulatedConfig {
    /// A model where every stage and launch takes no time (for functional tests).
    pub fn instant() -> Self {
        SimulatedConfig {
            context_ms: 0.0,
            cublas_handle_ms: 0.0,
            compile_ms: 0.0,
            module_load_ms: 0.0,
            upload_fixed_ms: 0.0,
            upload_gb_per_s: 0.0,
            exec: ExecModel {
                fixed_us: 0.0,
                per_item_us: 0.0,
                alpha: 1.0,
                table: Vec::new(),
            },
            ..Self::default()
        }
    }

    /// Rejects negative, NaN or infinite times, a nameless device and a zero memory size.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("simulated device: name must not be empty".to_owned());
        }
        if self.memory_bytes == 0 {
            return Err("simulated device: memory_bytes must be positive".to_owned());
        }
        let times = [
            ("context_ms", self.context_ms),
            ("cublas_handle_ms", self.cublas_handle_ms),
            ("compile_ms", self.compile_ms),
            ("module_load_ms", self.module_load_ms),
            ("upload_fixed_ms", self.upload_fixed_ms),
            ("upload_gb_per_s", self.upload_gb_per_s),
            ("exec.fixed_us", self.exec.fixed_us),
            ("exec.per_item_us", self.exec.per_item_us),
            ("exec.alpha", self.exec.alpha),
        ];
        for (name, v) in times {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "simulated device: {name} must be a finite non-negative number, got {v}"
                ));
            }
        }
        for (i, (x, y)) in self.exec.table.iter().enumerate() {
            if !x.is_finite() || *x < 0.0 || !y.is_finite() || *y < 0.0 {
                return Err(format!(
                    "simulated device: exec.table row {} ({x}, {y}) must hold finite non-negative numbers",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn ms(ms: f64) -> Duration {
        Duration::from_secs_f64(finite_non_negative(ms) / 1e3)
    }

    /// The modelled time to upload `bytes` of weights.
    pub fn upload_time(&self, bytes: u64) -> Duration {
        let bw = finite_non_negative(self.upload_gb_per_s);
        let transfer = if bw > 0.0 {
            bytes as f64 / (bw * 1e9)
        } else {
            0.0
        };
        Self::ms(self.upload_fixed_ms) + Duration::from_secs_f64(transfer)
    }
}

/// What the simulated device did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCounters {
    /// Exec calls (launches).
    pub launches: u64,
    /// Items over all launches.
    pub items: u64,
    /// Sum of modelled launch times, µs.
    pub modelled_exec_us: u64,
    /// Sum of wall time of launches (CPU reference included), µs.
    pub wall_exec_us: u64,
}

/// The simulated GPU.
#[derive(Debug)]
pub struct Simulated {
    config: SimulatedConfig,
    /// Whether the context (and the cuBLAS handle) exist; held while they are created.
    context: Mutex<bool>,
    cublas: Mutex<bool>,
    /// Held during a launch when `serialize` is on.
    busy: Mutex<()>,
    launches: AtomicU64,
    items: AtomicU64,
    modelled_us: AtomicU64,
    wall_us: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits `d`: sleeps for all but the last 100 µs, then spins (sleep alone overshoots by
/// tens of µs).
pub fn wait_for(d: Duration) {
    let deadline = Instant::now() + d;
    let spin = Duration::from_micros(100);
    if d > spin {
        std::thread::sleep(d - spin);
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

impl Simulated {
    /// A simulated device with this model (invalid numbers are treated as 0; call
    /// [`SimulatedConfig::validate`] first to reject them).
    pub fn new(config: SimulatedConfig) -> Self {
        Simulated {
            config,
            context: Mutex::new(false),
            cublas: Mutex::new(false),
            busy: Mutex::new(()),
            launches: AtomicU64::new(0),
            items: AtomicU64::new(0),
            modelled_us: AtomicU64::new(0),
            wall_us: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &SimulatedConfig {
        &self.config
    }

    /// Creates the context on the first call (stage `context`); later calls cost nothing.
    /// A caller that finds creation in progress waits for it.
    pub fn warm_context(&self, log: &InitLog) {
        let mut ready = lock(&self.context);
        if !*ready {
            log.time("context", || {
                wait_for(SimulatedConfig::ms(self.config.context_ms))
            });
            *ready = true;
        }
    }

    /// Creates the device's cuBLAS handle on the first call (stage `cublas_handle`).
    pub fn warm_cublas(&self, log: &InitLog) {
        self.warm_context(log);
        let mut ready = lock(&self.cublas);
        if !*ready {
            log.time("cublas_handle", || {
                wait_for(SimulatedConfig::ms(self.config.cublas_handle_ms))
            });
            *ready = true;
        }
    }

    /// Compiles a kernel (stage `compile`).
    pub fn compile(&self, log: &InitLog) {
        log.time("compile", || {
            wait_for(SimulatedConfig::ms(self.config.compile_ms))
        });
    }

    /// Loads a compiled module (stage `module_load`).
    pub fn load_module(&self, log: &InitLog) {
        log.time("module_load", || {
            wait_for(SimulatedConfig::ms(self.config.module_load_ms))
        });
    }

    /// Uploads `bytes` of weights (stage `weight_upload`) and records them as resident.
    pub fn upload(&self, bytes: u64, log: &InitLog) {
        log.time("weight_upload", || wait_for(self.config.upload_time(bytes)));
        log.resident(bytes);
    }

    /// Forgets the context and cuBLAS handle, so that the next warm-up pays for them again
    /// (a restarted executor process).
    pub fn reset(&self) {
        *lock(&self.context) = false;
        *lock(&self.cublas) = false;
    }

    /// Whether the context exists.
    pub fn has_context(&self) -> bool {
        *lock(&self.context)
    }

    /// One launch of `batch` items of `work` units each: runs `compute` (the CPU
    /// reference), then waits until the modelled time has passed. With `serialize`, one
    /// launch at a time.
    pub fn exec<R>(&self, batch: usize, work: f64, compute: impl FnOnce() -> R) -> R {
        let model = self.config.exec.time(batch, work);
        let _busy = self.config.serialize.then(|| lock(&self.busy));
        let t0 = Instant::now();
        let r = compute();
        let spent = t0.elapsed();
        if model > spent {
            wait_for(model - spent);
        }
        let wall = t0.elapsed();
        self.launches.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(batch as u64, Ordering::Relaxed);
        self.modelled_us
            .fetch_add(model.as_micros() as u64, Ordering::Relaxed);
        self.wall_us
            .fetch_add(wall.as_micros() as u64, Ordering::Relaxed);
        r
    }

    /// Launches, items and times so far.
    pub fn counters(&self) -> SimCounters {
        SimCounters {
            launches: self.launches.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            modelled_exec_us: self.modelled_us.load(Ordering::Relaxed),
            wall_exec_us: self.wall_us.load(Ordering::Relaxed),
        }
    }
}

impl Device for Simulated {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            kind: DeviceKind::Simulated,
            name: self.config.name.clone(),
            memory_bytes: self.config.memory_bytes,
            mig: false,
        }
    }

    fn backend(&self) -> Backend<'_> {
        Backend::Simulated(self)
    }

    fn memory_budget(&self) -> u64 {
        self.config.memory_bytes
    }
}

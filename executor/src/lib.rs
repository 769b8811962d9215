//! # rukong-executor
//!
//! The data plane (`docs/architecture.md`). An executor hosts slot actors (actix) that pull
//! invocations and walk static schedules, deciding chains, fan-outs and fan-ins locally. No
//! scheduler sits on the hot path: slots coordinate only through the store.
//!
//! ## Layout
//! - [`functions`]: the [`Function`](functions::Function) trait, the
//!   [`Registry`](functions::Registry) and the built-ins.
//! - [`walk`]: running an invocation (job context, payloads, function calls, events).
//! - [`frontier`]: the schedule walk, level by level with batched store traffic (chain,
//!   fan-out, fan-in, data passing).
//! - [`run`]: running one function call (warm state, off-thread heavy calls, retries, panics).
//! - [`slot`]: the slot actor.
//! - [`executor`]: starting and stopping an executor (`start`).
//! - [`serve`]: an executor process against Redis and the proxy, until a shutdown signal.
//! - [`config`]: the settings, [`ExecutorConfig`] and [`GpuConfig`](config::GpuConfig).
//! - [`device`]: CPU, CUDA (feature `cuda`) and simulated devices, the per-device warm
//!   cache and the bundle-size chooser.
//! - [`bundling`]: GPU calls of one function from a device's slots, run as one batch.
//! - [`gate`]: a device's launch gate, ordered by the GPU scheduling policy.
//! - [`gpu_sched`]: the GPU scheduling policies (pure decisions) and their simulation.

pub mod bundling;
pub mod catch;
pub mod config;
pub mod device;
pub mod executor;
pub mod frontier;
pub mod functions;
pub mod gate;
pub mod gpu_sched;
pub mod pool;
pub mod run;
pub mod serve;
pub mod services;
pub mod slot;
pub mod walk;

pub use config::{ExecutorConfig, GpuConfig};
pub use executor::{ExecutorHandle, start, stop_all};
pub use functions::{FnError, Function, Registry};
pub use serve::{ServeConfig, serve};

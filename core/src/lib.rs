//! # rukong-core
//!
//! What every rukong component shares: the DAG model and its validation, newtype ids, the
//! static scheduler, the wire messages, the store traits with their in-memory
//! implementation, and the error types.
//!
//! ## Layout
//! - [`ids`]: `JobId`, `TaskId`, `ExecutorId` newtypes; `TaskIdx`, the dense task index.
//! - [`chunks`]: byte streams in chunks (bodies decoded and encoded as they travel).
//! - [`value`]: [`Value`], what flows between tasks (JSON plus bytes).
//! - [`dag`]: the file format ([`DagSpec`]), [`validate`](dag::validate()) and the compiled
//!   [`Dag`].
//! - [`schedule`]: the static scheduler (become / invoke / use_proxy).
//! - [`plan`]: [`JobPlan`], what is stored once per job.
//! - [`step`]: the walk's decision as pure functions (chain, fan-out, fan-in, proxy), shared
//!   by executors and the proxy.
//! - [`messages`]: invocations, payloads and events.
//! - [`store`]: the store traits, [`store::memory::MemoryStore`], and the conformance suite
//!   (feature `test-util`).
//! - [`proxy`]: the KV-store proxy's interface.
//! - [`profile`]: profiles: histograms per function, branch counts per conditional edge.
//! - [`mlp`]: the most-likely-path predictor (pure).
//! - [`rng`]: SplitMix64, the seeded generator of the simulators and workloads.
//! - [`error`]: one error enum per concern.

pub mod chunks;
pub mod dag;
pub mod error;
pub mod ids;
pub mod messages;
pub mod mlp;
pub mod msgpack;
pub mod plan;
pub mod profile;
pub mod proxy;
pub mod rng;
pub mod schedule;
pub mod step;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod value;

pub use dag::{Dag, DagSpec, Limits};
pub use error::{DagError, StoreError};
pub use ids::{ExecClass, ExecutorId, FnIdx, JobId, TaskId, TaskIdx};
pub use plan::{JobConfig, JobPlan};
pub use value::Value;

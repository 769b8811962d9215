//! # rukong-engine
//!
//! The control plane (`docs/architecture.md`): validates a job, computes and stores its static
//! schedule, enqueues its sources, and follows its events to the end. In-process for now;
//! cluster mode puts an HTTP API in front of the same [`Engine`].
//!
//! ## Layout
//! - [`engine`]: [`Engine`]: submit, wait, cancel, release.
//! - [`tracker`]: [`JobTracker`](tracker::JobTracker), the pure fold of a job's events into
//!   its state.
//! - [`service`]: [`JobService`], the cluster engine: submits jobs and follows each one to
//!   its end; stateless apart from the store.
//! - [`http`]: the HTTP API over a [`JobService`].
//! - [`upload`]: DAG bodies decoded while they arrive (MessagePack and the compact form).
//! - [`ui`]: the live dashboard at `GET /ui`: a plain HTML page, its vendored charting
//!   libraries, the cookie that carries the token, and the JSON views it reads.
//! - [`stall`]: stall detection: a job with nothing moving and nothing queued is replayed
//!   from its sources, then failed with an error that names what it waits on.
//! - [`warmup`]: speculative warm-up: modes, the pure hint planner, C_d / C_r accounting,
//!   and a deterministic simulator.

pub mod engine;
pub mod hints;
pub mod http;
pub mod service;
pub mod stall;
pub mod tracker;
pub mod ui;
pub mod upload;
pub mod warmup;

pub use engine::{
    Admission, Engine, EngineConfig, EngineError, JobReport, Progress, SubmitError, TracedTask,
    Transfer, traced_tasks,
};
pub use service::{JobService, ServiceConfig};
pub use stall::StallConfig;

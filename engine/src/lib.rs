//! # rukong-engine
//!
//! The control plane (DESIGN §4.1): validates a job, computes and stores its static
//! schedule, enqueues its sources, and follows its events to the end. In-process for now;
//! cluster mode puts an HTTP API in front of the same [`Engine`].
//!
//! ## Layout
//! - [`engine`]: [`Engine`]: submit, wait, cancel, release.
//! - [`tracker`]: [`JobTracker`](tracker::JobTracker), the pure fold of a job's events into
//!   its state.

pub mod engine;
pub mod tracker;

pub use engine::{Engine, EngineConfig, EngineError, JobReport, Progress, SubmitError};

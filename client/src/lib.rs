//! # rukong-client
//!
//! The Rust client library and the `rukong` CLI. [`JobBuilder`] builds a DAG; [`Local`]
//! runs it in embedded mode (engine, executor and proxy in one process, on the in-memory
//! store); [`workloads`] generates the benchmark workloads.
//!
//! ## Layout
//! - [`builder`]: the DAG builder, [`JobBuilder`].
//! - [`local`]: [`Local`], the embedded deployment.
//! - [`output`]: the CLI's JSON output contract.
//! - [`workloads`]: workload generators (`rukong gen …`).
//! - [`remote`]: [`EngineClient`](remote::EngineClient), the cluster engine's HTTP client.
//! - [`cli`]: the cluster commands' configuration, and [`executor_main`] for executor
//!   binaries with your own functions.

pub mod builder;
pub mod cli;
pub mod graph;
pub mod linalg_workloads;
pub mod local;
pub mod output;
pub mod remote;
pub mod timeline;
pub mod wfformat;
pub mod workloads;

pub use builder::{JobBuilder, TaskBuilder};
pub use cli::executor::executor_main;

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The Rust examples of `docs/rust-api.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/rust-api.md")]
pub struct RustApiDoctests;

/// The Rust examples of `docs/custom-functions.md`, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/custom-functions.md")]
pub struct CustomFunctionsDoctests;
pub use local::{Local, LocalConfig, LocalEngine, RunError};
pub use rukong_core::dag::DagSpec;
pub use rukong_engine::{JobReport, Progress};

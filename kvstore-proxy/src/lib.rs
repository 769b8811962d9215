//! # rukong-kvstore-proxy
//!
//! The KV-store proxy (`docs/architecture.md`): large objects, and large fan-outs. An executor
//! that finishes a task with out-degree ≥ F hands the whole fan-out here; the proxy records
//! the parent's arrival at every fan-in child in one batch and enqueues the ready children
//! in batched invocations, so a fan-out of 100,000 costs a handful of store calls, not
//! 100,000.
//!
//! ## Layout
//! - [`local`]: [`LocalProxy`], the in-process proxy over any [`Store`](rukong_core::store::Store)
//!   (embedded mode).
//! - [`server`]: [`serve`], the same [`Proxy`](rukong_core::proxy::Proxy) interface served
//!   over TCP (cluster mode) with a [`ServerConfig`]; objects go to the store or the
//!   proxy's own memory ([`ObjectBackend`]). Clients use
//!   [`RemoteProxy`](rukong_core::proxy::remote::RemoteProxy); the protocol is
//!   [`rukong_core::proxy::wire`].
//! - `transfer`: objects moved in chunks between a connection and the shared directory.
//!
//! Which children of a fan-out are ready and how they are packed into invocations is
//! decided by [`rukong_core::step`], the same pure functions executors walk with.

pub mod local;
pub mod server;
mod transfer;

pub use local::LocalProxy;
pub use server::{ConfigError, ObjectBackend, ServerConfig, default_shared_dir, serve};

//! The KV-store proxy's interface (`docs/architecture.md`). The executor calls the proxy only
//! through [`Proxy`]; embedded mode implements it in-process, cluster mode over TCP.
//!
//! - [`wire`]: the TCP protocol (framing, handshake, messages), shared by server and client.
//! - [`remote`]: [`remote::RemoteProxy`], the pooled TCP client.
//! - [`shared`]: [`shared::SharedDir`], objects as files shared by the processes of one
//!   host.

use crate::dag::Child;
use crate::error::StoreError;
use crate::ids::{JobId, TaskIdx};
use crate::messages::{ObjectKey, Payload};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::future::Future;
use thiserror::Error;

pub mod remote;
pub mod shared;
pub mod wire;

/// A whole fan-out handed to the proxy: record `parent`'s arrival at each fan-in child, and
/// enqueue every child that is ready, in batched invocations. The parent's output must
/// already be durable (written to the output store) when any child is a fan-in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FanOutRequest {
    pub job: JobId,
    pub parent: TaskIdx,
    /// The parent's output, as the children receive it.
    pub payload: Payload,
    pub children: Vec<Child>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanOutReply {
    /// Children that were ready and were enqueued.
    pub enqueued: u32,
    /// Invocations those children were packed into.
    pub invocations: u32,
    /// Fan-in children still waiting for other parents.
    pub waiting: u32,
}

/// Proxy failures. `Store` errors keep their own retryability; `Unavailable` is retryable;
/// a protocol error, a version mismatch or a refused token never is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProxyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("proxy unavailable: {0}")]
    Unavailable(String),
    #[error("proxy protocol error: {0}")]
    Protocol(String),
    #[error("proxy speaks protocol version {theirs}, this build speaks {ours}")]
    VersionMismatch { ours: u32, theirs: u32 },
    /// The proxy refused the handshake's token. Never retryable: the configuration has to
    /// change.
    #[error("proxy authentication failed: {0}")]
    Unauthorized(String),
}

impl ProxyError {
    pub fn is_retryable(&self) -> bool {
        match self {
            ProxyError::Store(e) => e.is_retryable(),
            ProxyError::Unavailable(_) => true,
            ProxyError::Protocol(_)
            | ProxyError::VersionMismatch { .. }
            | ProxyError::Unauthorized(_) => false,
        }
    }
}

pub type ProxyResult<T> = Result<T, ProxyError>;

pub trait Proxy: Send + Sync + 'static {
    fn put_object(
        &self,
        key: &ObjectKey,
        data: Bytes,
    ) -> impl Future<Output = ProxyResult<()>> + Send;
    fn get_object(
        &self,
        key: &ObjectKey,
    ) -> impl Future<Output = ProxyResult<Option<Bytes>>> + Send;
    fn delete_object(&self, key: &ObjectKey) -> impl Future<Output = ProxyResult<()>> + Send;
    /// Drops what the proxy keeps of a released object outside the store (its memory, or
    /// its host's shared directory), once [`crate::store::ObjectStore::release_outputs`]
    /// has left the object's tombstone in the store. The store's entry stays, so a late
    /// reader still finds the tombstone. Idempotent; nothing to do for a proxy that keeps
    /// objects only in the store.
    fn discard_object(&self, key: &ObjectKey) -> impl Future<Output = ProxyResult<()>> + Send;
    fn fan_out(&self, req: FanOutRequest) -> impl Future<Output = ProxyResult<FanOutReply>> + Send;
    /// Asks the proxy to load `job`'s plan now, before its first fan-out arrives, so that
    /// the load is off that fan-out's path (a 1M-task plan is 25 MB to fetch and decode).
    /// Answered at once; the load happens in the background, and a failed one is simply
    /// done again at the fan-out. Nothing to do where the proxy shares the caller's store.
    fn prefetch_plan(&self, job: &JobId) -> impl Future<Output = ProxyResult<()>> + Send {
        let _ = job;
        async { Ok(()) }
    }
}

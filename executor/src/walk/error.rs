//! Why a walk stopped early, and what becomes of its queue entry.

use rukong_core::error::StoreError;
use rukong_core::messages::ObjectKey;
use rukong_core::proxy::ProxyError;
use rukong_core::{TaskId, TaskIdx};
use thiserror::Error;

/// Why a walk stopped early.
#[derive(Debug)]
pub enum WalkError {
    /// A task failed for good: the job fails.
    Task {
        task: TaskIdx,
        attempts: u32,
        error: String,
    },
    /// The job ended (cancelled, failed elsewhere, or deleted): stop quietly.
    JobEnded,
    /// The store, the proxy or what they hold failed the walk; redelivery may help when
    /// [`BackendError::is_retryable`] says so.
    Backend(BackendError),
}

/// A failure outside the task's own function: in the store, the proxy, or the data they
/// returned.
#[derive(Debug, Error)]
pub enum BackendError {
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Proxy(ProxyError),
    /// The invocation names a task the job does not have.
    #[error("invocation names task {task}, but the job has {len}")]
    UnknownTask { task: TaskIdx, len: usize },
    /// A fan-in input that must have been written before its child became ready is not
    /// there (a store that lost data, or a write not yet visible).
    #[error("task {reader}: the output of dependency {dep} is not in the store")]
    MissingOutput { reader: TaskId, dep: TaskId },
    /// An output's object is gone (expired, or lost with the store).
    #[error("task {reader}: object {key} (output of {producer}) is missing")]
    MissingObject {
        reader: TaskId,
        producer: TaskId,
        key: ObjectKey,
    },
    /// An object that does not decode: it will not decode on a redelivery either.
    #[error("object {key} is corrupt: {message}")]
    CorruptObject { key: ObjectKey, message: String },
    /// A child this walk kept on a local slot must run again: so must this walk, which
    /// sends it again.
    #[error("a child kept on a local slot did not finish; the invocation runs again")]
    KeptChild,
    /// A broken invariant of the walk itself.
    #[error("internal: the output of {task} was continued into twice")]
    ContinuedTwice { task: TaskId },
}

impl BackendError {
    /// Whether redelivering the invocation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            BackendError::Store(e) => e.is_retryable(),
            BackendError::Proxy(e) => e.is_retryable(),
            BackendError::MissingOutput { .. }
            | BackendError::MissingObject { .. }
            | BackendError::KeptChild => true,
            BackendError::UnknownTask { .. }
            | BackendError::CorruptObject { .. }
            | BackendError::ContinuedTwice { .. } => false,
        }
    }
}

impl From<BackendError> for WalkError {
    fn from(e: BackendError) -> Self {
        WalkError::Backend(e)
    }
}

impl From<StoreError> for WalkError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownJob(_) => WalkError::JobEnded,
            e => WalkError::Backend(BackendError::Store(e)),
        }
    }
}

impl From<ProxyError> for WalkError {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::Store(s) => s.into(),
            e => WalkError::Backend(BackendError::Proxy(e)),
        }
    }
}

/// What to do with the queue entry after an invocation.
#[derive(Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Done (or nothing left to do): acknowledge.
    Ack,
    /// A retryable backend failure: leave it pending, so it is redelivered.
    Retry,
}

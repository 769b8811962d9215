//! Error types shared by every layer. One enum per layer; each says which variants are
//! worth retrying.

use crate::ids::{JobId, TaskId};
use thiserror::Error;

/// Why a DAG was rejected. Never retryable: the input has to change.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DagError {
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("invalid {format} at line {line}, column {column}: {message}")]
    Parse {
        format: &'static str,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the DAG has no tasks")]
    Empty,
    #[error("the DAG has {count} tasks, over the limit of {max}")]
    TooManyTasks { count: usize, max: usize },
    #[error("task {index}: bad id {id:?}: {reason}")]
    BadId {
        index: usize,
        id: String,
        reason: &'static str,
    },
    #[error("task {id}: duplicate id (tasks {first} and {second} of the file)")]
    DuplicateId {
        id: TaskId,
        first: usize,
        second: usize,
    },
    #[error("task {task}: unknown dependency \"{dep}\"")]
    UnknownDep { task: TaskId, dep: TaskId },
    #[error(
        "task {task}: unknown function {func:?}{}",
        unknown_function_hint(func)
    )]
    UnknownFunction { task: TaskId, func: String },
    #[error("task {task}: args are {size} bytes, over the inline limit of {max}")]
    ArgsTooLarge {
        task: TaskId,
        size: usize,
        max: usize,
    },
    #[error("cycle through task {task}: {path}")]
    Cycle { task: TaskId, path: String },
    #[error("outputs: unknown task \"{id}\"")]
    UnknownOutput { id: TaskId },
    #[error("task {task}: {message}")]
    Unsupported { task: TaskId, message: String },
    #[error("{}", join_errors(.0))]
    Many(Vec<DagError>),
}

impl DagError {
    /// A parse error in a format without lines (MessagePack, the compact form).
    pub fn unpositioned(format: &'static str, message: impl std::fmt::Display) -> DagError {
        DagError::Parse {
            format,
            line: 0,
            column: 0,
            message: message.to_string(),
        }
    }
}

/// Why a known built-in can be missing: `process` is off unless the executors allow it.
fn unknown_function_hint(func: &str) -> &'static str {
    if func == "process" {
        " (the process built-in is off: it runs only on executors started with --allow-process PROGRAM; see docs/process-tasks.md)"
    } else {
        ""
    }
}

fn join_errors(errors: &[DagError]) -> String {
    let mut s = format!("{} problems:", errors.len());
    for e in errors {
        s.push_str("\n  - ");
        s.push_str(&e.to_string());
    }
    s
}

impl DagError {
    /// The task the error is about, when there is one.
    pub fn task(&self) -> Option<&TaskId> {
        match self {
            DagError::DuplicateId { id: task, .. }
            | DagError::UnknownDep { task, .. }
            | DagError::UnknownFunction { task, .. }
            | DagError::ArgsTooLarge { task, .. }
            | DagError::Cycle { task, .. }
            | DagError::Unsupported { task, .. } => Some(task),
            DagError::UnknownOutput { id } => Some(id),
            _ => None,
        }
    }
}

/// Store failures. `Unavailable` and `Timeout` are retryable; the others are not.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("job {0} is not in the store")]
    UnknownJob(JobId),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store operation timed out after {ms} ms")]
    Timeout { ms: u64 },
    #[error("corrupt data in the store at {key}: {message}")]
    Corrupt { key: String, message: String },
    #[error("object {key} is {size} bytes, over the limit of {max}")]
    TooLarge {
        key: String,
        size: usize,
        max: usize,
    },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Timeout { .. }
        )
    }
}

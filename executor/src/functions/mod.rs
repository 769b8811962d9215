//! Functions and the registry that names them (`docs/warmup.md`).
//!
//! A function has an optional `init` that builds warm state (timed as a cold start the
//! first time a slot needs it) and a `call` on that state. Light functions run inline on the
//! slot's thread, which costs nanoseconds; a function that says a call is heavy
//! ([`Function::is_heavy`]) runs on the blocking pool so the slot's thread keeps scheduling.
//!
//! ```
//! use rukong_executor::functions::{FnError, Registry};
//! use rukong_core::Value;
//!
//! let mut registry = Registry::with_builtins();
//! registry.register_fn("double", |inputs: Vec<Value>| match inputs.as_slice() {
//!     [Value::Int(x)] => x.checked_mul(2).map(Value::Int).ok_or_else(|| FnError::new("overflow")),
//!     _ => Err(FnError::new("double takes one integer")),
//! });
//! assert!(registry.contains("double") && registry.contains("add"));
//! ```

pub mod builtins;
pub mod gpu;
pub mod linalg;

use rukong_core::Value;
use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Warm state built by [`Function::init`] and shared by every call on one slot.
pub type WarmState = Arc<dyn Any + Send + Sync>;

/// A function's failure: the message is reported with the task id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FnError {
    pub message: String,
}

impl FnError {
    pub fn new(message: impl Into<String>) -> Self {
        FnError {
            message: message.into(),
        }
    }
}

impl fmt::Display for FnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FnError {}

/// What `init` gets to know about where it runs.
#[derive(Clone, Debug)]
pub struct InitCtx {
    /// The function's registered name.
    pub name: String,
    /// The executor slot that is warming up.
    pub slot: usize,
    /// The device the slot runs on (`None`: the CPU). GPU functions keep it in their warm
    /// state and branch on [`Device::backend`](crate::device::Device::backend).
    pub device: Option<Arc<dyn crate::device::Device>>,
    /// Where `init` reports its cold-start stages and the bytes it leaves resident on the
    /// device (which makes the state device-bound: cached per device, not per slot).
    pub log: crate::device::InitLog,
}

impl InitCtx {
    /// A context for `name` on `slot`, on the CPU.
    pub fn new(name: impl Into<String>, slot: usize) -> Self {
        InitCtx {
            name: name.into(),
            slot,
            device: None,
            log: crate::device::InitLog::new(),
        }
    }

    /// The same, on `device`.
    pub fn with_device(mut self, device: Option<Arc<dyn crate::device::Device>>) -> Self {
        self.device = device;
        self
    }
}

pub trait Function: Send + Sync + 'static {
    /// Builds warm state (modules, weights, buffers). Runs once per slot, before that slot's
    /// first call; its time is reported as a cold start. Default: no state.
    fn init(&self, _ctx: &InitCtx) -> Result<Option<WarmState>, FnError> {
        Ok(None)
    }

    /// Runs one call. `inputs` are the dependencies' outputs in order, then the task's args.
    fn call(&self, state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError>;

    /// Runs several calls of this function at once (bundling). Must return one result per
    /// input list, in order. Default: one `call` each.
    fn call_batch(
        &self,
        state: Option<&WarmState>,
        batch: Vec<Vec<Value>>,
    ) -> Vec<Result<Value, FnError>> {
        batch.into_iter().map(|i| self.call(state, i)).collect()
    }

    /// Whether this call should leave the slot's thread (blocking, long, or big work).
    /// Default: light.
    fn is_heavy(&self, _inputs: &[Value]) -> bool {
        false
    }
}

/// A plain closure as a light function with no warm state.
struct FnClosure<F>(F);

impl<F> Function for FnClosure<F>
where
    F: Fn(Vec<Value>) -> Result<Value, FnError> + Send + Sync + 'static,
{
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        (self.0)(inputs)
    }
}

/// Names to functions. Executors look each job's function names up once, then index.
#[derive(Clone, Default)]
pub struct Registry {
    fns: Vec<(String, Arc<dyn Function>)>,
    by_name: HashMap<String, usize>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.fns.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every built-in of `docs/dag-format.md`
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        builtins::register_all(&mut r);
        linalg::register_all(&mut r);
        gpu::register_all(&mut r);
        r
    }

    /// Adds or replaces `name`.
    pub fn register(&mut self, name: impl Into<String>, f: impl Function) -> &mut Self {
        self.register_arc(name, Arc::new(f))
    }

    pub fn register_arc(&mut self, name: impl Into<String>, f: Arc<dyn Function>) -> &mut Self {
        let name = name.into();
        match self.by_name.get(&name) {
            Some(&i) => self.fns[i].1 = f,
            None => {
                self.by_name.insert(name.clone(), self.fns.len());
                self.fns.push((name, f));
            }
        }
        self
    }

    /// Adds a light, stateless function from a closure.
    pub fn register_fn<F>(&mut self, name: impl Into<String>, f: F) -> &mut Self
    where
        F: Fn(Vec<Value>) -> Result<Value, FnError> + Send + Sync + 'static,
    {
        self.register(name, FnClosure(f))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn get(&self, i: usize) -> &Arc<dyn Function> {
        &self.fns[i].1
    }

    pub fn name(&self, i: usize) -> &str {
        &self.fns[i].0
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fns.iter().map(|(n, _)| n.as_str())
    }

    pub fn len(&self) -> usize {
        self.fns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fns.is_empty()
    }
}

/// `crash()`: aborts the executor process. For fault-injection tests only: it is never in
/// the default registry, and an executor exposes it only when started with
/// `--test-functions`.
pub struct Crash;

impl Function for Crash {
    fn call(&self, _state: Option<&WarmState>, _inputs: Vec<Value>) -> Result<Value, FnError> {
        tracing::error!("crash() called: aborting this executor (fault injection)");
        std::process::abort()
    }
}

impl Registry {
    /// The built-ins plus the fault-injection functions (`crash`).
    pub fn with_test_functions() -> Self {
        let mut r = Self::with_builtins();
        r.register("crash", Crash);
        r
    }
}

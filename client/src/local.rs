//! Embedded mode: engine, executor and proxy in one process on the in-memory store.

use rukong_core::ExecClass;
use rukong_core::dag::DagSpec;
use rukong_core::error::{DagError, StoreError};
use rukong_core::plan::JobConfig;
use rukong_core::store::Store;
use rukong_core::store::memory::{DEFAULT_MAX_OBJECT, MemoryStore};
use rukong_engine::{Engine, EngineConfig, EngineError, JobReport, Progress, SubmitError};
use rukong_executor::{ExecutorConfig, ExecutorHandle, GpuConfig, Registry};
use rukong_kvstore_proxy::LocalProxy;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// The embedded default for [`JobConfig::inline_limit`]: every output up to the object limit
/// travels by reference. Nothing crosses a process boundary in embedded mode, so an inline
/// value is a reference-counted handle, while an object would be encoded, copied into the
/// store and decoded again by each reader. Larger outputs still go to the in-process proxy,
/// which rejects them with a clear error.
pub const EMBEDDED_INLINE_LIMIT: usize = DEFAULT_MAX_OBJECT;

/// Settings of an embedded deployment.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// Executor slots (default: one per core).
    pub slots: usize,
    /// Threads the slots are spread over (default: one per core, at most one per slot).
    pub executor_threads: Option<usize>,
    pub engine: EngineConfig,
    /// Functions the executor can run (default: the built-ins). Add your own here.
    pub registry: Registry,
    /// Largest object the store accepts, in bytes.
    pub max_object: usize,
    /// GPU executor: with at least one device, a second executor (class `gpu`) runs the
    /// tasks that ask for `resources: {gpu: N}`; without one, such jobs are rejected at
    /// submission.
    pub gpu: GpuConfig,
    /// An invocation left for redelivery (a store call failed) is taken up again after
    /// this long; a running walk refreshes its claim meanwhile. `None` never redelivers.
    pub visibility_timeout: Option<Duration>,
    /// Deliveries of one invocation before its job fails.
    pub max_deliveries: u32,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            slots: std::thread::available_parallelism().map_or(2, |n| n.get()),
            executor_threads: None,
            engine: EngineConfig {
                job: JobConfig {
                    inline_limit: EMBEDDED_INLINE_LIMIT,
                    ..JobConfig::default()
                },
                ..EngineConfig::default()
            },
            registry: Registry::with_builtins(),
            max_object: DEFAULT_MAX_OBJECT,
            gpu: GpuConfig::default(),
            visibility_timeout: Some(Duration::from_secs(10)),
            max_deliveries: 5,
        }
    }
}

/// Why a run did not produce a report.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Invalid(#[from] DagError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("could not start the embedded runtime: {0}")]
    Start(#[from] std::io::Error),
}

impl From<SubmitError> for RunError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Invalid(d) => RunError::Invalid(d),
            SubmitError::Store(s) => RunError::Store(s),
            e @ SubmitError::NoExecutors => RunError::Start(std::io::Error::other(e.to_string())),
        }
    }
}

/// The embedded engine over a store `S` (the in-memory one by default).
pub type LocalEngine<S = MemoryStore> = Engine<S, LocalProxy<S>>;

/// A running embedded deployment. Jobs run on its executor's slot threads; the calling
/// thread only waits. Dropping it stops the executor.
pub struct Local<S: Store = MemoryStore> {
    rt: tokio::runtime::Runtime,
    store: Arc<S>,
    engine: LocalEngine<S>,
    executor: Option<ExecutorHandle>,
    gpu_executor: Option<ExecutorHandle>,
    slots: usize,
}

impl Local {
    /// The embedded mode: everything in this process, on the in-memory store.
    pub fn start(config: LocalConfig) -> Result<Local, RunError> {
        let store = Arc::new(MemoryStore::with_max_object(config.max_object));
        Local::with_store(config, store)
    }
}

impl<S: Store> Local<S> {
    /// Engine, executors and proxy in this process over `store` (any implementation: a
    /// Redis store, or a test wrapper around one).
    pub fn with_store(config: LocalConfig, store: Arc<S>) -> Result<Local<S>, RunError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let proxy = Arc::new(LocalProxy::with_max_object(
            store.clone(),
            config.max_object,
        ));
        let slots = config.slots.max(1);
        config
            .engine
            .warmup
            .for_engine()
            .map_err(std::io::Error::other)?;
        let mut engine_config = config.engine;
        engine_config.job.slots_hint = slots;
        let gpu = !config.gpu.devices.is_empty();
        engine_config.gpu_available |= gpu;
        let registry = Arc::new(config.registry);
        let engine = Engine::new(
            store.clone(),
            proxy.clone(),
            engine_config,
            registry.names().map(str::to_owned),
        );
        let queue = |mut c: ExecutorConfig| {
            c.visibility_timeout = config.visibility_timeout;
            if let Some(v) = config.visibility_timeout {
                c.reclaim_every = c.reclaim_every.min(v / 3);
            }
            c.max_deliveries = config.max_deliveries;
            c
        };
        let mut exec_config = queue(ExecutorConfig::new(slots));
        if let Some(t) = config.executor_threads {
            exec_config.threads = t.clamp(1, slots);
        }
        let gpu_executor = if gpu {
            let mut c = queue(ExecutorConfig::new(1));
            c.id = rukong_core::ExecutorId::new(format!("{}-gpu", exec_config.id));
            c.class = ExecClass::Gpu;
            c.gpu = config.gpu;
            Some(rukong_executor::start(
                c,
                store.clone(),
                proxy.clone(),
                registry.clone(),
            )?)
        } else {
            None
        };
        let executor = rukong_executor::start(exec_config, store.clone(), proxy, registry)?;
        // Every slot idle before the first job, so that its first fan-out finds them.
        for e in std::iter::once(&executor).chain(&gpu_executor) {
            e.wait_ready(Duration::from_secs(5));
        }
        Ok(Local {
            rt,
            store,
            engine,
            executor: Some(executor),
            gpu_executor,
            slots,
        })
    }

    pub fn engine(&self) -> &LocalEngine<S> {
        &self.engine
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Runs a job to the end and frees its state.
    pub fn run(&self, spec: DagSpec) -> Result<JobReport, RunError> {
        self.run_with(spec, None, |_| {})
    }

    /// Runs a job to the end, reporting progress, giving up after `timeout` if set.
    pub fn run_with(
        &self,
        spec: DagSpec,
        timeout: Option<Duration>,
        on_progress: impl FnMut(Progress),
    ) -> Result<JobReport, RunError> {
        self.rt.block_on(async {
            let submitted = std::time::Instant::now();
            let job = self.engine.submit(spec).await?;
            let result = self
                .engine
                .wait(&job, submitted, timeout, on_progress)
                .await;
            if result.is_err() {
                let _ = self.engine.cancel(&job).await;
            }
            self.engine.release(&job).await?;
            Ok(result?)
        })
    }

    /// Runs an async block on this deployment's runtime (for the async engine API).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

impl<S: Store> Drop for Local<S> {
    fn drop(&mut self) {
        if let Some(e) = self.executor.take() {
            e.stop();
        }
        if let Some(e) = self.gpu_executor.take() {
            e.stop();
        }
    }
}

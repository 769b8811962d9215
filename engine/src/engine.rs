//! The control plane, in-process: accept a job, validate it, compute and store its
//! schedule, start its sources, and follow its events to the end. After the sources are
//! enqueued the engine is off the hot path: executors coordinate through the store.

use crate::stall::{StallWatch, Verdict};
use crate::tracker::JobTracker;
use rukong_core::dag::{DagSpec, validate};
use rukong_core::error::{DagError, StoreError};
use rukong_core::messages::{JobState, Payload, SpanKind, WalkStats};
use rukong_core::proxy::{Proxy, ProxyError};
use rukong_core::step::{self, Send};
use rukong_core::store::{ExecutorInfo, Store};
use rukong_core::{ExecClass, JobConfig, JobId, JobPlan, Limits, TaskId, Value, schedule};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// How long a succeeded job's trailing progress and spans are waited for (see
/// [`JobTracker::settled`]); they normally arrive within milliseconds.
pub(crate) const TRAILING_EVENTS: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub limits: Limits,
    /// Data passing and batching for each job.
    pub job: JobConfig,
    /// Whether any executor has a GPU (tasks with `resources.gpu` are rejected otherwise).
    pub gpu_available: bool,
    /// Speculative warm-up of the functions on the most likely path (`docs/warmup.md`):
    /// `reactive` (none, the default), `speculative` or `jit`. `oracle` runs only in the
    /// simulator: `Local::start` and the cluster settings refuse it
    /// ([`crate::warmup::WarmupMode::for_engine`]).
    pub warmup: crate::warmup::WarmupMode,
    pub warmup_config: crate::warmup::WarmupConfig,
    /// When a job that stopped moving is replayed, then failed.
    pub stall: crate::stall::StallConfig,
    /// How long the store may keep failing (retryable errors) before a wait gives up.
    pub store_outage: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            limits: Limits::default(),
            job: JobConfig::default(),
            gpu_available: false,
            warmup: crate::warmup::WarmupMode::default(),
            warmup_config: crate::warmup::WarmupConfig::default(),
            stall: crate::stall::StallConfig::default(),
            store_outage: Duration::from_secs(30),
        }
    }
}

/// Why a submission was refused. `Invalid` is never retryable; `Store` follows
/// [`StoreError::is_retryable`].
#[derive(Debug, Error)]
pub enum SubmitError {
    #[error(transparent)]
    Invalid(#[from] DagError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no executor is registered: start one with `rukong executor` (or `rukong up`)")]
    NoExecutors,
}

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("job {job}: output of task {task} is missing from the object store")]
    MissingOutput { job: JobId, task: TaskId },
    #[error("job {job}: output of task {task} is corrupt: {message}")]
    CorruptOutput {
        job: JobId,
        task: TaskId,
        message: String,
    },
    #[error("job {job} did not finish within {} s", .after.as_secs_f64())]
    Timeout { job: JobId, after: Duration },
}

/// Progress of a running job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// A finished job.
#[derive(Clone, Debug)]
pub struct JobReport {
    pub job: JobId,
    pub name: String,
    pub state: JobState,
    /// Requested outputs in the DAG's order (when the job succeeded: all of them except the
    /// skipped ones).
    pub outputs: Vec<(TaskId, Value)>,
    /// Requested outputs that were skipped (`docs/conditional-branches.md`: a guard failed, or
    /// their dependencies were skipped), in the DAG's order. They have no value; together with
    /// `outputs` they cover every requested output of a succeeded job.
    pub skipped: Vec<TaskId>,
    pub tasks: u64,
    pub stats: WalkStats,
    /// From submission (validation included) to the job's end.
    pub wall: Duration,
    /// One entry per task run and per object transfer, for traced jobs (`JobConfig::trace`);
    /// empty otherwise.
    pub trace: Vec<TracedTask>,
}

/// One task's run, or one transfer of its output, as a timeline draws it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TracedTask {
    pub task: TaskId,
    pub func: String,
    pub slot: String,
    pub start_us: u64,
    pub dur_us: u64,
    pub init_us: u64,
    pub deps: Vec<TaskId>,
    /// `None` for a run of the task; `Some` for a transfer of its output through the
    /// object store (which then takes `dur_us` from `start_us`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
}

/// A transfer of a task's output through the object store, on the slot that did it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transfer {
    /// `true` for a put (the producer wrote it), `false` for a get (a consumer read it).
    pub put: bool,
    pub bytes: u64,
}

impl JobReport {
    /// A requested output's value (`None` when it was skipped, or is not an output).
    pub fn output(&self, id: &str) -> Option<&Value> {
        self.outputs
            .iter()
            .find(|(t, _)| t.as_str() == id)
            .map(|(_, v)| v)
    }

    /// Whether the requested output `id` was skipped.
    pub fn is_skipped(&self, id: &str) -> bool {
        self.skipped.iter().any(|t| t.as_str() == id)
    }
}

/// What jobs may ask for: the functions every executor runs, whether any executor has a
/// GPU, and how many slots there are (for batching).
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// The functions a DAG may use. In a cluster: those that every registered executor
    /// has, because any executor of a class may pull any invocation of a job.
    pub functions: Arc<HashSet<String>>,
    pub gpu_available: bool,
    pub slots: usize,
    /// Cluster mode: how many executors are registered, and for each function that only
    /// some of them have, how many have it. `None` for a fixed set (embedded mode).
    pub coverage: Option<Arc<Coverage>>,
}

/// Which registered executors have which functions (cluster mode), to explain a refusal.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    pub executors: usize,
    /// Functions on some executors but not all: how many have each.
    pub partial: HashMap<String, usize>,
}

impl Admission {
    /// From the executors' registrations: a function is admitted when every one of them
    /// has it.
    pub fn from_executors(execs: &[ExecutorInfo]) -> Admission {
        let mut count: HashMap<&str, usize> = HashMap::new();
        for e in execs {
            let mine: HashSet<&str> = e.functions.iter().map(String::as_str).collect();
            for f in mine {
                *count.entry(f).or_default() += 1;
            }
        }
        let n = execs.len();
        let (all, partial): (Vec<_>, Vec<_>) = count.into_iter().partition(|&(_, c)| c == n);
        Admission {
            functions: Arc::new(all.into_iter().map(|(f, _)| f.to_owned()).collect()),
            gpu_available: execs.iter().any(|e| e.class == ExecClass::Gpu),
            slots: execs.iter().map(|e| e.slots as usize).sum(),
            coverage: Some(Arc::new(Coverage {
                executors: n,
                partial: partial
                    .into_iter()
                    .map(|(f, c)| (f.to_owned(), c))
                    .collect(),
            })),
        }
    }

    /// `e`, with each unknown function explained for a cluster: none of the registered
    /// executors has it, or only some do. (`process` that no executor has keeps its own
    /// explanation: a built-in that executors leave off unless they allow programs.)
    fn explain(&self, e: DagError) -> DagError {
        let Some(cov) = &self.coverage else {
            return e;
        };
        let n = cov.executors;
        match e {
            DagError::UnknownFunction { task, func } => {
                let message = match cov.partial.get(&func) {
                    Some(c) => format!(
                        "function {func:?} is on only {c} of the {n} registered executors; \
                         any executor may run any task, so every one needs it (start them all \
                         from one binary, e.g. `rukong up --executor-bin PATH`; see \
                         docs/custom-functions.md)"
                    ),
                    None if func == "process" => {
                        return DagError::UnknownFunction { task, func };
                    }
                    None => format!(
                        "unknown function {func:?}: none of the {n} registered executors has it \
                         (start executors built with it, e.g. `rukong up --executor-bin PATH`; \
                         see docs/custom-functions.md)"
                    ),
                };
                DagError::Unsupported { task, message }
            }
            DagError::Many(all) => {
                DagError::Many(all.into_iter().map(|e| self.explain(e)).collect())
            }
            e => e,
        }
    }
}

pub struct Engine<S, P> {
    store: Arc<S>,
    proxy: Arc<P>,
    config: EngineConfig,
    /// Fixed (embedded mode), or `None`: read from the live executors at each submission.
    admission: Option<Admission>,
}

impl<S: Store, P: Proxy> Engine<S, P> {
    /// An engine for a fixed set of executors (embedded mode). `functions`: every function
    /// name they run.
    pub fn new(
        store: Arc<S>,
        proxy: Arc<P>,
        config: EngineConfig,
        functions: impl IntoIterator<Item = String>,
    ) -> Self {
        let admission = Admission {
            functions: Arc::new(functions.into_iter().collect()),
            gpu_available: config.gpu_available,
            slots: config.job.slots_hint,
            coverage: None,
        };
        Engine {
            store,
            proxy,
            config,
            admission: Some(admission),
        }
    }

    /// An engine that admits jobs against the executors registered in the store (cluster
    /// mode).
    pub fn with_live_executors(store: Arc<S>, proxy: Arc<P>, config: EngineConfig) -> Self {
        Engine {
            store,
            proxy,
            config,
            admission: None,
        }
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    pub fn proxy(&self) -> &Arc<P> {
        &self.proxy
    }

    /// What a job submitted now may ask for.
    pub async fn admission(&self) -> Result<Admission, SubmitError> {
        if let Some(a) = &self.admission {
            return Ok(a.clone());
        }
        let execs = retrying(self.config.store_outage, || self.store.executors()).await?;
        if execs.is_empty() {
            return Err(SubmitError::NoExecutors);
        }
        Ok(Admission::from_executors(&execs))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Validates and schedules a DAG: everything up to storing it. Pure.
    pub fn prepare(
        &self,
        spec: DagSpec,
        job: JobId,
        admission: &Admission,
    ) -> Result<JobPlan, DagError> {
        let functions = admission.functions.clone();
        let dag = validate(spec, &self.config.limits, &|f| functions.contains(f))
            .map_err(|e| admission.explain(e))?;
        let mut problems = Vec::new();
        for (t, e) in dag.all_extras() {
            let task = dag.id(t).clone();
            if e.resources.as_ref().is_some_and(|r| r.gpu > 0) && !admission.gpu_available {
                problems.push(DagError::Unsupported {
                    task,
                    message: "requests a GPU, but no executor in this deployment has one (start one with --gpu cuda, or --gpu simulated)".into(),
                });
            }
        }
        match problems.len() {
            0 => {}
            1 => return Err(problems.remove(0)),
            _ => return Err(DagError::Many(problems)),
        }
        let schedule = schedule::schedule(&dag, self.config.job.proxy_fanout);
        let mut config = self.config.job;
        if admission.slots > 0 {
            config.slots_hint = admission.slots;
        }
        Ok(JobPlan {
            job,
            dag,
            schedule,
            config,
        })
    }

    /// Validates, stores and starts a job.
    pub async fn submit(&self, spec: DagSpec) -> Result<JobId, SubmitError> {
        self.submit_traced(spec, self.config.job.trace).await
    }

    /// As [`Engine::submit`]; `trace` asks executors for a span per task (timelines).
    pub async fn submit_traced(&self, spec: DagSpec, trace: bool) -> Result<JobId, SubmitError> {
        let admission = self.admission().await?;
        let mut plan = self.prepare(spec, JobId::generate(), &admission)?;
        plan.config.trace = trace;
        plan.config.report_branches =
            self.config.warmup != crate::warmup::WarmupMode::Reactive && plan.dag.has_guards();
        let plan = Arc::new(plan);
        let job = self.start(plan.clone()).await?;
        crate::hints::start_hints(
            self.store.clone(),
            plan,
            self.config.warmup,
            self.config.warmup_config.clone(),
        )
        .await;
        Ok(job)
    }

    /// Stores a prepared plan and enqueues its sources, batched.
    pub async fn start(&self, plan: Arc<JobPlan>) -> Result<JobId, StoreError> {
        let outage = self.config.store_outage;
        // Storing a job twice is a no-op, so a lost reply is simply retried.
        retrying(outage, || self.store.put_job(plan.clone())).await?;
        // A job with a fan-out wide enough for the proxy: let the proxy load the plan while
        // the sources start, rather than when the first such fan-out reaches it.
        if plan
            .dag
            .tasks()
            .any(|t| plan.schedule.use_proxy(&plan.dag, t))
        {
            let (proxy, job) = (self.proxy.clone(), plan.job.clone());
            tokio::spawn(async move {
                if let Err(error) = proxy.prefetch_plan(&job).await {
                    tracing::debug!(%job, %error, "the proxy did not prefetch the plan");
                }
            });
        }
        self.enqueue_sources(&plan).await?;
        Ok(plan.job.clone())
    }

    /// Enqueues one invocation per batch of sources, per class. Enqueuing them again (a
    /// re-drive) is safe: every effect of a walk is idempotent.
    pub async fn enqueue_sources(&self, plan: &JobPlan) -> Result<(), StoreError> {
        let dag = &plan.dag;
        let sends: Vec<Send> = dag
            .sources()
            .iter()
            .map(|&task| Send {
                task,
                from: None,
                class: dag.class(task),
            })
            .collect();
        let invs = step::pack(&plan.job, &plan.config, &sends, |_| Payload::Skipped);
        for (class, invs) in [ExecClass::Cpu, ExecClass::Gpu].into_iter().zip(invs) {
            for batch in invs.chunks(1024) {
                // A push retried after a lost reply enqueues duplicates: harmless.
                retrying(self.config.store_outage, || {
                    self.store.push(class, batch.to_vec())
                })
                .await?;
            }
        }
        Ok(())
    }

    /// Follows the job's events until it succeeds, fails or is cancelled, calling
    /// `on_progress` as tasks finish; gives up after `timeout` when one is set. The report's
    /// wall time runs from `submitted` (pass the instant before [`Engine::submit`]).
    pub async fn wait(
        &self,
        job: &JobId,
        submitted: Instant,
        timeout: Option<Duration>,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<JobReport, EngineError> {
        let started = submitted;
        let outage = self.config.store_outage;
        let plan = retrying(outage, || self.store.get_job(job)).await?;
        let total = plan.dag.len() as u64;
        let mut tracker = JobTracker::new(plan.clone());
        let mut stall = StallWatch::new(self.config.stall);
        let mut cursor = 0;
        let state = loop {
            if let Some(limit) = timeout
                && started.elapsed() > limit
            {
                return Err(EngineError::Timeout {
                    job: job.clone(),
                    after: limit,
                });
            }
            let batch = retrying(outage, || {
                self.store
                    .read_events(job, cursor, 65_536, Duration::from_millis(200))
            })
            .await?;
            cursor = batch.next;
            let got_any = !batch.events.is_empty();
            for e in batch.events {
                tracker.apply(e);
            }
            on_progress(Progress {
                done: tracker.tasks_settled(),
                total,
            });
            match tracker.state() {
                JobState::Running => {}
                s => {
                    retrying(outage, || self.store.set_job_state(job, s.clone())).await?;
                    break s;
                }
            }
            if got_any {
                stall.progressed();
                continue;
            }
            // Nothing new: the job may have ended without an event (cancelled, or an
            // executor failed it on a backend error), or stopped moving.
            let s = retrying(outage, || self.store.job_state(job)).await?;
            if s.is_finished() {
                break s;
            }
            match stall.check(self, job, &tracker).await {
                Ok(Verdict::Stuck(failed)) => {
                    retrying(outage, || self.store.set_job_state(job, failed.clone())).await?;
                    break failed;
                }
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    tracing::debug!(%job, error = %e, "stall check failed; trying again later");
                }
                Err(e) => return Err(e.into()),
            }
        };
        if state == JobState::Succeeded {
            // Other invocations may flush their progress and spans just after the sink's
            // result: read on, briefly, until every task is accounted for.
            let deadline = Instant::now() + TRAILING_EVENTS;
            while !tracker.settled() && Instant::now() < deadline {
                // Best effort: the job has succeeded, and a store that fails now only
                // leaves its counts short.
                let Ok(batch) = self
                    .store
                    .read_events(job, cursor, 65_536, Duration::from_millis(50))
                    .await
                else {
                    break;
                };
                cursor = batch.next;
                if batch.events.is_empty() {
                    // A finished job's read returns at once; don't spin.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                for e in batch.events {
                    tracker.apply(e);
                }
            }
        }
        let mut outputs = Vec::new();
        let mut skipped = Vec::new();
        if state == JobState::Succeeded {
            for (t, p) in tracker.outputs() {
                let id = plan.dag.id(t).clone();
                let Some(p) = p else {
                    return Err(EngineError::MissingOutput {
                        job: job.clone(),
                        task: id,
                    });
                };
                if p.is_skipped() {
                    skipped.push(id);
                    continue;
                }
                let v = self.resolve(job, &id, p.clone()).await?;
                outputs.push((id, v));
            }
        }
        let trace = traced_tasks(&tracker);
        Ok(JobReport {
            job: job.clone(),
            name: plan.dag.name().to_owned(),
            state,
            outputs,
            skipped,
            tasks: tracker.tasks_done(),
            stats: tracker.stats().clone(),
            wall: started.elapsed(),
            trace,
        })
    }

    pub async fn resolve(
        &self,
        job: &JobId,
        task: &TaskId,
        p: Payload,
    ) -> Result<Value, EngineError> {
        match p {
            Payload::Inline(v) => Ok(v),
            // Callers report skipped outputs as skipped; a marker has no value.
            Payload::Skipped => Ok(Value::Null),
            Payload::Object(key) => {
                let t0 = Instant::now();
                let got = loop {
                    match self.proxy.get_object(&key).await {
                        Err(e) if e.is_retryable() && t0.elapsed() < self.config.store_outage => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        r => break r,
                    }
                };
                let bytes = got?.ok_or_else(|| EngineError::MissingOutput {
                    job: job.clone(),
                    task: task.clone(),
                })?;
                Value::from_msgpack_shared(&bytes).map_err(|e| EngineError::CorruptOutput {
                    job: job.clone(),
                    task: task.clone(),
                    message: e.to_string(),
                })
            }
        }
    }

    pub async fn state(&self, job: &JobId) -> Result<JobState, StoreError> {
        self.store.job_state(job).await
    }

    /// Cancels a job: executors stop picking up its invocations.
    pub async fn cancel(&self, job: &JobId) -> Result<(), StoreError> {
        let outage = self.config.store_outage;
        match retrying(outage, || self.store.job_state(job)).await? {
            JobState::Running => {
                retrying(outage, || {
                    self.store.set_job_state(job, JobState::Cancelled)
                })
                .await
            }
            _ => Ok(()),
        }
    }

    /// Frees every key of a finished job.
    pub async fn release(&self, job: &JobId) -> Result<(), StoreError> {
        retrying(self.config.store_outage, || self.store.delete_job(job)).await
    }
}

/// The spans a tracker collected, with task ids, functions and dependencies resolved.
pub fn traced_tasks(tracker: &JobTracker) -> Vec<TracedTask> {
    let dag = &tracker.plan().dag;
    tracker
        .spans()
        .iter()
        .map(|(slot, s)| TracedTask {
            task: dag.id(s.task).clone(),
            func: dag.func_name(s.task).to_owned(),
            slot: slot.clone(),
            start_us: s.start_us,
            dur_us: s.dur_us,
            init_us: s.init_us,
            deps: match s.kind {
                SpanKind::Run => dag
                    .deps(s.task)
                    .iter()
                    .map(|&d| dag.id(d).clone())
                    .collect(),
                SpanKind::Get | SpanKind::Put => Vec::new(),
            },
            transfer: match s.kind {
                SpanKind::Run => None,
                k => Some(Transfer {
                    put: k == SpanKind::Put,
                    bytes: s.bytes,
                }),
            },
        })
        .collect()
}

/// Runs `op` until it succeeds, fails for good, or the store has been failing with
/// retryable errors (a lost reply, a restart) for `outage`. For idempotent store calls
/// only.
pub(crate) async fn retrying<T, Fut>(
    outage: Duration,
    mut op: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let t0 = Instant::now();
    let mut backoff = Duration::from_millis(5);
    loop {
        match op().await {
            Err(e) if e.is_retryable() && t0.elapsed() < outage => {
                tracing::debug!(error = %e, "store call failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rukong_core::ExecutorId;

    fn executor(functions: &[&str]) -> ExecutorInfo {
        ExecutorInfo {
            id: ExecutorId::new("e"),
            class: ExecClass::Cpu,
            slots: 1,
            functions: functions.iter().map(|f| f.to_string()).collect(),
            devices: Vec::new(),
            host: String::new(),
            version: String::new(),
            device_stats: Vec::new(),
        }
    }

    #[test]
    fn a_cluster_admits_the_functions_every_executor_has_and_explains_the_rest() {
        let spec = |f: &str| DagSpec::from_yaml_str(&format!("tasks:\n  - {{id: t, fn: {f}}}\n"));
        let execs = [executor(&["const"]), executor(&["const", "add"])];
        let live = Admission::from_executors(&execs);
        let limits = Limits::default();
        let check = |a: &Admission, f: &str| {
            let functions = a.functions.clone();
            validate(spec(f).unwrap(), &limits, &|f| functions.contains(f))
                .map_err(|e| a.explain(e).to_string())
                .err()
        };
        assert_eq!(check(&live, "const"), None);
        let e = check(&live, "shout").unwrap();
        assert!(
            e.starts_with(
                "task t: unknown function \"shout\": none of the 2 registered executors has it"
            ),
            "{e}"
        );
        let e = check(&live, "add").unwrap();
        assert!(
            e.starts_with("task t: function \"add\" is on only 1 of the 2 registered executors"),
            "{e}"
        );
        let fixed = Admission::default();
        assert_eq!(
            check(&fixed, "shout").unwrap(),
            "task t: unknown function \"shout\""
        );
        assert!(check(&live, "process").unwrap().contains("--allow-process"));
    }
}

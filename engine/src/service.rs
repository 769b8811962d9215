//! The cluster engine's job service: submits jobs and follows each one's event stream to
//! its end. It keeps nothing the store does not have: a restarted engine lists the jobs in
//! the store and replays their events ([`JobService::recover`]). Finished jobs are kept for
//! a retention period (so clients can fetch outputs), then every key is freed.

use crate::engine::{Engine, EngineError, SubmitError};
use crate::stall::{StallWatch, Verdict};
use crate::tracker::JobTracker;
use rukong_core::dag::DagSpec;
use rukong_core::error::StoreError;
use rukong_core::messages::{JobState, WalkStats};
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use rukong_core::{JobId, TaskId, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thiserror::Error;

#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// How long a finished job's state and outputs stay in the store.
    pub retention: Duration,
    /// How long one event read waits for new events.
    pub poll: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            retention: Duration::from_secs(600),
            poll: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, Error)]
pub enum ServiceError {
    #[error("no job {0}")]
    UnknownJob(JobId),
    #[error("job {job} has not succeeded (it is {state})")]
    NotSucceeded { job: JobId, state: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What a client sees of a job.
#[derive(Clone, Debug)]
pub struct JobStatus {
    pub job: JobId,
    pub name: String,
    pub state: JobState,
    pub done: u64,
    pub total: u64,
    pub stats: WalkStats,
    /// The last error reading the job's state from the store, while it persists.
    pub store_error: Option<String>,
    /// Seconds from the engine's first sight of the job to its end.
    pub elapsed: Duration,
}

struct Followed {
    /// The store's run epoch when the follower started.
    epoch: Mutex<Option<String>>,
    tracker: Mutex<Option<JobTracker>>,
    state: Mutex<JobState>,
    store_error: Mutex<Option<String>>,
    started: std::time::Instant,
    ended: Mutex<Option<std::time::Instant>>,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub submitted: AtomicU64,
    pub rejected: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub cancelled: AtomicU64,
    pub tasks: AtomicU64,
    pub cold_starts: AtomicU64,
    pub warm_hits: AtomicU64,
    pub bundled: AtomicU64,
    pub init_us: AtomicU64,
    pub hints_issued: AtomicU64,
    pub hints_used: AtomicU64,
    pub hints_wasted: AtomicU64,
    pub warm_idle_us: AtomicU64,
}

pub struct JobService<S, P> {
    engine: Arc<Engine<S, P>>,
    config: ServiceConfig,
    jobs: Mutex<HashMap<JobId, Arc<Followed>>>,
    pub counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S: Store, P: Proxy> JobService<S, P> {
    pub fn new(engine: Arc<Engine<S, P>>, config: ServiceConfig) -> Arc<Self> {
        Arc::new(JobService {
            engine,
            config,
            jobs: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        })
    }

    pub fn engine(&self) -> &Arc<Engine<S, P>> {
        &self.engine
    }

    /// Follows every job already in the store (after a restart). Returns how many.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, StoreError> {
        let jobs = self.engine.store().list_jobs().await?;
        for j in &jobs {
            self.follow(j.clone());
        }
        Ok(jobs.len())
    }

    pub async fn submit(self: &Arc<Self>, spec: DagSpec) -> Result<JobId, SubmitError> {
        self.submit_traced(spec, false).await
    }

    /// As [`JobService::submit`]; `trace` records a span per task (for timelines).
    pub async fn submit_traced(
        self: &Arc<Self>,
        spec: DagSpec,
        trace: bool,
    ) -> Result<JobId, SubmitError> {
        match self.engine.submit_traced(spec, trace).await {
            Ok(job) => {
                self.counters.submitted.fetch_add(1, Ordering::Relaxed);
                self.follow(job.clone());
                Ok(job)
            }
            Err(e) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Jobs this engine follows that have not ended.
    pub fn running(&self) -> usize {
        lock(&self.jobs)
            .values()
            .filter(|f| !lock(&f.state).is_finished())
            .count()
    }

    fn follow(self: &Arc<Self>, job: JobId) -> Arc<Followed> {
        let mut jobs = lock(&self.jobs);
        if let Some(f) = jobs.get(&job) {
            return f.clone();
        }
        let f = Arc::new(Followed {
            epoch: Mutex::new(None),
            tracker: Mutex::new(None),
            state: Mutex::new(JobState::Running),
            store_error: Mutex::new(None),
            started: std::time::Instant::now(),
            ended: Mutex::new(None),
        });
        jobs.insert(job.clone(), f.clone());
        let me = self.clone();
        let followed = f.clone();
        tokio::spawn(async move { me.run_follower(job, followed).await });
        f
    }

    async fn run_follower(self: Arc<Self>, job: JobId, f: Arc<Followed>) {
        let store = self.engine.store().clone();
        let mut backoff = Duration::from_millis(100);
        // The plan, retrying while the store is unreachable.
        let plan = loop {
            match store.get_job(&job).await {
                Ok(p) => break p,
                Err(StoreError::UnknownJob(_)) => {
                    lock(&self.jobs).remove(&job);
                    return;
                }
                Err(e) => {
                    *lock(&f.store_error) = Some(e.to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        };
        match store.run_epoch().await {
            Ok(e) => *lock(&f.epoch) = Some(e),
            Err(e) => tracing::warn!(%job, error = %e, "could not read the store's run epoch"),
        }
        *lock(&f.tracker) = Some(JobTracker::new(plan));
        let mut stall = StallWatch::new(self.engine.config().stall);
        let mut cursor = 0;
        let final_state = loop {
            let batch = match store
                .read_events(&job, cursor, 65_536, self.config.poll)
                .await
            {
                Ok(b) => b,
                Err(StoreError::UnknownJob(_)) => break self.vanished(&job, &f).await,
                Err(e) => {
                    *lock(&f.store_error) = Some(e.to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            *lock(&f.store_error) = None;
            backoff = Duration::from_millis(100);
            cursor = batch.next;
            let got_any = !batch.events.is_empty();
            let implied = {
                let mut t = lock(&f.tracker);
                let Some(t) = t.as_mut() else {
                    break JobState::Cancelled;
                };
                for e in batch.events {
                    t.apply(e);
                }
                t.state()
            };
            if implied.is_finished() {
                if let Err(e) = store.set_job_state(&job, implied.clone()).await {
                    tracing::warn!(%job, error = %e, "could not record the job's end");
                }
                break implied;
            }
            if got_any {
                stall.progressed();
                continue;
            }
            match store.job_state(&job).await {
                Ok(s) if s.is_finished() => break s,
                Ok(_) => {}
                Err(StoreError::UnknownJob(_)) => break self.vanished(&job, &f).await,
                Err(e) => *lock(&f.store_error) = Some(e.to_string()),
            }
            if !stall.due() {
                continue;
            }
            // A snapshot of the view: the check awaits the store.
            let Some(view) = lock(&f.tracker).as_ref().map(JobTracker::snapshot) else {
                break JobState::Cancelled;
            };
            let verdict = stall.check(&self.engine, &job, &view).await;
            match verdict {
                Ok(Verdict::Stuck(failed)) => {
                    tracing::error!(%job, state = ?failed, "job stalled");
                    if let Err(e) = store.set_job_state(&job, failed.clone()).await {
                        tracing::warn!(%job, error = %e, "could not record the job's end");
                    }
                    break failed;
                }
                Ok(_) => {}
                Err(StoreError::UnknownJob(_)) => break self.vanished(&job, &f).await,
                Err(e) => *lock(&f.store_error) = Some(e.to_string()),
            }
        };
        if final_state == JobState::Succeeded {
            self.drain_trailing(&job, &f, cursor).await;
        }
        self.finish(&f, final_state);
        tokio::time::sleep(self.config.retention).await;
        if let Err(e) = self.engine.release(&job).await {
            tracing::warn!(%job, error = %e, "could not free the job's keys; their TTL will");
        }
        lock(&self.jobs).remove(&job);
    }

    /// The state of a followed job whose keys are gone: cancelled (deleted by a client),
    /// or lost, when the store's run epoch changed since the follower started (a Redis
    /// restarted without its data).
    async fn vanished(&self, job: &JobId, f: &Followed) -> JobState {
        let Some(then) = lock(&f.epoch).clone() else {
            return JobState::Cancelled;
        };
        let mut backoff = Duration::from_millis(100);
        let mut last = String::new();
        for _ in 0..20 {
            match self.engine.store().run_epoch().await {
                Ok(now) if now == then => return JobState::Cancelled,
                Ok(now) => {
                    tracing::error!(%job, was = %then, now = %now, "job lost: the store lost its data");
                    return JobState::Failed {
                        task: "-".into(),
                        error: format!(
                            "lost: the store lost its data while the job ran (Redis restarted \
                             without persistence: run epoch {then} is now {now}); resubmit the job"
                        ),
                    };
                }
                Err(e) => {
                    last = e.to_string();
                    *lock(&f.store_error) = Some(last.clone());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        JobState::Failed {
            task: "-".into(),
            error: format!(
                "lost: the job's keys vanished from the store, whose run epoch cannot be read: {last}"
            ),
        }
    }

    /// A succeeded job's progress and spans can trail its end (another invocation may
    /// flush just after the sink's result): read on, briefly, until every task is counted.
    async fn drain_trailing(&self, job: &JobId, f: &Followed, mut cursor: u64) {
        let store = self.engine.store().clone();
        let deadline = tokio::time::Instant::now() + crate::engine::TRAILING_EVENTS;
        loop {
            {
                let t = lock(&f.tracker);
                match t.as_ref() {
                    Some(t) if !t.settled() => {}
                    _ => return,
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            let Ok(batch) = store
                .read_events(job, cursor, 65_536, Duration::from_millis(50))
                .await
            else {
                return;
            };
            cursor = batch.next;
            if batch.events.is_empty() {
                // A finished job's read returns at once; don't spin.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            if let Some(t) = lock(&f.tracker).as_mut() {
                for e in batch.events {
                    t.apply(e);
                }
            }
        }
    }

    fn finish(&self, f: &Followed, state: JobState) {
        if lock(&f.state).is_finished() {
            return;
        }
        let c = &self.counters;
        match &state {
            JobState::Succeeded => c.succeeded.fetch_add(1, Ordering::Relaxed),
            JobState::Failed { .. } => c.failed.fetch_add(1, Ordering::Relaxed),
            _ => c.cancelled.fetch_add(1, Ordering::Relaxed),
        };
        if let Some(t) = lock(&f.tracker).as_ref() {
            c.tasks.fetch_add(t.tasks_done(), Ordering::Relaxed);
            let st = t.stats();
            c.cold_starts
                .fetch_add(u64::from(st.cold_starts), Ordering::Relaxed);
            c.warm_hits
                .fetch_add(u64::from(st.warm_hits), Ordering::Relaxed);
            c.bundled
                .fetch_add(u64::from(st.bundled), Ordering::Relaxed);
        }
        // The job's end is known: an outage met on the way to it no longer matters to a
        // client asking for its state.
        *lock(&f.store_error) = None;
        *lock(&f.state) = state;
        *lock(&f.ended) = Some(std::time::Instant::now());
    }

    async fn followed(self: &Arc<Self>, job: &JobId) -> Result<Arc<Followed>, ServiceError> {
        if let Some(f) = lock(&self.jobs).get(job) {
            return Ok(f.clone());
        }
        // Not followed here (another engine took it, or this one restarted): if the store
        // has it, follow it from the start of its events.
        match self.engine.store().job_state(job).await {
            Ok(_) => Ok(self.follow(job.clone())),
            Err(StoreError::UnknownJob(_)) => Err(ServiceError::UnknownJob(job.clone())),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn status(self: &Arc<Self>, job: &JobId) -> Result<JobStatus, ServiceError> {
        let f = self.followed(job).await?;
        let t = lock(&f.tracker);
        let (name, done, total, stats) = match t.as_ref() {
            Some(t) => (
                t.plan().dag.name().to_owned(),
                t.tasks_settled(),
                t.plan().dag.len() as u64,
                t.stats().clone(),
            ),
            None => (String::new(), 0, 0, WalkStats::default()),
        };
        let elapsed = lock(&f.ended).unwrap_or_else(std::time::Instant::now) - f.started;
        Ok(JobStatus {
            job: job.clone(),
            name,
            state: lock(&f.state).clone(),
            done,
            total,
            stats,
            store_error: lock(&f.store_error).clone(),
            elapsed,
        })
    }

    /// The requested outputs of a succeeded job, in the DAG's order: a value, or `None` for
    /// a skipped output (`docs/conditional-branches.md`).
    pub async fn outputs(
        self: &Arc<Self>,
        job: &JobId,
    ) -> Result<Vec<(TaskId, Option<Value>)>, ServiceError> {
        let f = self.followed(job).await?;
        let state = lock(&f.state).clone();
        if state != JobState::Succeeded {
            return Err(ServiceError::NotSucceeded {
                job: job.clone(),
                state: format!("{state:?}"),
            });
        }
        let payloads: Vec<(TaskId, rukong_core::messages::Payload)> = {
            let t = lock(&f.tracker);
            let Some(t) = t.as_ref() else {
                return Err(ServiceError::UnknownJob(job.clone()));
            };
            t.outputs()
                .filter_map(|(task, p)| Some((t.plan().dag.id(task).clone(), p?.clone())))
                .collect()
        };
        let mut out = Vec::with_capacity(payloads.len());
        for (id, p) in payloads {
            if p.is_skipped() {
                out.push((id, None));
                continue;
            }
            let v = self.engine.resolve(job, &id, p).await?;
            out.push((id, Some(v)));
        }
        Ok(out)
    }

    /// The task spans of a traced job so far (empty for an untraced one).
    pub async fn trace(
        self: &Arc<Self>,
        job: &JobId,
    ) -> Result<Vec<crate::engine::TracedTask>, ServiceError> {
        let f = self.followed(job).await?;
        let t = lock(&f.tracker);
        Ok(t.as_ref()
            .map(crate::engine::traced_tasks)
            .unwrap_or_default())
    }

    /// Cancels a job: executors stop picking up its invocations, and its keys are freed.
    pub async fn cancel(self: &Arc<Self>, job: &JobId) -> Result<(), ServiceError> {
        match self.engine.store().job_state(job).await {
            Err(StoreError::UnknownJob(_)) => return Err(ServiceError::UnknownJob(job.clone())),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        self.engine.cancel(job).await?;
        self.engine.release(job).await?;
        if let Some(f) = lock(&self.jobs).get(job).cloned() {
            self.finish(&f, JobState::Cancelled);
        }
        Ok(())
    }
}

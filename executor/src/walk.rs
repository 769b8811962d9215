//! Walking a static schedule (DESIGN §4.2–4.7). One [`Walker`] runs one invocation inline on
//! its slot's thread:
//!
//! - **chain** (one child, whose only dependency is this task): continue in memory; nothing
//!   is written;
//! - **fan-in child**: write this output first, then record the arrival; only the parent that
//!   completes the set continues;
//! - **fan-out**: become one ready child and send the others as invocations (outputs up to P
//!   inline, larger ones put once in the object store and sent by key); at out-degree ≥ F the
//!   whole fan-out goes to the proxy.
//!
//! Effects are batched per step: one output write, one arrival batch, one queue push.

use crate::bundling::Bundler;
use crate::run::{WarmCache, call_once};
use crate::services::Services;
use rukong_core::error::StoreError;
use rukong_core::messages::{Event, Invocation, JobState, ObjectKey, Payload, SpanKind, WalkStats};
use rukong_core::profile::{DagProfile, FnProfile};
use rukong_core::proxy::{Proxy, ProxyError};
use rukong_core::store::{DeliveryId, Release, Store, is_tombstone};
use rukong_core::{ExecClass, JobId, JobPlan, TaskIdx, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A job as one slot sees it: the plan, and each DAG function's registry index.
pub struct JobCtx {
    pub plan: Arc<JobPlan>,
    pub fns: Vec<usize>,
}

/// What a slot keeps between invocations.
pub struct SlotState {
    pub index: usize,
    pub warm: WarmCache,
    /// On a device slot: the device's bundler, which GPU tasks go through.
    pub bundler: Option<Arc<Bundler>>,
    jobs: HashMap<JobId, Arc<JobCtx>>,
}

/// Jobs cached per slot before the cache is cleared (plans are shared `Arc`s, so a refetch
/// from the in-memory store is cheap; from Redis it is one round trip).
const JOB_CACHE: usize = 64;

/// How often (in tasks) a long walk checks whether its job was cancelled or failed.
pub(crate) const STATE_CHECK_EVERY: u64 = 4096;

impl SlotState {
    pub fn new(index: usize) -> Self {
        SlotState {
            index,
            warm: WarmCache::default(),
            bundler: None,
            jobs: HashMap::new(),
        }
    }

    /// A slot on a device: warm state in the device's cache, GPU tasks bundled.
    pub fn on_device(index: usize, warm: WarmCache, bundler: Arc<Bundler>) -> Self {
        SlotState {
            index,
            warm,
            bundler: Some(bundler),
            jobs: HashMap::new(),
        }
    }
}

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
    /// The store or proxy failed; `retryable` says whether redelivery may help.
    Backend { retryable: bool, error: String },
}

impl From<StoreError> for WalkError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownJob(_) => WalkError::JobEnded,
            e => WalkError::Backend {
                retryable: e.is_retryable(),
                error: e.to_string(),
            },
        }
    }
}

impl From<ProxyError> for WalkError {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::Store(s) => s.into(),
            e => WalkError::Backend {
                retryable: e.is_retryable(),
                error: e.to_string(),
            },
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

/// The function's warm state on this slot, running its `init` first when it is cold. On a
/// device slot a cold start (context, compile, upload: up to seconds) runs on the blocking
/// pool, so that the device's other slots keep walking meanwhile.
async fn warm_function(
    registry: &Arc<crate::functions::Registry>,
    slot: &mut SlotState,
    f: usize,
) -> Result<(Option<crate::functions::WarmState>, crate::run::ColdStart), crate::functions::FnError>
{
    if slot.warm.device().is_none() || slot.warm.is_warm(f) {
        return slot.warm.get_or_init(registry, f, slot.index);
    }
    let mut warm = std::mem::take(&mut slot.warm);
    let reg = registry.clone();
    let index = slot.index;
    match tokio::task::spawn_blocking(move || {
        let r = warm.get_or_init(&reg, f, index);
        (warm, r)
    })
    .await
    {
        Ok((warm, r)) => {
            slot.warm = warm;
            r
        }
        Err(e) => Err(crate::functions::FnError::new(format!(
            "init was lost: {e}"
        ))),
    }
}

/// A warm-up hint (DESIGN §6): build each named function's warm state now, unless it is
/// warm already; on a device, drop it again at the hint's TTL if no task used it. A release
/// drops the named warm states that no task has used. Both report in the job's stats.
/// Unknown names and failing `init`s are logged and skipped: a hint is advice, never a
/// reason to fail a job.
async fn run_hint<S: Store, P: Proxy>(
    svc: &Services<S, P>,
    slot: &mut SlotState,
    inv: &Invocation,
) -> Disposition {
    let job = &inv.job;
    match svc.store.job_state(job).await {
        Ok(JobState::Running) => {}
        _ => return Disposition::Ack,
    }
    let mut stats = WalkStats::default();
    for name in &inv.warm {
        let Some(f) = svc.registry.index_of(name) else {
            tracing::warn!(%job, function = %name, "warm-up hint for a function this executor does not have");
            continue;
        };
        if slot.warm.is_warm(f) {
            stats.hints_noop += 1;
            continue;
        }
        match warm_function(&svc.registry, slot, f).await {
            Ok((_, cold)) if cold.happened => {
                stats.hints_warmed += 1;
                stats.hint_init_us += cold.init.as_micros() as u64;
                if let Some(cache) = slot.warm.device_cache() {
                    cache.mark_hinted(name);
                }
                if let (Some(cache), true) = (slot.warm.device_cache(), inv.warm_ttl_ms > 0) {
                    expire_unused(
                        svc.store.clone(),
                        cache.clone(),
                        job.clone(),
                        name.clone(),
                        Duration::from_millis(inv.warm_ttl_ms),
                    );
                }
            }
            Ok(_) => stats.hints_noop += 1,
            Err(e) => {
                tracing::warn!(%job, function = %name, error = %e, "warm-up hint: init failed")
            }
        }
    }
    if let Some(cache) = slot.warm.device_cache() {
        for name in &inv.release {
            if let Some(idle) = cache.drop_unused_hint(name) {
                stats.hints_wasted += 1;
                stats.warm_idle_us += idle.as_micros() as u64;
            }
        }
    }
    if let Err(e) = svc
        .store
        .append_events(job, vec![Event::Progress(stats)])
        .await
    {
        tracing::debug!(%job, error = %e, "could not record a warm-up hint");
    }
    Disposition::Ack
}

/// At `ttl`, drops the hinted warm state of `name` unless a task has used it, and counts the
/// hint as wasted if so (a task that uses it counts it as used).
fn expire_unused<S: Store>(
    store: Arc<S>,
    cache: Arc<crate::device::DeviceCache>,
    job: JobId,
    name: String,
    ttl: Duration,
) {
    tokio::spawn(async move {
        tokio::time::sleep(ttl).await;
        // Used (counted by the task), or evicted meanwhile (LRU, or a release): nothing.
        let Some(idle) = cache.drop_unused_hint(&name) else {
            return;
        };
        let stats = WalkStats {
            hints_wasted: 1,
            warm_idle_us: idle.as_micros() as u64,
            ..WalkStats::default()
        };
        if let Err(e) = store
            .append_events(&job, vec![Event::Progress(stats)])
            .await
        {
            tracing::debug!(%job, error = %e, "could not record a hint's outcome");
        }
    });
}

/// Runs one invocation to the end and reports what it did.
pub async fn run_invocation<S: Store, P: Proxy>(
    svc: &Services<S, P>,
    slot: &mut SlotState,
    inv: Invocation,
    delivery: DeliveryId,
    deliveries: u32,
) -> Disposition {
    let job = inv.job.clone();
    if inv.is_hint() {
        return run_hint(svc, slot, &inv).await;
    }
    let ctx = match job_ctx(svc, slot, &job).await {
        Ok(Some(ctx)) => ctx,
        Ok(None) => return Disposition::Ack,
        Err(e) => return settle_backend(svc, &job, e, deliveries).await,
    };
    match svc.store.job_state(&job).await {
        Ok(JobState::Running) => {}
        Ok(_) | Err(StoreError::UnknownJob(_)) => return Disposition::Ack,
        Err(e) => return settle_backend(svc, &job, e.into(), deliveries).await,
    }
    // A redelivered invocation is under suspicion: its walk leaves a breadcrumb naming each
    // task before running it, so that a task that kills its executor can be named.
    let breadcrumb = (deliveries > 1).then(|| {
        ObjectKey::new(format!(
            "{}attempt:{delivery}",
            rukong_core::messages::job_prefix(&job)
        ))
    });
    if deliveries > svc.config.max_deliveries {
        // Every earlier delivery died without acking: a poison task that takes its
        // executor down. Fail the job, naming the task the last delivery was running.
        let plan = &ctx.plan;
        let last = match &breadcrumb {
            Some(k) => svc.store.get_object(k).await.ok().flatten(),
            None => None,
        };
        let culprit = last
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map(|b| TaskIdx(u32::from_le_bytes(b)))
            .filter(|t| t.get() < plan.dag.len())
            .or_else(|| {
                inv.starts
                    .first()
                    .map(|s| s.task)
                    .filter(|t| t.get() < plan.dag.len())
            });
        let task = culprit.map_or_else(
            || rukong_core::TaskId::from("-"),
            |t| plan.dag.id(t).clone(),
        );
        let error = format!(
            "its invocation was delivered {deliveries} times and its executor died every time \
             while running this task; giving up"
        );
        tracing::error!(%job, %task, deliveries, "poison invocation");
        let failed = Event::TaskFailed {
            task: culprit.unwrap_or(TaskIdx(0)),
            id: task.clone(),
            attempts: deliveries,
            error: error.clone(),
        };
        return record_failure(svc, &job, Some(failed), JobState::Failed { task, error }).await;
    }
    let mut w = Walker {
        svc,
        slot,
        breadcrumb,
        plan: ctx.plan.clone(),
        ctx,
        stats: WalkStats::default(),
        profile: Vec::new(),
        events: Vec::new(),
        branches: Vec::new(),
        spans: Vec::new(),
        releases: Vec::new(),
    };
    let outcome = w.walk_all(inv.starts).await;
    match outcome {
        Ok(()) | Err(WalkError::JobEnded) => {}
        Err(WalkError::Task {
            task,
            attempts,
            error,
        }) => {
            // The failure is in the events the flush appends; the state says it at once.
            let id = w.plan.dag.id(task).clone();
            w.events.push(Event::TaskFailed {
                task,
                id: id.clone(),
                attempts,
                error: error.clone(),
            });
            let failed = JobState::Failed { task: id, error };
            if let Err(e) = svc.store.set_job_state(&job, failed).await
                && !matches!(e, StoreError::UnknownJob(_))
            {
                w.flush().await.ok();
                return settle_backend(svc, &job, e.into(), deliveries).await;
            }
        }
        Err(e @ WalkError::Backend { .. }) => {
            // Report what was done so far, then settle the entry.
            w.flush().await.ok();
            return settle_backend(svc, &job, e, deliveries).await;
        }
    }
    // Results must reach the event log: if they cannot, the invocation runs again (its
    // effects are idempotent, and the engine drops duplicate results).
    match w.flush().await {
        Ok(()) => {
            w.release().await;
            Disposition::Ack
        }
        Err(e) => settle_backend(svc, &job, e, deliveries).await,
    }
}

/// Records that the job failed: its failure event (if any), then its state. Retried by
/// redelivery when the store cannot take it now, so a failure is never lost.
async fn record_failure<S: Store, P: Proxy>(
    svc: &Services<S, P>,
    job: &JobId,
    event: Option<Event>,
    state: JobState,
) -> Disposition {
    let appended = match event {
        Some(e) => svc.store.append_events(job, vec![e]).await,
        None => Ok(()),
    };
    let result = match appended {
        Ok(()) => svc.store.set_job_state(job, state).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) | Err(StoreError::UnknownJob(_)) => Disposition::Ack,
        Err(e) => {
            tracing::warn!(%job, error = %e, "could not record the job's failure; it will be redelivered");
            Disposition::Retry
        }
    }
}

/// A backend failure: retry by redelivery while attempts remain, else fail the job.
async fn settle_backend<S: Store, P: Proxy>(
    svc: &Services<S, P>,
    job: &JobId,
    e: WalkError,
    deliveries: u32,
) -> Disposition {
    match e {
        WalkError::Backend { retryable, error } => {
            if retryable && deliveries < svc.config.max_deliveries {
                tracing::warn!(%job, deliveries, %error, "invocation will be redelivered");
                return Disposition::Retry;
            }
            tracing::error!(%job, %error, "invocation failed");
            let state = JobState::Failed {
                task: "-".into(),
                error: format!("executor {}: {error}", svc.config.id),
            };
            record_failure(svc, job, None, state).await
        }
        _ => Disposition::Ack,
    }
}

async fn job_ctx<S: Store, P: Proxy>(
    svc: &Services<S, P>,
    slot: &mut SlotState,
    job: &JobId,
) -> Result<Option<Arc<JobCtx>>, WalkError> {
    if let Some(c) = slot.jobs.get(job) {
        return Ok(Some(c.clone()));
    }
    let plan = match svc.store.get_job(job).await {
        Ok(p) => p,
        Err(StoreError::UnknownJob(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut fns = Vec::with_capacity(plan.dag.funcs().len());
    for name in plan.dag.funcs() {
        match svc.registry.index_of(name) {
            Some(i) => fns.push(i),
            None => {
                let error = format!("executor {} has no function {name:?}", svc.config.id);
                let failed = JobState::Failed {
                    task: "-".into(),
                    error,
                };
                match svc.store.set_job_state(job, failed).await {
                    Ok(()) | Err(StoreError::UnknownJob(_)) => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    if slot.jobs.len() >= JOB_CACHE {
        slot.jobs.clear();
    }
    let ctx = Arc::new(JobCtx { plan, fns });
    slot.jobs.insert(job.clone(), ctx.clone());
    Ok(Some(ctx))
}

/// Walks one invocation; the walk itself is in [`crate::frontier`].
pub(crate) struct Walker<'a, S, P> {
    pub(crate) svc: &'a Services<S, P>,
    slot: &'a mut SlotState,
    /// Where a redelivered invocation notes the task it is about to run.
    breadcrumb: Option<ObjectKey>,
    ctx: Arc<JobCtx>,
    pub(crate) plan: Arc<JobPlan>,
    pub(crate) stats: WalkStats,
    /// Per DAG function: what this invocation measured.
    profile: Vec<FnProfile>,
    pub(crate) events: Vec<Event>,
    /// Branch outcomes (DESIGN §8): every guard this walk evaluated, as `(guarded task,
    /// taken)`: `taken` is true when the guard passed and the task ran, false when it failed
    /// and the task was skipped. A guard is evaluated when its task is otherwise ready to
    /// run, so a guard whose own dependency was skipped (or, under `join: all`, whose task
    /// another skipped dependency skipped first) is not listed. [`Walker::flush`] merges them
    /// into the DAG's profile ([`DagProfile::record_branches`]).
    pub(crate) branches: Vec<(TaskIdx, bool)>,
    /// Task spans, when the job is traced.
    spans: Vec<rukong_core::messages::Span>,
    /// Stored outputs this walk read and is done with, released when it ends well.
    pub(crate) releases: Vec<Release>,
}

/// Microseconds since the Unix epoch (span starts line up across processes on a host).
fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl<S: Store, P: Proxy> Walker<'_, S, P> {
    /// Records a transfer of `t`'s output that began at `started` (traced jobs only).
    fn trace_transfer(
        &mut self,
        t: TaskIdx,
        kind: SpanKind,
        started: Option<(u64, Instant)>,
        bytes: u64,
    ) {
        if let Some((start_us, t0)) = started {
            self.spans.push(rukong_core::messages::Span {
                task: t,
                start_us,
                dur_us: t0.elapsed().as_micros() as u64,
                init_us: 0,
                kind,
                bytes,
            });
        }
    }

    /// The output as it travels: inline up to P, else put once in the object store.
    pub(crate) async fn payload(
        &mut self,
        t: TaskIdx,
        out: &Value,
        cached: &mut Option<Payload>,
    ) -> Result<Payload, WalkError> {
        if let Some(p) = cached {
            return Ok(p.clone());
        }
        let p = if out.approx_size() > self.plan.config.inline_limit {
            let key = ObjectKey::for_output(&self.plan.job, t);
            let started = self.plan.config.trace.then(|| (unix_us(), Instant::now()));
            let bytes = out.to_msgpack();
            let size = bytes.len() as u64;
            self.stats.objects_put += 1;
            self.stats.object_bytes += size;
            match self.svc.proxy.put_object(&key, bytes.into()).await {
                Ok(()) => self.trace_transfer(t, SpanKind::Put, started, size),
                Err(ProxyError::Store(StoreError::TooLarge { size, max, .. })) => {
                    return Err(WalkError::Task {
                        task: t,
                        attempts: 1,
                        error: format!("output is {size} bytes, over the object limit of {max}"),
                    });
                }
                Err(e) => return Err(e.into()),
            }
            Payload::Object(key)
        } else {
            Payload::Inline(out.clone())
        };
        *cached = Some(p.clone());
        Ok(p)
    }

    /// A payload as a value (fetching a large object through the proxy); `None` when the
    /// object was released by all its readers (see [`Walker::resolve_all`]).
    pub(crate) async fn resolve(
        &mut self,
        t: TaskIdx,
        from: TaskIdx,
        p: Payload,
    ) -> Result<Option<Value>, WalkError> {
        match p {
            Payload::Inline(v) => Ok(Some(v)),
            // A skipped task's marker reads as null (walks never ask; see `frontier`).
            Payload::Skipped => Ok(Some(Value::Null)),
            p => Ok(self.resolve_all(vec![(t, from, p)]).await?.pop().flatten()),
        }
    }

    /// Payloads as values: `(reader, producer, payload)` each. Objects are fetched through
    /// the proxy concurrently (its connection pool carries them in parallel). `None` for an
    /// object that is a tombstone: every reader released it, so the reader asking now is
    /// a duplicate of one that finished.
    pub(crate) async fn resolve_all(
        &mut self,
        items: Vec<(TaskIdx, TaskIdx, Payload)>,
    ) -> Result<Vec<Option<Value>>, WalkError> {
        let svc = self.svc;
        let traced = self.plan.config.trace;
        let fetches = items.iter().filter_map(|(_, _, p)| match p {
            Payload::Object(key) => Some(async move {
                let started = traced.then(|| (unix_us(), Instant::now()));
                (svc.proxy.get_object(key).await, started)
            }),
            Payload::Inline(_) | Payload::Skipped => None,
        });
        let mut fetched = futures_util::future::join_all(fetches).await.into_iter();
        let mut out = Vec::with_capacity(items.len());
        for (t, from, p) in items {
            let key = match p {
                Payload::Inline(v) => {
                    out.push(Some(v));
                    continue;
                }
                Payload::Skipped => {
                    out.push(Some(Value::Null));
                    continue;
                }
                Payload::Object(key) => key,
            };
            let Some((got, started)) = fetched.next() else {
                break;
            };
            let dag = &self.plan.dag;
            let bytes = got?.ok_or_else(|| WalkError::Backend {
                retryable: true,
                error: format!(
                    "task {}: object {key} (output of {}) is missing",
                    dag.id(t),
                    dag.id(from)
                ),
            })?;
            if is_tombstone(&bytes) {
                out.push(None);
                continue;
            }
            let value = Value::from_msgpack_shared(&bytes).map_err(|e| WalkError::Backend {
                retryable: false,
                error: format!("object {key} is corrupt: {e}"),
            })?;
            self.trace_transfer(from, SpanKind::Get, started, bytes.len() as u64);
            out.push(Some(value));
        }
        Ok(out)
    }

    /// Runs the task's function with its retries.
    pub(crate) async fn run_task(
        &mut self,
        t: TaskIdx,
        inputs: Vec<Value>,
    ) -> Result<Value, WalkError> {
        let plan = self.plan.clone();
        let dag = &plan.dag;
        let fi = dag.func_of(t);
        let f = self.ctx.fns[fi];
        let registry = &self.svc.registry;
        if self.profile.len() <= fi {
            self.profile
                .resize_with(dag.funcs().len(), FnProfile::default);
        }
        let warmed = warm_function(&self.svc.registry, self.slot, f).await;
        let (state, cold) = warmed.map_err(|e| WalkError::Task {
            task: t,
            attempts: 1,
            error: format!("init of {} failed: {e}", registry.name(f)),
        })?;
        let traced_start = self
            .plan
            .config
            .trace
            .then(|| unix_us().saturating_sub(cold.init.as_micros() as u64));
        if !cold.happened && self.slot.bundler.is_some() {
            self.stats.warm_hits += 1;
        }
        // A state a hint loaded counts as used by its first task, even one that waited for
        // the hint's `init` to finish.
        if let Some(cache) = self.slot.warm.device_cache()
            && let Some(idle) = cache.take_hinted(registry.name(f))
        {
            self.stats.hints_used += 1;
            self.stats.warm_idle_us += idle.as_micros() as u64;
        }
        if cold.happened {
            let us = cold.init.as_micros() as u64;
            // A slot that waited for another slot's `init` of the same function (a shared
            // device cache) paid the delay, but did not start the function cold itself.
            if !cold.joined {
                self.stats.cold_starts += 1;
                self.profile[fi].cold_start_us.record(us);
            }
            self.stats.init_us += us;
        }
        let (retries, timeout) = match dag.extras(t) {
            Some(e) => (e.retries, e.timeout_ms.map(Duration::from_millis)),
            None => (0, None),
        };
        let func = registry.get(f);
        if let Some(k) = &self.breadcrumb {
            let note = bytes::Bytes::copy_from_slice(&t.0.to_le_bytes());
            if let Err(e) = self.svc.store.put_object(k, note).await {
                tracing::warn!(error = %e, "could not leave a breadcrumb");
            }
        }
        let mut inputs = Some(inputs);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt > retries;
            let args = if last {
                inputs.take().unwrap_or_default()
            } else {
                inputs.clone().unwrap_or_default()
            };
            let t0 = Instant::now();
            let result = match &self.slot.bundler {
                // The first attempt of a GPU task on a device slot joins a bundle.
                Some(b) if attempt == 1 && plan.dag.class(t) == ExecClass::Gpu => {
                    self.stats.bundled += 1;
                    b.call(registry.name(f), func, state.clone(), args).await
                }
                _ => call_once(func, state.as_ref(), args, timeout).await,
            };
            match result {
                Ok(v) => {
                    let exec_us = t0.elapsed().as_micros() as u64;
                    self.profile[fi].exec_us.record(exec_us);
                    self.profile[fi].output_bytes.record(v.approx_size() as u64);
                    if let Some(start_us) = traced_start {
                        let init_us = cold.init.as_micros() as u64;
                        self.spans.push(rukong_core::messages::Span {
                            task: t,
                            start_us,
                            dur_us: init_us + exec_us,
                            init_us: if cold.happened { init_us } else { 0 },
                            kind: SpanKind::Run,
                            bytes: 0,
                        });
                    }
                    return Ok(v);
                }
                Err(e) if last => {
                    return Err(WalkError::Task {
                        task: t,
                        attempts: attempt,
                        error: e.message,
                    });
                }
                Err(e) => {
                    tracing::debug!(task = %dag.id(t), attempt, error = %e, "task attempt failed; retrying");
                }
            }
        }
    }

    /// Releases the stored outputs this walk read (after its effects are durable, so a
    /// reader that finds one released may drop its duplicate walk). Best effort: an output
    /// not released stays until the job ends.
    async fn release(&mut self) {
        let releases = std::mem::take(&mut self.releases);
        if releases.is_empty() {
            return;
        }
        if let Err(e) = self
            .svc
            .store
            .release_outputs(&self.plan.job, &releases)
            .await
        {
            tracing::debug!(job = %self.plan.job, error = %e, "could not release outputs; they stay until the job ends");
        }
    }

    pub(crate) async fn check_running(&self) -> Result<(), WalkError> {
        match self.svc.store.job_state(&self.plan.job).await? {
            JobState::Running => Ok(()),
            _ => Err(WalkError::JobEnded),
        }
    }

    /// Appends this invocation's results and progress, and merges its profile. Fails when
    /// the events could not be appended (the profile is advice: its errors are ignored).
    async fn flush(&mut self) -> Result<(), WalkError> {
        let job = self.plan.job.clone();
        let mut events = std::mem::take(&mut self.events);
        if !self.spans.is_empty() {
            events.push(Event::Trace {
                slot: format!("{}-s{}", self.svc.config.id, self.slot.index),
                spans: std::mem::take(&mut self.spans),
            });
        }
        if self.stats.tasks > 0 || self.stats.skipped > 0 {
            events.push(Event::Progress(std::mem::take(&mut self.stats)));
        }
        let branches = std::mem::take(&mut self.branches);
        if !events.is_empty()
            && let Err(e) = self.svc.store.append_events(&job, events).await
        {
            if matches!(e, StoreError::UnknownJob(_)) {
                return Ok(());
            }
            tracing::warn!(%job, error = %e, "could not append events");
            return Err(e.into());
        }
        // Branch outcomes (DESIGN §8) travel with the function timings, in one call.
        let mut profile: DagProfile = self
            .plan
            .dag
            .funcs()
            .iter()
            .zip(std::mem::take(&mut self.profile))
            .filter(|(_, p)| p.exec_us.count > 0 || p.cold_start_us.count > 0)
            .map(|(n, p)| (n.clone(), p))
            .collect();
        if !branches.is_empty() {
            profile.record_branches(&self.plan.dag, branches);
        }
        if !profile.is_empty() {
            let _ = self
                .svc
                .store
                .record_profile(self.plan.dag.name(), profile)
                .await;
        }
        Ok(())
    }
}

//! Walking a static schedule (`docs/architecture.md`). One [`Walker`] runs one invocation inline on
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
//!
//! The pieces, one concept each:
//! - [`jobs`]: the per-slot state and its cache of job plans;
//! - [`poison`]: naming and failing an invocation that kills its executor every time;
//! - [`hints`]: warm state, and the engine's warm-up hints;
//! - [`task`]: one task's function call, with its retries;
//! - [`objects`]: payloads (inline or put once as objects), fetching them, releasing them;
//! - [`flush`]: the walk's events, progress and profile, sent when it ends;
//! - [`error`]: why a walk stopped, typed.

mod error;
mod flush;
mod hints;
mod jobs;
mod objects;
mod poison;
mod task;

pub use error::{BackendError, Disposition, WalkError};
pub use jobs::{JobCtx, SlotState};

use crate::pool::Kept;
use crate::services::Services;
use rukong_core::error::StoreError;
use rukong_core::messages::{Event, Invocation, JobState, ObjectKey, WalkStats};
use rukong_core::profile::FnProfile;
use rukong_core::proxy::Proxy;
use rukong_core::store::{DeliveryId, Release, Store};
use rukong_core::{JobId, JobPlan, TaskIdx};
use std::sync::Arc;

/// How often (in tasks) a long walk checks whether its job was cancelled or failed.
pub(crate) const STATE_CHECK_EVERY: u64 = 4096;

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
        return hints::run_hint(svc, slot, &inv).await;
    }
    let ctx = match jobs::job_ctx(svc, slot, &job).await {
        Ok(Some(ctx)) => ctx,
        Ok(None) => return Disposition::Ack,
        Err(e) => return settle_backend(svc, &job, e, deliveries).await,
    };
    match svc.store.job_state(&job).await {
        Ok(JobState::Running) => {}
        Ok(_) | Err(StoreError::UnknownJob(_)) => return Disposition::Ack,
        Err(e) => return settle_backend(svc, &job, e.into(), deliveries).await,
    }
    let breadcrumb = match poison::check(svc, &ctx.plan, &inv, delivery, deliveries).await {
        Ok(b) => b,
        Err(d) => return d,
    };
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
        kept: Kept::default(),
    };
    let mut outcome = w.walk_all(inv.starts).await;
    // Custody: the invocation ends only after every child it kept in the process has.
    if !w.kept.is_empty() && w.kept.wait().await == Disposition::Retry && outcome.is_ok() {
        outcome = Err(BackendError::KeptChild.into());
    }
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
        Err(e @ WalkError::Backend(_)) => {
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
        WalkError::Backend(error) => {
            if error.is_retryable() && deliveries < svc.config.max_deliveries {
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
    /// Branch outcomes (`docs/conditional-branches.md`): every guard this walk evaluated, as
    /// `(guarded task, taken)`: `taken` is true when the guard passed and the task ran, false when
    /// it failed and the task was skipped. A guard is evaluated when its task is otherwise ready to
    /// run, so a guard whose own dependency was skipped (or, under `join: all`, whose task
    /// another skipped dependency skipped first) is not listed. [`Walker::flush`] merges them
    /// into the DAG's profile ([`DagProfile::record_branches`]).
    pub(crate) branches: Vec<(TaskIdx, bool)>,
    /// Task spans, when the job is traced.
    spans: Vec<rukong_core::messages::Span>,
    /// Stored outputs this walk read and is done with, released when it ends well.
    pub(crate) releases: Vec<Release>,
    /// Children kept on this executor's idle slots: this walk holds their custody.
    pub(crate) kept: Kept,
}

/// Microseconds since the Unix epoch (span starts line up across processes on a host).
fn unix_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl<S: Store, P: Proxy> Walker<'_, S, P> {
    pub(crate) async fn check_running(&self) -> Result<(), WalkError> {
        match self.svc.store.job_state(&self.plan.job).await? {
            JobState::Running => Ok(()),
            _ => Err(WalkError::JobEnded),
        }
    }
}

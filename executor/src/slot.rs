//! The slot actor: takes invocations from its executor's [`Pool`](crate::pool::Pool) (kept
//! children first, then what the dispatcher pulled from its class's queue) and walks them,
//! one at a time, like a warm serverless instance. Its warm state survives across
//! invocations.
//!
//! In cluster mode the queue is kept honest: while a slot walks a pulled invocation, it
//! refreshes its claim on it (so a slow walk is never taken for a dead one), and the
//! [`dispatch`]er, when slots are idle, takes over invocations whose executor went silent
//! past the visibility timeout.

use crate::catch::CatchUnwind;
use crate::pool::Work;
use crate::run::panic_message;
use crate::services::Services;
use crate::walk::{Disposition, SlotState, run_invocation};
use actix::prelude::*;
use rukong_core::ExecutorId;
use rukong_core::messages::{Invocation, JobState};
use rukong_core::proxy::Proxy;
use rukong_core::store::{Delivery, DeliveryId, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

pub struct Slot<S: Store, P: Proxy> {
    svc: Arc<Services<S, P>>,
    consumer: ExecutorId,
    /// Taken while an invocation runs; put back when it ends.
    state: Option<SlotState>,
    stop: Arc<AtomicBool>,
}

impl<S: Store, P: Proxy> Slot<S, P> {
    pub fn new(svc: Arc<Services<S, P>>, state: SlotState, stop: Arc<AtomicBool>) -> Self {
        let consumer = svc.consumer();
        Slot {
            svc,
            consumer,
            state: Some(state),
            stop,
        }
    }
}

impl<S: Store, P: Proxy> Actor for Slot<S, P> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.notify(Pull);
    }
}

/// Take the next invocations and walk them; the slot sends it to itself after each round.
#[derive(Message)]
#[rtype(result = "()")]
struct Pull;

impl<S: Store, P: Proxy> Handler<Pull> for Slot<S, P> {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Pull, _ctx: &mut Self::Context) -> Self::Result {
        let svc = self.svc.clone();
        let consumer = self.consumer.clone();
        let stop = self.stop.clone();
        let mut state = self.state.take().unwrap_or_else(|| SlotState::new(0));
        let work = async move {
            let cfg = &svc.config;
            let stopping = stop.load(Ordering::Acquire);
            let work = if stopping {
                // A walk still running here may wait for children it kept: run those.
                svc.pool.take_kept()
            } else {
                svc.pool.next(cfg.pull_wait, &stop).await
            };
            match work {
                None => return (state, !stopping),
                Some(Work::Pulled(d)) => {
                    if let Some(id) = process(&svc, &mut state, &consumer, d).await
                        && let Err(e) = svc.store.ack(cfg.class, &[id]).await
                    {
                        tracing::warn!(error = %e, "ack failed; entries will be redelivered");
                    }
                }
                Some(Work::Kept { invocation, done }) => {
                    let disposition = run_kept(&svc, &mut state, invocation).await;
                    let _ = done.send(disposition);
                }
            }
            (state, true)
        };
        Box::pin(work.into_actor(self).map(|(state, go_on), act, ctx| {
            act.state = Some(state);
            if go_on {
                ctx.notify(Pull);
            } else {
                ctx.stop();
            }
        }))
    }
}

/// The executor's dispatcher: pulls from its class's queue for as many slots as are idle
/// (the slots never block on the store), and, every `reclaim_every` when it has idle slots,
/// takes over entries of executors gone silent past the visibility timeout.
pub async fn dispatch<S: Store, P: Proxy>(svc: Arc<Services<S, P>>, stop: Arc<AtomicBool>) {
    let cfg = &svc.config;
    let consumer = svc.consumer();
    let mut last_reclaim = Instant::now();
    // Up to this many entries per pull, so that a backlog fills every idle slot at once.
    let most = cfg.pull_batch.max(1) * cfg.slots.max(1);
    while !stop.load(Ordering::Acquire) {
        svc.pool.wait_idle(cfg.pull_wait).await;
        let want = svc.pool.wanted().min(most);
        if want == 0 {
            continue;
        }
        let mut deliveries = Vec::new();
        if let Some(idle) = cfg.visibility_timeout
            && last_reclaim.elapsed() >= cfg.reclaim_every
        {
            last_reclaim = Instant::now();
            match svc.store.reclaim(cfg.class, &consumer, idle, want).await {
                Ok(d) => {
                    if !d.is_empty() {
                        tracing::warn!(consumer = %consumer, count = d.len(), "reclaimed invocations idle past the visibility timeout (a dead executor, or a retry left for redelivery)");
                    }
                    deliveries = d;
                }
                Err(e) => tracing::warn!(error = %e, "reclaim failed"),
            }
        }
        if deliveries.is_empty() {
            deliveries = match svc
                .store
                .pull(cfg.class, &consumer, want, cfg.pull_wait)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "pull failed; backing off");
                    tokio::time::sleep(cfg.pull_wait).await;
                    continue;
                }
            };
        }
        svc.pool.pulled(deliveries);
    }
    svc.pool.wake_all();
}

/// Runs a child kept in the process (its parent holds its custody: nothing to ack), and
/// turns a panic in its walk into a failed job.
async fn run_kept<S: Store, P: Proxy>(
    svc: &Services<S, P>,
    state: &mut SlotState,
    invocation: Invocation,
) -> Disposition {
    let job = invocation.job.clone();
    let local = DeliveryId { ms: 0, seq: 0 };
    match CatchUnwind::new(run_invocation(svc, state, invocation, local, 1)).await {
        Ok(d) => d,
        Err(p) => {
            fail_on_panic(svc, &job, &*p).await;
            Disposition::Ack
        }
    }
}

/// A bug in the walk, not in a function: fail the job, keep the slot.
async fn fail_on_panic<S: Store, P: Proxy>(
    svc: &Services<S, P>,
    job: &rukong_core::JobId,
    p: &(dyn std::any::Any + Send),
) {
    let error = format!("internal error: {}", panic_message(p));
    tracing::error!(%job, %error, "invocation panicked");
    let _ = svc
        .store
        .set_job_state(
            job,
            JobState::Failed {
                task: "-".into(),
                error,
            },
        )
        .await;
}

/// Walks one delivery; returns its id when it is to be acked. Refreshes the claim while
/// the walk runs (cluster mode), and turns a panic in the walk into a failed job.
async fn process<S: Store, P: Proxy>(
    svc: &Services<S, P>,
    state: &mut crate::walk::SlotState,
    consumer: &ExecutorId,
    d: Delivery,
) -> Option<DeliveryId> {
    let job = d.invocation.job.clone();
    let run = CatchUnwind::new(run_invocation(svc, state, d.invocation, d.id, d.deliveries));
    let outcome = match svc.config.visibility_timeout {
        None => run.await,
        Some(visibility) => {
            tokio::pin!(run);
            let mut refresh = tokio::time::interval(visibility / 3);
            refresh.tick().await; // the first tick is immediate
            loop {
                tokio::select! {
                    r = &mut run => break r,
                    _ = refresh.tick() => {
                        if let Err(e) = svc.store.touch(svc.config.class, consumer, &[d.id]).await {
                            tracing::warn!(error = %e, "could not refresh the claim on an invocation");
                        }
                    }
                }
            }
        }
    };
    match outcome {
        Ok(Disposition::Ack) => Some(d.id),
        Ok(Disposition::Retry) => None,
        Err(p) => {
            fail_on_panic(svc, &job, &*p).await;
            Some(d.id)
        }
    }
}

//! The slot actor: pulls invocations from its class's queue and walks them, one at a time,
//! like a warm serverless instance. Its warm state survives across invocations.
//!
//! In cluster mode a slot also keeps the queue honest: while it walks, it refreshes its
//! claim on the invocation (so a slow walk is never taken for a dead one), and when idle it
//! takes over invocations whose executor went silent past the visibility timeout.

use crate::catch::CatchUnwind;
use crate::run::panic_message;
use crate::services::Services;
use crate::walk::{Disposition, SlotState, run_invocation};
use actix::prelude::*;
use rukong_core::ExecutorId;
use rukong_core::messages::JobState;
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
    last_reclaim: Instant,
}

impl<S: Store, P: Proxy> Slot<S, P> {
    pub fn new(svc: Arc<Services<S, P>>, state: SlotState, stop: Arc<AtomicBool>) -> Self {
        let consumer = ExecutorId::new(format!("{}-s{}", svc.config.id, state.index));
        Slot {
            svc,
            consumer,
            state: Some(state),
            stop,
            last_reclaim: Instant::now(),
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
        let reclaim = svc.config.visibility_timeout.is_some()
            && self.last_reclaim.elapsed() >= svc.config.reclaim_every;
        if reclaim {
            self.last_reclaim = Instant::now();
        }
        let work = async move {
            if stop.load(Ordering::Acquire) {
                return (state, false);
            }
            let cfg = &svc.config;
            let mut deliveries = Vec::new();
            if let (true, Some(idle)) = (reclaim, cfg.visibility_timeout) {
                match svc
                    .store
                    .reclaim(cfg.class, &consumer, idle, cfg.pull_batch)
                    .await
                {
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
                    .pull(cfg.class, &consumer, cfg.pull_batch, cfg.pull_wait)
                    .await
                {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, "pull failed; backing off");
                        tokio::time::sleep(cfg.pull_wait).await;
                        return (state, true);
                    }
                };
            }
            let mut acks = Vec::with_capacity(deliveries.len());
            for d in deliveries {
                if let Some(id) = process(&svc, &mut state, &consumer, d).await {
                    acks.push(id);
                }
            }
            if !acks.is_empty()
                && let Err(e) = svc.store.ack(cfg.class, &acks).await
            {
                tracing::warn!(error = %e, "ack failed; entries will be redelivered");
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
            // A bug in the walk, not in a function: fail the job, keep the slot.
            let error = format!("internal error: {}", panic_message(&*p));
            tracing::error!(%job, %error, "invocation panicked");
            let _ = svc
                .store
                .set_job_state(
                    &job,
                    JobState::Failed {
                        task: "-".into(),
                        error,
                    },
                )
                .await;
            Some(d.id)
        }
    }
}

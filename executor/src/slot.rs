//! The slot actor: pulls invocations from its class's queue and walks them, one at a time,
//! like a warm serverless instance. Its warm state survives across invocations.

use crate::catch::CatchUnwind;
use crate::run::panic_message;
use crate::services::Services;
use crate::walk::{Disposition, SlotState, run_invocation};
use actix::prelude::*;
use rukong_core::ExecutorId;
use rukong_core::messages::JobState;
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Slot<S: Store, P: Proxy> {
    svc: Arc<Services<S, P>>,
    consumer: ExecutorId,
    /// Taken while an invocation runs; put back when it ends.
    state: Option<SlotState>,
    stop: Arc<AtomicBool>,
}

impl<S: Store, P: Proxy> Slot<S, P> {
    pub fn new(svc: Arc<Services<S, P>>, index: usize, stop: Arc<AtomicBool>) -> Self {
        let consumer = ExecutorId::new(format!("{}-s{index}", svc.config.id));
        Slot {
            svc,
            consumer,
            state: Some(SlotState::new(index)),
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
            if stop.load(Ordering::Acquire) {
                return (state, false);
            }
            let cfg = &svc.config;
            let deliveries = match svc
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
            let mut acks = Vec::with_capacity(deliveries.len());
            for d in deliveries {
                let job = d.invocation.job.clone();
                let run =
                    CatchUnwind::new(run_invocation(&svc, &mut state, d.invocation, d.deliveries));
                match run.await {
                    Ok(Disposition::Ack) => acks.push(d.id),
                    Ok(Disposition::Retry) => {}
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
                        acks.push(d.id);
                    }
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

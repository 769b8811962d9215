//! Poison invocations: one whose every delivery killed its executor. A redelivered
//! invocation leaves a breadcrumb naming each task before it runs it, so that when the
//! deliveries run out the job fails naming the task that kills.

use super::{Disposition, record_failure};
use crate::services::Services;
use rukong_core::messages::{Event, Invocation, JobState, ObjectKey};
use rukong_core::proxy::Proxy;
use rukong_core::store::{DeliveryId, Store};
use rukong_core::{JobPlan, TaskIdx};

/// The breadcrumb key a redelivered walk writes (none on a first delivery), or, when the
/// deliveries ran out, the job's failure recorded (`Err` with what to do with the entry).
pub(super) async fn check<S: Store, P: Proxy>(
    svc: &Services<S, P>,
    plan: &JobPlan,
    inv: &Invocation,
    delivery: DeliveryId,
    deliveries: u32,
) -> Result<Option<ObjectKey>, Disposition> {
    let job = &inv.job;
    // A redelivered invocation is under suspicion: its walk leaves a breadcrumb naming each
    // task before running it, so that a task that kills its executor can be named.
    let breadcrumb = (deliveries > 1).then(|| {
        ObjectKey::new(format!(
            "{}attempt:{delivery}",
            rukong_core::messages::job_prefix(job)
        ))
    });
    if deliveries > svc.config.max_deliveries {
        // Every earlier delivery died without acking: a poison task that takes its
        // executor down. Fail the job, naming the task the last delivery was running.
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
        return Err(record_failure(svc, job, Some(failed), JobState::Failed { task, error }).await);
    }
    Ok(breadcrumb)
}

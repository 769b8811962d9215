//! Warm state on a slot, and the engine's warm-up hints (run ahead of tasks, dropped at
//! their TTL when unused).

use super::{Disposition, SlotState};
use crate::services::Services;
use rukong_core::JobId;
use rukong_core::messages::{Event, Invocation, JobState, WalkStats};
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use std::sync::Arc;
use std::time::Duration;

/// The function's warm state on this slot, running its `init` first when it is cold. On a
/// device slot a cold start (context, compile, upload: up to seconds) runs on the blocking
/// pool, so that the device's other slots keep walking meanwhile.
pub(super) async fn warm_function(
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

/// A warm-up hint (`docs/warmup.md`): build each named function's warm state now, unless it is
/// warm already; on a device, drop it again at the hint's TTL if no task used it. A release
/// drops the named warm states that no task has used. Both report in the job's stats.
/// Unknown names and failing `init`s are logged and skipped: a hint is advice, never a
/// reason to fail a job.
pub(super) async fn run_hint<S: Store, P: Proxy>(
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

//! What a slot keeps between invocations, and its cache of job plans.

use super::WalkError;
use crate::bundling::Bundler;
use crate::run::WarmCache;
use crate::services::Services;
use rukong_core::error::StoreError;
use rukong_core::messages::JobState;
use rukong_core::proxy::Proxy;
use rukong_core::store::Store;
use rukong_core::{JobId, JobPlan};
use std::collections::HashMap;
use std::sync::Arc;

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

pub(super) async fn job_ctx<S: Store, P: Proxy>(
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

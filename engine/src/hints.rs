//! Delivering warm-up hints (DESIGN §6): at job start the engine plans the hints for the
//! job's warm-up mode from the stored profiles ([`crate::warmup::Planner`]), and sends each
//! one, at its issue time, to its executor class's queue as an invocation with no start
//! task and the function to warm (`Invocation::warm`). The slot that takes it runs the
//! function's `init` on its warm cache (for a device: the cache its slots share), or does
//! nothing when the function is already warm, and reports what it did in the job's stats.
//!
//! Re-planning on a branch that contradicts the prediction is done by the planner and
//! evaluated in its simulator; the engine does not follow task starts yet, so a
//! misprediction here costs the cold starts of the other branch, as in `reactive` mode.

use crate::warmup::{Planner, WarmupConfig, WarmupMode};
use rukong_core::JobPlan;
use rukong_core::messages::{Event, Invocation, WalkStats};
use rukong_core::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Plans `plan`'s hints for `mode` and sends them at their issue times, in the
/// background. Returns how many were planned (0 for `reactive`).
pub async fn start_hints<S: Store>(
    store: Arc<S>,
    plan: Arc<JobPlan>,
    mode: WarmupMode,
    cfg: WarmupConfig,
) -> usize {
    if mode == WarmupMode::Reactive {
        return 0;
    }
    let t0 = Instant::now();
    let profile = match store.get_profile(plan.dag.name()).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(job = %plan.job, error = %e, "no profile for warm-up hints; planning with defaults");
            Default::default()
        }
    };
    let planner = Planner::new(mode, &plan.dag, &profile, &cfg, &[]);
    let mut hints: Vec<_> = planner.all_hints().cloned().collect();
    hints.sort_by_key(|h| h.issue_at_us);
    let n = hints.len();
    if n == 0 {
        return 0;
    }
    tokio::spawn(async move {
        let mut issued = 0u32;
        for h in hints {
            let at = t0 + Duration::from_micros(h.issue_at_us);
            tokio::time::sleep_until(at.into()).await;
            let inv = Invocation {
                job: plan.job.clone(),
                starts: Vec::new(),
                warm: vec![h.function.clone()],
            };
            match store.push(h.class, vec![inv]).await {
                Ok(()) => issued += 1,
                Err(e) => {
                    tracing::warn!(job = %plan.job, error = %e, "could not send a warm-up hint")
                }
            }
        }
        let stats = WalkStats {
            hints_issued: issued,
            ..WalkStats::default()
        };
        if let Err(e) = store
            .append_events(&plan.job, vec![Event::Progress(stats)])
            .await
        {
            tracing::debug!(job = %plan.job, error = %e, "could not record the hints issued");
        }
    });
    n
}

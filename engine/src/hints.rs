//! Delivering warm-up hints (`docs/warmup.md`). At job start the engine plans the hints for the
//! job's warm-up mode from the stored profile ([`Planner`]). A background task then sends
//! each hint, at its issue time, to its executor class's queue: an invocation with no start
//! task, the function to warm (`Invocation::warm`) and its TTL. The slot that takes it runs
//! the function's `init` (on a GPU executor, into the device's shared warm cache), or does
//! nothing when the function is already warm; on a device, the state is dropped again at
//! the TTL if no task used it.
//!
//! The task also follows the job's events. When executors report guard outcomes
//! (`Event::Branches`) that contradict the predicted path, it re-plans
//! ([`Planner::on_finished`]): pending hints the new plan does not repeat are cancelled,
//! issued ones whose task left the path are released (`Invocation::release`: executors drop
//! that warm state unless a task used it), and the new path's hints are scheduled from now.
//! It stops when the job ends.

use crate::warmup::{Hint, HintId, Planner, WarmupConfig, WarmupMode};
use rukong_core::messages::{Event, Invocation, JobState, WalkStats};
use rukong_core::store::Store;
use rukong_core::{JobPlan, TaskIdx};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long one wait for events lasts when no hint is due sooner.
const EVENT_WAIT: Duration = Duration::from_millis(50);
/// Events read per call.
const EVENT_BATCH: usize = 256;

/// Plans `plan`'s hints for `mode` and sends them at their issue times, re-planning on
/// contradicting branch outcomes, in the background until the job ends. Returns how many
/// hints the first plan has (0 for `reactive`, which starts nothing).
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
    let n = planner.live_hints().count();
    tokio::spawn(follow(store, plan, planner, cfg, t0));
    n
}

/// The sender: issues due hints, applies re-plans, and reports the counts at the end.
async fn follow<S: Store>(
    store: Arc<S>,
    plan: Arc<JobPlan>,
    mut planner: Planner,
    cfg: WarmupConfig,
    t0: Instant,
) {
    let job = plan.job.clone();
    let now_us = || t0.elapsed().as_micros() as u64;
    let mut issued: HashSet<HintId> = HashSet::new();
    let mut cursor = 0u64;
    // Bounded: the loop ends with the job; a job that never ends is bounded by its own
    // timeouts and retention, and this by a day.
    let deadline = t0 + Duration::from_secs(86_400);
    loop {
        // Send what is due.
        let now = now_us();
        let due: Vec<Hint> = planner
            .live_hints()
            .filter(|h| h.issue_at_us <= now && !issued.contains(&h.id))
            .cloned()
            .collect();
        let mut sent = WalkStats::default();
        for h in due {
            issued.insert(h.id);
            let ttl_ms = h.expires_at_us.saturating_sub(now).div_ceil(1000).max(1);
            let mut inv = Invocation::new(job.clone(), Vec::new());
            inv.warm = vec![h.function.clone()];
            inv.warm_ttl_ms = ttl_ms.max(cfg.ttl_us / 1000);
            match store.push(h.class, vec![inv]).await {
                Ok(()) => sent.hints_issued += 1,
                Err(e) => tracing::warn!(%job, error = %e, "could not send a warm-up hint"),
            }
        }
        report(&*store, &job, sent).await;
        let next_due = planner
            .live_hints()
            .filter(|h| !issued.contains(&h.id))
            .map(|h| h.issue_at_us)
            .min();
        let wait = next_due.map_or(EVENT_WAIT, |at| {
            Duration::from_micros(at.saturating_sub(now_us())).min(EVENT_WAIT)
        });
        // Follow the job: guard outcomes, and its end.
        let batch = match store.read_events(&job, cursor, EVENT_BATCH, wait).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(%job, error = %e, "warm-up hints: stopped following the job");
                break;
            }
        };
        cursor = batch.next;
        for ev in batch.events {
            let Event::Branches { outcomes } = ev else {
                continue;
            };
            for (dep, group) in by_guard_dep(&plan, &outcomes) {
                let Some(r) = planner.on_finished(&plan.dag, dep, now_us(), &group) else {
                    continue;
                };
                let replanned = WalkStats {
                    replans: 1,
                    hints_cancelled: r.cancel.len() as u32,
                    ..WalkStats::default()
                };
                report(&*store, &job, replanned).await;
                let released: Vec<_> = planner
                    .all_hints()
                    .filter(|h| r.release.contains(&h.id) && issued.contains(&h.id))
                    .map(|h| (h.function.clone(), h.class))
                    .collect();
                for (name, class) in released {
                    let mut inv = Invocation::new(job.clone(), Vec::new());
                    inv.release = vec![name];
                    if let Err(e) = store.push(class, vec![inv]).await {
                        tracing::warn!(%job, error = %e, "could not release a warm-up hint");
                    }
                }
            }
        }
        let ended = !matches!(store.job_state(&job).await, Ok(JobState::Running));
        if ended || Instant::now() > deadline {
            break;
        }
    }
}

/// Adds the engine's side of the hint counts to the job's stats, as soon as they happen
/// (the job's stats are final when it ends).
async fn report<S: Store>(store: &S, job: &rukong_core::JobId, stats: WalkStats) {
    if stats == WalkStats::default() {
        return;
    }
    if let Err(e) = store.append_events(job, vec![Event::Progress(stats)]).await {
        tracing::debug!(%job, error = %e, "could not record warm-up hint counts");
    }
}

/// Outcomes grouped by the dependency their guard reads (the task whose completion
/// decided them).
fn by_guard_dep(
    plan: &JobPlan,
    outcomes: &[(TaskIdx, bool)],
) -> Vec<(TaskIdx, Vec<(TaskIdx, bool)>)> {
    let dag = &plan.dag;
    let mut out: Vec<(TaskIdx, Vec<(TaskIdx, bool)>)> = Vec::new();
    for &(t, taken) in outcomes {
        let Some(dep) = dag.guard(t).and_then(|g| dag.lookup(g.dep.as_str())) else {
            continue;
        };
        match out.iter_mut().find(|(d, _)| *d == dep) {
            Some((_, v)) => v.push((t, taken)),
            None => out.push((dep, vec![(t, taken)])),
        }
    }
    out
}

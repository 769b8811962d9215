//! Speculative warm-up (Xanadu, `docs/warmup.md`): the warm-up modes, the pure hint planner, the
//! cost accounting, and a deterministic simulator that evaluates them ([`sim`]).
//!
//! Nothing here does I/O or reads a clock: times are µs since the job started, passed in.
//! The engine (or a benchmark) owns the clock and the transport of hints to executors.
//!
//! ## Modes ([`WarmupMode`])
//! - `reactive`: no hints. A function is made warm when a task needs it (a cold start on
//!   the critical path per function the job uses).
//! - `speculative`: at job start, one hint per warm instance the most likely path
//!   ([`rukong_core::mlp`]) needs, all issued at once.
//! - `jit`: the same hints, each issued at `expected_start − cold_start − margin` (not
//!   before now), so that the function is warm `margin` before its task is triggered.
//! - `oracle`: `jit` on the real path (every branch outcome known in advance). For the
//!   simulator only: no real job knows its branches, so the engine refuses it
//!   ([`WarmupMode::for_engine`]).
//!
//! A hint asks for one warm instance of a function, on the executor class its task needs;
//! tasks of the same function on the path share an instance when one is predicted to be
//! free (and still kept alive) when the next is triggered. An issued hint's warm state
//! expires `ttl` after the later of its expected ready and start times if no task used it.
//!
//! ## Re-planning
//! When a branch outcome contradicts the MLP, [`Planner::on_finished`] recomputes the MLP
//! with every outcome seen so far pinned, and the hints from there ([`replan`]): pending
//! hints (not yet issued) that the new plan does not repeat are **cancelled**, issued hints
//! whose task left the path are **released** (the executor may drop that warm state at
//! once, else it expires at its TTL), and hints for the new path are issued, from now. The
//! first task of the new branch pays at most one cold start; its successors are warmed in
//! time, as at job start.
//!
//! ## Accounting ([`Accounting`])
//! - **C_d**: cold-start delay on the critical path = end-to-end latency − the latency of
//!   the same run with every function already warm (the critical path of exec times).
//! - **C_r**: warm-instance time held before use, summed over instances: from the start of
//!   its provisioning (hint issued, or reactive cold start) to the start of its first exec,
//!   or, for an instance no task used, to its expiry or release. Reactive pays its cold
//!   starts here too, so `C_r(reactive) = Σ cold starts`; what any mode adds on top is idle
//!   warm time. `idle` is that part alone (ready → first use, or → expiry).
//! - **hints**: `planned` (ever scheduled), `issued` (their time came and they were not
//!   cancelled), `used` (an issued hint's instance ran a task), `wasted` (issued, never used),
//!   `cancelled` (dropped before being issued), `released` (issued, then dropped by a
//!   re-plan).

pub mod sim;

use rukong_core::dag::Dag;
use rukong_core::ids::{ExecClass, TaskIdx};
use rukong_core::mlp::{Mlp, MlpConfig, Observed, Warmth, mlp};
use rukong_core::profile::DagProfile;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The warm-up mode, one switch per job or cluster.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum WarmupMode {
    #[default]
    Reactive,
    Speculative,
    Jit,
    Oracle,
}

impl WarmupMode {
    pub const ALL: [WarmupMode; 4] = [
        WarmupMode::Reactive,
        WarmupMode::Speculative,
        WarmupMode::Jit,
        WarmupMode::Oracle,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WarmupMode::Reactive => "reactive",
            WarmupMode::Speculative => "speculative",
            WarmupMode::Jit => "jit",
            WarmupMode::Oracle => "oracle",
        }
    }
}

/// `oracle` asked of a real engine: it needs every branch outcome before the job runs, and
/// only the simulator ([`sim`]) has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "warm-up mode \"oracle\" runs only in the simulator: it needs every branch outcome before the job runs, which a real job does not know; use jit, speculative or reactive"
)]
pub struct OracleOutsideSimulator;

impl WarmupMode {
    /// The modes the engine runs: every one but `oracle`, which has no source of truth
    /// outside the simulator.
    pub fn for_engine(self) -> Result<WarmupMode, OracleOutsideSimulator> {
        match self {
            WarmupMode::Oracle => Err(OracleOutsideSimulator),
            m => Ok(m),
        }
    }

    /// Parses a mode the engine runs (`rukong run --warmup`): as [`FromStr`], then
    /// [`WarmupMode::for_engine`].
    pub fn parse_for_engine(s: &str) -> Result<WarmupMode, String> {
        let mode: WarmupMode = s.parse().map_err(|e: ParseWarmupModeError| e.to_string())?;
        mode.for_engine().map_err(|e| e.to_string())
    }
}

impl fmt::Display for WarmupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown warm-up mode name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown warm-up mode {0:?}: expected one of reactive, speculative, jit, oracle")]
pub struct ParseWarmupModeError(pub String);

impl FromStr for WarmupMode {
    type Err = ParseWarmupModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reactive" => Ok(WarmupMode::Reactive),
            "speculative" => Ok(WarmupMode::Speculative),
            "jit" | "just-in-time" => Ok(WarmupMode::Jit),
            "oracle" => Ok(WarmupMode::Oracle),
            _ => Err(ParseWarmupModeError(s.to_owned())),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmupConfig {
    /// JIT: a function should be warm this long before its task is triggered (µs).
    pub margin_us: u64,
    /// An issued hint's warm state, unused, expires this long after the later of its expected
    /// ready and start times (µs).
    pub ttl_us: u64,
    /// A warm instance stays warm this long after its last use (µs): the executors'
    /// keep-alive, which lets tasks of one function share an instance.
    pub keep_alive_us: u64,
    /// The predictor's settings (its `warmth` is set by the planner).
    pub mlp: MlpConfig,
}

impl Default for WarmupConfig {
    fn default() -> Self {
        WarmupConfig {
            margin_us: 10_000,
            ttl_us: 1_000_000,
            keep_alive_us: 600_000_000,
            mlp: MlpConfig::default(),
        }
    }
}

pub type HintId = u32;

/// Make one instance of `function` warm on an executor of `class`, starting at `issue_at_us`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    pub id: HintId,
    /// The task on the MLP that the warm instance is for.
    pub task: TaskIdx,
    pub function: String,
    pub class: ExecClass,
    pub issue_at_us: u64,
    /// Expected: `issue_at + cold start`.
    pub ready_at_us: u64,
    /// When the task is expected to be triggered.
    pub expected_start_us: u64,
    /// Unused warm state is dropped then.
    pub expires_at_us: u64,
}

/// The difference a re-plan makes to the hints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replan {
    /// Pending hints (not yet issued) to drop.
    pub cancel: Vec<HintId>,
    /// Issued hints whose task left the path: their warm state may be dropped now.
    pub release: Vec<HintId>,
    /// New hints.
    pub issue: Vec<Hint>,
}

/// The hints `mode` gives for `mlp` at time `now_us` (pure). Tasks with `covered[t]` (already
/// started, or with a live hint) get none, but still occupy their function's instances.
/// Hint ids start at `first_id`.
pub fn plan(
    mode: WarmupMode,
    dag: &Dag,
    mlp: &Mlp,
    cfg: &WarmupConfig,
    now_us: u64,
    covered: &[bool],
    first_id: HintId,
) -> Vec<Hint> {
    if mode == WarmupMode::Reactive {
        return Vec::new();
    }
    let mut by_start: Vec<_> = mlp.path.iter().collect();
    by_start.sort_by_key(|p| (p.start_us, p.task));
    // Per function: the predicted instances, as (free at, kept alive until).
    let mut instances: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    let mut hints = Vec::new();
    for p in by_start {
        let f = dag.func_name(p.task);
        let pool = instances.entry(f).or_default();
        let free = pool
            .iter_mut()
            .filter(|(free, alive)| *free <= p.start_us && p.start_us <= *alive)
            .min_by_key(|(free, _)| *free);
        let busy_until = p.finish_us;
        let alive = busy_until.saturating_add(cfg.keep_alive_us);
        if let Some(slot) = free {
            *slot = (busy_until, alive);
            continue;
        }
        pool.push((busy_until, alive));
        if covered.get(p.task.get()).copied().unwrap_or(false) {
            continue;
        }
        let issue_at = match mode {
            WarmupMode::Speculative => now_us,
            _ => p
                .start_us
                .saturating_sub(p.cold_start_us.saturating_add(cfg.margin_us))
                .max(now_us),
        };
        let ready_at = issue_at.saturating_add(p.cold_start_us);
        hints.push(Hint {
            id: first_id + hints.len() as HintId,
            task: p.task,
            function: f.to_owned(),
            class: dag.class(p.task),
            issue_at_us: issue_at,
            ready_at_us: ready_at,
            expected_start_us: p.start_us,
            expires_at_us: ready_at.max(p.start_us).saturating_add(cfg.ttl_us),
        });
    }
    hints
}

/// Re-plans at `now_us` (pure): `live` are the hints not cancelled or released so far,
/// `new` the hints [`plan`] gives for the new MLP (tasks whose live hint was issued and
/// stays on the path marked covered). A pending hint that `new` repeats (same task and
/// issue time) is kept; the other pending ones are cancelled, issued ones off the path are
/// released, and `new`'s other hints are issued.
pub fn replan(live: &[Hint], new: Vec<Hint>, mlp: &Mlp, now_us: u64) -> Replan {
    let mut out = Replan::default();
    let mut keep = vec![false; new.len()];
    for h in live {
        if h.issue_at_us <= now_us {
            if !mlp.on_path(h.task) {
                out.release.push(h.id);
            }
            continue;
        }
        match new
            .iter()
            .position(|n| n.task == h.task && n.issue_at_us == h.issue_at_us)
        {
            Some(i) if !keep[i] => keep[i] = true,
            _ => out.cancel.push(h.id),
        }
    }
    out.issue = new
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| !k)
        .map(|(h, _)| h)
        .collect();
    out
}

/// The planner of one job: the pure functions above plus what the job has shown so far.
#[derive(Clone, Debug)]
pub struct Planner {
    mode: WarmupMode,
    cfg: WarmupConfig,
    profile: DagProfile,
    observed: Observed,
    mlp: Mlp,
    /// Every hint ever planned, and whether it is still live.
    hints: Vec<(Hint, bool)>,
    replans: u32,
}

impl Planner {
    /// Plans at job start (time 0). `oracle` lists the real branch outcomes, for
    /// [`WarmupMode::Oracle`] (ignored by the other modes).
    pub fn new(
        mode: WarmupMode,
        dag: &Dag,
        profile: &DagProfile,
        cfg: &WarmupConfig,
        oracle: &[(TaskIdx, bool)],
    ) -> Planner {
        let observed = Observed {
            outcomes: if mode == WarmupMode::Oracle {
                oracle.to_vec()
            } else {
                Vec::new()
            },
            ..Observed::default()
        };
        let mlp = Self::predict(mode, dag, profile, cfg, &observed, 0);
        let hints = plan(mode, dag, &mlp, cfg, 0, &[], 0);
        Planner {
            mode,
            cfg: cfg.clone(),
            profile: profile.clone(),
            observed,
            mlp,
            hints: hints.into_iter().map(|h| (h, true)).collect(),
            replans: 0,
        }
    }

    fn predict(
        mode: WarmupMode,
        dag: &Dag,
        profile: &DagProfile,
        cfg: &WarmupConfig,
        observed: &Observed,
        now_us: u64,
    ) -> Mlp {
        let mut c = cfg.mlp.clone();
        c.warmth = match mode {
            WarmupMode::Reactive => Warmth::Cold,
            _ => Warmth::ReadyAfter(now_us),
        };
        mlp(dag, profile, observed, &c)
    }

    pub fn mode(&self) -> WarmupMode {
        self.mode
    }

    /// The current most likely path.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// Every hint planned so far (cancelled and released ones included).
    pub fn all_hints(&self) -> impl Iterator<Item = &Hint> {
        self.hints.iter().map(|(h, _)| h)
    }

    /// The hints neither cancelled nor released.
    pub fn live_hints(&self) -> impl Iterator<Item = &Hint> {
        self.hints.iter().filter(|(_, l)| *l).map(|(h, _)| h)
    }

    pub fn replans(&self) -> u32 {
        self.replans
    }

    /// Task `t` was triggered at `at_us`.
    pub fn on_started(&mut self, t: TaskIdx, at_us: u64) {
        self.observed.started.push((t, at_us));
    }

    /// Task `t` finished at `now_us`, with these outcomes of its guarded children. Returns
    /// the re-plan when an outcome contradicts the MLP.
    pub fn on_finished(
        &mut self,
        dag: &Dag,
        t: TaskIdx,
        now_us: u64,
        outcomes: &[(TaskIdx, bool)],
    ) -> Option<Replan> {
        self.observed.finished.push((t, now_us));
        let contradicts = outcomes
            .iter()
            .any(|&(c, taken)| self.mlp.on_path(c) != taken);
        for &o in outcomes {
            if !self.observed.outcomes.contains(&o) {
                self.observed.outcomes.push(o);
            }
        }
        if !contradicts || self.mode == WarmupMode::Reactive {
            return None;
        }
        self.replans += 1;
        let live: Vec<Hint> = self.live_hints().cloned().collect();
        // Warm-ups already under way keep their ready times; started tasks are covered.
        let mut covered = vec![false; dag.len()];
        for &(s, _) in &self.observed.started {
            covered[s.get()] = true;
        }
        let mut observed = self.observed.clone();
        for h in live.iter().filter(|h| h.issue_at_us <= now_us) {
            covered[h.task.get()] = true;
            observed.warm_at.push((h.task, h.ready_at_us));
        }
        self.mlp = Self::predict(self.mode, dag, &self.profile, &self.cfg, &observed, now_us);
        let first_id = self.hints.len() as HintId;
        let new = plan(
            self.mode, dag, &self.mlp, &self.cfg, now_us, &covered, first_id,
        );
        let r = replan(&live, new, &self.mlp, now_us);
        for (h, l) in &mut self.hints {
            if r.cancel.contains(&h.id) || r.release.contains(&h.id) {
                *l = false;
            }
        }
        // New hints get the ids that follow; `plan` numbered them from `first_id` but some
        // were dropped as repeats, so renumber densely.
        let mut r = r;
        for (i, h) in r.issue.iter_mut().enumerate() {
            h.id = first_id + i as HintId;
        }
        self.hints
            .extend(r.issue.iter().cloned().map(|h| (h, true)));
        Some(r)
    }
}

/// What one run cost (module docs). Times in µs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounting {
    pub latency_us: u64,
    pub warm_latency_us: u64,
    pub c_d_us: u64,
    pub c_r_us: u64,
    pub idle_us: u64,
    /// Tasks whose exec waited for a warm-up (full or partial), and the total wait.
    pub cold_starts: u32,
    pub cold_wait_us: u64,
    pub hints_planned: u32,
    pub hints_issued: u32,
    pub hints_used: u32,
    pub hints_wasted: u32,
    pub hints_cancelled: u32,
    pub hints_released: u32,
    pub replans: u32,
}

/// One task that ran: when it was triggered, when its exec started and finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub task: TaskIdx,
    pub trigger_us: u64,
    pub exec_start_us: u64,
    pub finish_us: u64,
}

/// One warm instance: provisioning start, ready, first exec start (if used), and when it was
/// dropped unused (expiry or release).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub hint: Option<HintId>,
    pub provision_us: u64,
    pub ready_us: u64,
    pub first_use_us: Option<u64>,
    pub dropped_us: u64,
}

/// C_d, C_r and the cold starts of a run, from its records (pure). `hop_us` is the per-edge
/// overhead of the warm reference run.
pub fn account(
    dag: &Dag,
    tasks: &[TaskRecord],
    instances: &[InstanceRecord],
    hop_us: u64,
) -> Accounting {
    let latency = tasks.iter().map(|r| r.finish_us).max().unwrap_or(0);
    let mut rec: Vec<Option<&TaskRecord>> = vec![None; dag.len()];
    for r in tasks {
        rec[r.task.get()] = Some(r);
    }
    let mut warm_finish = vec![0u64; dag.len()];
    let mut warm_latency = 0;
    for t in dag.topo_order() {
        let Some(r) = rec[t.get()] else { continue };
        let trigger = dag
            .deps(t)
            .iter()
            .filter(|d| rec[d.get()].is_some())
            .map(|d| warm_finish[d.get()] + hop_us)
            .max()
            .unwrap_or(0);
        warm_finish[t.get()] = trigger + (r.finish_us - r.exec_start_us);
        warm_latency = warm_latency.max(warm_finish[t.get()]);
    }
    let waits = tasks.iter().map(|r| r.exec_start_us - r.trigger_us);
    let mut a = Accounting {
        latency_us: latency,
        warm_latency_us: warm_latency,
        c_d_us: latency.saturating_sub(warm_latency),
        cold_starts: waits.clone().filter(|w| *w > 0).count() as u32,
        cold_wait_us: waits.sum(),
        ..Accounting::default()
    };
    for i in instances {
        let end = i.first_use_us.unwrap_or(i.dropped_us).max(i.provision_us);
        a.c_r_us += end - i.provision_us;
        a.idle_us += end.saturating_sub(i.ready_us);
        if i.hint.is_some() {
            a.hints_issued += 1;
            if i.first_use_us.is_some() {
                a.hints_used += 1;
            } else {
                a.hints_wasted += 1;
            }
        }
    }
    a
}

#[cfg(test)]
mod tests;

//! The most-likely-path (MLP) predictor (Xanadu, `docs/warmup.md` and
//! `docs/conditional-branches.md`): a pure function of the DAG, its [`DagProfile`] and the branch
//! outcomes seen so far.
//!
//! ## Model
//! A **branch point** is a task `d` with guarded children (`guard: {dep: d, equals: v}`).
//! When `d` completes, its output equals at most one of the guard values, so its
//! **outcomes** are the groups of guarded children that share a value (they run together),
//! plus **none** (no guard holds). *None* is an outcome when there is a single group (an
//! `if` without an `else`) or when the profile has seen it; several groups with distinct
//! values (`if`/`else`, a `switch`) are otherwise assumed exhaustive.
//!
//! Outcome probabilities come from the profile's [`BranchCounts`](crate::profile::BranchCounts)
//! with a symmetric prior of weight `prior` per outcome (Laplace smoothing):
//! `p(o) = (count(o) + prior) / (n + prior · K)`, `count(group)` its children's `taken`
//! count, `n` the number of completions of `d`, `K` the number of outcomes. An unseen
//! branch point is uniform.
//!
//! A **scenario** fixes one outcome at every branch point that runs; it determines which
//! tasks run (`docs/conditional-branches.md`: a failed guard skips the task, skipping propagates,
//! `join: any` runs when at least one dependency ran). Its probability is the product of its
//! outcomes' probabilities. The **MLP** is the scenario of maximum probability, found exactly by a
//! best-first search over branch points in topological order (probabilities only shrink as
//! outcomes are fixed, so the first complete scenario popped is optimal), bounded by
//! `max_expansions` (then the best partial scenario is completed greedily).
//! [`Strategy::Greedy`] instead takes the most likely outcome at each branch point in turn.
//!
//! **Observed** outcomes pin their branch points (probability 1): a taken guard selects its
//! group, a guard seen not taken rules its group out (the others are renormalized).
//!
//! ## Timing
//! Over the tasks predicted to run, in topological order: a task is **triggered** (`start_us`)
//! when its last running dependency finishes (plus `hop_us`); sources at 0. It then runs for
//! its expected exec time, after its expected cold start depending on [`Warmth`]: `Warm`
//! none, `Cold` all of it (reactive), `ReadyAfter(t0)` a warm-up that began at `t0` (its
//! exec starts at `max(start, t0 + cold)`, what speculative and just-in-time warm-up
//! achieve). Observed start and finish times, and the expected warm times of warm-ups
//! already under way ([`Observed::warm_at`]), override the estimates. Expected times are the
//! profile's means (or a quantile), with defaults for unprofiled functions.

use crate::dag::{Dag, Join};
use crate::ids::TaskIdx;
use crate::profile::{DagProfile, Histogram};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// How an expected time is read from a histogram.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Estimate {
    Mean,
    /// A quantile in 0..=1 (bucketed: about ±20%).
    Quantile(f64),
}

impl Estimate {
    fn of(self, h: &Histogram) -> Option<u64> {
        match self {
            Estimate::Mean => h.mean().map(|m| m.round() as u64),
            Estimate::Quantile(q) => h.quantile(q),
        }
    }
}

/// How the search picks outcomes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// The scenario with the maximum product of probabilities (exact).
    #[default]
    MaxProduct,
    /// The most likely outcome at each branch point, in topological order.
    Greedy,
}

/// Which cold starts the timeline pays (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Warmth {
    /// Every function is warm: no cold start.
    #[default]
    Warm,
    /// Every task pays its function's full cold start (reactive provisioning).
    Cold,
    /// Warm-up of every function began at this time (µs): exec starts no earlier than
    /// it plus the cold start.
    ReadyAfter(u64),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Prior weight per outcome (1 = Laplace).
    pub prior: f64,
    pub exec: Estimate,
    pub cold_start: Estimate,
    /// Exec time of a function without profile samples (µs).
    pub default_exec_us: u64,
    /// Cold start of a function without profile samples (µs).
    pub default_cold_start_us: u64,
    /// Added to every edge (µs): passing an output on.
    pub hop_us: u64,
    pub strategy: Strategy,
    pub warmth: Warmth,
    /// Bound on the search's expanded states.
    pub max_expansions: usize,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            prior: 1.0,
            exec: Estimate::Mean,
            cold_start: Estimate::Mean,
            default_exec_us: 1_000,
            default_cold_start_us: 0,
            hop_us: 0,
            strategy: Strategy::MaxProduct,
            warmth: Warmth::Warm,
            max_expansions: 10_000,
        }
    }
}

/// What a job has shown so far. Times are µs since the job started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// `(guarded task, taken)`, one per completion of the guard's dependency.
    pub outcomes: Vec<(TaskIdx, bool)>,
    /// Tasks triggered, and when.
    pub started: Vec<(TaskIdx, u64)>,
    /// Tasks completed, and when.
    pub finished: Vec<(TaskIdx, u64)>,
    /// Tasks whose function's warm-up is under way (a hint was issued), and when it is
    /// expected to be warm: overrides [`Warmth::ReadyAfter`] for them.
    #[serde(default)]
    pub warm_at: Vec<(TaskIdx, u64)>,
}

/// The outcome chosen at one branch point that runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The branch point (the guards' dependency).
    pub dep: TaskIdx,
    /// The guarded children that run (one group); empty for *none*.
    pub taken: Vec<TaskIdx>,
    /// Its probability (1 when pinned by an observation).
    pub probability: f64,
    pub pinned: bool,
}

/// One task on the MLP, with expected times (µs since the job started).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathTask {
    pub task: TaskIdx,
    /// Triggered: its last running dependency finished (the time by which it should be warm).
    pub start_us: u64,
    /// Its function starts executing (after any cold start the [`Warmth`] implies).
    pub exec_start_us: u64,
    pub finish_us: u64,
    /// Expected exec time and cold start of its function.
    pub exec_us: u64,
    pub cold_start_us: u64,
}

/// The most likely path.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    /// Product of the chosen outcomes' probabilities.
    pub probability: f64,
    /// Per task: predicted to run.
    pub runs: Vec<bool>,
    /// The tasks predicted to run, in topological order, with their expected times.
    pub path: Vec<PathTask>,
    /// The outcome at each branch point that runs, in topological order.
    pub choices: Vec<Choice>,
    /// When the last task on the path finishes.
    pub makespan_us: u64,
    /// False when the search hit `max_expansions` (the result is then greedy-completed).
    pub exact: bool,
}

impl Mlp {
    pub fn on_path(&self, t: TaskIdx) -> bool {
        self.runs.get(t.get()).copied().unwrap_or(false)
    }

    pub fn task(&self, t: TaskIdx) -> Option<&PathTask> {
        self.path.iter().find(|p| p.task == t)
    }
}

/// One outcome of a branch point: the children that run (empty: none), and its probability.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub taken: Vec<TaskIdx>,
    pub probability: f64,
}

/// A branch point with its outcomes' probabilities, observations applied.
#[derive(Clone, Debug, PartialEq)]
pub struct BranchPoint {
    pub dep: TaskIdx,
    /// Outcomes that are still possible, most likely first (ties: DAG order, none last).
    pub outcomes: Vec<Outcome>,
    pub pinned: bool,
}

/// The branch points of `dag` in topological order, with probabilities from `profile` and
/// `observed` outcomes applied.
pub fn branch_points(
    dag: &Dag,
    profile: &DagProfile,
    observed: &Observed,
    prior: f64,
) -> Vec<BranchPoint> {
    let prior = if prior.is_finite() {
        prior.max(0.0)
    } else {
        1.0
    };
    let mut seen: Vec<Option<bool>> = vec![None; dag.len()];
    for &(t, taken) in &observed.outcomes {
        if let Some(s) = seen.get_mut(t.get()) {
            *s = Some(taken);
        }
    }
    let mut out = Vec::new();
    for d in dag.topo_order() {
        // Guarded children of d, grouped by guard value (DAG order).
        let mut groups: Vec<(&Value, Vec<TaskIdx>)> = Vec::new();
        for c in dag.children(d) {
            let Some(g) = dag.extras(c.task).and_then(|e| e.guard.as_ref()) else {
                continue;
            };
            if dag.lookup(g.dep.as_str()) != Some(d) {
                continue;
            }
            match groups.iter_mut().find(|(v, _)| **v == g.equals) {
                Some((_, ts)) => ts.push(c.task),
                None => groups.push((&g.equals, vec![c.task])),
            }
        }
        if groups.is_empty() {
            continue;
        }
        let counts = |t: TaskIdx| {
            profile
                .branch(dag.id(t).as_str())
                .copied()
                .unwrap_or_default()
        };
        let n = groups
            .iter()
            .flat_map(|(_, ts)| ts.iter())
            .map(|&t| counts(t).total())
            .max()
            .unwrap_or(0);
        let mut cands: Vec<(Vec<TaskIdx>, u64)> = groups
            .into_iter()
            .map(|(_, ts)| {
                let k = ts.iter().map(|&t| counts(t).taken).max().unwrap_or(0);
                (ts, k)
            })
            .collect();
        let none = n.saturating_sub(cands.iter().map(|c| c.1).sum());
        let none_possible = cands.len() == 1 || none > 0;
        // Observations: a taken guard selects its group; one seen not taken rules it out.
        let taken_seen: Vec<TaskIdx> = cands
            .iter()
            .flat_map(|c| c.0.iter())
            .copied()
            .filter(|t| seen[t.get()] == Some(true))
            .collect();
        let consistent = |ts: &[TaskIdx]| {
            ts.iter().all(|t| seen[t.get()] != Some(false))
                && taken_seen.iter().all(|t| ts.contains(t))
        };
        let any_seen = cands
            .iter()
            .flat_map(|c| c.0.iter())
            .any(|t| seen[t.get()].is_some());
        cands.retain(|c| consistent(&c.0));
        let with_none = taken_seen.is_empty() && (none_possible || cands.is_empty());
        if with_none {
            cands.push((Vec::new(), none));
        }
        let total: f64 = cands
            .iter()
            .map(|c| c.1 as f64 + prior)
            .sum::<f64>()
            .max(f64::MIN_POSITIVE);
        let k = cands.len() as f64;
        let mut outcomes: Vec<Outcome> = cands
            .into_iter()
            .map(|(taken, c)| Outcome {
                taken,
                probability: if total > f64::MIN_POSITIVE {
                    (c as f64 + prior) / total
                } else {
                    1.0 / k
                },
            })
            .collect();
        // Stable: ties keep DAG order, none last.
        outcomes.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        let pinned = outcomes.len() == 1 && any_seen;
        if pinned {
            outcomes[0].probability = 1.0;
        }
        out.push(BranchPoint {
            dep: d,
            outcomes,
            pinned,
        });
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Run,
    Skip,
    Unknown,
}

/// The run status of every task given the decided outcomes (`decided[bp]`), and the first
/// branch point (index into `bps`) that runs and is undecided.
fn statuses(
    dag: &Dag,
    order: &[TaskIdx],
    bp_of: &[Option<u32>],
    bps: &[BranchPoint],
    decided: &[Option<u16>],
) -> (Vec<Status>, Option<usize>) {
    let mut st = vec![Status::Unknown; dag.len()];
    let mut next = None;
    for &t in order {
        let deps = dag.deps(t);
        let extras = dag.extras(t);
        let any = matches!(extras.and_then(|e| e.join), Some(Join::Any));
        let ds = deps.iter().map(|d| st[d.get()]);
        let mut s = if deps.is_empty() {
            Status::Run
        } else if any {
            if ds.clone().any(|s| s == Status::Run) {
                Status::Run
            } else if ds.clone().all(|s| s == Status::Skip) {
                Status::Skip
            } else {
                Status::Unknown
            }
        } else if ds.clone().any(|s| s == Status::Skip) {
            Status::Skip
        } else if ds.clone().any(|s| s == Status::Unknown) {
            Status::Unknown
        } else {
            Status::Run
        };
        if s == Status::Run
            && let Some(g) = extras.and_then(|e| e.guard.as_ref())
            && let Some(gd) = dag.lookup(g.dep.as_str())
        {
            s = match st[gd.get()] {
                Status::Skip => Status::Skip,
                Status::Unknown => Status::Unknown,
                Status::Run => match bp_of[gd.get()] {
                    Some(b) => match decided[b as usize] {
                        Some(o) => {
                            if bps[b as usize].outcomes[o as usize].taken.contains(&t) {
                                Status::Run
                            } else {
                                Status::Skip
                            }
                        }
                        None => Status::Unknown,
                    },
                    None => Status::Run,
                },
            };
        }
        st[t.get()] = s;
        if s == Status::Run
            && next.is_none()
            && let Some(b) = bp_of[t.get()]
            && decided[b as usize].is_none()
        {
            next = Some(b as usize);
        }
    }
    (st, next)
}

struct State {
    logp: f64,
    seq: u64,
    decided: Vec<Option<u16>>,
}

impl PartialEq for State {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for State {}
impl PartialOrd for State {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for State {
    /// Max-heap: higher probability first, then earlier pushed.
    fn cmp(&self, o: &Self) -> Ordering {
        self.logp
            .total_cmp(&o.logp)
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

/// The most likely path of `dag` given `profile` and what was `observed` (module docs).
pub fn mlp(dag: &Dag, profile: &DagProfile, observed: &Observed, cfg: &MlpConfig) -> Mlp {
    let order = dag.topo_order();
    let bps = branch_points(dag, profile, observed, cfg.prior);
    let mut bp_of: Vec<Option<u32>> = vec![None; dag.len()];
    for (i, b) in bps.iter().enumerate() {
        bp_of[b.dep.get()] = Some(i as u32);
    }
    let greedy_complete = |mut decided: Vec<Option<u16>>| {
        loop {
            let (st, next) = statuses(dag, &order, &bp_of, &bps, &decided);
            match next {
                // Outcomes are sorted, most likely first.
                Some(b) => decided[b] = Some(0),
                None => return (decided, st),
            }
        }
    };
    let start = vec![None; bps.len()];
    let (decided, st, exact) = match cfg.strategy {
        Strategy::Greedy => {
            let (d, st) = greedy_complete(start);
            (d, st, true)
        }
        Strategy::MaxProduct => {
            let mut heap = BinaryHeap::new();
            let mut seq = 0u64;
            heap.push(State {
                logp: 0.0,
                seq,
                decided: start,
            });
            let mut expansions = 0usize;
            loop {
                let Some(s) = heap.pop() else {
                    // Unreachable: the root state always completes; be safe anyway.
                    let (d, st) = greedy_complete(vec![None; bps.len()]);
                    break (d, st, false);
                };
                let (st, next) = statuses(dag, &order, &bp_of, &bps, &s.decided);
                let Some(b) = next else {
                    break (s.decided, st, true);
                };
                expansions += 1;
                if expansions > cfg.max_expansions {
                    let (d, st) = greedy_complete(s.decided);
                    break (d, st, false);
                }
                for (o, out) in bps[b].outcomes.iter().enumerate() {
                    let mut decided = s.decided.clone();
                    decided[b] = Some(o as u16);
                    seq += 1;
                    heap.push(State {
                        logp: s.logp + out.probability.max(f64::MIN_POSITIVE).ln(),
                        seq,
                        decided,
                    });
                }
            }
        }
    };
    let runs: Vec<bool> = st.iter().map(|s| *s == Status::Run).collect();
    let mut probability = 1.0;
    let mut choices = Vec::new();
    for &t in &order {
        if let Some(b) = bp_of[t.get()]
            && runs[t.get()]
            && let Some(o) = decided[b as usize]
        {
            let bp = &bps[b as usize];
            let out = &bp.outcomes[o as usize];
            probability *= out.probability;
            choices.push(Choice {
                dep: t,
                taken: out.taken.clone(),
                probability: out.probability,
                pinned: bp.pinned,
            });
        }
    }
    let path = timeline(dag, profile, observed, cfg, &order, &runs);
    let makespan_us = path.iter().map(|p| p.finish_us).max().unwrap_or(0);
    Mlp {
        probability,
        runs,
        path,
        choices,
        makespan_us,
        exact,
    }
}

/// Expected exec time and cold start of `t`'s function.
pub fn expected_times(dag: &Dag, profile: &DagProfile, cfg: &MlpConfig, t: TaskIdx) -> (u64, u64) {
    let p = profile.function(dag.func_name(t));
    let exec = p
        .and_then(|p| cfg.exec.of(&p.exec_us))
        .unwrap_or(cfg.default_exec_us);
    let cold = p
        .and_then(|p| cfg.cold_start.of(&p.cold_start_us))
        .unwrap_or(cfg.default_cold_start_us);
    (exec, cold)
}

fn timeline(
    dag: &Dag,
    profile: &DagProfile,
    observed: &Observed,
    cfg: &MlpConfig,
    order: &[TaskIdx],
    runs: &[bool],
) -> Vec<PathTask> {
    let mut started: Vec<Option<u64>> = vec![None; dag.len()];
    for &(t, at) in &observed.started {
        if let Some(s) = started.get_mut(t.get()) {
            *s = Some(at);
        }
    }
    let mut finished: Vec<Option<u64>> = vec![None; dag.len()];
    for &(t, at) in &observed.finished {
        if let Some(s) = finished.get_mut(t.get()) {
            *s = Some(at);
        }
    }
    let mut warm_at: Vec<Option<u64>> = vec![None; dag.len()];
    for &(t, at) in &observed.warm_at {
        if let Some(s) = warm_at.get_mut(t.get()) {
            *s = Some(at);
        }
    }
    let mut finish = vec![0u64; dag.len()];
    let mut path = Vec::new();
    for &t in order {
        if !runs[t.get()] {
            continue;
        }
        let (exec, cold) = expected_times(dag, profile, cfg, t);
        let trigger = dag
            .deps(t)
            .iter()
            .filter(|d| runs[d.get()])
            .map(|d| finish[d.get()].saturating_add(cfg.hop_us))
            .max()
            .unwrap_or(0);
        let start = started[t.get()].unwrap_or(trigger);
        let exec_start = match cfg.warmth {
            Warmth::Warm => start,
            Warmth::Cold => start.saturating_add(cold),
            Warmth::ReadyAfter(t0) if started[t.get()].is_none() => {
                start.max(warm_at[t.get()].unwrap_or(t0.saturating_add(cold)))
            }
            Warmth::ReadyAfter(_) => start,
        };
        let (exec_start, end) = match finished[t.get()] {
            Some(f) => (exec_start.min(f), f),
            None => (exec_start, exec_start.saturating_add(exec)),
        };
        finish[t.get()] = end;
        path.push(PathTask {
            task: t,
            start_us: start,
            exec_start_us: exec_start,
            finish_us: end,
            exec_us: exec,
            cold_start_us: cold,
        });
    }
    path
}

#[cfg(test)]
mod tests;

//! A deterministic discrete-event simulation of one job under a warm-up mode: virtual time,
//! no threads, no clock.
//!
//! The world: each function has a real exec time and cold start ([`SimFn`]); each branch
//! point's output is given ([`SimSpec::outputs`]), so guards hold or fail as in
//! `docs/conditional-branches.md` Executors start cold. A task triggered at `T` takes an idle warm
//! instance of its function (ready by `T`), else the instance that will be ready soonest (a hint
//! still warming: a partial cold start), else provisions one itself (a full cold start,
//! reactive). An instance serves one task at a time, and stays warm `keep_alive` after each
//! use; an instance from a hint that no task used is dropped at the hint's expiry, or when a
//! re-plan releases it. The [`Planner`] sees what the engine would see (tasks triggered and
//! finished, branch outcomes) and its hints take effect at their issue times.
//!
//! Events at the same instant run in this order: hints issued, tasks finished (with any
//! re-plan), tasks triggered.

use super::{
    Accounting, Hint, HintId, InstanceRecord, Planner, TaskRecord, WarmupConfig, WarmupMode,
    account,
};
use rukong_core::dag::{Dag, Join};
use rukong_core::ids::TaskIdx;
use rukong_core::profile::{DagProfile, FnProfile};
use rukong_core::value::Value;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// A function's real timings (µs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimFn {
    pub exec_us: u64,
    pub cold_start_us: u64,
}

/// One simulated job.
#[derive(Clone, Debug)]
pub struct SimSpec<'a> {
    pub dag: &'a Dag,
    /// Real timings per function name; a missing function takes `default`.
    pub fns: BTreeMap<String, SimFn>,
    pub default: SimFn,
    /// The output of each branch point (a task absent here outputs `null`).
    pub outputs: BTreeMap<TaskIdx, Value>,
    /// What the planner believes.
    pub profile: &'a DagProfile,
}

impl SimSpec<'_> {
    fn timing(&self, t: TaskIdx) -> SimFn {
        self.fns
            .get(self.dag.func_name(t))
            .copied()
            .unwrap_or(self.default)
    }

    fn output(&self, t: TaskIdx) -> Value {
        self.outputs.get(&t).cloned().unwrap_or(Value::Null)
    }

    /// The branch outcomes of the whole run, in task order: every guarded task whose guard's
    /// dependency runs, and whether its guard holds. What [`WarmupMode::Oracle`] is told.
    pub fn truth(&self) -> Vec<(TaskIdx, bool)> {
        let dag = self.dag;
        let mut ran = vec![false; dag.len()];
        let mut out = Vec::new();
        for t in dag.topo_order() {
            ran[t.get()] = decide(self, &ran, t);
        }
        for t in dag.tasks() {
            if let Some(g) = dag.extras(t).and_then(|e| e.guard.as_ref())
                && let Some(d) = dag.lookup(g.dep.as_str())
                && ran[d.get()]
            {
                out.push((t, self.output(d) == g.equals));
            }
        }
        out
    }
}

/// Whether `t` runs once all its dependencies are resolved (`ran` says which ran).
fn decide(spec: &SimSpec<'_>, ran: &[bool], t: TaskIdx) -> bool {
    let dag = spec.dag;
    let deps = dag.deps(t);
    let extras = dag.extras(t);
    let mut run = if deps.is_empty() {
        true
    } else if matches!(extras.and_then(|e| e.join), Some(Join::Any)) {
        deps.iter().any(|d| ran[d.get()])
    } else {
        deps.iter().all(|d| ran[d.get()])
    };
    if let Some(g) = extras.and_then(|e| e.guard.as_ref()) {
        run = run
            && dag
                .lookup(g.dep.as_str())
                .is_some_and(|d| ran[d.get()] && spec.output(d) == g.equals);
    }
    run
}

/// The result of one simulated run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    pub mode: WarmupMode,
    pub accounting: Accounting,
    pub tasks: Vec<TaskRecord>,
    pub instances: Vec<InstanceRecord>,
    /// Every hint planned, cancelled and released ones included.
    pub hints: Vec<Hint>,
    pub cancelled: Vec<HintId>,
    pub released: Vec<HintId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Issue(HintId),
    Finish(TaskIdx),
    Trigger(TaskIdx),
}

struct Instance {
    func: usize,
    rec: InstanceRecord,
    busy_until: Option<u64>,
    /// Usable until then (unused: the hint's expiry; used: last finish + keep-alive).
    alive_until: u64,
    dropped: bool,
}

/// Runs `spec` under `mode` (deterministic).
pub fn simulate(spec: &SimSpec<'_>, mode: WarmupMode, cfg: &WarmupConfig) -> SimReport {
    let dag = spec.dag;
    let truth = spec.truth();
    let mut planner = Planner::new(mode, dag, spec.profile, cfg, &truth);
    let mut queue: BinaryHeap<Reverse<(u64, Ev, u64)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |q: &mut BinaryHeap<Reverse<(u64, Ev, u64)>>, at: u64, ev: Ev| {
        seq += 1;
        q.push(Reverse((at, ev, seq)));
    };
    let mut hints: BTreeMap<HintId, Hint> = BTreeMap::new();
    let mut cancelled: Vec<HintId> = Vec::new();
    let mut released: Vec<HintId> = Vec::new();
    for h in planner.live_hints() {
        push(&mut queue, h.issue_at_us, Ev::Issue(h.id));
        hints.insert(h.id, h.clone());
    }
    let mut remaining: Vec<u32> = dag.tasks().map(|t| dag.needed(t)).collect();
    let mut ran = vec![false; dag.len()];
    let mut trigger_at = vec![0u64; dag.len()];
    let mut records: Vec<TaskRecord> = Vec::new();
    let mut instances: Vec<Instance> = Vec::new();
    let mut task_instance: Vec<usize> = vec![usize::MAX; dag.len()];
    for &s in dag.sources() {
        push(&mut queue, 0, Ev::Trigger(s));
    }
    while let Some(Reverse((now, ev, _))) = queue.pop() {
        match ev {
            Ev::Issue(id) => {
                if cancelled.contains(&id) || released.contains(&id) {
                    continue;
                }
                let h = &hints[&id];
                let c = spec.timing(h.task).cold_start_us;
                instances.push(Instance {
                    func: dag.func_of(h.task),
                    rec: InstanceRecord {
                        hint: Some(id),
                        provision_us: now,
                        ready_us: now + c,
                        first_use_us: None,
                        dropped_us: h.expires_at_us.max(now + c),
                    },
                    busy_until: None,
                    alive_until: h.expires_at_us.max(now + c),
                    dropped: false,
                });
            }
            Ev::Trigger(t) => {
                planner.on_started(t, now);
                trigger_at[t.get()] = now;
                let f = dag.func_of(t);
                let real = spec.timing(t);
                let usable = |i: &Instance| {
                    i.func == f && !i.dropped && i.busy_until.is_none() && now <= i.alive_until
                };
                // Warm first (earliest ready), else the warming one ready soonest.
                let pick = instances
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| usable(i))
                    .min_by_key(|(k, i)| (i.rec.ready_us.max(now), *k))
                    .map(|(k, _)| k);
                let k = match pick {
                    Some(k) => k,
                    None => {
                        instances.push(Instance {
                            func: f,
                            rec: InstanceRecord {
                                hint: None,
                                provision_us: now,
                                ready_us: now + real.cold_start_us,
                                first_use_us: None,
                                dropped_us: now + real.cold_start_us,
                            },
                            busy_until: None,
                            alive_until: u64::MAX,
                            dropped: false,
                        });
                        instances.len() - 1
                    }
                };
                let inst = &mut instances[k];
                let exec_start = inst.rec.ready_us.max(now);
                let finish = exec_start + real.exec_us;
                inst.rec.first_use_us.get_or_insert(exec_start);
                inst.busy_until = Some(finish);
                task_instance[t.get()] = k;
                records.push(TaskRecord {
                    task: t,
                    trigger_us: now,
                    exec_start_us: exec_start,
                    finish_us: finish,
                });
                push(&mut queue, finish, Ev::Finish(t));
            }
            Ev::Finish(t) => {
                ran[t.get()] = true;
                let inst = &mut instances[task_instance[t.get()]];
                inst.busy_until = None;
                inst.alive_until = now + cfg.keep_alive_us;
                let outcomes: Vec<(TaskIdx, bool)> = truth
                    .iter()
                    .copied()
                    .filter(|(c, _)| {
                        dag.extras(*c)
                            .and_then(|e| e.guard.as_ref())
                            .and_then(|g| dag.lookup(g.dep.as_str()))
                            == Some(t)
                    })
                    .collect();
                if let Some(r) = planner.on_finished(dag, t, now, &outcomes) {
                    cancelled.extend(&r.cancel);
                    for id in &r.release {
                        released.push(*id);
                        if let Some(i) = instances.iter_mut().find(|i| {
                            i.rec.hint == Some(*id)
                                && i.rec.first_use_us.is_none()
                                && i.busy_until.is_none()
                        }) {
                            i.dropped = true;
                            i.rec.dropped_us = now.max(i.rec.provision_us);
                        }
                    }
                    for h in r.issue {
                        push(&mut queue, h.issue_at_us.max(now), Ev::Issue(h.id));
                        hints.insert(h.id, h);
                    }
                }
                // Resolve dependents; skipped ones resolve theirs at once.
                let mut work = vec![t];
                while let Some(p) = work.pop() {
                    for c in dag.children(p) {
                        let r = &mut remaining[c.task.get()];
                        *r -= 1;
                        if *r > 0 {
                            continue;
                        }
                        if decide(spec, &ran, c.task) {
                            push(&mut queue, now + cfg.mlp.hop_us, Ev::Trigger(c.task));
                        } else {
                            work.push(c.task);
                        }
                    }
                }
            }
        }
    }
    let recs: Vec<InstanceRecord> = instances.iter().map(|i| i.rec).collect();
    let mut accounting = account(dag, &records, &recs, cfg.mlp.hop_us);
    accounting.hints_planned = hints.len() as u32;
    accounting.hints_cancelled = cancelled.len() as u32;
    accounting.hints_released = released.len() as u32;
    accounting.replans = planner.replans();
    SimReport {
        mode,
        accounting,
        tasks: records,
        instances: recs,
        hints: planner.all_hints().cloned().collect(),
        cancelled,
        released,
    }
}

/// A profile that knows the real timings exactly, and branch counts from `odds`: per guarded
/// task, (taken, not taken).
pub fn exact_profile(spec_fns: &BTreeMap<String, SimFn>, odds: &[(&str, u64, u64)]) -> DagProfile {
    let mut p = DagProfile::new();
    for (f, t) in spec_fns {
        let mut fp = FnProfile::default();
        fp.exec_us.record(t.exec_us);
        fp.cold_start_us.record(t.cold_start_us);
        p.insert(f.clone(), fp);
    }
    for &(task, taken, not) in odds {
        let b = p.branches.entry(task.to_owned()).or_default();
        b.taken += taken;
        b.not_taken += not;
    }
    p
}

pub use rukong_core::rng::SplitMix64;

/// Workloads for tests and the `warmup` benchmark.
pub mod workloads {
    use rukong_core::dag::{Dag, DagSpec, Limits, validate};

    fn build(yaml: &str) -> Dag {
        validate(
            DagSpec::from_yaml_str(yaml).expect("workload DAG parses"),
            &Limits::default(),
            &|_| true,
        )
        .expect("workload DAG is valid")
    }

    /// A chain `t0 → … → t(n-1)` of `n` distinct functions `f0 … f(n-1)`.
    pub fn chain(n: usize) -> Dag {
        let mut y = format!("name: chain{n}\ntasks:\n");
        for i in 0..n {
            if i == 0 {
                y.push_str("  - {id: t0, fn: f0}\n");
            } else {
                y.push_str(&format!("  - {{id: t{i}, fn: f{i}, deps: [t{}]}}\n", i - 1));
            }
        }
        build(&y)
    }

    /// `stages` branch points in series: `root` (function `r`), then per stage `s` an
    /// if/else on the previous stage's output (`equals: 0` → chain `s{s}a0 … s{s}a(k-1)`,
    /// `equals: 1` → chain `s{s}b0 …`), merged by a `join: any` task `m{s}` whose output is
    /// the next stage's branch value. Every task has its own function (named like it).
    pub fn branching(stages: usize, k: usize) -> Dag {
        let mut y = format!("name: branching{stages}x{k}\ntasks:\n  - {{id: root, fn: root}}\n");
        let mut prev = "root".to_string();
        for s in 0..stages {
            for (side, v) in [("a", 0), ("b", 1)] {
                for i in 0..k {
                    let id = format!("s{s}{side}{i}");
                    if i == 0 {
                        y.push_str(&format!(
                            "  - {{id: {id}, fn: {id}, deps: [{prev}], guard: {{dep: {prev}, equals: {v}}}}}\n"
                        ));
                    } else {
                        y.push_str(&format!(
                            "  - {{id: {id}, fn: {id}, deps: [s{s}{side}{}]}}\n",
                            i - 1
                        ));
                    }
                }
            }
            let m = format!("m{s}");
            y.push_str(&format!(
                "  - {{id: {m}, fn: {m}, deps: [s{s}a{last}, s{s}b{last}], join: any}}\n",
                last = k - 1
            ));
            prev = m;
        }
        build(&y)
    }
}

//! What a [`Dag`] derives from its dependency lists: each task's distinct-dependency count,
//! its children (with each parent's fan-in position), the sources and the sinks; and the
//! DAG's stored form, which leaves all of that out and rebuilds it on load.
//!
//! A 1,000,000-task fan-out's plan is about 59 bytes per task in full, 34 of them derived
//! (the children alone are 22). Storing only what cannot be derived keeps the plan in Redis
//! small, and every executor rebuilds the rest once per job, in O(tasks + edges).

use crate::dag::compiled::{Child, Dag, TaskExtras};
use crate::ids::{TaskId, TaskIdx};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Marks a repeated dependency in the edge-position scratch array.
const DUP: u32 = 1 << 31;

/// The derived parts of a DAG.
pub(crate) struct Linked {
    pub needed: Vec<u32>,
    pub child_off: Vec<u32>,
    pub children: Vec<Child>,
    pub sources: Vec<TaskIdx>,
    /// Per task: how many distinct children it has.
    pub out_count: Vec<u32>,
}

/// Links `n` tasks whose dependencies are `deps[dep_off[t]..dep_off[t+1]]` (indices below
/// `n`, checked by the caller).
pub(crate) fn link(n: usize, dep_off: &[u32], deps: &[TaskIdx]) -> Linked {
    // Distinct dependencies and each parent's position among them (the fan-in bit).
    let mut needed = vec![0u32; n];
    let mut out_count = vec![0u32; n + 1];
    let mut edge_pos: Vec<u32> = vec![0; deps.len()];
    // For long dependency lists (a wide fan-in): per dependency, the last task that listed
    // it and its position there, made on first need. Two array reads per edge instead of
    // a hash map that grows to the list's length.
    let mut seen: Vec<(u32, u32)> = Vec::new();
    for t in 0..n {
        let range = dep_off[t] as usize..dep_off[t + 1] as usize;
        let ds = &deps[range.clone()];
        let mut distinct = 0u32;
        if ds.len() <= 16 {
            for (k, d) in ds.iter().enumerate() {
                match ds[..k].iter().position(|x| x == d) {
                    Some(first) => edge_pos[range.start + k] = edge_pos[range.start + first] | DUP,
                    None => {
                        edge_pos[range.start + k] = distinct;
                        distinct += 1;
                        out_count[d.get()] += 1;
                    }
                }
            }
        } else {
            if seen.is_empty() {
                seen = vec![(u32::MAX, 0); n];
            }
            for (k, d) in ds.iter().enumerate() {
                let mark = &mut seen[d.get()];
                if mark.0 == t as u32 {
                    edge_pos[range.start + k] = mark.1 | DUP;
                } else {
                    *mark = (t as u32, distinct);
                    edge_pos[range.start + k] = distinct;
                    distinct += 1;
                    out_count[d.get()] += 1;
                }
            }
        }
        needed[t] = distinct;
    }
    // Children in CSR, in child-index order.
    let mut child_off = vec![0u32; n + 1];
    for t in 0..n {
        child_off[t + 1] = child_off[t] + out_count[t];
    }
    let mut fill: Vec<u32> = child_off[..n].to_vec();
    let mut children = vec![
        Child {
            task: TaskIdx(0),
            pos: 0
        };
        child_off[n] as usize
    ];
    for t in 0..n {
        for e in dep_off[t] as usize..dep_off[t + 1] as usize {
            if edge_pos[e] & DUP != 0 {
                continue;
            }
            let d = deps[e].get();
            children[fill[d] as usize] = Child {
                task: TaskIdx(t as u32),
                pos: edge_pos[e],
            };
            fill[d] += 1;
        }
    }
    let sources = (0..n)
        .filter(|&t| needed[t] == 0)
        .map(|t| TaskIdx(t as u32))
        .collect();
    out_count.truncate(n);
    Linked {
        needed,
        child_off,
        children,
        sources,
        out_count,
    }
}

/// A [`Dag`] as stored: only what cannot be derived.
#[derive(Serialize)]
pub(crate) struct StoredRef<'a> {
    name: &'a str,
    ids: &'a [TaskId],
    funcs: &'a [String],
    task_func: &'a [u32],
    args: &'a [Vec<Value>],
    dep_off: &'a [u32],
    deps: &'a [TaskIdx],
    outputs: &'a [TaskIdx],
    extras: &'a BTreeMap<u32, TaskExtras>,
}

/// [`StoredRef`], read back.
#[derive(Deserialize)]
pub(crate) struct Stored {
    name: String,
    ids: Vec<TaskId>,
    funcs: Vec<String>,
    task_func: Vec<u32>,
    args: Vec<Vec<Value>>,
    dep_off: Vec<u32>,
    deps: Vec<TaskIdx>,
    outputs: Vec<TaskIdx>,
    extras: BTreeMap<u32, TaskExtras>,
}

impl<'a> StoredRef<'a> {
    pub(crate) fn of(d: &'a Dag) -> Self {
        StoredRef {
            name: &d.name,
            ids: &d.ids,
            funcs: &d.funcs,
            task_func: &d.task_func,
            args: &d.args,
            dep_off: &d.dep_off,
            deps: &d.deps,
            outputs: &d.outputs,
            extras: &d.extras,
        }
    }
}

impl Stored {
    /// The whole DAG, or what is inconsistent in the stored form (a corrupt plan must not
    /// make a reader index out of bounds).
    pub(crate) fn into_dag(self) -> Result<Dag, String> {
        let n = self.ids.len();
        if self.task_func.len() != n || self.args.len() != n || self.dep_off.len() != n + 1 {
            return Err(format!(
                "{n} tasks, but {} functions, {} argument lists and {} dependency offsets",
                self.task_func.len(),
                self.args.len(),
                self.dep_off.len()
            ));
        }
        if self.dep_off[0] != 0
            || self.dep_off.windows(2).any(|w| w[0] > w[1])
            || self.dep_off[n] as usize != self.deps.len()
        {
            return Err("dependency offsets are not a partition of the dependency list".into());
        }
        let in_range = |t: &TaskIdx| t.get() < n;
        if !self.deps.iter().all(in_range) || !self.outputs.iter().all(in_range) {
            return Err("a dependency or output names a task out of range".into());
        }
        if self
            .task_func
            .iter()
            .any(|&f| f as usize >= self.funcs.len())
            || self.extras.keys().any(|&t| t as usize >= n)
        {
            return Err("a function or extras entry is out of range".into());
        }
        let l = link(n, &self.dep_off, &self.deps);
        let mut is_output = vec![false; n];
        for o in &self.outputs {
            is_output[o.get()] = true;
        }
        Ok(Dag {
            name: self.name,
            ids: self.ids,
            index: Default::default(),
            funcs: self.funcs,
            task_func: self.task_func,
            args: self.args,
            dep_off: self.dep_off,
            deps: self.deps,
            needed: l.needed,
            child_off: l.child_off,
            children: l.children,
            is_output,
            outputs: self.outputs,
            sources: l.sources,
            sinks: l.out_count.iter().filter(|&&c| c == 0).count(),
            extras: self.extras,
            guarded: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::dag::{DagSpec, Limits, validate};
    use crate::ids::{JobId, TaskIdx};
    use crate::plan::{JobConfig, JobPlan};
    use crate::schedule::schedule;

    fn plan(yaml: &str) -> JobPlan {
        let dag = validate(
            DagSpec::from_yaml_str(yaml).unwrap(),
            &Limits::default(),
            &|_| true,
        )
        .unwrap();
        let config = JobConfig {
            proxy_fanout: 3,
            ..JobConfig::default()
        };
        JobPlan {
            job: JobId::new("link"),
            schedule: schedule(&dag, config.proxy_fanout),
            dag,
            config,
        }
    }

    #[test]
    fn a_stored_plan_is_rebuilt_whole() {
        // Repeated dependencies, a fan-in wider than 16 (the hashed path), a fan-out over F,
        // guards and options, explicit outputs.
        let mut yaml = String::from(
            "name: link\ntasks:\n  - {id: s, fn: const, args: [1]}\n  - {id: t, fn: const, args: [2]}\n  - {id: d, fn: add, deps: [s, t, s], retries: 2}\n  - {id: g, fn: identity, deps: [d], guard: {dep: d, equals: 4}}\n",
        );
        for i in 0..20 {
            yaml.push_str(&format!(
                "  - {{id: m{i}, fn: add, deps: [s], args: [{i}]}}\n"
            ));
        }
        let ms: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        yaml.push_str(&format!(
            "  - {{id: w, fn: add, deps: [{}, s, m3]}}\noutputs: [w, g, d]\n",
            ms.join(", ")
        ));
        let p = plan(&yaml);
        let bytes = p.to_msgpack();
        let q = JobPlan::from_msgpack(&bytes).unwrap();
        let (a, b) = (&p.dag, &q.dag);
        assert_eq!(a.len(), b.len());
        for i in 0..a.len() {
            let t = TaskIdx(i as u32);
            assert_eq!(a.id(t), b.id(t));
            assert_eq!(a.func_name(t), b.func_name(t));
            assert_eq!(a.args(t), b.args(t));
            assert_eq!(a.deps(t), b.deps(t));
            assert_eq!(a.needed(t), b.needed(t), "{}", a.id(t));
            assert_eq!(a.children(t), b.children(t), "{}", a.id(t));
            assert_eq!(a.is_output(t), b.is_output(t));
            assert_eq!(a.extras(t), b.extras(t));
        }
        assert_eq!(a.sources(), b.sources());
        assert_eq!(a.outputs(), b.outputs());
        assert_eq!(a.sink_count(), b.sink_count());
        assert_eq!(p.schedule, q.schedule);
        assert_eq!(p.config, q.config);
        assert_eq!(q.to_msgpack(), bytes, "stable");
    }

    #[test]
    fn a_corrupt_stored_plan_is_an_error_not_a_panic() {
        let p = plan(
            "name: c\ntasks:\n  - {id: a, fn: const, args: [1]}\n  - {id: b, fn: identity, deps: [a]}\n",
        );
        // The stored DAG with a dependency on a task that does not exist.
        let mut dag = super::StoredRef::of(&p.dag);
        let bad = [TaskIdx(9)];
        dag.deps = &bad;
        let bytes = rmp_serde::to_vec(&(&p.job, &dag, &p.config)).unwrap();
        let e = JobPlan::from_msgpack(&bytes).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }
}

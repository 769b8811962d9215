//! Static scheduling (`docs/architecture.md`): a pure function of the DAG.
//!
//! For each source, in index order, a depth-first search marks each newly reached task's
//! **become** child: the first child that no search has visited yet. Its other children are
//! its **invoke** list. Tasks with out-degree ≥ F are marked **use_proxy**: their whole
//! fan-out is handed to the KV-store proxy.
//!
//! The searches share one visited set, so the plan costs O(tasks + edges) however much the
//! sources' reachable sets overlap. A source's *static schedule* (everything reachable from
//! it) is available through [`static_schedules`] for inspection and drawing; executors only
//! need the per-task plan, which they read from [`Schedule`] without copying it.
//!
//! At run time the plan is a preference: after a task finishes, its executor becomes the
//! `become` child if that child is ready (a chain, or the last parent of a fan-in arrived),
//! otherwise the first ready child, and invokes the remaining ready ones.

use crate::dag::Dag;
use crate::ids::TaskIdx;
use serde::{Deserialize, Serialize};

/// Default out-degree at which a fan-out goes through the proxy.
pub const DEFAULT_PROXY_FANOUT: u32 = 10;

const NONE: u32 = u32::MAX;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Per task: position in `dag.children(t)` of the become child, or `NONE`.
    become_pos: Vec<u32>,
    /// Out-degree at which a fan-out is handed to the proxy (F).
    proxy_fanout: u32,
}

impl Schedule {
    /// The preferred child to continue into, if any.
    #[inline]
    pub fn become_child(&self, dag: &Dag, t: TaskIdx) -> Option<TaskIdx> {
        match self.become_pos[t.get()] {
            NONE => None,
            p => Some(dag.children(t)[p as usize].task),
        }
    }

    /// Position of the become child in `dag.children(t)`.
    #[inline]
    pub fn become_pos(&self, t: TaskIdx) -> Option<usize> {
        match self.become_pos[t.get()] {
            NONE => None,
            p => Some(p as usize),
        }
    }

    /// The children other than the become child.
    pub fn invoke<'a>(&self, dag: &'a Dag, t: TaskIdx) -> impl Iterator<Item = TaskIdx> + 'a {
        let skip = self.become_pos[t.get()];
        dag.children(t)
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i as u32 != skip)
            .map(|(_, c)| c.task)
    }

    #[inline]
    pub fn use_proxy(&self, dag: &Dag, t: TaskIdx) -> bool {
        dag.out_degree(t) >= self.proxy_fanout as usize
    }

    pub fn proxy_fanout(&self) -> u32 {
        self.proxy_fanout
    }
}

/// Computes the plan. `proxy_fanout` is F (at least 2).
pub fn schedule(dag: &Dag, proxy_fanout: u32) -> Schedule {
    let n = dag.len();
    let mut become_pos = vec![NONE; n];
    let mut visited = vec![false; n];
    let mut stack: Vec<TaskIdx> = Vec::new();
    for &s in dag.sources() {
        if visited[s.get()] {
            continue;
        }
        visited[s.get()] = true;
        stack.push(s);
        while let Some(t) = stack.pop() {
            let kids = dag.children(t);
            let mut first = NONE;
            // Push in reverse so that the become child is explored first (depth-first).
            for (i, c) in kids.iter().enumerate() {
                if !visited[c.task.get()] && first == NONE {
                    first = i as u32;
                }
            }
            become_pos[t.get()] = first;
            for c in kids.iter().rev() {
                if !visited[c.task.get()] {
                    visited[c.task.get()] = true;
                    stack.push(c.task);
                }
            }
        }
    }
    Schedule {
        become_pos,
        proxy_fanout: proxy_fanout.max(2),
    }
}

/// For each task, the index (in [`Dag::sources`]) of the source whose depth-first search
/// planned it: the same shared-visited-set order as [`schedule`]. Used to draw schedules.
pub fn claims(dag: &Dag) -> Vec<u32> {
    let mut owner = vec![u32::MAX; dag.len()];
    let mut stack = Vec::new();
    for (k, &s) in dag.sources().iter().enumerate() {
        if owner[s.get()] != u32::MAX {
            continue;
        }
        owner[s.get()] = k as u32;
        stack.push(s);
        while let Some(t) = stack.pop() {
            for c in dag.children(t).iter().rev() {
                if owner[c.task.get()] == u32::MAX {
                    owner[c.task.get()] = k as u32;
                    stack.push(c.task);
                }
            }
        }
    }
    owner
}

/// One source's static schedule: every task reachable from it, in depth-first order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticSchedule {
    pub source: TaskIdx,
    pub tasks: Vec<TaskIdx>,
}

/// Materializes every source's static schedule. Costs the sum of the reachable sets, so it
/// is meant for inspection, tests and drawing, not for the hot path.
pub fn static_schedules(dag: &Dag) -> Vec<StaticSchedule> {
    let mut mark = vec![u32::MAX; dag.len()];
    dag.sources()
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let mut tasks = Vec::new();
            let mut stack = vec![s];
            mark[s.get()] = k as u32;
            while let Some(t) = stack.pop() {
                tasks.push(t);
                for c in dag.children(t).iter().rev() {
                    if mark[c.task.get()] != k as u32 {
                        mark[c.task.get()] = k as u32;
                        stack.push(c.task);
                    }
                }
            }
            StaticSchedule { source: s, tasks }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::{DagSpec, Limits, validate};

    fn dag(yaml: &str) -> Dag {
        validate(
            DagSpec::from_yaml_str(yaml).unwrap(),
            &Limits::default(),
            &|_| true,
        )
        .unwrap()
    }
    fn idx(d: &Dag, id: &str) -> TaskIdx {
        d.lookup(id).unwrap()
    }
    fn names(d: &Dag, ts: impl IntoIterator<Item = TaskIdx>) -> Vec<String> {
        ts.into_iter().map(|t| d.id(t).to_string()).collect()
    }

    #[test]
    fn claims_follow_the_shared_depth_first_order() {
        let d = dag(
            "tasks: [{id: s1, fn: const}, {id: s2, fn: const}, {id: x, fn: add, deps: [s1, s2]}, {id: z, fn: identity, deps: [s2]}]",
        );
        let c = claims(&d);
        assert_eq!(c[idx(&d, "x").get()], 0, "s1 reaches x first");
        assert_eq!(c[idx(&d, "z").get()], 1);
        assert_eq!(c[idx(&d, "s2").get()], 1);
    }

    #[test]
    fn chain_becomes_each_next_task() {
        let d = dag(
            "tasks: [{id: a, fn: const}, {id: b, fn: identity, deps: [a]}, {id: c, fn: identity, deps: [b]}]",
        );
        let s = schedule(&d, 10);
        assert_eq!(s.become_child(&d, idx(&d, "a")), Some(idx(&d, "b")));
        assert_eq!(s.become_child(&d, idx(&d, "b")), Some(idx(&d, "c")));
        assert_eq!(s.become_child(&d, idx(&d, "c")), None);
        assert_eq!(s.invoke(&d, idx(&d, "a")).count(), 0);
        assert!(!s.use_proxy(&d, idx(&d, "a")));
    }

    #[test]
    fn diamond_becomes_first_branch_and_invokes_second() {
        let d = dag(
            "tasks: [{id: a, fn: const}, {id: b, fn: identity, deps: [a]}, {id: c, fn: identity, deps: [a]}, {id: d, fn: add, deps: [b, c]}]",
        );
        let s = schedule(&d, 10);
        let a = idx(&d, "a");
        assert_eq!(s.become_child(&d, a), Some(idx(&d, "b")));
        assert_eq!(names(&d, s.invoke(&d, a)), ["c"]);
        // The DFS reaches d through b first, so c has nothing left to claim.
        assert_eq!(s.become_child(&d, idx(&d, "b")), Some(idx(&d, "d")));
        assert_eq!(s.become_child(&d, idx(&d, "c")), None);
        assert_eq!(d.needed(idx(&d, "d")), 2);
        let all = static_schedules(&d);
        assert_eq!(all.len(), 1);
        assert_eq!(names(&d, all[0].tasks.clone()), ["a", "b", "d", "c"]);
    }

    #[test]
    fn tree_reduction_pairs_leaves_into_fan_ins() {
        // Four leaves, two adds, one root.
        let d = dag("tasks: [{id: l0, fn: const}, {id: l1, fn: const}, {id: l2, fn: const}, {id: l3, fn: const},
             {id: s0, fn: add, deps: [l0, l1]}, {id: s1, fn: add, deps: [l2, l3]}, {id: r, fn: add, deps: [s0, s1]}]");
        let s = schedule(&d, 10);
        // First leaf of each pair claims the fan-in; the second leaf's DFS finds it visited.
        assert_eq!(s.become_child(&d, idx(&d, "l0")), Some(idx(&d, "s0")));
        assert_eq!(s.become_child(&d, idx(&d, "l1")), None);
        assert_eq!(s.become_child(&d, idx(&d, "s0")), Some(idx(&d, "r")));
        assert_eq!(s.become_child(&d, idx(&d, "s1")), None);
        let all = static_schedules(&d);
        assert_eq!(all.len(), 4);
        for sch in &all {
            assert_eq!(sch.tasks.len(), 3, "leaf, its adder, the root");
            assert_eq!(*sch.tasks.last().unwrap(), idx(&d, "r"));
        }
    }

    #[test]
    fn wide_fan_out_uses_the_proxy_at_f() {
        let mut y = String::from("tasks: [{id: src, fn: const}");
        for i in 0..12 {
            y.push_str(&format!(", {{id: c{i}, fn: identity, deps: [src]}}"));
        }
        y.push(']');
        let d = dag(&y);
        let src = idx(&d, "src");
        let s = schedule(&d, 10);
        assert!(s.use_proxy(&d, src));
        assert_eq!(s.become_child(&d, src), Some(idx(&d, "c0")));
        assert_eq!(s.invoke(&d, src).count(), 11);
        assert!(!schedule(&d, 13).use_proxy(&d, src));
        assert!(schedule(&d, 12).use_proxy(&d, src));
    }

    #[test]
    fn overlapping_schedules_share_tasks_but_plan_each_once() {
        // Two sources reach the shared x -> y; the first source (in index order) claims it.
        let d = dag("tasks: [{id: s1, fn: const}, {id: s2, fn: const}, {id: p, fn: identity, deps: [s2]},
             {id: x, fn: add, deps: [s1, p]}, {id: y, fn: identity, deps: [x]}, {id: z, fn: identity, deps: [s2]}]");
        let s = schedule(&d, 10);
        assert_eq!(s.become_child(&d, idx(&d, "s1")), Some(idx(&d, "x")));
        assert_eq!(s.become_child(&d, idx(&d, "x")), Some(idx(&d, "y")));
        assert_eq!(s.become_child(&d, idx(&d, "s2")), Some(idx(&d, "p")));
        assert_eq!(names(&d, s.invoke(&d, idx(&d, "s2"))), ["z"]);
        assert_eq!(
            s.become_child(&d, idx(&d, "p")),
            None,
            "x already planned by s1"
        );
        let all = static_schedules(&d);
        assert_eq!(names(&d, all[0].tasks.clone()), ["s1", "x", "y"]);
        assert_eq!(names(&d, all[1].tasks.clone()), ["s2", "p", "x", "y", "z"]);
    }
}

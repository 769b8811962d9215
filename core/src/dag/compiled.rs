//! The validated DAG in a compact, index-based form (compressed sparse rows).
//!
//! Executors walk it on the hot path, so every lookup is an array index: no hashing, no
//! string compares. It serializes to MessagePack for the store without what it derives
//! from the dependency lists (children, counts, sources; [`super::link`]), which is rebuilt
//! on load with the id index.

use crate::dag::spec::{Guard, Join, Resources};
use crate::ids::{TaskId, TaskIdx};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// An edge to a dependent: the child, and this parent's position among the child's distinct
/// dependencies (the bit that the fan-in record sets).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    pub task: TaskIdx,
    pub pos: u32,
}

/// Per-task settings that most tasks do not have, kept out of the dense arrays.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskExtras {
    pub retries: u32,
    pub timeout_ms: Option<u64>,
    pub resources: Option<Resources>,
    pub guard: Option<Guard>,
    pub join: Option<Join>,
}

#[derive(Clone, Debug, Default)]
pub struct Dag {
    pub(crate) name: String,
    pub(crate) ids: Vec<TaskId>,
    /// Id → index, built on first lookup: executors never need it.
    pub(crate) index: OnceLock<HashMap<TaskId, TaskIdx>>,
    /// Distinct function names; `task_func` indexes into it.
    pub(crate) funcs: Vec<String>,
    pub(crate) task_func: Vec<u32>,
    pub(crate) args: Vec<Vec<Value>>,
    /// Ordered dependencies (duplicates kept): `deps[dep_off[t]..dep_off[t+1]]`.
    pub(crate) dep_off: Vec<u32>,
    pub(crate) deps: Vec<TaskIdx>,
    /// Number of distinct dependencies: what a fan-in waits for.
    pub(crate) needed: Vec<u32>,
    /// Distinct dependents: `children[child_off[t]..child_off[t+1]]`.
    pub(crate) child_off: Vec<u32>,
    pub(crate) children: Vec<Child>,
    pub(crate) outputs: Vec<TaskIdx>,
    pub(crate) is_output: Vec<bool>,
    pub(crate) sources: Vec<TaskIdx>,
    pub(crate) sinks: usize,
    pub(crate) extras: BTreeMap<u32, TaskExtras>,
    /// Whether any task has a guard (so that some task may be skipped), on first ask.
    pub(crate) guarded: OnceLock<bool>,
}

impl Serialize for Dag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        super::link::StoredRef::of(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Dag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        super::link::Stored::deserialize(d)?
            .into_dag()
            .map_err(serde::de::Error::custom)
    }
}

impl Dag {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn edge_count(&self) -> usize {
        self.deps.len()
    }
    pub fn id(&self, t: TaskIdx) -> &TaskId {
        &self.ids[t.get()]
    }
    pub fn ids(&self) -> &[TaskId] {
        &self.ids
    }
    pub fn lookup(&self, id: &str) -> Option<TaskIdx> {
        self.index
            .get_or_init(|| {
                self.ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (id.clone(), TaskIdx(i as u32)))
                    .collect()
            })
            .get(id)
            .copied()
    }
    pub fn func_name(&self, t: TaskIdx) -> &str {
        &self.funcs[self.task_func[t.get()] as usize]
    }
    /// Index of `t`'s function in [`Dag::funcs`].
    #[inline]
    pub fn func_of(&self, t: TaskIdx) -> usize {
        self.task_func[t.get()] as usize
    }
    /// The distinct function names used by this DAG.
    pub fn funcs(&self) -> &[String] {
        &self.funcs
    }
    #[inline]
    pub fn args(&self, t: TaskIdx) -> &[Value] {
        &self.args[t.get()]
    }
    #[inline]
    pub fn deps(&self, t: TaskIdx) -> &[TaskIdx] {
        let i = t.get();
        &self.deps[self.dep_off[i] as usize..self.dep_off[i + 1] as usize]
    }
    /// Distinct dependencies a fan-in waits for.
    #[inline]
    pub fn needed(&self, t: TaskIdx) -> u32 {
        self.needed[t.get()]
    }
    #[inline]
    pub fn children(&self, t: TaskIdx) -> &[Child] {
        let i = t.get();
        &self.children[self.child_off[i] as usize..self.child_off[i + 1] as usize]
    }
    #[inline]
    pub fn out_degree(&self, t: TaskIdx) -> usize {
        let i = t.get();
        (self.child_off[i + 1] - self.child_off[i]) as usize
    }
    #[inline]
    pub fn is_sink(&self, t: TaskIdx) -> bool {
        self.out_degree(t) == 0
    }
    #[inline]
    pub fn is_output(&self, t: TaskIdx) -> bool {
        self.is_output[t.get()]
    }
    pub fn outputs(&self) -> &[TaskIdx] {
        &self.outputs
    }
    pub fn sources(&self) -> &[TaskIdx] {
        &self.sources
    }
    pub fn sink_count(&self) -> usize {
        self.sinks
    }
    pub fn extras(&self, t: TaskIdx) -> Option<&TaskExtras> {
        if self.extras.is_empty() {
            return None;
        }
        self.extras.get(&t.0)
    }
    /// Whether some task has a guard: only then can a task be skipped
    /// (`docs/conditional-branches.md`). Every skip-related path of the walk is behind this test,
    /// so unconditional DAGs pay nothing.
    #[inline]
    pub fn has_guards(&self) -> bool {
        *self
            .guarded
            .get_or_init(|| self.extras.values().any(|e| e.guard.is_some()))
    }
    /// The task's guard, if it has one.
    #[inline]
    pub fn guard(&self, t: TaskIdx) -> Option<&Guard> {
        self.extras(t).and_then(|e| e.guard.as_ref())
    }
    /// The executor class that runs the task: `gpu` when it asks for a GPU.
    #[inline]
    pub fn class(&self, t: TaskIdx) -> crate::ids::ExecClass {
        match self.extras(t).and_then(|e| e.resources.as_ref()) {
            Some(r) if r.gpu > 0 => crate::ids::ExecClass::Gpu,
            _ => crate::ids::ExecClass::Cpu,
        }
    }
    /// How the task joins skipped dependencies (default [`Join::All`]).
    #[inline]
    pub fn join(&self, t: TaskIdx) -> Join {
        self.extras(t).and_then(|e| e.join).unwrap_or_default()
    }
    pub fn all_extras(&self) -> impl Iterator<Item = (TaskIdx, &TaskExtras)> {
        self.extras.iter().map(|(k, v)| (TaskIdx(*k), v))
    }
    pub fn tasks(&self) -> impl ExactSizeIterator<Item = TaskIdx> + use<> {
        (0..self.ids.len() as u32).map(TaskIdx)
    }

    /// A topological order (Kahn's algorithm, sources in index order).
    pub fn topo_order(&self) -> Vec<TaskIdx> {
        let n = self.len();
        let mut indeg: Vec<u32> = self.needed.clone();
        let mut order: Vec<TaskIdx> = self.sources.clone();
        order.reserve(n - order.len());
        let mut head = 0;
        while head < order.len() {
            let t = order[head];
            head += 1;
            for c in self.children(t) {
                let d = &mut indeg[c.task.get()];
                *d -= 1;
                if *d == 0 {
                    order.push(c.task);
                }
            }
        }
        order
    }

    pub fn to_msgpack(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub fn from_msgpack(bytes: &[u8]) -> Result<Dag, rmp_serde::decode::Error> {
        crate::msgpack::from_slice(bytes)
    }
}

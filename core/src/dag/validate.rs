//! Validation: a [`DagSpec`] becomes a [`Dag`], or an error that names the offending task.
//!
//! Every check is iterative and linear in tasks plus edges, so a 1,000,000-task chain (or a
//! cycle through all of it) validates in well under a second.

use crate::dag::compiled::{Dag, TaskExtras};
use crate::dag::spec::{DagSpec, TaskSpec};
use crate::error::DagError;
use crate::ids::{TaskId, TaskIdx};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap};

/// Size limits on what a DAG may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most tasks in one DAG (default 10,000,000).
    pub max_tasks: usize,
    /// Most bytes of `args` on one task (default 1 MiB): args travel inside the stored DAG,
    /// so bulk data belongs in a task's output, not its arguments.
    pub max_arg_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tasks: 10_000_000,
            max_arg_bytes: 1 << 20,
        }
    }
}

/// At most this many problems are reported at once.
const MAX_REPORTED: usize = 20;

/// Checks `spec` and compiles it. `known_fn` says whether a function name is registered.
pub fn validate(
    spec: DagSpec,
    limits: &Limits,
    known_fn: &dyn Fn(&str) -> bool,
) -> Result<Dag, DagError> {
    let n = spec.tasks.len();
    if n == 0 {
        return Err(DagError::Empty);
    }
    if n > limits.max_tasks {
        return Err(DagError::TooManyTasks {
            count: n,
            max: limits.max_tasks,
        });
    }
    if n >= u32::MAX as usize {
        return Err(DagError::TooManyTasks {
            count: n,
            max: u32::MAX as usize - 1,
        });
    }
    let mut errors = Vec::new();
    let push = |errors: &mut Vec<DagError>, e| {
        if errors.len() < MAX_REPORTED {
            errors.push(e)
        }
    };

    // Ids: characters, then uniqueness.
    let mut index: FxHashMap<&str, TaskIdx> =
        FxHashMap::with_capacity_and_hasher(n, Default::default());
    for (i, t) in spec.tasks.iter().enumerate() {
        if let Err(reason) = check_id(t.id.as_str()) {
            push(
                &mut errors,
                DagError::BadId {
                    index: i,
                    id: t.id.to_string(),
                    reason,
                },
            );
            continue;
        }
        if let Some(first) = index.insert(t.id.as_str(), TaskIdx(i as u32)) {
            push(
                &mut errors,
                DagError::DuplicateId {
                    id: t.id.clone(),
                    first: first.get(),
                    second: i,
                },
            );
            index.insert(t.id.as_str(), first);
        }
    }

    // Functions, args, dependencies.
    let mut funcs: Vec<String> = Vec::new();
    let mut func_index: FxHashMap<String, u32> = FxHashMap::default();
    let mut task_func = Vec::with_capacity(n);
    let mut dep_off = Vec::with_capacity(n + 1);
    let mut deps: Vec<TaskIdx> = Vec::with_capacity(n);
    dep_off.push(0u32);
    for t in &spec.tasks {
        let f = match func_index.get(t.func.as_str()) {
            Some(&f) => f,
            None => {
                if !known_fn(&t.func) {
                    push(
                        &mut errors,
                        DagError::UnknownFunction {
                            task: t.id.clone(),
                            func: t.func.clone(),
                        },
                    );
                }
                let f = funcs.len() as u32;
                funcs.push(t.func.clone());
                func_index.insert(t.func.clone(), f);
                f
            }
        };
        task_func.push(f);
        if !t.args.is_empty() {
            let size: usize = t.args.iter().map(|a| a.approx_size()).sum();
            if size > limits.max_arg_bytes {
                push(
                    &mut errors,
                    DagError::ArgsTooLarge {
                        task: t.id.clone(),
                        size,
                        max: limits.max_arg_bytes,
                    },
                );
            }
        }
        for d in &t.deps {
            match index.get(d.as_str()) {
                Some(&di) => deps.push(di),
                None => push(
                    &mut errors,
                    DagError::UnknownDep {
                        task: t.id.clone(),
                        dep: d.clone(),
                    },
                ),
            }
        }
        if deps.len() >= u32::MAX as usize {
            return Err(DagError::TooManyTasks {
                count: deps.len(),
                max: u32::MAX as usize - 1,
            });
        }
        dep_off.push(deps.len() as u32);
        check_options(t, &mut errors);
    }

    let outputs_spec = spec.outputs.clone();
    if let Some(outs) = &outputs_spec {
        for o in outs {
            if !index.contains_key(o.as_str()) {
                push(&mut errors, DagError::UnknownOutput { id: o.clone() });
            }
        }
    }
    if !errors.is_empty() {
        return Err(if errors.len() == 1 {
            errors.pop().unwrap_or(DagError::Empty)
        } else {
            DagError::Many(errors)
        });
    }

    let super::link::Linked {
        needed,
        child_off,
        children,
        sources,
        out_count,
    } = super::link::link(n, &dep_off, &deps);

    let outputs: Vec<TaskIdx> = match &outputs_spec {
        Some(outs) => outs
            .iter()
            .filter_map(|o| index.get(o.as_str()).copied())
            .collect(),
        None => (0..n as u32)
            .map(TaskIdx)
            .filter(|t| out_count[t.get()] == 0)
            .collect(),
    };
    drop(index);
    let sinks = (0..n).filter(|&t| out_count[t] == 0).count();

    let mut extras = BTreeMap::new();
    for (i, t) in spec.tasks.iter().enumerate() {
        if t.retries.is_some()
            || t.timeout_ms.is_some()
            || t.resources.is_some()
            || t.guard.is_some()
            || t.join.is_some()
        {
            extras.insert(
                i as u32,
                TaskExtras {
                    retries: t.retries.unwrap_or(0),
                    timeout_ms: t.timeout_ms,
                    resources: t.resources.clone(),
                    guard: t.guard.clone(),
                    join: t.join,
                },
            );
        }
    }

    let (ids, args): (Vec<TaskId>, Vec<_>) = spec.tasks.into_iter().map(|t| (t.id, t.args)).unzip();
    let mut dag = Dag {
        name: spec.name,
        ids,
        index: Default::default(),
        funcs,
        task_func,
        args,
        dep_off,
        deps,
        needed,
        child_off,
        children,
        is_output: vec![false; n],
        outputs,
        sources,
        sinks,
        extras,
        guarded: Default::default(),
    };
    find_cycle(&dag)?;
    for &o in &dag.outputs.clone() {
        dag.is_output[o.get()] = true;
    }
    Ok(dag)
}

/// An id is 1 to 128 characters from `[A-Za-z0-9_.-]`.
pub fn check_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("ids must not be empty");
    }
    if id.len() > 128 {
        return Err("ids are at most 128 characters");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err("ids use only the characters A-Z a-z 0-9 _ . -");
    }
    Ok(())
}

fn check_options(t: &TaskSpec, errors: &mut Vec<DagError>) {
    if let Some(g) = &t.guard
        && !t.deps.contains(&g.dep)
        && errors.len() < MAX_REPORTED
    {
        errors.push(DagError::Unsupported {
            task: t.id.clone(),
            message: format!(
                "guard.dep {:?} is not one of its deps ({})",
                g.dep.as_str(),
                if t.deps.is_empty() {
                    "it has none".to_owned()
                } else {
                    t.deps
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        });
    }
}

/// Kahn's algorithm; if some tasks are never freed, walks dependencies from one of them
/// until a task repeats, and reports that cycle.
fn find_cycle(dag: &Dag) -> Result<(), DagError> {
    let n = dag.len();
    let order = dag.topo_order();
    if order.len() == n {
        return Ok(());
    }
    let mut done = vec![false; n];
    for t in &order {
        done[t.get()] = true;
    }
    let start = (0..n).find(|&t| !done[t]).unwrap_or(0);
    // Every unfinished task has an unfinished dependency, so this walk must repeat.
    let mut step_of: HashMap<usize, usize> = HashMap::new();
    let mut path: Vec<usize> = Vec::new();
    let mut cur = start;
    loop {
        if let Some(&k) = step_of.get(&cur) {
            let cycle = &path[k..];
            let names: Vec<&str> = cycle
                .iter()
                .map(|&t| dag.ids[t].as_str())
                .chain(std::iter::once(dag.ids[cur].as_str()))
                .collect();
            let path = if names.len() > 12 {
                format!(
                    "{} needs … ({} tasks) … needs {}",
                    names[..6].join(" needs "),
                    names.len() - 1,
                    names[names.len() - 6..].join(" needs ")
                )
            } else {
                names.join(" needs ")
            };
            return Err(DagError::Cycle {
                task: dag.ids[cur].clone(),
                path,
            });
        }
        step_of.insert(cur, path.len());
        path.push(cur);
        match dag
            .deps(TaskIdx(cur as u32))
            .iter()
            .find(|d| !done[d.get()])
        {
            Some(d) => cur = d.get(),
            None => {
                // Unreachable for a consistent Dag; report the task rather than loop.
                return Err(DagError::Cycle {
                    task: dag.ids[cur].clone(),
                    path: dag.ids[cur].to_string(),
                });
            }
        }
    }
}

//! Building the DAG from the normalized tasks: options, ids, the blob and sleep tasks of
//! each WfCommons task, topological order and cycle errors.

use super::*;

pub(super) fn check_options(opts: &ImportOptions) -> Result<(), ImportError> {
    for (name, v) in [
        ("time_scale", opts.time_scale),
        ("size_scale", opts.size_scale),
    ] {
        if !v.is_finite() || v < 0.0 {
            return Err(ImportError::BadOptions(format!(
                "{name} is {v}: expected a finite number ≥ 0"
            )));
        }
    }
    Ok(())
}

pub(super) fn build(
    name: String,
    tasks: Vec<WfTask>,
    opts: &ImportOptions,
) -> Result<(DagSpec, Vec<ImportedTask>), ImportError> {
    if tasks.is_empty() {
        return Err(ImportError::NoTasks);
    }
    let n = tasks.len();
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
    for (i, t) in tasks.iter().enumerate() {
        if index.insert(t.id.as_str(), i).is_some() {
            return Err(ImportError::DuplicateTask { task: t.id.clone() });
        }
    }

    // Edges: parents as listed, then those known only from a child list.
    let mut parents: Vec<Vec<usize>> = Vec::with_capacity(n);
    for t in &tasks {
        let mut ps = Vec::with_capacity(t.parents.len());
        for p in &t.parents {
            let &pi = index
                .get(p.as_str())
                .ok_or_else(|| ImportError::UnknownParent {
                    task: t.id.clone(),
                    parent: p.clone(),
                })?;
            if !ps.contains(&pi) {
                ps.push(pi);
            }
        }
        parents.push(ps);
    }
    for (i, t) in tasks.iter().enumerate() {
        for c in &t.children {
            let &ci = index
                .get(c.as_str())
                .ok_or_else(|| ImportError::UnknownChild {
                    task: t.id.clone(),
                    child: c.clone(),
                })?;
            if !parents[ci].contains(&i) {
                parents[ci].push(i);
            }
        }
    }
    if let Err(stuck) = topo_order(n, parents.iter().map(Vec::as_slice)) {
        return Err(cycle_error(&tasks, &parents, &stuck));
    }

    // Scaled numbers.
    let cap = opts.max_blob.min(BLOB_LIMIT) as f64;
    let mut scaled = Vec::with_capacity(n);
    for t in &tasks {
        let runtime = t.runtime.clone()?;
        let ms = (runtime * 1000.0 * opts.time_scale).round();
        if ms > MAX_MS as f64 {
            return Err(ImportError::RuntimeTooLong {
                task: t.id.clone(),
                ms,
            });
        }
        let bytes = (t.output_bytes * opts.size_scale).round().min(cap);
        scaled.push((runtime, ms as u64, bytes as u64));
    }

    // Ids: the valid WfCommons ids first (they are distinct), so that they keep their
    // names; then the sanitized ones; then the blobs.
    let mut taken: HashSet<String> = HashSet::with_capacity(2 * n);
    let mut ids: Vec<Option<TaskId>> = vec![None; n];
    for (i, t) in tasks.iter().enumerate() {
        if check_id(&t.id).is_ok() {
            taken.insert(t.id.clone());
            ids[i] = Some(TaskId::new(t.id.clone()));
        }
    }
    let ids: Vec<TaskId> = tasks
        .iter()
        .zip(ids)
        .map(|(t, id)| id.unwrap_or_else(|| TaskId::new(unique(&sanitize(&t.id), "", &mut taken))))
        .collect();
    let blob_ids: Vec<TaskId> = ids
        .iter()
        .map(|id| TaskId::new(unique(id.as_str(), ".blob", &mut taken)))
        .collect();

    let func = opts.mode.func();
    let mut specs = Vec::with_capacity(2 * n);
    let mut imported = Vec::with_capacity(n);
    for (i, (t, ps)) in tasks.into_iter().zip(parents).enumerate() {
        let (runtime_s, ms, blob_bytes) = scaled[i];
        specs.push(TaskSpec {
            id: blob_ids[i].clone(),
            func: "blob".to_owned(),
            args: vec![Value::Int(blob_bytes as i64), Value::Int(i as i64)],
            ..Default::default()
        });
        let mut deps = Vec::with_capacity(ps.len() + 1);
        deps.push(blob_ids[i].clone());
        deps.extend(ps.iter().map(|&p| ids[p].clone()));
        specs.push(TaskSpec {
            id: ids[i].clone(),
            func: func.to_owned(),
            deps,
            args: vec![Value::Int(ms as i64)],
            ..Default::default()
        });
        imported.push(ImportedTask {
            wf_id: t.id,
            id: ids[i].clone(),
            blob_id: blob_ids[i].clone(),
            runtime_s,
            ms,
            output_bytes: t.output_bytes,
            blob_bytes,
            parents: ps,
        });
    }
    Ok((
        DagSpec {
            name,
            tasks: specs,
            outputs: None,
        },
        imported,
    ))
}

/// Kahn's algorithm over `deps` (each task's dependencies). `Err` holds the tasks that a
/// cycle keeps from ever being ready.
pub(super) fn topo_order<'a>(
    n: usize,
    deps: impl Iterator<Item = &'a [usize]>,
) -> Result<Vec<usize>, Vec<usize>> {
    let mut needed = vec![0usize; n];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.enumerate() {
        needed[i] = ds.len();
        for &d in ds {
            children[d].push(i);
        }
    }
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| needed[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(t) = ready.pop_front() {
        order.push(t);
        for &c in &children[t] {
            needed[c] -= 1;
            if needed[c] == 0 {
                ready.push_back(c);
            }
        }
    }
    if order.len() == n {
        Ok(order)
    } else {
        Err((0..n).filter(|&i| needed[i] > 0).collect())
    }
}

/// Walks parents from a stuck task until one repeats, and reports that cycle.
fn cycle_error(tasks: &[WfTask], parents: &[Vec<usize>], stuck: &[usize]) -> ImportError {
    let stuck_set: HashSet<usize> = stuck.iter().copied().collect();
    let mut step_of: HashMap<usize, usize> = HashMap::new();
    let mut path: Vec<usize> = Vec::new();
    let mut cur = stuck[0];
    loop {
        if let Some(&k) = step_of.get(&cur) {
            let mut names: Vec<&str> = path[k..].iter().map(|&t| tasks[t].id.as_str()).collect();
            names.push(tasks[cur].id.as_str());
            return ImportError::Cycle {
                task: tasks[cur].id.clone(),
                path: names.join(" needs "),
            };
        }
        step_of.insert(cur, path.len());
        path.push(cur);
        // Every stuck task has a stuck parent.
        match parents[cur].iter().find(|p| stuck_set.contains(p)) {
            Some(&p) => cur = p,
            None => {
                return ImportError::Cycle {
                    task: tasks[cur].id.clone(),
                    path: tasks[cur].id.clone(),
                };
            }
        }
    }
}

/// `[A-Za-z0-9_.-]` kept, anything else `_`; empty becomes `task`; at most 128 characters.
fn sanitize(id: &str) -> String {
    let mut s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        s.push_str("task");
    }
    s.truncate(128);
    s
}

/// `stem + suffix` if free, else `stem-2 + suffix`, `stem-3 + suffix`, …, with `stem` cut so
/// that the result fits in 128 characters; records the result as taken. Both are ASCII.
fn unique(stem: &str, suffix: &str, taken: &mut HashSet<String>) -> String {
    let fit = |tail: &str| {
        let keep = stem.len().min(128 - tail.len());
        format!("{}{tail}", &stem[..keep])
    };
    let mut candidate = fit(suffix);
    let mut k = 2u64;
    while taken.contains(&candidate) {
        candidate = fit(&format!("-{k}{suffix}"));
        k += 1;
    }
    debug_assert!(check_id(&candidate).is_ok(), "{candidate:?}");
    taken.insert(candidate.clone());
    candidate
}

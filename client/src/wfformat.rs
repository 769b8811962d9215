//! WfCommons import: a [WfFormat](https://github.com/wfcommons/WfFormat) workflow instance
//! (the JSON that the `wfcommons` Python package writes) becomes a rukong [`DagSpec`] that
//! replays its shape, its task runtimes and its data sizes with the built-ins.
//!
//! # The mapping
//!
//! Every WfCommons task `T` becomes exactly two rukong tasks:
//!
//! | rukong task | fn | deps | args | output |
//! |---|---|---|---|---|
//! | `<T>.blob` | `blob` | none | `[n, seed]` | `n` bytes |
//! | `<T>` | `sleep` (or `spin`) | `[<T>.blob, <P1>, <P2>, …]` | `[ms]` | its first input: the blob |
//!
//! where `<P1>, <P2>, …` are the rukong ids of `T`'s parents, and
//!
//! - `ms = round(runtimeInSeconds × 1000 × time_scale)`: with the default `time_scale` of
//!   0.001, one second of the instance is one millisecond;
//! - `n = min(round(S × size_scale), max_blob, 1 GiB)`, where `S` is the total size in bytes
//!   of `T`'s distinct output files;
//! - `seed` is `T`'s position in the instance's task list (`blob` takes it modulo 256).
//!
//! Why this shape: `blob(n, seed)` must have exactly its two args as inputs, so it cannot
//! depend on anything, and `sleep`/`spin` return their *first* dependency's output. So the
//! blob is a source, and `<T>` waits for it and for every parent, sleeps `ms`, and passes the
//! blob on as its own output. The output of `<T>` is therefore a blob of `T`'s output size, and
//! every edge `P → T` carries `P`'s blob to `T` (which drops it). The blob tasks run at the
//! start of the job, off the critical path, and are cheap. Every `<T>.blob` has a
//! child, so the job's outputs (its sinks) are exactly the `<T>` of WfCommons's exit tasks.
//!
//! **Dependencies.** `P → T` when `T` lists `P` in `parents` *or* `P` lists `T` in
//! `children` (an instance may declare an edge on one end only). The deps of `<T>` are
//! `<T>.blob`, then `T`'s `parents` in their listed order, then parents known only from a
//! `children` list, in instance order; repeats are dropped.
//!
//! **Ids.** A WfCommons id that is a valid rukong id (1–128 characters of `[A-Za-z0-9_.-]`)
//! is kept. Otherwise every other character becomes `_`, an empty id becomes `task`, and the
//! id is cut to 128 characters; if that clashes with a task already named, `-2`, `-3`, … is
//! appended (the id cut shorter to fit). Valid WfCommons ids are assigned first, then the
//! sanitized ones in instance order, then the blob ids (`<T>.blob`, or `<T>-2.blob`, … on a
//! clash), so a valid WfCommons id always keeps its name. [`import_detailed`] returns the
//! mapping ([`Imported::renamed`]).
//!
//! # Format versions
//!
//! - **WfFormat 1.5 and 1.6** (what current `wfcommons` writes; 1.6 for wfcommons 1.6):
//!   `workflow.specification.tasks[]` with `id`, `parents`, `children` (task ids) and
//!   `outputFiles` (file ids); `workflow.specification.files[]` with `id` and `sizeInBytes`;
//!   `workflow.execution.tasks[]` with `id` and `runtimeInSeconds`. A duplicate file id
//!   keeps its first size (as `wfcommons` does).
//! - **WfFormat 1.0 to 1.4** (older WfCommons/WorkflowHub instances): `workflow.tasks[]`
//!   (`workflow.jobs[]` before 1.3), each with `name`, an optional `id`, `parents` and
//!   `children` (task names, or ids), `runtimeInSeconds` (`runtime` before 1.4), and inline
//!   `files[]` with `link` (`input`/`output`) and `sizeInBytes` (`size` before 1.4, also
//!   bytes). The task's WfCommons id is its `name`, which these versions use for references.
//!
//! The layout decides, not `schemaVersion`. Unknown fields are ignored.
//!
//! # Errors
//!
//! Every problem is an [`ImportError`] that names the task: no tasks, a duplicate task id,
//! an unknown parent or child, a cycle (with its path), a task with no runtime (no
//! `execution` section, no entry, or no `runtimeInSeconds`), a negative or non-finite
//! runtime, a scaled runtime over 24 h (the limit of `sleep`), an unknown output file, a
//! file without a valid size, and options that are negative or not finite.

use rukong_core::dag::{DagSpec, TaskSpec, check_id};
use rukong_core::{TaskId, Value};
use serde::{Deserialize, Deserializer};
use std::collections::{HashMap, HashSet, VecDeque};
use thiserror::Error;

/// The largest blob the importer writes whatever `max_blob` says: `blob`'s own limit.
pub const BLOB_LIMIT: usize = 1 << 30;

/// The longest `sleep`/`spin` the importer writes: the built-ins' limit, 24 h.
pub const MAX_MS: u64 = 24 * 60 * 60 * 1000;

/// What each imported task does with its runtime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// `sleep(ms)`: waits without using a CPU.
    #[default]
    Sleep,
    /// `spin(ms)`: burns one CPU for `ms`.
    Spin,
}

impl Mode {
    /// The built-in function's name.
    pub fn func(self) -> &'static str {
        match self {
            Mode::Sleep => "sleep",
            Mode::Spin => "spin",
        }
    }
}

/// How runtimes and sizes are scaled.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportOptions {
    /// Milliseconds of `sleep`/`spin` per millisecond of the instance's `runtimeInSeconds`
    /// (default 0.001: one second of the instance becomes one millisecond).
    pub time_scale: f64,
    /// Blob bytes per byte of the task's output files (default 1e-3).
    pub size_scale: f64,
    /// `sleep` or `spin` (default `sleep`).
    pub mode: Mode,
    /// The largest blob a task outputs, in bytes (default 16 MiB; never more than 1 GiB).
    pub max_blob: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            time_scale: 0.001,
            size_scale: 1e-3,
            mode: Mode::Sleep,
            max_blob: 16 << 20,
        }
    }
}

/// Why an instance could not be imported.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum ImportError {
    #[error("not a WfFormat instance: JSON line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "not a WfFormat instance: `workflow` has neither `specification` (WfFormat 1.5+) nor \
         `tasks`/`jobs` (WfFormat 1.0-1.4)"
    )]
    UnknownLayout,
    #[error("the instance has no tasks")]
    NoTasks,
    #[error("task {task:?} is declared more than once")]
    DuplicateTask { task: String },
    #[error("task {task:?} lists parent {parent:?}, which is not a task of the instance")]
    UnknownParent { task: String, parent: String },
    #[error("task {task:?} lists child {child:?}, which is not a task of the instance")]
    UnknownChild { task: String, child: String },
    #[error("the dependencies form a cycle through task {task:?}: {path}")]
    Cycle { task: String, path: String },
    #[error(
        "the instance has no `workflow.execution` section, so no task has a runtime \
         (task {task:?} for one)"
    )]
    NoExecution { task: String },
    #[error("task {task:?} has no runtime (no execution entry with `runtimeInSeconds`)")]
    MissingRuntime { task: String },
    #[error("task {task:?} has more than one execution entry")]
    DuplicateExecution { task: String },
    #[error("the execution section has an entry for {task:?}, which is not a task")]
    UnknownExecutionTask { task: String },
    #[error("task {task:?} has runtime {runtime} s: expected a finite number ≥ 0")]
    BadRuntime { task: String, runtime: f64 },
    #[error("task {task:?}: its scaled runtime {ms} ms is over the 24 h limit of sleep/spin")]
    RuntimeTooLong { task: String, ms: f64 },
    #[error(
        "task {task:?} lists output file {file:?}, which is not in workflow.specification.files"
    )]
    UnknownFile { task: String, file: String },
    #[error("file {file:?} has no valid size ({size}): expected a finite number of bytes ≥ 0")]
    BadFileSize { file: String, size: String },
    #[error("bad import options: {0}")]
    BadOptions(String),
}

/// One WfCommons task and what it became.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedTask {
    /// The WfCommons id (the `name` in WfFormat 1.0–1.4).
    pub wf_id: String,
    /// The rukong task that sleeps/spins and outputs the blob.
    pub id: TaskId,
    /// The rukong task that makes the blob.
    pub blob_id: TaskId,
    /// The instance's runtime in seconds.
    pub runtime_s: f64,
    /// The scaled runtime: the `sleep`/`spin` argument.
    pub ms: u64,
    /// The total size of the task's distinct output files, in bytes.
    pub output_bytes: f64,
    /// The blob's size: the scaled, capped output size.
    pub blob_bytes: u64,
    /// Parents, as indices into [`Imported::tasks`], in dependency order.
    pub parents: Vec<usize>,
}

/// An import with its bookkeeping.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    pub spec: DagSpec,
    /// The instance's tasks, in instance order.
    pub tasks: Vec<ImportedTask>,
    /// The instance's `schemaVersion`, if it has one.
    pub schema_version: Option<String>,
    /// Whether the instance is in the 1.5+ layout (`specification`/`execution`) rather than
    /// the 1.0–1.4 one.
    pub split_layout: bool,
}

impl Imported {
    /// The longest path, summing the scaled runtimes (ms), over the instance's dependencies.
    pub fn critical_path_ms(&self) -> u64 {
        let mut finish = vec![0u64; self.tasks.len()];
        // Parents always come earlier in a topological order; compute one.
        let order = topo_order(
            self.tasks.len(),
            self.tasks.iter().map(|t| t.parents.as_slice()),
        )
        .unwrap_or_default();
        for i in order {
            let t = &self.tasks[i];
            let start = t.parents.iter().map(|&p| finish[p]).max().unwrap_or(0);
            finish[i] = start + t.ms;
        }
        finish.into_iter().max().unwrap_or(0)
    }

    /// The WfCommons → rukong id mapping, one `wf_id → id` pair per task whose id changed.
    pub fn renamed(&self) -> impl Iterator<Item = (&str, &TaskId)> {
        self.tasks
            .iter()
            .filter(|t| t.wf_id != t.id.as_str())
            .map(|t| (t.wf_id.as_str(), &t.id))
    }
}

/// Turns a WfFormat instance into a DAG (see the module docs for the mapping).
pub fn import(json_text: &str, opts: &ImportOptions) -> Result<DagSpec, ImportError> {
    import_detailed(json_text, opts).map(|i| i.spec)
}

/// As [`import`], with the id mapping and each task's scaled numbers.
pub fn import_detailed(json_text: &str, opts: &ImportOptions) -> Result<Imported, ImportError> {
    check_options(opts)?;
    let instance: Instance = serde_json::from_str(json_text).map_err(|e| ImportError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let schema_version = instance.schema_version.map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    });
    let name = instance
        .name
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "wfformat".to_owned());
    let w = instance.workflow;
    let (split_layout, tasks) = if let Some(spec) = w.specification {
        (true, normalize_current(spec, w.execution)?)
    } else if let Some(tasks) = w.tasks.or(w.jobs) {
        (false, normalize_legacy(tasks)?)
    } else {
        return Err(ImportError::UnknownLayout);
    };
    build(name, tasks, opts).map(|(spec, tasks)| Imported {
        spec,
        tasks,
        schema_version,
        split_layout,
    })
}

/// The longest path through a DAG, in ms: each `sleep`/`spin` task whose last arg is a
/// non-negative integer weighs that many ms, every other task 0. `None` when a dependency is
/// unknown or the dependencies form a cycle.
pub fn critical_path_ms(spec: &DagSpec) -> Option<u64> {
    let index: HashMap<&str, usize> = spec
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let deps: Vec<Vec<usize>> = spec
        .tasks
        .iter()
        .map(|t| {
            t.deps
                .iter()
                .map(|d| index.get(d.as_str()).copied())
                .collect::<Option<Vec<_>>>()
        })
        .collect::<Option<_>>()?;
    let order = topo_order(spec.tasks.len(), deps.iter().map(Vec::as_slice)).ok()?;
    let weight = |t: &TaskSpec| match (t.func.as_str(), t.args.last()) {
        ("sleep" | "spin", Some(Value::Int(ms))) if *ms >= 0 => *ms as u64,
        _ => 0,
    };
    let mut finish = vec![0u64; spec.tasks.len()];
    for i in order {
        let start = deps[i].iter().map(|&d| finish[d]).max().unwrap_or(0);
        finish[i] = start + weight(&spec.tasks[i]);
    }
    Some(finish.into_iter().max().unwrap_or(0))
}

// ----------------------------------------------------------------------------------------
// The format
// ----------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Instance {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "schemaVersion")]
    schema_version: Option<serde_json::Value>,
    workflow: WorkflowJson,
}

#[derive(Deserialize)]
struct WorkflowJson {
    #[serde(default)]
    specification: Option<Specification>,
    #[serde(default)]
    execution: Option<Execution>,
    /// WfFormat 1.3–1.4.
    #[serde(default)]
    tasks: Option<Vec<LegacyTask>>,
    /// WfFormat 1.0–1.2.
    #[serde(default)]
    jobs: Option<Vec<LegacyTask>>,
}

#[derive(Deserialize)]
struct Specification {
    #[serde(default, deserialize_with = "vec_or_null")]
    tasks: Vec<SpecTask>,
    #[serde(default, deserialize_with = "vec_or_null")]
    files: Vec<SpecFile>,
}

#[derive(Deserialize)]
struct SpecTask {
    id: String,
    #[serde(default, deserialize_with = "vec_or_null")]
    parents: Vec<String>,
    #[serde(default, deserialize_with = "vec_or_null")]
    children: Vec<String>,
    #[serde(default, rename = "outputFiles", deserialize_with = "vec_or_null")]
    output_files: Vec<String>,
}

#[derive(Deserialize)]
struct SpecFile {
    id: String,
    #[serde(default, rename = "sizeInBytes")]
    size_in_bytes: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Execution {
    #[serde(default, deserialize_with = "vec_or_null")]
    tasks: Vec<ExecTask>,
}

#[derive(Deserialize)]
struct ExecTask {
    id: String,
    #[serde(default, rename = "runtimeInSeconds")]
    runtime_in_seconds: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LegacyTask {
    name: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "vec_or_null")]
    parents: Vec<String>,
    #[serde(default, deserialize_with = "vec_or_null")]
    children: Vec<String>,
    #[serde(default, deserialize_with = "vec_or_null")]
    files: Vec<LegacyFile>,
    #[serde(default, rename = "runtimeInSeconds")]
    runtime_in_seconds: Option<serde_json::Value>,
    #[serde(default)]
    runtime: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LegacyFile {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default, rename = "sizeInBytes")]
    size_in_bytes: Option<serde_json::Value>,
    #[serde(default)]
    size: Option<serde_json::Value>,
}

/// A list that may also be written as `null`.
fn vec_or_null<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

// ----------------------------------------------------------------------------------------
// Normalizing both layouts
// ----------------------------------------------------------------------------------------

/// One task, whatever the layout: references still by WfCommons id.
struct WfTask {
    id: String,
    parents: Vec<String>,
    children: Vec<String>,
    runtime: Result<f64, ImportError>,
    output_bytes: f64,
}

/// A JSON number as f64; anything else (a string, null, …) is `None`.
fn number(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
}

fn file_size(file: &str, v: Option<&serde_json::Value>) -> Result<f64, ImportError> {
    match v.and_then(number) {
        Some(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(ImportError::BadFileSize {
            file: file.to_owned(),
            size: v.map_or_else(|| "missing".to_owned(), |v| v.to_string()),
        }),
    }
}

fn runtime_of(task: &str, v: Option<&serde_json::Value>) -> Result<f64, ImportError> {
    match v {
        None | Some(serde_json::Value::Null) => Err(ImportError::MissingRuntime {
            task: task.to_owned(),
        }),
        Some(v) => match number(v) {
            Some(r) if r.is_finite() && r >= 0.0 => Ok(r),
            Some(r) => Err(ImportError::BadRuntime {
                task: task.to_owned(),
                runtime: r,
            }),
            None => Err(ImportError::BadRuntime {
                task: task.to_owned(),
                runtime: f64::NAN,
            }),
        },
    }
}

/// WfFormat 1.5+: `specification` + `execution`.
fn normalize_current(
    spec: Specification,
    execution: Option<Execution>,
) -> Result<Vec<WfTask>, ImportError> {
    let mut sizes: HashMap<&str, f64> = HashMap::with_capacity(spec.files.len());
    for f in &spec.files {
        // A repeated file id keeps its first size, as wfcommons does; a bad size is an
        // error only where a task outputs the file.
        sizes
            .entry(f.id.as_str())
            .or_insert_with(|| file_size(&f.id, f.size_in_bytes.as_ref()).unwrap_or(f64::NAN));
    }
    let mut task_ids: HashSet<&str> = HashSet::with_capacity(spec.tasks.len());
    for t in &spec.tasks {
        if !task_ids.insert(t.id.as_str()) {
            return Err(ImportError::DuplicateTask { task: t.id.clone() });
        }
    }
    let mut runtimes: HashMap<&str, Result<f64, ImportError>> = HashMap::new();
    let has_execution = execution.is_some();
    if let Some(ex) = &execution {
        for e in &ex.tasks {
            if !task_ids.contains(e.id.as_str()) {
                return Err(ImportError::UnknownExecutionTask { task: e.id.clone() });
            }
            let r = runtime_of(&e.id, e.runtime_in_seconds.as_ref());
            if runtimes.insert(e.id.as_str(), r).is_some() {
                return Err(ImportError::DuplicateExecution { task: e.id.clone() });
            }
        }
    }
    let mut out = Vec::with_capacity(spec.tasks.len());
    for t in &spec.tasks {
        let mut seen = HashSet::new();
        let mut output_bytes = 0.0;
        for f in &t.output_files {
            if !seen.insert(f.as_str()) {
                continue;
            }
            match sizes.get(f.as_str()) {
                None => {
                    return Err(ImportError::UnknownFile {
                        task: t.id.clone(),
                        file: f.clone(),
                    });
                }
                Some(s) if s.is_nan() => {
                    let file = spec.files.iter().find(|x| x.id == *f);
                    return Err(file_size(f, file.and_then(|x| x.size_in_bytes.as_ref()))
                        .err()
                        .unwrap_or(ImportError::BadFileSize {
                            file: f.clone(),
                            size: "NaN".to_owned(),
                        }));
                }
                Some(s) => output_bytes += s,
            }
        }
        let runtime = if !has_execution {
            Err(ImportError::NoExecution { task: t.id.clone() })
        } else {
            runtimes
                .remove(t.id.as_str())
                .unwrap_or_else(|| Err(ImportError::MissingRuntime { task: t.id.clone() }))
        };
        out.push(WfTask {
            id: t.id.clone(),
            parents: t.parents.clone(),
            children: t.children.clone(),
            runtime,
            output_bytes,
        });
    }
    Ok(out)
}

/// WfFormat 1.0–1.4: `tasks` (or `jobs`) with inline files and runtimes, referring to each
/// other by name (or id).
fn normalize_legacy(tasks: Vec<LegacyTask>) -> Result<Vec<WfTask>, ImportError> {
    // References are names; an id (1.2+) also resolves, when it is no task's name.
    let names: HashSet<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    let mut alias: HashMap<String, String> = HashMap::new();
    for t in &tasks {
        let id = match &t.id {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        if !names.contains(id.as_str()) {
            alias.entry(id).or_insert_with(|| t.name.clone());
        }
    }
    let resolve = |r: &String| alias.get(r).cloned().unwrap_or_else(|| r.clone());
    let mut out = Vec::with_capacity(tasks.len());
    for t in &tasks {
        let mut seen = HashSet::new();
        let mut output_bytes = 0.0;
        for f in &t.files {
            if !f
                .link
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case("output"))
            {
                continue;
            }
            let file = format!(
                "{}{}",
                f.path.as_deref().unwrap_or(""),
                f.name.as_deref().unwrap_or("")
            );
            let size = file_size(&file, f.size_in_bytes.as_ref().or(f.size.as_ref()))?;
            if seen.insert(file) {
                output_bytes += size;
            }
        }
        out.push(WfTask {
            id: t.name.clone(),
            parents: t.parents.iter().map(resolve).collect(),
            children: t.children.iter().map(resolve).collect(),
            runtime: runtime_of(
                &t.name,
                t.runtime_in_seconds.as_ref().or(t.runtime.as_ref()),
            ),
            output_bytes,
        });
    }
    Ok(out)
}

// ----------------------------------------------------------------------------------------
// Building the DAG (in `build.rs`)
// ----------------------------------------------------------------------------------------

mod build;
use build::{build, check_options, topo_order};

#[cfg(test)]
mod tests;

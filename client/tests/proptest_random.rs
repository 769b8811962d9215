//! Property test: random DAGs over the built-in functions, run embedded with [`Local`], checked
//! against a plain sequential reference evaluator written here (it shares no code with the
//! executor's functions).
//!
//! Every generated DAG runs under two deployments:
//! - `default`: slots 2, the default inline limit (64 KiB) and proxy fan-out (F = 10);
//! - `stress`: slots 3, inline limit 16 bytes (nearly every output goes through the object
//!   store) and F = 2 (every fan-out goes through the proxy).
//!
//! The generator makes 1 to 60 tasks over const, identity, add, mul, concat, len, blob and
//! sha256; task i depends only on earlier tasks, so generation order is topological, and the
//! file order is then shuffled. Tasks are mostly well-typed (int / string / bytes); some DAGs
//! carry ill-typed tasks and some add/mul chains may overflow, so failures are exercised too.
//! Blobs are mostly tiny, some straddle the 64 KiB inline limit, a few reach 300 KB. Hubs and
//! wide layers make fan-outs and fan-ins of 10 or more.
//!
//! Cases: 64 by default; set `PROPTEST_CASES` to change it.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use rukong_client::{DagSpec, JobReport, Local, LocalConfig};
use rukong_core::dag::TaskSpec;
use rukong_core::messages::JobState;
use rukong_core::{TaskId, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A job that takes longer than this is reported as hung.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

// ----------------------------------------------------------------------------------------
// Reference evaluator
// ----------------------------------------------------------------------------------------

/// A value as the reference evaluator sees it (bytes are a plain `Vec<u8>`).
#[derive(Clone, Debug, PartialEq)]
enum R {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Array(Vec<R>),
    Map(BTreeMap<String, R>),
}

impl R {
    fn from_value(v: &Value) -> R {
        match v {
            Value::Null => R::Null,
            Value::Bool(b) => R::Bool(*b),
            Value::Int(i) => R::Int(*i),
            Value::Float(f) => R::Float(*f),
            Value::Str(s) => R::Str(s.clone()),
            Value::Bytes(b) => R::Bytes(b.to_vec()),
            Value::Array(a) => R::Array(a.iter().map(R::from_value).collect()),
            Value::Map(m) => R::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), R::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// Whether the engine's `v` is this value (bytes compared by content).
    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (R::Null, Value::Null) => true,
            (R::Bool(a), Value::Bool(b)) => a == b,
            (R::Int(a), Value::Int(b)) => a == b,
            (R::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits() || a == b,
            (R::Str(a), Value::Str(b)) => a == b,
            (R::Bytes(a), Value::Bytes(b)) => a.as_slice() == b.as_ref(),
            (R::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.matches(y))
            }
            (R::Map(a), Value::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.matches(vb))
            }
            _ => false,
        }
    }

    fn show(&self) -> String {
        match self {
            R::Str(s) => show_str(s),
            R::Bytes(b) => show_bytes(b),
            other => format!("{other:?}"),
        }
    }
}

fn show_str(s: &str) -> String {
    if s.len() <= 80 {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(40).collect();
        format!("Str({} bytes, starts {head:?})", s.len())
    }
}

fn show_bytes(b: &[u8]) -> String {
    let digest = Sha256::digest(b);
    let hex: String = digest.iter().take(8).map(|x| format!("{x:02x}")).collect();
    format!("Bytes({} bytes, sha256 {hex}..)", b.len())
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Str(s) => show_str(s),
        Value::Bytes(b) => show_bytes(b),
        other => format!("{other:?}"),
    }
}

/// What the reference says about one task.
#[derive(Clone, Debug)]
enum Outcome {
    Ok(R),
    /// Its inputs were all fine but its function failed.
    Failed(String),
    /// Some dependency did not produce a value.
    Skipped,
}

fn arith(name: &str, inputs: &[R], unit: i64) -> Result<R, String> {
    let mut any_float = false;
    for (i, v) in inputs.iter().enumerate() {
        match v {
            R::Int(_) => {}
            R::Float(_) => any_float = true,
            other => {
                return Err(format!(
                    "{name}: input {} is not a number: {other:?}",
                    i + 1
                ));
            }
        }
    }
    let is_add = name == "add";
    if any_float {
        let mut acc = unit as f64;
        for v in inputs {
            let x = match v {
                R::Int(i) => *i as f64,
                R::Float(f) => *f,
                _ => unreachable!("checked above"),
            };
            acc = if is_add { acc + x } else { acc * x };
        }
        return Ok(R::Float(acc));
    }
    let mut acc = unit;
    for v in inputs {
        let R::Int(x) = v else {
            unreachable!("checked above")
        };
        let next = if is_add {
            acc.checked_add(*x)
        } else {
            acc.checked_mul(*x)
        };
        acc = next.ok_or_else(|| format!("{name}: integer overflow"))?;
    }
    Ok(R::Int(acc))
}

/// One built-in, from its documented semantics.
fn call(func: &str, inputs: Vec<R>) -> Result<R, String> {
    match func {
        "const" | "identity" => {
            if inputs.len() != 1 {
                return Err(format!("{func}: expects 1 input, got {}", inputs.len()));
            }
            Ok(inputs.into_iter().next().unwrap_or(R::Null))
        }
        "add" => arith("add", &inputs, 0),
        "mul" => arith("mul", &inputs, 1),
        "concat" => match inputs.first() {
            None => Err("concat: no inputs".into()),
            Some(R::Str(_)) => {
                let mut out = String::new();
                for v in &inputs {
                    let R::Str(s) = v else {
                        return Err(format!("concat: mixed kinds: {v:?}"));
                    };
                    out.push_str(s);
                }
                Ok(R::Str(out))
            }
            Some(R::Bytes(_)) => {
                let mut out = Vec::new();
                for v in &inputs {
                    let R::Bytes(b) = v else {
                        return Err(format!("concat: mixed kinds: {v:?}"));
                    };
                    out.extend_from_slice(b);
                }
                Ok(R::Bytes(out))
            }
            Some(R::Array(_)) => {
                let mut out = Vec::new();
                for v in &inputs {
                    let R::Array(a) = v else {
                        return Err(format!("concat: mixed kinds: {v:?}"));
                    };
                    out.extend(a.iter().cloned());
                }
                Ok(R::Array(out))
            }
            Some(other) => Err(format!("concat: bad kind {other:?}")),
        },
        "len" => match inputs.as_slice() {
            [R::Bytes(b)] => Ok(R::Int(b.len() as i64)),
            [R::Str(s)] => Ok(R::Int(s.chars().count() as i64)),
            [R::Array(a)] => Ok(R::Int(a.len() as i64)),
            other => Err(format!("len: bad inputs {other:?}")),
        },
        "blob" => match inputs.as_slice() {
            [R::Int(n), R::Int(seed)] if *n >= 0 && *seed >= 0 => {
                // The executor documents a 1 GiB limit on one blob.
                if *n > 1 << 30 {
                    return Err(format!("blob: size {n} is over 1 GiB"));
                }
                let seed = (*seed as u64) % 256;
                Ok(R::Bytes(
                    (0..*n as u64)
                        .map(|i| ((i % 256 * 31 + seed) % 256) as u8)
                        .collect(),
                ))
            }
            other => Err(format!("blob: bad inputs {other:?}")),
        },
        "sha256" => {
            let mut h = Sha256::new();
            for v in &inputs {
                match v {
                    R::Str(s) => h.update(s.as_bytes()),
                    R::Bytes(b) => h.update(b),
                    other => return Err(format!("sha256: bad kind {other:?}")),
                }
            }
            Ok(R::Str(
                h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            ))
        }
        "fail" => Err("fail".into()),
        other => panic!("the reference does not know function {other:?}"),
    }
}

/// Evaluates `tasks` in the order given (which must be topological: every dependency comes
/// before its dependents).
fn evaluate(tasks: &[TaskSpec]) -> HashMap<TaskId, Outcome> {
    let mut out: HashMap<TaskId, Outcome> = HashMap::with_capacity(tasks.len());
    for t in tasks {
        let mut inputs = Vec::with_capacity(t.deps.len() + t.args.len());
        let mut skipped = false;
        for d in &t.deps {
            match out.get(d) {
                Some(Outcome::Ok(v)) => inputs.push(v.clone()),
                Some(_) => skipped = true,
                None => panic!("reference: {} depends on {d}, not evaluated yet", t.id),
            }
        }
        let outcome = if skipped {
            Outcome::Skipped
        } else {
            inputs.extend(t.args.iter().map(R::from_value));
            match call(&t.func, inputs) {
                Ok(v) => Outcome::Ok(v),
                Err(e) => Outcome::Failed(e),
            }
        };
        out.insert(t.id.clone(), outcome);
    }
    out
}

/// The outputs a job returns: `spec.outputs`, or every sink in the spec's order.
fn expected_output_ids(spec: &DagSpec) -> Vec<TaskId> {
    if let Some(outs) = &spec.outputs {
        return outs.clone();
    }
    let parents: HashSet<&TaskId> = spec.tasks.iter().flat_map(|t| t.deps.iter()).collect();
    spec.tasks
        .iter()
        .filter(|t| !parents.contains(&t.id))
        .map(|t| t.id.clone())
        .collect()
}

/// Checks a job's report against the reference. `Ok(true)` when the job was expected to
/// succeed.
fn check_report(
    label: &str,
    spec: &DagSpec,
    reference: &HashMap<TaskId, Outcome>,
    report: &JobReport,
) -> Result<bool, TestCaseError> {
    let direct: Vec<&TaskId> = spec
        .tasks
        .iter()
        .filter(|t| matches!(reference[&t.id], Outcome::Failed(_)))
        .map(|t| &t.id)
        .collect();
    if direct.is_empty() {
        prop_assert_eq!(
            &report.state,
            &JobState::Succeeded,
            "[{}] the reference says every task succeeds\nDAG:\n{}",
            label,
            spec.to_yaml()
        );
        let want = expected_output_ids(spec);
        let got: Vec<TaskId> = report.outputs.iter().map(|(t, _)| t.clone()).collect();
        prop_assert_eq!(
            &got,
            &want,
            "[{}] output ids (in order) differ\nDAG:\n{}",
            label,
            spec.to_yaml()
        );
        for (id, v) in &report.outputs {
            let Outcome::Ok(expected) = &reference[id] else {
                unreachable!("no task failed")
            };
            prop_assert!(
                expected.matches(v),
                "[{}] output of {} differs: expected {}, got {}\nDAG:\n{}",
                label,
                id,
                expected.show(),
                show_value(v),
                spec.to_yaml()
            );
        }
        Ok(true)
    } else {
        match &report.state {
            JobState::Failed { task, error } => {
                prop_assert!(
                    direct.contains(&task),
                    "[{}] the job failed at {} ({}), but the reference says the failing \
                     tasks are {:?}\nDAG:\n{}",
                    label,
                    task,
                    error,
                    direct,
                    spec.to_yaml()
                );
            }
            other => {
                let why: Vec<String> = direct
                    .iter()
                    .map(|id| match &reference[*id] {
                        Outcome::Failed(e) => format!("{id}: {e}"),
                        _ => String::new(),
                    })
                    .collect();
                let outputs: Vec<String> = report
                    .outputs
                    .iter()
                    .map(|(t, v)| format!("{t}={}", show_value(v)))
                    .collect();
                return Err(TestCaseError::fail(format!(
                    "[{label}] expected the job to fail (reference: {why:?}), got {other:?} \
                     with outputs {outputs:?}\nDAG:\n{}",
                    spec.to_yaml()
                )));
            }
        }
        Ok(false)
    }
}

fn run_and_check(
    local: &Local,
    label: &str,
    spec: &DagSpec,
    reference: &HashMap<TaskId, Outcome>,
) -> Result<bool, TestCaseError> {
    let report = local.run_with(spec.clone(), Some(JOB_TIMEOUT), |_| {});
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "[{label}] the run did not produce a report: {e}\nDAG:\n{}",
                spec.to_yaml()
            )));
        }
    };
    check_report(label, spec, reference, &report)
}

// ----------------------------------------------------------------------------------------
// Deployments
// ----------------------------------------------------------------------------------------

fn default_local() -> Local {
    let config = LocalConfig {
        slots: 2,
        ..LocalConfig::default()
    };
    Local::start(config).expect("start the default deployment")
}

/// Inline limit 16 bytes (almost everything goes through the object store) and F = 2 (every
/// fan-out goes through the proxy).
fn stress_local() -> Local {
    let mut config = LocalConfig {
        slots: 3,
        ..LocalConfig::default()
    };
    config.engine.job.inline_limit = 16;
    config.engine.job.proxy_fanout = 2;
    Local::start(config).expect("start the stress deployment")
}

// ----------------------------------------------------------------------------------------
// Generator
// ----------------------------------------------------------------------------------------

/// The random choices for one task; [`build`] turns them into a task consistent with its
/// dependencies' kinds.
#[derive(Clone, Debug)]
struct Gene {
    /// Selects the function (0..100).
    op: u8,
    /// Raw dependency picks, mapped onto earlier tasks of a fitting kind.
    deps: Vec<u16>,
    /// Below the DAG's `hub_rate`: the first dependency is that kind's hub (fan-outs).
    hub_roll: u8,
    /// Below the DAG's `ill_rate`: the task is built without regard to kinds.
    ill_roll: u8,
    ints: Vec<i64>,
    text: String,
    blob_size: u32,
    aux: u16,
    /// Make a wide layer here: one parent, 10 to 14 children, and a fan-in of them all.
    layer: bool,
}

#[derive(Clone, Debug)]
struct DagGene {
    genes: Vec<Gene>,
    hub_rate: u8,
    ill_rate: u8,
    /// Per kind (int, string, bytes), which early task of that kind is the hub.
    hubs: (u8, u8, u8),
    shuffle_seed: u64,
    outputs: Option<Vec<u16>>,
}

fn small_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        85 => -5i64..=20,
        12 => -1000i64..=1000,
        2 => (1i64 << 40)..(1i64 << 62),
    ]
}

fn blob_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        80 => 0u32..200,
        9 => 60_000u32..70_000,
        4 => 65_520u32..65_540,
        3 => 70_000u32..=300_000,
    ]
}

fn gene() -> impl Strategy<Value = Gene> {
    (
        0u8..100,
        prop_oneof![
            24 => vec(any::<u16>(), 0..=4),
            1 => vec(any::<u16>(), 10..=16),
        ],
        0u8..100,
        0u8..100,
        vec(small_int(), 0..=3),
        "[a-z\u{e9}\u{2713}]{0,6}",
        blob_size(),
        any::<u16>(),
        prop::bool::weighted(0.03),
    )
        .prop_map(
            |(op, deps, hub_roll, ill_roll, ints, text, blob_size, aux, layer)| Gene {
                op,
                deps,
                hub_roll,
                ill_roll,
                ints,
                text,
                blob_size,
                aux,
                layer,
            },
        )
}

fn dag_gene() -> impl Strategy<Value = DagGene> {
    (
        vec(gene(), 1..=60),
        prop_oneof![3 => Just(0u8), 4 => Just(25u8), 3 => Just(60u8)],
        prop_oneof![7 => Just(0u8), 3 => Just(4u8)],
        (0u8..4, 0u8..4, 0u8..4),
        any::<u64>(),
        prop::option::weighted(0.15, vec(any::<u16>(), 1..=6)),
    )
        .prop_map(
            |(genes, hub_rate, ill_rate, hubs, shuffle_seed, outputs)| DagGene {
                genes,
                hub_rate,
                ill_rate,
                hubs,
                shuffle_seed,
                outputs,
            },
        )
}

/// The kind a task's output has if it succeeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Int,
    Str,
    Bytes,
    Other,
}

/// Largest string/bytes output the generator lets one task make.
const MAX_TASK_BYTES: usize = 400_000;
/// Budget per DAG for bytes made (blob, concat) plus bytes hashed (sha256).
const DAG_BUDGET: usize = 1_200_000;
/// Most tasks in one generated DAG.
const MAX_TASKS: usize = 60;
/// add/mul inputs are trimmed until the result's bound is at most this, except where a
/// gene allows an overflow.
const MAG_LIMIT: u128 = 1 << 62;

struct Builder<'a> {
    dag: &'a DagGene,
    tasks: Vec<TaskSpec>,
    kinds: Vec<Kind>,
    /// Upper bound of each task's string/bytes length.
    sizes: Vec<usize>,
    /// Upper bound of each int task's absolute value.
    mags: Vec<u128>,
    spent: usize,
}

fn id(i: usize) -> TaskId {
    TaskId::from(format!("t{i}").as_str())
}

impl Builder<'_> {
    fn hub_pos(&self, kind: Kind) -> usize {
        let (i, s, b) = self.dag.hubs;
        usize::from(match kind {
            Kind::Int => i,
            Kind::Str => s,
            Kind::Bytes | Kind::Other => b,
        })
    }

    /// Maps the gene's raw picks onto earlier tasks whose kind passes `ok` (and whose size is
    /// at most `max_size`); the first pick is the hub when the gene says so.
    fn picks(
        &self,
        g: &Gene,
        hub_kind: Kind,
        max_size: usize,
        ok: impl Fn(Kind) -> bool,
    ) -> Vec<usize> {
        let pool: Vec<usize> = (0..self.tasks.len())
            .filter(|&t| ok(self.kinds[t]) && self.sizes[t] <= max_size)
            .collect();
        if pool.is_empty() {
            return Vec::new();
        }
        let hub = g.hub_roll < self.dag.hub_rate;
        g.deps
            .iter()
            .enumerate()
            .map(|(k, &raw)| {
                if k == 0 && hub {
                    pool[self.hub_pos(hub_kind).min(pool.len() - 1)]
                } else {
                    pool[usize::from(raw) % pool.len()]
                }
            })
            .collect()
    }

    fn push(&mut self, func: &str, deps: &[usize], args: Vec<Value>, kind: Kind, size: usize) {
        let i = self.tasks.len();
        self.tasks.push(TaskSpec {
            id: id(i),
            func: func.to_owned(),
            deps: deps.iter().map(|&d| id(d)).collect(),
            args,
            ..TaskSpec::default()
        });
        let mag = self.mag(func, deps, self.tasks[i].args.as_slice());
        self.kinds.push(kind);
        self.sizes.push(size);
        self.mags.push(mag);
    }

    /// An upper bound of |result| when `func` makes an int (0 otherwise).
    fn mag(&self, func: &str, deps: &[usize], args: &[Value]) -> u128 {
        let inputs = deps
            .iter()
            .map(|&d| self.mags[d])
            .chain(args.iter().map(|a| match a {
                Value::Int(i) => u128::from(i.unsigned_abs()),
                _ => 0,
            }));
        match func {
            "add" => inputs.fold(0u128, u128::saturating_add),
            "mul" => inputs.fold(1u128, u128::saturating_mul),
            "len" => deps.first().map_or(0, |&d| self.sizes[d] as u128),
            "identity" | "const" => inputs.take(1).sum(),
            _ => 0,
        }
    }

    /// Drops inputs of an add/mul until its result cannot overflow.
    fn trim_arith(&self, func: &str, deps: &mut Vec<usize>, args: &mut Vec<Value>) {
        while self.mag(func, deps, args) > MAG_LIMIT {
            if deps.pop().is_none() && args.pop().is_none() {
                break;
            }
        }
    }

    /// One parent, 10 to 14 children, and a fan-in of the children. False if it does not fit.
    fn add_layer(&mut self, g: &Gene) -> bool {
        let k = 10 + usize::from(g.aux % 5);
        if self.tasks.len() + k + 2 > MAX_TASKS {
            return false;
        }
        let Some(&p) = self
            .picks(g, Kind::Int, usize::MAX, |k| k != Kind::Other)
            .first()
        else {
            return false;
        };
        let (pkind, psize) = (self.kinds[p], self.sizes[p]);
        let first = self.tasks.len();
        let hash_ok = psize <= 1000 || self.spent + k * psize <= DAG_BUDGET;
        let mut child_kind = Kind::Str;
        for j in 0..k {
            let salt = Value::Str(format!("{j}"));
            match pkind {
                Kind::Int => {
                    child_kind = Kind::Int;
                    self.push("add", &[p], vec![Value::Int(j as i64)], Kind::Int, 0);
                }
                Kind::Str if psize <= 10_000 => {
                    self.push("concat", &[p], vec![salt], Kind::Str, psize + 2);
                }
                _ if hash_ok => {
                    self.spent += psize;
                    self.push("sha256", &[p], vec![salt], Kind::Str, 64);
                }
                _ => {
                    child_kind = Kind::Int;
                    self.push("len", &[p], vec![], Kind::Int, 0);
                }
            }
        }
        let children: Vec<usize> = (first..first + k).collect();
        if child_kind == Kind::Int {
            let (mut deps, mut args) = (children, vec![]);
            self.trim_arith("add", &mut deps, &mut args);
            self.push("add", &deps, args, Kind::Int, 0);
        } else {
            let size = children.iter().map(|&c| self.sizes[c]).sum();
            if size <= MAX_TASK_BYTES && self.spent + size <= DAG_BUDGET {
                self.spent += size;
                self.push("concat", &children, vec![], Kind::Str, size);
            } else {
                self.push("sha256", &children, vec![], Kind::Str, 64);
            }
        }
        true
    }

    fn int_arg(g: &Gene, k: usize) -> i64 {
        g.ints.get(k).copied().unwrap_or(k as i64 + 2)
    }

    fn push_const(&mut self, g: &Gene) {
        if g.aux.is_multiple_of(2) {
            self.push(
                "const",
                &[],
                vec![Value::Int(Self::int_arg(g, 0))],
                Kind::Int,
                0,
            );
        } else {
            let len = g.text.len();
            self.push(
                "const",
                &[],
                vec![Value::Str(g.text.clone())],
                Kind::Str,
                len,
            );
        }
    }

    fn push_blob(&mut self, g: &Gene) {
        let mut n = g.blob_size as usize;
        if n > 1000 && self.spent + n > DAG_BUDGET {
            n %= 200;
        }
        self.spent += n;
        let args = vec![Value::Int(n as i64), Value::Int(i64::from(g.aux))];
        self.push("blob", &[], args, Kind::Bytes, n);
    }

    fn add_typed(&mut self, g: &Gene) {
        let stringy = |k| matches!(k, Kind::Str | Kind::Bytes);
        if g.layer && self.add_layer(g) {
            return;
        }
        match g.op {
            0..10 => self.push_const(g),
            10..22 => self.push_blob(g),
            22..30 => {
                let deps = self.picks(g, Kind::Int, usize::MAX, |k| k != Kind::Other);
                match deps.first() {
                    Some(&d) => {
                        let (kind, size) = (self.kinds[d], self.sizes[d]);
                        self.push("identity", &[d], vec![], kind, size);
                    }
                    None => self.push_const(g),
                }
            }
            30..56 => {
                let func = if g.op < 46 { "add" } else { "mul" };
                let mut deps = self.picks(g, Kind::Int, usize::MAX, |k| k == Kind::Int);
                let mut args = g.ints.iter().map(|&i| Value::Int(i)).collect();
                // Most of the time, keep the result in range; sometimes let it overflow.
                if !g.aux.is_multiple_of(8) {
                    self.trim_arith(func, &mut deps, &mut args);
                }
                self.push(func, &deps, args, Kind::Int, 0);
            }
            56..72 => {
                let kind = if g.aux.is_multiple_of(2) {
                    Kind::Str
                } else {
                    Kind::Bytes
                };
                let deps = self.picks(g, kind, usize::MAX, |k| k == kind);
                let mut args = Vec::new();
                if kind == Kind::Str && (deps.is_empty() || g.aux % 4 < 2) {
                    args.push(Value::Str(g.text.clone()));
                }
                if deps.is_empty() && args.is_empty() {
                    return self.push_blob(g);
                }
                let size = deps.iter().map(|&d| self.sizes[d]).sum::<usize>() + g.text.len();
                if size > MAX_TASK_BYTES || self.spent + size > DAG_BUDGET {
                    // Too big: take the length of the first input instead.
                    return match deps.first() {
                        Some(&d) => self.push("len", &[d], vec![], Kind::Int, 0),
                        None => self.push_const(g),
                    };
                }
                self.spent += size;
                self.push("concat", &deps, args, kind, size);
            }
            72..82 => {
                let deps = self.picks(g, Kind::Bytes, usize::MAX, stringy);
                match deps.first() {
                    Some(&d) => self.push("len", &[d], vec![], Kind::Int, 0),
                    None => self.push_const(g),
                }
            }
            _ => {
                let mut deps = self.picks(g, Kind::Bytes, usize::MAX, stringy);
                // Hash what the budget allows.
                let mut kept = Vec::new();
                for d in deps.drain(..) {
                    if self.sizes[d] <= 1000 || self.spent + self.sizes[d] <= DAG_BUDGET {
                        self.spent += self.sizes[d];
                        kept.push(d);
                    }
                }
                let args = if g.aux.is_multiple_of(3) || kept.is_empty() {
                    vec![Value::Str(g.text.clone())]
                } else {
                    vec![]
                };
                self.push("sha256", &kept, args, Kind::Str, 64);
            }
        }
    }

    /// A task built without regard to kinds: it may well fail.
    fn add_ill(&mut self, g: &Gene) {
        const FUNCS: [&str; 9] = [
            "add", "mul", "concat", "len", "sha256", "identity", "const", "blob", "fail",
        ];
        let func = FUNCS[usize::from(g.op) % FUNCS.len()];
        let deps = if func == "blob" {
            // Never let a computed int size a blob.
            Vec::new()
        } else {
            self.picks(g, Kind::Other, 100_000, |_| true)
        };
        let nargs = usize::from(g.aux % 3);
        let args: Vec<Value> = (0..nargs)
            .map(|k| match (usize::from(g.aux / 3) + k) % 5 {
                0 => Value::Int(Self::int_arg(g, k)),
                1 => Value::Str(g.text.clone()),
                2 => Value::Null,
                3 => Value::Bool(k % 2 == 0),
                _ => Value::Array(vec![Value::Int(1), Value::Str("x".into())]),
            })
            .collect();
        let arg_kind = |v: &Value| match v {
            Value::Int(_) => Kind::Int,
            Value::Str(_) => Kind::Str,
            _ => Kind::Other,
        };
        let first_kind = deps
            .first()
            .map(|&d| self.kinds[d])
            .or_else(|| args.first().map(arg_kind))
            .unwrap_or(Kind::Other);
        let size = deps.iter().map(|&d| self.sizes[d]).sum::<usize>()
            + args
                .iter()
                .map(|a| match a {
                    Value::Str(s) => s.len(),
                    _ => 0,
                })
                .sum::<usize>();
        let (kind, size) = match func {
            "add" | "mul" | "len" => (Kind::Int, 0),
            "sha256" => (Kind::Str, 64),
            "blob" => (Kind::Bytes, 1000),
            "fail" => (Kind::Other, 0),
            _ => (first_kind, size),
        };
        self.spent += size;
        self.push(func, &deps, args, kind, size);
    }
}

/// A generated case: the DAG as submitted (shuffled) and its tasks in generation
/// (topological) order for the reference.
struct Case {
    spec: DagSpec,
    topo: Vec<TaskSpec>,
}

fn build(dag: &DagGene) -> Case {
    let mut b = Builder {
        dag,
        tasks: Vec::with_capacity(dag.genes.len()),
        kinds: Vec::new(),
        sizes: Vec::new(),
        mags: Vec::new(),
        spent: 0,
    };
    for g in &dag.genes {
        if b.tasks.len() >= MAX_TASKS {
            break;
        }
        if g.ill_roll < dag.ill_rate {
            b.add_ill(g);
        } else {
            b.add_typed(g);
        }
    }
    let topo = b.tasks;
    // Shuffle the file order (Fisher-Yates on a splitmix64 stream).
    let mut tasks = topo.clone();
    let mut state = dag.shuffle_seed;
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..tasks.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        tasks.swap(i, j);
    }
    let outputs = dag.outputs.as_ref().map(|raw| {
        let mut seen = HashSet::new();
        raw.iter()
            .map(|&r| id(usize::from(r) % topo.len()))
            .filter(|t| seen.insert(t.clone()))
            .collect()
    });
    Case {
        spec: DagSpec {
            name: "proptest-random".into(),
            tasks,
            outputs,
        },
        topo,
    }
}

/// The largest out-degree and in-degree (distinct tasks) in `tasks`.
fn widest(tasks: &[TaskSpec]) -> (usize, usize) {
    let mut children: HashMap<&TaskId, HashSet<&TaskId>> = HashMap::new();
    let mut max_in = 0;
    for t in tasks {
        let parents: HashSet<&TaskId> = t.deps.iter().collect();
        max_in = max_in.max(parents.len());
        for p in parents {
            children.entry(p).or_default().insert(&t.id);
        }
    }
    let max_out = children.values().map(HashSet::len).max().unwrap_or(0);
    (max_out, max_in)
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
}

#[test]
fn random_dags_match_the_reference() {
    let default = default_local();
    let stress = stress_local();
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 400,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let succeeded = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let wide_out = AtomicUsize::new(0);
    let wide_in = AtomicUsize::new(0);
    let large_out = AtomicUsize::new(0);
    let started = Instant::now();
    let result = runner.run(&dag_gene(), |g| {
        let case = build(&g);
        let reference = evaluate(&case.topo);
        let (max_out, max_in) = widest(&case.topo);
        if max_out >= 10 {
            wide_out.fetch_add(1, Ordering::Relaxed);
        }
        if max_in >= 10 {
            wide_in.fetch_add(1, Ordering::Relaxed);
        }
        let large = case
            .topo
            .iter()
            .any(|t| matches!(&reference[&t.id], Outcome::Ok(R::Bytes(b)) if b.len() > 64 * 1024));
        if large {
            large_out.fetch_add(1, Ordering::Relaxed);
        }
        let ok_a = run_and_check(&default, "default", &case.spec, &reference)?;
        let ok_b = run_and_check(&stress, "stress", &case.spec, &reference)?;
        prop_assert_eq!(ok_a, ok_b);
        if ok_a {
            succeeded.fetch_add(1, Ordering::Relaxed);
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    eprintln!(
        "random DAGs: {} succeeded, {} failed as predicted ({} with a fan-out >= 10, {} with a \
         fan-in >= 10, {} with bytes over 64 KiB), in {:.1?}",
        succeeded.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        wide_out.load(Ordering::Relaxed),
        wide_in.load(Ordering::Relaxed),
        large_out.load(Ordering::Relaxed),
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ----------------------------------------------------------------------------------------
// A fixed DAG
// ----------------------------------------------------------------------------------------

/// Fan-out of 12 (crosses F = 10), a fan-in of those 12, a chain of 5, and a 100 KB blob
/// feeding sha256 and len (and a fan-out of 12 of its own).
fn fixed_dag() -> Vec<TaskSpec> {
    let task = |id: &str, func: &str, deps: &[&str], args: Vec<Value>| TaskSpec {
        id: TaskId::from(id),
        func: func.to_owned(),
        deps: deps.iter().map(|&d| TaskId::from(d)).collect(),
        args,
        ..TaskSpec::default()
    };
    let mut tasks = vec![task("src", "const", &[], vec![Value::Int(3)])];
    let kids: Vec<String> = (0..12).map(|i| format!("kid{i}")).collect();
    for (i, k) in kids.iter().enumerate() {
        tasks.push(task(k, "add", &["src"], vec![Value::Int(i as i64)]));
    }
    let kid_refs: Vec<&str> = kids.iter().map(String::as_str).collect();
    tasks.push(task("sum", "add", &kid_refs, vec![]));
    tasks.push(task("ch1", "mul", &["sum"], vec![Value::Int(2)]));
    tasks.push(task("ch2", "add", &["ch1"], vec![Value::Int(-1)]));
    tasks.push(task("ch3", "identity", &["ch2"], vec![]));
    tasks.push(task("ch4", "mul", &["ch3"], vec![Value::Int(3)]));
    tasks.push(task("ch5", "add", &["ch4"], vec![Value::Int(7)]));
    tasks.push(task(
        "big",
        "blob",
        &[],
        vec![Value::Int(100_000), Value::Int(7)],
    ));
    tasks.push(task("big_sha", "sha256", &["big"], vec![]));
    tasks.push(task("big_len", "len", &["big"], vec![]));
    let hashes: Vec<String> = (0..12).map(|i| format!("h{i}")).collect();
    for (i, h) in hashes.iter().enumerate() {
        tasks.push(task(
            h,
            "sha256",
            &["big"],
            vec![Value::Str(format!("salt{i}"))],
        ));
    }
    let hash_refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
    tasks.push(task("all_hashes", "concat", &hash_refs, vec![]));
    tasks.push(task("all_len", "len", &["all_hashes"], vec![]));
    tasks.push(task("twice", "concat", &["big", "big"], vec![]));
    tasks.push(task("twice_len", "len", &["twice"], vec![]));
    tasks
}

#[test]
fn fixed_dag_matches_the_reference() {
    let topo = fixed_dag();
    let reference = evaluate(&topo);
    // The reference itself, checked by hand.
    let big: Vec<u8> = (0..100_000u64)
        .map(|i| ((i * 31 + 7) % 256) as u8)
        .collect();
    let expect = |id: &str| match &reference[&TaskId::from(id)] {
        Outcome::Ok(v) => v.clone(),
        other => panic!("reference: {id} did not succeed: {other:?}"),
    };
    // sum = sum of (3 + i) for i in 0..12 = 102; chain: 204, 203, 203, 609, 616.
    assert_eq!(expect("sum"), R::Int(102));
    assert_eq!(expect("ch5"), R::Int(616));
    assert_eq!(expect("big_len"), R::Int(100_000));
    let hex: String = Sha256::digest(&big)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(expect("big_sha"), R::Str(hex));
    assert_eq!(expect("all_len"), R::Int(12 * 64));
    assert_eq!(expect("twice_len"), R::Int(200_000));

    let spec = DagSpec {
        name: "fixed".into(),
        tasks: topo.clone(),
        outputs: None,
    };
    let sinks: Vec<&str> = vec!["ch5", "big_sha", "big_len", "all_len", "twice_len"];
    for (label, local) in [("default", default_local()), ("stress", stress_local())] {
        let report = local
            .run_with(spec.clone(), Some(JOB_TIMEOUT), |_| {})
            .unwrap_or_else(|e| panic!("[{label}] run failed: {e}"));
        assert_eq!(report.state, JobState::Succeeded, "[{label}]");
        let ids: Vec<&str> = report.outputs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(ids, sinks, "[{label}] outputs");
        for id in &sinks {
            let got = report.output(id).expect("output present");
            let want = expect(id);
            assert!(
                want.matches(got),
                "[{label}] {id}: expected {}, got {}",
                want.show(),
                show_value(got)
            );
        }
        // Also ask for inner tasks explicitly, large ones included.
        let mut spec2 = spec.clone();
        let wanted = ["big", "sum", "kid11", "all_hashes", "twice", "ch3"];
        spec2.outputs = Some(wanted.iter().map(|&s| TaskId::from(s)).collect());
        let report = local
            .run_with(spec2, Some(JOB_TIMEOUT), |_| {})
            .unwrap_or_else(|e| panic!("[{label}] run failed: {e}"));
        assert_eq!(report.state, JobState::Succeeded, "[{label}]");
        let ids: Vec<&str> = report.outputs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(ids, wanted, "[{label}] explicit outputs");
        for id in wanted {
            let got = report.output(id).expect("output present");
            let want = expect(id);
            assert!(
                want.matches(got),
                "[{label}] {id}: expected {}, got {}",
                want.show(),
                show_value(got)
            );
        }
    }
}

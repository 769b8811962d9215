//! The reference evaluator: the built-ins' semantics, reimplemented plainly and
//! sequentially, independent of the executor.

use rukong_client::DagSpec;
use rukong_core::dag::TaskSpec;
use rukong_core::{TaskId, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

// ----------------------------------------------------------------------------------------
// Reference evaluator
// ----------------------------------------------------------------------------------------

/// A value as the reference evaluator sees it (bytes are a plain `Vec<u8>`).
#[derive(Clone, Debug, PartialEq)]
pub enum R {
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
    pub fn from_value(v: &Value) -> R {
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
    pub fn matches(&self, v: &Value) -> bool {
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

    pub fn show(&self) -> String {
        match self {
            R::Str(s) => show_str(s),
            R::Bytes(b) => show_bytes(b),
            other => format!("{other:?}"),
        }
    }
}

pub fn show_str(s: &str) -> String {
    if s.len() <= 80 {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(40).collect();
        format!("Str({} bytes, starts {head:?})", s.len())
    }
}

pub fn show_bytes(b: &[u8]) -> String {
    let digest = Sha256::digest(b);
    let hex: String = digest.iter().take(8).map(|x| format!("{x:02x}")).collect();
    format!("Bytes({} bytes, sha256 {hex}..)", b.len())
}

pub fn show_value(v: &Value) -> String {
    match v {
        Value::Str(s) => show_str(s),
        Value::Bytes(b) => show_bytes(b),
        other => format!("{other:?}"),
    }
}

/// What the reference says about one task.
#[derive(Clone, Debug)]
pub enum Outcome {
    Ok(R),
    /// Its inputs were all fine but its function failed.
    Failed(String),
    /// Some dependency did not produce a value.
    Skipped,
}

pub fn arith(name: &str, inputs: &[R], unit: i64) -> Result<R, String> {
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
pub fn call(func: &str, inputs: Vec<R>) -> Result<R, String> {
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
pub fn evaluate(tasks: &[TaskSpec]) -> HashMap<TaskId, Outcome> {
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
pub fn expected_output_ids(spec: &DagSpec) -> Vec<TaskId> {
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

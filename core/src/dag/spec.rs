//! The DAG file as users write it (`docs/dag-format.md`), in YAML or JSON.

use crate::error::DagError;
use crate::ids::TaskId;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A DAG as written in a file or built with the client API. Not yet validated:
/// [`crate::dag::validate`] turns it into a [`crate::Dag`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DagSpec {
    #[serde(default = "default_name")]
    pub name: String,
    pub tasks: Vec<TaskSpec>,
    /// Tasks whose outputs the job returns. Default: every sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<TaskId>>,
}

fn default_name() -> String {
    "dag".to_owned()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub id: TaskId,
    #[serde(rename = "fn")]
    pub func: String,
    /// Ordered dependencies: their outputs are the function's first inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<TaskId>,
    /// Constant inputs that follow the dependencies' outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Extra attempts after a failure (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Wall-clock limit for one attempt of a heavy (off-thread) function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join: Option<Join>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub gpu: u32,
}

/// Run only when `dep`'s output equals `equals` (`docs/conditional-branches.md`), by
/// [`values_equal`]. `dep` must be one of the task's dependencies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    pub dep: TaskId,
    pub equals: Value,
}

impl Guard {
    /// Whether the guard passes for `dep`'s output `v`.
    pub fn matches(&self, v: &Value) -> bool {
        values_equal(v, &self.equals)
    }
}

/// How a task treats skipped dependencies (`docs/conditional-branches.md`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Join {
    /// Skipped as soon as any dependency was skipped (the default).
    #[default]
    All,
    /// Runs when at least one dependency completed; skipped dependencies give `null`.
    Any,
}

/// The equality of guards (and of the `eq` built-in): numbers compare by numeric value, so
/// `1` equals `1.0` (an int equals a float only when the float is integral and converts
/// exactly; NaN equals nothing); arrays and maps compare element by element (maps by the same
/// keys) with this rule; every other pair compares exactly (same kind, same value: strings
/// byte for byte, bytes, bools, null). Values of different kinds never match.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Float(y)) | (Value::Float(y), Value::Int(x)) => {
            int_equals_float(*x, *y)
        }
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| values_equal(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && values_equal(va, vb))
        }
        _ => a == b,
    }
}

/// 2^63, exactly.
const TWO_63: f64 = (1u64 << 63) as f64;

fn int_equals_float(i: i64, f: f64) -> bool {
    // -2^63 <= f < 2^63: the range where `f as i64` is exact for an integral f.
    f.is_finite() && f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) && f as i64 == i
}

/// The two file formats of `docs/dag-format.md`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DagFormat {
    Json,
    Yaml,
}

impl DagFormat {
    /// From a file extension; `None` when the extension says nothing.
    pub fn from_path(path: &Path) -> Option<DagFormat> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(DagFormat::Json),
            "yaml" | "yml" => Some(DagFormat::Yaml),
            _ => None,
        }
    }

    /// Guesses from the text: JSON starts with `{` after whitespace.
    pub fn sniff(text: &str) -> DagFormat {
        if text.trim_start().starts_with('{') {
            DagFormat::Json
        } else {
            DagFormat::Yaml
        }
    }
}

impl DagSpec {
    pub fn from_json_str(text: &str) -> Result<DagSpec, DagError> {
        serde_json::from_str(text).map_err(|e| DagError::Parse {
            format: "JSON",
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })
    }

    pub fn from_yaml_str(text: &str) -> Result<DagSpec, DagError> {
        serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            DagError::Parse {
                format: "YAML",
                line,
                column,
                message: e.to_string(),
            }
        })
    }

    /// Decodes a MessagePack DAG (the same fields as JSON, as a map).
    pub fn from_msgpack(bytes: &[u8]) -> Result<DagSpec, DagError> {
        crate::msgpack::from_slice(bytes).map_err(|e| DagError::unpositioned("MessagePack", e))
    }

    /// As [`Self::from_msgpack`], reading the body from `r` as it arrives.
    pub fn from_msgpack_reader(r: impl std::io::Read) -> Result<DagSpec, DagError> {
        crate::msgpack::from_read(r).map_err(|e| DagError::unpositioned("MessagePack", e))
    }

    /// Encodes the DAG as MessagePack (a map per struct, as [`Self::from_msgpack`] reads).
    pub fn to_msgpack(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub fn parse(text: &str, format: DagFormat) -> Result<DagSpec, DagError> {
        match format {
            DagFormat::Json => Self::from_json_str(text),
            DagFormat::Yaml => Self::from_yaml_str(text),
        }
    }

    /// Reads a DAG file; the format comes from the extension, else from the content.
    pub fn from_path(path: &Path) -> Result<DagSpec, DagError> {
        let text = std::fs::read_to_string(path).map_err(|e| DagError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let format = DagFormat::from_path(path).unwrap_or_else(|| DagFormat::sniff(&text));
        Self::parse(&text, format)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }
}

//! GPU built-ins: `gpu_matmul`, `gpu_saxpy` and `gpu_mlp`.
//!
//! Each runs on the device of its slot ([`InitCtx::device`](super::InitCtx)): on a CUDA
//! GPU (feature `cuda`) through cuBLAS and NVRTC kernels; on the CPU or the simulated
//! device through a CPU reference that does the same f32 arithmetic (the simulated device
//! also waits for its modelled time). `init` builds the warm state of the ladder: the
//! cuBLAS handle, a compiled module, resident weights. Every call is heavy (it runs off the
//! slot's thread), and `call_batch` runs a bundle as one launch. Bad inputs give an error
//! naming the function and the problem (input positions are 1-based).
//!
//! # Values
//!
//! **Vector** (inputs of `gpu_saxpy` and `gpu_mlp`): either `Bytes` holding IEEE-754
//! binary32 entries in little-endian order (4 bytes each, so the length must be a multiple
//! of 4), or an array of numbers (ints and floats, each rounded to the nearest f32).
//! A vector result has the form of the function's vector input (`x`): bytes in, bytes out;
//! array in, array of floats out (each float is the f32 result, widened exactly).
//! At most [`MAX_ELEMENTS`](super::linalg::MAX_ELEMENTS) (2^26) entries.
//!
//! **Matrix**: the matrix value of the linear-algebra built-ins
//! ([`linalg`](super::linalg): a map `{rows, cols, f64le}`, or an array of rows of numbers
//! as input). Entries are rounded to the nearest f32 on the way in; results are always
//! the map form, and every entry is an f32 result widened exactly to f64.
//!
//! # Functions
//!
//! | name                 | result |
//! |----------------------|--------|
//! | `gpu_matmul(a, b)`   | the f32 product a·b of an m×k and a k×n matrix (m×n). A bundle runs each group of same-shape pairs as one cuBLAS `gemm_strided_batched` launch |
//! | `gpu_saxpy(a, x, y)` | the vector `a·x + y`, entry by entry in f32 (`a·x` rounded to f32, then the sum rounded, never fused). `a` is a number; `x` and `y` are vectors of one length. `a` may come first or last (`args: [a]` after `deps: [x, y]` works). A bundle is one kernel launch over the concatenated vectors |
//! | `gpu_mlp(x)`         | the output of a fixed 3-layer perceptron on `x`: a vector of 256 features gives a vector of 256 outputs; a matrix of r rows × 256 columns gives r × 256 (one output row per input row). A bundle stacks every row into one matrix and runs one batched forward |
//!
//! ## `gpu_mlp`'s model
//!
//! Three dense layers of 256×256 with biases, ReLU after the first two, none after the
//! last: `h1 = relu(x·W1 + b1)`, `h2 = relu(h1·W2 + b2)`, `y = h2·W3 + b3` (x a row vector).
//! The weights are fixed: `W_l[i][j]` = f32(`entry(`[`MLP_SEED`]` + l, i, j)`) / 16 and
//! `b_l[j]` = f32(`entry(MLP_SEED + l, 256, j)`) / 16 for l = 1, 2, 3, where `entry` is
//! the linear-algebra built-ins' reproducible pseudo-random entry in [−1, 1). On the CPU,
//! each output is `(Σ_k x_k·W[k][j]) + b[j]` in f32 with the sum taken in k order, so a
//! row's result never depends on the other rows of its bundle.
//!
//! ## Precision
//!
//! Arithmetic is f32. The CPU reference is deterministic: bundled and one-by-one results
//! are bit-identical on the CPU and the simulated device. cuBLAS may sum in another order
//! (and batched launches may pick another algorithm), so GPU results agree with the CPU
//! reference, and bundled with unbundled, to rounding. The tests' tolerance, for
//! `gpu_matmul` (inner dimension up to 1024) and `gpu_mlp`, against an f64 reference
//! computed from the same f32-rounded inputs: `max |got − ref| ≤ 1e-4 · max(1, max |ref|)`.
//! `gpu_saxpy` is exact: its two roundings are the same everywhere.

pub mod matmul;
pub mod mlp;
pub mod saxpy;

#[cfg(test)]
mod tests;

use super::builtins::article;
use super::linalg::{self, MAX_ELEMENTS, Matrix};
use super::{FnError, InitCtx, Registry, WarmState};
use crate::device::{Backend, Cpu, Device};
use bytes::Bytes;
use rukong_core::Value;
use std::sync::Arc;

pub use matmul::GpuMatmul;
pub use mlp::{GpuMlp, MLP_SEED, MLP_WIDTH};
pub use saxpy::GpuSaxpy;

/// Registers `gpu_matmul`, `gpu_saxpy` and `gpu_mlp`.
pub fn register_all(r: &mut Registry) {
    r.register("gpu_matmul", GpuMatmul)
        .register("gpu_saxpy", GpuSaxpy)
        .register("gpu_mlp", GpuMlp);
}

/// The names [`register_all`] registers, in order.
pub const NAMES: [&str; 3] = ["gpu_matmul", "gpu_saxpy", "gpu_mlp"];

/// The device of an `init`: the slot's, or the CPU.
pub(crate) fn init_device(ctx: &InitCtx) -> Arc<dyn Device> {
    ctx.device.clone().unwrap_or_else(|| Arc::new(Cpu::new()))
}

/// The warm state as `T`, if it is one.
/// Results of a bundle under construction: one slot per call, in order.
pub(crate) type Slots = Vec<Option<Result<Value, FnError>>>;

/// Puts one launch's outcome at its calls' positions `idx`: each call's value, or the
/// launch's error for every one of them.
pub(crate) fn scatter(results: &mut Slots, idx: Vec<usize>, out: Result<Vec<Value>, FnError>) {
    match out {
        Ok(vals) => {
            for (i, v) in idx.into_iter().zip(vals) {
                results[i] = Some(Ok(v));
            }
        }
        Err(e) => {
            for i in idx {
                results[i] = Some(Err(e.clone()));
            }
        }
    }
}

/// The bundle's results in call order (a call the launch left without one gets an error).
pub(crate) fn finish(name: &str, results: Slots) -> Vec<Result<Value, FnError>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(FnError::new(format!("{name}: no result")))))
        .collect()
}

/// One call as a bundle of one: the same path, so a single call and a bundle can never
/// disagree.
pub(crate) fn single(
    name: &str,
    mut results: Vec<Result<Value, FnError>>,
) -> Result<Value, FnError> {
    results.pop().unwrap_or_else(|| {
        Err(FnError::new(format!(
            "{name}: the device returned no result"
        )))
    })
}

/// A bundle as one launch: every call is parsed; the valid ones run together through
/// `launch`, and each call that does not parse keeps its own error.
pub(crate) fn run_parsed<I>(
    name: &str,
    batch: &[Vec<Value>],
    parse: impl Fn(&[Value]) -> Result<I, FnError>,
    launch: impl FnOnce(Vec<I>) -> Result<Vec<Value>, FnError>,
) -> Vec<Result<Value, FnError>> {
    let mut results: Slots = vec![None; batch.len()];
    let mut idx = Vec::new();
    let mut items = Vec::new();
    for (i, inputs) in batch.iter().enumerate() {
        match parse(inputs) {
            Ok(item) => {
                idx.push(i);
                items.push(item);
            }
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    scatter(&mut results, idx, launch(items));
    finish(name, results)
}

pub(crate) fn state_as<T: 'static>(state: Option<&WarmState>) -> Option<&T> {
    state.and_then(|s| s.downcast_ref::<T>())
}

/// A device error as a function error.
#[cfg(feature = "cuda")]
pub(crate) fn device_error(name: &str, what: &str, e: impl std::fmt::Display) -> FnError {
    FnError::new(format!("{name}: {what} failed: {e}"))
}

/// Whether the device runs the CPU reference (CPU or simulated).
pub(crate) fn is_reference(d: &dyn Device) -> bool {
    match d.backend() {
        Backend::Cpu | Backend::Simulated(_) => true,
        #[cfg(feature = "cuda")]
        Backend::Cuda(_) => false,
    }
}

/// Runs `compute` as one launch of `batch` items of `work` units on a reference device:
/// on the simulated device, the launch also takes its modelled time.
pub(crate) fn reference_launch<R>(
    d: &dyn Device,
    batch: usize,
    work: f64,
    compute: impl FnOnce() -> R,
) -> R {
    match d.backend() {
        Backend::Simulated(sim) => sim.exec(batch, work, compute),
        _ => compute(),
    }
}

// ----------------------------------------------------------------------------------------
// Vectors
// ----------------------------------------------------------------------------------------

/// The form a vector came in, which its result keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VecForm {
    /// `Bytes` of f32 little-endian.
    Bytes,
    /// An array of numbers.
    Array,
}

/// Parses a vector input (see the module docs). `pos` is 0-based, printed 1-based.
pub fn vector_input(name: &str, pos: usize, v: &Value) -> Result<(Vec<f32>, VecForm), FnError> {
    let at = pos.saturating_add(1);
    match v {
        Value::Bytes(b) => {
            if b.len() % 4 != 0 {
                return Err(FnError::new(format!(
                    "{name}: input {at} has {} bytes, not a whole number of f32 entries (4 bytes each)",
                    b.len()
                )));
            }
            if b.len() / 4 > MAX_ELEMENTS {
                return Err(too_long(name, at, b.len() / 4));
            }
            Ok((
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                VecForm::Bytes,
            ))
        }
        Value::Array(items) => {
            if items.len() > MAX_ELEMENTS {
                return Err(too_long(name, at, items.len()));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, x) in items.iter().enumerate() {
                out.push(match x {
                    Value::Float(f) => *f as f32,
                    Value::Int(n) => *n as f32,
                    other => {
                        return Err(FnError::new(format!(
                            "{name}: input {at}: entry {} is {} {}, expected a number",
                            i + 1,
                            article(other.kind()),
                            other.kind()
                        )));
                    }
                });
            }
            Ok((out, VecForm::Array))
        }
        other => Err(FnError::new(format!(
            "{name}: input {at} is {} {}, expected a vector (bytes of f32le, or an array of numbers)",
            article(other.kind()),
            other.kind()
        ))),
    }
}

fn too_long(name: &str, at: usize, n: usize) -> FnError {
    FnError::new(format!(
        "{name}: input {at} has {n} entries, over the limit of {MAX_ELEMENTS}"
    ))
}

/// A vector result in `form`.
pub fn vector_value(v: &[f32], form: VecForm) -> Value {
    match form {
        VecForm::Bytes => {
            let mut out = Vec::with_capacity(v.len() * 4);
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
            Value::Bytes(Bytes::from(out))
        }
        VecForm::Array => Value::Array(v.iter().map(|x| Value::Float(f64::from(*x))).collect()),
    }
}

/// Decodes a vector value (either form) to f32s, for tests and callers.
pub fn vector_from_value(v: &Value) -> Result<Vec<f32>, FnError> {
    vector_input("vector", 0, v).map(|(v, _)| v)
}

// ----------------------------------------------------------------------------------------
// f32 matrices
// ----------------------------------------------------------------------------------------

/// A dense row-major f32 matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct MatF32 {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl MatF32 {
    /// Rounds every entry to the nearest f32.
    pub fn from_f64(m: &Matrix) -> MatF32 {
        MatF32 {
            rows: m.rows(),
            cols: m.cols(),
            data: m.data().iter().map(|x| *x as f32).collect(),
        }
    }

    /// The matrix value (map form), entries widened exactly to f64.
    pub fn to_value(&self) -> Value {
        let wide: Vec<f64> = self.data.iter().map(|x| f64::from(*x)).collect();
        linalg::to_value(self.rows, self.cols, &wide)
    }

    /// Parses a matrix input of `name` at 0-based `pos`.
    pub fn input(name: &str, pos: usize, v: &Value) -> Result<MatF32, FnError> {
        linalg::from_value(v)
            .map(|m| MatF32::from_f64(&m))
            .map_err(|e| FnError::new(format!("{name}: input {}: {e}", pos.saturating_add(1))))
    }

    /// `"3x4"`.
    pub fn shape_str(&self) -> String {
        format!("{}x{}", self.rows, self.cols)
    }
}

/// Decodes a matrix result (the map form) to f32 entries, for tests and callers.
pub fn matrix_from_value(v: &Value) -> Result<MatF32, FnError> {
    linalg::from_value(v).map(|m| MatF32::from_f64(&m))
}

//! Linear-algebra built-ins over dense `f64` matrix blocks, computed with
//! [faer](https://docs.rs/faer) (pure Rust: no BLAS, LAPACK or C toolchain).
//!
//! Every function gets `inputs` = the task's dependency outputs in order, then its args
//! (input positions in error messages are 1-based, as for the other built-ins). None of
//! them panics on bad input: a wrong count, kind or shape is a task error naming the
//! function, the input and the shapes involved.
//!
//! # The matrix value
//!
//! A matrix (a *block*) travels as a [`Value::Map`] with exactly three keys:
//!
//! | key       | value                                                                    |
//! |-----------|--------------------------------------------------------------------------|
//! | `"rows"`  | `Int` ≥ 0, the number of rows `m`                                        |
//! | `"cols"`  | `Int` ≥ 0, the number of columns `n`                                     |
//! | `"f64le"` | `Bytes` of length `8·m·n`: the entries in row-major order (entry (i, j) at byte `8·(i·n + j)`), each an IEEE-754 binary64 in little-endian byte order |
//!
//! That is 8 bytes an entry plus a few dozen bytes of MessagePack framing, so a 64×64
//! block (32 KiB) travels inline and a 128×128 block (128 KiB) through the object store.
//! [`to_value`] and [`from_value`] (or [`Matrix::to_value`] / [`Matrix::from_value`])
//! convert. A map with any other key, a missing key or a wrong byte length is rejected.
//!
//! As an input, a matrix may also be written as an array of rows of numbers,
//! `[[1, 2.5], [3, 4]]` (all rows the same length, ints converted to the nearest `f64`;
//! `[]` is the 0×0 matrix), which is handy in DAG files. Results are always the map form.
//! Sizes are limited to [`MAX_ELEMENTS`] (2^26) entries, 512 MiB.
//!
//! # Functions
//!
//! | name                                 | result                                                               |
//! |--------------------------------------|----------------------------------------------------------------------|
//! | `matrix(rows, cols, seed)`           | the rows×cols pseudo-random matrix, entry (i, j) = [`entry`]`(seed, i, j)` |
//! | `block(rows, cols, seed, row0, col0)`| the rows×cols sub-block at (row0, col0) of that same global matrix: entry (i, j) = `entry(seed, row0 + i, col0 + j)` |
//! | `matmul(a, b)`                       | the product a·b (m×k times k×n gives m×n)                            |
//! | `madd(a, …)`                         | the entrywise sum of ≥ 1 same-shape matrices, added left to right    |
//! | `vstack(a, …)`                       | ≥ 1 matrices with the same column count, stacked top to bottom       |
//! | `qr_r(a)`                            | the R factor of a = QR (min(m,n)×n, upper triangular, diagonal ≥ 0)  |
//! | `svd_values(a)`                      | the min(m,n) singular values, descending, as an array of floats      |
//! | `frobenius(a)`                       | the Frobenius norm √(Σ a_ij²) as a float                             |
//! | `max_abs_diff(a, b)`                 | max \|a_ij − b_ij\| over same-shape matrices as a float (0 if empty) |
//!
//! `rows`, `cols`, `row0` and `col0` are non-negative ints; `seed` is any int, taken as
//! its 64-bit two's-complement pattern (`seed mod 2^64`). A call is heavy (runs on the
//! blocking pool, off the slot's thread) when its matrix inputs, or the block it
//! generates, hold more than [`HEAVY_ELEMENTS`] (64×64) entries in all. Each call is
//! single-threaded: parallelism comes from running many blocks at once.
//!
//! ## The pseudo-random entries (reproducible bit for bit)
//!
//! With all arithmetic on unsigned 64-bit integers modulo 2^64 (`^` is xor, `>>` a
//! logical shift):
//!
//! ```text
//! splitmix64(x):  z = x + 0x9E3779B97F4A7C15
//!                 z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//!                 z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//!                 return z ^ (z >> 31)
//! h(seed, i, j) = splitmix64(splitmix64(splitmix64(seed) ^ i) ^ j)
//! entry(seed, i, j) = (h(seed, i, j) >> 11) · 2^-52 − 1.0
//! ```
//!
//! `(h >> 11)` is an integer in [0, 2^53), so the entry is exactly representable and lies
//! in [−1, 1). In Python: `((h >> 11) * 2.0**-52) - 1.0` gives the same bits.
//!
//! ## Exact semantics of the numeric functions
//!
//! - `matmul`, `qr_r` and `svd_values` use faer's kernels; their results agree with
//!   any other correct implementation to rounding (not bit for bit).
//! - `madd` adds in input order: `((a + b) + c) + …`, entry by entry.
//! - `frobenius` sums the squares in row-major order, left to right, then takes the
//!   square root (so `math.sqrt(sum(x * x for x in row_major))` reproduces it).
//! - `max_abs_diff` is NaN if any difference is NaN.
//! - `qr_r(a)`: for an m×n `a` and k = min(m, n), the k×n upper-triangular (trapezoidal
//!   when m < n) R with a = Q·R for some m×k Q with orthonormal columns, each row
//!   scaled by ±1 so that every diagonal entry is ≥ 0 (which makes R unique when a has
//!   full column rank). Entries below the diagonal are exactly 0. Since Rᵀ·R = aᵀ·a,
//!   R has the singular values of `a`: TSQR is `qr_r` of each row block, then
//!   `qr_r(vstack(r1, r2))` up a reduction tree, then `svd_values` of the root.
//! - `qr_r` and `svd_values` reject a matrix with a NaN or infinite entry.

use super::builtins::{article, expect_count};
use super::{FnError, Function, Registry, WarmState};
use bytes::Bytes;
use faer::diag::Diag;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::{matmul as faer_matmul, qr, svd};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rukong_core::Value;
use std::collections::BTreeMap;

/// Calls whose matrices hold more than this many entries in all (a 64×64 block) are
/// heavy: they run on the blocking pool.
pub const HEAVY_ELEMENTS: usize = 64 * 64;

/// The most entries a matrix may have: 2^26 (512 MiB of `f64`, the size of the default
/// object limit, so a result this large only travels where the limit was raised).
pub const MAX_ELEMENTS: usize = 1 << 26;

/// Registers the linear-algebra built-ins under their names.
pub fn register_all(r: &mut Registry) {
    r.register("matrix", MatrixFn)
        .register("block", BlockFn)
        .register("matmul", MatmulFn)
        .register("madd", MaddFn)
        .register("vstack", VstackFn)
        .register("qr_r", QrRFn)
        .register("svd_values", SvdValuesFn)
        .register("frobenius", FrobeniusFn)
        .register("max_abs_diff", MaxAbsDiffFn);
}

/// The names [`register_all`] registers, in order.
pub const NAMES: [&str; 9] = [
    "matrix",
    "block",
    "matmul",
    "madd",
    "vstack",
    "qr_r",
    "svd_values",
    "frobenius",
    "max_abs_diff",
];

// ----------------------------------------------------------------------------------------
// The matrix type and its value form
// ----------------------------------------------------------------------------------------

/// A dense row-major `f64` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// A rows×cols matrix from its row-major entries; `None` if `data.len() != rows·cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Option<Matrix> {
        (rows.checked_mul(cols) == Some(data.len())).then_some(Matrix { rows, cols, data })
    }

    /// The rows×cols zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Matrix {
        Matrix {
            rows,
            cols,
            data: vec![0.0; rows.saturating_mul(cols)],
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The entries in row-major order.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    pub fn into_data(self) -> Vec<f64> {
        self.data
    }

    /// Entry (i, j), or `None` outside the matrix.
    pub fn get(&self, i: usize, j: usize) -> Option<f64> {
        if i < self.rows && j < self.cols {
            self.data.get(i * self.cols + j).copied()
        } else {
            None
        }
    }

    /// The `rows`×`cols` sub-block at (`row0`, `col0`), clipped to the matrix.
    pub fn sub(&self, row0: usize, col0: usize, rows: usize, cols: usize) -> Matrix {
        let r0 = row0.min(self.rows);
        let c0 = col0.min(self.cols);
        let rows = rows.min(self.rows - r0);
        let cols = cols.min(self.cols - c0);
        let mut data = Vec::with_capacity(rows * cols);
        for i in r0..r0 + rows {
            let start = i * self.cols + c0;
            data.extend_from_slice(&self.data[start..start + cols]);
        }
        Matrix { rows, cols, data }
    }

    /// The value form (see the module docs).
    pub fn to_value(&self) -> Value {
        to_value(self.rows, self.cols, &self.data)
    }

    /// Parses the value form, or an array of rows of numbers.
    pub fn from_value(v: &Value) -> Result<Matrix, FnError> {
        from_value(v)
    }

    /// The Frobenius norm: √(Σ a_ij²), squares summed in row-major order.
    pub fn frobenius(&self) -> f64 {
        self.data.iter().fold(0.0, |acc, x| acc + x * x).sqrt()
    }

    /// max |a_ij − b_ij| (0 for empty matrices, NaN if any difference is NaN), or `None`
    /// when the shapes differ.
    pub fn max_abs_diff(&self, other: &Matrix) -> Option<f64> {
        if self.shape() != other.shape() {
            return None;
        }
        let mut m = 0.0f64;
        for (a, b) in self.data.iter().zip(&other.data) {
            let d = (a - b).abs();
            if d.is_nan() {
                return Some(f64::NAN);
            }
            m = m.max(d);
        }
        Some(m)
    }

    fn view(&self) -> MatRef<'_, f64> {
        MatRef::from_row_major_slice(&self.data, self.rows, self.cols)
    }

    /// The first entry that is NaN or infinite, as (i, j).
    fn first_non_finite(&self) -> Option<(usize, usize)> {
        let k = self.data.iter().position(|x| !x.is_finite())?;
        Some((k / self.cols.max(1), k % self.cols.max(1)))
    }
}

/// `"3x4"`.
fn shape_str(m: &Matrix) -> String {
    format!("{}x{}", m.rows, m.cols)
}

/// The value form of a rows×cols matrix with row-major entries `data` (see the module
/// docs): `{"rows": Int, "cols": Int, "f64le": Bytes}`. `data` must hold rows·cols
/// entries (extra ones are dropped, missing ones are 0).
pub fn to_value(rows: usize, cols: usize, data: &[f64]) -> Value {
    let n = rows.saturating_mul(cols);
    let mut bytes = vec![0u8; n.saturating_mul(8)];
    for (out, x) in bytes.chunks_exact_mut(8).zip(data) {
        out.copy_from_slice(&x.to_le_bytes());
    }
    let mut m = BTreeMap::new();
    m.insert("rows".to_owned(), Value::Int(clamp_i64(rows)));
    m.insert("cols".to_owned(), Value::Int(clamp_i64(cols)));
    m.insert("f64le".to_owned(), Value::Bytes(Bytes::from(bytes)));
    Value::Map(m)
}

fn clamp_i64(x: usize) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// Parses a matrix value: the map form of the module docs, or an array of rows of
/// numbers. The error says what is wrong ("the value is a string, expected a matrix …").
pub fn from_value(v: &Value) -> Result<Matrix, FnError> {
    parse(v).map_err(|e| FnError::new(format!("the value {e}")))
}

const EXPECTED_MATRIX: &str = "a matrix (a map {rows, cols, f64le} or an array of rows of numbers)";

/// Parses a matrix; the error continues a sentence whose subject is the value ("is a
/// string, expected …").
fn parse(v: &Value) -> Result<Matrix, String> {
    match v {
        Value::Map(m) => parse_map(m),
        Value::Array(rows) => parse_rows(rows),
        other => Err(format!(
            "is {} {}, expected {EXPECTED_MATRIX}",
            article(other.kind()),
            other.kind()
        )),
    }
}

fn parse_map(m: &BTreeMap<String, Value>) -> Result<Matrix, String> {
    if let Some(k) = m
        .keys()
        .find(|k| !matches!(k.as_str(), "rows" | "cols" | "f64le"))
    {
        return Err(format!(
            "is not a matrix: unexpected key {k:?} (a matrix map has exactly rows, cols and f64le)"
        ));
    }
    let dim = |key: &str| -> Result<usize, String> {
        match m.get(key) {
            None => Err(format!("is not a matrix: missing key {key:?}")),
            Some(Value::Int(i)) if *i >= 0 => usize::try_from(*i)
                .map_err(|_| format!("is not a matrix: {key} = {i} is too large")),
            Some(Value::Int(i)) => Err(format!(
                "is not a matrix: {key} must be non-negative, got {i}"
            )),
            Some(other) => Err(format!(
                "is not a matrix: {key} is {} {}, expected a non-negative int",
                article(other.kind()),
                other.kind()
            )),
        }
    };
    let rows = dim("rows")?;
    let cols = dim("cols")?;
    let n = element_count(rows, cols).map_err(|e| format!("is not a matrix: {e}"))?;
    let bytes = match m.get("f64le") {
        None => return Err("is not a matrix: missing key \"f64le\"".to_owned()),
        Some(Value::Bytes(b)) => b,
        Some(other) => {
            return Err(format!(
                "is not a matrix: f64le is {} {}, expected bytes",
                article(other.kind()),
                other.kind()
            ));
        }
    };
    if bytes.len() != n * 8 {
        return Err(format!(
            "is not a matrix: f64le has {} bytes, expected {} ({rows}x{cols} entries of 8 bytes)",
            bytes.len(),
            n * 8
        ));
    }
    let mut data = vec![0.0f64; n];
    for (x, c) in data.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        *x = f64::from_le_bytes(b);
    }
    Ok(Matrix { rows, cols, data })
}

fn parse_rows(rows: &[Value]) -> Result<Matrix, String> {
    let mut cols = None;
    let mut data = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Array(row) = row else {
            return Err(format!(
                "is not a matrix: row {} is {} {}, expected an array of numbers",
                i + 1,
                article(row.kind()),
                row.kind()
            ));
        };
        match cols {
            None => {
                cols = Some(row.len());
                element_count(rows.len(), row.len())
                    .map_err(|e| format!("is not a matrix: {e}"))?;
                data.reserve(rows.len() * row.len());
            }
            Some(c) if c != row.len() => {
                return Err(format!(
                    "is not a matrix: row {} has {} entries, row 1 has {c}",
                    i + 1,
                    row.len()
                ));
            }
            Some(_) => {}
        }
        for (j, x) in row.iter().enumerate() {
            data.push(match x {
                Value::Float(f) => *f,
                Value::Int(n) => *n as f64,
                other => {
                    return Err(format!(
                        "is not a matrix: entry ({}, {}) is {} {}, expected a number",
                        i + 1,
                        j + 1,
                        article(other.kind()),
                        other.kind()
                    ));
                }
            });
        }
    }
    Ok(Matrix {
        rows: rows.len(),
        cols: cols.unwrap_or(0),
        data,
    })
}

/// rows·cols, if within [`MAX_ELEMENTS`].
fn element_count(rows: usize, cols: usize) -> Result<usize, String> {
    match rows.checked_mul(cols) {
        Some(n) if n <= MAX_ELEMENTS => Ok(n),
        _ => Err(format!(
            "{rows}x{cols} is over the limit of {MAX_ELEMENTS} entries"
        )),
    }
}

/// The entry count of a matrix input, read cheaply (for [`Function::is_heavy`]).
fn approx_elements(v: &Value) -> usize {
    match v {
        Value::Map(m) => match m.get("f64le") {
            Some(Value::Bytes(b)) => b.len() / 8,
            _ => 0,
        },
        Value::Array(rows) => match rows.first() {
            Some(Value::Array(r)) => rows.len().saturating_mul(r.len()),
            _ => rows.len(),
        },
        _ => 0,
    }
}

fn inputs_heavy(inputs: &[Value]) -> bool {
    inputs
        .iter()
        .fold(0usize, |acc, v| acc.saturating_add(approx_elements(v)))
        > HEAVY_ELEMENTS
}

// ----------------------------------------------------------------------------------------
// Error helpers (the same wording as the other built-ins)
// ----------------------------------------------------------------------------------------

fn expect_some(name: &str, inputs: &[Value]) -> Result<(), FnError> {
    if inputs.is_empty() {
        Err(FnError::new(format!(
            "{name}: expects at least 1 input, got 0"
        )))
    } else {
        Ok(())
    }
}

/// Input `index` (0-based) as a matrix, or an error naming the function and input.
fn matrix_input(name: &str, index: usize, v: &Value) -> Result<Matrix, FnError> {
    parse(v).map_err(|e| FnError::new(format!("{name}: input {} {e}", index + 1)))
}

fn matrix_inputs(name: &str, inputs: &[Value]) -> Result<Vec<Matrix>, FnError> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, v)| matrix_input(name, i, v))
        .collect()
}

fn int_input(name: &str, what: &str, index: usize, v: &Value) -> Result<i64, FnError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(FnError::new(format!(
            "{name}: {what} (input {}) is {} {}, expected an int",
            index + 1,
            article(other.kind()),
            other.kind()
        ))),
    }
}

fn dim_input(name: &str, what: &str, index: usize, v: &Value) -> Result<usize, FnError> {
    let i = int_input(name, what, index, v)?;
    usize::try_from(i).map_err(|_| {
        FnError::new(format!(
            "{name}: {what} (input {}) must be non-negative, got {i}",
            index + 1
        ))
    })
}

fn non_finite_check(name: &str, m: &Matrix) -> Result<(), FnError> {
    match m.first_non_finite() {
        None => Ok(()),
        Some((i, j)) => Err(FnError::new(format!(
            "{name}: entry ({}, {}) is {}, expected a finite number",
            i + 1,
            j + 1,
            m.data[i * m.cols + j]
        ))),
    }
}

// ----------------------------------------------------------------------------------------
// Kernels (also used by the single-node references)
// ----------------------------------------------------------------------------------------

/// How many threads a kernel may use. The built-ins use [`Threads::One`]; a single-node
/// reference uses [`Threads::All`] (rayon's pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    One,
    All,
}

impl Threads {
    fn par(self) -> Par {
        match self {
            Threads::One => Par::Seq,
            Threads::All => Par::rayon(0),
        }
    }
}

/// splitmix64's output function (see the module docs).
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn row_key(seed: u64, i: u64) -> u64 {
    splitmix64(splitmix64(seed) ^ i)
}

#[inline]
fn unit(h: u64) -> f64 {
    // (h >> 11) < 2^53: exact in f64, times 2^-52 is exact, minus 1 is exact.
    (h >> 11) as f64 * (1.0 / (1u64 << 52) as f64) - 1.0
}

/// Entry (i, j) of the global pseudo-random matrix `seed`, in [−1, 1):
/// `(splitmix64(splitmix64(splitmix64(seed) ^ i) ^ j) >> 11) · 2^-52 − 1`.
pub fn entry(seed: u64, i: u64, j: u64) -> f64 {
    unit(splitmix64(row_key(seed, i) ^ j))
}

/// The rows×cols block at (row0, col0) of the global pseudo-random matrix `seed`:
/// entry (i, j) = [`entry`]`(seed, row0 + i, col0 + j)`. What `block` computes.
pub fn generate(rows: usize, cols: usize, seed: u64, row0: u64, col0: u64) -> Matrix {
    let mut data = Vec::with_capacity(rows.saturating_mul(cols));
    for i in 0..rows as u64 {
        let key = row_key(seed, row0.wrapping_add(i));
        data.extend((0..cols as u64).map(|j| unit(splitmix64(key ^ col0.wrapping_add(j)))));
    }
    Matrix { rows, cols, data }
}

/// a·b, or an error naming both shapes when a's columns ≠ b's rows.
pub fn matmul(a: &Matrix, b: &Matrix, threads: Threads) -> Result<Matrix, FnError> {
    if a.cols != b.rows {
        return Err(FnError::new(format!(
            "matmul: shape mismatch: a is {}, b is {} (a has {} columns, b has {} rows)",
            shape_str(a),
            shape_str(b),
            a.cols,
            b.rows
        )));
    }
    let n = element_count(a.rows, b.cols).map_err(|e| FnError::new(format!("matmul: {e}")))?;
    let mut out = vec![0.0; n];
    if a.cols > 0 && n > 0 {
        let dst = MatMut::from_row_major_slice_mut(&mut out, a.rows, b.cols);
        faer_matmul::matmul(dst, Accum::Replace, a.view(), b.view(), 1.0, threads.par());
    }
    Ok(Matrix {
        rows: a.rows,
        cols: b.cols,
        data: out,
    })
}

/// The entrywise sum, left to right; an error naming the shapes if they differ.
pub fn madd(ms: &[Matrix]) -> Result<Matrix, FnError> {
    let Some(first) = ms.first() else {
        return Err(FnError::new("madd: expects at least 1 input, got 0"));
    };
    for (i, m) in ms.iter().enumerate().skip(1) {
        if m.shape() != first.shape() {
            return Err(FnError::new(format!(
                "madd: shape mismatch: input 1 is {}, input {} is {}",
                shape_str(first),
                i + 1,
                shape_str(m)
            )));
        }
    }
    let mut out = first.clone();
    for m in &ms[1..] {
        for (o, x) in out.data.iter_mut().zip(&m.data) {
            *o += x;
        }
    }
    Ok(out)
}

/// The matrices stacked top to bottom; an error naming the shapes if column counts differ.
pub fn vstack(ms: &[Matrix]) -> Result<Matrix, FnError> {
    let Some(first) = ms.first() else {
        return Err(FnError::new("vstack: expects at least 1 input, got 0"));
    };
    for (i, m) in ms.iter().enumerate().skip(1) {
        if m.cols != first.cols {
            return Err(FnError::new(format!(
                "vstack: column counts differ: input 1 is {}, input {} is {}",
                shape_str(first),
                i + 1,
                shape_str(m)
            )));
        }
    }
    let rows = ms
        .iter()
        .try_fold(0usize, |acc, m| acc.checked_add(m.rows))
        .unwrap_or(usize::MAX);
    let n = element_count(rows, first.cols).map_err(|e| FnError::new(format!("vstack: {e}")))?;
    let mut data = Vec::with_capacity(n);
    for m in ms {
        data.extend_from_slice(&m.data);
    }
    Ok(Matrix {
        rows,
        cols: first.cols,
        data,
    })
}

/// The R factor of a = QR: min(m,n)×n, upper triangular, non-negative diagonal (see the
/// module docs). Errors on a NaN or infinite entry.
pub fn qr_r(a: &Matrix, threads: Threads) -> Result<Matrix, FnError> {
    non_finite_check("qr_r", a)?;
    let (m, n) = a.shape();
    let k = m.min(n);
    let mut r = Matrix::zeros(k, n);
    if k == 0 {
        return Ok(r);
    }
    // Householder QR works column by column: factor a column-major copy.
    let mut qr_mat = Mat::<f64>::from_fn(m, n, |i, j| a.data[i * n + j]);
    let par = threads.par();
    let block_size = qr::no_pivoting::factor::recommended_block_size::<f64>(m, n);
    let mut q_coeff = Mat::<f64>::zeros(block_size, k);
    let mut mem = MemBuffer::new(qr::no_pivoting::factor::qr_in_place_scratch::<f64>(
        m,
        n,
        block_size,
        par,
        Default::default(),
    ));
    qr::no_pivoting::factor::qr_in_place(
        qr_mat.as_mut(),
        q_coeff.as_mut(),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    );
    for i in 0..k {
        // Row i of R is ±(row i of the factor's upper triangle), signed so R_ii ≥ 0.
        let sign = if qr_mat[(i, i)] < 0.0 { -1.0 } else { 1.0 };
        let row = &mut r.data[i * n..(i + 1) * n];
        for (j, out) in row.iter_mut().enumerate().skip(i) {
            // `+ 0.0` turns a -0.0 into 0.0.
            *out = sign * qr_mat[(i, j)] + 0.0;
        }
    }
    Ok(r)
}

/// The min(m,n) singular values of `a`, descending. Errors on a NaN or infinite entry.
pub fn singular_values(a: &Matrix, threads: Threads) -> Result<Vec<f64>, FnError> {
    non_finite_check("svd_values", a)?;
    let (m, n) = a.shape();
    let k = m.min(n);
    if k == 0 {
        return Ok(Vec::new());
    }
    let par = threads.par();
    let mut s = Diag::<f64>::zeros(k);
    let mut mem = MemBuffer::new(svd::svd_scratch::<f64>(
        m,
        n,
        svd::ComputeSvdVectors::No,
        svd::ComputeSvdVectors::No,
        par,
        Default::default(),
    ));
    svd::svd(
        a.view(),
        s.as_mut(),
        None,
        None,
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|e| FnError::new(format!("svd_values: the SVD did not converge ({e:?})")))?;
    Ok(s.column_vector().iter().copied().collect())
}

// ----------------------------------------------------------------------------------------
// The functions (in `functions.rs`)
// ----------------------------------------------------------------------------------------

mod functions;
pub use functions::{
    BlockFn, FrobeniusFn, MaddFn, MatmulFn, MatrixFn, MaxAbsDiffFn, QrRFn, SvdValuesFn, VstackFn,
};

// ----------------------------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;

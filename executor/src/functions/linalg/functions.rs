//! The linear-algebra built-ins as [`Function`]s: argument checks, the heavy/light split,
//! and the calls into the kernels of the parent module.

use super::*;

/// Checks `block`/`matrix` args and generates the block.
fn generate_call(name: &str, inputs: &[Value], offsets: bool) -> Result<Value, FnError> {
    expect_count(name, inputs, if offsets { 5 } else { 3 })?;
    let rows = dim_input(name, "rows", 0, &inputs[0])?;
    let cols = dim_input(name, "cols", 1, &inputs[1])?;
    let seed = int_input(name, "seed", 2, &inputs[2])? as u64;
    let (row0, col0) = if offsets {
        (
            dim_input(name, "row0", 3, &inputs[3])? as u64,
            dim_input(name, "col0", 4, &inputs[4])? as u64,
        )
    } else {
        (0, 0)
    };
    element_count(rows, cols).map_err(|e| FnError::new(format!("{name}: {e}")))?;
    Ok(generate(rows, cols, seed, row0, col0).to_value())
}

/// Whether a generated rows×cols block (the first two inputs) is over [`HEAVY_ELEMENTS`].
fn generate_heavy(inputs: &[Value]) -> bool {
    match inputs {
        [Value::Int(r), Value::Int(c), ..] => {
            r.saturating_mul(*c).unsigned_abs() > HEAVY_ELEMENTS as u64
        }
        _ => false,
    }
}

/// `matrix(rows, cols, seed)`: the rows×cols pseudo-random matrix with entry (i, j) =
/// [`entry`]`(seed, i, j)` in [−1, 1). Equal to `block(rows, cols, seed, 0, 0)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatrixFn;

impl Function for MatrixFn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        generate_call("matrix", &inputs, false)
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        generate_heavy(inputs)
    }
}

/// `block(rows, cols, seed, row0, col0)`: the rows×cols sub-block at (row0, col0) of the
/// global pseudo-random matrix `seed`: entry (i, j) = [`entry`]`(seed, row0 + i, col0 +
/// j)`. Tiles of a blocked matrix therefore equal the pieces of the unblocked one.
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockFn;

impl Function for BlockFn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        generate_call("block", &inputs, true)
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        generate_heavy(inputs)
    }
}

/// `matmul(a, b)`: the matrix product a·b (m×k times k×n is m×n); a shape mismatch is an
/// error naming both shapes.
#[derive(Clone, Copy, Debug, Default)]
pub struct MatmulFn;

impl Function for MatmulFn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_count("matmul", &inputs, 2)?;
        let a = matrix_input("matmul", 0, &inputs[0])?;
        let b = matrix_input("matmul", 1, &inputs[1])?;
        Ok(matmul(&a, &b, Threads::One)?.to_value())
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        inputs_heavy(inputs)
    }
}

/// `madd(a, …)`: the entrywise sum of one or more same-shape matrices, added left to
/// right in input order.
#[derive(Clone, Copy, Debug, Default)]
pub struct MaddFn;

impl Function for MaddFn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_some("madd", &inputs)?;
        let ms = matrix_inputs("madd", &inputs)?;
        Ok(madd(&ms)?.to_value())
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        inputs_heavy(inputs)
    }
}

/// `vstack(a, …)`: one or more matrices with the same column count, stacked top to
/// bottom (the rows of the first input, then the second's, …).
#[derive(Clone, Copy, Debug, Default)]
pub struct VstackFn;

impl Function for VstackFn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_some("vstack", &inputs)?;
        let ms = matrix_inputs("vstack", &inputs)?;
        Ok(vstack(&ms)?.to_value())
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        inputs_heavy(inputs)
    }
}

/// `qr_r(a)`: for an m×n `a` and k = min(m, n), the k×n upper-triangular R of a = Q·R
/// (Q m×k with orthonormal columns), rows signed so the diagonal is ≥ 0 and entries below
/// it exactly 0. Unique when `a` has full column rank. NaN or infinite entries are an
/// error.
#[derive(Clone, Copy, Debug, Default)]
pub struct QrRFn;

impl Function for QrRFn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_count("qr_r", &inputs, 1)?;
        let a = matrix_input("qr_r", 0, &inputs[0])?;
        Ok(qr_r(&a, Threads::One)?.to_value())
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        inputs_heavy(inputs)
    }
}

/// `svd_values(a)`: the min(m, n) singular values of `a` in descending order, as an array
/// of floats. NaN or infinite entries are an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct SvdValuesFn;

impl Function for SvdValuesFn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_count("svd_values", &inputs, 1)?;
        let a = matrix_input("svd_values", 0, &inputs[0])?;
        let s = singular_values(&a, Threads::One)?;
        Ok(Value::Array(s.into_iter().map(Value::Float).collect()))
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        inputs_heavy(inputs)
    }
}

/// `frobenius(a)`: the Frobenius norm √(Σ a_ij²) as a float, the squares summed in
/// row-major order.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrobeniusFn;

impl Function for FrobeniusFn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_count("frobenius", &inputs, 1)?;
        let a = matrix_input("frobenius", 0, &inputs[0])?;
        Ok(Value::Float(a.frobenius()))
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        inputs_heavy(inputs)
    }
}

/// `max_abs_diff(a, b)`: max |a_ij − b_ij| over two same-shape matrices as a float (0 for
/// empty ones, NaN if any difference is NaN); a shape mismatch is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct MaxAbsDiffFn;

impl Function for MaxAbsDiffFn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_count("max_abs_diff", &inputs, 2)?;
        let a = matrix_input("max_abs_diff", 0, &inputs[0])?;
        let b = matrix_input("max_abs_diff", 1, &inputs[1])?;
        a.max_abs_diff(&b).map(Value::Float).ok_or_else(|| {
            FnError::new(format!(
                "max_abs_diff: shape mismatch: a is {}, b is {}",
                shape_str(&a),
                shape_str(&b)
            ))
        })
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        inputs_heavy(inputs)
    }
}

//! `gpu_matmul(a, b)`: the f32 product of two matrices (see the [module docs](super) for
//! the value format and the precision).
//!
//! - Warm state: the device's cuBLAS handle (stages `context` and `cublas_handle` on the
//!   first warm-up of the device).
//! - CUDA: cuBLAS is column-major and our matrices are row-major. A row-major m×n buffer is
//!   the column-major n×m of its transpose, so C = A·B is computed as Cᵀ = Bᵀ·Aᵀ: sgemm
//!   with (m, n, k) = (n, m, k), first operand the B buffer (ld n), second the A buffer
//!   (ld k), result ld n, which leaves C row-major. A bundle of same-shape pairs is one
//!   `gemm_strided_batched` launch over packed buffers (one copy in per operand, one out).
//! - CPU and simulated device: faer's f32 kernel, one pair at a time (so a bundled result
//!   is bit-identical to the unbundled one). The simulated device accounts one launch per
//!   group of same-shape pairs, of work m·k·n / 256³ per pair.
//!
//! A bundle with several shapes runs one launch per shape, in order of first appearance;
//! a pair with a bad input fails alone.

#[cfg(feature = "cuda")]
use super::device_error;
use super::{MatF32, init_device, is_reference, reference_launch, state_as};
use crate::device::{Backend, Device};
use crate::functions::builtins::expect_count;
use crate::functions::{FnError, Function, InitCtx, WarmState};
use faer::{Accum, MatMut, MatRef, Par};
use rukong_core::Value;
use std::sync::Arc;

const NAME: &str = "gpu_matmul";

/// The `gpu_matmul` built-in.
pub struct GpuMatmul;

/// Warm state: the device, and its cuBLAS handle on a GPU.
struct MatmulState {
    device: Arc<dyn Device>,
    #[cfg(feature = "cuda")]
    blas: Option<Arc<cudarc::cublas::CudaBlas>>,
}

/// One pair's work in simulated-device units: a 256×256 by 256×256 product is 1.
pub fn work_units(m: usize, k: usize, n: usize) -> f64 {
    (m as f64) * (k as f64) * (n as f64) / (256.0f64).powi(3)
}

impl Function for GpuMatmul {
    fn init(&self, ctx: &InitCtx) -> Result<Option<WarmState>, FnError> {
        let device = init_device(ctx);
        #[cfg(feature = "cuda")]
        let mut blas = None;
        match device.backend() {
            Backend::Cpu => {}
            Backend::Simulated(sim) => {
                sim.warm_cublas(&ctx.log);
                ctx.log.bind_to_device();
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda(cuda) => {
                blas = Some(
                    cuda.blas(&ctx.log)
                        .map_err(|e| device_error(NAME, "warm-up", e))?,
                );
                ctx.log.bind_to_device();
            }
        }
        Ok(Some(Arc::new(MatmulState {
            device,
            #[cfg(feature = "cuda")]
            blas,
        })))
    }

    fn call(&self, state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        super::single(NAME, self.call_batch(state, vec![inputs]))
    }

    fn call_batch(
        &self,
        state: Option<&WarmState>,
        batch: Vec<Vec<Value>>,
    ) -> Vec<Result<Value, FnError>> {
        let st = state_as::<MatmulState>(state);
        let mut results: Vec<Option<Result<Value, FnError>>> = vec![None; batch.len()];
        // Groups of same-shape pairs, in order of first appearance: (shape, indices, pairs).
        type Group = ((usize, usize, usize), Vec<usize>, Vec<(MatF32, MatF32)>);
        let mut groups: Vec<Group> = Vec::new();
        for (i, inputs) in batch.iter().enumerate() {
            match parse(inputs) {
                Ok((a, b)) => {
                    let shape = (a.rows, a.cols, b.cols);
                    match groups.iter_mut().find(|g| g.0 == shape) {
                        Some(g) => {
                            g.1.push(i);
                            g.2.push((a, b));
                        }
                        None => groups.push((shape, vec![i], vec![(a, b)])),
                    }
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        for (_, idx, pairs) in groups {
            let out = run_group(st, pairs).map(|cs| cs.iter().map(MatF32::to_value).collect());
            super::scatter(&mut results, idx, out);
        }
        super::finish(NAME, results)
    }

    fn is_heavy(&self, _inputs: &[Value]) -> bool {
        true
    }
}

/// The two matrices of one call, checked for a matching inner dimension.
fn parse(inputs: &[Value]) -> Result<(MatF32, MatF32), FnError> {
    expect_count(NAME, inputs, 2)?;
    let a = MatF32::input(NAME, 0, &inputs[0])?;
    let b = MatF32::input(NAME, 1, &inputs[1])?;
    if a.cols != b.rows {
        return Err(FnError::new(format!(
            "{NAME}: shape mismatch: a is {}, b is {} (a has {} columns, b has {} rows)",
            a.shape_str(),
            b.shape_str(),
            a.cols,
            b.rows
        )));
    }
    let entries = a.rows.checked_mul(b.cols);
    if entries.is_none_or(|n| n > crate::functions::linalg::MAX_ELEMENTS) {
        return Err(FnError::new(format!(
            "{NAME}: the {}x{} result is over the limit of {} entries",
            a.rows,
            b.cols,
            crate::functions::linalg::MAX_ELEMENTS
        )));
    }
    Ok((a, b))
}

/// The f32 product on the CPU (faer, single-threaded, deterministic).
pub fn cpu_product(a: &MatF32, b: &MatF32) -> MatF32 {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let mut out = vec![0.0f32; m * n];
    if m > 0 && n > 0 && k > 0 {
        let dst = MatMut::from_row_major_slice_mut(&mut out, m, n);
        let lhs = MatRef::from_row_major_slice(&a.data, m, k);
        let rhs = MatRef::from_row_major_slice(&b.data, k, n);
        faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
    }
    MatF32 {
        rows: m,
        cols: n,
        data: out,
    }
}

/// Same-shape pairs as one launch on the state's device (the CPU without a state).
fn run_group(
    st: Option<&MatmulState>,
    pairs: Vec<(MatF32, MatF32)>,
) -> Result<Vec<MatF32>, FnError> {
    let Some((a0, b0)) = pairs.first() else {
        return Ok(Vec::new());
    };
    let work = work_units(a0.rows, a0.cols, b0.cols);
    let Some(st) = st else {
        return Ok(pairs.iter().map(|(a, b)| cpu_product(a, b)).collect());
    };
    if is_reference(st.device.as_ref()) {
        return Ok(reference_launch(
            st.device.as_ref(),
            pairs.len(),
            work,
            || pairs.iter().map(|(a, b)| cpu_product(a, b)).collect(),
        ));
    }
    #[cfg(feature = "cuda")]
    if let (Backend::Cuda(cuda), Some(blas)) = (st.device.backend(), &st.blas) {
        return cuda_path::batched(cuda, blas, &pairs);
    }
    Err(FnError::new(format!(
        "{NAME}: warm state has no cuBLAS handle for {}",
        st.device.label()
    )))
}

#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
mod cuda_path {
    use super::{MatF32, NAME};
    use crate::device::{Cuda, InitLog};
    use crate::functions::FnError;
    use crate::functions::gpu::device_error;
    use cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N;
    use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};

    /// Same-shape pairs as one cuBLAS launch (plain sgemm for one pair).
    pub(super) fn batched(
        cuda: &Cuda,
        blas: &CudaBlas,
        pairs: &[(MatF32, MatF32)],
    ) -> Result<Vec<MatF32>, FnError> {
        let Some((a0, b0)) = pairs.first() else {
            return Ok(Vec::new());
        };
        let (m, k, n) = (a0.rows, a0.cols, b0.cols);
        let count = pairs.len();
        let zeros = || MatF32 {
            rows: m,
            cols: n,
            data: vec![0.0; m * n],
        };
        if m == 0 || n == 0 || k == 0 {
            return Ok((0..count).map(|_| zeros()).collect());
        }
        let err = |what: &str, e: &dyn std::fmt::Display| device_error(NAME, what, e);
        let dims = |x: usize| {
            i32::try_from(x)
                .map_err(|_| FnError::new(format!("{NAME}: dimension {x} is too large for cuBLAS")))
        };
        let (mi, ki, ni, bi) = (dims(m)?, dims(k)?, dims(n)?, dims(count)?);
        let mut a_all = Vec::with_capacity(count * m * k);
        let mut b_all = Vec::with_capacity(count * k * n);
        for (a, b) in pairs {
            a_all.extend_from_slice(&a.data);
            b_all.extend_from_slice(&b.data);
        }
        let _one_at_a_time = cuda.exec_lock();
        let rt = cuda
            .runtime(&InitLog::new())
            .map_err(|e| err("context", &e))?;
        let stream = &rt.stream;
        let a_dev = stream
            .clone_htod(&a_all)
            .map_err(|e| err("copy to device", &e))?;
        let b_dev = stream
            .clone_htod(&b_all)
            .map_err(|e| err("copy to device", &e))?;
        let mut c_dev = stream
            .alloc_zeros::<f32>(count * m * n)
            .map_err(|e| err("device allocation", &e))?;
        // Row-major C = A·B as column-major Cᵀ = Bᵀ·Aᵀ (see the module docs).
        let gemm = GemmConfig {
            transa: CUBLAS_OP_N,
            transb: CUBLAS_OP_N,
            m: ni,
            n: mi,
            k: ki,
            alpha: 1.0f32,
            lda: ni,
            ldb: ki,
            beta: 0.0f32,
            ldc: ni,
        };
        // SAFETY: b_dev holds count·k·n, a_dev count·m·k and c_dev count·m·n f32s; with the
        // leading dimensions above each matrix of the batch lies inside its buffer at the
        // strides given, and all dimensions are positive.
        let launched = unsafe {
            if count == 1 {
                blas.gemm(gemm, &b_dev, &a_dev, &mut c_dev)
            } else {
                blas.gemm_strided_batched(
                    StridedBatchedConfig {
                        gemm,
                        batch_size: bi,
                        stride_a: (k * n) as i64,
                        stride_b: (m * k) as i64,
                        stride_c: (m * n) as i64,
                    },
                    &b_dev,
                    &a_dev,
                    &mut c_dev,
                )
            }
        };
        launched.map_err(|e| err("cuBLAS sgemm", &e))?;
        let c = stream
            .clone_dtoh(&c_dev)
            .map_err(|e| err("copy from device", &e))?;
        stream
            .synchronize()
            .map_err(|e| err("stream synchronize", &e))?;
        Ok(c.chunks_exact(m * n)
            .map(|chunk| MatF32 {
                rows: m,
                cols: n,
                data: chunk.to_vec(),
            })
            .collect())
    }
}

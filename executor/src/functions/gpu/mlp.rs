//! `gpu_mlp(x)`: a small fixed model, three dense 256×256 layers with ReLU (see the
//! [module docs](super) for the weights, the value format and the precision).
//!
//! - Warm state: the weights, generated from [`MLP_SEED`] (stage `weight_init`) and
//!   uploaded to the device (stage `weight_upload`, 3·(256·256 + 256)·4 = 789,504 bytes
//!   resident), plus the cuBLAS handle and the bias-and-ReLU kernel (stages `compile`,
//!   `module_load`).
//! - A call runs its rows (1 for a vector) as one forward; a bundle stacks the rows of all
//!   its invocations into one matrix and runs one batched forward (three sgemm launches
//!   and three bias-and-ReLU launches on a GPU), then splits the rows back.
//! - The simulated device counts one work unit per row.

use super::{
    MatF32, VecForm, init_device, is_reference, reference_launch, state_as, vector_input,
    vector_value,
};
use crate::device::{Backend, Device};
use crate::functions::builtins::expect_count;
use crate::functions::linalg::entry;
use crate::functions::{FnError, Function, InitCtx, WarmState};
use rukong_core::Value;
use std::sync::Arc;

const NAME: &str = "gpu_mlp";

/// The width of every layer (and of the input and output).
pub const MLP_WIDTH: usize = 256;

/// The base seed of the weights: layer l (1-based) uses `MLP_SEED + l` (see [`MlpWeights`]).
pub const MLP_SEED: u64 = 0x6d6c_7030;

/// Number of layers.
pub const MLP_LAYERS: usize = 3;

/// One dense layer: `w` is in×out row-major (entry (i, j) at `i·256 + j`), `b` has `out`
/// entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
}

/// The model's weights: layer l (1-based) has `W[i][j] = f32(entry(MLP_SEED + l, i, j)) / 16`
/// and `b[j] = f32(entry(MLP_SEED + l, 256, j)) / 16`.
#[derive(Clone, Debug, PartialEq)]
pub struct MlpWeights {
    pub layers: Vec<Layer>,
}

impl MlpWeights {
    /// The fixed weights.
    pub fn generate() -> MlpWeights {
        let n = MLP_WIDTH;
        let layers = (1..=MLP_LAYERS as u64)
            .map(|l| {
                let seed = MLP_SEED.wrapping_add(l);
                let mut w = Vec::with_capacity(n * n);
                for i in 0..n as u64 {
                    for j in 0..n as u64 {
                        w.push(entry(seed, i, j) as f32 / 16.0);
                    }
                }
                let b = (0..n as u64)
                    .map(|j| entry(seed, n as u64, j) as f32 / 16.0)
                    .collect();
                Layer { w, b }
            })
            .collect();
        MlpWeights { layers }
    }

    /// Bytes of f32 weights and biases.
    pub fn bytes(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| ((l.w.len() + l.b.len()) * 4) as u64)
            .sum()
    }
}

/// The CPU forward of `rows` rows of 256 features (row-major), in f32 with each output
/// `(Σ_k x_k·W[k][j]) + b[j]` summed in k order: a row's result never depends on the
/// others.
pub fn cpu_forward(weights: &MlpWeights, x: &[f32], rows: usize) -> Vec<f32> {
    let n = MLP_WIDTH;
    let mut cur = x.to_vec();
    let mut next = vec![0.0f32; rows * n];
    let last = weights.layers.len().saturating_sub(1);
    for (l, layer) in weights.layers.iter().enumerate() {
        for (xr, yr) in cur.chunks_exact(n).zip(next.chunks_exact_mut(n)) {
            yr.fill(0.0);
            for (xk, wrow) in xr.iter().zip(layer.w.chunks_exact(n)) {
                for (y, w) in yr.iter_mut().zip(wrow) {
                    let p = xk * w;
                    *y += p;
                }
            }
            for (y, b) in yr.iter_mut().zip(&layer.b) {
                *y += b;
                if l < last {
                    *y = y.max(0.0);
                }
            }
        }
        std::mem::swap(&mut cur, &mut next);
    }
    cur
}

/// The `gpu_mlp` built-in.
pub struct GpuMlp;

struct MlpState {
    device: Arc<dyn Device>,
    weights: Arc<MlpWeights>,
    #[cfg(feature = "cuda")]
    gpu: Option<cuda_path::GpuModel>,
}

/// How a call's input came and its result goes.
#[derive(Clone, Copy, Debug)]
enum Form {
    Vector(VecForm),
    Matrix,
}

/// One invocation's rows.
struct Item {
    rows: usize,
    x: Vec<f32>,
    form: Form,
}

impl Function for GpuMlp {
    fn init(&self, ctx: &InitCtx) -> Result<Option<WarmState>, FnError> {
        let device = init_device(ctx);
        let weights = Arc::new(ctx.log.time("weight_init", MlpWeights::generate));
        #[cfg(feature = "cuda")]
        let mut gpu = None;
        match device.backend() {
            Backend::Cpu => {}
            Backend::Simulated(sim) => {
                sim.warm_cublas(&ctx.log);
                sim.compile(&ctx.log);
                sim.load_module(&ctx.log);
                sim.upload(weights.bytes(), &ctx.log);
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda(cuda) => {
                gpu = Some(cuda_path::GpuModel::load(cuda, &weights, &ctx.log)?);
            }
        }
        Ok(Some(Arc::new(MlpState {
            device,
            weights,
            #[cfg(feature = "cuda")]
            gpu,
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
        let st = state_as::<MlpState>(state);
        super::run_parsed(NAME, &batch, parse, |items| run(st, items))
    }

    fn is_heavy(&self, _inputs: &[Value]) -> bool {
        true
    }
}

/// One input: a vector of 256 features, or a matrix of rows × 256.
fn parse(inputs: &[Value]) -> Result<Item, FnError> {
    expect_count(NAME, inputs, 1)?;
    let v = &inputs[0];
    let is_matrix = match v {
        Value::Map(_) => true,
        Value::Array(rows) => matches!(rows.first(), Some(Value::Array(_))),
        _ => false,
    };
    if is_matrix {
        let m = MatF32::input(NAME, 0, v)?;
        if m.cols != MLP_WIDTH {
            return Err(FnError::new(format!(
                "{NAME}: input 1 is a {} matrix, expected {MLP_WIDTH} columns (one row of {MLP_WIDTH} features per input)",
                m.shape_str()
            )));
        }
        return Ok(Item {
            rows: m.rows,
            x: m.data,
            form: Form::Matrix,
        });
    }
    let (x, form) = vector_input(NAME, 0, v)?;
    if x.len() != MLP_WIDTH {
        return Err(FnError::new(format!(
            "{NAME}: input 1 has {} entries, expected {MLP_WIDTH} features",
            x.len()
        )));
    }
    Ok(Item {
        rows: 1,
        x,
        form: Form::Vector(form),
    })
}

/// Stacks the items' rows, runs one forward on the state's device, splits the rows back.
fn run(st: Option<&MlpState>, items: Vec<Item>) -> Result<Vec<Value>, FnError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let rows: usize = items.iter().map(|it| it.rows).sum();
    let mut x = Vec::with_capacity(rows * MLP_WIDTH);
    for it in &items {
        x.extend_from_slice(&it.x);
    }
    let y = match st {
        None => cpu_forward(&MlpWeights::generate(), &x, rows),
        Some(st) if is_reference(st.device.as_ref()) => {
            reference_launch(st.device.as_ref(), rows, 1.0, || {
                cpu_forward(&st.weights, &x, rows)
            })
        }
        Some(st) => forward_on_gpu(st, &x, rows)?,
    };
    let mut out = Vec::with_capacity(items.len());
    let mut start = 0;
    for it in &items {
        let part = &y[start * MLP_WIDTH..(start + it.rows) * MLP_WIDTH];
        start += it.rows;
        out.push(match it.form {
            Form::Vector(f) => vector_value(part, f),
            Form::Matrix => MatF32 {
                rows: it.rows,
                cols: MLP_WIDTH,
                data: part.to_vec(),
            }
            .to_value(),
        });
    }
    Ok(out)
}

#[cfg(feature = "cuda")]
fn forward_on_gpu(st: &MlpState, x: &[f32], rows: usize) -> Result<Vec<f32>, FnError> {
    match (st.device.backend(), &st.gpu) {
        (Backend::Cuda(cuda), Some(gpu)) => gpu.forward(cuda, x, rows),
        _ => Err(no_weights(st)),
    }
}

#[cfg(not(feature = "cuda"))]
fn forward_on_gpu(st: &MlpState, _x: &[f32], _rows: usize) -> Result<Vec<f32>, FnError> {
    Err(no_weights(st))
}

fn no_weights(st: &MlpState) -> FnError {
    FnError::new(format!(
        "{NAME}: warm state has no weights on {}",
        st.device.label()
    ))
}

#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
mod cuda_path {
    use super::{MLP_WIDTH, MlpWeights, NAME};
    use crate::device::{Cuda, InitLog};
    use crate::functions::FnError;
    use crate::functions::gpu::device_error;
    use cudarc::cublas::sys::cublasOperation_t::CUBLAS_OP_N;
    use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
    use cudarc::driver::{CudaFunction, CudaSlice, LaunchConfig, PushKernelArg};
    use std::sync::Arc;

    /// Adds the bias (`b[i mod width]`) and, when `relu` is non-zero, applies ReLU.
    pub const BIAS_ACT_SRC: &str = r#"
extern "C" __global__ void bias_act(float* y, const float* b, unsigned int width,
                                    unsigned int n, int relu)
{
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = __fadd_rn(y[i], b[i % width]);
    y[i] = relu ? fmaxf(v, 0.0f) : v;
}
"#;

    /// The weights resident on the GPU, the cuBLAS handle and the bias kernel.
    pub(super) struct GpuModel {
        blas: Arc<CudaBlas>,
        bias_act: CudaFunction,
        w: Vec<CudaSlice<f32>>,
        b: Vec<CudaSlice<f32>>,
    }

    impl GpuModel {
        pub(super) fn load(
            cuda: &Cuda,
            weights: &MlpWeights,
            log: &InitLog,
        ) -> Result<GpuModel, FnError> {
            let warm = |what: &'static str| move |e| device_error(NAME, what, e);
            let blas = cuda.blas(log).map_err(warm("cuBLAS warm-up"))?;
            let ptx = cuda.compile(BIAS_ACT_SRC, log).map_err(warm("compile"))?;
            let module = cuda.load_module(ptx, log).map_err(warm("module load"))?;
            let bias_act = module
                .load_function("bias_act")
                .map_err(|e| device_error(NAME, "kernel lookup", e))?;
            let rt = cuda.runtime(log).map_err(warm("context"))?;
            let (w, b) = log
                .time("weight_upload", || {
                    let mut w = Vec::new();
                    let mut b = Vec::new();
                    for l in &weights.layers {
                        w.push(rt.stream.clone_htod(&l.w)?);
                        b.push(rt.stream.clone_htod(&l.b)?);
                    }
                    rt.stream.synchronize()?;
                    Ok::<_, cudarc::driver::DriverError>((w, b))
                })
                .map_err(|e| device_error(NAME, "weight upload", e))?;
            log.resident(weights.bytes() + BIAS_ACT_SRC.len() as u64);
            Ok(GpuModel {
                blas,
                bias_act,
                w,
                b,
            })
        }

        /// The forward of `rows` stacked rows: per layer one sgemm and one bias launch.
        pub(super) fn forward(
            &self,
            cuda: &Cuda,
            x: &[f32],
            rows: usize,
        ) -> Result<Vec<f32>, FnError> {
            let err = |what: &str, e: &dyn std::fmt::Display| device_error(NAME, what, e);
            if rows == 0 {
                return Ok(Vec::new());
            }
            let width = MLP_WIDTH as i32;
            let r = i32::try_from(rows)
                .map_err(|_| FnError::new(format!("{NAME}: {rows} rows in one launch")))?;
            let n = u32::try_from(rows * MLP_WIDTH)
                .map_err(|_| FnError::new(format!("{NAME}: {rows} rows in one launch")))?;
            let _one_at_a_time = cuda.exec_lock();
            let rt = cuda
                .runtime(&InitLog::new())
                .map_err(|e| err("context", &e))?;
            let stream = &rt.stream;
            let mut cur = stream
                .clone_htod(x)
                .map_err(|e| err("copy to device", &e))?;
            let last = self.w.len().saturating_sub(1);
            for (l, (w, b)) in self.w.iter().zip(&self.b).enumerate() {
                let mut next = stream
                    .alloc_zeros::<f32>(rows * MLP_WIDTH)
                    .map_err(|e| err("device allocation", &e))?;
                // Row-major Y = X·W as column-major Yᵀ = Wᵀ·Xᵀ (see gpu_matmul).
                let cfg = GemmConfig {
                    transa: CUBLAS_OP_N,
                    transb: CUBLAS_OP_N,
                    m: width,
                    n: r,
                    k: width,
                    alpha: 1.0f32,
                    lda: width,
                    ldb: width,
                    beta: 0.0f32,
                    ldc: width,
                };
                // SAFETY: w holds 256·256, cur and next rows·256 f32s, matching the
                // dimensions and leading dimensions above.
                unsafe { self.blas.gemm(cfg, w, &cur, &mut next) }
                    .map_err(|e| err("cuBLAS sgemm", &e))?;
                let width_u = MLP_WIDTH as u32;
                let relu: i32 = i32::from(l < last);
                let mut launch = stream.launch_builder(&self.bias_act);
                launch
                    .arg(&mut next)
                    .arg(b)
                    .arg(&width_u)
                    .arg(&n)
                    .arg(&relu);
                // SAFETY: the arguments match the kernel's signature; next holds n
                // entries and b holds width, and the kernel reads b at i mod width.
                unsafe { launch.launch(LaunchConfig::for_num_elems(n)) }
                    .map_err(|e| err("kernel launch", &e))?;
                cur = next;
            }
            let y = stream
                .clone_dtoh(&cur)
                .map_err(|e| err("copy from device", &e))?;
            stream
                .synchronize()
                .map_err(|e| err("stream synchronize", &e))?;
            Ok(y)
        }
    }
}

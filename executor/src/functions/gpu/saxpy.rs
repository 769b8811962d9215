//! `gpu_saxpy(a, x, y)`: `a·x + y` entry by entry on f32 vectors (see the
//! [module docs](super) for the value format).
//!
//! - Warm state: the kernel below, compiled with NVRTC and loaded (stages `compile` and
//!   `module_load`, after the device's `context`).
//! - A bundle is one launch over the concatenated vectors: the kernel finds each entry's
//!   invocation (and so its `a`) by binary search in the table of offsets.
//! - Rounding: `a·x` is rounded to f32, then the sum is. The kernel uses `__fmul_rn` and
//!   `__fadd_rn`, which the compiler never fuses into an FMA, and Rust never fuses either,
//!   so the GPU, the CPU and the simulated device give bit-identical results.
//!
//! The simulated device counts one work unit per 2^20 entries.

#[cfg(feature = "cuda")]
use super::device_error;
use super::{
    VecForm, init_device, is_reference, reference_launch, state_as, vector_input, vector_value,
};
use crate::device::{Backend, Device};
use crate::functions::{FnError, Function, InitCtx, WarmState};
use rukong_core::Value;
use std::sync::Arc;

const NAME: &str = "gpu_saxpy";

/// The CUDA kernel: entry `i` of the concatenated vectors belongs to the invocation `k`
/// with `offsets[k] <= i < offsets[k + 1]`.
pub const KERNEL_SRC: &str = r#"
extern "C" __global__ void saxpy_batched(
    const float* a, const unsigned int* offsets, unsigned int items,
    const float* x, float* y, unsigned int n)
{
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    unsigned int lo = 0, hi = items;
    while (hi - lo > 1) {
        unsigned int mid = lo + (hi - lo) / 2;
        if (offsets[mid] <= i) lo = mid; else hi = mid;
    }
    y[i] = __fadd_rn(__fmul_rn(a[lo], x[i]), y[i]);
}
"#;

/// The most entries in one launch (a bundle over this runs as several launches).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
const LAUNCH_ENTRIES: usize = 1 << 28;

/// The `gpu_saxpy` built-in.
pub struct GpuSaxpy;

struct SaxpyState {
    device: Arc<dyn Device>,
    #[cfg(feature = "cuda")]
    kernel: Option<cudarc::driver::CudaFunction>,
}

/// One invocation, parsed.
struct Item {
    a: f32,
    x: Vec<f32>,
    y: Vec<f32>,
    form: VecForm,
}

/// Work in simulated-device units: 2^20 entries is 1.
pub fn work_units(entries: usize) -> f64 {
    entries as f64 / f64::from(1u32 << 20)
}

impl Function for GpuSaxpy {
    fn init(&self, ctx: &InitCtx) -> Result<Option<WarmState>, FnError> {
        let device = init_device(ctx);
        #[cfg(feature = "cuda")]
        let mut kernel = None;
        match device.backend() {
            Backend::Cpu => {}
            Backend::Simulated(sim) => {
                sim.warm_context(&ctx.log);
                sim.compile(&ctx.log);
                sim.load_module(&ctx.log);
                ctx.log.resident(KERNEL_SRC.len() as u64);
            }
            #[cfg(feature = "cuda")]
            Backend::Cuda(cuda) => {
                let warm = |what| move |e| device_error(NAME, what, e);
                cuda.runtime(&ctx.log).map_err(warm("context"))?;
                let ptx = cuda
                    .compile(KERNEL_SRC, &ctx.log)
                    .map_err(warm("compile"))?;
                let module = cuda
                    .load_module(ptx, &ctx.log)
                    .map_err(warm("module load"))?;
                kernel = Some(
                    module
                        .load_function("saxpy_batched")
                        .map_err(|e| device_error(NAME, "kernel lookup", e))?,
                );
                ctx.log.resident(KERNEL_SRC.len() as u64);
            }
        }
        Ok(Some(Arc::new(SaxpyState {
            device,
            #[cfg(feature = "cuda")]
            kernel,
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
        let st = state_as::<SaxpyState>(state);
        super::run_parsed(NAME, &batch, parse, |items| {
            let forms: Vec<VecForm> = items.iter().map(|it| it.form).collect();
            let ys = run(st, items)?;
            Ok(ys
                .iter()
                .zip(forms)
                .map(|(y, form)| vector_value(y, form))
                .collect())
        })
    }

    fn is_heavy(&self, _inputs: &[Value]) -> bool {
        true
    }
}

/// `a` (a number, first or last) and the vectors `x`, `y` of one length.
fn parse(inputs: &[Value]) -> Result<Item, FnError> {
    if inputs.len() != 3 {
        return Err(FnError::new(format!(
            "{NAME}: expects 3 inputs (a number a and vectors x, y), got {}",
            inputs.len()
        )));
    }
    let number = |v: &Value| match v {
        Value::Float(f) => Some(*f as f32),
        Value::Int(n) => Some(*n as f32),
        _ => None,
    };
    let (a, xi, yi) = match (number(&inputs[0]), number(&inputs[2])) {
        (Some(a), _) => (a, 1, 2),
        (None, Some(a)) => (a, 0, 1),
        (None, None) => {
            return Err(FnError::new(format!(
                "{NAME}: expects a number a as the first or the last input, got {} and {}",
                inputs[0].kind(),
                inputs[2].kind()
            )));
        }
    };
    let (x, form) = vector_input(NAME, xi, &inputs[xi])?;
    let (y, _) = vector_input(NAME, yi, &inputs[yi])?;
    if x.len() != y.len() {
        return Err(FnError::new(format!(
            "{NAME}: x has {} entries and y has {}: they must be the same length",
            x.len(),
            y.len()
        )));
    }
    Ok(Item { a, x, y, form })
}

/// `a·x + y` on the CPU, with the same two roundings as the kernel.
pub fn cpu_saxpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        let p = a * xi;
        *yi += p;
    }
}

/// The results of `items` as one launch (per [`LAUNCH_ENTRIES`]) on the state's device.
fn run(st: Option<&SaxpyState>, items: Vec<Item>) -> Result<Vec<Vec<f32>>, FnError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let reference = |items: Vec<Item>| -> Vec<Vec<f32>> {
        items
            .into_iter()
            .map(|mut it| {
                cpu_saxpy(it.a, &it.x, &mut it.y);
                it.y
            })
            .collect()
    };
    let Some(st) = st else {
        return Ok(reference(items));
    };
    if is_reference(st.device.as_ref()) {
        // One launch of the whole concatenation.
        let entries: usize = items.iter().map(|it| it.x.len()).sum();
        let count = items.len();
        let per_item = work_units(entries) / count as f64;
        return Ok(reference_launch(
            st.device.as_ref(),
            count,
            per_item,
            || reference(items),
        ));
    }
    #[cfg(feature = "cuda")]
    if let (Backend::Cuda(cuda), Some(kernel)) = (st.device.backend(), &st.kernel) {
        let mut out = Vec::with_capacity(items.len());
        let mut chunk: Vec<Item> = Vec::new();
        let mut entries = 0usize;
        for it in items {
            if !chunk.is_empty() && entries + it.x.len() > LAUNCH_ENTRIES {
                out.extend(cuda_path::launch(
                    cuda,
                    kernel,
                    &std::mem::take(&mut chunk),
                )?);
                entries = 0;
            }
            entries += it.x.len();
            chunk.push(it);
        }
        out.extend(cuda_path::launch(cuda, kernel, &chunk)?);
        return Ok(out);
    }
    Err(FnError::new(format!(
        "{NAME}: warm state has no kernel for {}",
        st.device.label()
    )))
}

#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
mod cuda_path {
    use super::{Item, NAME};
    use crate::device::{Cuda, InitLog};
    use crate::functions::FnError;
    use crate::functions::gpu::device_error;
    use cudarc::driver::{CudaFunction, LaunchConfig, PushKernelArg};

    /// One launch over the concatenated vectors of `items`.
    pub(super) fn launch(
        cuda: &Cuda,
        kernel: &CudaFunction,
        items: &[Item],
    ) -> Result<Vec<Vec<f32>>, FnError> {
        let err = |what: &str, e: &dyn std::fmt::Display| device_error(NAME, what, e);
        let total: usize = items.iter().map(|it| it.x.len()).sum();
        if total == 0 {
            return Ok(items.iter().map(|_| Vec::new()).collect());
        }
        let n = u32::try_from(total)
            .map_err(|_| FnError::new(format!("{NAME}: {total} entries in one launch")))?;
        let count = u32::try_from(items.len()).map_err(|_| {
            FnError::new(format!("{NAME}: {} invocations in one launch", items.len()))
        })?;
        let mut a = Vec::with_capacity(items.len());
        let mut offsets = Vec::with_capacity(items.len() + 1);
        let mut x = Vec::with_capacity(total);
        let mut y = Vec::with_capacity(total);
        let mut at = 0u32;
        for it in items {
            a.push(it.a);
            offsets.push(at);
            at += it.x.len() as u32;
            x.extend_from_slice(&it.x);
            y.extend_from_slice(&it.y);
        }
        offsets.push(at);
        let _one_at_a_time = cuda.exec_lock();
        let rt = cuda
            .runtime(&InitLog::new())
            .map_err(|e| err("context", &e))?;
        let stream = &rt.stream;
        let copy = |e: cudarc::driver::DriverError| err("copy to device", &e);
        let a_dev = stream.clone_htod(&a).map_err(copy)?;
        let off_dev = stream.clone_htod(&offsets).map_err(copy)?;
        let x_dev = stream.clone_htod(&x).map_err(copy)?;
        let mut y_dev = stream.clone_htod(&y).map_err(copy)?;
        let mut b = stream.launch_builder(kernel);
        b.arg(&a_dev)
            .arg(&off_dev)
            .arg(&count)
            .arg(&x_dev)
            .arg(&mut y_dev)
            .arg(&n);
        // SAFETY: the argument list matches the kernel's signature; offsets has count + 1
        // entries ending at n, and x and y hold n entries each, so every index the kernel
        // computes (i < n, lo < count) is in bounds.
        unsafe { b.launch(LaunchConfig::for_num_elems(n)) }
            .map_err(|e| err("kernel launch", &e))?;
        let out = stream
            .clone_dtoh(&y_dev)
            .map_err(|e| err("copy from device", &e))?;
        stream
            .synchronize()
            .map_err(|e| err("stream synchronize", &e))?;
        let mut res = Vec::with_capacity(items.len());
        let mut start = 0;
        for it in items {
            res.push(out[start..start + it.x.len()].to_vec());
            start += it.x.len();
        }
        Ok(res)
    }
}

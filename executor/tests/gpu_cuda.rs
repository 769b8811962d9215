//! The GPU built-ins on a real CUDA GPU (compiled only with `--features cuda`). Each test
//! first looks for a usable GPU and, when there is none, says so loudly and returns: these
//! tests pass vacuously on a machine without one. Build them here with
//! `cargo test -p rukong-executor --features cuda --no-run` and run the binary on a GPU
//! machine.

#![cfg(feature = "cuda")]

use rukong_core::Value;
use rukong_executor::device::cuda::{Cuda, discover, libraries};
use rukong_executor::device::{Device, DeviceCache, DeviceError};
use rukong_executor::functions::gpu::{
    GpuMatmul, GpuMlp, GpuSaxpy, MLP_WIDTH, VecForm, matrix_from_value, vector_from_value,
    vector_value,
};
use rukong_executor::functions::linalg::generate;
use rukong_executor::functions::{Function, InitCtx, WarmState};
use std::sync::Arc;

/// The first GPU, or `None` after a loud message.
fn gpu() -> Option<Arc<dyn Device>> {
    match discover() {
        Ok(mut gpus) if !gpus.is_empty() => Some(Arc::new(gpus.remove(0)) as Arc<dyn Device>),
        Ok(_) => {
            eprintln!("\n!!! NO CUDA GPU FOUND: skipping this real-GPU test !!!\n");
            None
        }
        Err(e) => {
            eprintln!("\n!!! NO USABLE CUDA HERE ({e}): skipping this real-GPU test !!!\n");
            None
        }
    }
}

fn init(f: &dyn Function, d: &Arc<dyn Device>) -> Option<WarmState> {
    f.init(&InitCtx::new("test", 0).with_device(Some(d.clone())))
        .expect("init on the GPU")
}

/// `max |got − want| ≤ 1e-4 · max(1, max |want|)`.
fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (g, w)| m.max((g - w).abs()));
    assert!(err <= 1e-4 * scale, "{what}: max error {err}");
}

#[test]
fn without_a_gpu_discovery_errors_instead_of_panicking() {
    let libs = libraries();
    match discover() {
        Ok(gpus) => eprintln!("found {} GPU(s), libraries {libs:?}", gpus.len()),
        Err(DeviceError::LibraryMissing { library, .. }) => {
            eprintln!("\n!!! NO CUDA HERE: {library} missing (expected on CI) !!!\n");
        }
        Err(e) => eprintln!("discovery failed cleanly: {e}"),
    }
    if !libs.driver {
        assert!(matches!(
            Cuda::open(0),
            Err(DeviceError::LibraryMissing { .. })
        ));
    }
}

#[test]
fn matmul_on_the_gpu_matches_the_cpu_bundled_or_not() {
    let Some(d) = gpu() else { return };
    let st = init(&GpuMatmul, &d);
    let mut batch = Vec::new();
    for (i, &(m, k, n)) in [(256, 256, 256), (256, 256, 256), (3, 1000, 5), (1, 7, 1)]
        .iter()
        .enumerate()
    {
        let seed = i as u64;
        batch.push(vec![
            generate(m, k, seed, 0, 0).to_value(),
            generate(k, n, seed + 50, 0, 0).to_value(),
        ]);
    }
    let bundled = GpuMatmul.call_batch(st.as_ref(), batch.clone());
    for (inputs, b) in batch.iter().zip(bundled) {
        let one = GpuMatmul.call(st.as_ref(), inputs.clone()).unwrap();
        let cpu = GpuMatmul.call(None, inputs.clone()).unwrap();
        let cpu = matrix_from_value(&cpu).unwrap().data;
        assert_close(
            &matrix_from_value(&one).unwrap().data,
            &cpu,
            "gpu_matmul one",
        );
        assert_close(
            &matrix_from_value(&b.unwrap()).unwrap().data,
            &cpu,
            "gpu_matmul bundled",
        );
    }
    let e = GpuMatmul
        .call(st.as_ref(), vec![Value::Int(1), Value::Int(2)])
        .unwrap_err();
    assert!(e.message.contains("gpu_matmul"), "{e}");
}

#[test]
fn saxpy_on_the_gpu_is_bit_identical_to_the_cpu() {
    let Some(d) = gpu() else { return };
    let st = init(&GpuSaxpy, &d);
    let batch: Vec<Vec<Value>> = [0usize, 1, 1000, 1 << 20]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let x: Vec<f32> = (0..n).map(|j| j as f32 * 0.37 - 11.0).collect();
            let y: Vec<f32> = (0..n).map(|j| (j % 97) as f32 * 1.3).collect();
            vec![
                Value::Float(0.75 + i as f64),
                vector_value(&x, VecForm::Bytes),
                vector_value(&y, VecForm::Bytes),
            ]
        })
        .collect();
    let bundled = GpuSaxpy.call_batch(st.as_ref(), batch.clone());
    for (inputs, b) in batch.iter().zip(bundled) {
        let cpu = GpuSaxpy.call(None, inputs.clone()).unwrap();
        assert_eq!(b.unwrap(), cpu);
        assert_eq!(GpuSaxpy.call(st.as_ref(), inputs.clone()).unwrap(), cpu);
    }
}

#[test]
fn mlp_on_the_gpu_matches_the_cpu_bundled_or_not() {
    let Some(d) = gpu() else { return };
    let st = init(&GpuMlp, &d);
    let batch: Vec<Vec<Value>> = (0..9u64)
        .map(|i| {
            let x: Vec<f32> = generate(1, MLP_WIDTH, i, 0, 0)
                .data()
                .iter()
                .map(|v| *v as f32)
                .collect();
            vec![vector_value(&x, VecForm::Bytes)]
        })
        .collect();
    let bundled = GpuMlp.call_batch(st.as_ref(), batch.clone());
    for (inputs, b) in batch.iter().zip(bundled) {
        let cpu = vector_from_value(&GpuMlp.call(None, inputs.clone()).unwrap()).unwrap();
        let one = GpuMlp.call(st.as_ref(), inputs.clone()).unwrap();
        assert_close(&vector_from_value(&one).unwrap(), &cpu, "gpu_mlp one");
        assert_close(
            &vector_from_value(&b.unwrap()).unwrap(),
            &cpu,
            "gpu_mlp bundled",
        );
    }
}

#[test]
fn the_gpu_warm_cache_records_the_ladder() {
    let Some(d) = gpu() else { return };
    let info = d.info();
    eprintln!("GPU: {info:?}, utilization {:?}", d.utilization());
    assert!(info.memory_bytes > 0);
    let cache = DeviceCache::for_device(d.as_ref(), None);
    assert!(cache.snapshot().budget_bytes > 0);
    let (_, cold) = cache
        .get_or_init("gpu_mlp", |log| {
            let ctx = InitCtx {
                name: "gpu_mlp".into(),
                slot: 0,
                device: Some(d.clone()),
                log: log.clone(),
            };
            GpuMlp.init(&ctx)
        })
        .unwrap();
    let names: Vec<&str> = cold.stages.iter().map(|s| s.name.as_str()).collect();
    eprintln!("gpu_mlp cold start {:?}: {:?}", cold.init, cold.stages);
    for stage in ["compile", "module_load", "weight_upload"] {
        assert!(names.contains(&stage), "{names:?}");
    }
    // The weights plus the bias kernel.
    assert!(cache.snapshot().used_bytes > 789_504);
}

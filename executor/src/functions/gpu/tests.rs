//! The GPU built-ins on the CPU and the simulated device: bundled results equal unbundled
//! ones (bit for bit: the CPU reference is deterministic) and a straightforward f64
//! reference within the documented tolerance; bad inputs give errors naming the function.

use super::mlp::MlpWeights;
use super::*;
use crate::device::{Simulated, SimulatedConfig};
use crate::functions::Function;
use crate::functions::linalg::generate;

/// The documented tolerance: `max |got − ref| ≤ 1e-4 · max(1, max |ref|)`.
fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((f64::from(*g) - w).abs()));
    assert!(
        err <= 1e-4 * scale,
        "{what}: max error {err} over tolerance {}",
        1e-4 * scale
    );
}

fn devices() -> Vec<Option<Arc<dyn Device>>> {
    vec![
        None,
        Some(Arc::new(Cpu::new())),
        Some(Arc::new(Simulated::new(SimulatedConfig::instant()))),
    ]
}

fn init(f: &dyn Function, device: Option<Arc<dyn Device>>) -> Option<WarmState> {
    let ctx = InitCtx::new("test", 0).with_device(device);
    f.init(&ctx).expect("init")
}

fn mat(rows: usize, cols: usize, seed: u64) -> Value {
    generate(rows, cols, seed, 0, 0).to_value()
}

/// The f64 product of the f32-rounded inputs.
fn ref_matmul(a: &Value, b: &Value) -> Vec<f64> {
    let a = matrix_from_value(a).unwrap();
    let b = matrix_from_value(b).unwrap();
    let mut out = vec![0.0f64; a.rows * b.cols];
    for i in 0..a.rows {
        for p in 0..a.cols {
            let x = f64::from(a.data[i * a.cols + p]);
            for j in 0..b.cols {
                out[i * b.cols + j] += x * f64::from(b.data[p * b.cols + j]);
            }
        }
    }
    out
}

fn err_of(r: Result<Value, FnError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.message,
    }
}

#[test]
fn registry_has_the_gpu_builtins_and_they_are_heavy() {
    let r = Registry::with_builtins();
    for name in NAMES {
        let i = r.index_of(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(r.get(i).is_heavy(&[]), "{name} must be heavy");
    }
}

#[test]
fn matmul_bundled_equals_unbundled_and_the_reference() {
    let shapes = [(256, 256, 256), (3, 5, 7), (1, 64, 1), (17, 1, 9)];
    for device in devices() {
        let st = init(&GpuMatmul, device);
        let mut batch = Vec::new();
        for (n, &(m, k, nn)) in shapes.iter().enumerate() {
            for rep in 0..3u64 {
                let seed = (n as u64) * 10 + rep;
                batch.push(vec![mat(m, k, seed), mat(k, nn, seed + 100)]);
            }
        }
        let one: Vec<Value> = batch
            .iter()
            .map(|i| GpuMatmul.call(st.as_ref(), i.clone()).unwrap())
            .collect();
        let bundled: Vec<Value> = GpuMatmul
            .call_batch(st.as_ref(), batch.clone())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(one, bundled, "bundled must equal unbundled, in order");
        for (inputs, out) in batch.iter().zip(&one) {
            let got = matrix_from_value(out).unwrap();
            let a = matrix_from_value(&inputs[0]).unwrap();
            let b = matrix_from_value(&inputs[1]).unwrap();
            assert_eq!((got.rows, got.cols), (a.rows, b.cols));
            assert_close(&got.data, &ref_matmul(&inputs[0], &inputs[1]), "gpu_matmul");
        }
    }
}

#[test]
fn matmul_accepts_arrays_of_rows_and_empty_shapes() {
    let a = Value::Array(vec![
        Value::Array(vec![Value::Int(1), Value::Int(2)]),
        Value::Array(vec![Value::Int(3), Value::Float(4.5)]),
    ]);
    let b = Value::Array(vec![
        Value::Array(vec![Value::Int(1), Value::Int(0)]),
        Value::Array(vec![Value::Int(0), Value::Int(2)]),
    ]);
    let c = matrix_from_value(&GpuMatmul.call(None, vec![a, b]).unwrap()).unwrap();
    assert_eq!(c.data, vec![1.0, 4.0, 3.0, 9.0]);
    // k = 0: an m×n matrix of zeros.
    let z = GpuMatmul
        .call(None, vec![mat(2, 0, 1), mat(0, 3, 2)])
        .unwrap();
    assert_eq!(matrix_from_value(&z).unwrap().data, vec![0.0; 6]);
}

#[test]
fn matmul_bad_inputs_fail_alone_with_clear_errors() {
    let e = err_of(GpuMatmul.call(None, vec![mat(2, 3, 1)]));
    assert!(
        e.contains("gpu_matmul") && e.contains("expects 2 inputs"),
        "{e}"
    );
    let e = err_of(GpuMatmul.call(None, vec![mat(2, 3, 1), mat(4, 2, 1)]));
    assert!(
        e.contains("gpu_matmul") && e.contains("shape mismatch") && e.contains("2x3"),
        "{e}"
    );
    let e = err_of(GpuMatmul.call(None, vec![Value::Str("x".into()), mat(2, 2, 1)]));
    assert!(
        e.contains("gpu_matmul: input 1") && e.contains("string"),
        "{e}"
    );
    let st = init(
        &GpuMatmul,
        Some(Arc::new(Simulated::new(SimulatedConfig::instant()))),
    );
    let out = GpuMatmul.call_batch(
        st.as_ref(),
        vec![
            vec![mat(4, 4, 1), mat(4, 4, 2)],
            vec![mat(4, 4, 1), Value::Int(3)],
            vec![mat(4, 4, 3), mat(4, 4, 4)],
        ],
    );
    assert!(out[0].is_ok() && out[2].is_ok());
    let e = out[1].clone().unwrap_err().message;
    assert!(e.contains("gpu_matmul: input 2"), "{e}");
}

fn vec_bytes(v: &[f32]) -> Value {
    vector_value(v, VecForm::Bytes)
}

fn ramp(n: usize, scale: f32, shift: f32) -> Vec<f32> {
    (0..n).map(|i| (i as f32) * scale + shift).collect()
}

#[test]
fn saxpy_bundled_equals_unbundled_and_is_exact() {
    let lens = [0usize, 1, 1000, 4097, 3];
    for device in devices() {
        let st = init(&GpuSaxpy, device);
        let batch: Vec<Vec<Value>> = lens
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let a = Value::Float(0.5 + i as f64);
                vec![
                    vec_bytes(&ramp(n, 0.25, i as f32)),
                    vec_bytes(&ramp(n, -1.5, 2.0)),
                    a,
                ]
            })
            .collect();
        let one: Vec<Value> = batch
            .iter()
            .map(|i| GpuSaxpy.call(st.as_ref(), i.clone()).unwrap())
            .collect();
        let bundled: Vec<Value> = GpuSaxpy
            .call_batch(st.as_ref(), batch.clone())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(one, bundled);
        for (i, (&n, out)) in lens.iter().zip(&one).enumerate() {
            assert!(matches!(out, Value::Bytes(_)), "bytes in, bytes out");
            let got = vector_from_value(out).unwrap();
            let a = 0.5f32 + i as f32;
            let want: Vec<f32> = ramp(n, 0.25, i as f32)
                .iter()
                .zip(ramp(n, -1.5, 2.0))
                .map(|(x, y)| {
                    let p = a * x;
                    p + y
                })
                .collect();
            assert_eq!(got, want, "saxpy is exact");
        }
    }
}

#[test]
fn saxpy_takes_a_first_or_last_and_keeps_the_array_form() {
    let x = Value::Array(vec![Value::Int(1), Value::Float(2.5)]);
    let y = Value::Array(vec![Value::Int(10), Value::Int(20)]);
    let last = GpuSaxpy
        .call(None, vec![x.clone(), y.clone(), Value::Int(2)])
        .unwrap();
    let first = GpuSaxpy.call(None, vec![Value::Int(2), x, y]).unwrap();
    assert_eq!(last, first);
    assert_eq!(
        last,
        Value::Array(vec![Value::Float(12.0), Value::Float(25.0)])
    );
}

#[test]
fn saxpy_bad_inputs() {
    let x = vec_bytes(&[1.0, 2.0]);
    let e = err_of(GpuSaxpy.call(None, vec![x.clone(), x.clone()]));
    assert!(
        e.contains("gpu_saxpy") && e.contains("expects 3 inputs"),
        "{e}"
    );
    let e = err_of(GpuSaxpy.call(None, vec![x.clone(), x.clone(), x.clone()]));
    assert!(e.contains("gpu_saxpy") && e.contains("number a"), "{e}");
    let e = err_of(GpuSaxpy.call(None, vec![x.clone(), vec_bytes(&[1.0]), Value::Int(1)]));
    assert!(e.contains("same length"), "{e}");
    let odd = Value::Bytes(bytes::Bytes::from_static(&[0, 0, 0, 0, 1]));
    let e = err_of(GpuSaxpy.call(None, vec![odd, x.clone(), Value::Int(1)]));
    assert!(e.contains("gpu_saxpy: input 1 has 5 bytes"), "{e}");
    let e = err_of(GpuSaxpy.call(
        None,
        vec![Value::Array(vec![Value::Null]), x, Value::Int(1)],
    ));
    assert!(e.contains("entry 1 is a null"), "{e}");
}

/// The f64 forward of the f32-rounded input with the f32 weights.
fn ref_mlp(x: &[f32]) -> Vec<f64> {
    let w = MlpWeights::generate();
    let n = MLP_WIDTH;
    let mut cur: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    for (l, layer) in w.layers.iter().enumerate() {
        let rows = cur.len() / n;
        let mut next = vec![0.0f64; rows * n];
        for r in 0..rows {
            for j in 0..n {
                let mut s = f64::from(layer.b[j]);
                for k in 0..n {
                    s += cur[r * n + k] * f64::from(layer.w[k * n + j]);
                }
                next[r * n + j] = if l < 2 { s.max(0.0) } else { s };
            }
        }
        cur = next;
    }
    cur
}

#[test]
fn mlp_bundled_equals_unbundled_and_the_reference() {
    for device in devices() {
        let st = init(&GpuMlp, device);
        let mut batch = Vec::new();
        for i in 0..5u64 {
            let x: Vec<f32> = generate(1, MLP_WIDTH, i, 0, 0)
                .data()
                .iter()
                .map(|v| *v as f32)
                .collect();
            let form = if i % 2 == 0 {
                VecForm::Bytes
            } else {
                VecForm::Array
            };
            batch.push(vec![vector_value(&x, form)]);
        }
        batch.push(vec![mat(3, MLP_WIDTH, 99)]);
        let one: Vec<Value> = batch
            .iter()
            .map(|i| GpuMlp.call(st.as_ref(), i.clone()).unwrap())
            .collect();
        let bundled: Vec<Value> = GpuMlp
            .call_batch(st.as_ref(), batch.clone())
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(one, bundled);
        for (inputs, out) in batch.iter().zip(&one) {
            let (x, got) = match &inputs[0] {
                Value::Map(_) => (
                    matrix_from_value(&inputs[0]).unwrap().data,
                    matrix_from_value(out).unwrap().data,
                ),
                v => {
                    assert_eq!(
                        std::mem::discriminant(v),
                        std::mem::discriminant(out),
                        "the result keeps the input's form"
                    );
                    (
                        vector_from_value(v).unwrap(),
                        vector_from_value(out).unwrap(),
                    )
                }
            };
            assert_close(&got, &ref_mlp(&x), "gpu_mlp");
        }
    }
}

#[test]
fn mlp_weights_are_fixed() {
    let a = MlpWeights::generate();
    assert_eq!(a, MlpWeights::generate());
    assert_eq!(a.bytes(), 789_504);
    assert_eq!(
        a.layers[0].w[0],
        crate::functions::linalg::entry(MLP_SEED + 1, 0, 0) as f32 / 16.0
    );
}

#[test]
fn mlp_bad_inputs() {
    let e = err_of(GpuMlp.call(None, vec![vec_bytes(&[1.0; 10])]));
    assert!(
        e.contains("gpu_mlp: input 1 has 10 entries, expected 256"),
        "{e}"
    );
    let e = err_of(GpuMlp.call(None, vec![mat(2, 3, 1)]));
    assert!(
        e.contains("gpu_mlp") && e.contains("2x3") && e.contains("256 columns"),
        "{e}"
    );
    let e = err_of(GpuMlp.call(None, vec![]));
    assert!(e.contains("gpu_mlp: expects 1 input"), "{e}");
    let e = err_of(GpuMlp.call(None, vec![Value::Bool(true)]));
    assert!(e.contains("gpu_mlp: input 1 is a bool"), "{e}");
}

#[test]
fn simulated_init_reports_the_ladder() {
    let sim = Arc::new(Simulated::new(SimulatedConfig::instant()));
    let ctx = InitCtx::new("gpu_mlp", 0).with_device(Some(sim.clone()));
    GpuMlp.init(&ctx).unwrap();
    let rec = ctx.log.record();
    let names: Vec<&str> = rec.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "weight_init",
            "context",
            "cublas_handle",
            "compile",
            "module_load",
            "weight_upload"
        ]
    );
    assert!(rec.device_bound);
    assert_eq!(rec.resident_bytes, 789_504);
    // The device is warm now: another function pays no context.
    let ctx = InitCtx::new("gpu_saxpy", 0).with_device(Some(sim));
    GpuSaxpy.init(&ctx).unwrap();
    let names: Vec<String> = ctx
        .log
        .record()
        .stages
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["compile", "module_load"]);
}

#[test]
fn simulated_launches_are_counted_once_per_bundle() {
    let sim = Arc::new(Simulated::new(SimulatedConfig::instant()));
    let st = init(&GpuMatmul, Some(sim.clone()));
    let batch: Vec<Vec<Value>> = (0..8)
        .map(|i| vec![mat(8, 8, i), mat(8, 8, i + 1)])
        .collect();
    GpuMatmul.call_batch(st.as_ref(), batch);
    let c = sim.counters();
    assert_eq!((c.launches, c.items), (1, 8));
    let st = init(&GpuSaxpy, Some(sim.clone()));
    let x = vec_bytes(&[1.0; 16]);
    GpuSaxpy.call_batch(
        st.as_ref(),
        vec![vec![x.clone(), x.clone(), Value::Int(1)]; 4],
    );
    assert_eq!(sim.counters().launches, 2);
}

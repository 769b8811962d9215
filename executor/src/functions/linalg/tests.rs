use super::*;

fn call(f: &dyn Function, inputs: Vec<Value>) -> Result<Value, FnError> {
    Function::call(f, None, inputs)
}

fn err(f: &dyn Function, inputs: Vec<Value>) -> String {
    match call(f, inputs) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.message,
    }
}

fn mat(rows: usize, cols: usize, data: &[f64]) -> Matrix {
    Matrix::new(rows, cols, data.to_vec()).expect("rows*cols entries")
}

fn val(rows: usize, cols: usize, data: &[f64]) -> Value {
    to_value(rows, cols, data)
}

fn ok_matrix(f: &dyn Function, inputs: Vec<Value>) -> Matrix {
    let v = call(f, inputs).expect("call succeeds");
    from_value(&v).expect("a matrix value")
}

fn ints(xs: &[i64]) -> Vec<Value> {
    xs.iter().map(|&x| Value::Int(x)).collect()
}

fn rows_value(rows: &[&[f64]]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| Value::Array(r.iter().map(|&x| Value::Float(x)).collect()))
            .collect(),
    )
}

/// A naive reference product.
fn naive(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = Matrix::zeros(a.rows(), b.cols());
    for i in 0..a.rows() {
        for j in 0..b.cols() {
            let mut s = 0.0;
            for k in 0..a.cols() {
                s += a.data()[i * a.cols() + k] * b.data()[k * b.cols() + j];
            }
            out.data[i * b.cols() + j] = s;
        }
    }
    out
}

fn transpose_times_self(a: &Matrix) -> Matrix {
    let (m, n) = a.shape();
    let mut out = Matrix::zeros(n, n);
    for p in 0..n {
        for q in 0..n {
            out.data[p * n + q] = (0..m).map(|i| a.data[i * n + p] * a.data[i * n + q]).sum();
        }
    }
    out
}

// --- registry ---

#[test]
fn register_all_registers_every_name() {
    let mut r = Registry::new();
    register_all(&mut r);
    assert_eq!(r.names().collect::<Vec<_>>(), NAMES);
    let b = Registry::with_builtins();
    for n in NAMES {
        assert!(b.contains(n), "{n} is in the default registry");
    }
    assert!(b.contains("add"), "the scalar add is still there");
}

// --- value form ---

#[test]
fn value_form_round_trips_and_is_row_major_le() {
    let v = val(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, -0.5]);
    let Value::Map(m) = &v else { panic!("a map") };
    assert_eq!(m.len(), 3);
    assert_eq!(m.get("rows"), Some(&Value::Int(2)));
    assert_eq!(m.get("cols"), Some(&Value::Int(3)));
    let Some(Value::Bytes(b)) = m.get("f64le") else {
        panic!("bytes")
    };
    assert_eq!(b.len(), 48);
    assert_eq!(&b[8..16], &2.0f64.to_le_bytes());
    assert_eq!(&b[40..48], &(-0.5f64).to_le_bytes());
    let back = from_value(&v).unwrap();
    assert_eq!(back, mat(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, -0.5]));
    assert_eq!(back.get(1, 2), Some(-0.5));
    assert_eq!(back.get(2, 0), None);
    // Empty matrices are fine.
    assert_eq!(from_value(&val(0, 5, &[])).unwrap().shape(), (0, 5));
    // NaN and infinities survive bit for bit.
    let odd = from_value(&val(1, 2, &[f64::NAN, f64::INFINITY])).unwrap();
    assert!(odd.data()[0].is_nan() && odd.data()[1] == f64::INFINITY);
}

#[test]
fn value_form_survives_msgpack() {
    let v = generate(7, 5, 9, 0, 0).to_value();
    let back = Value::from_msgpack(&v.to_msgpack()).unwrap();
    assert_eq!(from_value(&back).unwrap(), generate(7, 5, 9, 0, 0));
    // A 64x64 block stays under the 64 KiB inline threshold; 128x128 does not.
    assert!(generate(64, 64, 1, 0, 0).to_value().approx_size() < 64 * 1024);
    assert!(generate(128, 128, 1, 0, 0).to_value().approx_size() > 64 * 1024);
}

#[test]
fn arrays_of_rows_are_matrices_too() {
    let v = Value::Array(vec![
        Value::Array(vec![Value::Int(1), Value::Float(2.5)]),
        Value::Array(vec![Value::Int(-3), Value::Int(4)]),
    ]);
    assert_eq!(from_value(&v).unwrap(), mat(2, 2, &[1.0, 2.5, -3.0, 4.0]));
    assert_eq!(from_value(&Value::Array(vec![])).unwrap().shape(), (0, 0));
}

#[test]
fn bad_values_are_named() {
    let e = |v: Value| from_value(&v).unwrap_err().message;
    assert_eq!(
        e(Value::Str("x".into())),
        "the value is a string, expected a matrix (a map {rows, cols, f64le} or an array of rows of numbers)"
    );
    let mut m = match val(1, 1, &[1.0]) {
        Value::Map(m) => m,
        _ => unreachable!(),
    };
    m.insert("f64le".into(), Value::Bytes(Bytes::from_static(&[0; 7])));
    assert_eq!(
        e(Value::Map(m.clone())),
        "the value is not a matrix: f64le has 7 bytes, expected 8 (1x1 entries of 8 bytes)"
    );
    m.insert("f64le".into(), Value::Str("x".into()));
    assert_eq!(
        e(Value::Map(m.clone())),
        "the value is not a matrix: f64le is a string, expected bytes"
    );
    m.remove("f64le");
    assert_eq!(
        e(Value::Map(m.clone())),
        "the value is not a matrix: missing key \"f64le\""
    );
    m.insert("f64le".into(), Value::Bytes(Bytes::from_static(&[0; 8])));
    m.insert("rows".into(), Value::Int(-1));
    assert_eq!(
        e(Value::Map(m.clone())),
        "the value is not a matrix: rows must be non-negative, got -1"
    );
    m.insert("rows".into(), Value::Float(1.0));
    assert_eq!(
        e(Value::Map(m.clone())),
        "the value is not a matrix: rows is a float, expected a non-negative int"
    );
    m.insert("rows".into(), Value::Int(1));
    m.insert("extra".into(), Value::Null);
    assert!(e(Value::Map(m.clone())).contains("unexpected key \"extra\""));
    m.remove("extra");
    m.insert("rows".into(), Value::Int(1 << 40));
    m.insert("cols".into(), Value::Int(1 << 40));
    assert!(e(Value::Map(m)).contains("over the limit of 67108864 entries"));

    let ragged = Value::Array(vec![
        Value::Array(vec![Value::Int(1), Value::Int(2)]),
        Value::Array(vec![Value::Int(3)]),
    ]);
    assert_eq!(
        e(ragged),
        "the value is not a matrix: row 2 has 1 entries, row 1 has 2"
    );
    let non_numeric = Value::Array(vec![Value::Array(vec![Value::Int(1), Value::Bool(true)])]);
    assert_eq!(
        e(non_numeric),
        "the value is not a matrix: entry (1, 2) is a bool, expected a number"
    );
    assert_eq!(
        e(Value::Array(vec![Value::Int(1)])),
        "the value is not a matrix: row 1 is an int, expected an array of numbers"
    );
}

// --- matrix / block ---

#[test]
fn entry_formula_is_pinned() {
    // splitmix64 reference values (from the published algorithm: the first outputs of the
    // generator seeded with 0 are splitmix64(0), splitmix64(0x9E37...), ...).
    assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
    let h = splitmix64(splitmix64(splitmix64(5) ^ 3) ^ 7);
    assert_eq!(entry(5, 3, 7), (h >> 11) as f64 * 2f64.powi(-52) - 1.0);
    // Values computed from the documented formula in Python (see the module docs).
    assert_eq!(entry(1, 0, 0), 0.38702427802045847);
    assert_eq!(entry(2, 4095, 17), -0.812232718415701);
    assert_eq!(entry(3, 199_999, 99), 0.5866114645942264);
    assert_eq!(entry(u64::MAX, 5, 6), 0.4859125995840936);
    assert_eq!(generate(1, 1, 3, 199_999, 99).data(), &[0.5866114645942264]);
    // Range over many entries.
    let m = generate(100, 100, 42, 0, 0);
    assert!(m.data().iter().all(|&x| (-1.0..1.0).contains(&x)));
    let mean = m.data().iter().sum::<f64>() / 10_000.0;
    assert!(mean.abs() < 0.05, "mean {mean}");
    // Different seeds give different matrices.
    assert_ne!(generate(3, 3, 1, 0, 0), generate(3, 3, 2, 0, 0));
}

#[test]
fn matrix_and_block_agree_and_tile() {
    let full = ok_matrix(&MatrixFn, ints(&[10, 7, 3]));
    assert_eq!(full, generate(10, 7, 3, 0, 0));
    assert_eq!(ok_matrix(&BlockFn, ints(&[10, 7, 3, 0, 0])), full);
    for (r0, c0, r, c) in [(0, 0, 4, 3), (4, 3, 6, 4), (8, 0, 2, 7), (3, 5, 1, 2)] {
        let b = ok_matrix(&BlockFn, ints(&[r, c, 3, r0, c0]));
        assert_eq!(
            b,
            full.sub(r0 as usize, c0 as usize, r as usize, c as usize)
        );
    }
    // Negative seeds are their two's-complement pattern.
    assert_eq!(
        ok_matrix(&MatrixFn, ints(&[2, 2, -1])),
        generate(2, 2, u64::MAX, 0, 0)
    );
    assert_eq!(ok_matrix(&MatrixFn, ints(&[0, 3, 1])).shape(), (0, 3));
}

#[test]
fn matrix_and_block_errors() {
    assert_eq!(
        err(&MatrixFn, ints(&[1, 2])),
        "matrix: expects 3 inputs, got 2"
    );
    assert_eq!(
        err(&BlockFn, ints(&[1, 2, 3])),
        "block: expects 5 inputs, got 3"
    );
    assert_eq!(
        err(&MatrixFn, ints(&[-1, 2, 3])),
        "matrix: rows (input 1) must be non-negative, got -1"
    );
    assert_eq!(
        err(
            &BlockFn,
            vec![
                Value::Int(1),
                Value::Int(1),
                Value::Int(1),
                Value::Int(0),
                Value::Str("x".into())
            ]
        ),
        "block: col0 (input 5) is a string, expected an int"
    );
    assert_eq!(
        err(
            &MatrixFn,
            vec![Value::Int(1), Value::Int(1), Value::Float(1.0)]
        ),
        "matrix: seed (input 3) is a float, expected an int"
    );
    assert!(err(&MatrixFn, ints(&[1 << 20, 1 << 20, 1])).contains("over the limit"));
}

#[test]
fn generators_are_heavy_only_when_big() {
    assert!(!MatrixFn.is_heavy(&ints(&[64, 64, 1])));
    assert!(MatrixFn.is_heavy(&ints(&[65, 64, 1])));
    assert!(BlockFn.is_heavy(&ints(&[128, 128, 1, 0, 0])));
    assert!(!BlockFn.is_heavy(&[Value::Str("x".into())]));
}

// --- matmul ---

#[test]
fn matmul_multiplies() {
    let a = val(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let b = val(3, 2, &[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    assert_eq!(
        ok_matrix(&MatmulFn, vec![a, b]),
        mat(2, 2, &[58.0, 64.0, 139.0, 154.0])
    );
    // Arrays of rows work as inputs.
    let c = ok_matrix(
        &MatmulFn,
        vec![rows_value(&[&[1.0, 2.0]]), rows_value(&[&[3.0], &[4.0]])],
    );
    assert_eq!(c, mat(1, 1, &[11.0]));
    // Bigger, odd shapes against a naive product.
    let a = generate(37, 70, 1, 0, 0);
    let b = generate(70, 45, 2, 0, 0);
    let c = ok_matrix(&MatmulFn, vec![a.to_value(), b.to_value()]);
    assert!(c.max_abs_diff(&naive(&a, &b)).unwrap() < 1e-12);
    // Inner dimension 0 gives zeros.
    let z = ok_matrix(&MatmulFn, vec![val(2, 0, &[]), val(0, 3, &[])]);
    assert_eq!(z, Matrix::zeros(2, 3));
}

#[test]
fn matmul_errors() {
    assert_eq!(
        err(&MatmulFn, vec![val(2, 3, &[0.0; 6]), val(2, 3, &[0.0; 6])]),
        "matmul: shape mismatch: a is 2x3, b is 2x3 (a has 3 columns, b has 2 rows)"
    );
    assert_eq!(
        err(&MatmulFn, vec![val(1, 1, &[0.0])]),
        "matmul: expects 2 inputs, got 1"
    );
    assert_eq!(
        err(&MatmulFn, vec![val(1, 1, &[0.0]), Value::Int(3)]),
        "matmul: input 2 is an int, expected a matrix (a map {rows, cols, f64le} or an array of rows of numbers)"
    );
    assert_eq!(
        err(
            &MatmulFn,
            vec![
                Value::Array(vec![Value::Array(vec![Value::Str("x".into())])]),
                val(1, 1, &[0.0])
            ]
        ),
        "matmul: input 1 is not a matrix: entry (1, 1) is a string, expected a number"
    );
}

#[test]
fn matmul_heaviness_follows_size() {
    assert!(!MatmulFn.is_heavy(&[val(32, 32, &[0.0; 1024]), val(32, 32, &[0.0; 1024])]));
    let big = generate(64, 64, 1, 0, 0).to_value();
    assert!(MatmulFn.is_heavy(&[big.clone(), big]));
}

// --- madd / vstack ---

#[test]
fn madd_sums_left_to_right() {
    let a = val(1, 3, &[1.0, 2.0, 3.0]);
    let b = val(1, 3, &[10.0, 20.0, 30.0]);
    let c = val(1, 3, &[0.5, 0.5, 0.5]);
    assert_eq!(
        ok_matrix(&MaddFn, vec![a.clone(), b, c]),
        mat(1, 3, &[11.5, 22.5, 33.5])
    );
    assert_eq!(ok_matrix(&MaddFn, vec![a.clone()]), from_value(&a).unwrap());
    // Order matters in floating point and is fixed: ((1e16 + 1) + -1e16) = 0.
    let x = ok_matrix(
        &MaddFn,
        vec![val(1, 1, &[1e16]), val(1, 1, &[1.0]), val(1, 1, &[-1e16])],
    );
    assert_eq!(x.data(), &[0.0]);
}

#[test]
fn madd_errors() {
    assert_eq!(
        err(&MaddFn, vec![]),
        "madd: expects at least 1 input, got 0"
    );
    assert_eq!(
        err(&MaddFn, vec![val(1, 2, &[0.0; 2]), val(2, 1, &[0.0; 2])]),
        "madd: shape mismatch: input 1 is 1x2, input 2 is 2x1"
    );
    assert_eq!(
        err(&MaddFn, vec![val(1, 1, &[0.0]), Value::Float(1.0)]),
        "madd: input 2 is a float, expected a matrix (a map {rows, cols, f64le} or an array of rows of numbers)"
    );
}

#[test]
fn vstack_stacks() {
    let s = ok_matrix(
        &VstackFn,
        vec![
            val(1, 2, &[1.0, 2.0]),
            val(2, 2, &[3.0, 4.0, 5.0, 6.0]),
            val(0, 2, &[]),
        ],
    );
    assert_eq!(s, mat(3, 2, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    // Stacking blocks of the global matrix gives the taller block.
    let top = generate(3, 4, 8, 0, 0).to_value();
    let bottom = generate(5, 4, 8, 3, 0).to_value();
    assert_eq!(
        ok_matrix(&VstackFn, vec![top, bottom]),
        generate(8, 4, 8, 0, 0)
    );
}

#[test]
fn vstack_errors() {
    assert_eq!(
        err(&VstackFn, vec![]),
        "vstack: expects at least 1 input, got 0"
    );
    assert_eq!(
        err(&VstackFn, vec![val(1, 2, &[0.0; 2]), val(1, 3, &[0.0; 3])]),
        "vstack: column counts differ: input 1 is 1x2, input 2 is 1x3"
    );
}

// --- qr_r / svd_values ---

#[test]
fn qr_r_is_upper_triangular_with_a_non_negative_diagonal() {
    for (m, n) in [(50, 7), (7, 7), (3, 5), (1, 1), (200, 20)] {
        let a = generate(m, n, 11, 0, 0);
        let r = ok_matrix(&QrRFn, vec![a.to_value()]);
        let k = m.min(n);
        assert_eq!(r.shape(), (k, n), "{m}x{n}");
        for i in 0..k {
            assert!(r.get(i, i).unwrap() >= 0.0);
            for j in 0..i.min(n) {
                assert_eq!(r.get(i, j).unwrap().to_bits(), 0, "R({i},{j}) is +0");
            }
        }
        // RᵀR = AᵀA.
        let diff = transpose_times_self(&r)
            .max_abs_diff(&transpose_times_self(&a))
            .unwrap();
        assert!(diff < 1e-10 * m as f64, "{m}x{n}: {diff}");
    }
}

#[test]
fn qr_r_known_values() {
    // [[3],[4]] = Q·[5]; [[-3],[-4]] also gives +5 under the sign convention.
    assert_eq!(
        ok_matrix(&QrRFn, vec![rows_value(&[&[3.0], &[4.0]])]).data(),
        &[5.0]
    );
    let r = ok_matrix(&QrRFn, vec![rows_value(&[&[-3.0], &[-4.0]])]);
    assert!((r.data()[0] - 5.0).abs() < 1e-15);
    // An upper-triangular input with a positive diagonal is its own R.
    let u = mat(2, 2, &[2.0, 1.0, 0.0, 3.0]);
    let r = ok_matrix(&QrRFn, vec![u.to_value()]);
    assert!(r.max_abs_diff(&u).unwrap() < 1e-15, "{r:?}");
    assert_eq!(ok_matrix(&QrRFn, vec![val(4, 0, &[])]).shape(), (0, 0));
}

#[test]
fn tsqr_by_hand_matches_the_direct_singular_values() {
    let a = generate(120, 6, 4, 0, 0);
    let direct = singular_values(&a, Threads::One).unwrap();
    let r1 = ok_matrix(&QrRFn, vec![generate(60, 6, 4, 0, 0).to_value()]);
    let r2 = ok_matrix(&QrRFn, vec![generate(60, 6, 4, 60, 0).to_value()]);
    let s = ok_matrix(&VstackFn, vec![r1.to_value(), r2.to_value()]);
    let r = ok_matrix(&QrRFn, vec![s.to_value()]);
    assert!(
        r.max_abs_diff(&qr_r(&a, Threads::One).unwrap()).unwrap() < 1e-12,
        "R is unique"
    );
    let Value::Array(sv) = call(&SvdValuesFn, vec![r.to_value()]).unwrap() else {
        panic!("an array")
    };
    assert_eq!(sv.len(), 6);
    for (x, y) in sv.iter().zip(&direct) {
        let Value::Float(x) = x else { panic!("floats") };
        assert!((x - y).abs() < 1e-12 * y, "{x} vs {y}");
    }
}

#[test]
fn svd_values_known_values() {
    let d = mat(3, 3, &[1.0, 0.0, 0.0, 0.0, -5.0, 0.0, 0.0, 0.0, 3.0]);
    let Value::Array(sv) = call(&SvdValuesFn, vec![d.to_value()]).unwrap() else {
        panic!("an array")
    };
    let sv: Vec<f64> = sv
        .iter()
        .map(|v| match v {
            Value::Float(f) => *f,
            _ => f64::NAN,
        })
        .collect();
    for (x, y) in sv.iter().zip([5.0, 3.0, 1.0]) {
        assert!((x - y).abs() < 1e-14, "{sv:?}");
    }
    // Wide matrices have min(m, n) values; empty ones none.
    let Value::Array(w) = call(&SvdValuesFn, vec![generate(2, 9, 1, 0, 0).to_value()]).unwrap()
    else {
        panic!("an array")
    };
    assert_eq!(w.len(), 2);
    assert_eq!(
        call(&SvdValuesFn, vec![val(0, 3, &[])]),
        Ok(Value::Array(vec![]))
    );
}

#[test]
fn qr_r_and_svd_values_errors() {
    assert_eq!(err(&QrRFn, vec![]), "qr_r: expects 1 input, got 0");
    assert_eq!(
        err(&QrRFn, vec![val(2, 1, &[1.0, f64::NAN])]),
        "qr_r: entry (2, 1) is NaN, expected a finite number"
    );
    assert_eq!(
        err(&SvdValuesFn, vec![val(1, 2, &[1.0, f64::INFINITY])]),
        "svd_values: entry (1, 2) is inf, expected a finite number"
    );
    assert_eq!(
        err(&SvdValuesFn, vec![Value::Null, Value::Null]),
        "svd_values: expects 1 input, got 2"
    );
    assert_eq!(
        err(&SvdValuesFn, vec![Value::Null]),
        "svd_values: input 1 is a null, expected a matrix (a map {rows, cols, f64le} or an array of rows of numbers)"
    );
}

// --- frobenius / max_abs_diff ---

#[test]
fn frobenius_and_max_abs_diff() {
    assert_eq!(
        call(&FrobeniusFn, vec![val(2, 2, &[3.0, 0.0, 0.0, 4.0])]),
        Ok(Value::Float(5.0))
    );
    assert_eq!(
        call(&FrobeniusFn, vec![val(0, 0, &[])]),
        Ok(Value::Float(0.0))
    );
    assert_eq!(
        call(
            &MaxAbsDiffFn,
            vec![val(1, 3, &[1.0, 2.0, 3.0]), val(1, 3, &[1.5, 2.0, 0.0])]
        ),
        Ok(Value::Float(3.0))
    );
    let Ok(Value::Float(nan)) = call(
        &MaxAbsDiffFn,
        vec![val(1, 2, &[f64::NAN, 9.0]), val(1, 2, &[0.0, 0.0])],
    ) else {
        panic!("a float")
    };
    assert!(nan.is_nan());
    assert_eq!(
        err(
            &MaxAbsDiffFn,
            vec![val(1, 2, &[0.0; 2]), val(2, 1, &[0.0; 2])]
        ),
        "max_abs_diff: shape mismatch: a is 1x2, b is 2x1"
    );
    assert_eq!(
        err(&FrobeniusFn, vec![Value::Str("m".into())]),
        "frobenius: input 1 is a string, expected a matrix (a map {rows, cols, f64le} or an array of rows of numbers)"
    );
}

#[test]
fn sub_clips() {
    let m = generate(4, 4, 1, 0, 0);
    assert_eq!(m.sub(3, 3, 5, 5).shape(), (1, 1));
    assert_eq!(m.sub(9, 0, 1, 1).shape(), (0, 1));
    assert_eq!(m.sub(1, 2, 2, 2).get(0, 0), m.get(1, 2));
}

use super::*;
use std::time::Instant;

fn call(f: &dyn Function, inputs: Vec<Value>) -> Result<Value, FnError> {
    Function::call(f, None, inputs)
}

fn err(f: &dyn Function, inputs: Vec<Value>) -> String {
    match call(f, inputs) {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.message,
    }
}

fn s(x: &str) -> Value {
    Value::Str(x.to_owned())
}

fn b(x: &[u8]) -> Value {
    Value::Bytes(Bytes::copy_from_slice(x))
}

// --- registry ---

#[test]
fn register_all_registers_exactly_the_builtins() {
    let mut r = Registry::new();
    register_all(&mut r);
    let names: Vec<&str> = r.names().collect();
    assert_eq!(
        names,
        [
            "const", "identity", "add", "mul", "concat", "len", "blob", "sha256", "sleep", "spin",
            "fail", "eq", "lt", "gt", "get", "max_by"
        ]
    );
    assert_eq!(r.len(), 16);
    let i = r.index_of("add").expect("add registered");
    assert_eq!(
        r.get(i).call(None, vec![Value::Int(2), Value::Int(3)]),
        Ok(Value::Int(5))
    );
}

// --- const / identity ---

#[test]
fn const_returns_its_input() {
    assert_eq!(call(&Const, vec![s("x")]), Ok(s("x")));
    assert_eq!(call(&Const, vec![Value::Null]), Ok(Value::Null));
    let arr = Value::Array(vec![Value::Int(1), s("a")]);
    assert_eq!(call(&Const, vec![arr.clone()]), Ok(arr));
}

#[test]
fn const_errors() {
    assert_eq!(err(&Const, vec![]), "const: expects 1 input, got 0");
    assert_eq!(
        err(&Const, vec![Value::Int(1), Value::Int(2)]),
        "const: expects 1 input, got 2"
    );
}

#[test]
fn identity_returns_its_input() {
    assert_eq!(call(&Identity, vec![Value::Int(7)]), Ok(Value::Int(7)));
    assert_eq!(call(&Identity, vec![b(b"xy")]), Ok(b(b"xy")));
    assert_eq!(err(&Identity, vec![]), "identity: expects 1 input, got 0");
    assert_eq!(
        err(&Identity, vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
        "identity: expects 1 input, got 3"
    );
}

#[test]
fn identity_shares_bytes_buffer() {
    let bytes = Bytes::from(vec![1u8; 1024]);
    let ptr = bytes.as_ptr();
    match call(&Identity, vec![Value::Bytes(bytes)]) {
        Ok(Value::Bytes(out)) => assert_eq!(out.as_ptr(), ptr),
        other => panic!("unexpected {other:?}"),
    }
}

// --- add / mul ---

#[test]
fn add_ints() {
    assert_eq!(call(&Add, vec![]), Ok(Value::Int(0)));
    assert_eq!(call(&Add, vec![Value::Int(5)]), Ok(Value::Int(5)));
    assert_eq!(
        call(&Add, vec![Value::Int(1), Value::Int(2), Value::Int(-10)]),
        Ok(Value::Int(-7))
    );
    assert_eq!(
        call(
            &Add,
            vec![Value::Int(i64::MAX), Value::Int(-1), Value::Int(1)]
        ),
        Ok(Value::Int(i64::MAX))
    );
}

#[test]
fn add_overflow() {
    let e = err(&Add, vec![Value::Int(i64::MAX), Value::Int(1)]);
    assert!(e.contains("overflow"), "{e}");
    assert_eq!(e, "add: integer overflow");
    let e = err(&Add, vec![Value::Int(i64::MIN), Value::Int(-1)]);
    assert!(e.contains("overflow"), "{e}");
}

#[test]
fn add_float_promotion() {
    assert_eq!(
        call(&Add, vec![Value::Int(1), Value::Float(2.5)]),
        Ok(Value::Float(3.5))
    );
    assert_eq!(
        call(&Add, vec![Value::Float(0.5), Value::Int(1)]),
        Ok(Value::Float(1.5))
    );
    assert_eq!(call(&Add, vec![Value::Float(0.25)]), Ok(Value::Float(0.25)));
    // Ints that would overflow as i64 are fine once a float makes the sum a float.
    assert_eq!(
        call(
            &Add,
            vec![
                Value::Int(i64::MAX),
                Value::Int(i64::MAX),
                Value::Float(0.0)
            ]
        ),
        Ok(Value::Float(2.0 * i64::MAX as f64))
    );
}

#[test]
fn add_wrong_kinds() {
    assert_eq!(
        err(&Add, vec![Value::Int(1), s("x")]),
        "add: input 2 is a string, expected int or float"
    );
    assert_eq!(
        err(&Add, vec![Value::Bool(true)]),
        "add: input 1 is a bool, expected int or float"
    );
    assert_eq!(
        err(&Add, vec![Value::Float(1.0), Value::Int(1), Value::Null]),
        "add: input 3 is a null, expected int or float"
    );
    assert_eq!(
        err(&Add, vec![Value::Int(1), Value::Array(vec![])]),
        "add: input 2 is an array, expected int or float"
    );
    // A kind error wins over an overflow that happened earlier.
    assert_eq!(
        err(&Add, vec![Value::Int(i64::MAX), Value::Int(1), b(b"")]),
        "add: input 3 is a bytes, expected int or float"
    );
}

#[test]
fn mul_ints_and_floats() {
    assert_eq!(call(&Mul, vec![]), Ok(Value::Int(1)));
    assert_eq!(
        call(&Mul, vec![Value::Int(3), Value::Int(-4), Value::Int(2)]),
        Ok(Value::Int(-24))
    );
    assert_eq!(
        call(&Mul, vec![Value::Int(2), Value::Float(2.5)]),
        Ok(Value::Float(5.0))
    );
    assert_eq!(
        call(&Mul, vec![Value::Int(0), Value::Int(i64::MAX)]),
        Ok(Value::Int(0))
    );
}

#[test]
fn mul_overflow_and_kinds() {
    let e = err(&Mul, vec![Value::Int(i64::MAX), Value::Int(2)]);
    assert_eq!(e, "mul: integer overflow");
    let e = err(&Mul, vec![Value::Int(i64::MIN), Value::Int(-1)]);
    assert!(e.contains("overflow"), "{e}");
    assert_eq!(
        err(&Mul, vec![Value::Int(2), Value::Map(Default::default())]),
        "mul: input 2 is an object, expected int or float"
    );
}

// --- concat ---

#[test]
fn concat_strings_bytes_arrays() {
    assert_eq!(call(&Concat, vec![s("ab"), s(""), s("cé")]), Ok(s("abcé")));
    assert_eq!(call(&Concat, vec![s("solo")]), Ok(s("solo")));
    assert_eq!(
        call(&Concat, vec![b(b"\x00\x01"), b(b"\xff")]),
        Ok(b(b"\x00\x01\xff"))
    );
    assert_eq!(
        call(
            &Concat,
            vec![
                Value::Array(vec![Value::Int(1)]),
                Value::Array(vec![]),
                Value::Array(vec![s("x"), Value::Null]),
            ]
        ),
        Ok(Value::Array(vec![Value::Int(1), s("x"), Value::Null]))
    );
}

#[test]
fn concat_errors() {
    assert_eq!(
        err(&Concat, vec![]),
        "concat: expects at least 1 input, got 0"
    );
    let e = err(&Concat, vec![s("a"), b(b"b")]);
    assert!(e.starts_with("concat: inputs mix string and bytes"), "{e}");
    let e = err(&Concat, vec![b(b"a"), b(b"b"), Value::Array(vec![])]);
    assert!(e.starts_with("concat: inputs mix bytes and array"), "{e}");
    assert_eq!(
        err(&Concat, vec![Value::Int(1)]),
        "concat: input 1 is an int, expected string, bytes or array"
    );
    assert_eq!(
        err(&Concat, vec![s("a"), Value::Null]),
        "concat: input 2 is a null, expected string, bytes or array"
    );
}

#[test]
fn concat_is_heavy_on_large_payloads() {
    let small = vec![b(&[0; 1024]), b(&[0; 1024])];
    assert!(!Concat.is_heavy(&small));
    let big = vec![b(&[0; HEAVY_PAYLOAD]), b(&[0; 1])];
    assert!(Concat.is_heavy(&big));
    let arr = vec![Value::Array(vec![Value::Null; HEAVY_PAYLOAD + 1])];
    assert!(Concat.is_heavy(&arr));
}

// --- len ---

#[test]
fn len_of_kinds() {
    assert_eq!(call(&Len, vec![s("héllo")]), Ok(Value::Int(5)));
    assert_eq!(call(&Len, vec![s("")]), Ok(Value::Int(0)));
    assert_eq!(call(&Len, vec![b("héllo".as_bytes())]), Ok(Value::Int(6)));
    assert_eq!(
        call(&Len, vec![Value::Array(vec![Value::Null, Value::Int(1)])]),
        Ok(Value::Int(2))
    );
}

#[test]
fn len_errors() {
    assert_eq!(
        err(&Len, vec![s("a"), s("b"), s("c")]),
        "len: expects 1 input, got 3"
    );
    assert_eq!(err(&Len, vec![]), "len: expects 1 input, got 0");
    assert_eq!(
        err(&Len, vec![Value::Int(3)]),
        "len: input 1 is an int, expected string, bytes or array"
    );
    assert!(err(&Len, vec![Value::Map(Default::default())]).contains("object"));
}

// --- blob ---

#[test]
fn blob_bytes() {
    assert_eq!(
        call(&Blob, vec![Value::Int(5), Value::Int(3)]),
        Ok(b(&[3, 34, 65, 96, 127]))
    );
    assert_eq!(call(&Blob, vec![Value::Int(0), Value::Int(9)]), Ok(b(b"")));
    // Seed is taken mod 256.
    assert_eq!(
        call(&Blob, vec![Value::Int(5), Value::Int(256 + 3)]),
        Ok(b(&[3, 34, 65, 96, 127]))
    );
    assert_eq!(
        call(&Blob, vec![Value::Int(3), Value::Int(i64::MAX)]),
        Ok(b(&[255, 30, 61]))
    );
}

#[test]
fn blob_matches_formula_across_periods() {
    let n = 1000u64;
    let seed = 77u64;
    let Ok(Value::Bytes(out)) = call(&Blob, vec![Value::Int(n as i64), Value::Int(seed as i64)])
    else {
        panic!("blob failed");
    };
    assert_eq!(out.len(), n as usize);
    for (i, byte) in out.iter().enumerate() {
        assert_eq!(*byte as u64, (i as u64 * 31 + seed) % 256, "byte {i}");
    }
}

#[test]
fn blob_errors() {
    assert_eq!(
        err(&Blob, vec![Value::Int(1)]),
        "blob: expects 2 inputs, got 1"
    );
    assert!(err(&Blob, vec![Value::Int(-1), Value::Int(0)]).contains("non-negative"));
    assert!(err(&Blob, vec![Value::Int(1), Value::Int(-5)]).contains("non-negative"));
    assert!(err(&Blob, vec![Value::Float(1.0), Value::Int(0)]).contains("float"));
    assert!(err(&Blob, vec![Value::Int(1), s("x")]).contains("input 2 is a string"));
    let e = err(&Blob, vec![Value::Int((1 << 30) + 1), Value::Int(0)]);
    assert!(e.contains("1 GiB"), "{e}");
    assert!(err(&Blob, vec![Value::Int(i64::MAX), Value::Int(0)]).contains("exceeds"));
}

#[test]
fn blob_heaviness() {
    assert!(!Blob.is_heavy(&[Value::Int(1024), Value::Int(0)]));
    assert!(!Blob.is_heavy(&[Value::Int(HEAVY_PAYLOAD as i64), Value::Int(0)]));
    assert!(Blob.is_heavy(&[Value::Int(HEAVY_PAYLOAD as i64 + 1), Value::Int(0)]));
    assert!(!Blob.is_heavy(&[]));
}

// --- sha256 ---

const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn sha256_hashes() {
    assert_eq!(call(&Sha256Fn, vec![s("abc")]), Ok(s(ABC)));
    assert_eq!(call(&Sha256Fn, vec![s("a"), b(b"bc")]), Ok(s(ABC)));
    assert_eq!(call(&Sha256Fn, vec![b(b"ab"), s(""), s("c")]), Ok(s(ABC)));
    assert_eq!(
        call(&Sha256Fn, vec![]),
        Ok(s(
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ))
    );
    let data = vec![7u8; 5000];
    assert_eq!(
        call(&Sha256Fn, vec![b(&data)]),
        Ok(s(&rukong_core::value::sha256_hex(&data)))
    );
}

#[test]
fn sha256_errors_and_heaviness() {
    assert_eq!(
        err(&Sha256Fn, vec![Value::Int(1)]),
        "sha256: input 1 is an int, expected string or bytes"
    );
    assert_eq!(
        err(&Sha256Fn, vec![s("a"), Value::Array(vec![])]),
        "sha256: input 2 is an array, expected string or bytes"
    );
    assert!(!Sha256Fn.is_heavy(&[s("abc")]));
    assert!(Sha256Fn.is_heavy(&[b(&[0; HEAVY_PAYLOAD + 1])]));
    assert!(Sha256Fn.is_heavy(&[
        b(&[0; HEAVY_PAYLOAD / 2 + 1]),
        s(&"x".repeat(HEAVY_PAYLOAD / 2))
    ]));
}

// --- sleep / spin ---

#[test]
fn sleep_returns_first_dep_or_null() {
    assert_eq!(call(&Sleep, vec![Value::Int(0)]), Ok(Value::Null));
    assert_eq!(call(&Sleep, vec![s("dep"), Value::Int(0)]), Ok(s("dep")));
    assert_eq!(
        call(&Sleep, vec![s("d1"), s("d2"), Value::Int(1)]),
        Ok(s("d1"))
    );
    let start = Instant::now();
    assert_eq!(call(&Sleep, vec![Value::Int(20)]), Ok(Value::Null));
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn sleep_errors() {
    assert!(err(&Sleep, vec![]).contains("no inputs"));
    assert!(err(&Sleep, vec![Value::Int(-1)]).contains("non-negative"));
    assert!(err(&Sleep, vec![Value::Int(1), s("x")]).contains("input 2 is a string"));
    assert!(err(&Sleep, vec![Value::Float(1.0)]).contains("float"));
    let e = err(&Sleep, vec![Value::Int(MAX_SLEEP_MS as i64 + 1)]);
    assert!(e.contains("24 h"), "{e}");
    assert!(Sleep.is_heavy(&[]));
}

#[test]
fn spin_burns_and_returns() {
    let start = Instant::now();
    assert_eq!(call(&Spin, vec![Value::Int(15)]), Ok(Value::Null));
    assert!(start.elapsed() >= Duration::from_millis(15));
    assert_eq!(
        call(&Spin, vec![Value::Int(42), Value::Int(0)]),
        Ok(Value::Int(42))
    );
    assert!(err(&Spin, vec![Value::Int(-3)]).contains("non-negative"));
    assert!(err(&Spin, vec![]).contains("spin"));
    assert!(Spin.is_heavy(&[Value::Int(0)]));
}

// --- fail ---

#[test]
fn fail_messages() {
    assert_eq!(err(&Fail, vec![s("boom")]), "boom");
    assert_eq!(err(&Fail, vec![]), "fail called");
    assert_eq!(err(&Fail, vec![Value::Int(1), s("last wins")]), "last wins");
    assert_eq!(err(&Fail, vec![Value::Int(42)]), "42");
    assert_eq!(err(&Fail, vec![Value::Null]), "null");
    assert_eq!(
        err(&Fail, vec![Value::Array(vec![Value::Int(1), s("x")])]),
        r#"[1,"x"]"#
    );
}

// --- light by default ---

#[test]
fn light_functions_are_not_heavy() {
    let big = [b(&[0; HEAVY_PAYLOAD + 1])];
    assert!(!Const.is_heavy(&big));
    assert!(!Identity.is_heavy(&big));
    assert!(!Add.is_heavy(&big));
    assert!(!Mul.is_heavy(&big));
    assert!(!Len.is_heavy(&big));
    assert!(!Fail.is_heavy(&big));
}

//! The built-in functions (DESIGN §3).
//!
//! Every built-in gets `inputs` = the task's dependency outputs in order, then its args.
//! Input positions in error messages are 1-based.
//!
//! | name       | result                                                                   |
//! |------------|--------------------------------------------------------------------------|
//! | `const`    | its single input                                                         |
//! | `identity` | its single input                                                         |
//! | `add`      | the sum (ints stay i64, overflow is an error; any float makes a float)   |
//! | `mul`      | the product, same rules                                                  |
//! | `concat`   | strings, bytes or arrays joined (all inputs of one kind)                 |
//! | `len`      | length of bytes (bytes), a string (chars) or an array (elements)         |
//! | `blob`     | `n` bytes, byte `i` = `(i * 31 + seed) mod 256`                          |
//! | `sha256`   | lowercase hex SHA-256 of the concatenated string/bytes inputs            |
//! | `sleep`    | sleeps the last input's ms, returns the first dep input or null          |
//! | `spin`     | burns CPU for the last input's ms, returns the first dep input or null   |
//! | `fail`     | always fails, with the last input as the message                         |

use super::{FnError, Function, Registry, WarmState};
use bytes::Bytes;
use rukong_core::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};

/// Payload size (bytes, string bytes, or array elements) above which `sha256`, `concat`
/// and `blob` calls are heavy.
pub const HEAVY_PAYLOAD: usize = 256 * 1024;

/// The largest blob `blob` makes.
pub const MAX_BLOB: u64 = 1 << 30;

/// The longest `sleep` or `spin` (24 h), in milliseconds.
pub const MAX_SLEEP_MS: u64 = 24 * 60 * 60 * 1000;

/// Registers every built-in under its name.
pub fn register_all(r: &mut Registry) {
    r.register("const", Const)
        .register("identity", Identity)
        .register("add", Add)
        .register("mul", Mul)
        .register("concat", Concat)
        .register("len", Len)
        .register("blob", Blob)
        .register("sha256", Sha256Fn)
        .register("sleep", Sleep)
        .register("spin", Spin)
        .register("fail", Fail);
}

// ----------------------------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------------------------

/// "a" or "an" for a kind name.
fn article(kind: &str) -> &'static str {
    match kind.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    }
}

/// `"{name}: input {pos} is a {kind}, expected {expected}"` (pos is 0-based here, printed
/// 1-based).
fn wrong_kind(name: &str, index: usize, v: &Value, expected: &str) -> FnError {
    let kind = v.kind();
    FnError::new(format!(
        "{name}: input {} is {} {kind}, expected {expected}",
        index.saturating_add(1),
        article(kind)
    ))
}

fn expect_count(name: &str, inputs: &[Value], n: usize) -> Result<(), FnError> {
    if inputs.len() == n {
        Ok(())
    } else {
        Err(FnError::new(format!(
            "{name}: expects {n} input{}, got {}",
            if n == 1 { "" } else { "s" },
            inputs.len()
        )))
    }
}

/// A non-negative integer input, or an error naming `what`.
fn non_negative_int(name: &str, what: &str, index: usize, v: &Value) -> Result<u64, FnError> {
    match v {
        Value::Int(i) => u64::try_from(*i).map_err(|_| {
            FnError::new(format!(
                "{name}: {what} (input {}) must be non-negative, got {i}",
                index.saturating_add(1)
            ))
        }),
        other => Err(wrong_kind(
            name,
            index,
            other,
            &format!("a non-negative int {what}"),
        )),
    }
}

/// The sum of string/bytes lengths (array element counts) of `inputs`, saturating.
fn payload_size(inputs: &[Value]) -> usize {
    inputs.iter().fold(0usize, |acc, v| {
        acc.saturating_add(match v {
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        })
    })
}

// ----------------------------------------------------------------------------------------
// const, identity
// ----------------------------------------------------------------------------------------

/// `const(v)`: its single input.
#[derive(Clone, Copy, Debug, Default)]
pub struct Const;

impl Function for Const {
    fn call(&self, _state: Option<&WarmState>, mut inputs: Vec<Value>) -> Result<Value, FnError> {
        match inputs.len() {
            1 => inputs
                .pop()
                .ok_or_else(|| FnError::new("const: expects 1 input, got 0")),
            n => Err(FnError::new(format!("const: expects 1 input, got {n}"))),
        }
    }
}

/// `identity(x)`: its single input.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl Function for Identity {
    fn call(&self, _state: Option<&WarmState>, mut inputs: Vec<Value>) -> Result<Value, FnError> {
        match inputs.len() {
            1 => inputs
                .pop()
                .ok_or_else(|| FnError::new("identity: expects 1 input, got 0")),
            n => Err(FnError::new(format!("identity: expects 1 input, got {n}"))),
        }
    }
}

// ----------------------------------------------------------------------------------------
// add, mul
// ----------------------------------------------------------------------------------------

/// The slow path of `add`/`mul`: some input is not an int, or the int result overflowed.
/// Checks every input is numeric; with a float anywhere the result is the float fold of all
/// inputs, otherwise the ints overflowed.
fn arith_slow(
    name: &str,
    inputs: &[Value],
    identity: f64,
    op: fn(f64, f64) -> f64,
) -> Result<Value, FnError> {
    let mut any_float = false;
    for (i, v) in inputs.iter().enumerate() {
        match v {
            Value::Int(_) => {}
            Value::Float(_) => any_float = true,
            other => return Err(wrong_kind(name, i, other, "int or float")),
        }
    }
    if !any_float {
        return Err(FnError::new(format!("{name}: integer overflow")));
    }
    let mut acc = identity;
    for v in inputs {
        let x = match v {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            // Unreachable: checked above; treat as the identity rather than panic.
            _ => identity,
        };
        acc = op(acc, x);
    }
    Ok(Value::Float(acc))
}

/// `add(...)`: the sum of all inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Add;

impl Function for Add {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        let mut acc: i64 = 0;
        for v in &inputs {
            match v {
                Value::Int(x) => match acc.checked_add(*x) {
                    Some(s) => acc = s,
                    None => return arith_slow("add", &inputs, 0.0, |a, b| a + b),
                },
                _ => return arith_slow("add", &inputs, 0.0, |a, b| a + b),
            }
        }
        Ok(Value::Int(acc))
    }
}

/// `mul(...)`: the product of all inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mul;

impl Function for Mul {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        let mut acc: i64 = 1;
        for v in &inputs {
            match v {
                Value::Int(x) => match acc.checked_mul(*x) {
                    Some(p) => acc = p,
                    None => return arith_slow("mul", &inputs, 1.0, |a, b| a * b),
                },
                _ => return arith_slow("mul", &inputs, 1.0, |a, b| a * b),
            }
        }
        Ok(Value::Int(acc))
    }
}

// ----------------------------------------------------------------------------------------
// concat, len
// ----------------------------------------------------------------------------------------

/// `concat(...)`: strings, bytes or arrays joined; all inputs must be of one kind.
#[derive(Clone, Copy, Debug, Default)]
pub struct Concat;

impl Function for Concat {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        const EXPECTED: &str = "string, bytes or array";
        let Some(first) = inputs.first() else {
            return Err(FnError::new("concat: expects at least 1 input, got 0"));
        };
        if !matches!(first, Value::Str(_) | Value::Bytes(_) | Value::Array(_)) {
            return Err(wrong_kind("concat", 0, first, EXPECTED));
        }
        let first_kind = first.kind();
        for (i, v) in inputs.iter().enumerate().skip(1) {
            if !matches!(v, Value::Str(_) | Value::Bytes(_) | Value::Array(_)) {
                return Err(wrong_kind("concat", i, v, EXPECTED));
            }
            if v.kind() != first_kind {
                return Err(FnError::new(format!(
                    "concat: inputs mix {first_kind} and {} (input {} is {} {})",
                    v.kind(),
                    i.saturating_add(1),
                    article(v.kind()),
                    v.kind()
                )));
            }
        }
        let total = payload_size(&inputs);
        let mut it = inputs.into_iter();
        match it.next() {
            Some(Value::Str(mut s)) => {
                s.reserve(total.saturating_sub(s.len()));
                for v in it {
                    if let Value::Str(t) = v {
                        s.push_str(&t);
                    }
                }
                Ok(Value::Str(s))
            }
            Some(Value::Bytes(b)) => {
                if it.len() == 0 {
                    // One input: share its buffer.
                    return Ok(Value::Bytes(b));
                }
                let mut out = Vec::with_capacity(total);
                out.extend_from_slice(&b);
                for v in it {
                    if let Value::Bytes(t) = v {
                        out.extend_from_slice(&t);
                    }
                }
                Ok(Value::Bytes(Bytes::from(out)))
            }
            Some(Value::Array(mut a)) => {
                a.reserve(total.saturating_sub(a.len()));
                for v in it {
                    if let Value::Array(t) = v {
                        a.extend(t);
                    }
                }
                Ok(Value::Array(a))
            }
            // Unreachable: the first input's kind was checked above.
            _ => Err(FnError::new(
                "concat: expects string, bytes or array inputs",
            )),
        }
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        payload_size(inputs) > HEAVY_PAYLOAD
    }
}

/// `len(x)`: the length of bytes (bytes), a string (Unicode scalar values) or an array.
#[derive(Clone, Copy, Debug, Default)]
pub struct Len;

impl Function for Len {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_count("len", &inputs, 1)?;
        let n = match &inputs[..] {
            [Value::Bytes(b)] => b.len(),
            [Value::Str(s)] => s.chars().count(),
            [Value::Array(a)] => a.len(),
            [other] => return Err(wrong_kind("len", 0, other, "string, bytes or array")),
            _ => return Err(FnError::new("len: expects 1 input")),
        };
        i64::try_from(n)
            .map(Value::Int)
            .map_err(|_| FnError::new("len: length does not fit in an int"))
    }
}

// ----------------------------------------------------------------------------------------
// blob, sha256
// ----------------------------------------------------------------------------------------

/// `blob(n, seed)`: `n` bytes, byte `i` = `(i * 31 + seed) mod 256`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Blob;

impl Function for Blob {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_count("blob", &inputs, 2)?;
        let (n, seed) = match &inputs[..] {
            [n, seed] => (
                non_negative_int("blob", "size n", 0, n)?,
                non_negative_int("blob", "seed", 1, seed)?,
            ),
            _ => return Err(FnError::new("blob: expects 2 inputs")),
        };
        if n > MAX_BLOB {
            return Err(FnError::new(format!(
                "blob: size {n} exceeds the limit of {MAX_BLOB} bytes (1 GiB)"
            )));
        }
        let n = usize::try_from(n)
            .map_err(|_| FnError::new(format!("blob: size {n} does not fit in memory")))?;
        // (i * 31 + seed) mod 256 has period 256 in i: build one period, then repeat it.
        let seed = seed % 256;
        let mut period = [0u8; 256];
        for (i, b) in (0u64..).zip(period.iter_mut()) {
            *b = (i.wrapping_mul(31).wrapping_add(seed) % 256) as u8;
        }
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let take = (n - out.len()).min(period.len());
            out.extend_from_slice(period.get(..take).unwrap_or(&period));
        }
        Ok(Value::Bytes(Bytes::from(out)))
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        matches!(inputs.first(), Some(Value::Int(n)) if *n > HEAVY_PAYLOAD as i64)
    }
}

/// `sha256(...)`: the lowercase hex SHA-256 of the concatenated string/bytes inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sha256Fn;

impl Function for Sha256Fn {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        // Check kinds first so a bad input fails fast without hashing the rest.
        for (i, v) in inputs.iter().enumerate() {
            if !matches!(v, Value::Str(_) | Value::Bytes(_)) {
                return Err(wrong_kind("sha256", i, v, "string or bytes"));
            }
        }
        let mut hasher = Sha256::new();
        for v in &inputs {
            match v {
                Value::Str(s) => hasher.update(s.as_bytes()),
                Value::Bytes(b) => hasher.update(b),
                _ => {}
            }
        }
        Ok(Value::Str(rukong_core::value::hex(&hasher.finalize())))
    }

    fn is_heavy(&self, inputs: &[Value]) -> bool {
        payload_size(inputs) > HEAVY_PAYLOAD
    }
}

// ----------------------------------------------------------------------------------------
// sleep, spin, fail
// ----------------------------------------------------------------------------------------

/// Splits `sleep`/`spin` inputs: the last is the duration in ms, the result is the first
/// dep input (when there are at least two inputs) or null.
fn duration_and_result(name: &str, mut inputs: Vec<Value>) -> Result<(Duration, Value), FnError> {
    let Some(last) = inputs.pop() else {
        return Err(FnError::new(format!(
            "{name}: expects a duration in ms as its last input, got no inputs"
        )));
    };
    let index = inputs.len();
    let ms = non_negative_int(name, "ms", index, &last)?;
    if ms > MAX_SLEEP_MS {
        return Err(FnError::new(format!(
            "{name}: {ms} ms exceeds the limit of {MAX_SLEEP_MS} ms (24 h)"
        )));
    }
    let result = if inputs.is_empty() {
        Value::Null
    } else {
        inputs.swap_remove(0)
    };
    Ok((Duration::from_millis(ms), result))
}

/// `sleep(ms)`: blocks the thread for `ms`, then returns its first dep input or null.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sleep;

impl Function for Sleep {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        let (d, result) = duration_and_result("sleep", inputs)?;
        if !d.is_zero() {
            std::thread::sleep(d);
        }
        Ok(result)
    }

    fn is_heavy(&self, _inputs: &[Value]) -> bool {
        true
    }
}

/// `spin(ms)`: burns CPU for `ms`, then returns its first dep input or null.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spin;

impl Function for Spin {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        let (d, result) = duration_and_result("spin", inputs)?;
        let start = Instant::now();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while start.elapsed() < d {
            for _ in 0..256 {
                x = std::hint::black_box(
                    x.wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407),
                );
            }
        }
        std::hint::black_box(x);
        Ok(result)
    }

    fn is_heavy(&self, _inputs: &[Value]) -> bool {
        true
    }
}

/// `fail(msg)`: always fails; the message is the last input (a string verbatim, anything
/// else in its JSON form), or "fail called" without inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fail;

impl Function for Fail {
    fn call(&self, _state: Option<&WarmState>, mut inputs: Vec<Value>) -> Result<Value, FnError> {
        let message = match inputs.pop() {
            None => "fail called".to_owned(),
            Some(Value::Str(s)) => s,
            Some(other) => other.to_output_json().to_string(),
        };
        Err(FnError::new(message))
    }
}

// ----------------------------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
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
                "const", "identity", "add", "mul", "concat", "len", "blob", "sha256", "sleep",
                "spin", "fail"
            ]
        );
        assert_eq!(r.len(), 11);
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
        let Ok(Value::Bytes(out)) =
            call(&Blob, vec![Value::Int(n as i64), Value::Int(seed as i64)])
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
}

//! The built-in functions (`docs/dag-format.md`).
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
//!
//! Comparison and selection (`eq`, `lt`, `gt`, `get`, `max_by`) are in [`compare`].
//! [`process`] (running an allowed program) is off unless an allow-list turns it on
//! ([`Registry::allow_process`]), so [`register_all`] leaves it out.

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
        .register("fail", Fail)
        .register("eq", compare::Eq)
        .register("lt", compare::Lt)
        .register("gt", compare::Gt)
        .register("get", compare::Get)
        .register("max_by", compare::MaxBy);
}

pub mod compare;
pub mod process;

// ----------------------------------------------------------------------------------------
// Helpers
// ----------------------------------------------------------------------------------------

/// "a" or "an" for a kind name.
pub(crate) fn article(kind: &str) -> &'static str {
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

pub(crate) fn expect_count(name: &str, inputs: &[Value], n: usize) -> Result<(), FnError> {
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
mod tests;

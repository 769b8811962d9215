//! Comparison and selection built-ins, for conditional branches (`docs/conditional-branches.md`): a
//! guard compares one dependency's output with a constant, so these turn outputs into the values
//! that guards test (`lt`, `gt`, `eq`), pick fields (`get`), and combine the branches of a
//! `join: any` task (`max_by`, which ignores the `null` of a skipped branch).
//!
//! | name     | result                                                                       |
//! |----------|------------------------------------------------------------------------------|
//! | `eq`     | `a == b` by the guard rule ([`values_equal`]: `1` equals `1.0`)              |
//! | `lt`     | `a < b` for two numbers (by value) or two strings (by Unicode scalar values) |
//! | `gt`     | `a > b`, same rules                                                          |
//! | `get`    | a map's value at a string key, or an array's element at an int index         |
//! | `max_by` | among the inputs before the last that are not null, the one whose field named |
//! |          | by the last input is the largest number (the first on ties); null if none    |

use super::{FnError, Function, WarmState, expect_count, wrong_kind};
use rukong_core::Value;
use rukong_core::dag::values_equal;
use std::cmp::Ordering;

/// `eq(a, b)`: whether `a` equals `b` by the guard rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Eq;

impl Function for Eq {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_count("eq", &inputs, 2)?;
        Ok(Value::Bool(values_equal(&inputs[0], &inputs[1])))
    }
}

/// `lt(a, b)`: `a < b`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lt;

impl Function for Lt {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        Ok(Value::Bool(order("lt", &inputs)? == Some(Ordering::Less)))
    }
}

/// `gt(a, b)`: `a > b`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gt;

impl Function for Gt {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        Ok(Value::Bool(
            order("gt", &inputs)? == Some(Ordering::Greater),
        ))
    }
}

/// The order of two numbers or two strings; `None` when a NaN is involved.
fn order(name: &str, inputs: &[Value]) -> Result<Option<Ordering>, FnError> {
    expect_count(name, inputs, 2)?;
    match (&inputs[0], &inputs[1]) {
        (Value::Str(a), Value::Str(b)) => Ok(Some(a.as_str().cmp(b.as_str()))),
        (a, b) => {
            let x = number(name, 0, a)?;
            let y = number(name, 1, b)?;
            Ok(compare_numbers(x, y))
        }
    }
}

#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

fn number(name: &str, index: usize, v: &Value) -> Result<Num, FnError> {
    match v {
        Value::Int(i) => Ok(Num::Int(*i)),
        Value::Float(f) => Ok(Num::Float(*f)),
        other => Err(wrong_kind(name, index, other, "a number (or two strings)")),
    }
}

/// Exact numeric order: ints as ints, and an int against a float without rounding the int.
fn compare_numbers(x: Num, y: Num) -> Option<Ordering> {
    match (x, y) {
        (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
        (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
        (Num::Int(a), Num::Float(b)) => int_vs_float(a, b),
        (Num::Float(a), Num::Int(b)) => int_vs_float(b, a).map(Ordering::reverse),
    }
}

/// 2^63, exactly.
const TWO_63: f64 = (1u64 << 63) as f64;

fn int_vs_float(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // Beyond ±2^63 the float is outside every i64; inside, compare the integer parts
    // exactly, then the fraction.
    if f >= TWO_63 {
        return Some(Ordering::Less);
    }
    if f < -TWO_63 {
        return Some(Ordering::Greater);
    }
    let whole = f.floor();
    match i.cmp(&(whole as i64)) {
        Ordering::Equal if f > whole => Some(Ordering::Less),
        o => Some(o),
    }
}

/// `get(x, key)`: `x[key]` for a map and a string key, or an array and an int index.
#[derive(Clone, Copy, Debug, Default)]
pub struct Get;

impl Function for Get {
    fn call(&self, _state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        expect_count("get", &inputs, 2)?;
        let mut it = inputs.into_iter();
        let (Some(x), Some(key)) = (it.next(), it.next()) else {
            return Err(FnError::new("get: expects 2 inputs"));
        };
        match (x, &key) {
            (Value::Map(mut m), Value::Str(k)) => m
                .remove(k)
                .ok_or_else(|| FnError::new(format!("get: the map has no key {k:?}"))),
            (Value::Array(mut a), Value::Int(i)) => {
                let len = a.len();
                usize::try_from(*i)
                    .ok()
                    .filter(|&i| i < len)
                    .map(|i| a.swap_remove(i))
                    .ok_or_else(|| {
                        FnError::new(format!("get: index {i} is out of range (length {len})"))
                    })
            }
            (x @ (Value::Map(_) | Value::Array(_)), key) => Err(wrong_kind(
                "get",
                1,
                key,
                if matches!(x, Value::Map(_)) {
                    "a string key for a map"
                } else {
                    "an int index for an array"
                },
            )),
            (x, _) => Err(wrong_kind("get", 0, &x, "a map or an array")),
        }
    }
}

/// `max_by(x1, …, xn, key)`: the non-null `xi` whose field `key` is the largest number.
#[derive(Clone, Copy, Debug, Default)]
pub struct MaxBy;

impl Function for MaxBy {
    fn call(&self, _state: Option<&WarmState>, mut inputs: Vec<Value>) -> Result<Value, FnError> {
        if inputs.len() < 2 {
            return Err(FnError::new(format!(
                "max_by: expects candidates and then a key, got {} input{}",
                inputs.len(),
                if inputs.len() == 1 { "" } else { "s" }
            )));
        }
        let key = match inputs.pop() {
            Some(Value::Str(k)) => k,
            Some(other) => {
                return Err(wrong_kind("max_by", inputs.len(), &other, "a string key"));
            }
            None => return Err(FnError::new("max_by: no key")),
        };
        let mut best: Option<(usize, Num)> = None;
        for (i, v) in inputs.iter().enumerate() {
            let m = match v {
                Value::Null => continue,
                Value::Map(m) => m,
                other => return Err(wrong_kind("max_by", i, other, "a map or null")),
            };
            let field = m.get(&key).ok_or_else(|| {
                FnError::new(format!("max_by: input {} has no key {key:?}", i + 1))
            })?;
            let n = number("max_by", i, field).map_err(|_| {
                FnError::new(format!(
                    "max_by: input {}'s {key:?} is {} {}, expected a number",
                    i + 1,
                    super::article(field.kind()),
                    field.kind()
                ))
            })?;
            let better = match best {
                None => true,
                Some((_, b)) => compare_numbers(n, b) == Some(Ordering::Greater),
            };
            if better {
                best = Some((i, n));
            }
        }
        Ok(match best {
            Some((i, _)) => inputs.swap_remove(i),
            None => Value::Null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn call(f: &dyn Function, inputs: Vec<Value>) -> Result<Value, FnError> {
        f.call(None, inputs)
    }

    fn pred(label: &str, conf: f64) -> Value {
        let mut m = BTreeMap::new();
        m.insert("label".to_owned(), Value::Str(label.into()));
        m.insert("confidence".to_owned(), Value::Float(conf));
        Value::Map(m)
    }

    #[test]
    fn comparisons_are_exact_across_ints_and_floats() {
        let t = Value::Bool(true);
        let f = Value::Bool(false);
        assert_eq!(
            call(&Lt, vec![Value::Int(1), Value::Float(1.5)]).unwrap(),
            t
        );
        assert_eq!(
            call(&Lt, vec![Value::Float(0.79), Value::Float(0.8)]).unwrap(),
            t
        );
        assert_eq!(
            call(&Gt, vec![Value::Int(2), Value::Float(1.5)]).unwrap(),
            t
        );
        assert_eq!(
            call(&Gt, vec![Value::Int(2), Value::Float(2.0)]).unwrap(),
            f
        );
        assert_eq!(
            call(&Lt, vec![Value::Float(-0.5), Value::Int(0)]).unwrap(),
            t
        );
        assert_eq!(
            call(&Lt, vec![Value::Int(-1), Value::Float(-0.5)]).unwrap(),
            t
        );
        // 2^53 + 1 is not a float: the int keeps its value.
        let big = (1i64 << 53) + 1;
        assert_eq!(
            call(
                &Gt,
                vec![Value::Int(big), Value::Float((1u64 << 53) as f64)]
            )
            .unwrap(),
            t
        );
        assert_eq!(
            call(&Lt, vec![Value::Float(f64::NAN), Value::Int(1)]).unwrap(),
            f
        );
        assert_eq!(
            call(&Gt, vec![Value::Float(f64::NAN), Value::Int(1)]).unwrap(),
            f
        );
        assert_eq!(
            call(&Lt, vec![Value::Str("a".into()), Value::Str("b".into())]).unwrap(),
            t
        );
        assert_eq!(
            call(&Eq, vec![Value::Int(1), Value::Float(1.0)]).unwrap(),
            t
        );
        assert_eq!(
            call(&Eq, vec![Value::Int(1), Value::Str("1".into())]).unwrap(),
            f
        );
        let e = call(&Lt, vec![Value::Int(1), Value::Str("x".into())]).unwrap_err();
        assert!(e.message.contains("lt: input 2 is a string"), "{e}");
        assert!(call(&Eq, vec![Value::Int(1)]).is_err());
    }

    #[test]
    fn get_reads_maps_and_arrays() {
        let p = pred("cat", 0.5);
        assert_eq!(
            call(&Get, vec![p.clone(), Value::Str("confidence".into())]).unwrap(),
            Value::Float(0.5)
        );
        let e = call(&Get, vec![p.clone(), Value::Str("nope".into())]).unwrap_err();
        assert!(e.message.contains("no key \"nope\""), "{e}");
        let a = Value::Array(vec![Value::Int(7), Value::Int(8)]);
        assert_eq!(
            call(&Get, vec![a.clone(), Value::Int(1)]).unwrap(),
            Value::Int(8)
        );
        assert!(call(&Get, vec![a.clone(), Value::Int(2)]).is_err());
        assert!(call(&Get, vec![a, Value::Str("x".into())]).is_err());
        assert!(call(&Get, vec![Value::Int(1), Value::Int(0)]).is_err());
    }

    #[test]
    fn max_by_takes_the_most_confident_and_ignores_nulls() {
        let key = Value::Str("confidence".into());
        let (a, b) = (pred("cat", 0.6), pred("dog", 0.9));
        assert_eq!(
            call(&MaxBy, vec![a.clone(), b.clone(), key.clone()]).unwrap(),
            b
        );
        assert_eq!(
            call(&MaxBy, vec![a.clone(), Value::Null, key.clone()]).unwrap(),
            a
        );
        // Ties keep the first.
        let a2 = pred("fox", 0.6);
        assert_eq!(call(&MaxBy, vec![a.clone(), a2, key.clone()]).unwrap(), a);
        assert_eq!(
            call(&MaxBy, vec![Value::Null, Value::Null, key.clone()]).unwrap(),
            Value::Null
        );
        assert!(call(&MaxBy, vec![Value::Int(1), key.clone()]).is_err());
        assert!(call(&MaxBy, vec![a.clone(), Value::Int(3)]).is_err());
        assert!(call(&MaxBy, vec![key]).is_err());
    }
}

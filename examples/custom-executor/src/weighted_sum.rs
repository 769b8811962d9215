//! `weighted_sum(xs)`: Σ (i+1)·xs\[i\] over an array of at most [`WIDTH`] integers, i.e. one
//! row through a tiny linear model whose weights `init` loads. A bundled function: on a
//! GPU executor, calls that arrive together run as one [`Function::call_batch`], which
//! checks every row, stacks them into one matrix and scores the matrix in one pass (the
//! shape of one batched launch). Results never depend on how calls were bundled.

use rukong_core::Value;
use rukong_executor::functions::{InitCtx, WarmState};
use rukong_executor::{FnError, Function};
use std::sync::Arc;

/// The name DAGs call it by (`fn: weighted_sum`).
pub const NAME: &str = "weighted_sum";

/// The model's width: the longest row it takes.
pub const WIDTH: usize = 64;

/// The warm state: the model's weights (here `1, 2, …, WIDTH`).
pub struct Weights(pub Vec<i64>);

pub struct WeightedSum;

impl WeightedSum {
    /// One row's integers, padded with zeros to [`WIDTH`].
    fn row(inputs: &[Value]) -> Result<Vec<i64>, FnError> {
        let xs = match inputs {
            [Value::Array(xs)] => xs,
            _ => return Err(FnError::new("weighted_sum takes one array of integers")),
        };
        if xs.len() > WIDTH {
            return Err(FnError::new(format!(
                "weighted_sum: at most {WIDTH} entries, got {}",
                xs.len()
            )));
        }
        let mut row = vec![0; WIDTH];
        for (i, x) in xs.iter().enumerate() {
            row[i] = match x {
                Value::Int(v) => *v,
                other => {
                    return Err(FnError::new(format!(
                        "weighted_sum: entry {} is {}, not an integer",
                        i + 1,
                        other.kind()
                    )));
                }
            };
        }
        Ok(row)
    }
}

impl Function for WeightedSum {
    /// Loads the weights (a named stage of the cold start). On a GPU executor they are
    /// marked resident on the device, so the device's slots share one copy: `init` runs
    /// once per device, and the device's warm cache may evict it under its memory budget.
    fn init(&self, ctx: &InitCtx) -> Result<Option<WarmState>, FnError> {
        let weights = ctx
            .log
            .time("load weights", || Weights((1..=WIDTH as i64).collect()));
        if ctx.device.is_some() {
            ctx.log
                .resident(std::mem::size_of_val(weights.0.as_slice()) as u64);
        }
        Ok(Some(Arc::new(weights)))
    }

    fn call(&self, state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        single(self.call_batch(state, vec![inputs]))
    }

    /// The whole bundle at once: one result per input list, in order. A bad row fails
    /// only its own task.
    fn call_batch(
        &self,
        state: Option<&WarmState>,
        batch: Vec<Vec<Value>>,
    ) -> Vec<Result<Value, FnError>> {
        let Some(Weights(w)) = state.and_then(|s| s.downcast_ref::<Weights>()) else {
            let e = FnError::new("weighted_sum: no weights (init did not run)");
            return vec![Err(e); batch.len()];
        };
        let rows: Vec<Result<Vec<i64>, FnError>> =
            batch.iter().map(|inputs| Self::row(inputs)).collect();
        // The good rows as one matrix, scored in one pass.
        let matrix: Vec<i64> = rows.iter().flatten().flatten().copied().collect();
        let mut sums = matrix.chunks(WIDTH).map(|row| {
            row.iter()
                .zip(w)
                .try_fold(0i64, |acc, (x, w)| acc.checked_add(x.checked_mul(*w)?))
                .map(Value::Int)
                .ok_or_else(|| FnError::new("weighted_sum: the sum overflows a 64-bit integer"))
        });
        rows.into_iter()
            .map(|r| r.and_then(|_| sums.next().unwrap_or_else(|| Err(FnError::new("lost row")))))
            .collect()
    }
}

/// The only result of a batch of one.
fn single(mut results: Vec<Result<Value, FnError>>) -> Result<Value, FnError> {
    results
        .pop()
        .unwrap_or_else(|| Err(FnError::new("weighted_sum: no result")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(xs: &[i64]) -> Vec<Value> {
        vec![Value::Array(xs.iter().copied().map(Value::Int).collect())]
    }

    #[test]
    fn a_bundle_gives_what_calls_one_by_one_give() {
        let state = WeightedSum.init(&InitCtx::new(NAME, 0)).unwrap();
        let s = state.as_ref();
        assert_eq!(WeightedSum.call(s, ints(&[1, 2, 3])), Ok(Value::Int(14)));
        let batch = vec![
            ints(&[1, 2, 3]),
            vec![Value::Str("no".into())],
            ints(&[]),
            ints(&[i64::MAX, 1]),
            ints(&[5; WIDTH]),
        ];
        let bundled = WeightedSum.call_batch(s, batch.clone());
        let one_by_one: Vec<_> = batch.into_iter().map(|i| WeightedSum.call(s, i)).collect();
        assert_eq!(bundled, one_by_one);
        assert_eq!(bundled[0], Ok(Value::Int(14)));
        assert!(bundled[1].is_err(), "a bad row fails alone");
        assert_eq!(bundled[2], Ok(Value::Int(0)));
        assert!(
            bundled[3]
                .as_ref()
                .unwrap_err()
                .message
                .contains("overflows")
        );
        assert_eq!(
            bundled[4],
            Ok(Value::Int(5 * (WIDTH * (WIDTH + 1) / 2) as i64))
        );
    }

    #[test]
    fn rows_that_are_too_long_or_not_integers_are_refused() {
        let state = WeightedSum.init(&InitCtx::new(NAME, 0)).unwrap();
        let long = ints(&[1; WIDTH + 1]);
        assert!(WeightedSum.call(state.as_ref(), long).is_err());
        let mixed = vec![Value::Array(vec![Value::Int(1), Value::Float(2.0)])];
        assert_eq!(
            WeightedSum.call(state.as_ref(), mixed).unwrap_err().message,
            "weighted_sum: entry 2 is float, not an integer"
        );
    }
}

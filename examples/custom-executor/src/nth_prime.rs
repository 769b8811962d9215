//! `nth_prime(n)`: the n-th prime (`nth_prime(1)` is 2), for n up to [`COUNT`]. A heavy
//! function with warm state: `init` sieves every prime below [`LIMIT`] once per slot and
//! keeps the table; each call is then a lookup.

use rukong_core::Value;
use rukong_executor::functions::{InitCtx, WarmState};
use rukong_executor::{FnError, Function};
use std::sync::Arc;

/// The name DAGs call it by (`fn: nth_prime`).
pub const NAME: &str = "nth_prime";

/// The table holds every prime below this.
pub const LIMIT: usize = 2_000_000;

/// How many primes that is: the largest `n` accepted.
pub const COUNT: usize = 148_933;

/// The warm state: the primes below [`LIMIT`], in order.
pub struct PrimeTable(pub Vec<u32>);

impl PrimeTable {
    /// The sieve of Eratosthenes: the expensive part, done once per slot.
    pub fn build() -> PrimeTable {
        let mut composite = vec![false; LIMIT];
        let mut primes = Vec::with_capacity(COUNT);
        for i in 2..LIMIT {
            if composite[i] {
                continue;
            }
            primes.push(i as u32);
            let mut j = i * i;
            while j < LIMIT {
                composite[j] = true;
                j += i;
            }
        }
        PrimeTable(primes)
    }
}

pub struct NthPrime;

impl Function for NthPrime {
    /// Runs on a slot's first call (a cold start, timed and reported in the job's stats);
    /// the state it returns is handed to every later call on that slot.
    fn init(&self, _ctx: &InitCtx) -> Result<Option<WarmState>, FnError> {
        Ok(Some(Arc::new(PrimeTable::build())))
    }

    fn call(&self, state: Option<&WarmState>, inputs: Vec<Value>) -> Result<Value, FnError> {
        let table = state
            .and_then(|s| s.downcast_ref::<PrimeTable>())
            .ok_or_else(|| FnError::new("nth_prime: no prime table (init did not run)"))?;
        let n = match inputs.as_slice() {
            [Value::Int(n)] => *n,
            _ => return Err(FnError::new("nth_prime takes one integer")),
        };
        usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| table.0.get(i))
            .map(|&p| Value::Int(i64::from(p)))
            .ok_or_else(|| FnError::new(format!("nth_prime: n must be 1 to {COUNT}, got {n}")))
    }

    /// Heavy: the call runs on the blocking pool, so the slot's thread keeps scheduling
    /// other work meanwhile. (A lookup is quick; a real model's inference would not be.)
    fn is_heavy(&self, _inputs: &[Value]) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(n: i64) -> Result<Value, FnError> {
        let state = NthPrime.init(&InitCtx::new(NAME, 0)).unwrap();
        NthPrime.call(state.as_ref(), vec![Value::Int(n)])
    }

    #[test]
    fn the_table_has_every_prime_below_the_limit() {
        let t = PrimeTable::build();
        assert_eq!(t.0.len(), COUNT);
        assert_eq!(&t.0[..5], &[2, 3, 5, 7, 11]);
        assert_eq!(t.0.last(), Some(&1_999_993));
    }

    #[test]
    fn looks_primes_up_and_refuses_what_is_out_of_range() {
        assert_eq!(call(1), Ok(Value::Int(2)));
        assert_eq!(call(1000), Ok(Value::Int(7919)));
        assert_eq!(call(10_000), Ok(Value::Int(104_729)));
        assert_eq!(
            call(0).unwrap_err().message,
            format!("nth_prime: n must be 1 to {COUNT}, got 0")
        );
        assert!(call(-3).is_err());
        assert!(call(COUNT as i64 + 1).is_err());
        assert!(
            NthPrime.call(None, vec![Value::Int(1)]).is_err(),
            "no state: an error"
        );
    }
}

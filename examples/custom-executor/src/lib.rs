//! # custom-executor
//!
//! A template for an executor with your own functions. [`registry`] holds rukong's
//! built-ins plus one function of each kind:
//!
//! - [`shout`]: a **light** function, a plain closure. It runs inline on the slot's
//!   thread, which costs nanoseconds.
//! - [`nth_prime`]: a **heavy** function with **warm state**. Its `init` builds a prime
//!   table once per slot (reported as a cold start); every later call on that slot reuses
//!   it. Calls leave the slot's thread (`is_heavy`).
//! - [`weighted_sum`]: a **bundled** function. On a GPU executor, calls that arrive
//!   together run as one `call_batch`, which scores the whole batch in one pass.
//!
//! `src/main.rs` hands the registry to `rukong_client::executor_main`, which runs it as an
//! executor process. Replace these functions with yours; keep the names unique, because
//! DAGs name functions and the engine admits a DAG only when some running executor has
//! every function it uses.

pub mod nth_prime;
pub mod shout;
pub mod weighted_sum;

use rukong_executor::Registry;

/// rukong's built-ins and this crate's three functions.
pub fn registry() -> Registry {
    let mut registry = Registry::with_builtins();
    registry.register_fn(shout::NAME, shout::shout);
    registry.register(nth_prime::NAME, nth_prime::NthPrime);
    registry.register(weighted_sum::NAME, weighted_sum::WeightedSum);
    registry
}

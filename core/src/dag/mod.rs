//! The DAG: the user-facing file format ([`spec`]), validation ([`validate()`]) and the
//! compact compiled form ([`compiled`]) that executors walk.

pub mod compact;
pub mod compiled;
mod link;
pub mod spec;
pub mod validate;

#[cfg(test)]
mod tests;

pub use compact::CompactDag;
pub use compiled::{Child, Dag, TaskExtras};
pub use spec::{DagFormat, DagSpec, Guard, Join, Resources, TaskSpec, values_equal};
pub use validate::{Limits, check_id, validate};

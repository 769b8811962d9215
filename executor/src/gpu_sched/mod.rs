//! GPU scheduling policies (issue "[4/5] GPU-capable executors"; `docs/warmup.md`, research notes
//! `gpu-speculation.md` §4): one config switch, [`GpuPolicy`], selects how a GPU slot orders
//! the invocations it has pulled, and [`sim`] measures each policy on a seeded workload.
//!
//! ## The decision interface
//! [`Scheduler::pick`] takes plain data — the time, the slot's queue of [`Pending`]
//! invocations (function, arrival, expected exec time and cold start from the profiles) and
//! a [`SlotView`] of the free slot (its index, the functions warm in its cache, when it went
//! free) — and answers [`Pick::Run`]`(index)` or [`Pick::Idle`] (optionally with a time to
//! ask again). [`Scheduler::on_finish`] feeds back the GPU time an invocation held its slot.
//! Build one with [`scheduler`]`(policy, &SchedConfig)`; one instance serves all the GPU
//! slots of an executor.
//!
//! ## The policies
//! - **`fifo`** (alias `balance`): the oldest queued invocation runs on whichever slot is
//!   free; free slots are offered work longest-idle first (least loaded). No affinity, so
//!   every change of model on a slot is a cold start. The baseline.
//! - **`exclusive`**: slots are function-affine. An unowned slot is claimed by the queued
//!   function that owns no slot yet (first), else the one with the most queued expected work
//!   per owned slot (demand share), preferring a function warm on the slot, then the oldest.
//!   An owned slot serves only its owner's work, oldest first, with two exceptions:
//!   *rebalancing* — a queued function that owns at least two slots fewer than the owner
//!   takes the slot over (KaaS Exclusive); *hand-over* — when the owner has nothing queued
//!   and other functions wait, the slot stays reserved for `handover` (default 1 s) after it
//!   went free, then goes to the best claimant. Fewest cold starts; work may wait while a
//!   reserved slot idles.
//! - **`srtf`**: shortest expected remaining time first, priced on the asking slot: expected
//!   exec plus the cold start when the function is not warm there; ties go to the oldest.
//!   Non-preemptive (GPU kernels are not preempted), so it applies at dispatch. It is warm
//!   affine as a side effect (a cold start makes a job "long"), but switches a slot as soon
//!   as its warm model has nothing queued.
//! - **`mlfq`**: a multi-level feedback queue over functions: a function's level is set by
//!   the GPU time (warm-up included) it consumed in the current window — level k once it has
//!   used (2^k − 1)·quantum, `mlfq_levels` levels; new functions start at the top. The
//!   slot runs the oldest invocation of the highest non-empty level. Every
//!   `mlfq_boost_every` the consumption is reset (everyone back to the top), so no function
//!   starves. It approximates SRTF per function without knowing sizes and ignores warmth.
//!
//! ## Measuring
//! [`sim::generate`] builds a seeded Poisson trace for several models, and
//! [`sim::simulate`] runs it on N slots with LRU warm caches under a policy, reporting cold
//! starts, cache hit rate, mean and p95 queue wait (overall and per function), makespan,
//! throughput and Jain's fairness index over per-function mean slowdown. The
//! `rukong-benches` binary `gpu-policies` prints the comparison table.

pub mod policy;
pub mod sim;

#[cfg(test)]
mod tests;

pub use policy::{
    Exclusive, Fifo, GpuFn, GpuPolicy, Micros, Mlfq, Pending, Pick, SchedConfig, Scheduler,
    SlotView, Srtf, UnknownPolicy, scheduler,
};

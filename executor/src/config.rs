//! Executor settings.

use rukong_core::{ExecClass, ExecutorId};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct ExecutorConfig {
    pub id: ExecutorId,
    /// Slot actors: how many invocations run at once.
    pub slots: usize,
    /// Threads (actix arbiters) the slots are spread over; default: one per core, at most
    /// one per slot.
    pub threads: usize,
    /// Which queue the slots pull from.
    pub class: ExecClass,
    /// Most invocations one slot takes per pull.
    pub pull_batch: usize,
    /// How long an idle slot waits in one pull before checking for shutdown.
    pub pull_wait: Duration,
    /// Deliveries of one invocation before a retryable backend failure fails the job.
    pub max_deliveries: u32,
}

impl ExecutorConfig {
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(1);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ExecutorConfig {
            id: ExecutorId::new(format!("exec-{}", std::process::id())),
            slots,
            threads: cores.min(slots),
            class: ExecClass::Cpu,
            pull_batch: 1,
            pull_wait: Duration::from_millis(200),
            max_deliveries: 5,
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }
}

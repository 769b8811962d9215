//! The CPU as a device: host memory, no cold-start stages, and GPU built-ins run their CPU
//! reference path on it.

use super::{Backend, Device, DeviceInfo, DeviceKind};

/// The host CPU. Its warm-state budget is unlimited unless set with [`Cpu::with_budget`].
#[derive(Clone, Debug)]
pub struct Cpu {
    budget: u64,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu { budget: u64::MAX }
    }
}

impl Cpu {
    pub fn new() -> Self {
        Self::default()
    }

    /// A CPU device whose warm cache holds at most `bytes`.
    pub fn with_budget(bytes: u64) -> Self {
        Cpu { budget: bytes }
    }
}

impl Device for Cpu {
    fn info(&self) -> DeviceInfo {
        DeviceInfo {
            kind: DeviceKind::Cpu,
            name: "cpu".to_owned(),
            memory_bytes: 0,
            mig: false,
        }
    }

    fn backend(&self) -> Backend<'_> {
        Backend::Cpu
    }

    fn memory_budget(&self) -> u64 {
        self.budget
    }
}

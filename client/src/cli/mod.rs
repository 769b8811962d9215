//! Configuration and helpers for the `rukong` cluster commands.

pub mod gpu;
pub mod serve;
pub mod settings;
pub mod up;

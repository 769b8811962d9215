//! Configuration and helpers for the `rukong` cluster commands.

pub mod command;
pub mod executor;
pub mod gpu;
pub mod serve;
pub mod settings;
pub mod up;

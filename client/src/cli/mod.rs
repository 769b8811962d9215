//! Configuration and helpers for the `rukong` cluster commands.

pub mod settings;

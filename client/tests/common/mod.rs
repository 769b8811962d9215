//! Helpers shared by the client's integration tests.
#![allow(dead_code)]

use rukong_client::{DagSpec, Local, LocalConfig};
use std::path::PathBuf;

/// Runs the `rukong` binary of this build with `args`.
pub fn rukong(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rukong"))
        .args(args)
        .output()
        .expect("rukong runs")
}

/// Bytes as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A path relative to the workspace root.
pub fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// A path under this crate's `tests/data`.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

pub fn load(path: &std::path::Path) -> DagSpec {
    DagSpec::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn local(slots: usize, inline_limit: usize) -> Local {
    let mut c = LocalConfig {
        slots,
        ..LocalConfig::default()
    };
    c.engine.job.inline_limit = inline_limit;
    Local::start(c).expect("embedded runtime starts")
}
pub mod cluster;
pub mod conditional;

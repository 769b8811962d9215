#!/usr/bin/env bash
# The whole test suite: unit, conformance, end-to-end, property and doc tests.
# Usage: scripts/test.sh            (from anywhere inside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found. Install Rust (1.85 or newer) with rustup: https://rustup.rs" >&2
  exit 1
fi

# Property tests: a fixed number of cases keeps CI time bounded; raise it locally with
# PROPTEST_CASES=1000 scripts/test.sh.
export PROPTEST_CASES="${PROPTEST_CASES:-64}"

# Doc tests first (nextest does not run them), so that the closing lines are the main
# runner's summary.
cargo test --workspace --doc

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  echo "note: cargo-nextest not found; using cargo test (cargo install cargo-nextest for nicer output)" >&2
  cargo test --workspace --no-fail-fast --lib --bins --tests
fi

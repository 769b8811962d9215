#!/usr/bin/env bash
# The whole test suite: unit, store conformance (in-memory and a real Redis), end-to-end
# (embedded and multi-process cluster), property, fault and doc tests.
# Usage: scripts/test.sh            (from anywhere inside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found. Install Rust (1.85 or newer) with rustup: https://rustup.rs" >&2
  exit 1
fi

# Tests start their own redis-server on free loopback ports, validate docker-compose.yml
# offline with docker-compose, render `rukong graph` through Graphviz, and drive the
# dashboard in headless Chromium. Install what is missing (Debian).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
# The dashboard test loads /ui in headless Chromium (or CHROME_BIN).
if [ -z "${CHROME_BIN:-}" ] && ! command -v chromium >/dev/null 2>&1 \
  && ! command -v chromium-browser >/dev/null 2>&1 && ! command -v google-chrome >/dev/null 2>&1; then
  missing+=(chromium)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (needed by the tests)" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: the tests need ${missing[*]}: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Property tests: a fixed number of cases keeps CI time bounded; raise it locally with
# PROPTEST_CASES=1000 scripts/test.sh.
export PROPTEST_CASES="${PROPTEST_CASES:-64}"

# Doc tests first (nextest does not run them), so that the closing lines are the main
# runner's summary. --all-features turns on the Redis store and its test helpers.
cargo test --workspace --all-features --doc

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --no-fail-fast
else
  echo "note: cargo-nextest not found; using cargo test (cargo install cargo-nextest for nicer output)" >&2
  cargo test --workspace --all-features --no-fail-fast --lib --bins --tests
fi

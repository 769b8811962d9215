#!/usr/bin/env bash
# Real-GPU checks, in two halves, for a GPU machine that has no Rust toolchain.
#   scripts/gpu-check.sh build   (here) builds the CUDA test and bench binaries into carry/
#   scripts/gpu-check.sh run     (on the GPU machine, with carry/ copied beside the repo)
#                                runs them and writes what they print to $OUT (or ./gpu-out)
# CUDA is loaded at run time, so the build needs no CUDA installed.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
build)
  rm -rf carry && mkdir -p carry
  json=$(cargo test -p rukong-executor --features cuda --release --test gpu_cuda --no-run \
    --message-format=json 2>/dev/null)
  test_bin=$(printf '%s\n' "$json" | grep -o '"executable":"[^"]*gpu_cuda[^"]*"' | tail -1 | cut -d'"' -f4)
  cp "$test_bin" carry/gpu_cuda
  json=$(cargo bench -p rukong-executor --features cuda --bench gpu --no-run \
    --message-format=json 2>/dev/null)
  bench_bin=$(printf '%s\n' "$json" | grep -o '"executable":"[^"]*/gpu-[^"]*"' | tail -1 | cut -d'"' -f4)
  cp "$bench_bin" carry/gpu_bench
  cargo build --release -p rukong-client --features cuda
  cp target/release/rukong carry/rukong
  # Without symbols the three fit the device's 64 MiB carry limit (about 23 MB).
  strip carry/*
  ls -l carry
  ;;
run)
  out="${OUT:-gpu-out}"
  mkdir -p "$out"
  nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
  ./carry/rukong run examples/gpu-bundle.yaml --gpu cuda > "$out/gpu-bundle.txt" 2>&1 \
    || echo "gpu-bundle example failed: $?"
  rc=0
  ./carry/gpu_cuda --test-threads=1 --nocapture > "$out/gpu_cuda.txt" 2>&1 || rc=$?
  echo "gpu_cuda: exit $rc"; tail -3 "$out/gpu_cuda.txt"
  ./carry/gpu_bench > "$out/gpu_bench.txt" 2>&1 || echo "gpu_bench failed: $?"
  tail -20 "$out/gpu_bench.txt"
  ;;
*)
  echo "usage: scripts/gpu-check.sh build|run" >&2
  exit 2
  ;;
esac

#!/usr/bin/env bash
# `make bench-org`: the org sweep (20 accounts x 3 Regions x 100 secrets by
# default) through bench/latency-proxy, with 1, 4 and 16 consumers; writes
# bench/results-org.md. Not part of `make test`.
#   CONSUMERS=1,4,16 ACCOUNTS=20 SECRETS=100 DELAY_MS=50 PROFILE=dev|release
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "==> the latency proxy"
cargo build --release --quiet --manifest-path bench/latency-proxy/Cargo.toml --target-dir target/latency-proxy
release=()
if [ "${PROFILE:-dev}" = "release" ]; then release=(--release); fi
echo "==> tests/org_sweep.rs org_sweep_benchmark (${PROFILE:-dev} build)"
REPLICA_AUDITOR_PYTHON="${REPLICA_AUDITOR_PYTHON:-$PWD/.venv/bin/python}" \
BENCH_LATENCY_PROXY="$PWD/target/latency-proxy/release/latency-proxy" \
BENCH_ORG_CONSUMERS="${CONSUMERS:-1,4,16}" BENCH_ORG_ACCOUNTS="${ACCOUNTS:-20}" \
BENCH_ORG_SECRETS="${SECRETS:-100}" BENCH_ORG_DELAY_MS="${DELAY_MS:-50}" \
  cargo test "${release[@]}" --test org_sweep -- --ignored --nocapture org_sweep_benchmark

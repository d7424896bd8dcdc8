#!/usr/bin/env bash
# `make bench-org`: figure 3b, the org sweep against c7n-org (bench/orgwide.py,
# through scripts/bench.sh --org): 20 accounts x 2 Regions x 100 secrets,
# 100 ms per call, the release Lambda binary as N environments fed by an SQS
# event source mapping against `c7n-org run` with N workers; merged into
# bench/results.json and bench/results.md. Then, unless SCALING=0, the
# in-process consumer-scaling table (tests/org_sweep.rs org_sweep_benchmark,
# 20 accounts x 3 Regions x 100 secrets, 50 ms per call) into
# bench/results-org.md. Not part of `make test`.
#   figure 3b: BENCH_ORG_WORKERS=4 (e.g. 1,4,16) BENCH_ORG_ACCOUNTS=20
#              BENCH_ORG_SECRETS=100 BENCH_ORG_DELAY_MS=100 BENCH_ORG_RUNS=1
#              BENCH_ORG_FLOOR=4 (worker counts also run with no delay)
#   scaling:   CONSUMERS=1,4,16 ACCOUNTS=20 SECRETS=100 DELAY_MS=50 PROFILE=dev|release
#              LIMIT_S=3600 (the most one timed run may take)
# FIGURE=0 skips figure 3b (`make bench-org-2000`: the scaling run alone, at
# 2,000 accounts x 3 Regions x 2 primaries with 16 consumers).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${FIGURE:-1}" = "0" ]; then
  cargo build --release --quiet --manifest-path bench/latency-proxy/Cargo.toml --target-dir target/latency-proxy
else
  scripts/bench.sh --org
fi
if [ "${SCALING:-1}" = "0" ]; then exit 0; fi
release=()
if [ "${PROFILE:-dev}" = "release" ]; then release=(--release); fi
echo "==> tests/org_sweep.rs org_sweep_benchmark (${PROFILE:-dev} build)"
REPLICA_AUDITOR_PYTHON="${REPLICA_AUDITOR_PYTHON:-$PWD/.venv/bin/python}" \
BENCH_LATENCY_PROXY="$PWD/target/latency-proxy/release/latency-proxy" \
BENCH_ORG_CONSUMERS="${CONSUMERS:-1,4,16}" BENCH_ORG_ACCOUNTS="${ACCOUNTS:-20}" \
BENCH_ORG_SECRETS="${SECRETS:-100}" BENCH_ORG_DELAY_MS="${DELAY_MS:-50}" \
BENCH_ORG_TARGET="${TARGET:-bench-org}" BENCH_ORG_LIMIT_S="${LIMIT_S:-3600}" \
  cargo test "${release[@]}" --test org_sweep -- --ignored --nocapture org_sweep_benchmark

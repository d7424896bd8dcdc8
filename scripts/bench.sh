#!/usr/bin/env bash
# `make bench`: Replica Auditor against Cloud Custodian (bench/bench.py).
# Installs Cloud Custodian into its own venv (.venv-bench, bench/requirements.txt),
# builds the release bootstrap and the latency proxy, then runs every figure.
# Writes bench/results.md and bench/results.json (--event-only prints; --org and
# --lambda-share merge their figures into both). Not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
if [ "${1:-}" != "--event-only" ]; then
  PY=${PYTHON:-python3}
  if [ ! -x .venv-bench/bin/python ]; then
    echo "==> creating .venv-bench"
    "$PY" -m venv .venv-bench
  fi
  stamp=.venv-bench/.requirements.sha256
  want=$(sha256sum bench/requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing bench/requirements.txt (Cloud Custodian) into .venv-bench"
    .venv-bench/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
    echo "$want" > "$stamp"
  fi
fi
echo "==> cargo build --release (the bootstrap Lambda runs)"
cargo build --release --bin replica-auditor-lambda
echo "==> the latency proxy"
cargo build --release --quiet --manifest-path bench/latency-proxy/Cargo.toml --target-dir target/latency-proxy
if [ "${1:-}" = "--event-only" ]; then
  echo "==> bench/bench.py --event-only (figures 1, 4, 5, 6)"
  exec .venv/bin/python bench/bench.py --event-only target/release/replica-auditor-lambda target/latency-proxy/release/latency-proxy
fi
if [ "${1:-}" = "--org" ]; then
  echo "==> bench/bench.py --org (figure 3b: the org sweep against c7n-org)"
  exec .venv/bin/python bench/bench.py --org target/release/replica-auditor-lambda \
    target/latency-proxy/release/latency-proxy .venv-bench/bin/python
fi
if [ "${1:-}" = "--lambda-share" ]; then
  echo "==> bench/bench.py --lambda-share (figures 2b, 7, 8; needs root for the cgroup CPU controller)"
  exec .venv/bin/python bench/bench.py --lambda-share target/release/replica-auditor-lambda \
    target/latency-proxy/release/latency-proxy .venv-bench/bin/python
fi
echo "==> bench/bench.py"
.venv/bin/python bench/bench.py target/release/replica-auditor-lambda \
  target/latency-proxy/release/latency-proxy .venv-bench/bin/python

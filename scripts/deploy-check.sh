#!/usr/bin/env bash
# docs/deploy.md's cargo-lambda path, offline: cargo-lambda builds the Lambda
# binary (not the command line), and that bootstrap starts and answers with
# exactly deploy/cargo-lambda.env (tests/deploy.rs). `--compiler cargo`: no
# Zig needed for the host's own target (the deploy itself cross-compiles for
# arm64). About 7 minutes cold: every dependency is built again for the
# explicit target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export REPLICA_AUDITOR_PYTHON="$PWD/.venv/bin/python"
echo "==> cargo lambda build --bin replica-auditor-lambda (the cargo-lambda deploy path's binary, dev profile)"
# docs/deploy.md's other path: cargo-lambda must build the Lambda binary,
# not the command line. tests/deploy.rs then starts this bootstrap with
# exactly deploy/cargo-lambda.env. `--compiler cargo`: no Zig needed for
# the host's own target (the deploy itself cross-compiles for arm64).
.venv/bin/cargo-lambda lambda build --compiler cargo --bin replica-auditor-lambda
bootstrap="${CARGO_TARGET_DIR:-target}/lambda/replica-auditor-lambda/bootstrap"
if [ ! -x "$bootstrap" ]; then
  echo "scripts/deploy-check.sh: cargo lambda build made no $bootstrap" >&2
  exit 1
fi
export REPLICA_AUDITOR_BOOTSTRAP="$PWD/$bootstrap"
case "$bootstrap" in /*) export REPLICA_AUDITOR_BOOTSTRAP="$bootstrap" ;; esac
cargo test --test deploy

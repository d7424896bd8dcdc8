#!/usr/bin/env bash
# Every test: formatting, lints, unit, property and integration tests
# (moto started and stopped by the tests themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
if cargo fmt --version >/dev/null 2>&1; then
  echo "==> cargo fmt --check"
  cargo fmt --check
else
  echo "==> (rustfmt is not installed with this toolchain: format check skipped)"
fi
# The Rust lint and build run beside the Python bootstrap and the template
# checks (downloads and installs, mostly waiting on the network and disk),
# which saves minutes on a clean clone; their output is shown once they end.
lint=":"
if cargo clippy --version >/dev/null 2>&1; then
  lint="cargo clippy --all-targets --quiet -- -D warnings"
else
  echo "==> (clippy is not installed with this toolchain: lint skipped)"
fi
echo "==> cargo clippy and the test build, in the background (target/rust-build.log)"
( $lint && cargo test --all-targets --no-run --quiet ) > target/rust-build.log 2>&1 &
rust=$!
trap 'kill "$rust" 2>/dev/null || true' EXIT
scripts/bootstrap.sh
export REPLICA_AUDITOR_PYTHON="$PWD/.venv/bin/python"
echo "==> cfn-lint template.yaml member.yaml"
.venv/bin/cfn-lint template.yaml member.yaml
echo "==> sam validate --lint"
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} .venv/bin/sam validate --lint
echo "==> checkov: template.yaml (OrgSweep off and on) and member.yaml"
# A security team's IaC scan: every finding is fixed or skipped inline with
# its reason (a "# checkov:skip=" line in the resource), so a new finding
# fails here. Checkov resolves a template's Conditions from its parameters'
# defaults: the OrgSweep=on variant is a copy with that default flipped.
mkdir -p target/checkov
sed '/^  OrgSweep:$/,/^    Default:/ s/^    Default: "off"$/    Default: "on"/' \
  template.yaml > target/checkov/template-orgsweep-on.yaml
if [ "$(diff template.yaml target/checkov/template-orgsweep-on.yaml | grep -c '^>')" != 1 ]; then
  echo "scripts/test.sh: could not flip OrgSweep's default in a copy of template.yaml" >&2
  exit 1
fi
.venv/checkov/bin/checkov --quiet --compact --framework cloudformation --skip-download \
  -f template.yaml -f target/checkov/template-orgsweep-on.yaml -f member.yaml
# The cargo-lambda deploy path's own build (`make deploy-check`) compiles
# every dependency again for an explicit target (about 7 minutes cold), so
# it is not in the test command; tests/deploy.rs starts the same binary as
# cargo builds it, with exactly deploy/cargo-lambda.env.
echo "==> cargo clippy and the test build (waiting for them)"
if ! wait "$rust"; then
  cat target/rust-build.log
  echo "scripts/test.sh: cargo clippy or the test build failed (above)" >&2
  exit 1
fi
cat target/rust-build.log
echo "==> cargo test"
cargo test --all-targets
echo "==> the demo: every file in events/ through cargo lambda invoke --data-file"
if ! .venv/bin/python scripts/demo.py > target/demo-output.txt 2>&1; then
  cat target/demo-output.txt
  exit 1
fi
grep -E "^    [a-z].*\.json" target/demo-output.txt
echo "==> the README's excerpt of the demo is what the demo prints"
sed -n '/<!-- demo-excerpt: begin -->/,/<!-- demo-excerpt: end -->/p' README.md \
  | grep -v -e '^<!--' -e '^```' > target/demo-excerpt.txt
if [ ! -s target/demo-excerpt.txt ]; then
  echo "scripts/test.sh: README.md has no demo excerpt" >&2
  exit 1
fi
while IFS= read -r line; do
  if ! grep -qxF -- "$line" target/demo-output.txt; then
    echo "scripts/test.sh: README.md's demo excerpt has a line the demo no longer prints: $line" >&2
    exit 1
  fi
done < target/demo-excerpt.txt
# The full long run (2,000 back to back, 200 at once: about 3 minutes) is
# `make soak`; the test command keeps a smoke of the same checks.
echo "==> soak smoke through cargo lambda watch (200 back to back, 50 at once; make soak runs 2,000 and 200)"
.venv/bin/python scripts/soak.py --sequential 200 --concurrent 50

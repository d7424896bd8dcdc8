#!/usr/bin/env bash
# Installs what the tests and the demo need, into the project only:
# a Python venv at .venv with moto and cargo-lambda (requirements-dev.txt),
# and Checkov in a venv of its own at .venv/checkov (requirements-checkov.txt:
# its boto3 pin conflicts with the SAM CLI's). Re-runs pip only when a
# requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements-dev.sha256
want=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing requirements-dev.txt into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
checkov_stamp=.venv/checkov/.requirements-checkov.sha256
want=$(sha256sum requirements-checkov.txt | cut -d' ' -f1)
if [ "$(cat "$checkov_stamp" 2>/dev/null)" != "$want" ]; then
  if [ ! -x .venv/checkov/bin/python ]; then
    echo "==> creating .venv/checkov"
    "$PY" -m venv .venv/checkov
  fi
  echo "==> installing requirements-checkov.txt into .venv/checkov"
  .venv/checkov/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
  echo "$want" > "$checkov_stamp"
fi

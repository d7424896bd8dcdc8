#!/usr/bin/env bash
# Fuzz the event parser and the key policy analyser for a fixed time each
# (FUZZ_SECONDS, default 60). Installs cargo-fuzz into .tools/ (project-local).
# cargo-fuzz needs nightly features; this toolchain is stable, so
# RUSTC_BOOTSTRAP=1 enables them for the fuzz build only.
# A crash input is copied to fuzz/regressions/<target>/, where
# tests/fuzz_regressions.rs replays it in every `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
if [ ! -x .tools/bin/cargo-fuzz ]; then
  echo "==> installing cargo-fuzz into .tools"
  cargo install cargo-fuzz --version 0.13.2 --locked --root .tools
fi
status=0
for target in event_parser key_policy; do
  seeds=fuzz/seeds/$target
  dict=()
  # The event parser is seeded from the sample events too, with a dictionary.
  [ "$target" = event_parser ] && seeds="events fuzz/seeds/event_parser" && dict=(-dict=fuzz/event_parser.dict)
  mkdir -p "fuzz/corpus/$target" "fuzz/regressions/$target"
  echo "==> fuzzing $target for ${SECONDS_EACH}s"
  if ! RUSTC_BOOTSTRAP=1 .tools/bin/cargo-fuzz run "$target" --fuzz-dir fuzz \
      "fuzz/corpus/$target" $seeds fuzz/regressions/$target -- "${dict[@]}" -max_total_time="$SECONDS_EACH" 2>&1 \
      | tee "fuzz/$target.log" | grep -E "^Done|DONE|panicked|SUMMARY|crash-"; then
    :
  fi
  if ls fuzz/artifacts/$target/crash-* >/dev/null 2>&1; then
    cp fuzz/artifacts/$target/crash-* "fuzz/regressions/$target/"
    echo "!! $target crashed; inputs kept in fuzz/regressions/$target/ (commit them)"
    status=1
  fi
done
exit $status

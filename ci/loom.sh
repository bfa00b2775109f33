#!/usr/bin/env bash
# Runs the loom models of the magazine layer (skmem-magazine/tests/loom_*.rs).
# Preemptions are pinned so the run stays within a couple of minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom"
exec cargo test -p skmem-magazine --release --test 'loom_*' "$@"

#!/usr/bin/env bash
# Runs the loom models of the magazine layer (skmem-magazine/tests/loom_*.rs).
# Preemptions are pinned so the run stays within a couple of minutes. The
# models build into their own target directory so that `--cfg loom` does not
# invalidate the ordinary build.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"
exec cargo test -p skmem-magazine --release --test 'loom_*' "$@"

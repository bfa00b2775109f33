#!/usr/bin/env bash
# Runs the loom models of the magazine layer (skmem-magazine/tests/loom_*.rs).
# Preemptions are pinned per run so the whole script stays within a few
# minutes on two cores (measured: about 2.5 minutes of build, under 10 s of
# models). The models build into their own target directory so that
# `--cfg loom` does not invalidate the ordinary build. Extra arguments go
# to every `cargo test` run (e.g. `-- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"

# run PREEMPTIONS TEST [TEST-NAME-FILTER...]
run() {
    local preemptions="$1" test="$2"
    shift 2
    echo "--- loom $test (LOOM_MAX_PREEMPTIONS=$preemptions) $*"
    LOOM_MAX_PREEMPTIONS="$preemptions" \
        cargo test -p skmem-magazine --release --test "$test" "${EXTRA[@]}" -- "$@"
}
EXTRA=("$@")

# Every model binary first, so that the timed runs below only run.
cargo test -p skmem-magazine --release --test 'loom_*' --no-run "${EXTRA[@]}"

run 2 loom_exchange
run 2 loom_owner
run 2 loom_resize
run 2 loom_rseq_stop
# PerThread: slots in thread-local tables, the owner-only handshake, exit
# flushes and cache drops. Two owners racing a purge take 3 minutes at 3
# preemptions, so they stay at 2; the one-owner models are cheap at 3.
run 2 loom_per_thread
run 3 loom_per_thread exit_flush_races_a_reap cache_dropped_while_its_thread_exits typed_cache_boxes_cross_threads

#!/usr/bin/env bash
# Long fuzzing campaign, run by hand: every target (or those named as
# arguments) for FUZZ_RUNS executions (default 10,000,000) from the
# committed corpus plus a working corpus that persists between campaigns
# (FUZZ_WORK, default fuzz/target/campaign-corpus; not committed). Prints
# executions, wall time, executions per second and crashes per target; a
# crash stops that target's run and leaves its input in fuzz/artifacts/.
#
#   scripts/fuzz-campaign.sh                      # all three, 10M each
#   FUZZ_RUNS=1000000 scripts/fuzz-campaign.sh cache_ops
#
# Exits non-zero when any target crashed.
set -euo pipefail
# The slab layer leaks, by design, the slab of an object whose constructor
# panicked (cache_ops injects such panics); the targets' models check that
# nothing else leaks, so LeakSanitizer stays off (per input and at exit).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
cd "$(dirname "$0")/../fuzz"

FUZZ_RUNS="${FUZZ_RUNS:-10000000}"
FUZZ_WORK="${FUZZ_WORK:-target/campaign-corpus}"
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=(cache_ops packet_pool_ops arena_receive)
fi

cargo +nightly fuzz build -O -a
results=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$FUZZ_WORK/$t" "artifacts/$t"
    log="$FUZZ_WORK/$t.log"
    before=$(ls "artifacts/$t" | wc -l)
    start=$SECONDS
    echo "=== $t: $FUZZ_RUNS executions (log: fuzz/$log)"
    status=0
    cargo +nightly fuzz run -O -a "$t" "$FUZZ_WORK/$t" "corpus/$t" -- \
        -runs="$FUZZ_RUNS" -timeout=20 -rss_limit_mb=8192 -detect_leaks=0 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    secs=$((SECONDS - start))
    execs=$(grep -oP '^stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1 || true)
    if [ -z "$execs" ]; then
        # A crash skips the final stats: take the last progress line.
        execs=$(grep -oP '^#\K[0-9]+' "$log" | tail -1 || echo 0)
    fi
    crashes=$(($(ls "artifacts/$t" | wc -l) - before))
    if [ "$status" -ne 0 ]; then
        failed=1
        [ "$crashes" -gt 0 ] || crashes=1
        grep -E 'panicked at|^==[0-9]+==ERROR|^SUMMARY|Test unit written' "$log" | head -n 5 || true
    fi
    results+=("$(printf '%-16s %12s execs %7s s %9s execs/s %3s crashes' \
        "$t" "$execs" "$secs" "$((execs / (secs > 0 ? secs : 1)))" "$crashes")")
done
echo
printf '%s\n' "${results[@]}"
exit "$failed"

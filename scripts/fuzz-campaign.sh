#!/usr/bin/env bash
# Long fuzzing campaign, run by hand: every target (or those named as
# arguments) for FUZZ_RUNS executions (default 10,000,000) from the
# committed corpus plus a working corpus that persists between campaigns
# (FUZZ_WORK, default fuzz/target/campaign-corpus; not committed).
#
# Each target's libFuzzer output goes to FUZZ_LOG_DIR/campaign-<target>.log
# (default fuzz/target/campaign-logs); progress lines (`#<execs> ...
# exec/s: N`) show how far it is. When a target ends, one summary line is
# appended to that log and printed:
#
#   CAMPAIGN <target>: <execs> execs in <s> s (<n> execs/s), <k> crashes, exit <status>, artifacts in <dir>
#
# A crash stops that target's run and leaves its input in FUZZ_ARTIFACTS/<target>/
# (default fuzz/artifacts/<target>/).
#
#   scripts/fuzz-campaign.sh                      # all four, 10M each, one after the other
#   FUZZ_RUNS=1000000 scripts/fuzz-campaign.sh cache_ops
#   FUZZ_SANITIZER=none scripts/fuzz-campaign.sh cache_ops   # 3.5x the speed, no ASan
#   FUZZ_MAX_LEN=256 scripts/fuzz-campaign.sh                 # short inputs, steady speed
#   # one process per target, in parallel, surviving the shell:
#   FUZZ_LOG_DIR=/some/dir nohup scripts/fuzz-campaign.sh cache_ops >/dev/null 2>&1 &
#
# Exits non-zero when any target crashed.
set -euo pipefail
# The targets' models check every object and packet comes back;
# LeakSanitizer at process exit would also report what libFuzzer itself
# keeps (and the slab's by-design leaks), so it stays off.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
cd "$(dirname "$0")/../fuzz"
fuzz_dir=$PWD

FUZZ_RUNS="${FUZZ_RUNS:-10000000}"
FUZZ_WORK="${FUZZ_WORK:-$fuzz_dir/target/campaign-corpus}"
FUZZ_LOG_DIR="${FUZZ_LOG_DIR:-$fuzz_dir/target/campaign-logs}"
FUZZ_ARTIFACTS="${FUZZ_ARTIFACTS:-$fuzz_dir/artifacts}"
# Seconds one input may take before libFuzzer calls it a hang. Alone an
# input takes milliseconds; on a machine shared by a dozen busy processes
# (CPU pressure 99%), cache_ops inputs that hand work to their other thread
# were seen taking 13-21 s of wall time and 20 s cut a campaign short. A
# deadlock never finishes, so a generous limit still catches it.
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-120}"
# libFuzzer's sanitizer: `address` (the default, as in .ci/run's smoke runs)
# or `none`. AddressSanitizer makes cache_ops 3.5x slower (about 930 against
# 3200 execs/s on a 2-core AMD EPYC under KVM), which puts a 10M campaign at
# 3 hours; with `none` the targets' own model checks and the library's debug
# assertions still run on every step, and ASan keeps the short runs. A
# `none` build goes to its own target directory so it never replaces the
# ASan binaries.
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}"
# Longest input libFuzzer makes (bytes; default: libFuzzer's own choice,
# which keeps growing). Every operation takes a few bytes, so 256 is dozens
# of operations per run; inputs of thousands of bytes were seen to cut
# cache_ops and packet_pool_ops to about 700 execs/s at load 6.
FUZZ_MAX_LEN="${FUZZ_MAX_LEN:-0}"
build_args=(-O -a -s "$FUZZ_SANITIZER")
target_dir="$fuzz_dir/target"
if [ "$FUZZ_SANITIZER" != address ]; then
    target_dir="$fuzz_dir/target/sanitizer-$FUZZ_SANITIZER"
    build_args+=(--target-dir "$target_dir")
fi
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=(cache_ops packet_pool_ops arena_receive stats_region)
fi

if [ ${#targets[@]} -eq 1 ]; then
    cargo +nightly fuzz build "${build_args[@]}" "${targets[0]}"
else
    cargo +nightly fuzz build "${build_args[@]}"
fi
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"
mkdir -p "$FUZZ_LOG_DIR"
results=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "$FUZZ_WORK/$t" "$FUZZ_ARTIFACTS/$t"
    log="$FUZZ_LOG_DIR/campaign-$t.log"
    before=$(ls "$FUZZ_ARTIFACTS/$t" | wc -l)
    start=$SECONDS
    {
        echo "CAMPAIGN $t: start $(date -u '+%F %T') UTC, $FUZZ_RUNS executions, sanitizer $FUZZ_SANITIZER, max_len $FUZZ_MAX_LEN, host $(hostname), $(git -C "$fuzz_dir" rev-parse --short HEAD)"
        echo "CAMPAIGN $t: $bin_dir/$t $FUZZ_WORK/$t $fuzz_dir/corpus/$t"
    } >"$log"
    echo "=== $t: $FUZZ_RUNS executions (log: $log)"
    status=0
    # The binary directly (built above): a later build in this tree does not
    # disturb a running campaign.
    "$bin_dir/$t" "$FUZZ_WORK/$t" "$fuzz_dir/corpus/$t" \
        -artifact_prefix="$FUZZ_ARTIFACTS/$t/" \
        -runs="$FUZZ_RUNS" -timeout="$FUZZ_TIMEOUT" -rss_limit_mb=8192 -detect_leaks=0 \
        -max_len="$FUZZ_MAX_LEN" -print_final_stats=1 >>"$log" 2>&1 || status=$?
    secs=$((SECONDS - start))
    execs=$(grep -oP '^stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1 || true)
    if [ -z "$execs" ]; then
        # A crash skips the final stats: take the last progress line.
        execs=$(grep -oP '^#\K[0-9]+' "$log" | tail -1 || echo 0)
    fi
    crashes=$(($(ls "$FUZZ_ARTIFACTS/$t" | wc -l) - before))
    if [ "$status" -ne 0 ]; then
        failed=1
        [ "$crashes" -gt 0 ] || crashes=1
        grep -E 'panicked at|^==[0-9]+==ERROR|^SUMMARY|Test unit written' "$log" | head -n 5 || true
    fi
    summary=$(printf 'CAMPAIGN %s: %s execs in %s s (%s execs/s), %s crashes, exit %s, artifacts in %s' \
        "$t" "$execs" "$secs" "$((execs / (secs > 0 ? secs : 1)))" "$crashes" "$status" "$FUZZ_ARTIFACTS/$t/")
    echo "$summary (end $(date -u '+%F %T') UTC)" >>"$log"
    results+=("$summary")
done
echo
printf '%s\n' "${results[@]}"
exit "$failed"

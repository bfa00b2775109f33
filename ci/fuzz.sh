#!/usr/bin/env bash
# Short libFuzzer smoke run of every fuzz target (fuzz/, cargo-fuzz layout),
# starting from the committed corpus: builds the targets (nightly, release
# with debug assertions, AddressSanitizer) and runs each for
# FUZZ_SECONDS (default 45) seconds. Any crash, sanitizer report, leak the
# targets' models detect, or timeout makes this exit non-zero; the crashing
# input is left in fuzz/artifacts/<target>/.
#
# The committed corpus is only read: new inputs go to a scratch directory.
# Long runs: scripts/fuzz-campaign.sh.
set -euo pipefail
# The slab layer leaks, by design, the slab of an object whose constructor
# panicked (cache_ops injects such panics); the targets' models check that
# nothing else leaks, so LeakSanitizer stays off (per input and at exit).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-45}"
TARGETS=(cache_ops packet_pool_ops arena_receive stats_region)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "installing the nightly toolchain..."
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..."
    cargo install cargo-fuzz --locked
fi
cargo +nightly fuzz --version

cd fuzz
start=$SECONDS
cargo +nightly fuzz build -O -a
echo "--- fuzz targets built in $((SECONDS - start)) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${TARGETS[@]}"; do
    mkdir -p "$scratch/$t"
    echo "--- fuzz $t for ${FUZZ_SECONDS} s from corpus/$t ($(ls corpus/"$t" | wc -l) inputs)"
    start=$SECONDS
    status=0
    cargo +nightly fuzz run -O -a "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb=4096 \
        -detect_leaks=0 -print_final_stats=1 >"$scratch/$t.log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb|Done )' "$scratch/$t.log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 80 "$scratch/$t.log"
        echo "FAILED: fuzz target $t exited with $status; input in fuzz/artifacts/$t/"
        exit 1
    fi
    echo "--- fuzz $t: no crash in $((SECONDS - start)) s"
done

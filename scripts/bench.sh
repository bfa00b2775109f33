#!/usr/bin/env bash
# Runs every benchmark of skmem-benches and regenerates BENCHMARKS.md.
#
#   scripts/bench.sh                 # criterion (all workloads) + iai-callgrind, then the report
#   scripts/bench.sh --report-only   # rebuild BENCHMARKS.md and charts from the last results
#   BENCH_FILTER=pair scripts/bench.sh   # only criterion benchmarks whose id matches "pair"
#
# Settings (environment): BENCH_WARMUP (s, default 1), BENCH_MEASURE (s, default 2),
# BENCH_SAMPLES (default 20), BENCH_FILTER (criterion filter, default all), SKIP_IAI=1.
# Outputs: BENCHMARKS.md, benches/results/{wall.svg,iai.svg,results.json};
# logs in $CARGO_TARGET_DIR (or target/): bench-wall.log, bench-iai.log.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
warmup=${BENCH_WARMUP:-1}
measure=${BENCH_MEASURE:-2}
samples=${BENCH_SAMPLES:-20}
filter=${BENCH_FILTER:-}
settings="criterion: --warm-up-time $warmup --measurement-time $measure --sample-size $samples${filter:+, filter '$filter'}"

if [ "${1:-}" != "--report-only" ]; then
    if [ -z "$filter" ]; then
        # Stale results of renamed or removed contenders would leak into the tables.
        rm -rf "$target/criterion"
    fi
    echo "before: $(cut -d' ' -f1-3 /proc/loadavg)" > "$target/bench-load.txt"
    cargo bench -p skmem-benches --bench wall -- \
        --warm-up-time "$warmup" --measurement-time "$measure" --sample-size "$samples" \
        ${filter:+"$filter"} 2>&1 | tee "$target/bench-wall.log"
    echo "after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$target/bench-load.txt"
    if [ "${SKIP_IAI:-0}" != 1 ]; then
        bash ci/iai.sh 2>&1 | tee "$target/bench-iai.log"
    fi
fi

python3 scripts/bench_report.py \
    --criterion "$target/criterion" \
    --iai-log "$target/bench-iai.log" \
    --load-file "$target/bench-load.txt" \
    --out BENCHMARKS.md \
    --results-dir benches/results \
    --command "scripts/bench.sh" \
    --settings "$settings; iai-callgrind: ci/iai.sh"

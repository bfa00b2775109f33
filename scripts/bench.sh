#!/usr/bin/env bash
# Runs the benchmarks of skmem-benches and regenerates the fast-path section of BENCHMARKS.md
# (between its BEGIN/END markers; other sections of the file are kept).
#
#   scripts/bench.sh                   # the fast-path suite (wall, ~3 min on 2 cores) + iai-callgrind, then the report
#   BENCH_ROUNDS=3 scripts/bench.sh    # three rounds of the wall suite; the report takes the median of the medians
#   BENCH_POOLS=1 scripts/bench.sh     # also the wider comparison with object pools (benches/benches/pools.rs, ~6 min)
#   BENCH_DPDK=1 scripts/bench.sh      # also DPDK's mempool/mbuf reference (scripts/dpdk_bench.sh; needs dpdk-dev)
#   BENCH_FILTER=pair scripts/bench.sh # only criterion benchmarks whose id matches "pair"
#   scripts/bench.sh --report-only     # rebuild BENCHMARKS.md and charts from the last results
#
# Settings (environment): BENCH_WARMUP (s, default 1), BENCH_MEASURE (s, default 2),
# BENCH_SAMPLES (default 20), BENCH_ROUNDS (default 1), BENCH_FILTER (criterion filter,
# default all), BENCH_POOLS=1, BENCH_DPDK=1, SKIP_IAI=1.
# Outputs: BENCHMARKS.md, benches/results/{wall.svg,iai.svg,results.json};
# logs in $CARGO_TARGET_DIR (or target/): bench-wall.log, bench-iai.log, bench-load.txt;
# criterion results of round i in $target/criterion-round<i>.
# The iai-callgrind step is the instruction-count gate (ci/iai.sh): if it fails, the
# report is still written and this script exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
warmup=${BENCH_WARMUP:-1}
measure=${BENCH_MEASURE:-2}
samples=${BENCH_SAMPLES:-20}
rounds=${BENCH_ROUNDS:-1}
filter=${BENCH_FILTER:-}
settings="criterion: --warm-up-time $warmup --measurement-time $measure --sample-size $samples"
settings+="${filter:+, filter '$filter'}; $rounds round(s)${BENCH_POOLS:+; with benches/benches/pools.rs}"
crit_args=(--warm-up-time "$warmup" --measurement-time "$measure" --sample-size "$samples" ${filter:+"$filter"})

iai_status=0
if [ "${1:-}" != "--report-only" ]; then
    mkdir -p "$target"
    cargo bench -p skmem-benches --no-run
    rm -rf "$target"/criterion-round*
    echo "before: $(cut -d' ' -f1-3 /proc/loadavg)" > "$target/bench-load.txt"
    : > "$target/bench-wall.log"
    for round in $(seq 1 "$rounds"); do
        # Each round starts from an empty criterion directory, so stale results of
        # renamed or removed contenders never leak into the tables.
        rm -rf "$target/criterion"
        echo "=== wall-clock round $round of $rounds ===" | tee -a "$target/bench-wall.log"
        cargo bench -p skmem-benches --bench wall -- "${crit_args[@]}" 2>&1 | tee -a "$target/bench-wall.log"
        if [ -n "${BENCH_POOLS:-}" ]; then
            cargo bench -p skmem-benches --bench pools -- "${crit_args[@]}" 2>&1 | tee -a "$target/bench-wall.log"
        fi
        mv "$target/criterion" "$target/criterion-round$round"
        echo "after round $round: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$target/bench-load.txt"
    done
    # A DPDK log from an earlier run would be reported as if it were this one's.
    rm -f "$target/bench-dpdk.log"
    if [ -n "${BENCH_DPDK:-}" ]; then
        scripts/dpdk_bench.sh
    fi
    if [ "${SKIP_IAI:-0}" != 1 ]; then
        bash ci/iai.sh 2>&1 | tee "$target/bench-iai.log" || iai_status=$?
    fi
fi

round_dirs=()
for d in "$target"/criterion-round*; do
    [ -d "$d" ] && round_dirs+=(--criterion "$d")
done
if [ ${#round_dirs[@]} -eq 0 ]; then
    echo "scripts/bench.sh: no results in $target/criterion-round*; run without --report-only first" >&2
    exit 1
fi

python3 scripts/bench_report.py \
    "${round_dirs[@]}" \
    --wall-log "$target/bench-wall.log" \
    --iai-log "$target/bench-iai.log" \
    --dpdk-log "$target/bench-dpdk.log" \
    --load-file "$target/bench-load.txt" \
    --out BENCHMARKS.md \
    --results-dir benches/results \
    --command "scripts/bench.sh" \
    --settings "$settings; iai-callgrind: ci/iai.sh"

if [ "$iai_status" != 0 ]; then
    echo "scripts/bench.sh: the instruction-count gate (ci/iai.sh) failed; see $target/bench-iai.log" >&2
    exit "$iai_status"
fi

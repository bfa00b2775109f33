#!/usr/bin/env bash
# The instruction-count gate. Runs the iai-callgrind fast-path suite
# (benches/benches/iai.rs: alloc+free pairs and batches of 32 for skmem's
# magazine cache per CpuLocal policy and the slab cache, and for mimalloc,
# jemalloc and system malloc) and compares each benchmark's instruction count
# (Ir) with the committed baseline ci/iai-baseline.txt: fails on a rise of more
# than 2 % (IAI_TOLERANCE, percent), on a benchmark missing from either side,
# and prints a table baseline / now / change. Falls are reported, not failed.
# jemalloc's counts vary from run to run (by up to 14 % in identical runs), so
# they are printed but not gated (IAI_UNGATED, a regular expression over names).
#
#   ci/iai.sh                      # run + gate
#   ci/iai.sh --update-baseline    # run + rewrite ci/iai-baseline.txt (commit it deliberately)
#   ci/iai.sh --no-gate            # run + print counts only
#
# The whole suite always runs (about 25 s): iai-callgrind 0.16's name filter
# matched nothing here, and the gate needs every count anyway.
#
# Installs the iai-callgrind-runner matching the iai-callgrind library in
# Cargo.lock (only when the installed one differs). The suite's output is
# saved to $CARGO_TARGET_DIR/iai-suite.log (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=gate
case "${1:-}" in
--update-baseline)
    mode=update
    shift
    ;;
--no-gate)
    mode=report
    shift
    ;;
esac
if [ $# -gt 0 ]; then
    echo "ci/iai.sh: unexpected argument(s): $* (use --update-baseline or --no-gate)" >&2
    exit 2
fi

baseline=ci/iai-baseline.txt
tolerance=${IAI_TOLERANCE:-2}
ungated=${IAI_UNGATED-_jemalloc::}
target=${CARGO_TARGET_DIR:-target}
log=$target/iai-suite.log

want=$(awk '/^name = "iai-callgrind"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$want" ]; then
    echo "ci/iai.sh: iai-callgrind not found in Cargo.lock" >&2
    exit 1
fi
have=$(cargo install --list | awk '/^iai-callgrind-runner v/ { sub(/^v/, "", $2); sub(/:$/, "", $2); print $2 }')
if [ "$have" != "$want" ]; then
    echo "ci/iai.sh: installing iai-callgrind-runner $want (found: ${have:-none})"
    cargo install --locked --version "$want" iai-callgrind-runner
fi

if ! command -v valgrind >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq valgrind
    else
        echo "ci/iai.sh: valgrind is required" >&2
        exit 1
    fi
fi

mkdir -p "$target"
# (iai-callgrind's own "old" column compares with the previous local run;
# the gate compares with the committed file only.)
cargo bench -p skmem-benches --bench iai 2>&1 | tee "$log"

gate=(python3 scripts/iai_gate.py --log "$log" --baseline "$baseline" --tolerance "$tolerance"
    --ungated "$ungated")
case "$mode" in
gate) "${gate[@]}" ;;
update)
    "${gate[@]}" --update --commit "$(git rev-parse --short HEAD 2>/dev/null || true)" \
        --valgrind "$(valgrind --version 2>/dev/null || true)"
    ;;
report) ;;
esac

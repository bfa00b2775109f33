#!/usr/bin/env bash
# Instruction counts (iai-callgrind) of the allocation fast paths: alloc+free
# pairs and batches of 32 for skmem's magazine cache per CpuLocal policy and
# the slab cache, and for mimalloc, jemalloc and system malloc.
#
# Installs the iai-callgrind-runner matching the iai-callgrind library in
# Cargo.lock (only when the installed one differs), then runs the suite.
# Reports counts; asserts nothing about them. Extra arguments go to the
# benchmark binary (e.g. a filter: `ci/iai.sh pairs`).
set -euo pipefail
cd "$(dirname "$0")/.."

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

cargo bench -p skmem-benches --bench iai -- "$@"

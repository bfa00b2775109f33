#!/usr/bin/env bash
# DPDK reference numbers on this machine (issue 13's comparison point):
# rte_mempool get+put of 1 and 32 objects (cache 256, 64-byte objects) and
# rte_pktmbuf_alloc+free of 1 and 32 mbufs, per object. Builds
# benches/dpdk/mempool_bench.c against Debian's DPDK (dpdk-dev), runs it with
# EAL on anonymous memory (--no-huge, no PCI, one lcore), and saves the output
# to $CARGO_TARGET_DIR/bench-dpdk.log (default target/), which
# scripts/bench_report.py reads when it exists.
#
#   scripts/dpdk_bench.sh            # needs dpdk-dev (apt-get install dpdk-dev librte-mempool-ring23)
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
if ! pkg-config --exists libdpdk; then
    echo "scripts/dpdk_bench.sh: DPDK not found (pkg-config libdpdk); install dpdk-dev" >&2
    exit 1
fi
bin=$target/dpdk-mempool-bench
# shellcheck disable=SC2046 # pkg-config prints several flags
cc -O2 -Wall -Werror -march=native -o "$bin" benches/dpdk/mempool_bench.c $(pkg-config --cflags --libs libdpdk)
# The cache is per lcore: pin to one CPU. --no-shconf: no shared config files
# (--in-memory, the newer spelling, refuses --no-huge in DPDK 22.11).
"$bin" -l 0 --no-huge -m 512 --no-pci --no-shconf --no-telemetry --log-level=lib.eal:error \
    | tee "$target/bench-dpdk.log"

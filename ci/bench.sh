#!/usr/bin/env bash
# Builds every benchmark and runs the iai-callgrind fast-path suite as a gate: its
# instruction counts must stay within 2 % of ci/iai-baseline.txt (see ci/iai.sh;
# nothing is asserted about timings).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f benches/Cargo.toml ]; then
    echo "no benches package yet"
    exit 0
fi
cargo bench --workspace --no-run
if [ -x ci/iai.sh ]; then
    ci/iai.sh
fi

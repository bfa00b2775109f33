#!/usr/bin/env bash
# Miri over the single-threaded layers (heap backend; tests that make system
# calls are compiled out under cfg(miri)). Runs when `cargo +nightly miri` is
# available or can be installed; says so plainly when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "cargo +nightly miri is not available; trying to install the miri component..."
    if ! rustup component add --toolchain nightly miri rust-src >/dev/null 2>&1 ||
        ! cargo +nightly miri --version >/dev/null 2>&1; then
        echo "SKIPPED: Miri is not available on this machine (no nightly toolchain with the miri component could be installed)."
        exit 0
    fi
fi
cargo +nightly miri --version
cargo +nightly miri setup >/dev/null 2>&1 || cargo +nightly miri setup

# Every cache, region and pool registers in the crossbeam-epoch registry,
# so every suite runs crossbeam-epoch's code, which needs three flags:
# permissive provenance (it keeps tags in pointer bits: integer-to-pointer
# casts, refused by strict provenance), Tree Borrows (its intrusive list is a
# known Stacked Borrows false alarm; crossbeam checks crossbeam-epoch under
# Tree Borrows itself) and ignoring leaks (the global collector still holds
# deferred garbage when the process exits). Leaks of skmem's own memory are
# still found by LeakSanitizer in ci/sanitizers.sh.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks}"
export CARGO_TARGET_DIR="${MIRI_TARGET_DIR:-target/miri}"
# One line per invocation: the arguments after `cargo +nightly miri test`.
grep -v '^\s*#' ci/miri-tests.txt | grep -v '^\s*$' | while read -r args; do
    echo "--- miri test $args"
    # shellcheck disable=SC2086
    cargo +nightly miri test $args
done

#!/usr/bin/env bash
# Miri over the single-threaded layers (heap backend; mmap tests are
# compiled out under cfg(miri)). Runs when `cargo +nightly miri` is available
# or can be installed; says so plainly when it cannot.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "cargo +nightly miri is not available; trying to install the miri component..."
    if ! rustup component add --toolchain nightly miri rust-src >/dev/null 2>&1 ||
        ! cargo +nightly miri --version >/dev/null 2>&1; then
        echo "SKIPPED: Miri is not available on this machine (no nightly toolchain with the miri component)."
        exit 0
    fi
fi
cargo +nightly miri --version
cargo +nightly miri setup >/dev/null 2>&1 || cargo +nightly miri setup

export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
export PROPTEST_CASES="${PROPTEST_CASES:-4}"
for pkg in $(cat ci/miri-packages.txt); do
    echo "--- miri: $pkg"
    cargo +nightly miri test -p "$pkg"
done
